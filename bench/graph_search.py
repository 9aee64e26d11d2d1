"""Graph service: extraction throughput (memories merged into the graph per second) and the latency
of `POST /v1/search/graph`.

- The ml, memory and graph apps run in this process's threads (uvicorn on 127.0.0.1) on the
  infrastructure of a local stack (`--state-dir`, `--port-offset`; started when not running), so
  the numbers include HTTP between the services but not the gateway.
- Throughput: N generated memories for one fresh tenant are stored in one batch through the memory
  API; timed from the batch's answer until the graph's inbox holds all N `memory.created` events
  (polled every 50 ms). Each is: read the memory, extract (offline extractor), resolve entities
  (names, then one embedding call), write nodes and edges, outbox `graph.updated`.
- Search: S sequential graph searches naming people of the memories (each links entities, expands
  two hops, calls hybrid search, fuses). p50/p95 over the samples.

Usage (from the repository root):
    .venv/bin/python bench/graph_search.py [--memories 200] [--searches 50]
        [--state-dir .rae-local/bench-graph] [--port-offset 7500] [--json bench/results/graph_search.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from _common import emit_json, log, machine_info, summarize
from _texts import TextFactory

from rae_common.testing import serve_in_thread, settings_from_env
from rae_graph.main import GraphSettings
from rae_graph.main import create_app as create_graph_app
from rae_localstack import Stack
from rae_memory.main import MemorySettings
from rae_memory.main import create_app as create_memory_app
from rae_ml.main import MLSettings
from rae_ml.main import create_app as create_ml_app

_PERSON = re.compile(r"\b([A-Z][a-z]+ [A-Z][a-z]+)\b")


async def measure(
    memory_url: str, graph_url: str, database_url: str, memories: int, searches: int
) -> dict[str, Any]:
    tenant = {"X-Tenant-ID": f"bench-{uuid.uuid4().hex[:8]}"}
    texts = TextFactory(seed=1, session=tenant["X-Tenant-ID"]).memories(memories, tag=tenant["X-Tenant-ID"])
    async with httpx.AsyncClient(timeout=600) as http:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        try:
            response = await http.post(
                memory_url + "/v1/memories/batch",
                json={"items": [{"content": t} for t in texts]},
                headers=tenant,
            )
            response.raise_for_status()
            started = time.perf_counter()
            while True:
                done = await pool.fetchval(
                    "SELECT count(*) FROM graph.inbox WHERE tenant_id = $1 AND event_type = 'memory.created'",
                    tenant["X-Tenant-ID"],
                )
                if done >= memories:
                    break
                await asyncio.sleep(0.05)
            merged_s = time.perf_counter() - started
        finally:
            await pool.close()
        stats = (await http.get(graph_url + "/v1/graph/stats", headers=tenant)).json()
        people = sorted({m for t in texts for m in _PERSON.findall(t)})
        latencies = []
        for i in range(searches):
            query = {"query": f"What do we know about {people[i % len(people)]}?", "k": 10}
            begun = time.perf_counter()
            (await http.post(graph_url + "/v1/search/graph", json=query, headers=tenant)).raise_for_status()
            latencies.append(time.perf_counter() - begun)
    return {
        "memories": memories,
        "extraction": {"seconds": merged_s, "memories_per_s": memories / merged_s},
        "graph": {k: stats[k] for k in ("nodes", "edges", "current_edges")},
        "search": summarize(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=200)
    parser.add_argument("--searches", type=int, default=50)
    parser.add_argument("--state-dir", type=Path, default=Path(".rae-local/bench-graph"))
    parser.add_argument("--port-offset", type=int, default=7500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    stack = Stack(args.state_dir, port_offset=args.port_offset)
    stack.up_infra()
    env = stack.service_env()
    with contextlib.ExitStack() as apps:
        ml_url = apps.enter_context(serve_in_thread(create_ml_app(settings_from_env(env, MLSettings))))
        memory_url = apps.enter_context(
            serve_in_thread(create_memory_app(settings_from_env(env, MemorySettings, ml_url=ml_url)))
        )
        graph_settings = settings_from_env(env, GraphSettings, ml_url=ml_url, memory_url=memory_url)
        graph_url = apps.enter_context(serve_in_thread(create_graph_app(graph_settings)))
        log(f"apps ready; merging {args.memories} memories, then {args.searches} searches")
        result = asyncio.run(
            measure(memory_url, graph_url, env["DATABASE_URL"], args.memories, args.searches)
        )
    document = {"benchmark": "graph_search", "machine": machine_info(), "result": result}
    log(
        f"extraction {result['extraction']['memories_per_s']:.1f} memories/s; "
        f"graph search p50 {result['search']['p50_ms']:.0f} ms, p95 {result['search']['p95_ms']:.0f} ms"
    )
    emit_json(document, args.json)


if __name__ == "__main__":
    main()
