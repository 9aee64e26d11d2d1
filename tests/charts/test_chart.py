"""The Helm charts render what an operator expects: run with a real helm, validated offline."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBE_VERSION = "1.31.0"
ALL_FEATURES = REPO_ROOT / "charts" / "rae" / "ci" / "all-features-values.yaml"
PORTS = {
    "gateway": 8000,
    "memory": 8001,
    "ml": 8002,
    "graph": 8003,
    "reflection": 8004,
    "cost": 8005,
    "events": 8006,
}

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def helm_env() -> dict[str, str]:
    _run(["bash", str(REPO_ROOT / "deploy" / "tools" / "install-helm.sh")])
    tools = REPO_ROOT / ".tools"
    env = dict(os.environ)
    env["PATH"] = f"{tools / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    for kind in ("CACHE", "CONFIG", "DATA"):
        env[f"HELM_{kind}_HOME"] = str(tools / "helm" / kind.lower())
    return env


@pytest.fixture(scope="session")
def chart(helm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of charts/ with the library dependency built, so the work tree stays clean."""
    charts = tmp_path_factory.mktemp("charts")
    for name in ("rae", "rae-service"):
        shutil.copytree(
            REPO_ROOT / "charts" / name,
            charts / name,
            ignore=shutil.ignore_patterns("*.tgz"),
        )
    _run(["helm", "dependency", "build", "--skip-refresh", str(charts / "rae")], helm_env)
    return charts / "rae"


@pytest.fixture(scope="session")
def helm_template(helm_env: dict[str, str], chart: Path) -> Callable[..., str]:
    def template(*args: str) -> str:
        command = ["helm", "template", "r", str(chart), "--kube-version", KUBE_VERSION, *args]
        return _run(command, helm_env).stdout

    return template


@pytest.fixture(scope="session")
def render(helm_template: Callable[..., str]) -> Render:
    def render_manifests(*args: str) -> list[Manifest]:
        return [doc for doc in yaml.safe_load_all(helm_template(*args)) if doc]

    return render_manifests


@pytest.fixture(scope="session")
def default_manifests(render: Render) -> list[Manifest]:
    return render()


@pytest.fixture(scope="session")
def all_features_manifests(render: Render) -> list[Manifest]:
    return render("-f", str(ALL_FEATURES))


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    """Manifests of one kind keyed by the service they belong to (or their name)."""
    found: dict[str, Manifest] = {}
    for manifest in manifests:
        if manifest["kind"] == kind:
            labels = manifest["metadata"].get("labels", {})
            key = labels.get("app.kubernetes.io/name", manifest["metadata"]["name"])
            if key == "rae":
                key = manifest["metadata"]["name"]
            found[key] = manifest
    return found


def container(deployment: Manifest) -> Manifest:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(deployment: Manifest) -> dict[str, Any]:
    """Plain variables as strings, Secret-backed ones as (secret name, key)."""
    env: dict[str, Any] = {}
    for item in container(deployment).get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = (ref["name"], ref["key"])
    return env


