"""Latency of embedding ONE search query with torch on 1 vs 2 threads, alone and beside other work.

Why: a cold search's critical path is the query embedding, and while it runs the memory
service's full-text query keeps a core busy. The ml service encodes up to
`rae_ml.adapters.sentence_transformer.SMALL_BATCH` texts on one thread; this measures why.

Method: the ml service's own loader (`load_local_embedder(threads=2)`), 20 warm-up encodes, then
`--queries` distinct questions alternating 1 and 2 threads (so drift hits both), `encode([q])`
timed with `perf_counter`. Two conditions: `alone`, and `busy core` with a child process spinning
on one core for the whole pass (a stand-in for the concurrent full-text query). Repeated
`--runs` times; medians of the per-run percentiles are reported.

    .venv/bin/python bench/query_encoding.py --runs 3 --json bench/results/query_encoding.json --write-docs
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    CpuSample,
    base_parser,
    emit_json,
    format_table,
    load_average,
    log,
    machine_info,
    median,
    percentile,
    update_docs,
    wait_quiet,
)


def _spin(stop_at: float) -> None:
    while time.time() < stop_at:
        pass


def measure(embedder: Any, queries: list[str]) -> dict[int, list[float]]:
    import torch

    timings: dict[int, list[float]] = {1: [], 2: []}
    for n, query in enumerate(queries):
        threads = 1 + n % 2
        torch.set_num_threads(threads)
        started = time.perf_counter()
        embedder._model.encode([query], normalize_embeddings=True, show_progress_bar=False)
        timings[threads].append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=200, help="timed encodes per condition and run")
    args = parser.parse_args()
    from rae_ml.adapters.sentence_transformer import load_local_embedder

    info = machine_info()
    embedder = load_local_embedder(threads=2)
    for n in range(20):
        embedder.encode([f"warm-up question number {n}?"])
    subjects = ["Priya", "Marco", "Hana", "Lena", "Omar"]
    topics = ["project Orion", "the Falcon budget", "the design review", "the launch", "tea"]
    runs: list[dict[str, Any]] = []
    for run in range(args.runs):
        result: dict[str, Any] = {}
        for condition in ("alone", "busy core"):
            queries = [
                f"What did {subjects[n % 5]} decide about {topics[(n // 5) % 5]} ({condition}, {run}.{n})?"
                for n in range(args.queries)
            ]
            quiet = wait_quiet()
            spinner = None
            if condition == "busy core":
                spinner = multiprocessing.Process(target=_spin, args=(time.time() + 600,), daemon=True)
                spinner.start()
            before = CpuSample.now()
            try:
                timings = measure(embedder, queries)
            finally:
                if spinner is not None:
                    spinner.terminate()
                    spinner.join()
            cpu = before.until(CpuSample.now())
            result[condition] = {
                str(threads): {"p50_ms": percentile(ts, 50), "p95_ms": percentile(ts, 95), "n": len(ts)}
                for threads, ts in timings.items()
            }
            result[condition]["machine_busy_cores"] = cpu["machine_busy_cores"]
            result[condition]["quiet_wait"] = quiet
            log(f"run {run + 1} {condition}: {result[condition]}")
        runs.append(result)

    rows = []
    summary: dict[str, Any] = {}
    for condition in ("alone", "busy core"):
        for threads in ("1", "2"):
            p50 = median([r[condition][threads]["p50_ms"] for r in runs])
            p95 = median([r[condition][threads]["p95_ms"] for r in runs])
            busy = median([r[condition]["machine_busy_cores"] for r in runs])
            summary[f"{condition}/{threads}"] = {"p50_ms": p50, "p95_ms": p95}
            rows.append([condition, threads, p50, p95, busy])
    table = format_table(
        ["condition", "torch threads", "p50 ms", "p95 ms", "machine busy cores (median)"], rows
    )
    print(table)
    document = {"machine": info, "args": {**vars(args), "json": str(args.json)}, "runs": runs}
    emit_json({**document, "summary": summary}, args.json)
    if args.write_docs:
        update_docs(
            "query_encoding",
            f"### Results ({info['date'][:10]}, commit `{info['git_commit'][:10]}`)\n\n"
            f"{info['cores']} cores ({info['cpu_model']}); load average {info['load_average_at_start']} at "
            f"start, {load_average()} at end. `--runs {args.runs}`, {args.queries} encodes per condition "
            f"and run (half on each thread count), one question per encode.\n\n{table}\n",
        )


if __name__ == "__main__":
    main()
