"""POST /v1/ml/embed with an OpenAI-compatible embedding provider."""

from __future__ import annotations

import uuid

import numpy as np

from rae_common.testing import serve_app


def unique(*texts: str) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"{text} ({tag})" for text in texts]


async def test_provider_vectors_are_normalised_in_order_cached_and_priced(ml_app, fake, tenant) -> None:
    texts = unique("first text", "second text", "third text")
    overrides = {"fake/fake-embed": {"input_per_1m": 100.0, "output_per_1m": 0.0}}
    async with serve_app(ml_app(ml_price_overrides=overrides)) as client:
        first = await client.post(
            "/v1/ml/embed", json={"texts": texts, "model": "fake-embed"}, headers=tenant
        )
        again = await client.post(
            "/v1/ml/embed", json={"texts": texts[:2], "model": "fake/fake-embed"}, headers=tenant
        )

    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["model"], body["dimensions"], body["cached"]) == ("fake-embed", 8, 0)
    vectors = np.array(body["vectors"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert len({tuple(v) for v in body["vectors"]}) == 3
    # The provider answered rows out of order; they come back in the order of the texts.
    assert body["usage"] == {
        "prompt_tokens": 15,
        "completion_tokens": 0,
        "total_tokens": 15,
        "cost_usd": 0.0015,
        "model": "fake-embed",
        "provider": "fake",
        "estimated": False,
    }
    assert again.json()["cached"] == 2 and again.json()["vectors"] == body["vectors"][:2]
    assert again.json()["usage"]["prompt_tokens"] == 0
    (call,) = fake.calls("/v1/embeddings")
    assert call.body == {"model": "fake-embed", "input": texts}


async def test_provider_embeddings_without_usage_are_estimated(ml_app, fake, tenant) -> None:
    fake.then({"usage": False})
    async with serve_app(ml_app()) as client:
        body = (
            await client.post(
                "/v1/ml/embed", json={"texts": unique("hello world"), "model": "fake-embed"}, headers=tenant
            )
        ).json()
    assert body["usage"]["estimated"] is True and body["usage"]["prompt_tokens"] > 2


async def test_vectors_of_the_wrong_size_are_a_502(ml_app, fake, tenant) -> None:
    fake.then({"dimensions": 4})
    async with serve_app(ml_app()) as client:
        response = await client.post(
            "/v1/ml/embed", json={"texts": unique("x"), "model": "fake-embed"}, headers=tenant
        )
    assert response.status_code == 502
    assert "4-d" in response.json()["detail"]


async def test_embedding_calls_are_retried_like_generation(ml_app, fake, tenant) -> None:
    fake.then({"status": 502}, {"status": 429})
    async with serve_app(ml_app()) as client:
        response = await client.post(
            "/v1/ml/embed", json={"texts": unique("x"), "model": "fake-embed"}, headers=tenant
        )
    assert response.status_code == 200
    assert len(fake.calls("/v1/embeddings")) == 3


async def test_models_lists_provider_models_of_both_kinds(ml_app) -> None:
    async with serve_app(ml_app()) as client:
        items = (await client.get("/v1/ml/models")).json()["items"]
    assert {
        "name": "fake-embed",
        "kind": "embedding",
        "provider": "fake",
        "dimensions": 8,
        "max_tokens": 8191,
    } in items
    assert {
        "name": "fake-chat",
        "kind": "generation",
        "provider": "fake",
        "dimensions": None,
        "max_tokens": None,
    } in items
