"""Shared helpers of the benchmarks: the bench stack, tokens, a gateway client, service metrics,
timing statistics, machine information, tables and the docs/BENCHMARKS.md sections.

The benchmarks are scripts, not tests: they print a table and a JSON document. Run them from the
repository root with the project's virtualenv (`.venv/bin/python bench/<script>.py`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from rae_common.auth import issue_token
from rae_localstack import INFRA, SERVICES, Stack

__all__ = [
    "BENCH_SERVICE_ENV",
    "DOCS",
    "PORT_OFFSET",
    "ROOT",
    "STATE_DIR",
    "Gateway",
    "ServiceMetrics",
    "CpuSample",
    "base_parser",
    "bench_stack",
    "emit_json",
    "format_table",
    "log_tail",
    "machine_info",
    "median",
    "stack_pids",
    "tree_cpu_seconds",
    "percentile",
    "summarize",
    "token",
    "update_docs",
    "wait_quiet",
]

ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = ROOT / ".rae-local" / "bench"
PORT_OFFSET = 2000
DOCS = ROOT / "docs" / "BENCHMARKS.md"

# 0 = unlimited in the gateway settings (GatewaySettings.rate_limit_*_per_min).
BENCH_SERVICE_ENV: Mapping[str, str] = {
    "RATE_LIMIT_MEMORIES_CREATE_PER_MIN": "0",
    "RATE_LIMIT_SEARCH_PER_MIN": "0",
    "RATE_LIMIT_ML_GENERATE_PER_MIN": "0",
    "LOG_LEVEL": "WARNING",
}
SCOPES = ("memories:read", "memories:write", "ml:use")


def log(message: str) -> None:
    """Progress on stderr (stdout carries the table and the JSON document)."""
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- the stack


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=3, help="measurement runs (default 3), medians quoted")
    parser.add_argument("--json", type=Path, help="also write the JSON document to this file")
    parser.add_argument(
        "--write-docs", action="store_true", help="update this benchmark's section of docs/BENCHMARKS.md"
    )
    parser.add_argument("--keep", action="store_true", help="leave the bench stack running at the end")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated texts (default 1)")
    parser.add_argument(
        "--reuse-data",
        action="store_true",
        help="keep the bench stack's data from earlier invocations (default: start from empty servers "
        "whenever the bench stack is not already running)",
    )
    return parser


@contextlib.contextmanager
def bench_stack(
    keep: bool, reuse_data: bool = False, extra_env: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    """The suite on 127.0.0.1 (ports + 2000, state in .rae-local/bench), rate limits off.

    Unless `reuse_data`, a bench stack that is not running starts from empty servers (its data
    directory is deleted first), so earlier invocations' rows do not grow the table. Stopped at
    the end (also on errors) unless `keep`; on a failure the services' log tails are printed to
    stderr first.
    """
    stack = Stack(STATE_DIR, port_offset=PORT_OFFSET)
    running = [s.name for s in stack.status() if s.state in ("ready", "running")]
    if running:
        log(f"the bench stack is already running ({', '.join(running)}): reusing it and its data")
    elif not reuse_data and stack.data_root.exists():
        log(f"deleting {stack.data_root} (earlier bench data; --reuse-data keeps it)")
        shutil.rmtree(stack.data_root)
    started = time.perf_counter()
    try:
        log(f"starting the bench stack in {STATE_DIR} (port offset {PORT_OFFSET})")
        stack.up_infra()
        stack.up_services(extra_env={**BENCH_SERVICE_ENV, **(extra_env or {})})
        log(f"stack ready in {time.perf_counter() - started:.1f} s")
        yield stack
    except BaseException:
        for service in ("gateway", "memory", "ml"):
            tail = log_tail(stack, service)
            print(f"--- last lines of {stack.log_file(service)} ---\n{tail}", file=sys.stderr)
        raise
    finally:
        if keep:
            log(
                "--keep: the bench stack keeps running (stop it with "
                "`.venv/bin/python -m rae_localstack --state-dir .rae-local/bench --port-offset 2000 down`)"
            )
        else:
            log("stopping the bench stack")
            stack.down()


def log_tail(stack: Stack, service: str, lines: int = 30) -> str:
    path = stack.log_file(service)
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def token(stack: Stack, tenant_id: str, ttl_s: int = 6 * 3600) -> str:
    return issue_token(
        stack.service_env()["JWT_SECRET"], subject="bench", tenant_id=tenant_id, scopes=SCOPES, ttl_s=ttl_s
    )


@dataclass
class Response:
    status: int
    body: Any
    seconds: float


class Gateway:
    """A keep-alive client of the gateway for one tenant; `post` times the HTTP call alone."""

    def __init__(self, stack: Stack, tenant_id: str, timeout_s: float = 300.0) -> None:
        self.tenant_id = tenant_id
        self.client = httpx.Client(
            base_url=stack.service_url("gateway"),
            headers={"Authorization": f"Bearer {token(stack, tenant_id)}"},
            timeout=httpx.Timeout(timeout_s, connect=5.0),
        )

    def post(self, path: str, body: Any) -> Response:
        content = json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        started = time.perf_counter()
        response = self.client.post(path, content=content, headers=headers)
        payload = response.content  # read fully inside the timed span
        seconds = time.perf_counter() - started
        try:
            parsed: Any = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload[:500].decode(errors="replace")
        return Response(response.status_code, parsed, seconds)

    def close(self) -> None:
        self.client.close()


# ------------------------------------------------------------------------------ service metrics


@dataclass
class ServiceMetrics:
    """Sums and counts of the services' own metrics (their `/metrics`), read before and after a
    measurement, to split a client's latency into gateway, memory, ml and model time and to
    count embedding-cache hits. A histogram gives (sum of seconds, count); a counter (its
    `_total`) gives (total, total)."""

    stack: Stack
    # name -> (service, metric family, labels that must match)
    series: Mapping[str, tuple[str, str, Mapping[str, str]]] = field(default_factory=dict)

    def scrape(self) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        pages: dict[str, str] = {}
        with httpx.Client(timeout=10.0) as client:
            for name, (service, family, labels) in self.series.items():
                if service not in pages:
                    pages[service] = client.get(self.stack.service_url(service) + "/metrics").text
                total = count = 0.0
                for fam in text_string_to_metric_families(pages[service]):
                    if fam.name != family:
                        continue
                    for sample in fam.samples:
                        if any(sample.labels.get(k) != v for k, v in labels.items()):
                            continue
                        if sample.name == family + "_sum":
                            total += sample.value
                        elif sample.name == family + "_count":
                            count += sample.value
                        elif sample.name == family + "_total":
                            total += sample.value
                            count += sample.value
                out[name] = (total, count)
        return out

    @staticmethod
    def delta(
        before: Mapping[str, tuple[float, float]], after: Mapping[str, tuple[float, float]]
    ) -> dict[str, dict[str, float]]:
        """{name: {sum, count, mean_ms}} between two scrapes (mean_ms: sum/count in ms)."""
        out: dict[str, dict[str, float]] = {}
        for name, (total, count) in after.items():
            b_total, b_count = before.get(name, (0.0, 0.0))
            value, n = total - b_total, count - b_count
            out[name] = {"sum": value, "count": n, "mean_ms": 1000 * value / n if n else math.nan}
        return out


# ---------------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), p in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """Latency summary in milliseconds."""
    ms = [1000 * s for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms) if ms else math.nan,
        "min_ms": min(ms) if ms else math.nan,
        "max_ms": max(ms) if ms else math.nan,
    }


# ------------------------------------------------------------------------------- machine info


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    mem_gib = math.nan
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": _git("rev-parse", "HEAD"),
        # Uncommitted changes to what the stack runs (services, libs, deploy), not to docs or bench/.
        "git_dirty": bool(_git("status", "--porcelain", "--", "services", "libs", "deploy")),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def stack_pids(stack: Stack) -> dict[str, int]:
    """PID of each of the stack's processes (servers and services), from its PID files."""
    pids: dict[str, int] = {}
    for name in (*INFRA, *SERVICES):
        path = stack.data_dir("postgres") / "postmaster.pid" if name == "postgres" else stack.pid_file(name)
        with contextlib.suppress(OSError, ValueError, IndexError):
            pids[name] = int(path.read_text().split()[0])
    return pids


