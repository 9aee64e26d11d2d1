"""The seven service images, built here from the one Dockerfile with podman on a base made of
Debian packages (deploy/images/build-images.sh), each run the way the chart runs it (read-only
root, /tmp the only writable path, uid 10001, no capabilities) against the session's stack.

Host networking only (no bridge network here): the containers reach the stack on 127.0.0.1, and
listen there on ports the kernel hands out (RAE_HOST, RAE_PORT: the chart's way to move a
port). The image store stays in .rae-local/images between sessions, so a second run reuses the
base and every unchanged layer (docs/deploy/images.md has the times).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import numpy as np
import pytest

from rae_common.serve import DEFAULT_PORTS
from rae_localstack import SERVICE_URL_VARS
from rae_ml.domain.embeddings import Embedder

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("RAE_IMAGES_STATE_DIR", ROOT / ".rae-local" / "images"))
PODMAN = [str(ROOT / "deploy" / "images" / "podman.sh"), "--state-dir", str(STATE_DIR)]
SERVICES = tuple(DEFAULT_PORTS)
TAG = "local"
# What the chart's securityContext amounts to, with host networking in place of a pod network.
AS_THE_CHART_RUNS_IT = (
    "--network=host",
    "--read-only",
    "--tmpfs=/tmp",
    "--user=10001:10001",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
)
# A cold build here took ~5 min (docs/deploy/images.md); a first start migrates each schema.
BUILD_TIMEOUT_S = 1800
READY_TIMEOUT_S = 180


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"podman {' '.join(args[:3])} ... failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def image(service: str) -> str:
    return f"localhost/rae-{service}:{TAG}"


@pytest.fixture(scope="module")
def images() -> Mapping[str, str]:
    """Build (or reuse) the seven images; a machine that cannot fails here with the reason."""
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "deploy" / "images" / "build-images.sh"), "--state-dir", str(STATE_DIR), "--tag", TAG],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, (
        f"building the images failed after {time.monotonic() - started:.0f} s:\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return {service: image(service) for service in SERVICES}


def free_port() -> int:
    """A port the kernel hands out, for a container on the host network."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def socket_mounts(env: Mapping[str, str]) -> list[str]:
    """`-v` options for Unix socket directories named by the database URL
    (`postgresql://u@/db?host=/run/postgresql`, or the host in the netloc): with host networking
    a container reaches TCP addresses on 127.0.0.1 as they are, but a socket must be mounted.
    The session's own stack serves Postgres on TCP."""
    url = urlsplit(env.get("DATABASE_URL", ""))
    hosts = [*parse_qs(url.query).get("host", []), unquote(url.hostname or "")]
    return [f"--volume={host}:{host}" for host in hosts if host.startswith("/")]


