"""What a memory write pays Postgres for its vector, and what the search gets back for it: HNSW
build parameters (insert cost and recall) and the vector's wire format.

Why: storing a batch of memories spends most of its non-model time in Postgres, and most of that
in the HNSW index (every row joins the graph in its own transaction); the graph's build also sets
how many of the true nearest neighbours a search finds. This measures, on a private Postgres +
pgvector started by the project's stack manager:

1. per index build (`m` 16 with `ef_construction` 64: pgvector's defaults; 16 / 32: migration
   0005; 12 / 24: migration 0008; 8 / 16) and without an index: a table grown to `--rows`
   vectors in 1,000-row inserts with the index in place (as the service grows it), then timed
   256-row inserts; then recall@10 and recall@50 (the service asks for max(50, 4k) candidates)
   of `--queries` questions against an exact scan, and the query's median time, at each
   `hnsw.ef_search` of `--ef-search` (the service's own `PgVectorIndex.prepare`: iterative scans on);
2. sending 256 vectors as text literals (`'[...]'::vector`), as one flat binary `real[]` sliced
   per row (the memory service before commit `13325c2`), and as a `vector[]` in pgvector's own
   binary format (`pgvector.asyncpg`'s codec: the memory service since), no index.
   The index comparison inserts with the last.

Vectors: real ones. `_texts.TextFactory` memories (distinct sentences about people, projects and
preferences, mean ~16 words) and questions, embedded once per invocation by the ml service's own
loader (all-MiniLM-L6-v2, 384-d): they cluster the way an agent's memories do (the same people
and topics again and again). Random clustered vectors, used here before, found every variant's
recall at 1.000 at ef_search 64, which real embeddings do not bear out. The exact scan is its own
statement text (`enable_indexscan` off): a prepared statement shared with the index query could
keep the other's plan. Each run builds fresh tables over the same vectors (what varies is the
graph's random levels); medians over runs (and over the batches within a run) are reported.

    .venv/bin/python bench/hnsw_build_cost.py --runs 3 --json bench/results/hnsw_build_cost.json --write-docs
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from pgvector import Vector
from pgvector.asyncpg import register_vector

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    ROOT,
    base_parser,
    emit_json,
    format_table,
    load_average,
    log,
    machine_info,
    median,
    update_docs,
    wait_quiet,
)

from rae_localstack import Stack  # noqa: E402
from rae_memory.adapters.vectors import PgVectorIndex  # noqa: E402

DIM = 384
BATCH = 256
# name -> the index, or None for none
INDEXES: dict[str, str | None] = {
    "no index": None,
    **{
        f"hnsw m {m}, ef_construction {ef}": (
            f"USING hnsw (e vector_cosine_ops) WITH (m = {m}, ef_construction = {ef})"
        )
        for m, ef in ((16, 64), (16, 32), (12, 24), (8, 16))
    },
}
# The service's statements, nearest first; the exact one is its own text (see the docstring).
NEAREST = "SELECT id FROM {table} ORDER BY e <=> $1::vector LIMIT $2"
EXACT = "SELECT id /* exact */ FROM {table} ORDER BY e <=> $1::vector LIMIT $2"
RECALL_AT = (10, 50)


def embed_texts(args: Any) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(rows, queries, timed batches) as unit float32 vectors of fresh texts."""
    from _texts import TextFactory

    from rae_ml.adapters.sentence_transformer import load_local_embedder

    factory = TextFactory(args.seed, "hnsw")
    texts = factory.memories(args.rows + args.batches * BATCH)
    questions = factory.questions(args.queries)
    log(f"embedding {len(texts):,} memories and {len(questions)} questions (rae_ml's loader)")
    started = time.perf_counter()
    embedder = load_local_embedder(threads=2)
    encoded = [embedder.encode(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)]
    vectors = np.array(list(itertools.chain.from_iterable(encoded)), dtype=np.float32)
    queries = np.array(embedder.encode(questions), dtype=np.float32)
    log(f"embedded in {time.perf_counter() - started:.1f} s")
    extra = vectors[args.rows :]
    return vectors[: args.rows], queries, [extra[i : i + BATCH] for i in range(0, len(extra), BATCH)]


