"""The ml service in-process with the real model and a real Redis."""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence

import httpx
import numpy as np
import pytest
import redis.asyncio as aioredis

from rae_common.contracts.erasure import text_digest
from rae_common.contracts.ml import vectors_from_base64
from rae_common.testing import serve_app, settings_from_env
from rae_ml.adapters.sentence_transformer import MINILM
from rae_ml.domain.embeddings import Embedder, ModelRegistry, cache_key
from rae_ml.main import MLSettings, create_app

TENANT = {"X-Tenant-ID": "acme"}
PROBLEM = "application/problem+json"


@pytest.fixture
async def client(infra_env: dict[str, str], models: ModelRegistry) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(create_app(settings_from_env(infra_env, MLSettings), models=models)) as c:
        yield c


@pytest.fixture
async def redis(infra_env: dict[str, str]) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(infra_env["REDIS_URL"])
    yield client
    await client.aclose()


def unique(*texts: str) -> list[str]:
    """Texts no earlier run has cached (the test Redis may be kept between runs)."""
    tag = uuid.uuid4().hex[:8]
    return [f"{text} (ref {tag})" for text in texts]


async def embed(client: httpx.AsyncClient, texts: Sequence[str], **extra: object) -> dict:
    response = await client.post("/v1/ml/embed", json={"texts": list(texts), **extra}, headers=TENANT)
    assert response.status_code == 200, response.text
    return response.json()


