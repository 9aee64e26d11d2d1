"""What a memory write pays Postgres for its vector: HNSW build parameters and the vector's wire format.

Why: storing a batch of memories spends most of its non-model time in Postgres, and most of that
in the HNSW index (every row joins the graph in its own transaction). This measures, on a private
Postgres + pgvector started by the project's stack manager:

1. inserting 256-row batches into a table of `--rows` vectors without an index and with HNSW
   indexes of several builds: `m` 16 with `ef_construction` 64 (pgvector's defaults) and 32
   (migration 0005), `m` 12 and 8, and a `halfvec` expression index; recall@10 of each against
   an exact scan (100 queries, `hnsw.ef_search` 64);
2. sending 256 vectors as text literals (`'[...]'::vector`), as one flat binary `real[]` sliced
   per row (the memory service before commit `13325c2`), and as a `vector[]` in pgvector's own
   binary format (`pgvector.asyncpg`'s codec: the memory service since), no index.
   The index comparison inserts with the last.

Vectors: 384-d, `--clusters` random unit centres plus Gaussian noise (sigma 0.03), normalised:
clustered like real sentence embeddings, not uniform noise (HNSW's worst case). Each run builds
fresh tables; medians over runs (and over the batches within a run) are reported.

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

DIM = 384
BATCH = 256
# name -> (index, the distance expression a query orders by)
EXACT = "e <=> $1::vector"
HALF = f"e::halfvec({DIM}) <=> $1::vector::halfvec({DIM})"
INDEXES: dict[str, tuple[str | None, str]] = {
    "no index": (None, EXACT),
    "hnsw m 16, ef_construction 64": (
        "USING hnsw (e vector_cosine_ops) WITH (m = 16, ef_construction = 64)",
        EXACT,
    ),
    "hnsw m 16, ef_construction 32": (
        "USING hnsw (e vector_cosine_ops) WITH (m = 16, ef_construction = 32)",
        EXACT,
    ),
    "hnsw m 12, ef_construction 32": (
        "USING hnsw (e vector_cosine_ops) WITH (m = 12, ef_construction = 32)",
        EXACT,
    ),
    "hnsw m 8, ef_construction 32": (
        "USING hnsw (e vector_cosine_ops) WITH (m = 8, ef_construction = 32)",
        EXACT,
    ),
    "hnsw halfvec m 16, ef_construction 32": (
        f"USING hnsw ((e::halfvec({DIM})) halfvec_cosine_ops) WITH (m = 16, ef_construction = 32)",
        HALF,
    ),
}


def vectors(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    v: np.ndarray = centres[rng.integers(0, len(centres), n)] + rng.normal(scale=0.03, size=(n, DIM))
    unit: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


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


async def one_run(url: str, args: Any, run: int) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed + run)
    centres = rng.normal(size=(args.clusters, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    base = vectors(rng, centres, args.rows)
    batches = [vectors(rng, centres, BATCH) for _ in range(args.batches)]
    queries = vectors(rng, centres, 100)
    conn = await asyncpg.connect(url)
    result: dict[str, Any] = {}
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await register_vector(conn)
        for name, (index, distance) in INDEXES.items():
            table = f"bench_hnsw_{run}_{len(result)}"
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
            await conn.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, e vector({DIM}))")
            if index:
                await conn.execute(f"CREATE INDEX ON {table} {index}")
            for start in range(0, args.rows, 1000):
                await insert_vectors(conn, table, base[start : start + 1000])
            wait_quiet(timeout_s=20)
            seconds = []
            for batch in batches:
                started = time.perf_counter()
                await insert_vectors(conn, table, batch)
                seconds.append(time.perf_counter() - started)
            recall = None
            if index:
                await conn.execute("SET hnsw.ef_search = 64")
                hits = 0
                for q in queries:
                    literal = Vector(q)
                    found = await conn.fetch(f"SELECT id FROM {table} ORDER BY {distance} LIMIT 10", literal)
                    await conn.execute("SET enable_indexscan = off")
                    exact = await conn.fetch(
                        f"SELECT id FROM {table} ORDER BY e <=> $1::vector LIMIT 10", literal
                    )
                    await conn.execute("SET enable_indexscan = on")
                    hits += len({r["id"] for r in found} & {r["id"] for r in exact})
                recall = hits / (10 * len(queries))
            result[name] = {"batch_ms": [round(s * 1000, 1) for s in seconds], "recall_at_10": recall}
            await conn.execute(f"DROP TABLE {table}")
            log(
                f"run {run + 1} {name}: median {median(seconds) * 1000:.0f} ms per {BATCH} rows, "
                f"recall {recall}"
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
    parser.add_argument("--rows", type=int, default=10_000, help="vectors in the table before the batches")
    parser.add_argument(
        "--batches", type=int, default=8, help="timed batches of 256 rows per variant and run"
    )
    parser.add_argument("--clusters", type=int, default=600)
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
        runs = [asyncio.run(one_run(url, args, run)) for run in range(args.runs)]
    finally:
        if not args.keep:
            stack.down()

    rows = []
    summary: dict[str, Any] = {}
    for name in INDEXES:
        per_run = [median(r[name]["batch_ms"]) for r in runs]
        recalls = [r[name]["recall_at_10"] for r in runs if r[name]["recall_at_10"] is not None]
        summary[name] = {"batch_ms": median(per_run), "recall_at_10": median(recalls) if recalls else None}
        rows.append(
            [
                name,
                median(per_run),
                ", ".join(f"{x:.0f}" for x in per_run),
                "exact" if recalls == [] else f"{summary[name]['recall_at_10']:.3f}",
            ]
        )
    table = format_table(
        [f"{BATCH}-row insert into {args.rows:,} rows", "median ms", "per run", "recall@10"], rows
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
            f"at start, {load_average()} at end. `--runs {args.runs}`, {args.batches} timed batches per "
            "variant and run.\n\n"
            f"{table}\n\n{wire_table}\n",
        )


if __name__ == "__main__":
    main()
