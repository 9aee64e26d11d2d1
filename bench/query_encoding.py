"""Latency of embedding ONE search query: torch vs ONNX Runtime, 1 vs 2 threads, alone and beside other work.

Why: a cold search's critical path is the query embedding, and while it runs the memory
service's full-text query keeps a core busy. The ml service encodes up to
`rae_ml.adapters.sentence_transformer.SMALL_BATCH` texts on one thread, with ONNX Runtime by
default (`EMBEDDING_BACKEND`); this measures why.

Method: the ml service's own loader, once per backend (`load_local_embedder(threads=2,
backend=...)`; the ONNX graph comes from its cache, exported first if missing), 20 warm-up
encodes of each variant, then `--queries` distinct questions cycling through the four variants
(torch or ONNX, 1 or 2 threads, so drift hits all), one `encode([q])` timed with `perf_counter`.
torch's thread count is `torch.set_num_threads`; ONNX on 1 thread is the service's embedder,
on 2 threads a second session over the same file with 2 intra-op threads. Two conditions:
`alone`, and `busy core` with a child process spinning on one core for the whole pass (a
stand-in for the concurrent full-text query). Repeated `--runs` times; medians of the per-run
percentiles are reported.

    .venv/bin/python bench/query_encoding.py --runs 3 --json bench/results/query_encoding.json --write-docs
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable
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


VARIANTS = (("torch", 1), ("torch", 2), ("onnx", 1), ("onnx", 2))


def encoders() -> dict[tuple[str, int], Callable[[str], object]]:
    """One function per variant that encodes one query on exactly that many threads."""
    import onnxruntime as ort
    import torch

    from rae_ml.adapters.onnx_embedder import OnnxEmbedder, default_cache_dir, onnx_file_name
    from rae_ml.adapters.sentence_transformer import default_model_path, load_local_embedder

    torch_embedder: Any = load_local_embedder(threads=2, backend="torch")
    onnx_embedder = load_local_embedder(threads=2, backend="onnx")
    if not isinstance(onnx_embedder, OnnxEmbedder):
        raise SystemExit("the ONNX backend fell back to torch (see the warning above)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    path = default_cache_dir() / onnx_file_name(default_model_path())
    onnx_two = OnnxEmbedder(
        onnx_embedder.name,
        torch_embedder._model.tokenizer,
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]),
        threads=1,
        dimensions=onnx_embedder.dimensions,
        max_tokens=onnx_embedder.max_tokens,
    )

    def on_torch(threads: int) -> Callable[[str], object]:
        def encode(query: str) -> object:
            torch.set_num_threads(threads)
            return torch_embedder._model.encode([query], normalize_embeddings=True, show_progress_bar=False)

        return encode

    return {
        ("torch", 1): on_torch(1),
        ("torch", 2): on_torch(2),
        ("onnx", 1): lambda query: onnx_embedder.encode([query]),
        ("onnx", 2): lambda query: onnx_two.encode([query]),
    }


def measure(
    encode: dict[tuple[str, int], Callable[[str], object]], queries: list[str]
) -> dict[tuple[str, int], list[float]]:
    timings: dict[tuple[str, int], list[float]] = {variant: [] for variant in VARIANTS}
    for n, query in enumerate(queries):
        variant = VARIANTS[n % len(VARIANTS)]
        started = time.perf_counter()
        encode[variant](query)
        timings[variant].append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--queries", type=int, default=400, help="timed encodes per condition and run (a quarter per variant)"
    )
    args = parser.parse_args()

    info = machine_info()
    encode = encoders()
    for variant in VARIANTS:
        for n in range(20):
            encode[variant](f"warm-up question number {n}?")
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
                timings = measure(encode, queries)
            finally:
                if spinner is not None:
                    spinner.terminate()
                    spinner.join()
            cpu = before.until(CpuSample.now())
            result[condition] = {
                f"{backend}/{threads}": {
                    "p50_ms": percentile(ts, 50),
                    "p95_ms": percentile(ts, 95),
                    "n": len(ts),
                }
                for (backend, threads), ts in timings.items()
            }
            result[condition]["machine_busy_cores"] = cpu["machine_busy_cores"]
            result[condition]["quiet_wait"] = quiet
            log(f"run {run + 1} {condition}: {result[condition]}")
        runs.append(result)

    rows = []
    summary: dict[str, Any] = {}
    for condition in ("alone", "busy core"):
        for backend, threads in VARIANTS:
            key = f"{backend}/{threads}"
            p50 = median([r[condition][key]["p50_ms"] for r in runs])
            p95 = median([r[condition][key]["p95_ms"] for r in runs])
            busy = median([r[condition]["machine_busy_cores"] for r in runs])
            summary[f"{condition}/{key}"] = {"p50_ms": p50, "p95_ms": p95}
            rows.append([condition, backend, threads, p50, p95, busy])
    table = format_table(
        ["condition", "backend", "threads", "p50 ms", "p95 ms", "machine busy cores (median)"], rows
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
            f"and run (a quarter per backend and thread count), one question per encode.\n\n{table}\n",
        )


if __name__ == "__main__":
    main()
