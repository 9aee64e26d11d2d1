"""Every call's usage: its `llm.usage` event on `rae.ml.v1`, its span, its price."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
from opentelemetry.trace import SpanKind

from rae_common.events import TOPIC_ML, LlmUsage, registry
from rae_common.testing import read_topic, serve_app, serve_in_thread

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def traced(tenant: dict[str, str]) -> tuple[dict[str, str], str]:
    request_id = f"req-{uuid.uuid4().hex}"
    headers = {**tenant, "X-Request-ID": request_id, "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
    return headers, request_id


def chat(text: str, **extra: object) -> dict:
    return {"messages": [{"role": "user", "content": text}], **extra}


async def test_generate_emits_llm_usage_with_the_request_id_and_trace(
    ml_app, fake, tenant, usage_event
) -> None:
    headers, request_id = traced(tenant)
    async with serve_app(ml_app()) as client:
        response = await client.post("/v1/ml/generate", json=chat("hi", model="fake-chat"), headers=headers)
        assert response.status_code == 200
        assert response.headers["x-request-id"] == request_id
        envelope, record_headers = await usage_event(request_id)

    assert envelope.type == "llm.usage" and envelope.producer == "ml"
    assert envelope.tenant_id == tenant["X-Tenant-ID"]
    assert envelope.idempotency_key.startswith(request_id + ".")
    assert envelope.data == LlmUsage(
        request_id=envelope.idempotency_key,
        operation="generate",
        model="fake-chat",
        provider="fake",
        prompt_tokens=11,
        completion_tokens=7,
        cost_usd=0.0,
        estimated=False,
        trace_id=TRACE_ID,
    )
    # The relay's publish continues the request's trace in the record headers.
    assert record_headers["traceparent"].split("-")[1] == TRACE_ID


async def test_a_reused_request_id_still_counts_every_call(ml_app, tenant, infra_env) -> None:
    headers, request_id = traced(tenant)
    async with serve_app(ml_app()) as client:
        for _ in range(2):
            response = await client.post("/v1/ml/generate", json=chat("hi"), headers=headers)
            assert response.status_code == 200, response.text
        deadline = time.monotonic() + 20
        while True:
            records = await read_topic(infra_env["KAFKA_BOOTSTRAP_SERVERS"], TOPIC_ML, 10**9, timeout_s=1)
            ids = {
                e.data.request_id
                for e in (registry.parse(r.value or b"") for r in records)
                if e.idempotency_key.startswith(request_id + ".")
            }
            if len(ids) == 2 or time.monotonic() > deadline:
                break
    assert len(ids) == 2  # two calls, two usage ids: the cost service counts both


@pytest.mark.parametrize("operation", ["embed", "extract"])
async def test_embed_and_extract_emit_llm_usage_too(ml_app, tenant, usage_event, operation) -> None:
    headers, request_id = traced(tenant)
    body = (
        {"texts": [f"usage of embeddings {uuid.uuid4().hex}"]}
        if operation == "embed"
        else {"text": "Alice Smith works at Acme Corp."}
    )
    # Embedding usage is rolled up by default; one event per call is the window-0 setting.
    async with serve_app(ml_app(usage_rollup_window_s=0)) as client:
        response = await client.post(f"/v1/ml/{operation}", json=body, headers=headers)
        assert response.status_code == 200, response.text
        envelope, _ = await usage_event(request_id)
    usage = response.json()["usage"]
    assert envelope.data.operation == operation
    assert envelope.data.provider == "local"
    assert envelope.data.prompt_tokens == usage["prompt_tokens"] > 0
    assert envelope.data.completion_tokens == 0 and envelope.data.cost_usd == 0.0
    assert envelope.data.trace_id == TRACE_ID


async def test_spans_carry_the_gen_ai_attributes_and_the_cost(ml_app, fake, tenant, spans) -> None:
    overrides = {"fake/fake-chat": {"input_per_1m": 1000.0, "output_per_1m": 2000.0}}
    async with serve_app(ml_app(ml_price_overrides=overrides)) as client:
        response = await client.post(
            "/v1/ml/generate", json=chat("hi", model="fake-chat", max_tokens=64), headers=traced(tenant)[0]
        )
    assert response.json()["usage"]["cost_usd"] == pytest.approx(0.025)  # 11 * 1000 + 7 * 2000 per 1M

    (span,) = [s for s in spans.get_finished_spans() if s.name == "chat fake-chat"]
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "fake-chat"
    assert attributes["gen_ai.system"] == "fake"
    assert attributes["gen_ai.usage.input_tokens"] == 11
    assert attributes["gen_ai.usage.output_tokens"] == 7
    assert attributes["gen_ai.request.max_tokens"] == 64
    assert attributes["rae.cost_usd"] == pytest.approx(0.025)
    assert format(span.context.trace_id, "032x") == TRACE_ID
    # The provider's HTTP call is a child of the model-call span.
    children = [
        s
        for s in spans.get_finished_spans()
        if s.parent is not None and s.parent.span_id == span.context.span_id
    ]
    assert [s.name for s in children if s.kind is SpanKind.CLIENT] == ["POST"]


async def test_an_unpriced_model_costs_nothing_and_is_counted(ml_app, fake, tenant, caplog) -> None:
    async with serve_app(ml_app()) as client:
        for _ in range(2):
            body = (
                await client.post("/v1/ml/generate", json=chat("hi", model="fake-chat"), headers=tenant)
            ).json()
            assert body["usage"]["cost_usd"] == 0.0
        metrics = (await client.get("/metrics")).text
    assert 'rae_ml_unpriced_calls_total{model="fake-chat",provider="fake"} 2.0' in metrics
    assert caplog.text.count("no price for fake/fake-chat") == 1


async def test_a_pricing_file_replaces_the_packaged_one(ml_app, fake, tenant, spans, tmp_path: Path) -> None:
    path = tmp_path / "pricing.json"
    path.write_text(
        json.dumps(
            {
                "version": "test-2027",
                "currency": "USD",
                "prices": {"fake/fake-chat": {"input_per_1m": 100, "output_per_1m": 100}},
            }
        )
    )
    async with serve_app(ml_app(ml_pricing_file=str(path))) as client:
        body = (
            await client.post("/v1/ml/generate", json=chat("hi", model="fake-chat"), headers=tenant)
        ).json()
    assert body["usage"]["cost_usd"] == pytest.approx(0.0018)
    (span,) = [s for s in spans.get_finished_spans() if s.name == "chat fake-chat"]
    assert (span.attributes or {})["rae.pricing.version"] == "test-2027"


async def test_a_client_that_leaves_mid_stream_is_charged_for_what_was_generated(
    ml_settings, models, fake, tenant, usage_event
) -> None:
    from rae_ml.main import create_app

    words = " ".join(f"w{i}" for i in range(20))
    fake.then({"content": words, "stall_after": 3, "usage": False})
    request_id = f"req-{uuid.uuid4().hex}"
    with serve_in_thread(create_app(ml_settings(), models=models)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            async with client.stream(
                "POST",
                "/v1/ml/generate",
                json=chat("go", model="fake-chat", stream=True),
                headers={**tenant, "X-Request-ID": request_id},
            ) as response:
                received = ""
                deadline = time.monotonic() + 10
                async for chunk in response.aiter_text():
                    received += chunk
                    if received.count("event: delta") >= 3 or time.monotonic() > deadline:
                        break
        # The client hung up while the provider is still holding the rest back.
        envelope, _ = await usage_event(request_id)

    assert received.count("event: delta") == 3
    assert envelope.data.estimated is True
    assert envelope.data.completion_tokens == 3 * 2  # "w0 w1 w2": each "w", "##N"
    assert envelope.data.prompt_tokens == 1
