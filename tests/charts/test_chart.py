"""The Helm chart renders what an operator expects: run with a real helm, offline."""

from __future__ import annotations

import base64
import importlib
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rae_common.serve import DEFAULT_PORTS, ServeSettings
from rae_common.settings import CREDENTIAL_SETTINGS, INFRASTRUCTURE_SETTINGS, ServiceSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
CI = REPO_ROOT / "charts" / "rae" / "ci"
TEST_VALUES = ("-f", str(CI / "test-values.yaml"))
ALL_FEATURES = (*TEST_VALUES, "-f", str(CI / "all-features-values.yaml"))
PORTS = dict(DEFAULT_PORTS)

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]
RenderError = Callable[..., str]


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
    name = deployment["metadata"]["labels"]["app.kubernetes.io/name"]
    (main,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return main


def env_of(manifests: list[Manifest], service: str, spec: Manifest | None = None) -> dict[str, Any]:
    """A container's environment: ConfigMap values and plain values as strings, Secret
    references as (secret name, key, optional)."""
    spec = spec or container(of_kind(manifests, "Deployment")[service])
    configmaps = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "ConfigMap"}
    env: dict[str, Any] = {}
    for source in spec.get("envFrom", []):
        if "configMapRef" in source and source["configMapRef"]["name"] in configmaps:
            env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for item in spec.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = (ref["name"], ref["key"], ref.get("optional", False))
    return env


def secret_data(manifests: list[Manifest]) -> dict[str, str]:
    (secret,) = [m for m in manifests if m["kind"] == "Secret"]
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def reads(service: str) -> tuple[set[str], set[str]]:
    """What a service's settings class reads, straight from the code: (plain, secret) names."""
    module = importlib.import_module(f"rae_{service}.main")
    (cls,) = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings
    ]
    grouped = {field: group for group, fields in INFRASTRUCTURE_SETTINGS.items() for field in fields}
    plain: set[str] = set()
    secret: set[str] = set()
    for field, info in cls.model_fields.items():
        if field == "service_name" or grouped.get(field, next(iter(cls.uses))) not in cls.uses:
            continue
        alias = info.validation_alias
        name = alias if isinstance(alias, str) else field.upper()
        is_secret = field in CREDENTIAL_SETTINGS or "SecretStr" in repr(info.annotation)
        (secret if is_secret else plain).add(name)
    plain |= {field.upper() for field in ServeSettings.model_fields}
    return plain, secret


@pytest.fixture(scope="module")
def test_manifests(render: Render) -> list[Manifest]:
    return render(*TEST_VALUES)


@pytest.fixture(scope="module")
def all_features_manifests(render: Render) -> list[Manifest]:
    return render(*ALL_FEATURES)


def test_every_service_gets_a_deployment_a_service_and_a_configmap_on_its_port(
    test_manifests: list[Manifest],
) -> None:
    deployments = of_kind(test_manifests, "Deployment")
    services = of_kind(test_manifests, "Service")
    assert set(deployments) == set(services) == set(of_kind(test_manifests, "ConfigMap")) == set(PORTS)
    for name, port in PORTS.items():
        spec = container(deployments[name])
        assert spec["command"] == ["rae-serve"], name
        assert spec["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        env = env_of(test_manifests, name)
        assert (env["RAE_SERVICE"], env["RAE_PORT"], env["RAE_HOST"]) == (name, str(port), "0.0.0.0")
        assert env["RAE_ENVIRONMENT"] == "production"
        service = services[name]
        assert service["metadata"]["name"] == f"r-rae-{name}"
        assert service["spec"]["type"] == "ClusterIP"
        assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(port, "http")]
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        annotations = deployments[name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port)


def test_the_port_value_moves_the_listener_the_service_and_the_probes(render: Render) -> None:
    manifests = render(*TEST_VALUES, "--set", "memory.port=9101")
    spec = container(of_kind(manifests, "Deployment")["memory"])
    assert spec["ports"][0]["containerPort"] == 9101
    assert env_of(manifests, "memory")["RAE_PORT"] == "9101"
    assert spec["readinessProbe"]["httpGet"]["port"] == "http"
    assert of_kind(manifests, "Service")["memory"]["spec"]["ports"][0]["port"] == 9101
    assert env_of(manifests, "gateway")["MEMORY_URL"] == "http://r-rae-memory:9101"


