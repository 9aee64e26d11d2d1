"""Ingest throughput through the gateway's batch endpoint, as a ratio to the raw embedding model's
own throughput measured in the same run. Target: ratio >= 0.8.

- raw: the ml service's own loader (`rae_ml.adapters.sentence_transformer.load_local_embedder`)
  in this process, 2 threads (ML_TORCH_THREADS: ONNX Runtime workers, or torch's), batches of 64
  (EMBEDDING_BATCH_SIZE), N texts -> sentences/s.
  Meanwhile the services are idle.
- gateway: `POST /v1/memories/batch` with batches of 256 new texts into one tenant, N texts ->
  memories/s from the first request sent to the last answer received, once per `--clients`
  level: 1 client waits for each answer before it sends the next batch; 2 clients keep a batch
  in flight while the other's rows are written, as a loader with two workers would.
  Meanwhile this process' model is idle.
- Each run measures raw, then gateway, on fresh texts (a run tag in every text: nothing is
  de-duplicated or served from the embedding cache). The ratio is median(gateway)/median(raw),
  per level.
- Before each measurement the script waits (up to 60 s) until the machine is nearly idle (the
  stack's consumers have drained the previous batch's events), and records the cores used
  meanwhile by this process, by the stack and by anything else (noise from other work).

Usage (from the repository root):
    .venv/bin/python bench/ingest_throughput.py --runs 3 [--texts 1024] [--batch-size 256] [--clients 1,2]
        [--json bench/results/ingest_throughput.json] [--write-docs] [--keep]
"""

from __future__ import annotations

import math
import os
import queue
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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

TARGET_RATIO = 0.8