async def nearest(conn: asyncpg.Connection, sql: str, query: np.ndarray, n: int) -> list[int]:
    return [r["id"] for r in await conn.fetch(sql, Vector(query), n)]


async def recall(
    conn: asyncpg.Connection, table: str, queries: np.ndarray, ef_searches: list[int]
) -> dict[str, dict[str, float]]:
    """recall@n against an exact scan and the query's median ms, per ef_search."""
    deepest = max(RECALL_AT)
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_indexscan = off")
        exact = [await nearest(conn, EXACT.format(table=table), q, deepest) for q in queries]
    result: dict[str, dict[str, float]] = {}
    for ef in ef_searches:
        found, seconds = [], []
        for q in queries:
            async with conn.transaction():
                await PgVectorIndex(ef_search=ef).prepare(conn, deepest)
                started = time.perf_counter()
                found.append(await nearest(conn, NEAREST.format(table=table), q, deepest))
                seconds.append(time.perf_counter() - started)
        result[str(ef)] = {
            **{
                f"recall_at_{n}": round(
                    float(
                        np.mean([len(set(f[:n]) & set(e[:n])) / n for f, e in zip(found, exact, strict=True)])
                    ),
                    4,
                )
                for n in RECALL_AT
            },
            "query_ms_p50": round(median(seconds) * 1000, 2),
        }
    return result


async def insert_flat(conn: asyncpg.Connection, table: str, batch: np.ndarray) -> None:
    await conn.execute(
        f"""INSERT INTO {table} (e) SELECT ($1::real[])[(t.n - 1) * {DIM} + 1 : t.n * {DIM}]::vector
            FROM generate_series(1, $2) AS t(n)""",
        list(itertools.chain.from_iterable(batch.tolist())),
        len(batch),
    )


async def insert_vectors(conn: asyncpg.Connection, table: str, batch: np.ndarray) -> None:
    """pgvector's own binary format, one `vector` per row (the codec of `pgvector.asyncpg`)."""
    await conn.execute(f"INSERT INTO {table} (e) SELECT unnest($1::vector[])", [Vector(v) for v in batch])


async def insert_text(conn: asyncpg.Connection, table: str, batch: np.ndarray) -> None:
    await conn.execute(
        f"INSERT INTO {table} (e) SELECT x::vector FROM unnest($1::text[]) AS x",
        [json.dumps(v) for v in batch.tolist()],
    )


WIRE = {
    "text literals": insert_text,
    "one flat real[]": insert_flat,
    "vector[] (pgvector binary)": insert_vectors,
}