@pytest.mark.parametrize("service", sorted(PORTS))
def test_each_service_gets_exactly_the_settings_its_class_reads(
    service: str, test_manifests: list[Manifest]
) -> None:
    """What once left ml and graph without DATABASE_URL: the chart now gives each service the
    settings of what its class `uses`, and only settings it reads."""
    plain, secret = reads(service)
    env = env_of(test_manifests, service)
    assert set(env) <= plain | secret, f"{service} gets settings it does not read"
    configmap = of_kind(test_manifests, "ConfigMap")[service]["data"]
    assert not set(configmap) & secret, "a secret in a ConfigMap"
    assert {name for name, value in env.items() if isinstance(value, tuple)} <= secret
    if "DATABASE_URL" in secret:
        assert env["DATABASE_URL"] == ("r-rae", "database-url", False)
    assert "KAFKA_BOOTSTRAP_SERVERS" in env


def test_ml_and_graph_reach_postgres(test_manifests: list[Manifest]) -> None:
    for service in ("ml", "graph"):
        assert env_of(test_manifests, service)["DATABASE_URL"] == ("r-rae", "database-url", False)
    graph = env_of(test_manifests, "graph")
    assert (graph["NEO4J_URI"], graph["NEO4J_PASSWORD"]) == (
        "bolt://neo4j:7687",
        ("r-rae", "neo4j-password", False),
    )
    gateway = env_of(test_manifests, "gateway")
    assert gateway["JWT_SECRET"] == ("r-rae", "jwt-secret", False)
    assert gateway["REDIS_URL"] == ("r-rae", "redis-url", False)
    assert "JWT_SECRET" not in env_of(test_manifests, "ml")
    assert "NEO4J_URI" not in env_of(test_manifests, "memory")


