"""POST /v1/ml/extract: the offline extractor, and an LLM constrained by the extraction schema."""

from __future__ import annotations

import json

from rae_common.contracts.ml import LOCAL_EXTRACT_NOTICE
from rae_common.testing import serve_app

TEXT = "Alice Smith works at Acme Corp. She lives in Berlin. Alice prefers green tea."
LLM_ANSWER = {
    "entities": [
        {"name": "Alice Smith", "type": "person", "aliases": ["Alice"]},
        {"name": "Acme Corp", "type": "organization", "aliases": []},
        {"name": "Berlin", "type": "location", "aliases": []},
    ],
    "relations": [
        {"source": "Alice Smith", "relation": "works at", "target": "Acme Corp", "confidence": 0.95},
        {"source": "Alice Smith", "relation": "LIVES_IN", "target": "Berlin", "confidence": 0.9},
    ],
}


async def test_offline_extraction_answers_the_graph_shape(ml_app, fake, tenant) -> None:
    async with serve_app(ml_app()) as client:
        response = await client.post("/v1/ml/extract", json={"text": TEXT}, headers=tenant)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["entities"] == [
        {"name": "Alice Smith", "type": "person", "aliases": ["Alice"]},
        {"name": "Acme Corp", "type": "organization", "aliases": []},
        {"name": "Berlin", "type": "location", "aliases": []},
        {"name": "green tea", "type": "concept", "aliases": []},
    ]
    assert {(r["source"], r["relation"], r["target"]) for r in body["relations"]} == {
        ("Alice Smith", "WORKS_AT", "Acme Corp"),
        ("Alice Smith", "LIVES_IN", "Berlin"),
        ("Alice Smith", "PREFERS", "green tea"),
    }
    assert all(0 < r["confidence"] <= 1 for r in body["relations"])
    assert body["notice"] == LOCAL_EXTRACT_NOTICE
    assert body["usage"]["model"] == "local-extractive" and body["usage"]["estimated"] is False
    assert body["usage"]["prompt_tokens"] > 0
    assert fake.calls() == []


async def test_entity_types_limit_the_offline_answer(ml_app, tenant) -> None:
    async with serve_app(ml_app()) as client:
        response = await client.post(
            "/v1/ml/extract", json={"text": TEXT, "entity_types": ["person", "location"]}, headers=tenant
        )
    body = response.json()
    assert [e["name"] for e in body["entities"]] == ["Alice Smith", "Berlin"]
    assert [r["relation"] for r in body["relations"]] == ["LIVES_IN"]


async def test_extraction_through_an_llm_uses_the_schema_and_cleans_the_answer(ml_app, fake, tenant) -> None:
    fake.then({"content": json.dumps(LLM_ANSWER)})
    async with serve_app(ml_app()) as client:
        response = await client.post(
            "/v1/ml/extract", json={"text": TEXT, "model": "fake-chat"}, headers=tenant
        )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["entities"] == LLM_ANSWER["entities"]
    assert body["relations"][0] == {
        "source": "Alice Smith",
        "relation": "WORKS_AT",
        "target": "Acme Corp",
        "confidence": 0.95,
    }
    assert body["notice"] is None
    assert body["usage"]["provider"] == "fake" and body["usage"]["prompt_tokens"] == 11
    sent = fake.calls()[0].body
    assert sent["temperature"] == 0.0
    assert sent["messages"][0]["role"] == "system" and sent["messages"][1]["content"] == TEXT
    schema = sent["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["entities", "relations"]


async def test_the_extract_model_setting_picks_the_llm(ml_app, fake, tenant) -> None:
    fake.then({"content": json.dumps(LLM_ANSWER)})
    async with serve_app(ml_app(ml_extract_model="fake/fake-chat")) as client:
        response = await client.post("/v1/ml/extract", json={"text": TEXT}, headers=tenant)
    assert response.json()["usage"]["provider"] == "fake"
    assert len(fake.calls()) == 1


async def test_an_llm_answer_outside_the_schema_is_a_502(ml_app, fake, tenant) -> None:
    fake.then({"content": json.dumps({"entities": [{"name": "X"}], "relations": []})})
    async with serve_app(ml_app()) as client:
        response = await client.post(
            "/v1/ml/extract", json={"text": TEXT, "model": "fake-chat"}, headers=tenant
        )
    assert response.status_code == 502
    assert response.json()["type"].endswith("/invalid-structured-output")


async def test_bad_extract_requests_are_422(ml_app, tenant) -> None:
    async with serve_app(ml_app()) as client:
        for body, slug in [
            ({"text": ""}, "validation-error"),
            ({"text": "x" * 50_001}, "validation-error"),
            ({"text": "x", "entity_types": ["Person!"]}, "validation-error"),
            ({"text": "x", "extra": 1}, "validation-error"),
            ({"text": "x", "model": "nope"}, "unknown-model"),
        ]:
            response = await client.post("/v1/ml/extract", json=body, headers=tenant)
            assert response.status_code == 422, body
            assert response.json()["type"].endswith("/" + slug)
