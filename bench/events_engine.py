"""Event engine: how many events per second the events service handles, and how long a memory
takes from `POST /v1/memories` (through the gateway) to `reflection.requested` on its topic.
Target: end-to-end p95 <= 1 s.

- Throughput: N `memory.created` envelopes (fresh ids) for T tenants, each tenant with a
  memory_count rule (every 20) whose action publishes `alert.raised` (so firings, the outbox and
  the relay are part of the work, but no reflection is started), produced to rae.memory.v1 in
  one burst (batched sends). Timed from the first send to the moment the events service's own
  `rae_events_consumed_total{type="memory.created"}` has counted all N (polled every 50 ms).
  Every handled event is one Postgres transaction (inbox, event log, rules, counters, firings,
  outbox) and one offset commit.
- Latency: one tenant with a memory_count rule every 1 memory (event action:
  `reflection.requested`). Sequential samples: `POST /v1/memories` with a new text through the
  gateway (auth, memory, embedding by ml, outbox) -> memory's relay -> rae.memory.v1 -> the
  engine's consumer -> rule, firing, outbox -> the events relay -> rae.reflection.v1 -> this
  script's consumer (assigned, not in a group, `fetch_max_wait_ms=5` so its own hop adds little).
  Latency = arrival of the record whose idempotency key names the memory's count, minus the send
  of the POST. The POST's own answer time is reported beside it.
- Rules are created on the events service directly (`X-Tenant-ID`), the memories go through the
  gateway. The services run with their defaults (consumer fetch wait, outbox poll interval, relay
  wake-on-write); only the gateway's rate limits are off.
- Before each measurement the script waits (up to 60 s) until the machine is nearly idle and
  records the cores used meanwhile by this process, the stack and anything else.

Usage (from the repository root):
    .venv/bin/python bench/events_engine.py --runs 3 [--events 3000] [--tenants 12] [--samples 40]
        [--json bench/results/events_engine.json] [--write-docs] [--keep]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
from _common import (
    CpuSample,
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
    token,
    update_docs,
    wait_quiet,
)
from _texts import TextFactory
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from rae_common.events import TOPIC_MEMORY, TOPIC_REFLECTION, MemoryCreated, new_envelope
from rae_common.messaging import KafkaPublisher, OutgoingRecord
from rae_localstack import Stack

TARGET_P95_MS = 1000.0
SEND_CHUNK = 500


async def metric(
    client: httpx.AsyncClient, url: str, family: str, labels: Mapping[str, str]
) -> tuple[float, float]:
    """(sum or total, count) of a metric family's samples matching `labels`."""
    text = (await client.get(url + "/metrics")).text
    total = count = 0.0
    for fam in text_string_to_metric_families(text):
        if fam.name != family:
            continue
        for sample in fam.samples:
            if any(sample.labels.get(k) != v for k, v in labels.items()):
                continue
            if sample.name == family + "_sum":
                total += sample.value
            elif sample.name in (family + "_count", family + "_total"):
                count += sample.value
                if sample.name.endswith("_total"):
                    total += sample.value
    return total, count


async def create_rule(client: httpx.AsyncClient, events_url: str, tenant: str, body: dict[str, Any]) -> str:
    response = await client.post(f"{events_url}/v1/events/rules", json=body, headers={"X-Tenant-ID": tenant})
    if response.status_code != 201:
        raise RuntimeError(f"rule for {tenant}: {response.status_code} {response.text[:300]}")
    rule_id: str = response.json()["id"]
    return rule_id