async def ready(client: httpx.AsyncClient, deadline_s: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + deadline_s
    response = await client.get("/readyz")
    while response.status_code != 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        response = await client.get("/readyz")
    return response


async def test_vectors_are_384_d_unit_norm_and_the_same_for_the_same_text(client: httpx.AsyncClient) -> None:
    texts = unique("Alice prefers green tea", "The invoice is due on Friday")
    body = await embed(client, [texts[0], texts[1], texts[0]])

    assert body["model"] == "all-MiniLM-L6-v2"
    assert body["dimensions"] == 384
    vectors = np.array(body["vectors"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert body["vectors"][0] == body["vectors"][2]
    assert body["vectors"][0] != body["vectors"][1]
    again = await embed(client, [texts[0]])
    assert again["vectors"][0] == body["vectors"][0]


async def test_base64_vectors_are_the_float32_bytes_of_the_float_vectors(client: httpx.AsyncClient) -> None:
    texts = unique("Bob moved to Lisbon", "The build is green again")
    floats = await embed(client, texts)
    response = await client.post(
        "/v1/ml/embed", json={"texts": texts, "encoding_format": "base64"}, headers=TENANT
    )
    assert response.status_code == 200, response.text
    encoded = response.json()["vectors"]
    assert all(isinstance(v, str) for v in encoded)
    decoded = np.array([np.frombuffer(base64.b64decode(v), dtype="<f4") for v in encoded])
    assert decoded.shape == (2, 384)
    assert np.array_equal(decoded, np.array(floats["vectors"], dtype=np.float32))
    assert vectors_from_base64(encoded) == decoded.tolist()


async def test_similar_sentences_are_closer_than_unrelated_ones(client: httpx.AsyncClient) -> None:
    body = await embed(
        client,
        [
            "A cat is sleeping on the sofa.",
            "A kitten naps on the couch.",
            "Quarterly revenue grew by ten percent.",
        ],
    )
    cat, kitten, revenue = (np.array(v) for v in body["vectors"])
    assert float(cat @ kitten) > float(cat @ revenue) + 0.3


async def test_second_call_is_served_from_the_cache(client: httpx.AsyncClient, redis: aioredis.Redis) -> None:
    texts = unique("Bob lives in Oslo", "Carol drives a red car", "Dave plays the cello")
    first = await embed(client, texts)
    assert first["cached"] == 0
    assert first["usage"]["prompt_tokens"] > 0

    second = await embed(client, texts)
    assert second["cached"] == 3
    assert second["vectors"] == first["vectors"]
    assert second["usage"]["prompt_tokens"] == 0

    key = cache_key("all-MiniLM-L6-v2", texts[0])
    stored = await redis.get(key)
    assert stored is not None and len(stored) == 384 * 4
    ttl = await redis.ttl(key)
    assert 0 < ttl <= MLSettings().embedding_cache_ttl_s


async def test_an_erasure_evicts_the_cached_vectors_of_its_texts(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    texts = unique("Lena is allergic to peanuts", "Lena lives in Hamburg", "Tomasz climbs")
    await embed(client, texts)
    digests = [text_digest(t) for t in texts[:2]]
    evicted = await client.post("/v1/ml/embed/evict", json={"digests": digests}, headers=TENANT)
    assert evicted.status_code == 200, evicted.text
    assert evicted.json() == {"evicted": 2}
    assert await redis.get(cache_key("all-MiniLM-L6-v2", texts[0])) is None
    assert (await embed(client, texts))["cached"] == 1
    again = await client.post(
        "/v1/ml/embed/evict", json={"digests": [text_digest("never seen")]}, headers=TENANT
    )
    assert again.json() == {"evicted": 0}
    for bad in ([], ["not a digest"], [texts[0]]):
        refused = await client.post("/v1/ml/embed/evict", json={"digests": bad}, headers=TENANT)
        assert refused.status_code == 422, bad


async def test_order_is_kept_with_hits_and_misses_mixed(
    client: httpx.AsyncClient, local_embedder: Embedder
) -> None:
    old = unique("The meeting moved to Tuesday", "Paris is the capital of France")
    new = unique("Bananas are rich in potassium", "The server crashed at noon", "Eve learns Rust")
    await embed(client, old)
    texts = [new[0], old[0], new[1], old[1], new[2], old[0]]

    body = await embed(client, texts)

    assert body["cached"] == 3
    expected = np.array(local_embedder.encode(texts))
    got = np.array(body["vectors"])
    similarity = got @ expected.T
    assert list(similarity.argmax(axis=1)) == [0, 1, 2, 3, 4, 1]
    assert np.allclose(got, expected, atol=1e-5)


async def test_usage_counts_the_tokenizers_tokens_truncated_to_the_model_limit(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    texts = ["hello world", "word " * 4000]
    await redis.delete(*(cache_key("all-MiniLM-L6-v2", t) for t in texts))

    body = await embed(client, texts)

    # [CLS] hello world [SEP] = 4; the long text is cut at the model's 256 tokens.
    assert body["usage"] == {
        "prompt_tokens": 260,
        "completion_tokens": 0,
        "total_tokens": 260,
        "cost_usd": 0.0,
        "model": "all-MiniLM-L6-v2",
        "provider": "local",
        "estimated": False,
    }


@pytest.mark.parametrize(
    ("payload", "slug"),
    [
        ({"texts": []}, "validation-error"),
        ({"texts": ["fine", "   "]}, "validation-error"),
        ({"texts": ["ok", ""]}, "validation-error"),
        ({"texts": ["x"] * 2049}, "validation-error"),
        ({"texts": ["x" * 20_001]}, "validation-error"),
        ({"texts": "not a list"}, "validation-error"),
        ({"texts": ["x"], "temperature": 1}, "validation-error"),
        ({"texts": ["x"], "model": "text-embedding-3-large"}, "unknown-model"),
        ({"texts": ["x"], "encoding_format": "int8"}, "validation-error"),
    ],
)
async def test_bad_input_is_a_422_problem(client: httpx.AsyncClient, payload: dict, slug: str) -> None:
    response = await client.post("/v1/ml/embed", json=payload, headers=TENANT)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"].endswith("/" + slug)
    if slug == "unknown-model":
        assert problem["known"] == ["all-MiniLM-L6-v2"]
        assert "all-MiniLM-L6-v2" in problem["detail"]


async def test_limits_are_inclusive(client: httpx.AsyncClient) -> None:
    body = await embed(client, ["y" * 20_000], model="all-MiniLM-L6-v2")
    assert len(body["vectors"]) == 1


async def test_tenant_header_is_required(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/ml/embed", json={"texts": ["x"]})
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"].endswith("/tenant-required")


async def test_models_lists_the_default_models(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/ml/models")
    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {
                "name": "all-MiniLM-L6-v2",
                "kind": "embedding",
                "dimensions": 384,
                "provider": "local",
                "max_tokens": 256,
            },
            {
                "name": "local-extractive",
                "kind": "generation",
                "dimensions": None,
                "provider": "local",
                "max_tokens": None,
            },
        ],
        "default": "all-MiniLM-L6-v2",
        "default_generate": "local-extractive",
    }


async def test_readiness_reports_model_redis_postgres_and_kafka(client: httpx.AsyncClient) -> None:
    response = await ready(client)
    assert response.status_code == 200
    assert response.json()["checks"] == {
        "kafka-topics": "ok",
        "redis": "ok",
        "postgres": "ok",
        "kafka": "ok",
        "model": "ok",
    }


async def test_metrics_count_hits_and_misses_and_time_batches(client: httpx.AsyncClient) -> None:
    texts = unique("metrics one", "metrics two")
    await embed(client, texts)
    await embed(client, texts[:1])

    metrics = (await client.get("/metrics")).text
    assert 'rae_embeddings_total{cache="miss",model="all-MiniLM-L6-v2"} 2.0' in metrics
    assert 'rae_embeddings_total{cache="hit",model="all-MiniLM-L6-v2"} 1.0' in metrics
    assert 'rae_embedding_batch_seconds_count{model="all-MiniLM-L6-v2"} 1.0' in metrics


async def test_large_requests_are_encoded_in_batches(client: httpx.AsyncClient) -> None:
    texts = unique(*(f"note number {i}" for i in range(130)))
    body = await embed(client, texts)
    assert len(body["vectors"]) == 130
    metrics = (await client.get("/metrics")).text
    assert 'rae_embedding_batch_seconds_count{model="all-MiniLM-L6-v2"} 3.0' in metrics


async def test_redis_down_still_answers_and_is_not_ready(
    infra_env: dict[str, str], models: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_from_env(infra_env, MLSettings, redis_url="redis://127.0.0.1:1/0")
    async with serve_app(create_app(settings, models=models)) as client:
        with caplog.at_level(logging.WARNING, logger="rae.ml.embeddings"):
            body = await embed(client, ["cache is down", "still answered"])
        assert body["cached"] == 0
        assert len(body["vectors"]) == 2
        assert "embedding cache unavailable" in caplog.text

        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["down"] == ["redis"]
        assert response.json()["checks"]["model"] == "ok"


async def test_not_ready_while_the_model_loads_and_requests_wait_for_it(
    infra_env: dict[str, str], local_embedder: Embedder
) -> None:
    release = threading.Event()

    def slow_load() -> Embedder:
        release.wait(timeout=30)
        return local_embedder

    registry = ModelRegistry(default=MINILM.name)
    registry.register(MINILM, slow_load)
    async with serve_app(create_app(settings_from_env(infra_env, MLSettings), models=registry)) as client:
        loading = await client.get("/readyz")
        assert loading.status_code == 503
        assert loading.json()["down"] == ["model"]
        pending = asyncio.create_task(client.post("/v1/ml/embed", json={"texts": ["x"]}, headers=TENANT))
        release.set()
        assert (await pending).status_code == 200
        assert (await ready(client)).status_code == 200


async def test_a_model_that_fails_to_load_is_a_503(infra_env: dict[str, str]) -> None:
    def broken() -> Embedder:
        raise OSError("model files missing")

    registry = ModelRegistry(default=MINILM.name)
    registry.register(MINILM, broken)
    async with serve_app(create_app(settings_from_env(infra_env, MLSettings), models=registry)) as client:
        response = await client.post("/v1/ml/embed", json={"texts": ["x"]}, headers=TENANT)
        assert response.status_code == 503
        assert response.json()["type"].endswith("/model-unavailable")
        readiness = (await client.get("/readyz")).json()
        assert "model files missing" in readiness["checks"]["model"]


async def test_the_default_app_loads_the_packaged_model_offline(infra_env: dict[str, str]) -> None:
    async with serve_app(create_app(settings_from_env(infra_env, MLSettings))) as client:
        assert (await ready(client)).status_code == 200
        body = await embed(client, unique("loaded from the pip package"))
        assert body["dimensions"] == 384


def test_an_unknown_default_model_fails_at_start(infra_env: dict[str, str]) -> None:
    with pytest.raises(LookupError, match="all-MiniLM-L6-v2"):
        create_app(settings_from_env(infra_env, MLSettings, embedding_model="no-such-model"))
