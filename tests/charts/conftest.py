"""Helm for the chart tests: the static helm of deploy/tools/install-helm.sh on a private copy of
charts/ (so the work tree stays clean), rendering with `helm template` offline."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "rae"
KUBE_VERSION = "1.31.0"

Manifest = dict[str, Any]


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def helm_env() -> dict[str, str]:
    run(["bash", str(REPO_ROOT / "deploy" / "tools" / "install-helm.sh")])
    tools = REPO_ROOT / ".tools"
    env = dict(os.environ)
    env["PATH"] = f"{tools / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    for kind in ("CACHE", "CONFIG", "DATA"):
        env[f"HELM_{kind}_HOME"] = str(tools / "helm" / kind.lower())
    return env


@pytest.fixture(scope="session")
def chart(helm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of charts/ with the library dependency built."""
    charts = tmp_path_factory.mktemp("charts")
    for name in ("rae", "rae-service"):
        shutil.copytree(REPO_ROOT / "charts" / name, charts / name, ignore=shutil.ignore_patterns("*.tgz"))
    run(["helm", "dependency", "build", "--skip-refresh", str(charts / "rae")], helm_env)
    return charts / "rae"


@pytest.fixture(scope="session")
def helm_template(helm_env: dict[str, str], chart: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`helm template r <chart> ARGS...`, whatever its exit status."""

    def template(*args: str) -> subprocess.CompletedProcess[str]:
        command = ["helm", "template", "r", str(chart), "--kube-version", KUBE_VERSION, *args]
        return subprocess.run(command, env=helm_env, capture_output=True, text=True, timeout=120, check=False)

    return template


@pytest.fixture(scope="session")
def render(helm_template: Callable[..., subprocess.CompletedProcess[str]]) -> Callable[..., list[Manifest]]:
    """The manifests `helm template` renders; a failed render fails the test with helm's message."""

    def manifests(*args: str) -> list[Manifest]:
        result = helm_template(*args)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    return manifests


@pytest.fixture(scope="session")
def render_error(helm_template: Callable[..., subprocess.CompletedProcess[str]]) -> Callable[..., str]:
    """helm's error message for values that must not render."""

    def error(*args: str) -> str:
        result = helm_template(*args)
        assert result.returncode != 0, f"rendered although it must not: {args}"
        return result.stderr

    return error