def test_every_service_gets_a_deployment_and_a_service_on_its_port(
    default_manifests: list[Manifest],
) -> None:
    deployments = of_kind(default_manifests, "Deployment")
    services = of_kind(default_manifests, "Service")
    assert set(deployments) == set(PORTS)
    assert set(services) == set(PORTS)
    for name, port in PORTS.items():
        ports = container(deployments[name])["ports"]
        assert ports == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        service = services[name]
        assert service["metadata"]["name"] == f"r-rae-{name}"
        assert service["spec"]["type"] == "ClusterIP"
        assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(port, "http")]
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        annotations = deployments[name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("features", ["defaults", "all-features"])
def test_every_container_is_locked_down(
    features: str, default_manifests: list[Manifest], all_features_manifests: list[Manifest]
) -> None:
    manifests = default_manifests if features == "defaults" else all_features_manifests
    deployments = of_kind(manifests, "Deployment")
    assert len(deployments) == len(PORTS)
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for spec in pod["containers"] + pod.get("initContainers", []):
            security = spec["securityContext"]
            assert security["runAsNonRoot"] is True, name
            assert security["runAsUser"] == 10001, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert {"name": "tmp", "mountPath": "/tmp"} in spec["volumeMounts"], name
            assert spec["resources"]["requests"]["memory"], name
        tmp = next(volume for volume in pod["volumes"] if volume["name"] == "tmp")
        assert "emptyDir" in tmp, name


def test_liveness_and_readiness_probe_the_health_endpoints(
    default_manifests: list[Manifest],
) -> None:
    for name, deployment in of_kind(default_manifests, "Deployment").items():
        spec = container(deployment)
        assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
        assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, name
        assert spec["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name


def test_services_are_wired_to_their_peers_and_infrastructure(
    default_manifests: list[Manifest], render: Render
) -> None:
    deployments = of_kind(default_manifests, "Deployment")
    memory = env_of(deployments["memory"])
    assert memory["RAE_SERVICE_NAME"] == "memory"
    assert memory["ML_URL"] == "http://r-rae-ml:8002"
    assert memory["EVENTS_URL"] == "http://r-rae-events:8006"
    assert memory["DATABASE_URL"] == ("r-rae", "database-url")
    assert memory["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert "QDRANT_URL" not in memory, "pgvector is the default vector store"
    graph = env_of(deployments["graph"])
    assert graph["NEO4J_URI"] == "bolt://neo4j:7687"
    assert graph["NEO4J_PASSWORD"] == ("r-rae", "neo4j-password")
    assert "DATABASE_URL" not in graph
    gateway = env_of(deployments["gateway"])
    assert gateway["JWT_SECRET"] == ("r-rae", "jwt-secret")
    assert gateway["RAE_ADMIN_TOKEN"] == ("r-rae", "admin-token")
    assert "JWT_SECRET" not in env_of(deployments["ml"])

    customised = of_kind(
        render(
            "--set",
            "global.qdrant.url=http://qdrant:6333",
            "--set",
            "global.otel.endpoint=http://collector:4318",
            "--set",
            "memory.env.LOG_LEVEL=DEBUG",
        ),
        "Deployment",
    )
    memory = env_of(customised["memory"])
    assert memory["QDRANT_URL"] == "http://qdrant:6333"
    assert memory["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4318"
    assert memory["LOG_LEVEL"] == "DEBUG"
    assert env_of(customised["cost"])["LOG_LEVEL"] == "INFO"


def test_replica_override_reaches_only_that_service(render: Render) -> None:
    deployments = of_kind(render("--set", "memory.replicas=3"), "Deployment")
    assert deployments["memory"]["spec"]["replicas"] == 3
    assert {name: d["spec"]["replicas"] for name, d in deployments.items() if name != "memory"} == {
        name: 1 for name in PORTS if name != "memory"
    }


def test_images_follow_the_values_skaffold_sets(render: Render) -> None:
    digest = "sha256:" + "a" * 64
    deployments = of_kind(
        render(
            "--set",
            "gateway.image.repository=registry.local/rae-gateway",
            "--set",
            f"gateway.image.tag=abc123@{digest}",
        ),
        "Deployment",
    )
    assert container(deployments["gateway"])["image"] == f"registry.local/rae-gateway:abc123@{digest}"
    assert container(deployments["ml"])["image"] == "rae-ml:0.1.0"


def test_chart_secret_feeds_the_services_by_default(default_manifests: list[Manifest]) -> None:
    secrets = [m for m in default_manifests if m["kind"] == "Secret"]
    assert [s["metadata"]["name"] for s in secrets] == ["r-rae"]
    data = secrets[0]["data"]
    assert {"database-url", "jwt-secret", "admin-token", "neo4j-password"} <= data.keys()
    assert data["jwt-secret"], "an empty JWT secret is generated, never left blank"


def test_existing_secret_replaces_the_chart_secret(render: Render) -> None:
    manifests = render("--set", "secrets.existingSecret=rae-credentials")
    assert [m for m in manifests if m["kind"] == "Secret"] == []
    refs = {
        value[0]
        for deployment in of_kind(manifests, "Deployment").values()
        for value in env_of(deployment).values()
        if isinstance(value, tuple)
    }
    assert refs == {"rae-credentials"}


def test_ingress_is_off_by_default_and_exposes_only_the_gateway(
    default_manifests: list[Manifest], render: Render
) -> None:
    assert [m for m in default_manifests if m["kind"] == "Ingress"] == []
    manifests = render("--set", "ingress.enabled=true", "--set", "ingress.hosts[0].host=rae.test")
    ingresses = [m for m in manifests if m["kind"] == "Ingress"]
    assert len(ingresses) == 1
    rules = ingresses[0]["spec"]["rules"]
    assert [rule["host"] for rule in rules] == ["rae.test"]
    backends = {
        (path["backend"]["service"]["name"], path["backend"]["service"]["port"]["name"])
        for rule in rules
        for path in rule["http"]["paths"]
    }
    assert backends == {("r-rae-gateway", "http")}
    assert {s["spec"]["type"] for s in of_kind(manifests, "Service").values()} == {"ClusterIP"}


def test_network_policy_admits_outside_traffic_to_the_gateway_only(
    default_manifests: list[Manifest], all_features_manifests: list[Manifest]
) -> None:
    assert [m for m in default_manifests if m["kind"] == "NetworkPolicy"] == []
    policies = of_kind(all_features_manifests, "NetworkPolicy")
    gateway = policies["r-rae-gateway"]["spec"]
    assert gateway["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "gateway"
    assert gateway["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]

    internal = policies["r-rae-internal"]["spec"]
    assert internal["policyTypes"] == ["Ingress"]
    assert internal["podSelector"]["matchExpressions"] == [
        {"key": "app.kubernetes.io/name", "operator": "NotIn", "values": ["gateway"]}
    ]
    release_pods = {"app.kubernetes.io/instance": "r", "app.kubernetes.io/part-of": "rae"}
    assert internal["podSelector"]["matchLabels"] == release_pods
    sources = internal["ingress"][0]["from"]
    assert {"podSelector": {"matchLabels": release_pods}} in sources
    assert all("ipBlock" not in source for source in sources)
    for name, deployment in of_kind(all_features_manifests, "Deployment").items():
        if name != "gateway":
            assert release_pods.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_autoscaling_and_disruption_budgets_cover_every_service(
    all_features_manifests: list[Manifest],
) -> None:
    deployments = of_kind(all_features_manifests, "Deployment")
    autoscalers = of_kind(all_features_manifests, "HorizontalPodAutoscaler")
    budgets = of_kind(all_features_manifests, "PodDisruptionBudget")
    assert set(autoscalers) == set(budgets) == set(PORTS)
    for name, deployment in deployments.items():
        assert "replicas" not in deployment["spec"], f"{name}: the HPA owns the replica count"
        target = autoscalers[name]["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector == deployment["spec"]["selector"]["matchLabels"]


def test_invalid_settings_stop_the_render_with_a_clear_message(helm_env: dict[str, str], chart: Path) -> None:
    result = subprocess.run(
        ["helm", "template", "r", str(chart), "--set", "graph.uses={neo4j,mongo}"],
        env=helm_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert 'graph.uses: unknown "mongo"' in result.stderr


@pytest.mark.parametrize("values", [[], ["-f", str(ALL_FEATURES)]], ids=["defaults", "all-features"])
def test_chart_lints_and_renders_valid_kubernetes_1_31_manifests(
    values: list[str],
    helm_env: dict[str, str],
    chart: Path,
    helm_template: Callable[..., str],
    tmp_path: Path,
) -> None:
    _run(["helm", "lint", "--strict", str(chart), *values], helm_env)
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(helm_template(*values))
    result = _run(
        [
            sys.executable,
            "-m",
            "kubernetes_validate",
            "-k",
            KUBE_VERSION,
            "--strict",
            "--quiet",
            str(rendered),
        ]
    )
    assert result.stdout + result.stderr == "", "warnings or failures from kubernetes-validate"


def test_skaffold_and_dockerfiles_match_the_chart() -> None:
    config = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())
    artifacts = {a["image"]: a for a in config["build"]["artifacts"]}
    assert set(artifacts) == {f"rae-{name}" for name in PORTS}
    templates = config["deploy"]["helm"]["releases"][0]["setValueTemplates"]
    for name, port in PORTS.items():
        artifact = artifacts[f"rae-{name}"]
        assert artifact["context"] == "."
        dockerfile = REPO_ROOT / artifact["docker"]["dockerfile"]
        assert dockerfile == REPO_ROOT / "services" / "Dockerfile"
        assert artifact["docker"]["buildArgs"] == {"SERVICE": name, "PORT": str(port)}
        assert (REPO_ROOT / "services" / name / "src" / f"rae_{name}" / "main.py").is_file(), name
        text = dockerfile.read_text()
        assert re.search(r"^EXPOSE \$\{PORT\}$", text, re.MULTILINE)
        assert re.search(r"^USER 10001(:10001)?$", text, re.MULTILINE)
        assert "rae_${RAE_SERVICE}.main:create_app --factory" in text
        assert "--port ${RAE_PORT}" in text
        assert templates[f"{name}.image.repository"] == f"{{{{.IMAGE_REPO_rae_{name}}}}}"
        assert templates[f"{name}.image.tag"].startswith(f"{{{{.IMAGE_TAG_rae_{name}}}}}")