async def measure_throughput(
    stack: Stack, client: httpx.AsyncClient, tenants: list[str], events: int, max_seconds: float
) -> dict[str, Any]:
    events_url = stack.service_url("events")
    publisher = KafkaPublisher(stack.infra_env()["KAFKA_BOOTSTRAP_SERVERS"], client_id="bench-events")
    consumed = ("rae_events_consumed", {"type": "memory.created"})
    processing = ("rae_events_processing_seconds", {"type": "memory.created"})
    fired = ("rae_events_firings", {"rule_type": "memory_count", "action": "event"})
    try:
        envelopes = [
            new_envelope(
                "memory.created",
                MemoryCreated(memory_id=uuid.uuid4(), layer="episodic", content_hash=uuid.uuid4().hex),
                tenant_id=tenants[i % len(tenants)],
                producer="bench",
            )
            for i in range(events)
        ]
        records = [OutgoingRecord(TOPIC_MEMORY, e.to_json(), e.tenant_id) for e in envelopes]
        await publisher.send_records(records[:1])  # connects the producer outside the timed span
        base = (await metric(client, events_url, *consumed))[1]
        proc_before = await metric(client, events_url, *processing)
        fired_before = (await metric(client, events_url, *fired))[1]
        started = time.perf_counter()
        for i in range(1, len(records), SEND_CHUNK):
            await publisher.send_records(records[i : i + SEND_CHUNK])
        sent_s = time.perf_counter() - started
        done = 0.0
        while time.perf_counter() - started < max_seconds:
            done = (await metric(client, events_url, *consumed))[1] - base
            if done >= events:
                break
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
        proc_after = await metric(client, events_url, *processing)
        handled_n = proc_after[1] - proc_before[1]
        return {
            "events": events,
            "tenants": len(tenants),
            "handled": int(done),
            "complete": done >= events,
            "produce_seconds": sent_s,
            "seconds": seconds,
            "per_s": done / seconds,
            "mean_event_age_at_handling_ms": 1000 * (proc_after[0] - proc_before[0]) / handled_n
            if handled_n
            else None,
            "firings": int((await metric(client, events_url, *fired))[1] - fired_before),
        }
    finally:
        await publisher.stop()


class ReflectionWatch:
    """This script's consumer of rae.reflection.v1: arrival times of the tenant's records by
    idempotency key."""

    def __init__(self, bootstrap: str, tenant: str) -> None:
        self.bootstrap = bootstrap
        self.tenant = tenant.encode()
        self.arrived: dict[str, float] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5
        )
        await consumer.start()
        await consumer.topics()
        tps = [
            TopicPartition(TOPIC_REFLECTION, p) for p in consumer.partitions_for_topic(TOPIC_REFLECTION) or ()
        ]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            for records in (await self._consumer.getmany(timeout_ms=100)).values():
                now = time.perf_counter()
                for r in records:
                    if r.key == self.tenant and r.value:
                        self.arrived.setdefault(json.loads(r.value)["idempotency_key"], now)

    async def wait(self, key: str, timeout_s: float) -> float | None:
        deadline = time.perf_counter() + timeout_s
        while key not in self.arrived and time.perf_counter() < deadline:
            await asyncio.sleep(0.002)
        return self.arrived.get(key)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


async def measure_latency(
    gateway: httpx.AsyncClient,
    watch: ReflectionWatch,
    rule_id: str,
    first_count: int,
    texts: list[str],
) -> dict[str, Any]:
    latencies: list[float] = []
    posts: list[float] = []
    errors: list[dict[str, Any]] = []
    for n, text in enumerate(texts, start=first_count):
        started = time.perf_counter()
        response = await gateway.post("/v1/memories", json={"content": text})
        posts.append(time.perf_counter() - started)
        if response.status_code != 201:
            errors.append({"status": response.status_code, "body": response.text[:300]})
            continue
        arrived = await watch.wait(f"memory_count:{rule_id}:{n}", timeout_s=30)
        if arrived is None:
            errors.append({"error": f"no reflection.requested for memory {n} within 30 s"})
            continue
        latencies.append(arrived - started)
    return {
        "samples": len(texts),
        "errors": errors,
        "end_to_end": summarize(latencies),
        "post": summarize(posts),
    }