def test_service_config_wins_over_config_which_wins_over_global(render: Render) -> None:
    manifests = render(
        *TEST_VALUES,
        "--set",
        "config.LOG_LEVEL=WARNING",
        "--set",
        "memory.config.LOG_LEVEL=DEBUG",
        "--set",
        "cost.config.KAFKA_BOOTSTRAP_SERVERS=other:9092",
        "--set",
        "config.MAX_BODY_BYTES=20971520",
        "--set",
        "config.RATE_LIMIT_SEARCH_PER_MIN=99",
        "--set-json",
        'config.APP_CORS_ORIGINS=["https://a.example"]',
    )
    assert env_of(manifests, "memory")["LOG_LEVEL"] == "DEBUG"
    assert env_of(manifests, "cost")["LOG_LEVEL"] == "WARNING"
    assert env_of(manifests, "cost")["KAFKA_BOOTSTRAP_SERVERS"] == "other:9092"
    assert env_of(manifests, "events")["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env_of(manifests, "ml")["MAX_BODY_BYTES"] == "20971520", "integers stay integers"
    assert env_of(manifests, "gateway")["RATE_LIMIT_SEARCH_PER_MIN"] == "99"
    assert "RATE_LIMIT_SEARCH_PER_MIN" not in env_of(manifests, "memory"), "only who reads it"
    assert env_of(manifests, "gateway")["APP_CORS_ORIGINS"] == '["https://a.example"]'


def test_every_container_is_locked_down_by_default_and_configurable(
    test_manifests: list[Manifest], all_features_manifests: list[Manifest], render: Render
) -> None:
    for manifests in (test_manifests, all_features_manifests):
        deployments = of_kind(manifests, "Deployment")
        assert len(deployments) == len(PORTS)
        for name, deployment in deployments.items():
            pod = deployment["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, name
            assert pod["securityContext"]["runAsUser"] == 10001, name
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert pod["automountServiceAccountToken"] is False, name
            for spec in [container(deployment), *pod.get("initContainers", [])]:
                security = spec["securityContext"]
                assert security["runAsUser"] == 10001, name
                assert security["readOnlyRootFilesystem"] is True, name
                assert security["allowPrivilegeEscalation"] is False, name
                assert security["capabilities"] == {"drop": ["ALL"]}, name
                assert {"name": "tmp", "mountPath": "/tmp"} in spec["volumeMounts"], name
    changed = of_kind(
        render(
            *TEST_VALUES,
            "--set",
            "defaults.podSecurityContext.runAsUser=20002",
            "--set-json",
            'ml.containerSecurityContext={"runAsUser":30003,"runAsNonRoot":true}',
        ),
        "Deployment",
    )
    assert changed["cost"]["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 20002
    assert container(changed["ml"])["securityContext"] == {"runAsUser": 30003, "runAsNonRoot": True}
    assert container(changed["cost"])["securityContext"]["runAsUser"] == 10001


def test_liveness_and_readiness_probe_the_health_endpoints(test_manifests: list[Manifest]) -> None:
    for name, deployment in of_kind(test_manifests, "Deployment").items():
        spec = container(deployment)
        assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
        assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, name
        assert spec["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name


def test_rendering_invents_no_secret_and_is_reproducible(
    helm_template: Callable[..., Any], test_manifests: list[Manifest]
) -> None:
    first, second = helm_template(*TEST_VALUES), helm_template(*TEST_VALUES)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert secret_data(test_manifests) == {
        "database-url": "postgresql://rae:rae-password@postgres:5432/rae",
        "redis-url": "redis://redis:6379/0",
        "neo4j-password": "neo4j-password",
        "jwt-secret": "test-jwt-secret-of-at-least-32-bytes!",
        "admin-token": "test-admin-token",
    }


@pytest.mark.parametrize(
    ("unset", "message"),
    [
        (
            "secrets.jwtSecret",
            "secrets.jwtSecret is required: gateway reads JWT_SECRET (or set secrets.existingSecret)",
        ),
        ("secrets.adminToken", "secrets.adminToken is required: gateway reads RAE_ADMIN_TOKEN"),
        ("secrets.neo4jPassword", "secrets.neo4jPassword is required: graph reads NEO4J_PASSWORD"),
        ("global.postgres.url", "global.postgres.url is required"),
        ("global.redis.url", "global.redis.url is required"),
        ("global.kafka.bootstrapServers", "global.kafka.bootstrapServers is required"),
        ("global.neo4j.uri", "global.neo4j.uri is required: graph reads NEO4J_URI"),
    ],
)
def test_a_missing_required_value_stops_the_render_naming_it(
    unset: str, message: str, render_error: RenderError
) -> None:
    assert message in render_error(*TEST_VALUES, "--set", f"{unset}=")


def test_a_disabled_service_needs_none_of_its_values(render: Render) -> None:
    manifests = render(
        *TEST_VALUES,
        "--set",
        "graph.enabled=false",
        "--set",
        "secrets.neo4jPassword=",
        "--set",
        "global.neo4j.uri=",
    )
    assert "graph" not in of_kind(manifests, "Deployment")
    assert "neo4j-password" not in secret_data(manifests)
    assert "GRAPH_URL" not in env_of(manifests, "gateway")


def test_existing_secret_replaces_the_chart_secret_with_configurable_keys(render: Render) -> None:
    manifests = render("-f", str(CI / "existing-secret-values.yaml"))
    assert [m for m in manifests if m["kind"] == "Secret"] == []
    gateway = env_of(manifests, "gateway")
    assert gateway["DATABASE_URL"] == ("rae-credentials", "DATABASE_URL", False)
    assert gateway["JWT_SECRET"] == ("rae-credentials", "JWT_SECRET", False)
    assert gateway["KAFKA_SASL_PASSWORD"] == ("rae-credentials", "kafka-sasl-password", True)
    memory = env_of(manifests, "memory")
    assert memory["QDRANT_API_KEY"] == ("rae-credentials", "qdrant-api-key", True)
    assert memory["ERASURE_AUDIT_KEY"] == ("rae-credentials", "erasure-audit-key", True)
    assert env_of(manifests, "ml")["ML_PROVIDER_API_KEYS"] == (
        "rae-credentials",
        "ml-provider-api-keys",
        True,
    )
    refs = {v[0] for s in PORTS for v in env_of(manifests, s).values() if isinstance(v, tuple)}
    assert refs == {"rae-credentials"}
    tests = [m for m in manifests if m["kind"] == "Pod"]
    assert env_of(manifests, "", tests[0]["spec"]["containers"][0])["RAE_ADMIN_TOKEN"][:2] == (
        "rae-credentials",
        "RAE_ADMIN_TOKEN",
    )


def _checksums(manifests: list[Manifest]) -> dict[str, tuple[str, str]]:
    return {
        name: (
            d["spec"]["template"]["metadata"]["annotations"]["checksum/config"],
            d["spec"]["template"]["metadata"]["annotations"]["checksum/secret"],
        )
        for name, d in of_kind(manifests, "Deployment").items()
    }


def test_a_change_rolls_exactly_the_pods_that_read_it(render: Render, test_manifests: list[Manifest]) -> None:
    before = _checksums(test_manifests)
    config = _checksums(render(*TEST_VALUES, "--set", "gateway.config.RATE_LIMIT_SEARCH_PER_MIN=5"))
    assert {name for name in PORTS if config[name][0] != before[name][0]} == {"gateway"}
    assert all(config[name][1] == before[name][1] for name in PORTS)
    secret = _checksums(render(*TEST_VALUES, "--set", "secrets.neo4jPassword=rotated"))
    assert {name for name in PORTS if secret[name][1] != before[name][1]} == {"graph"}
    existing = CI / "existing-secret-values.yaml"
    token_a = _checksums(render("-f", str(existing)))
    token_b = _checksums(render("-f", str(existing), "--set", "secrets.rolloutToken=2026-02-01"))
    assert all(token_a[name][1] != token_b[name][1] for name in PORTS), "rolloutToken rolls every pod"


def test_values_schema_rejects_unknown_keys_and_wrong_types(render_error: RenderError) -> None:
    assert "Additional property gatway is not allowed" in render_error(
        *TEST_VALUES, "--set", "gatway.replicas=2"
    )
    assert "gateway.replicas: Invalid type. Expected: integer" in render_error(
        *TEST_VALUES, "--set", "gateway.replicas=two"
    )
    assert "Additional property replica is not allowed" in render_error(*TEST_VALUES, "--set", "ml.replica=2")
    assert "Additional property JWT_SECRET is not allowed" in render_error(
        *TEST_VALUES, "--set", "gateway.config.JWT_SECRET=x"
    ), "a secret never goes through config"
    assert "Additional property RATE_LIMIT_SEARCH_PER_MIN is not allowed" in render_error(
        *TEST_VALUES, "--set", "memory.config.RATE_LIMIT_SEARCH_PER_MIN=3"
    ), "a service's config takes its own settings only"
    assert "config.DATABASE_POOL_MAX: Invalid type. Expected: integer" in render_error(
        *TEST_VALUES, "--set", "config.DATABASE_POOL_MAX=many"
    )
    assert "global.kafka.securityProtocol" in render_error(
        *TEST_VALUES, "--set", "global.kafka.securityProtocol=TLS"
    )


def test_helm_lint_reports_a_mistyped_key(helm_env: dict[str, str], chart: Path) -> None:
    result = subprocess.run(
        ["helm", "lint", "--strict", str(chart), *TEST_VALUES, "--set", "gatway.replicas=2"],
        env=helm_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "Additional property gatway is not allowed" in result.stdout + result.stderr


def test_shutdown_fits_the_grace_period_or_the_render_fails(
    test_manifests: list[Manifest], render_error: RenderError
) -> None:
    for name, deployment in of_kind(test_manifests, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] == 40, name
        assert container(deployment)["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}, name
        assert env_of(test_manifests, name)["UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN"] == "20"
    message = render_error(*TEST_VALUES, "--set", "defaults.terminationGracePeriodSeconds=30")
    assert (
        "terminationGracePeriodSeconds 30 is shorter than the shutdown budget 32 s (preStopSleepSeconds 5 + "
        "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN 20 + BACKGROUND_STOP_TIMEOUT_S 3 + 1 + DATABASE_CLOSE_TIMEOUT_S 3)"
    ) in message
    message = render_error(*TEST_VALUES, "--set-json", "events.config.BACKGROUND_STOP_TIMEOUT_S=12.5")
    assert "events: terminationGracePeriodSeconds 40 is shorter than the shutdown budget 41.5 s" in message


def test_migrations_run_in_an_init_container_with_the_privileged_url(
    render: Render, render_error: RenderError
) -> None:
    manifests = render("-f", str(CI / "migrations-values.yaml"))
    data = secret_data(manifests)
    assert data["migration-database-url"] == "postgresql://rae_owner:owner-password@postgres:5432/rae"
    for name, deployment in of_kind(manifests, "Deployment").items():
        (migrate,) = deployment["spec"]["template"]["spec"]["initContainers"]
        assert migrate["name"] == "migrate"
        assert migrate["command"] == ["rae-migrate"]
        assert migrate["image"] == container(deployment)["image"]
        init_env = env_of(manifests, name, migrate)
        assert init_env["DATABASE_URL"] == ("r-rae", "migration-database-url", False)
        assert init_env["RAE_SERVICE"] == name
        main = env_of(manifests, name)
        assert main["DATABASE_URL"] == ("r-rae", "database-url", False)
        assert main["DATABASE_MIGRATE_ON_START"] == "false"
        assert main["DATABASE_APP_ROLE"] == "rae_app"
    assert "global.postgres.migrationUrl is required" in render_error(
        "-f", str(CI / "migrations-values.yaml"), "--set", "global.postgres.migrationUrl="
    )
    default = render(*TEST_VALUES)
    assert all(
        "initContainers" not in d["spec"]["template"]["spec"] for d in of_kind(default, "Deployment").values()
    )


def test_kafka_sasl_ssl_with_a_private_ca_reaches_every_service(
    render: Render, render_error: RenderError
) -> None:
    manifests = render("-f", str(CI / "kafka-sasl-ssl-values.yaml"))
    for name, deployment in of_kind(manifests, "Deployment").items():
        env = env_of(manifests, name)
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["KAFKA_SASL_USERNAME"] == "rae"
        assert env["KAFKA_SASL_PASSWORD"] == ("r-rae", "kafka-sasl-password", False)
        assert env["KAFKA_SSL_CA_FILE"] == "/etc/rae/kafka-ca/ca.crt"
        assert env["KAFKA_CREATE_TOPICS"] == "false"
        pod = deployment["spec"]["template"]["spec"]
        assert {"name": "kafka-ca", "mountPath": "/etc/rae/kafka-ca", "readOnly": True} in container(
            deployment
        )["volumeMounts"]
        assert {
            "name": "kafka-ca",
            "secret": {
                "secretName": "rae-kafka-cluster-ca-cert",
                "items": [{"key": "ca.crt", "path": "ca.crt"}],
            },
        } in pod["volumes"]
    sasl = ("-f", str(CI / "kafka-sasl-ssl-values.yaml"))
    assert "secrets.kafkaSaslPassword is required" in render_error(
        *sasl, "--set", "secrets.kafkaSaslPassword="
    )
    assert "global.kafka.sasl.mechanism and global.kafka.sasl.username are required" in render_error(
        *sasl, "--set", "global.kafka.sasl.username="
    )
    assert "a CA is used with SSL or SASL_SSL only" in render_error(
        *sasl, "--set", "global.kafka.securityProtocol=PLAINTEXT", "--set", "global.kafka.sasl.mechanism="
    )


def test_operator_pod_settings_reach_every_pod(all_features_manifests: list[Manifest]) -> None:
    for name, deployment in of_kind(all_features_manifests, "Deployment").items():
        template = deployment["spec"]["template"]
        pod = template["spec"]
        assert template["metadata"]["labels"]["team"] == "memory", name
        assert template["metadata"]["labels"]["app.kubernetes.io/name"] == name
        assert template["metadata"]["annotations"]["example.com/owner"] == "platform"
        assert pod["priorityClassName"] == "rae-standard"
        assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
        assert pod["tolerations"][0]["key"] == "dedicated"
        (spread,) = pod["topologySpreadConstraints"]
        assert spread["labelSelector"] == {
            "matchLabels": {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": "r"}
        }
        assert [c["name"] for c in pod["containers"]] == [name, "log-shipper"]
        assert {"name": "scratch", "mountPath": "/scratch"} in container(deployment)["volumeMounts"]
        assert any(v["name"] == "scratch" for v in pod["volumes"])
        env_names = [e["name"] for e in container(deployment)["env"]]
        assert env_names[-1] == "POD_NAME", "extraEnv comes last, so it wins"
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]
        assert container(deployment)["image"].startswith(f"registry.example.com/rae/rae-{name}:")
    assert "affinity" in of_kind(all_features_manifests, "Deployment")["ml"]["spec"]["template"]["spec"]
    gateway = of_kind(all_features_manifests, "Service")["gateway"]
    assert gateway["spec"]["type"] == "LoadBalancer"
    assert gateway["metadata"]["annotations"] == {
        "service.beta.kubernetes.io/aws-load-balancer-internal": "true"
    }
    extra = [
        m for m in all_features_manifests if m["kind"] == "ConfigMap" and m["metadata"]["name"] == "r-extra"
    ]
    assert extra, "extraObjects are rendered with tpl"


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
        assert (
            budgets[name]["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        )
    assert budgets["gateway"]["spec"]["minAvailable"] == 1
    assert budgets["memory"]["spec"]["maxUnavailable"] == 1
    assert autoscalers["gateway"]["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_replica_override_reaches_only_that_service(render: Render) -> None:
    deployments = of_kind(render(*TEST_VALUES, "--set", "memory.replicas=3"), "Deployment")
    assert {name: d["spec"]["replicas"] for name, d in deployments.items()} == {
        name: 3 if name == "memory" else 1 for name in PORTS
    }


def test_ingress_is_off_by_default_and_exposes_only_the_gateway(
    test_manifests: list[Manifest], render: Render
) -> None:
    assert [m for m in test_manifests if m["kind"] in ("Ingress", "HTTPRoute")] == []
    manifests = render(
        *TEST_VALUES, "--set", "ingress.enabled=true", "--set", "ingress.hosts[0].host=rae.test"
    )
    (ingress,) = [m for m in manifests if m["kind"] == "Ingress"]
    rules = ingress["spec"]["rules"]
    assert [rule["host"] for rule in rules] == ["rae.test"]
    backends = {
        (path["backend"]["service"]["name"], path["backend"]["service"]["port"]["name"])
        for rule in rules
        for path in rule["http"]["paths"]
    }
    assert backends == {("r-rae-gateway", "http")}


def test_http_route_routes_to_the_gateway_and_redirects_http(all_features_manifests: list[Manifest]) -> None:
    routes = {m["metadata"]["name"]: m["spec"] for m in all_features_manifests if m["kind"] == "HTTPRoute"}
    assert routes["r-rae"]["rules"][0]["backendRefs"] == [{"name": "r-rae-gateway", "port": 8000}]
    assert routes["r-rae"]["parentRefs"][0]["sectionName"] == "https"
    redirect = routes["r-rae-https-redirect"]
    assert redirect["parentRefs"][0]["sectionName"] == "http"
    assert redirect["rules"][0]["filters"][0]["requestRedirect"] == {"scheme": "https", "statusCode": 301}


def _gateway_policy(manifests: list[Manifest]) -> dict[str, Any]:
    return next(
        m["spec"]
        for m in manifests
        if m["kind"] == "NetworkPolicy" and m["metadata"]["name"] == "r-rae-gateway"
    )


def test_network_policy_metrics_peers_never_shut_out_the_gateways_clients(render: Render) -> None:
    """With metricsFrom set and gatewayFrom empty the gateway once admitted only the metrics
    peers, shutting out the ingress controller."""
    manifests = render(
        *TEST_VALUES,
        "--set",
        "networkPolicy.enabled=true",
        "--set-json",
        'networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"team":"monitoring"}}}]',
    )
    rules = _gateway_policy(manifests)["ingress"]
    open_rules = [rule for rule in rules if "from" not in rule]
    assert open_rules == [{"ports": [{"port": "http", "protocol": "TCP"}]}], (
        "anyone reaches the gateway's port"
    )


def test_network_policy_admits_outside_traffic_to_the_gateway_only(
    all_features_manifests: list[Manifest],
) -> None:
    policies = {
        m["metadata"]["name"]: m["spec"] for m in all_features_manifests if m["kind"] == "NetworkPolicy"
    }
    release_pods = {"app.kubernetes.io/instance": "r", "app.kubernetes.io/part-of": "rae"}
    gateway = policies["r-rae-gateway"]
    assert gateway["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    assert {"podSelector": {"matchLabels": release_pods}} in gateway["ingress"][1]["from"]
    internal = policies["r-rae-internal"]
    assert internal["podSelector"]["matchExpressions"] == [
        {"key": "app.kubernetes.io/name", "operator": "NotIn", "values": ["gateway"]}
    ]
    sources = internal["ingress"][0]["from"]
    assert {"podSelector": {"matchLabels": release_pods}} in sources
    assert all("ipBlock" not in source for source in sources)
    for policy in policies.values():
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        assert {"to": [{"podSelector": {"matchLabels": release_pods}}]} in policy["egress"]
        assert any(rule.get("ports", [{}])[0].get("port") == 53 for rule in policy["egress"])
        assert any(rule.get("to", [{}])[0].get("ipBlock") for rule in policy["egress"])


def test_monitoring_objects_select_the_release(all_features_manifests: list[Manifest]) -> None:
    (monitor,) = [m for m in all_features_manifests if m["kind"] == "ServiceMonitor"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/instance": "r",
        "app.kubernetes.io/part-of": "rae",
    }
    for service in of_kind(all_features_manifests, "Service").values():
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    (rule,) = [m for m in all_features_manifests if m["kind"] == "PrometheusRule"]
    alerts = [r["alert"] for r in rule["spec"]["groups"][0]["rules"]]
    assert alerts == ["RaeServiceDown", "RaeHighHttp5xxRatio", "RaeGatewayLatencyHigh"]
    assert "rae_http_requests_total" in rule["spec"]["groups"][0]["rules"][1]["expr"]


def test_helm_test_pod_runs_the_smoke_check_against_the_gateway(test_manifests: list[Manifest]) -> None:
    (pod,) = [m for m in test_manifests if m["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (spec,) = pod["spec"]["containers"]
    assert spec["command"] == ["rae-smoke"]
    assert spec["image"] == container(of_kind(test_manifests, "Deployment")["gateway"])["image"]
    env = env_of(test_manifests, "", spec)
    assert env == {"RAE_URL": "http://r-rae-gateway:8000", "RAE_ADMIN_TOKEN": ("r-rae", "admin-token", False)}
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True


def test_optional_secrets_reach_only_the_services_that_read_them(
    all_features_manifests: list[Manifest],
) -> None:
    data = secret_data(all_features_manifests)
    assert data["ml-provider-api-keys"] == '{"openai":"sk-test"}'
    assert env_of(all_features_manifests, "ml")["ML_PROVIDER_API_KEYS"] == (
        "r-rae",
        "ml-provider-api-keys",
        False,
    )
    memory = env_of(all_features_manifests, "memory")
    assert memory["QDRANT_API_KEY"] == ("r-rae", "qdrant-api-key", False)
    assert memory["ERASURE_AUDIT_KEY"] == ("r-rae", "erasure-audit-key", False)
    assert "QDRANT_API_KEY" not in env_of(all_features_manifests, "gateway")
    assert "KAFKA_SASL_PASSWORD" not in env_of(all_features_manifests, "gateway"), "given only when set"
