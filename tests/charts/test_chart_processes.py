"""The chart, run: what `helm template` renders starts a working suite.

No cluster runs here, so each rendered container is started as a local process with exactly its
rendered command and environment (ConfigMap and Secret references resolved from the rendered
objects). The values are the chart's test values plus what an operator writes for their own
infrastructure, here the session's local stack; the only translation is a Service's DNS name
(`r-rae-memory`) to 127.0.0.1, where the process of that Service listens. The seven services must
get ready, then the `helm test` Pod's command must pass its round trip: a memory written through
the gateway, found by search, seen by the event engine.

A service rendered without a setting it needs fails here: outside the local stack a service
never falls back to the local defaults (rae_common.settings.DEPLOYED_REQUIRES), and the
deployment would not start.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from rae_common.settings import DEPLOYED_REQUIRES, INFRASTRUCTURE, INFRASTRUCTURE_SETTINGS, ServiceSettings
from rae_common.testing import SUITE_CONSUMER_GROUPS, skip_backlog
from rae_localstack import Stack
from rae_localstack._stack import BASE_PORTS

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_VALUES = REPO_ROOT / "charts" / "rae" / "ci" / "test-values.yaml"
MIGRATIONS_VALUES = REPO_ROOT / "charts" / "rae" / "ci" / "migrations-values.yaml"
RELEASE = "r"
SERVICES = ("gateway", "memory", "ml", "graph", "reflection", "cost", "events")
VENV_BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 180.0
STOP_GRACE_S = 20.0

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Container:
    """One rendered container, ready to run: its command and its environment, resolved."""

    owner: str
    name: str
    command: list[str]
    env: dict[str, str]


@dataclass(frozen=True)
class Rendered:
    manifests: list[Manifest]

    def objects(self, kind: str) -> dict[str, Manifest]:
        return {m["metadata"]["name"]: m for m in self.manifests if m["kind"] == kind}

    def deployment(self, service: str) -> Manifest:
        return self.objects("Deployment")[f"{RELEASE}-rae-{service}"]

    def service_hosts(self) -> dict[str, str]:
        """Every Service's DNS name -> the address its process listens on here."""
        return dict.fromkeys(self.objects("Service"), "127.0.0.1")

    def _config_value(self, kind: str, name: str, key: str) -> str:
        objects = self.objects(kind)
        if name not in objects:
            raise AssertionError(f"{kind} {name} is referenced but not rendered")
        obj = objects[name]
        if kind == "Secret":
            if key in obj.get("stringData", {}):
                return str(obj["stringData"][key])
            data = obj.get("data", {})
            if key not in data:
                raise AssertionError(f"Secret {name} has no key {key}")
            return base64.b64decode(data[key]).decode()
        data = obj.get("data", {})
        if key not in data:
            raise AssertionError(f"ConfigMap {name} has no key {key}")
        return str(data[key])

    def _all_values(self, kind: str, name: str) -> dict[str, str]:
        obj = self.objects(kind)[name]
        if kind == "Secret":
            values = {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
            values.update({k: str(v) for k, v in obj.get("stringData", {}).items()})
            return values
        return {k: str(v) for k, v in obj.get("data", {}).items()}

    def resolve(self, owner: str, spec: Manifest) -> Container:
        """A container spec's command and environment as the kubelet would give them."""
        env: dict[str, str] = {}
        for source in spec.get("envFrom", []):
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                values = self._all_values("ConfigMap", source["configMapRef"]["name"])
            else:
                values = self._all_values("Secret", source["secretRef"]["name"])
            env.update({prefix + k: v for k, v in values.items()})
        for item in spec.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
                continue
            ref = item["valueFrom"]
            if "configMapKeyRef" in ref:
                r = ref["configMapKeyRef"]
                env[item["name"]] = self._config_value("ConfigMap", r["name"], r["key"])
            elif "secretKeyRef" in ref:
                r = ref["secretKeyRef"]
                env[item["name"]] = self._config_value("Secret", r["name"], r["key"])
            elif "fieldRef" in ref:
                env[item["name"]] = f"{owner}-pod"  # metadata.name and the like
            else:
                raise AssertionError(f"{owner}: cannot resolve {item}")
        command = [*spec.get("command", []), *spec.get("args", [])]
        assert command, f"{owner}/{spec['name']} renders no command: it would run the image's default"
        return Container(owner, spec["name"], command, env)

    def pod_containers(self, service: str) -> tuple[list[Container], Container]:
        pod = self.deployment(service)["spec"]["template"]["spec"]
        inits = [self.resolve(service, spec) for spec in pod.get("initContainers", [])]
        (main,) = [spec for spec in pod["containers"] if spec["name"] == service]
        return inits, self.resolve(service, main)

    def test_pods(self) -> list[Container]:
        pods = [
            m
            for m in self.manifests
            if m["kind"] == "Pod" and "test" in m["metadata"].get("annotations", {}).get("helm.sh/hook", "")
        ]
        return [self.resolve(p["metadata"]["name"], spec) for p in pods for spec in p["spec"]["containers"]]


def _map_hosts(env: Mapping[str, str], hosts: Mapping[str, str]) -> dict[str, str]:
    """A Service's DNS name, short or qualified, wherever it appears in a value
    (`http://r-rae-memory:8801`, `http://r-rae-memory.rae.svc.cluster.local:8801`), to the
    address of its process."""
    mapped: dict[str, str] = {}
    for name, value in env.items():
        for host, address in hosts.items():
            value = re.sub(rf"//{re.escape(host)}(\.[a-z0-9.-]+)?(?=[:/]|$)", f"//{address}", value)
        mapped[name] = value
    return mapped


@pytest.fixture(scope="module")
def ports(sub_stack_offset: Callable[[str], int]) -> dict[str, int]:
    offset = sub_stack_offset("chart-processes")
    return {name: BASE_PORTS[name] + offset for name in SERVICES}


@dataclass(frozen=True)
class Deployment:
    """How an operator deploys: the chart's values files and their values for their own servers."""

    values_files: tuple[Path, ...]
    operator_values: dict[str, Any]


def _infrastructure_values(stack: Stack, ports: Mapping[str, int]) -> dict[str, Any]:
    """What an operator writes for their own infrastructure: here, the session's local stack."""
    env = stack.service_env()
    return {
        "global": {
            "postgres": {"url": env["DATABASE_URL"]},
            "kafka": {"bootstrapServers": env["KAFKA_BOOTSTRAP_SERVERS"]},
            "redis": {"url": env["REDIS_URL"]},
            "neo4j": {"uri": env["NEO4J_URI"], "user": env["NEO4J_USER"], "database": env["NEO4J_DATABASE"]},
        },
        "secrets": {
            "neo4jPassword": env["NEO4J_PASSWORD"],
            "jwtSecret": env["JWT_SECRET"],
            "adminToken": env["RAE_ADMIN_TOKEN"],
        },
        # The local broker lacks InitProducerId; it joins groups faster with short sessions.
        "config": {
            "KAFKA_ENABLE_IDEMPOTENCE": False,
            "KAFKA_SESSION_TIMEOUT_MS": 2000,
            "KAFKA_HEARTBEAT_INTERVAL_MS": 500,
        },
        **{name: {"port": port} for name, port in ports.items()},
    }


async def _admin_sql(stack: Stack, *statements: str, database: str = "postgres") -> None:
    # The local stack's superuser reaches its server through the Unix socket only.
    socket_dir = stack._pg_socket_dir(stack.data_dir("postgres"), None)
    conn = await asyncpg.connect(
        host=str(socket_dir), port=stack.port("postgres"), user="postgres", database=database
    )
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="module", params=["one-role", "migrate-init-container"])
def deployment(
    request: pytest.FixtureRequest, stack: Stack, ports: Mapping[str, int]
) -> Iterator[Deployment]:
    """`one-role`: the services migrate their own schemas with DATABASE_URL. `migrate-init-container`:
    docs/deploy/kubernetes.md's two roles, set up as it says (a database owned by a migration role,
    the vector extension created by the admin, an app role), then the chart's `migrate` init
    containers run rae-migrate with the owner's URL and the services connect as the app role."""
    values = _infrastructure_values(stack, ports)
    if request.param == "one-role":
        yield Deployment((TEST_VALUES,), values)
        return
    assert not stack.is_external("postgres"), "this deployment creates a database and roles as the superuser"
    suffix = uuid.uuid4().hex[:8]
    database, owner, app = f"rae_chart_{suffix}", f"rae_owner_{suffix}", f"rae_app_{suffix}"
    owner_password, app_password = uuid.uuid4().hex, uuid.uuid4().hex
    asyncio.run(
        _admin_sql(
            stack,
            f"CREATE ROLE {owner} LOGIN PASSWORD '{owner_password}'",
            f"CREATE ROLE {app} LOGIN PASSWORD '{app_password}'",
            f"CREATE DATABASE {database} OWNER {owner}",
        )
    )
    try:
        asyncio.run(_admin_sql(stack, "CREATE EXTENSION IF NOT EXISTS vector", database=database))
        port = stack.port("postgres")
        values["global"]["postgres"] = {
            "url": f"postgresql://{app}:{app_password}@127.0.0.1:{port}/{database}",
            "migrationUrl": f"postgresql://{owner}:{owner_password}@127.0.0.1:{port}/{database}",
        }
        values["config"]["DATABASE_APP_ROLE"] = app
        yield Deployment((MIGRATIONS_VALUES,), values)
    finally:
        asyncio.run(
            _admin_sql(
                stack,
                f"DROP DATABASE IF EXISTS {database} WITH (FORCE)",
                f"DROP ROLE IF EXISTS {app}",
                f"DROP ROLE IF EXISTS {owner}",
            )
        )