async def run(args: Any, stack: Stack, session: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    factory = TextFactory(args.seed, session)
    latency_tenant = f"bench-events-{session}-lat"
    bootstrap = stack.infra_env()["KAFKA_BOOTSTRAP_SERVERS"]
    events_url = stack.service_url("events")
    runs: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(timeout=30) as client,
        httpx.AsyncClient(
            base_url=stack.service_url("gateway"),
            headers={"Authorization": f"Bearer {token(stack, latency_tenant)}"},
            timeout=30,
        ) as gateway,
    ):
        rule_id = await create_rule(
            client,
            events_url,
            latency_tenant,
            {"name": "bench: every memory", "type": "memory_count", "params": {"every": 1}},
        )
        watch = ReflectionWatch(bootstrap, latency_tenant)
        await watch.start()
        try:
            log("warm-up (not counted): 5 memories end to end, 200 events through the engine")
            warm_tenants = [f"bench-events-{session}-warm"]
            await create_rule(client, events_url, warm_tenants[0], _throughput_rule())
            await measure_throughput(stack, client, warm_tenants, 200, args.max_seconds)
            warm = await measure_latency(gateway, watch, rule_id, 1, factory.memories(5, f"{session}-warm"))
            if warm["errors"]:
                raise RuntimeError(f"warm-up failed: {warm['errors'][:2]}")
            count = 6
            roots = stack_pids(stack)
            for number in range(1, args.runs + 1):
                load_before = load_average()
                tenants = [f"bench-events-{session}-r{number}-t{i}" for i in range(args.tenants)]
                for tenant in tenants:
                    await create_rule(client, events_url, tenant, _throughput_rule())
                quiet = await asyncio.to_thread(wait_quiet)
                cpu = CpuSample.now(roots)
                throughput = await measure_throughput(stack, client, tenants, args.events, args.max_seconds)
                throughput.update(cpu=cpu.until(CpuSample.now(roots)), quiet=quiet)
                log(
                    f"run {number}: engine {throughput['per_s']:.0f} events/s "
                    f"({throughput['handled']}/{throughput['events']} in {throughput['seconds']:.1f} s)"
                )
                texts = factory.memories(args.samples, f"{session}-{number}")
                quiet = await asyncio.to_thread(wait_quiet)
                cpu = CpuSample.now(roots)
                latency = await measure_latency(gateway, watch, rule_id, count, texts)
                latency.update(cpu=cpu.until(CpuSample.now(roots)), quiet=quiet)
                count += len(texts)
                e2e = latency["end_to_end"]
                log(
                    f"run {number}: end to end p50 {e2e['p50_ms']:.0f} ms, p95 {e2e['p95_ms']:.0f} ms "
                    f"({len(latency['errors'])} errors)"
                )
                runs.append(
                    {
                        "run": number,
                        "throughput": throughput,
                        "latency": latency,
                        "load_average": {"before": load_before, "after": load_average()},
                    }
                )
        finally:
            await watch.stop()
    return runs, {"latency_tenant": latency_tenant}


def _throughput_rule() -> dict[str, Any]:
    return {
        "name": "bench: alert every 20",
        "type": "memory_count",
        "params": {"every": 20},
        "action": {"kind": "event", "event_type": "alert.raised"},
    }


def main() -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000, help="events per throughput measurement (3000)")
    parser.add_argument("--tenants", type=int, default=12, help="tenants the events are spread over (12)")
    parser.add_argument("--samples", type=int, default=40, help="end-to-end samples per run (40)")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="time bound of one measurement")
    parser.add_argument("--session", default="", help="run tag in tenant ids and texts (default: the clock)")
    args = parser.parse_args()

    machine = machine_info()
    session = args.session or format(int(time.time()), "x")
    with bench_stack(args.keep, args.reuse_data) as stack:
        runs, extra = asyncio.run(run(args, stack, session))

    per_s = median([r["throughput"]["per_s"] for r in runs])
    latencies = [r["latency"]["end_to_end"] for r in runs]
    p95 = median([s["p95_ms"] for s in latencies])
    errors = sum(len(r["latency"]["errors"]) for r in runs) + sum(
        0 if r["throughput"]["complete"] else 1 for r in runs
    )
    document = {
        "benchmark": "events_engine",
        "machine": {**machine, "load_average_at_end": load_average()},
        "parameters": {
            "runs": args.runs,
            "events_per_throughput_measurement": args.events,
            "throughput_tenants": args.tenants,
            "latency_samples_per_run": args.samples,
            "seed": args.seed,
            "session": session,
            **extra,
        },
        "runs": runs,
        "summary": {
            "throughput_events_per_s_median": per_s,
            "end_to_end_p50_ms_median": median([s["p50_ms"] for s in latencies]),
            "end_to_end_p95_ms_median": p95,
            "post_p50_ms_median": median([r["latency"]["post"]["p50_ms"] for r in runs]),
            "target_p95_ms": TARGET_P95_MS,
            "meets_target": p95 <= TARGET_P95_MS,
            "errors": errors,
        },
    }
    table = render_table(runs)
    print(table)
    print()
    emit_json(document, args.json)
    if args.write_docs:
        update_docs("events_engine", render_docs(document, table))
    return 0 if errors == 0 else 1