def tree_cpu_seconds(roots: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) used by each root's process tree (root included), including
    exited children it has reaped (e.g. Postgres backends and parallel workers)."""
    if not roots:
        return {}
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # fields from the 3rd (state) on
            parent[int(entry)] = int(fields[1])
            ticks[int(entry)] = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    name_of = {pid: name for name, pid in roots.items()}
    totals = dict.fromkeys(roots, 0)
    for pid, t in ticks.items():
        p, hops = pid, 0
        while p > 1 and p not in name_of and hops < 64:
            p, hops = parent.get(p, 0), hops + 1
        if p in name_of:
            totals[name_of[p]] += t
    hz = os.sysconf("SC_CLK_TCK")
    return {name: t / hz for name, t in totals.items()}


@dataclass(frozen=True)
class CpuSample:
    """Machine-wide jiffies (/proc/stat), this process' and the stack's CPU seconds, at one instant."""

    wall: float
    busy: int  # user + nice + system + irq + softirq (guest time is counted in user)
    total: int
    steal: int
    own_cpu_s: float
    stack_cpu_s: Mapping[str, float]

    @classmethod
    def now(cls, stack_roots: Mapping[str, int] | None = None) -> CpuSample:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        fields += [0] * (8 - len(fields))
        user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
        usage = os.times()
        return cls(
            wall=time.monotonic(),
            busy=user + nice + system + irq + softirq,
            total=user + nice + system + idle + iowait + irq + softirq + steal,
            steal=steal,
            own_cpu_s=usage.user + usage.system,
            stack_cpu_s=tree_cpu_seconds(stack_roots or {}),
        )

    def until(self, later: CpuSample) -> dict[str, Any]:
        """Cores (average over the interval) busy machine-wide, used by this process, by the
        stack (and by each of its components), by everything else (other people's work: noise),
        and stolen by the hypervisor."""
        cores = os.cpu_count() or 1
        total = max(1, later.total - self.total)
        wall = max(1e-9, later.wall - self.wall)
        machine = cores * (later.busy - self.busy) / total
        own = (later.own_cpu_s - self.own_cpu_s) / wall
        per = {
            name: round(max(0.0, later.stack_cpu_s.get(name, 0.0) - before) / wall, 2)
            for name, before in self.stack_cpu_s.items()
        }
        stack = sum(per.values())
        return {
            "machine_busy_cores": round(machine, 2),
            "bench_process_cores": round(own, 2),
            "stack_cores": round(stack, 2),
            "other_cores": round(max(0.0, machine - own - stack), 2),
            "steal_cores": round(cores * (later.steal - self.steal) / total, 2),
            "stack_cores_by_component": {k: v for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v},
        }


def wait_quiet(max_busy_cores: float = 0.3, timeout_s: float = 60.0) -> dict[str, float]:
    """Poll the machine's CPU use each second until at most `max_busy_cores` are busy (e.g. the
    stack's consumers have drained the last measurement's events), or `timeout_s` passes."""
    started = time.monotonic()
    busy = math.nan
    while time.monotonic() - started < timeout_s:
        before = CpuSample.now()
        time.sleep(1.0)
        busy = before.until(CpuSample.now())["machine_busy_cores"]
        if busy <= max_busy_cores:
            break
    return {"waited_s": round(time.monotonic() - started, 1), "busy_cores_before_start": busy}


# ------------------------------------------------------------------------------ output


def fmt(value: Any, digits: int = 1) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown pipe table, padded so it also reads well on a terminal."""
    cells = [[str(h) for h in headers], *[[fmt(c) if not isinstance(c, str) else c for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def emit_json(document: Mapping[str, Any], path: Path | None) -> None:
    text = json.dumps(document, indent=2, default=str, allow_nan=True)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
        log(f"wrote {path}")


def update_docs(section: str, markdown: str, path: Path = DOCS) -> None:
    """Replace (or append) the block between `<!-- bench:<section>:begin/end -->` markers."""
    begin, end = f"<!-- bench:{section}:begin -->", f"<!-- bench:{section}:end -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
    log(f"updated the {section} section of {path}")
