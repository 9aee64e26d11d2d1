"""Ambiguous entity resolution goes to an LLM judge (a real OpenAI-compatible HTTP server started
by the test, behind the real ml service) when GRAPH_JUDGE_MODEL is set, and becomes a new node
when it is not (that case: `pick_similar` and the service's guard, unit-tested)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from rae_common.testing import (
    LoopbackHTTPServer,
    QuietHandler,
    eventually,
    serve_app,
    serve_in_thread,
    settings_from_env,
)
from rae_graph.main import GraphSettings, create_app
from rae_ml.domain.embeddings import ModelRegistry
from rae_ml.main import MLSettings
from rae_ml.main import create_app as create_ml_app

from .conftest import call

CAROL = {"text": "Carol Diaz works at Acme Labs.", "store": True}


class Judge:
    """Answers every chat completion with `{"match": <answer>}` and keeps the questions."""

    def __init__(self) -> None:
        self.answer: int | None = 1
        self.questions: list[dict[str, Any]] = []
        judge = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
                judge.questions.append(body)
                answer = judge.answer
                payload = json.dumps(
                    {
                        "id": "judge-1",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": json.dumps({"match": answer})},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 60, "completion_tokens": 4, "total_tokens": 64},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.http = LoopbackHTTPServer(Handler)


@pytest.fixture(scope="module")
def judge() -> Iterator[Judge]:
    server = Judge()
    server.http.start()
    yield server
    server.http.stop()


@pytest.fixture(scope="module")
def judged_ml_url(infra_env: dict[str, str], models: ModelRegistry, judge: Judge) -> Iterator[str]:
    provider = {"name": "judges", "base_url": judge.http.url + "/v1", "models": ["entity-judge"]}
    settings = settings_from_env(infra_env, MLSettings, ml_providers=[provider])
    with serve_in_thread(create_ml_app(settings, models=models)) as url:
        yield url


@contextlib.asynccontextmanager
async def graph_app(
    infra_env: dict[str, str], ml_url: str, memory_url: str, **tuning: Any
) -> AsyncIterator[httpx.AsyncClient]:
    # all-MiniLM-L6-v2 cosines: "Acme Labs Paris" ~ "Acme Labs Berlin" 0.831 (two nodes at this
    # threshold); "Acme Labs" ~ them 0.865 and 0.841, within the margin of each other: ambiguous.
    settings = settings_from_env(
        infra_env,
        GraphSettings,
        ml_url=ml_url,
        memory_url=memory_url,
        graph_similarity_threshold=0.836,
        graph_similarity_margin=0.05,
        **tuning,
    )
    async with serve_app(create_app(settings)) as client:
        # Ready = the consumer has joined its group: stopping a member mid-join stalls the broker's
        # rebalance for the next one.
        await eventually(lambda: _ready(client), what="the graph service ready")
        yield client


async def _ready(client: httpx.AsyncClient) -> bool | None:
    return True if (await client.get("/readyz")).status_code == 200 else None


async def seed(client: httpx.AsyncClient, tenant: dict[str, str]) -> None:
    """Two organisations with similar names, as two nodes."""
    for text in ("Alice Smith works at Acme Labs Paris.", "Bob Jones works at Acme Labs Berlin."):
        await call(client, "POST", "/v1/graph/extract", tenant, json={"text": text, "store": True})
    orgs = await call(client, "GET", "/v1/graph/nodes", tenant, params={"type": "organization"})
    assert {n["name"] for n in orgs["items"]} == {"Acme Labs Paris", "Acme Labs Berlin"}


@pytest.fixture(scope="module")
async def judged_graph(
    infra_env: dict[str, str], judged_ml_url: str, memory_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with graph_app(infra_env, judged_ml_url, memory_url, graph_judge_model="judges/entity-judge") as c:
        yield c


async def test_the_judge_settles_an_ambiguous_mention(
    judged_graph: httpx.AsyncClient, judge: Judge, tenant: dict[str, str]
) -> None:
    await seed(judged_graph, tenant)
    judge.questions.clear()

    stored = await call(judged_graph, "POST", "/v1/graph/extract", tenant, json=CAROL)
    assert len(judge.questions) == 1
    question = judge.questions[0]
    assert question["model"] == "entity-judge"
    assert question["response_format"]["type"] == "json_schema"
    listed = question["messages"][-1]["content"]
    assert "Mention: Acme Labs (organization)" in listed and "Carol Diaz works at Acme Labs." in listed
    chosen = "Acme Labs Paris" if "1: Acme Labs Paris" in listed else "Acme Labs Berlin"
    # The judge answered 1: the mention joined that node instead of becoming a third one.
    assert stored["stored"]["nodes_merged"] >= 1
    after = await call(judged_graph, "GET", "/v1/graph/nodes", tenant, params={"type": "organization"})
    by_name = {n["name"]: n for n in after["items"]}
    assert set(by_name) == {"Acme Labs Paris", "Acme Labs Berlin"}
    assert "Acme Labs" in by_name[chosen]["aliases"]


async def test_a_judge_that_cannot_tell_leaves_a_new_node(
    judged_graph: httpx.AsyncClient, judge: Judge, tenant: dict[str, str]
) -> None:
    await seed(judged_graph, tenant)
    judge.answer = None
    try:
        await call(judged_graph, "POST", "/v1/graph/extract", tenant, json=CAROL)
    finally:
        judge.answer = 1
    after = await call(judged_graph, "GET", "/v1/graph/nodes", tenant, params={"type": "organization"})
    assert {n["name"] for n in after["items"]} == {"Acme Labs Paris", "Acme Labs Berlin", "Acme Labs"}