async def one_run(
    url: str, args: Any, run: int, data: tuple[np.ndarray, np.ndarray, list[np.ndarray]]
) -> dict[str, Any]:
    base, queries, batches = data
    conn = await asyncpg.connect(url)
    result: dict[str, Any] = {}
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await register_vector(conn)
        for name, index in INDEXES.items():
            table = f"bench_hnsw_{run}_{len(result)}"
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
            await conn.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, e vector({DIM}))")
            if index:
                await conn.execute(f"CREATE INDEX ON {table} {index}")
            started = time.perf_counter()
            for start in range(0, args.rows, 1000):
                await insert_vectors(conn, table, base[start : start + 1000])
            grow_s = time.perf_counter() - started
            await conn.execute(f"VACUUM ANALYZE {table}")
            wait_quiet(timeout_s=20)
            seconds = []
            for batch in batches:
                started = time.perf_counter()
                await insert_vectors(conn, table, batch)
                seconds.append(time.perf_counter() - started)
            found = await recall(conn, table, queries, args.ef_search) if index else None
            result[name] = {
                "grow_s": round(grow_s, 2),
                "batch_ms": [round(s * 1000, 1) for s in seconds],
                "recall": found,
            }
            await conn.execute(f"DROP TABLE {table}")
            summary = (
                ", ".join(
                    f"ef {ef}: {r['recall_at_10']:.3f} / {r['query_ms_p50']:.1f} ms"
                    for ef, r in found.items()
                )
                if found
                else "exact"
            )
            log(
                f"run {run + 1} {name}: {median(seconds) * 1000:.0f} ms per {BATCH} rows; recall@10 {summary}"
            )
        table = f"bench_wire_{run}"
        await conn.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, e vector({DIM}))")
        wire: dict[str, list[float]] = {label: [] for label in WIRE}
        for batch in batches:
            for label, insert in WIRE.items():
                started = time.perf_counter()
                await insert(conn, table, batch)
                wire[label].append(round((time.perf_counter() - started) * 1000, 1))
        await conn.execute(f"DROP TABLE {table}")
        result["wire"] = wire
        log(f"run {run + 1} wire: " + ", ".join(f"{k} {median(v):.0f} ms" for k, v in wire.items()))
    finally:
        await conn.close()
    return result


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="vectors in the table before the batches")
    parser.add_argument(
        "--batches", type=int, default=8, help="timed batches of 256 rows per variant and run"
    )
    parser.add_argument("--queries", type=int, default=200, help="questions for the recall (default 200)")
    parser.add_argument(
        "--ef-search",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[128, 200, 400, 800],
        help="hnsw.ef_search values for the recall (default 128,200,400,800)",
    )
    args = parser.parse_args()
    info = machine_info()
    # Postgres only: the other servers are marked external (never started) by pointing elsewhere.
    stack = Stack(
        ROOT / ".rae-local" / "bench-pg",
        port_offset=2100,
        env={
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "NEO4J_URI": "bolt://127.0.0.1:1",
            "REDIS_URL": "redis://127.0.0.1:1",
        },
    )
    stack.up_infra()
    try:
        url = stack.service_env()["DATABASE_URL"]
        data = embed_texts(args)
        runs = [asyncio.run(one_run(url, args, run, data)) for run in range(args.runs)]
    finally:
        if not args.keep:
            stack.down()

    rows = []
    summary: dict[str, Any] = {}
    for name, index in INDEXES.items():
        per_run = [median(r[name]["batch_ms"]) for r in runs]
        entry: dict[str, Any] = {
            "batch_ms": median(per_run),
            "grow_s": median([r[name]["grow_s"] for r in runs]),
        }
        if index:
            entry["recall"] = {
                str(ef): {
                    key: median([r[name]["recall"][str(ef)][key] for r in runs])
                    for key in (*(f"recall_at_{n}" for n in RECALL_AT), "query_ms_p50")
                }
                for ef in args.ef_search
            }
        summary[name] = entry
        insert_cells = [name, median(per_run), ", ".join(f"{x:.0f}" for x in per_run)]
        if not index:
            rows.append([*insert_cells, "", "exact", "exact", ""])
        for n, ef in enumerate(args.ef_search if index else []):
            found = entry["recall"][str(ef)]
            cells = insert_cells if n == 0 else ["", "", ""]
            rows.append(
                [
                    *cells,
                    ef,
                    f"{found['recall_at_10']:.3f}",
                    f"{found['recall_at_50']:.3f}",
                    found["query_ms_p50"],
                ]
            )
    table = format_table(
        [
            f"{BATCH}-row insert into {args.rows:,} rows",
            "median ms",
            "per run",
            "ef_search",
            "recall@10",
            "recall@50",
            "query p50 ms",
        ],
        rows,
    )
    wire_rows = []
    for label in WIRE:
        per_run = [median(r["wire"][label]) for r in runs]
        summary[f"wire/{label}"] = median(per_run)
        wire_rows.append([label, median(per_run), ", ".join(f"{x:.0f}" for x in per_run)])
    wire_table = format_table([f"{BATCH} vectors sent as (no index)", "median ms", "per run"], wire_rows)
    print(table + "\n\n" + wire_table)
    emit_json(
        {"machine": info, "args": {**vars(args), "json": str(args.json)}, "runs": runs, "summary": summary},
        args.json,
    )
    if args.write_docs:
        update_docs(
            "hnsw_build_cost",
            f"### Results ({info['date'][:10]}, commit `{info['git_commit'][:10]}`)\n\n"
            f"{info['cores']} cores ({info['cpu_model']}); load average {info['load_average_at_start']} "
            f"at start, {load_average()} at end. `--runs {args.runs}`, {args.rows:,} rows of real sentence "
            f"embeddings, {args.batches} timed batches per variant and run, {args.queries} questions for "
            "the recall (medians of the runs).\n\n"
            f"{table}\n\n{wire_table}\n",
        )


if __name__ == "__main__":
    main()