@dataclass(frozen=True)
class Container:
    id: str
    url: str

    def logs(self) -> str:
        return podman("logs", "--tail=40", self.id, check=False).stderr[-4000:]

    def wait_ready(self) -> httpx.Response:
        """/readyz's first 200; fails with the container's last log lines otherwise."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        last: httpx.Response | Exception | None = None
        while time.monotonic() < deadline:
            try:
                last = httpx.get(f"{self.url}/readyz", timeout=5)
                if last.status_code == 200:
                    return last
            except httpx.HTTPError as exc:
                last = exc
                state = podman("inspect", "--format={{.State.Status}}", self.id).stdout.strip()
                if state != "running":
                    pytest.fail(f"the container of {self.url} is {state}:\n{self.logs()}")
            time.sleep(0.5)
        pytest.fail(f"{self.url}/readyz not ready after {READY_TIMEOUT_S} s: {last!r}\n{self.logs()}")


@pytest.fixture(scope="module")
def running(
    images: Mapping[str, str], infra_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Container]]:
    """The seven containers, by service. Stopped (SIGTERM: consumers leave their groups) and
    removed by id at the end."""
    ports = {service: free_port() for service in SERVICES}
    urls = {service: f"http://127.0.0.1:{port}" for service, port in ports.items()}
    env_dir = tmp_path_factory.mktemp("images-env")
    containers: dict[str, Container] = {}
    try:
        for service in SERVICES:
            env = {
                **infra_env,
                **{SERVICE_URL_VARS[name]: url for name, url in urls.items()},
                "RAE_HOST": "127.0.0.1",
                "RAE_PORT": str(ports[service]),
            }
            env_file = env_dir / f"{service}.env"
            env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
            result = podman(
                "run",
                "--detach",
                *AS_THE_CHART_RUNS_IT,
                *socket_mounts(env),
                f"--env-file={env_file}",
                images[service],
            )
            containers[service] = Container(result.stdout.strip(), urls[service])
        yield containers
    finally:
        ids = [container.id for container in containers.values()]
        if ids:
            podman("stop", "--time=15", *ids, timeout=60, check=False)
            podman("rm", "--force", *ids, timeout=60, check=False)


def test_each_image_runs_as_the_chart_runs_it_and_becomes_ready(running: dict[str, Container]) -> None:
    for service, container in running.items():
        assert container.wait_ready().status_code == 200, service


def test_the_ml_image_embeds_with_its_baked_graph_and_has_no_torch(
    running: dict[str, Container], images: Mapping[str, str], local_embedder: Embedder
) -> None:
    ml = running["ml"]
    ml.wait_ready()
    texts = ["Alice prefers green tea in the morning.", "東京で会議があります。"]

    response = httpx.post(
        f"{ml.url}/v1/ml/embed", json={"texts": texts}, headers={"X-Tenant-ID": "images"}, timeout=30
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["dimensions"]) == ("all-MiniLM-L6-v2", 384)
    cosines = (np.array(body["vectors"]) * np.array(local_embedder.encode(texts))).sum(axis=1)
    assert cosines.min() >= 0.9999
    for module in ("torch", "sentence_transformers", "transformers"):
        result = podman(
            "run",
            "--rm",
            *AS_THE_CHART_RUNS_IT,
            images["ml"],
            "python",
            "-c",
            f"import {module}",
            check=False,
        )
        assert result.returncode == 1 and f"No module named '{module}'" in result.stderr, module


def test_the_ml_image_without_its_graph_refuses_to_start_saying_why(images: Mapping[str, str]) -> None:
    result = podman(
        "run",
        "--rm",
        *AS_THE_CHART_RUNS_IT,
        "--env=EMBEDDING_ONNX_CACHE_DIR=/tmp/none",
        images["ml"],
        check=False,
    )

    assert result.returncode != 0
    assert "no exported ONNX graph of all-MiniLM-L6-v2 in /tmp/none" in result.stderr
    assert "rae-ml[torch]" in result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_each_image_declares_how_it_runs_and_what_it_is(images: Mapping[str, str], service: str) -> None:
    (info,) = json.loads(podman("image", "inspect", images[service]).stdout)
    config = info["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])

    assert config["User"] == "10001:10001"
    assert config["Cmd"] == ["rae-serve"]
    assert config.get("Entrypoint") in (None, [])
    assert (env["RAE_SERVICE"], env["RAE_PORT"], env["HOME"]) == (
        service,
        str(DEFAULT_PORTS[service]),
        "/tmp",
    )
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == f"rae-{service}"
    assert labels["org.opencontainers.image.licenses"] == "MIT"
    assert labels["org.opencontainers.image.base.name"].startswith("localhost/rae-debian-python:")
    assert labels["org.opencontainers.image.version"]
    # The commit the build saw (HEAD may have moved on since).
    revision = labels["org.opencontainers.image.revision"]
    known = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{revision}^{{commit}}"], check=False)
    assert len(revision) == 40 and known.returncode == 0, revision
    # No build tools: no pip, no compiler; every file root's, so nothing the service runs as can change it.
    probe = (
        "import importlib.util, os, shutil; "
        "print(importlib.util.find_spec('pip') is None, shutil.which('gcc') is None, "
        "all(os.stat(os.path.join(d, f)).st_uid == 0 for d, _, fs in os.walk('/opt') for f in fs))"
    )
    result = podman("run", "--rm", *AS_THE_CHART_RUNS_IT, images[service], "python", "-c", probe)
    assert result.stdout.split() == ["True", "True", "True"]