def batched(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def measure_raw(embedder: Any, texts: Sequence[str], batch_size: int) -> dict[str, Any]:
    started = time.perf_counter()
    for chunk in batched(texts, batch_size):
        vectors = embedder.encode(chunk)
        assert len(vectors) == len(chunk)
    seconds = time.perf_counter() - started
    return {"texts": len(texts), "seconds": seconds, "per_s": len(texts) / seconds}


def measure_gateway(
    gateways: Sequence[Gateway],
    metrics: ServiceMetrics,
    texts: Sequence[str],
    batch_size: int,
    max_seconds: float,
) -> dict[str, Any]:
    """Batch requests from `len(gateways)` clients at once, each sending its next batch as soon as
    its previous one was answered."""
    before = metrics.scrape()
    latencies: list[float] = []
    errors: list[dict[str, Any]] = []
    created = 0
    todo = queue.SimpleQueue[list[str]]()
    for chunk in batched(texts, batch_size):
        todo.put(chunk)
    lock = threading.Lock()
    started = time.perf_counter()

    def client(gateway: Gateway) -> None:
        nonlocal created
        while True:
            try:
                chunk = todo.get_nowait()
            except queue.Empty:
                return
            if time.perf_counter() - started > max_seconds:
                with lock:
                    errors.append({"error": f"stopped after {max_seconds} s (time bound)"})
                return
            response = gateway.post("/v1/memories/batch", {"items": [{"content": t} for t in chunk]})
            body = response.body if isinstance(response.body, dict) else {}
            with lock:
                latencies.append(response.seconds)
                if response.status != 201 or body.get("created") != len(chunk):
                    errors.append({"status": response.status, "body": str(response.body)[:300]})
                created += int(body.get("created", 0))

    with ThreadPoolExecutor(max_workers=len(gateways)) as pool:
        for done in [pool.submit(client, g) for g in gateways]:
            done.result()
    seconds = time.perf_counter() - started
    spent = ServiceMetrics.delta(before, metrics.scrape())
    return {
        "clients": len(gateways),
        "texts": len(texts),
        "created": created,
        "requests": len(latencies),
        "errors": errors,
        "seconds": seconds,
        "per_s": created / seconds,
        "request_latency": summarize(latencies),
        # where the wall-clock time went, from the services' own histograms
        "gateway_s": spent["gateway"]["sum"],
        "memory_s": spent["memory"]["sum"],
        "ml_embed_s": spent["ml_embed"]["sum"],
        "model_encode_s": spent["model"]["sum"],
        "model_batches": spent["model"]["count"],
        "embedding_cache_hits": spent["cache_hits"]["sum"],
    }


def main() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=1024, help="texts per measurement (default 1024)")
    parser.add_argument("--batch-size", type=int, default=256, help="items per batch request (default 256)")
    parser.add_argument(
        "--clients",
        default="1,2",
        help="gateway measurements per run, by clients sending batches at once (default 1,2: one "
        "client waits for each answer; two keep the model busy while the other's rows are written)",
    )
    parser.add_argument("--raw-batch-size", type=int, default=64, help="raw encode batch (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="threads of the raw model (default 2)")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="time bound of one measurement")
    parser.add_argument("--session", default="", help="run tag put in every text (default: from the clock)")
    parser.add_argument(
        "--pause",
        default="graph,reflection",
        help="services stopped during the measurements (default graph,reflection: their derived work "
        "on every new memory - extraction, reflections - runs asynchronously and is measured by its "
        "own benchmarks; on 2 shared cores it would come out of the model's CPU); '' keeps all",
    )
    args = parser.parse_args()

    machine = machine_info()
    session = args.session or format(int(time.time()), "x")
    factory = TextFactory(args.seed, session)
    tenant = f"bench-ingest-{session}"
    runs: list[dict[str, Any]] = []

    paused = [name for name in args.pause.split(",") if name.strip()]
    levels = [int(n) for n in args.clients.split(",") if n.strip()]
    with bench_stack(args.keep, args.reuse_data) as stack:
        if paused:
            log(f"stopping {', '.join(paused)} for the measurements (--pause)")
            stack.down_services(paused)
        log("loading the embedding model in this process (rae_ml's loader)")
        from rae_ml.adapters.sentence_transformer import load_local_embedder

        embedder = load_local_embedder(threads=args.threads)
        gateways = [Gateway(stack, tenant) for _ in range(max(levels))]
        metrics = ServiceMetrics(
            stack,
            {
                "gateway": ("gateway", "rae_http_request_duration_seconds", {"route": "/v1/memories/batch"}),
                "memory": ("memory", "rae_http_request_duration_seconds", {"route": "/v1/memories/batch"}),
                "ml_embed": ("ml", "rae_http_request_duration_seconds", {"route": "/v1/ml/embed"}),
                "model": ("ml", "rae_embedding_batch_seconds", {}),
                "cache_hits": ("ml", "rae_embeddings", {"cache": "hit"}),
            },
        )
        try:
            log("warm-up (not counted): one raw batch, one gateway batch")
            warm_texts = factory.memories(args.raw_batch_size, f"{session}-warm")
            measure_raw(embedder, warm_texts, args.raw_batch_size)
            warm = measure_gateway(
                gateways[:1],
                metrics,
                factory.memories(64, f"{session}-warm"),
                args.batch_size,
                args.max_seconds,
            )
            if warm["errors"]:
                log(f"warm-up failed: {warm['errors'][:2]}")
                return 1
            roots = stack_pids(stack)
            for run in range(1, args.runs + 1):
                load_before = load_average()
                texts = factory.memories(args.texts, f"{session}-{run}r")
                quiet = wait_quiet()
                cpu = CpuSample.now(roots)
                raw = measure_raw(embedder, texts, args.raw_batch_size)
                raw.update(cpu=cpu.until(CpuSample.now(roots)), quiet=quiet)
                log(f"run {run}: raw model {raw['per_s']:.1f} sentences/s, cpu {raw['cpu']}")
                vias = []
                for clients in levels:
                    texts = factory.memories(args.texts, f"{session}-{run}g{clients}")
                    quiet = wait_quiet()
                    cpu = CpuSample.now(roots)
                    via = measure_gateway(
                        gateways[:clients], metrics, texts, args.batch_size, args.max_seconds
                    )
                    via.update(
                        cpu=cpu.until(CpuSample.now(roots)), quiet=quiet, ratio=via["per_s"] / raw["per_s"]
                    )
                    log(
                        f"run {run}: gateway, {clients} client(s), {via['per_s']:.1f} memories/s "
                        f"(model {via['model_encode_s']:.1f} s of {via['seconds']:.1f} s, "
                        f"{len(via['errors'])} errors), cpu {via['cpu']}"
                    )
                    vias.append(via)
                runs.append(
                    {
                        "run": run,
                        "raw": raw,
                        "gateway": vias,
                        "load_average": {"before": load_before, "after": load_average()},
                    }
                )
        finally:
            for gateway in gateways:
                gateway.close()

    raw_med = median([r["raw"]["per_s"] for r in runs])
    by_clients: dict[str, dict[str, Any]] = {}
    for n, clients in enumerate(levels):
        vias = [r["gateway"][n] for r in runs]
        gw_med = median([v["per_s"] for v in vias])
        ratio = gw_med / raw_med if raw_med else math.nan
        by_clients[str(clients)] = {
            "gateway_memories_per_s_median": gw_med,
            "ratio": ratio,
            "median_of_run_ratios": median([v["ratio"] for v in vias]),
            "meets_target": ratio >= TARGET_RATIO,
            "model_share_of_gateway_wall_median": median([v["model_encode_s"] / v["seconds"] for v in vias]),
        }
    errors = sum(len(v["errors"]) for r in runs for v in r["gateway"])
    document = {
        "benchmark": "ingest_throughput",
        "machine": {**machine, "load_average_at_end": load_average()},
        "parameters": {
            "runs": args.runs,
            "texts_per_measurement": args.texts,
            "gateway_batch_size": args.batch_size,
            "gateway_clients": levels,
            "raw_batch_size": args.raw_batch_size,
            "raw_torch_threads": args.threads,
            "backend": "onnx" if type(embedder).__name__ == "OnnxEmbedder" else "torch",
            "ml_service_torch_threads": int(os.environ.get("ML_TORCH_THREADS", "2")),
            "seed": args.seed,
            "paused_services": paused,
            "session": session,
            "tenant": tenant,
            "mean_words_per_text": statistics.fmean(
                len(t.split()) for t in factory.memories(200, f"{session}-stats")
            ),
        },
        "runs": runs,
        "summary": {
            "raw_sentences_per_s_median": raw_med,
            "by_clients": by_clients,
            "target_ratio": TARGET_RATIO,
            "errors": errors,
            "embedding_cache_hits_during_gateway": sum(
                v["embedding_cache_hits"] for r in runs for v in r["gateway"]
            ),
        },
    }
    table = render_table(runs, raw_med, by_clients)
    print(table)
    print()
    emit_json(document, args.json)
    if args.write_docs:
        update_docs("ingest_throughput", render_docs(document, table))
    return 0 if errors == 0 else 1


def render_table(runs: list[dict[str, Any]], raw_med: float, by_clients: dict[str, dict[str, Any]]) -> str:
    rows: list[list[Any]] = []
    for r in runs:
        for g in r["gateway"]:
            rows.append(
                [
                    str(r["run"]),
                    str(g["clients"]),
                    r["raw"]["per_s"],
                    g["per_s"],
                    f"{g['ratio']:.2f}",
                    g["request_latency"]["p50_ms"],
                    f"{100 * g['model_encode_s'] / g['seconds']:.0f} %",
                    f"{r['raw']['cpu']['other_cores']:.2f} / {g['cpu']['other_cores']:.2f}",
                    str(len(g["errors"])),
                ]
            )
    for clients, s in by_clients.items():
        rows.append(
            [
                "median",
                clients,
                raw_med,
                s["gateway_memories_per_s_median"],
                f"{s['ratio']:.2f}",
                "",
                f"{100 * s['model_share_of_gateway_wall_median']:.0f} %",
                "",
                "",
            ]
        )
    main_table = format_table(
        [
            "run",
            "clients",
            "raw model (sentences/s)",
            "gateway batch (memories/s)",
            "ratio",
            "batch request p50 (ms)",
            "model share of gateway wall",
            "other load, cores (raw / gw)",
            "errors",
        ],
        rows,
    )
    split = format_table(
        [
            "run",
            "clients",
            "wall s",
            "gateway s",
            "memory s",
            "ml /embed s",
            "model encode s",
            "model idle s",
            "CPU cores by component",
        ],
        [
            [
                str(r["run"]),
                str(g["clients"]),
                g["seconds"],
                g["gateway_s"],
                g["memory_s"],
                g["ml_embed_s"],
                g["model_encode_s"],
                g["seconds"] - g["model_encode_s"],
                ", ".join(
                    f"{name} {cores:.2f}"
                    for name, cores in list(g["cpu"]["stack_cores_by_component"].items())[:5]
                ),
            ]
            for r in runs
            for g in r["gateway"]
        ],
    )
    title = (
        "Where the gateway measurement's time went (the services' own histograms; a column of request "
        "durations adds up requests that overlap: two clients' batches, and the two embedding requests "
        "the memory service keeps in flight per batch; model idle = wall - model encode):"
    )
    return f"{main_table}\n\n{title}\n\n{split}"


def render_docs(doc: dict[str, Any], table: str) -> str:
    m, p, s = doc["machine"], doc["parameters"], doc["summary"]
    dirty = " + uncommitted changes" if m["git_dirty"] else ""
    lines = [
        f"### Results ({m['date'][:10]}, commit `{m['git_commit'][:10]}`{dirty})",
        "",
        f"{m['cores']} cores ({m['cpu_model']}), Python {m['python']}; "
        f"load average {m['load_average_at_start']} at start, {m['load_average_at_end']} at end.",
        f"`--runs {p['runs']}`: {p['texts_per_measurement']} texts per measurement "
        f"(mean {p['mean_words_per_text']:.1f} words), gateway batches of {p['gateway_batch_size']} "
        f"from {' and '.join(map(str, p['gateway_clients']))} client(s) at once, "
        f"raw batches of {p['raw_batch_size']} with {p['raw_torch_threads']} threads "
        f"({p.get('backend', 'torch')}); "
        f"services stopped during the measurements: {', '.join(p.get('paused_services') or ['none'])}.",
        "",
        table,
        "",
        *(
            f"**{clients} client{'s' if clients != '1' else ''}: ratio median(gateway) / median(raw) = "
            f"{c['ratio']:.2f}** ({fmt(c['gateway_memories_per_s_median'])} / "
            f"{fmt(s['raw_sentences_per_s_median'])}); it {'meets' if c['meets_target'] else 'misses'} "
            f"the target of >= {s['target_ratio']}. Median of the per-run ratios: "
            f"{c['median_of_run_ratios']:.2f}.\n"
            for clients, c in s["by_clients"].items()
        ),
        f"Errors: {s['errors']}; embedding-cache hits during the gateway measurements: "
        f"{s['embedding_cache_hits_during_gateway']:.0f}.",
        "",
        "`other load` = cores busy machine-wide minus this benchmark process minus the stack's "
        "processes (other people's work on the shared machine) during each measurement.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
