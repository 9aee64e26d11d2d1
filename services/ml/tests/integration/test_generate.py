"""POST /v1/ml/generate against the offline provider and a real OpenAI-compatible HTTP server."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest

from rae_common.contracts.ml import LOCAL_NOTICE
from rae_common.testing import serve_app

PROBLEM = "application/problem+json"
REPORT = (
    "The quarterly review covered the Berlin office. "
    "Revenue in the Berlin office grew by twelve percent, and the Berlin team hired four engineers. "
    "The coffee machine was repaired on Tuesday. "
    "Customer churn in the Berlin office fell while revenue grew."
)


def chat(text: str, **extra: object) -> dict:
    return {"messages": [{"role": "user", "content": text}], **extra}


async def generate(client: httpx.AsyncClient, tenant: dict, body: dict, status: int = 200) -> dict:
    response = await client.post("/v1/ml/generate", json=body, headers=tenant)
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.headers["content-type"] == PROBLEM
    return response.json()


async def test_local_generation_selects_sentences_and_says_it_is_no_llm(ml_app, tenant) -> None:
    async with serve_app(ml_app()) as client:
        body = await generate(client, tenant, chat(REPORT, max_tokens=64))
        again = await generate(client, tenant, chat(REPORT, max_tokens=64))

    assert body["model"] == "local-extractive" and body["provider"] == "local"
    assert body["notice"] == LOCAL_NOTICE
    assert body["content"].startswith("Revenue in the Berlin office grew by twelve percent")
    assert body["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["provider"] == "local" and usage["model"] == "local-extractive"
    assert usage["cost_usd"] == 0.0 and usage["estimated"] is False
    assert usage["prompt_tokens"] > usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert again["content"] == body["content"]


async def test_local_generation_respects_max_tokens(ml_app, tenant) -> None:
    async with serve_app(ml_app()) as client:
        body = await generate(client, tenant, chat(REPORT, max_tokens=5))
    assert body["finish_reason"] == "length"
    assert 0 < body["usage"]["completion_tokens"] <= 5


async def test_openai_generation_reports_the_providers_own_counts(ml_app, fake, tenant) -> None:
    async with serve_app(ml_app()) as client:
        body = await generate(
            client, tenant, chat("Hello there", model="fake-chat", max_tokens=50, temperature=0.2)
        )

    assert body["content"] == "Echo: Hello there"
    assert (body["model"], body["provider"], body["notice"]) == ("fake-chat", "fake", None)
    assert body["usage"]["prompt_tokens"] == 11 and body["usage"]["completion_tokens"] == 7
    assert body["usage"]["estimated"] is False
    (call,) = fake.calls()
    assert call.headers["authorization"] == "Bearer sk-test-key"
    assert call.body["model"] == "fake-chat" and call.body["max_tokens"] == 50
    assert call.body["temperature"] == 0.2
    assert call.body["messages"] == [{"role": "user", "content": "Hello there"}]
    assert "traceparent" in call.headers


async def test_counts_a_provider_does_not_report_are_estimated(ml_app, fake, tenant) -> None:
    fake.then({"usage": False, "content": "Paris is the capital of France."})
    async with serve_app(ml_app()) as client:
        body = await generate(client, tenant, chat("What is the capital of France?", model="fake/fake-chat"))
    usage = body["usage"]
    assert usage["estimated"] is True
    # MiniLM's WordPiece: "paris is the capital of france ." = 7 tokens.
    assert usage["completion_tokens"] == 7
    assert usage["prompt_tokens"] == 7


async def test_the_default_generation_model_comes_from_settings(ml_app, fake, tenant) -> None:
    async with serve_app(ml_app(ml_default_generate_model="fake-chat")) as client:
        body = await generate(client, tenant, chat("hi"))
    assert body["provider"] == "fake"
    assert len(fake.calls()) == 1


PERSON = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "age"],
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
}


async def test_structured_output_from_the_provider_is_parsed_and_validated(ml_app, fake, tenant) -> None:
    fake.then({"content": '{"name": "Ada", "age": 36}'})
    async with serve_app(ml_app()) as client:
        body = await generate(client, tenant, chat("Ada is 36.", model="fake-chat", json_schema=PERSON))

    assert body["output"] == {"name": "Ada", "age": 36}
    assert json.loads(body["content"]) == body["output"]
    response_format = fake.calls()[0].body["response_format"]
    assert response_format == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": PERSON, "strict": True},
    }


@pytest.mark.parametrize("content", ['{"name": "Ada", "age": -1}', '{"name": "Ada"}', "Ada is 36", "[]"])
async def test_invalid_structured_output_is_a_502_and_still_metered(ml_app, fake, tenant, content) -> None:
    fake.then({"content": content})
    async with serve_app(ml_app()) as client:
        problem = await generate(client, tenant, chat("Ada?", model="fake-chat", json_schema=PERSON), 502)
        metrics = (await client.get("/metrics")).text
    assert problem["type"].endswith("/invalid-structured-output")
    assert len(fake.calls()) == 1  # the answer is wrong, not the provider down: no retry
    assert 'rae_ml_tokens_total{direction="completion",model="fake-chat",provider="fake"} 7.0' in metrics


async def test_local_structured_output_is_built_from_the_input(ml_app, tenant) -> None:
    schema = {
        "type": "object",
        "required": ["title", "tasks", "done"],
        "properties": {
            "title": {"type": "string"},
            "tasks": {"type": "array", "items": {"type": "string"}},
            "done": {"type": "boolean"},
        },
    }
    text = "Launch checklist for the Oslo store.\n- Hire staff\n- Stock shelves\n- Open doors"
    async with serve_app(ml_app()) as client:
        body = await generate(client, tenant, chat(text, json_schema=schema))
    assert body["output"]["tasks"] == ["Hire staff", "Stock shelves", "Open doors"]
    assert body["output"]["done"] is False and isinstance(body["output"]["title"], str)
    assert body["notice"] == LOCAL_NOTICE


@pytest.mark.parametrize(
    ("schema", "slug"),
    [
        ({"type": "strang"}, "invalid-schema"),
        ({"$ref": "https://schemas.example/person.json"}, "invalid-schema"),
        ({"type": "string", "pattern": "^[0-9]{6}$"}, "unsupported-schema"),
    ],
)
async def test_a_bad_schema_is_a_422(ml_app, fake, tenant, schema, slug) -> None:
    async with serve_app(ml_app()) as client:
        problem = await generate(client, tenant, chat("Anything at all.", json_schema=schema), 422)
    assert problem["type"].endswith("/" + slug)
    assert fake.calls() == []


@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"messages": [{"role": "wizard", "content": "hi"}]},
        {"messages": [{"role": "user", "content": ""}]},
        {"messages": [{"role": "user", "content": "   "}]},
        {"messages": [{"role": "user"}]},
        {"messages": [{"role": "user", "content": "hi", "name": "x"}]},
        {"messages": [{"role": "assistant", "content": "only me"}]},
        {"messages": "hello"},
        {"messages": [{"role": "user", "content": "hi"}] * 201},
        {"messages": [{"role": "user", "content": "x" * 100_001}]},
        chat("hi", max_tokens=0),
        chat("hi", max_tokens=32_769),
        chat("hi", temperature=2.5),
        chat("hi", stream=True, json_schema={"type": "object"}),
        chat("hi", top_k=3),
    ],
)
async def test_malformed_requests_are_422_problems(ml_app, fake, tenant, body) -> None:
    async with serve_app(ml_app()) as client:
        problem = await generate(client, tenant, body, 422)
    assert problem["type"].endswith("/validation-error")
    assert fake.calls() == []


async def test_an_unknown_model_is_a_422_listing_the_known_ones(ml_app, tenant) -> None:
    async with serve_app(ml_app()) as client:
        problem = await generate(client, tenant, chat("hi", model="gpt-9"), 422)
    assert problem["type"].endswith("/unknown-model")
    assert problem["known"] == ["local/local-extractive", "fake/fake-chat"]


async def test_a_model_two_providers_offer_needs_its_provider(ml_app, fake, tenant) -> None:
    providers = [fake.provider("fake", ("dup",)), fake.provider("other", ("dup",))]
    async with serve_app(ml_app(ml_providers=providers)) as client:
        problem = await generate(client, tenant, chat("hi", model="dup"), 422)
        chosen = await generate(client, tenant, chat("hi", model="other/dup"))
    assert problem["type"].endswith("/ambiguous-model")
    assert problem["candidates"] == ["fake/dup", "other/dup"]
    assert chosen["provider"] == "other"


async def test_the_tenant_header_is_required(ml_app) -> None:
    async with serve_app(ml_app()) as client:
        response = await client.post("/v1/ml/generate", json=chat("hi"))
    assert response.status_code == 400
    assert response.json()["type"].endswith("/tenant-required")


# --- streaming -----------------------------------------------------------------------------------


async def test_local_streaming_sends_sentences_then_done_with_usage_and_notice(
    ml_app, tenant, parse_sse
) -> None:
    async with serve_app(ml_app()) as client:
        plain = await generate(client, tenant, chat(REPORT))
        response = await client.post("/v1/ml/generate", json=chat(REPORT, stream=True), headers=tenant)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    deltas = [data["content"] for name, data in events if name == "delta"]
    assert len(deltas) >= 2
    assert "".join(deltas) == plain["content"]
    name, done = events[-1]
    assert name == "done"
    assert done["notice"] == LOCAL_NOTICE
    assert done["usage"] == plain["usage"]
    assert (done["model"], done["provider"], done["finish_reason"]) == ("local-extractive", "local", "stop")


async def test_provider_streaming_passes_deltas_and_the_providers_usage(
    ml_app, fake, tenant, parse_sse
) -> None:
    fake.then({"content": "one two three four"})
    async with serve_app(ml_app()) as client:
        response = await client.post(
            "/v1/ml/generate", json=chat("count", model="fake-chat", stream=True), headers=tenant
        )
    events = parse_sse(response.text)
    assert [data["content"] for name, data in events if name == "delta"] == ["one", " two", " three", " four"]
    name, done = events[-1]
    assert name == "done" and done["notice"] is None
    assert done["usage"]["prompt_tokens"] == 11 and done["usage"]["estimated"] is False
    assert done["finish_reason"] == "stop"
    sent = fake.calls()[0].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_a_stream_without_provider_usage_is_estimated(ml_app, fake, tenant, parse_sse) -> None:
    fake.then({"content": "alpha beta gamma", "usage": False})
    async with serve_app(ml_app()) as client:
        response = await client.post(
            "/v1/ml/generate", json=chat("letters", model="fake-chat", stream=True), headers=tenant
        )
    name, done = parse_sse(response.text)[-1]
    assert name == "done"
    assert done["usage"]["estimated"] is True
    assert done["usage"]["completion_tokens"] == 3
    assert done["usage"]["prompt_tokens"] == 1


async def test_a_failed_stream_start_is_a_problem_not_a_stream(ml_app, fake, tenant) -> None:
    fake.then({"status": 500}, {"status": 500})
    async with serve_app(ml_app(ml_provider_max_retries=1)) as client:
        response = await client.post(
            "/v1/ml/generate", json=chat("hi", model="fake-chat", stream=True), headers=tenant
        )
    assert response.status_code == 502
    assert response.json()["type"].endswith("/provider-error")


async def test_a_provider_stalling_mid_stream_ends_it_with_an_error_event(
    ml_app, fake, tenant, parse_sse
) -> None:
    fake.then({"content": "one two three four", "stall_after": 2})
    async with serve_app(ml_app(ml_provider_timeout_s=0.3)) as client:
        response = await client.post(
            "/v1/ml/generate", json=chat("count", model="fake-chat", stream=True), headers=tenant
        )
    events = parse_sse(response.text)
    assert [name for name, _ in events] == ["delta", "delta", "error"]
    error = events[-1][1]
    assert error["type"].endswith("/provider-timeout") and error["status"] == 504
    assert error["usage"]["completion_tokens"] == 2 and error["usage"]["estimated"] is True


# --- retries, breaker, timeouts --------------------------------------------------------------


async def test_429_and_5xx_are_retried_honouring_retry_after(ml_app, fake, tenant) -> None:
    fake.then({"status": 429, "retry_after": "1"}, {"status": 503})
    async with serve_app(ml_app()) as client:
        body = await generate(client, tenant, chat("hi", model="fake-chat"))
        metrics = (await client.get("/metrics")).text

    assert body["content"] == "Echo: hi"
    first, second, third = fake.calls()
    assert second.at - first.at >= 1.0  # the provider asked for a second
    assert third.at > second.at
    assert 'rae_ml_provider_retries_total{provider="fake"} 2.0' in metrics
    assert 'rae_ml_provider_requests_total{outcome="rate_limited",provider="fake"} 1.0' in metrics
    assert 'rae_ml_provider_requests_total{outcome="server_error",provider="fake"} 1.0' in metrics
    assert 'rae_ml_provider_requests_total{outcome="ok",provider="fake"} 1.0' in metrics


async def test_exhausted_retries_are_a_502(ml_app, fake, tenant) -> None:
    fake.then(*({"status": 500} for _ in range(3)))
    async with serve_app(ml_app(ml_provider_max_retries=2)) as client:
        problem = await generate(client, tenant, chat("hi", model="fake-chat"), 502)
    assert problem["type"].endswith("/provider-error")
    assert "after 3 attempts" in problem["detail"]
    assert len(fake.calls()) == 3


async def test_a_retry_after_beyond_the_backoff_cap_is_not_waited_for(ml_app, fake, tenant) -> None:
    fake.then({"status": 429, "retry_after": "120"})
    async with serve_app(ml_app()) as client:
        response = await client.post("/v1/ml/generate", json=chat("hi", model="fake-chat"), headers=tenant)
    assert response.status_code == 502
    assert response.headers["retry-after"] == "120"
    assert len(fake.calls()) == 1


@pytest.mark.parametrize("action", ["bad_request", "bad_json"])
async def test_a_refusal_or_an_unreadable_answer_is_a_502_without_retry(ml_app, fake, tenant, action) -> None:
    fake.then({"status": 400} if action == "bad_request" else {"bad_json": True})
    async with serve_app(ml_app()) as client:
        problem = await generate(client, tenant, chat("hi", model="fake-chat"), 502)
    assert problem["type"].endswith("/provider-error")
    assert len(fake.calls()) == 1
    if action == "bad_request":
        assert "scripted failure 400" in problem["detail"]


async def test_a_provider_that_hangs_is_a_504_after_retries(ml_app, fake, tenant) -> None:
    fake.then({"hang": True}, {"hang": True})
    app = ml_app(ml_provider_timeout_s=0.3, ml_provider_max_retries=1)
    async with serve_app(app) as client:
        problem = await generate(client, tenant, chat("hi", model="fake-chat"), 504)
        metrics = (await client.get("/metrics")).text
    assert problem["type"].endswith("/provider-timeout")
    assert len(fake.calls()) == 2
    assert 'rae_ml_provider_requests_total{outcome="timeout",provider="fake"} 2.0' in metrics


async def test_an_unreachable_provider_is_a_502_after_retries(ml_app, fake, tenant) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    gone = {**fake.provider("gone", ("gone-chat",)), "base_url": f"http://127.0.0.1:{closed_port}/v1"}
    async with serve_app(ml_app(ml_providers=[gone], ml_provider_max_retries=1)) as client:
        problem = await generate(client, tenant, chat("hi", model="gone-chat"), 502)
        metrics = (await client.get("/metrics")).text
    assert problem["type"].endswith("/provider-error")
    assert "connection failed" in problem["detail"]
    assert 'rae_ml_provider_requests_total{outcome="transport_error",provider="gone"} 2.0' in metrics


async def test_the_breaker_opens_answers_503_then_half_opens_for_one_trial(ml_app, fake, tenant) -> None:
    fake.then({"status": 500}, {"status": 500})
    app = ml_app(ml_provider_max_retries=0, ml_breaker_failures=2, ml_breaker_reset_s=1.0)
    async with serve_app(app) as client:
        for _ in range(2):
            await generate(client, tenant, chat("hi", model="fake-chat"), 502)
        refused = await client.post("/v1/ml/generate", json=chat("hi", model="fake-chat"), headers=tenant)
        assert refused.status_code == 503
        assert refused.json()["type"].endswith("/provider-unavailable")
        assert refused.headers["retry-after"] == "1"
        assert len(fake.calls()) == 2  # refused without trying
        assert 'rae_ml_breaker_state{provider="fake"} 2.0' in (await client.get("/metrics")).text

        # Half-open after the reset period: one trial goes through; its failure re-opens.
        fake.then({"status": 500})
        trial = await _first_not_refused(client, tenant)
        assert trial.status_code == 502
        assert len(fake.calls()) == 3
        again = await client.post("/v1/ml/generate", json=chat("hi", model="fake-chat"), headers=tenant)
        assert again.status_code == 503

        # The next trial succeeds and closes the breaker.
        closed = await _first_not_refused(client, tenant)
        assert closed.status_code == 200
        assert (await generate(client, tenant, chat("hi", model="fake-chat")))["content"] == "Echo: hi"
        assert 'rae_ml_breaker_state{provider="fake"} 0.0' in (await client.get("/metrics")).text


async def _first_not_refused(
    client: httpx.AsyncClient, tenant: dict, deadline_s: float = 10.0
) -> httpx.Response:
    deadline = time.monotonic() + deadline_s
    while True:
        response = await client.post("/v1/ml/generate", json=chat("hi", model="fake-chat"), headers=tenant)
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.05)
