"""The chart's generated files are fresh, and every values file of ci/ and examples/ lints with
`helm lint --strict`, renders and validates (Kubernetes 1.31 API schema; the custom resources'
schemas)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "rae"
VALUES_FILES = sorted([*(CHART / "ci").glob("*.yaml"), *(CHART / "examples").glob("*.yaml")])


def _tool(name: str) -> ModuleType:
    path = REPO_ROOT / "deploy" / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"rae_chart_tool_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


chart_settings = _tool("chart_settings")
validate_manifests = _tool("validate_manifests")


@pytest.fixture(scope="module")
def chart_tools() -> None:
    subprocess.run(
        ["bash", str(REPO_ROOT / "deploy" / "tools" / "install-chart-tools.sh")], check=True, timeout=600
    )


def test_generated_chart_files_are_up_to_date(chart_tools: None) -> None:
    files = chart_settings.rendered_files()
    files[chart_settings.README] = chart_settings.readme_with_table()
    stale = [str(path.relative_to(REPO_ROOT)) for path, text in files.items() if path.read_text() != text]
    assert stale == [], f"stale: {stale}; run {chart_settings.REGENERATE}"


def test_settings_json_follows_the_settings_classes() -> None:
    services = chart_settings.collect()["services"]
    assert services["ml"]["uses"] == ["kafka", "postgres", "redis"]
    ml = services["ml"]["settings"]
    assert ml["DATABASE_URL"]["secret"] and ml["DATABASE_URL"]["required"]
    assert ml["ML_PROVIDER_API_KEYS"]["secret"] and not ml["ML_PROVIDER_API_KEYS"].get("required")
    assert "NEO4J_URI" not in ml and "JWT_SECRET" not in ml
    assert services["graph"]["settings"]["NEO4J_PASSWORD"]["required"]
    assert services["gateway"]["settings"]["KAFKA_FETCH_MAX_WAIT_MS"]["default"] == 500, "its own default"
    assert services["memory"]["settings"]["KAFKA_FETCH_MAX_WAIT_MS"]["default"] == 100
    assert services["memory"]["settings"]["RAE_PORT"]["default"] == 8001
    assert "Connection pool bounds" in services["cost"]["settings"]["DATABASE_POOL_MAX"]["description"]


def test_a_secret_setting_the_chart_cannot_deliver_stops_the_generator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = dict(chart_settings.SECRET_VALUES)
    del values["QDRANT_API_KEY"]
    monkeypatch.setattr(chart_settings, "SECRET_VALUES", values)
    with pytest.raises(SystemExit, match="QDRANT_API_KEY is a secret setting the chart has no value for"):
        chart_settings.collect()


def test_the_validator_catches_an_unknown_field_and_a_bad_custom_resource(chart_tools: None) -> None:
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "x", "image": "x"}]},
            },
            "replica": 2,
        },
    }
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "m"},
        "spec": {"selector": {}, "endpoints": [{"port": 8000}]},
    }
    problems = validate_manifests.problems([deployment, monitor])
    assert any("Deployment x" in p and "replica" in p for p in problems), problems
    assert any("ServiceMonitor m" in p and "port must be string" in p for p in problems), problems


@pytest.mark.parametrize("values", VALUES_FILES, ids=[f"{p.parent.name}/{p.name}" for p in VALUES_FILES])
def test_values_file_lints_renders_and_validates(
    values: Path,
    chart_tools: None,
    helm_env: dict[str, str],
    chart: Path,
    render: Callable[..., list[dict[str, Any]]],
) -> None:
    lint = subprocess.run(
        ["helm", "lint", "--strict", str(chart), "-f", str(values)],
        env=helm_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    manifests = render("-f", str(values))
    assert validate_manifests.problems(manifests) == []
    if values.parent.name == "examples":
        assert yaml.safe_load(values.read_text())["secrets"]["existingSecret"], (
            "examples keep credentials out"
        )