def render_table(runs: list[dict[str, Any]]) -> str:
    rows: list[list[Any]] = []
    for r in runs:
        t, lat = r["throughput"], r["latency"]
        rows.append(
            [
                str(r["run"]),
                t["per_s"],
                t["mean_event_age_at_handling_ms"] or math.nan,
                lat["post"]["p50_ms"],
                lat["end_to_end"]["p50_ms"],
                lat["end_to_end"]["p95_ms"],
                lat["end_to_end"]["max_ms"],
                f"{t['cpu']['other_cores']:.2f} / {lat['cpu']['other_cores']:.2f}",
                str(len(lat["errors"]) + (0 if t["complete"] else 1)),
            ]
        )
    rows.append(
        [
            "median",
            median([r["throughput"]["per_s"] for r in runs]),
            "",
            median([r["latency"]["post"]["p50_ms"] for r in runs]),
            median([r["latency"]["end_to_end"]["p50_ms"] for r in runs]),
            median([r["latency"]["end_to_end"]["p95_ms"] for r in runs]),
            "",
            "",
            "",
        ]
    )
    main_table = format_table(
        [
            "run",
            "engine (events/s)",
            "mean event age at handling (ms)",
            "POST /v1/memories p50 (ms)",
            "end to end p50 (ms)",
            "end to end p95 (ms)",
            "end to end max (ms)",
            "other load, cores (tp / lat)",
            "errors",
        ],
        rows,
    )
    cores = format_table(
        ["run", "CPU cores by component during the throughput measurement"],
        [
            [
                str(r["run"]),
                ", ".join(
                    f"{name} {c:.2f}"
                    for name, c in list(r["throughput"]["cpu"]["stack_cores_by_component"].items())[:5]
                ),
            ]
            for r in runs
        ],
    )
    return f"{main_table}\n\n{cores}"


def render_docs(doc: dict[str, Any], table: str) -> str:
    m, p, s = doc["machine"], doc["parameters"], doc["summary"]
    verdict = "meets" if s["meets_target"] else "misses"
    dirty = " + uncommitted changes" if m["git_dirty"] else ""
    lines = [
        f"### Results ({m['date'][:10]}, commit `{m['git_commit'][:10]}`{dirty})",
        "",
        f"{m['cores']} cores ({m['cpu_model']}), Python {m['python']}; "
        f"load average {m['load_average_at_start']} at start, {m['load_average_at_end']} at end.",
        f"`--runs {p['runs']}`: {p['events_per_throughput_measurement']} events over "
        f"{p['throughput_tenants']} tenants per throughput measurement; "
        f"{p['latency_samples_per_run']} end-to-end samples per run.",
        "",
        table,
        "",
        f"**Engine throughput {fmt(s['throughput_events_per_s_median'], 0)} events/s; end to end "
        f"p50 {fmt(s['end_to_end_p50_ms_median'], 0)} ms, p95 {fmt(s['end_to_end_p95_ms_median'], 0)} ms** "
        f"(medians of the runs): it {verdict} the target of p95 <= {s['target_p95_ms']:.0f} ms. "
        f"Errors: {s['errors']}.",
        "",
        "`mean event age at handling` = the engine's own `rae_events_processing_seconds` (occurred_at "
        "to commit) averaged over the burst: mostly queueing behind the burst. `other load` = cores "
        "busy machine-wide minus this benchmark process minus the stack's processes.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
