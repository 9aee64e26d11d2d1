"""Hybrid search latency p50/p95/p99 through the gateway at 10k and 100k memories in one tenant,
with other tenants' data present, query embedding included. Target: p95 <= 50 ms at 100k on
2 cores (mem0 reports 200 ms p95 search, Zep 155 ms).

Seeding (reported separately, NOT through the API: 100k memories through the API would take
~30 min of embedding on 2 cores): a pool of distinct template sentences is embedded with the real
model (the ml service's loader, in this process); each seeded memory is a pool sentence plus a
distinguishing detail (date, name, ticket: distinct content hashes, realistic full-text tokens)
and its vector is that sentence's vector plus small Gaussian noise, re-normalised. Rows go in with
the memory service's own `MemoryRepository.insert_many` (the same SQL) in chunks, one
row-level-security tenant transaction each; no outbox events are written for them. Other tenants
get ~30k rows before the first measurement. `VACUUM (ANALYZE)` of every table of the `memory`
schema runs after each seeding step (`--no-settle`: `ANALYZE` only), so the measurement sees
the steady state of memories stored over time, not autovacuum working through a bulk load.

Measurement, per size and run: fresh questions (cold embedding cache: each is new), then the same
questions again (warm cache), sequential single-client `POST /v1/search/hybrid {"query", "k": 10}`
on a keep-alive connection; then `POST /v1/ml/embed` of single questions (cold, warm) through
the gateway as the embedding part's baseline. The services' own metrics split the time into
gateway / memory / ml / model; the memory service's SQL (vector rows, full-text rows) is timed
in-process with its own adapter code, EXPLAIN ANALYZE shows the plans, and the same vector
statement with index scans off gives the HNSW index's recall against an exact scan. Before each search
pass the script waits (up to 60 s) for a nearly idle machine and records the cores used meanwhile
by anything outside the benchmark and the stack (noise from other work on a shared machine).

Usage (from the repository root):
    .venv/bin/python bench/search_latency.py --runs 3 [--sizes 10000,100000]
        [--json bench/results/search_latency.json] [--write-docs] [--keep]
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import numpy as np
from _common import (
    CpuSample,
    Gateway,
    ServiceMetrics,
    base_parser,
    bench_stack,
    emit_json,
    fmt,
    format_table,
    load_average,
    log,
    machine_info,
    median,
    stack_pids,
    summarize,
    update_docs,
    wait_quiet,
)
from _texts import TextFactory

from rae_common.db import create_pool, tenant_tx
from rae_memory.adapters.repository import MemoryRepository, NewMemory
from rae_memory.adapters.sql import Filters, register_vector_codec
from rae_memory.adapters.vectors import PgVectorIndex
from rae_memory.domain.model import content_hash

TARGET_P95_MS = 50.0
TAGS = ("work", "personal", "project", "preference", "decision", "meeting", "travel", "food")
K = 10


# ------------------------------------------------------------------------------------- seeding


class Seeder:
    """Writes synthetic memories (pool sentence + detail, pool vector + noise) into Postgres."""

    def __init__(
        self,
        dsn: str,
        factory: TextFactory,
        pool_sentences: Sequence[str],
        pool_vectors: np.ndarray,
        noise: float,
        chunk: int,
        seed: int,
        settle: bool = True,
    ) -> None:
        self.dsn = dsn
        self.settle = settle
        self.factory = factory
        self.pool_sentences = pool_sentences
        self.pool_vectors = pool_vectors
        self.noise = noise
        self.chunk = chunk
        self.rng = np.random.default_rng(seed)
        self.rand = random.Random(seed)
        self.repo = MemoryRepository()
        self.model = "all-MiniLM-L6-v2"

    def _rows(self, n: int) -> tuple[list[NewMemory], list[list[float]]]:
        idx = self.rng.integers(0, len(self.pool_sentences), n)
        vectors = self.pool_vectors[idx] + self.rng.normal(0.0, self.noise, (n, self.pool_vectors.shape[1]))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        items = []
        for i in idx:
            content = self.factory.detail_for(self.pool_sentences[i])
            items.append(
                NewMemory(
                    content=content,
                    layer="semantic" if self.rand.random() < 0.15 else "episodic",
                    tags=sorted(self.rand.sample(TAGS, self.rand.randint(0, 2))),
                    metadata={"source": "bench-seed"},
                    source="bench",
                    subject=None,
                    importance=round(self.rand.uniform(0.1, 0.9), 2),
                    content_hash=content_hash(content),
                    expires_at=None,
                )
            )
        return items, vectors.astype(np.float32).tolist()

    async def seed(self, tenant_id: str, n: int) -> dict[str, Any]:
        generate_s = insert_s = 0.0
        inserted = 0
        conn = await asyncpg.connect(self.dsn)
        await register_vector_codec(conn)
        try:
            for start in range(0, n, self.chunk):
                t0 = time.perf_counter()
                items, vectors = self._rows(min(self.chunk, n - start))
                t1 = time.perf_counter()
                async with conn.transaction():
                    await conn.execute("SELECT set_config('rae.tenant_id', $1, true)", tenant_id)
                    rows = await self.repo.insert_many(conn, tenant_id, items, vectors, self.model)
                t2 = time.perf_counter()
                generate_s += t1 - t0
                insert_s += t2 - t1
                inserted += len(rows)
            # Fresh planner statistics for every table of the schema (memories and any projection
            # the service keeps, e.g. its lexical index), as autovacuum would gather soon after.
            # With `settle`, a VACUUM too: the bulk load is a shortcut of the benchmark, and a
            # tenant that got its memories over time through the API has had them vacuumed
            # (visibility map, hint bits, GIN pending list) long before; otherwise autovacuum
            # works through them while the first passes are measured. (A CHECKPOINT would belong
            # here too, but the application role may not run one.)
            t0 = time.perf_counter()
            command = "VACUUM (ANALYZE)" if self.settle else "ANALYZE"
            for table in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'memory'"):
                await conn.execute(f'{command} memory."{table["tablename"]}"')
            analyze_s = time.perf_counter() - t0
        finally:
            await conn.close()
        log(f"seeded {inserted} rows into {tenant_id}: generate {generate_s:.1f} s, insert {insert_s:.1f} s")
        return {
            "tenant": tenant_id,
            "rows": inserted,
            "generate_s": generate_s,
            "insert_s": insert_s,
            "analyze_s": analyze_s,
            "insert_rows_per_s": inserted / insert_s if insert_s else math.nan,
        }


async def table_facts(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            """SELECT c.reltuples::bigint AS estimated_rows_all_tenants,
                      pg_total_relation_size(c.oid) AS total_bytes,
                      pg_relation_size(to_regclass('memory.memories_embedding_hnsw_idx')) AS hnsw_bytes,
                      pg_total_relation_size(to_regclass('memory.lexical_index')) AS lexical_index_bytes,
                      current_setting('shared_buffers') AS shared_buffers,
                      current_setting('work_mem') AS work_mem,
                      current_setting('max_parallel_workers_per_gather') AS max_parallel_workers_per_gather,
                      current_setting('jit') AS jit,
                      version() AS version,
                      (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector
               FROM pg_class c WHERE c.oid = 'memory.memories'::regclass"""
        )
        return dict(row) if row is not None else {}
    finally:
        await conn.close()


# --------------------------------------------------------------------------------- measurement


def search_pass(gateway: Gateway, queries: Sequence[str], max_seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[dict[str, Any]] = []
    started = time.perf_counter()
    for q in queries:
        if time.perf_counter() - started > max_seconds:
            errors.append({"error": f"stopped after {max_seconds} s (time bound)"})
            break
        r = gateway.post("/v1/search/hybrid", {"query": q, "k": K})
        latencies.append(r.seconds)
        results = r.body.get("results") if isinstance(r.body, dict) else None
        if r.status != 200 or not isinstance(results, list) or len(results) != K:
            errors.append({"status": r.status, "results": len(results or []), "body": str(r.body)[:300]})
    return {**summarize(latencies), "errors": len(errors), "error_samples": errors[:3]}


def embed_pass(gateway: Gateway, queries: Sequence[str]) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    for q in queries:
        r = gateway.post("/v1/ml/embed", {"texts": [q]})
        latencies.append(r.seconds)
        errors += r.status != 200
    return {**summarize(latencies), "errors": errors}


def service_split(spent: dict[str, dict[str, float]]) -> dict[str, float]:
    return {
        "gateway_mean_ms": spent["gateway"]["mean_ms"],
        "memory_mean_ms": spent["memory"]["mean_ms"],
        "ml_embed_mean_ms": spent["ml_embed"]["mean_ms"],
        "model_encode_mean_ms": spent["model"]["mean_ms"],
        "model_batches": spent["model"]["count"],
        "embedding_cache_hits": spent["cache_hits"]["sum"],
    }


def _shorten(plan: str) -> str:
    """Plans without the 384 floats of the query vector and the candidate id lists."""
    plan = re.sub(r"'\{[-0-9.e,]+\}'::real\[\]", "'{query vector}'::real[]", plan)
    return re.sub(r"'\{[0-9a-f,-]+\}'::uuid\[\]", "'{candidate ids}'::uuid[]", plan)


class CaptureConn:
    """Wraps a connection: `fetch` also runs EXPLAIN (ANALYZE, BUFFERS) of the same statement."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.plans: list[str] = []

    async def execute(self, sql: str, *args: Any) -> Any:
        return await self.conn.execute(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self.conn.fetchval(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> Any:
        plan = await self.conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
        self.plans.append(_shorten("\n".join(r[0] for r in plan)))
        return await self.conn.fetch(sql, *args)


async def sql_breakdown(
    dsn: str, tenant_id: str, queries: Sequence[str], vectors: Sequence[Sequence[float]]
) -> dict[str, Any]:
    """The memory service's two search statements, each in its own tenant transaction, timed
    with its own adapter code (same pool set-up): the nearest rows (HNSW settings included) and
    the full-text candidates with their rows; plus EXPLAIN ANALYZE of each for the first query.
    (The service runs full text and the vector transaction's set-up while the query is embedded,
    then the vector statement.) And the HNSW index's recall: the same vector statement with index
    scans off is an exact scan; recall@n is the share of the exact n nearest that the index's n
    nearest hold, for n = K and the candidate limit."""
    index, repo = PgVectorIndex(), MemoryRepository()
    limit = max(50, 4 * K)  # MemoryService defaults: min_candidates=50, candidates_per_k=4
    times: dict[str, list[float]] = {"vector": [], "lexical": []}
    candidates: dict[str, list[int]] = {"vector": [], "lexical": []}
    recall: dict[int, list[float]] = {K: [], limit: []}
    pool = await create_pool(dsn, min_size=1, max_size=1, setup=register_vector_codec)

    async def both(conn: Any, q: str, v: Sequence[float]) -> tuple[float, float, int, int]:
        t0 = time.perf_counter()
        await index.prepare(conn, limit)
        nearest = await index.search(conn, tenant_id, v, limit, Filters())
        t1 = time.perf_counter()
        words = await repo.lexical(conn, tenant_id, q, limit, Filters())
        return t1 - t0, time.perf_counter() - t1, len(nearest.ids), len(words)

    try:
        for q, v in zip(queries, vectors, strict=True):
            async with tenant_tx(pool, tenant_id) as conn:
                vector_s, lexical_s, n_vector, n_lexical = await both(conn, q, v)
            times["vector"].append(vector_s)
            times["lexical"].append(lexical_s)
            candidates["vector"].append(n_vector)
            candidates["lexical"].append(n_lexical)
            async with tenant_tx(pool, tenant_id) as conn:
                await index.prepare(conn, limit)
                found = (await index.search(conn, tenant_id, v, limit, Filters())).ids
                await conn.execute("SET LOCAL enable_indexscan = off")
                exact = (await index.search(conn, tenant_id, v, limit, Filters())).ids
            for n in recall:
                recall[n].append(len(set(found[:n]) & set(exact[:n])) / max(1, len(exact[:n])))
        async with tenant_tx(pool, tenant_id) as conn:
            cap = CaptureConn(conn)
            await both(cap, queries[0], vectors[0])
            plans = dict(zip(("vector", "lexical"), cap.plans, strict=True))
    finally:
        await pool.close()
    return {
        "queries": len(queries),
        "candidate_limit": limit,
        **{f"{name}_ms": summarize(values) for name, values in times.items()},
        "vector_candidates_median": median(candidates["vector"]),
        "lexical_candidates_median": median(candidates["lexical"]),
        **{f"vector_recall_at_{n}": statistics.fmean(values) for n, values in recall.items()},
        "explain_query": queries[0],
        "explain": plans,
    }


def measure_size(
    gateway: Gateway,
    metrics: ServiceMetrics,
    factory: TextFactory,
    args: Any,
    roots: Mapping[str, int],
) -> list[dict[str, Any]]:
    log(f"warm-up: {args.warmup} queries (not counted)")
    search_pass(gateway, factory.questions(args.warmup), args.max_seconds)
    runs = []
    for run in range(1, args.runs + 1):
        queries = factory.questions(args.queries)
        embed_queries = factory.questions(args.embed_queries)
        load_before = load_average()
        passes: dict[str, Any] = {}
        for name, qs in (("cold", queries), ("warm", queries)):
            quiet = wait_quiet()
            before, cpu = metrics.scrape(), CpuSample.now(roots)
            got = search_pass(gateway, qs, args.max_seconds)
            got["cpu"], got["quiet"] = cpu.until(CpuSample.now(roots)), quiet
            got["services"] = service_split(ServiceMetrics.delta(before, metrics.scrape()))
            passes[name] = got
            log(
                f"run {run} {name}: p50 {got['p50_ms']:.1f} ms, p95 {got['p95_ms']:.1f} ms, "
                f"p99 {got['p99_ms']:.1f} ms, errors {got['errors']}, cpu {got['cpu']}"
            )
        for name in ("embed_cold", "embed_warm"):
            cpu = CpuSample.now(roots)
            passes[name] = embed_pass(gateway, embed_queries)
            passes[name]["cpu"] = cpu.until(CpuSample.now(roots))
        log(
            f"run {run} embed only: cold p50 {passes['embed_cold']['p50_ms']:.1f} ms, "
            f"warm p50 {passes['embed_warm']['p50_ms']:.1f} ms"
        )
        runs.append({"run": run, **passes, "load_average": {"before": load_before, "after": load_average()}})
    return runs


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("cold", "warm", "embed_cold", "embed_warm"):
        out[name] = {
            key: median([r[name][key] for r in runs]) for key in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")
        }
        out[name]["errors"] = sum(r[name]["errors"] for r in runs)
        out[name]["other_cores"] = median([r[name]["cpu"]["other_cores"] for r in runs])
        out[name]["requests"] = sum(r[name]["n"] for r in runs)
    for name in ("cold", "warm"):
        out[name]["services"] = {
            key: median([r[name]["services"][key] for r in runs]) for key in runs[0][name]["services"]
        }
    return out


# ---------------------------------------------------------------------------------------- main


def main() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="memories in the measured tenant")
    parser.add_argument("--other-rows", type=int, default=30000, help="rows spread over other tenants")
    parser.add_argument("--other-tenants", type=int, default=3)
    parser.add_argument("--pool", type=int, default=1500, help="distinct sentences embedded for the seed")
    parser.add_argument("--noise", type=float, default=0.015, help="Gaussian noise per vector dimension")
    parser.add_argument("--chunk", type=int, default=5000, help="rows per insert transaction")
    parser.add_argument("--queries", type=int, default=200, help="distinct questions per size and run")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--embed-queries", type=int, default=50, help="questions of the embed-only baseline")
    parser.add_argument("--sql-queries", type=int, default=50, help="questions of the in-process SQL timing")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="time bound of one pass")
    parser.add_argument("--session", default="", help="tenant suffix (default: from the clock)")
    parser.add_argument(
        "--no-settle",
        dest="settle",
        action="store_false",
        help="after seeding only ANALYZE (the method before 2026-11-21 evening), no VACUUM",
    )
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))

    machine = machine_info()
    session = args.session or format(int(time.time()), "x")
    seed_factory = TextFactory(args.seed, session)
    query_factory = TextFactory(args.seed + 7919, session)
    tenant = f"bench-search-{session}"
    others = [f"bench-other-{session}-{i}" for i in range(1, args.other_tenants + 1)]
    document: dict[str, Any] = {"benchmark": "search_latency", "machine": machine}
    seeding: dict[str, Any] = {}
    results: dict[str, Any] = {}

    with bench_stack(args.keep, args.reuse_data) as stack:
        dsn = stack.service_env()["DATABASE_URL"]
        log(f"embedding a pool of {args.pool} sentences in this process (rae_ml's loader)")
        from rae_ml.adapters.sentence_transformer import load_local_embedder

        embedder = load_local_embedder(threads=2)
        t0 = time.perf_counter()
        pool_sentences = [seed_factory.sentence() for _ in range(args.pool)]
        pool_vectors = np.concatenate(
            [np.asarray(embedder.encode(pool_sentences[i : i + 64])) for i in range(0, args.pool, 64)]
        )
        seeding["pool"] = {"sentences": args.pool, "embed_s": time.perf_counter() - t0}
        seeder = Seeder(
            dsn, seed_factory, pool_sentences, pool_vectors, args.noise, args.chunk, args.seed, args.settle
        )
        per_other = args.other_rows // max(1, len(others))
        seeding["other_tenants"] = [asyncio.run(seeder.seed(t, per_other)) for t in others]

        gateway = Gateway(stack, tenant)
        metrics = ServiceMetrics(
            stack,
            {
                "gateway": ("gateway", "rae_http_request_duration_seconds", {"route": "/v1/search/hybrid"}),
                "memory": ("memory", "rae_http_request_duration_seconds", {"route": "/v1/search/hybrid"}),
                "ml_embed": ("ml", "rae_http_request_duration_seconds", {"route": "/v1/ml/embed"}),
                "model": ("ml", "rae_embedding_batch_seconds", {}),
                "cache_hits": ("ml", "rae_embeddings", {"cache": "hit"}),
            },
        )
        try:
            current = 0
            for size in sizes:
                seeding[str(size)] = asyncio.run(seeder.seed(tenant, size - current))
                current = size
                facts = asyncio.run(table_facts(dsn))
                everyone = facts.get("estimated_rows_all_tenants")
                log(f"measuring at {size} memories in {tenant} ({everyone} in all tenants)")
                runs = measure_size(gateway, metrics, query_factory, args, stack_pids(stack))
                sql_qs = query_factory.questions(args.sql_queries)
                sql_vectors = embedder.encode(sql_qs)
                log("timing the memory service's search SQL in-process (+ EXPLAIN ANALYZE)")
                sql = asyncio.run(sql_breakdown(dsn, tenant, sql_qs, sql_vectors))
                results[str(size)] = {"table": facts, "runs": runs, "median": medians(runs), "sql": sql}
        finally:
            gateway.close()

    errors = sum(r["median"][p]["errors"] for r in results.values() for p in ("cold", "warm"))
    largest = results[str(sizes[-1])]["median"]
    document.update(
        {
            "machine": {**machine, "load_average_at_end": load_average()},
            "parameters": {
                "runs": args.runs,
                "sizes": sizes,
                "tenant": tenant,
                "other_tenants": others,
                "other_rows": args.other_rows,
                "pool_sentences": args.pool,
                "noise_sigma": args.noise,
                "chunk": args.chunk,
                "settle": args.settle,
                "queries_per_run": args.queries,
                "warmup_queries": args.warmup,
                "embed_baseline_queries": args.embed_queries,
                "k": K,
                "seed": args.seed,
            },
            "seeding": seeding,
            "sizes": results,
            "summary": {
                "target_p95_ms": TARGET_P95_MS,
                "p95_ms_at_largest_cold": largest["cold"]["p95_ms"],
                "p95_ms_at_largest_warm": largest["warm"]["p95_ms"],
                "meets_target_cold": largest["cold"]["p95_ms"] <= TARGET_P95_MS,
                "meets_target_warm": largest["warm"]["p95_ms"] <= TARGET_P95_MS,
                "errors": errors,
            },
        }
    )
    tables = render_tables(document)
    print(tables)
    print()
    emit_json(document, args.json)
    if args.write_docs:
        update_docs("search_latency", render_docs(document, tables))
    return 0 if errors == 0 else 1


