"""skaffold.yaml and the Dockerfile against the chart they build for, without a skaffold binary
(none runs here): the shape of the config, the image names, ports and values keys against
charts/rae, and the chart rendered with the values skaffold would set."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from rae_common.serve import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "rae"
SERVICES = tuple(DEFAULT_PORTS)
SCHEMA = "skaffold/v4beta14"
# What skaffold would fill in after pushing (the "helm" image strategy).
PUSHED_REPO = "registry.example.com/rae"
PUSHED_TAG = "0e12d42"
PUSHED_DIGEST = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def chart_values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def profile(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The config with profile `name` applied as skaffold applies it: its sections replace the
    base ones, then its JSON patches (only `add` is used here)."""
    (found,) = [p for p in config["profiles"] if p["name"] == name]
    applied = copy.deepcopy({k: v for k, v in config.items() if k != "profiles"})
    applied.update({k: v for k, v in found.items() if k in ("build", "deploy", "test", "portForward")})
    for patch in found.get("patches", []):
        assert patch["op"] == "add", patch
        *parents, last = patch["path"].strip("/").split("/")
        target = applied
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[last] = patch["value"]
    return applied


def test_the_config_is_on_the_current_schema_with_dev_and_staging_profiles(config: dict[str, Any]) -> None:
    assert (config["apiVersion"], config["kind"]) == (SCHEMA, "Config")
    assert [p["name"] for p in config["profiles"]] == ["dev", "staging"]
    assert profile(config, "dev")["build"]["local"]["push"] is False
    assert profile(config, "staging")["build"]["local"]["push"] is True


@pytest.mark.parametrize("name", ["default", "dev", "staging"])
def test_every_profile_builds_exactly_the_images_the_chart_deploys_from_the_one_dockerfile(
    config: dict[str, Any], chart_values: dict[str, Any], name: str
) -> None:
    applied = config if name == "default" else profile(config, name)
    artifacts = {a["image"]: a for a in applied["build"]["artifacts"]}

    assert sorted(artifacts) == sorted(chart_values[s]["image"]["repository"] for s in SERVICES)
    for service in SERVICES:
        artifact = artifacts[chart_values[service]["image"]["repository"]]
        assert (artifact["context"], artifact["docker"]["dockerfile"]) == (".", "Dockerfile")
        args = artifact["docker"]["buildArgs"]
        assert (args["SERVICE"], args["PORT"]) == (service, str(chart_values[service]["port"]))
        assert chart_values[service]["port"] == DEFAULT_PORTS[service]
        if name == "staging":
            # Never an unpinned base on the release path: the digest-pinned reference comes from
            # the environment, and an unset variable fails the build.
            assert (args["BASE_IMAGE"], args["REVISION"]) == ("{{.RAE_BASE_IMAGE}}", "{{.RAE_REVISION}}")
        else:
            assert set(args) == {"SERVICE", "PORT"}