@pytest.fixture(scope="module")
def rendered(
    deployment: Deployment, render: Callable[..., list[Manifest]], tmp_path_factory: pytest.TempPathFactory
) -> Rendered:
    values = tmp_path_factory.mktemp("chart-processes") / "operator-values.yaml"
    values.write_text(yaml.safe_dump(deployment.operator_values))
    files = [arg for path in (*deployment.values_files, values) for arg in ("-f", str(path))]
    return Rendered(render(*files))


def _process_env(container: Container, hosts: Mapping[str, str]) -> dict[str, str]:
    # Exactly the rendered environment; PATH stands for the image's (its venv's bin first).
    return {**_map_hosts(container.env, hosts), "PATH": f"{VENV_BIN}{os.pathsep}/usr/bin:/bin"}


def _run(
    container: Container, hosts: Mapping[str, str], cwd: Path, *, timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """Run a container's command to its end (an init container, the helm test Pod)."""
    return subprocess.run(
        container.command,
        env=_process_env(container, hosts),
        cwd=cwd,  # no `.env` of the work tree is read: the rendered environment is all
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@dataclass
class Running:
    container: Container
    process: subprocess.Popen[bytes]
    log: Path


def _start(container: Container, hosts: Mapping[str, str], logs: Path) -> Running:
    log = logs / f"{container.owner}-{container.name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            container.command,
            env=_process_env(container, hosts),
            cwd=logs,  # no `.env` of the work tree is read: the rendered environment is all
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Running(container, process, log)


def _stop(running: list[Running]) -> None:
    for r in running:
        if r.process.poll() is None:
            r.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for r in running:
        try:
            r.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            r.process.kill()
            r.process.wait(timeout=10)


def _wait_ready(running: list[Running], ports: Mapping[str, int]) -> None:
    waiting = {r.container.owner: r for r in running}
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(timeout=2) as client:
        while waiting:
            for owner, r in list(waiting.items()):
                if r.process.poll() is not None:
                    raise AssertionError(
                        f"{owner} exited {r.process.returncode} before it was ready:\n{_tail(r.log)}"
                    )
                try:
                    if client.get(f"http://127.0.0.1:{ports[owner]}/readyz").status_code == 200:
                        del waiting[owner]
                except httpx.HTTPError:
                    pass
            if waiting and time.monotonic() >= deadline:
                tails = "\n\n".join(f"--- {o}\n{_tail(r.log)}" for o, r in waiting.items())
                raise AssertionError(f"not ready within {READY_TIMEOUT_S:.0f} s: {sorted(waiting)}\n{tails}")
            time.sleep(0.3)


@pytest.fixture(scope="module")
def suite(rendered: Rendered, stack: Stack, ports: Mapping[str, int]) -> Iterator[Rendered]:
    """The seven services started from the rendered Deployments (init containers first)."""
    asyncio.run(skip_backlog(stack.service_env()["KAFKA_BOOTSTRAP_SERVERS"], SUITE_CONSUMER_GROUPS))
    hosts = rendered.service_hosts()
    logs = Path(tempfile.mkdtemp(prefix="rae-chart-processes-"))
    running: list[Running] = []
    try:
        for service in SERVICES:
            inits, _ = rendered.pod_containers(service)
            for init in inits:
                done = _run(init, hosts, logs, timeout_s=120)
                assert done.returncode == 0, (
                    f"{service} init container {init.name}: {done.stdout}{done.stderr}"
                )
        for service in SERVICES:
            running.append(_start(rendered.pod_containers(service)[1], hosts, logs))
        _wait_ready(running, ports)
        yield rendered
    finally:
        _stop(running)
        shutil.rmtree(logs, ignore_errors=True)


def test_each_service_is_rendered_with_every_setting_its_infrastructure_needs(rendered: Rendered) -> None:
    """Checked on the rendered objects, before anything runs: each service's settings class
    declares what it uses, and the chart gives it the settings of exactly that."""
    for service in SERVICES:
        module = importlib.import_module(f"rae_{service}.main")
        (settings_class,) = [
            v
            for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings
        ]
        _, main = rendered.pod_containers(service)
        needed = {name.upper() for infra in settings_class.uses for name in DEPLOYED_REQUIRES.get(infra, ())}
        assert needed <= set(main.env), f"{service} lacks {sorted(needed - set(main.env))}"
        unused = set(INFRASTRUCTURE) - set(settings_class.uses)
        foreign = {n.upper() for infra in unused for n in INFRASTRUCTURE_SETTINGS[infra]} & set(main.env)
        assert not foreign, (
            f"{service} is given settings of infrastructure it does not use: {sorted(foreign)}"
        )
        assert main.env.get("RAE_SERVICE") == service
        assert main.command == ["rae-serve"]
        inits, _ = rendered.pod_containers(service)
        if inits:  # migrations in the init container, with their own (privileged) URL
            (migrate,) = [c for c in inits if c.name == "migrate"]
            assert migrate.command == ["rae-migrate"]
            assert migrate.env["DATABASE_URL"] != main.env["DATABASE_URL"]
            assert main.env["DATABASE_MIGRATE_ON_START"] == "false"


def test_the_rendered_suite_starts_and_passes_the_helm_test_round_trip(
    suite: Rendered, tmp_path: Path
) -> None:
    tests = suite.test_pods()
    assert tests, "the chart renders no helm test Pod"
    hosts = suite.service_hosts()
    for container in tests:
        done = _run(container, hosts, tmp_path, timeout_s=300)
        assert done.returncode == 0, f"helm test {container.owner}: {done.stdout}{done.stderr}"
        assert "rae-smoke: passed" in done.stdout


def test_a_service_rendered_without_its_database_url_stops_at_once_naming_it(
    rendered: Rendered, tmp_path: Path
) -> None:
    """What a chart that forgot ml's DATABASE_URL (as it once did) now gets: a pod that exits at
    start-up with the missing variable in its log, not one that reaches for 127.0.0.1."""
    _, ml = rendered.pod_containers("ml")
    assert "DATABASE_URL" in ml.env
    broken = Container(
        ml.owner, ml.name, ml.command, {k: v for k, v in ml.env.items() if k != "DATABASE_URL"}
    )
    done = _run(broken, rendered.service_hosts(), tmp_path, timeout_s=120)
    assert done.returncode != 0
    assert "needs DATABASE_URL" in done.stdout + done.stderr


def test_the_operators_smoke_check_passes_against_the_gateway_and_fails_clearly_without_the_token(
    suite: Rendered, ports: Mapping[str, int]
) -> None:
    """`scripts/smoke-check.sh --url` (the operator's check from outside the cluster), with the
    same token the helm test Pod gets, and with a wrong one."""
    _, gateway = suite.pod_containers("gateway")
    url = f"http://127.0.0.1:{ports['gateway']}"
    script = str(REPO_ROOT / "scripts" / "smoke-check.sh")
    env = {"PATH": os.environ["PATH"], "RAE_ADMIN_TOKEN": gateway.env["RAE_ADMIN_TOKEN"]}
    done = subprocess.run(
        [script, "--url", url], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok: hybrid search finds it" in done.stdout
    wrong = subprocess.run(
        [script, "--url", url],
        env={**env, "RAE_ADMIN_TOKEN": "wrong"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert wrong.returncode == 1
    assert "rae-smoke: FAILED: POST /v1/admin/tenants answered 401" in wrong.stderr