def top_cpu(cpu: Mapping[str, Any], n: int = 4) -> str:
    parts = list(cpu.get("stack_cores_by_component", {}).items())[:n]
    return ", ".join(f"{name} {cores:.2f}" for name, cores in parts)


def render_tables(doc: dict[str, Any]) -> str:
    latency_rows: list[list[Any]] = []
    split_rows: list[list[Any]] = []
    sql_rows: list[list[Any]] = []
    for size, res in doc["sizes"].items():
        med = res["median"]
        for name, label in (
            ("cold", "search, cold embedding cache"),
            ("warm", "search, warm embedding cache"),
            ("embed_cold", "embed only (/v1/ml/embed), cold"),
            ("embed_warm", "embed only (/v1/ml/embed), warm"),
        ):
            m = med[name]
            per_run = ", ".join(f"{r[name]['p95_ms']:.0f}" for r in res["runs"])
            latency_rows.append(
                [
                    f"{int(size):,}",
                    label,
                    m["p50_ms"],
                    m["p95_ms"],
                    m["p99_ms"],
                    m["mean_ms"],
                    per_run,
                    f"{m['errors']}/{m['requests']}",
                    f"{m['other_cores']:.2f}",
                    ", ".join(f"{r[name]['cpu'].get('steal_cores', math.nan):.2f}" for r in res["runs"]),
                ]
            )
        for name in ("cold", "warm"):
            s = med[name]["services"]
            split_rows.append(
                [
                    f"{int(size):,}",
                    name,
                    med[name]["mean_ms"],
                    s["gateway_mean_ms"],
                    s["memory_mean_ms"],
                    s["ml_embed_mean_ms"],
                    s["model_encode_mean_ms"],
                    f"{s['embedding_cache_hits']:.0f}",
                    top_cpu(res["runs"][len(res["runs"]) // 2][name]["cpu"]),
                ]
            )
        sql = res["sql"]
        sql_rows.append(
            [
                f"{int(size):,}",
                sql["vector_ms"]["p50_ms"],
                sql["vector_ms"]["p95_ms"],
                sql["lexical_ms"]["p50_ms"],
                sql["lexical_ms"]["p95_ms"],
                *(
                    f"{sql[key]:.2f}" if key in sql else "-"
                    for key in (f"vector_recall_at_{K}", f"vector_recall_at_{sql['candidate_limit']}")
                ),
            ]
        )
    return "\n\n".join(
        [
            format_table(
                [
                    "memories",
                    "what",
                    "p50 ms",
                    "p95 ms",
                    "p99 ms",
                    "mean ms",
                    "p95 per run",
                    "errors",
                    "other load (cores)",
                    "steal per run (cores)",
                ],  # fmt: skip
                latency_rows,
            ),
            format_table(
                [
                    "memories",
                    "pass",
                    "client mean",
                    "gateway mean",
                    "memory mean",
                    "ml embed mean",
                    "model mean",
                    "cache hits",
                    "CPU cores by component (middle run)",
                ],  # fmt: skip
                split_rows,
            ),
            format_table(
                [
                    "memories",
                    "vector SQL p50",
                    "vector SQL p95",
                    "lexical SQL p50",
                    "lexical SQL p95",
                    f"HNSW recall@{K}",
                    "HNSW recall@candidates",
                ],  # fmt: skip
                sql_rows,
            ),
        ]
    )


def render_docs(doc: dict[str, Any], tables: str) -> str:
    m, p, s, seed = doc["machine"], doc["parameters"], doc["summary"], doc["seeding"]
    dirty = " + uncommitted changes" if m["git_dirty"] else ""
    seed_lines = [
        f"- pool: {seed['pool']['sentences']} sentences embedded in {seed['pool']['embed_s']:.1f} s",
        "- other tenants: "
        + ", ".join(
            f"{o['rows']:,} rows in {o['generate_s'] + o['insert_s']:.1f} s" for o in seed["other_tenants"]
        ),
    ]
    for size in p["sizes"]:
        st = seed[str(size)]
        seed_lines.append(
            f"- measured tenant to {size:,}: +{st['rows']:,} rows, generate {st['generate_s']:.1f} s, "
            f"insert {st['insert_s']:.1f} s ({fmt(st['insert_rows_per_s'], 0)} rows/s), "
            f"{'VACUUM (ANALYZE)' if p.get('settle') else 'ANALYZE'} {st['analyze_s']:.1f} s"
        )
    verdict = "meets" if s["meets_target_cold"] else "misses"
    lines = [
        f"### Results ({m['date'][:10]}, commit `{m['git_commit'][:10]}`{dirty})",
        "",
        f"{m['cores']} cores ({m['cpu_model']}), Python {m['python']}; "
        f"load average {m['load_average_at_start']} at start, {m['load_average_at_end']} at end.",
        f"`--runs {p['runs']}`, {p['queries_per_run']} fresh questions per size and run "
        f"(+{p['warmup_queries']} warm-up), k={p['k']}, "
        f"other tenants: {p['other_rows']:,} rows over {len(p['other_tenants'])}.",
        "",
        "Seeding (direct to Postgres, see Method):",
        "",
        *seed_lines,
        "",
        "Latency through the gateway (medians of the runs' percentiles; `p95 per run` lists each run):",
        "",
        tables,
        "",
        f"**p95 at {p['sizes'][-1]:,} memories: {s['p95_ms_at_largest_cold']:.0f} ms with a cold "
        f"embedding cache, {s['p95_ms_at_largest_warm']:.0f} ms warm**; it {verdict} the target of "
        f"<= {s['target_p95_ms']:.0f} ms (cold). Errors: {s['errors']}.",
        "",
        "`other load` = cores busy in this VM outside the benchmark and the stack; `steal` = cores the "
        "hypervisor gave to other machines on the host while this VM wanted them (both noise, not "
        "the suite's cost).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