def test_the_helm_release_sets_each_services_image_keys(
    config: dict[str, Any], chart_values: dict[str, Any]
) -> None:
    (release,) = config["deploy"]["helm"]["releases"]
    assert release["chartPath"] == "charts/rae"
    expected = {}
    for service in SERVICES:
        name = chart_values[service]["image"]["repository"].replace("-", "_")
        expected[f"{service}.image.repository"] = f"{{{{.IMAGE_REPO_{name}}}}}"
        expected[f"{service}.image.tag"] = f"{{{{.IMAGE_TAG_{name}}}}}@{{{{.IMAGE_DIGEST_{name}}}}}"
        assert {"repository", "tag"} <= set(chart_values[service]["image"])
    assert release["setValueTemplates"] == expected
    assert (ROOT / profile(config, "dev")["deploy"]["helm"]["releases"][0]["valuesFiles"][0]).is_file()
    assert profile(config, "staging")["deploy"]["helm"]["releases"][0]["valuesFiles"] == [
        "{{.RAE_VALUES_FILE}}"
    ]


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict[str, str], Path]:
    """helm (deploy/tools/install-helm.sh), its scratch directories and a private copy of the
    charts with the library dependency built."""
    subprocess.run(["bash", str(ROOT / "deploy" / "tools" / "install-helm.sh")], check=True, timeout=600)
    scratch = tmp_path_factory.mktemp("helm")
    env = {
        **os.environ,
        **{f"HELM_{kind}_HOME": str(scratch / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")},
    }
    helm_bin = [str(ROOT / ".tools" / "bin" / "helm")]
    charts = scratch / "charts"
    for name in ("rae", "rae-service"):
        shutil.copytree(ROOT / "charts" / name, charts / name, ignore=shutil.ignore_patterns("*.tgz"))
    subprocess.run(
        [*helm_bin, "dependency", "build", "--skip-refresh", str(charts / "rae")],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return helm_bin, env, charts / "rae"


def test_the_dev_profile_renders_every_deployment_with_the_image_skaffold_built(
    config: dict[str, Any], helm: tuple[list[str], dict[str, str], Path]
) -> None:
    helm_bin, env, chart = helm
    release = profile(config, "dev")["deploy"]["helm"]["releases"][0]
    sets: list[str] = []
    for key, template in release["setValueTemplates"].items():
        value = re.sub(r"\{\{\.IMAGE_REPO_rae_(\w+)\}\}", lambda m: f"{PUSHED_REPO}/rae-{m[1]}", template)
        value = re.sub(r"\{\{\.IMAGE_TAG_\w+\}\}", PUSHED_TAG, value)
        value = re.sub(r"\{\{\.IMAGE_DIGEST_\w+\}\}", PUSHED_DIGEST, value)
        sets += ["--set-string", f"{key}={value}"]
    values = [arg for path in release["valuesFiles"] for arg in ("-f", str(ROOT / path))]

    result = subprocess.run(
        [
            *helm_bin,
            "template",
            release["name"],
            str(chart),
            "--namespace",
            release["namespace"],
            *values,
            *sets,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    images = {}
    for doc in yaml.safe_load_all(result.stdout):
        if doc and doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]["spec"]
            for container in [*pod.get("initContainers", []), *pod["containers"]]:
                images.setdefault(doc["metadata"]["labels"]["app.kubernetes.io/name"], set()).add(
                    container["image"]
                )
    assert images == {s: {f"{PUSHED_REPO}/rae-{s}:{PUSHED_TAG}@{PUSHED_DIGEST}"} for s in SERVICES}


def dockerfile_stages() -> dict[str, list[str]]:
    """Instructions of each stage of the Dockerfile (continuation lines joined), by stage name;
    what comes before the first FROM under ""."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            current = line.split(" AS ")[-1].strip()
            stages[current] = []
        stages[current].append(line)
    return stages


def test_the_dockerfile_builds_every_service_on_an_overridable_base_and_runs_it_as_the_chart_does() -> None:
    stages = dockerfile_stages()
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())

    assert stages[""] == ["ARG BASE_IMAGE=python:3.11-slim"]
    assert list(stages) == ["", "common", "build", "model", "runtime"]
    # Only the base image comes from outside; everything else from an earlier stage.
    assert [s[0].split()[1] for s in list(stages.values())[1:]] == [
        "${BASE_IMAGE}",
        "common",
        "common",
        "${BASE_IMAGE}",
    ]
    runtime = stages["runtime"]
    assert [i for i in runtime if i.startswith(("COPY", "ADD"))] == [
        "COPY --from=build /opt/venv /opt/venv",
        "COPY --from=model /opt/rae/onnx /opt/rae/onnx",
    ]
    assert "USER 10001:10001" in runtime and 'CMD ["rae-serve"]' in runtime
    assert not [i for i in runtime if i.startswith("ENTRYPOINT")]
    env = next(i for i in runtime if i.startswith("ENV "))
    for setting in (
        "HOME=/tmp",
        "RAE_SERVICE=${SERVICE}",
        "RAE_PORT=${PORT}",
        "EMBEDDING_ONNX_CACHE_DIR=/opt/rae/onnx",
    ):
        assert setting in env.split(), setting
    assert f"ARG VERSION={chart['appVersion']}" in runtime
    labels = next(i for i in runtime if i.startswith("LABEL "))
    for label in ("title", "version", "revision", "source", "licenses", "base.name"):
        assert f"org.opencontainers.image.{label}=" in labels, label
    # The graph is exported where torch is (the model stage), never in the runtime stage.
    assert any("python -m rae_ml.export_model /opt/rae/onnx" in i for i in stages["model"])
    assert not any("torch" in i for i in runtime)
