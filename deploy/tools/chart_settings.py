"""Writes what the Helm chart knows about the services' settings, from the settings classes.

    .venv/bin/python deploy/tools/chart_settings.py          # write (make chart-generate)
    .venv/bin/python deploy/tools/chart_settings.py --check  # exit 1 when a file is stale

Each service reads its own settings class's fields, the shared `ServiceSettings` fields outside
`INFRASTRUCTURE_SETTINGS`, the groups of that table it `uses`, and `rae-serve`'s settings. The
chart gives a service exactly those, so the two cannot drift: this script writes

- charts/rae/files/settings.json, read by the templates (`.Files.Get`): per service, every
  variable it reads, whether it is a secret, the chart value that sets it, whether the chart must
  refuse to render without it, its type and default;
- charts/rae/values.schema.json: the values' JSON schema, whose `config` maps accept exactly the
  non-secret settings of the service(s) they apply to, with their types;
- the values table of charts/rae/README.md, from the `## @param` comments of values.yaml
  (@bitnami/readme-generator-for-helm, installed by deploy/tools/install-chart-tools.sh).

The descriptions are the comments of `.env.example` (tests/test_env_example.py keeps them
complete). A new secret setting stops this script until the chart has a value for it
(`SECRET_VALUES`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python
from pydantic_settings import BaseSettings

from rae_common.serve import DEFAULT_PORTS, ServeSettings
from rae_common.settings import (
    CREDENTIAL_SETTINGS,
    DEPLOYED_REQUIRES,
    INFRASTRUCTURE_SETTINGS,
    ServiceSettings,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "rae"
SETTINGS_JSON = CHART / "files" / "settings.json"
SCHEMA_JSON = CHART / "values.schema.json"
README = CHART / "README.md"
VALUES = CHART / "values.yaml"
README_GENERATOR = REPO_ROOT / ".tools" / "node" / "node_modules" / ".bin" / "readme-generator"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
SERVICES = ("gateway", "memory", "ml", "graph", "reflection", "cost", "events")
REGENERATE = ".venv/bin/python deploy/tools/chart_settings.py (make chart-generate)"

#: Secret settings -> (the value holding it, the key of `secrets.keys` naming its Secret entry).
SECRET_VALUES: Mapping[str, tuple[str, str]] = {
    "DATABASE_URL": ("global.postgres.url", "databaseUrl"),
    "REDIS_URL": ("global.redis.url", "redisUrl"),
    "NEO4J_PASSWORD": ("secrets.neo4jPassword", "neo4jPassword"),
    "JWT_SECRET": ("secrets.jwtSecret", "jwtSecret"),
    "RAE_ADMIN_TOKEN": ("secrets.adminToken", "adminToken"),
    "ML_PROVIDER_API_KEYS": ("secrets.mlProviderApiKeys", "mlProviderApiKeys"),
    "QDRANT_API_KEY": ("secrets.qdrantApiKey", "qdrantApiKey"),
    "KAFKA_SASL_PASSWORD": ("secrets.kafkaSaslPassword", "kafkaSaslPassword"),
    "ERASURE_AUDIT_KEY": ("secrets.erasureAuditKey", "erasureAuditKey"),
}

#: Non-secret settings the chart fills from a dedicated value (a `config` entry still wins).
PLAIN_VALUES: Mapping[str, str] = {
    "KAFKA_BOOTSTRAP_SERVERS": "global.kafka.bootstrapServers",
    "KAFKA_SECURITY_PROTOCOL": "global.kafka.securityProtocol",
    "KAFKA_SASL_MECHANISM": "global.kafka.sasl.mechanism",
    "KAFKA_SASL_USERNAME": "global.kafka.sasl.username",
    "NEO4J_URI": "global.neo4j.uri",
    "NEO4J_USER": "global.neo4j.user",
    "NEO4J_DATABASE": "global.neo4j.database",
    "QDRANT_URL": "global.qdrant.url",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "global.otel.endpoint",
}

#: Set by the chart itself, never through `config`: which service, where it listens.
CHART_MANAGED = frozenset({"RAE_SERVICE", "RAE_HOST", "RAE_PORT"})

#: Beyond DEPLOYED_REQUIRES (addresses): credentials without which a service cannot work.
CHART_REQUIRES: Mapping[str, tuple[str, ...]] = {
    "neo4j": ("NEO4J_PASSWORD",),
    "auth": ("JWT_SECRET", "RAE_ADMIN_TOKEN"),
}

#: rae-serve's settings are not in .env.example (the chart and the image set them).
SERVE_DESCRIPTIONS: Mapping[str, str] = {
    "RAE_SERVICE": "Which service rae-serve runs (set by the chart).",
    "RAE_HOST": "Address the service listens on (global.listenHost).",
    "RAE_PORT": "Port the service listens on (<service>.port).",
    "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN": (
        "After SIGTERM, seconds requests in flight get before they are cancelled (part of the "
        "shutdown budget that terminationGracePeriodSeconds must cover)."
    ),
}


def settings_class(service: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"rae_{service}.main")
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, ServiceSettings) and value is not ServiceSettings
    ]
    if len(found) != 1:
        raise SystemExit(f"rae_{service}.main: expected one ServiceSettings subclass, found {found}")
    return found[0]


def env_name(cls: type[BaseSettings], field: str) -> str:
    alias = cls.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else field.upper()


def descriptions() -> dict[str, str]:
    """Variable -> the comment above it (or above its group, or its section's title)."""
    found: dict[str, str] = {}
    comment: list[str] = []
    section = ""
    group = ""
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.startswith("# ---"):
            section = line.strip("# -")
            comment, group = [], ""
        elif line.startswith("#"):
            comment.append(line.lstrip("#").strip())
        elif "=" in line:
            if comment:
                group = " ".join(comment)
            found[line.split("=", 1)[0]] = group or section
            comment = []
        else:
            comment, group = [], ""
    return found


def _field_schema(cls: type[BaseSettings], field: str) -> dict[str, Any]:
    """The JSON schema of one setting's value as written in values (an env value's type)."""
    properties = cls.model_json_schema()["properties"]
    schema = dict(properties.get(field) or properties[env_name(cls, field)])
    for key in ("title", "default", "writeOnly", "format", "description"):
        schema.pop(key, None)
    if "anyOf" in schema:
        branches = [b for b in schema.pop("anyOf") if b.get("type") != "null"]
        if len(branches) != 1:
            raise SystemExit(f"{cls.__name__}.{field}: cannot map {branches} to one type")
        schema.update(branches[0])
        if "enum" in schema:  # the variable left empty means "not set"
            schema["enum"] = [*schema["enum"], ""]
    kind = schema.get("type")
    if kind in ("array", "object"):
        # Written as YAML (rendered as JSON) or as the JSON text itself.
        if "$ref" in json.dumps(schema):
            schema = {"type": kind}
        schema["type"] = [kind, "string"]
    elif kind not in ("string", "integer", "number", "boolean"):
        raise SystemExit(f"{cls.__name__}.{field}: unsupported type {schema}")
    return schema


def _default(info: FieldInfo) -> Any:
    if info.is_required():
        return None
    value = info.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        return value.get_secret_value() or None
    if isinstance(value, dict) and any(isinstance(v, SecretStr) for v in value.values()):
        return {}
    return to_jsonable_python(value)


def _entry(
    cls: type[BaseSettings], field: str, group: str | None, described: Mapping[str, str]
) -> tuple[str, dict[str, Any]]:
    env = env_name(cls, field)
    info = cls.model_fields[field]
    secret = field in CREDENTIAL_SETTINGS or "SecretStr" in repr(info.annotation)
    schema = _field_schema(cls, field)
    entry: dict[str, Any] = {
        "group": group,
        "secret": secret,
        "type": schema["type"][0] if isinstance(schema["type"], list) else schema["type"],
        "schema": schema,
        "default": _default(info),
        "description": described.get(env) or SERVE_DESCRIPTIONS.get(env, ""),
    }
    if secret:
        if env not in SECRET_VALUES:
            raise SystemExit(
                f"{env} is a secret setting the chart has no value for: add it to SECRET_VALUES in "
                f"{Path(__file__).name}, to `secrets` in charts/rae/values.yaml and to the chart README"
            )
        entry["value"], entry["secretKey"] = SECRET_VALUES[env]
    elif env in PLAIN_VALUES:
        entry["value"] = PLAIN_VALUES[env]
    if env in CHART_MANAGED:
        entry["chartManaged"] = True
    peer = env.removesuffix("_URL").lower()
    if env.endswith("_URL") and peer in SERVICES:
        entry["peer"] = peer  # the chart fills in that service's Service URL
    return env, entry


def service_settings(service: str, described: Mapping[str, str]) -> dict[str, Any]:
    cls = settings_class(service)
    grouped = {field: group for group, fields in INFRASTRUCTURE_SETTINGS.items() for field in fields}
    settings: dict[str, dict[str, Any]] = {}
    for field in cls.model_fields:
        if field == "service_name":  # fixed by each service
            continue
        shared = field in ServiceSettings.model_fields
        group = grouped.get(field) if shared else None
        if group is not None and group not in cls.uses:
            continue
        env, entry = _entry(cls, field, group, described)
        entry["own"] = not shared
        settings[env] = entry
    for field in ServeSettings.model_fields:
        env, entry = _entry(ServeSettings, field, "serve", described)
        entry["own"] = False
        if env == "RAE_PORT":
            entry["default"] = DEFAULT_PORTS[service]
        settings[env] = entry
    required = [
        *(name.upper() for infra in sorted(cls.uses) for name in DEPLOYED_REQUIRES.get(infra, ())),
        *(name for infra in sorted(cls.uses) for name in CHART_REQUIRES.get(infra, ())),
    ]
    for name in required:
        settings[name]["required"] = True
    return {
        "uses": sorted(cls.uses),
        "port": DEFAULT_PORTS[service],
        "settings": dict(sorted(settings.items())),
    }


def collect() -> dict[str, Any]:
    described = descriptions()
    services = {service: service_settings(service, described) for service in SERVICES}
    unmapped = (set(SECRET_VALUES) | set(PLAIN_VALUES)) - {
        env for s in services.values() for env in s["settings"]
    }
    if unmapped:
        raise SystemExit(f"{Path(__file__).name} maps settings no service reads: {sorted(unmapped)}")
    return {"services": services}


def template_data(collected: Mapping[str, Any]) -> dict[str, Any]:
    """What the templates read: the collected settings without the schema-only parts."""
    services: dict[str, Any] = {}
    for service, data in collected["services"].items():
        settings = {}
        for env, entry in data["settings"].items():
            slim = {k: v for k, v in entry.items() if k not in ("schema", "description", "own")}
            settings[env] = slim
        services[service] = {"uses": data["uses"], "port": data["port"], "settings": settings}
    return {
        "_comment": f"Generated from the services' settings classes by {REGENERATE}; do not edit.",
        "services": services,
    }


# --- values.schema.json ------------------------------------------------------------------------


def obj(properties: Mapping[str, Any], description: str = "", **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": dict(properties)}
    if description:
        schema["description"] = description
    schema.update(extra)
    return schema


def string(description: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": "string", **({"description": description} if description else {}), **extra}


def boolean(description: str = "") -> dict[str, Any]:
    return {"type": "boolean", **({"description": description} if description else {})}


def integer(minimum: int | None = None, description: str = "", **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", **extra}
    if minimum is not None:
        schema["minimum"] = minimum
    if description:
        schema["description"] = description
    return schema


def string_map(description: str = "") -> dict[str, Any]:
    return {"type": "object", "additionalProperties": {"type": "string"}, "description": description}


def k8s_object(description: str) -> dict[str, Any]:
    """A Kubernetes structure passed through as is (kubernetes-validate checks the rendered result)."""
    return {"type": "object", "description": description}


def k8s_list(description: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "object"}, "description": description}


QUANTITY = {"type": ["string", "integer", "number"]}
INT_OR_PERCENT = {"type": ["integer", "string"]}


def config_schema(settings: Mapping[str, Mapping[str, Any]], description: str) -> dict[str, Any]:
    properties = {
        env: {**entry["schema"], "description": entry["description"]}
        for env, entry in settings.items()
        if not entry["secret"] and not entry.get("chartManaged")
    }
    return obj(dict(sorted(properties.items())), description)


def pod_settings(for_service: bool) -> dict[str, Any]:
    """Keys of `defaults`, which a service block may repeat to override them."""
    probe = obj(
        {
            "initialDelaySeconds": integer(0),
            "periodSeconds": integer(1),
            "timeoutSeconds": integer(1),
            "failureThreshold": integer(1),
            "successThreshold": integer(1),
        }
    )
    security = "replaces the default wholesale" if for_service else "every service's"
    properties: dict[str, Any] = {
        "podLabels": string_map("Extra pod labels."),
        "podAnnotations": string_map("Extra pod annotations."),
        "podSecurityContext": k8s_object(f"Pod securityContext ({security})."),
        "containerSecurityContext": k8s_object(f"Container securityContext ({security})."),
        "nodeSelector": string_map("Pod nodeSelector."),
        "tolerations": k8s_list("Pod tolerations."),
        "affinity": k8s_object("Pod affinity."),
        "topologySpreadConstraints": k8s_list(
            "Pod topologySpreadConstraints; a labelSelector left out selects the service's pods."
        ),
        "priorityClassName": string("Pod priorityClassName."),
        "terminationGracePeriodSeconds": integer(
            1,
            "Must cover the shutdown budget (preStopSleepSeconds + UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN + "
            "BACKGROUND_STOP_TIMEOUT_S + 1 + DATABASE_CLOSE_TIMEOUT_S): checked at render time.",
        ),
        "preStopSleepSeconds": integer(
            0, "Seconds a stopping pod keeps serving while endpoints and load balancers drop it."
        ),
        "tmpSizeLimit": {**QUANTITY, "description": "Size limit of the /tmp emptyDir."},
        "probes": obj({"startup": probe, "liveness": probe, "readiness": probe}, "Probe timings."),
        "extraEnv": k8s_list("EnvVar entries appended to the container's env (they win)."),
        "envFrom": k8s_list("EnvFromSource entries after the chart's ConfigMap."),
        "extraVolumes": k8s_list("Volumes added to the pod."),
        "extraVolumeMounts": k8s_list("VolumeMounts added to the service's container."),
        "initContainers": k8s_list("Init containers run before the chart's own (migrate)."),
        "sidecars": k8s_list("Containers added beside the service's."),
    }
    if not for_service:
        properties["serviceAccount"] = obj(
            {"create": boolean("One ServiceAccount per service (no API token mounted).")}
        )
    return properties


def service_schema(service: str, settings: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    scaling = obj(
        {
            "enabled": boolean(),
            "minReplicas": integer(1),
            "maxReplicas": integer(1),
            "targetCPUUtilizationPercentage": integer(1),
            "targetMemoryUtilizationPercentage": integer(1),
            "behavior": k8s_object("HPA behavior."),
        }
    )
    budget = obj({"enabled": boolean(), "minAvailable": INT_OR_PERCENT, "maxUnavailable": INT_OR_PERCENT})
    return obj(
        {
            "enabled": boolean(),
            "image": obj(
                {
                    "repository": string(minLength=1),
                    "tag": {"type": ["string", "number"]},
                    "digest": string(pattern="^(sha256:[a-f0-9]{64})?$"),
                    "pullPolicy": string(enum=["", "Always", "IfNotPresent", "Never"]),
                }
            ),
            "replicas": integer(0),
            "port": integer(1, maximum=65535),
            "config": config_schema(
                settings, f"Settings of {service} (ENV_NAME: value); win over `config` and global.*."
            ),
            "resources": k8s_object("Container resources."),
            "service": obj(
                {
                    "type": string(enum=["ClusterIP", "NodePort", "LoadBalancer"]),
                    "annotations": string_map(),
                }
            ),
            "serviceAccount": obj({"name": string(), "annotations": string_map()}),
            "autoscaling": scaling,
            "podDisruptionBudget": budget,
            **pod_settings(for_service=True),
        },
        f"The {service} service.",
    )


def values_schema(collected: Mapping[str, Any]) -> dict[str, Any]:
    services = collected["services"]
    union: dict[str, Any] = {}
    for data in services.values():
        for env, entry in data["settings"].items():
            union.setdefault(env, entry)
    secret_keys = sorted({key for _, key in SECRET_VALUES.values()} | {"migrationDatabaseUrl"})
    egress_rule = k8s_list("NetworkPolicyEgressRule entries.")
    properties: dict[str, Any] = {
        "nameOverride": string(),
        "fullnameOverride": string(),
        "rae-service": {"type": "object", "description": "The library chart (no values)."},
        "global": obj(
            {
                "image": obj(
                    {
                        "registry": string(),
                        "tag": {"type": ["string", "number"]},
                        "pullPolicy": string(enum=["Always", "IfNotPresent", "Never"]),
                    }
                ),
                "imagePullSecrets": {
                    "type": "array",
                    "items": obj({"name": string(minLength=1)}, required=["name"]),
                },
                "listenHost": string(minLength=1),
                "postgres": obj({"url": string(), "migrationUrl": string()}),
                "redis": obj({"url": string()}),
                "kafka": obj(
                    {
                        "bootstrapServers": string(),
                        "securityProtocol": string(enum=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]),
                        "sasl": obj(
                            {
                                "mechanism": string(enum=["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
                                "username": string(),
                            }
                        ),
                        "tls": obj(
                            {
                                "ca": obj(
                                    {
                                        "secretName": string(),
                                        "configMapName": string(),
                                        "key": string(minLength=1),
                                    }
                                )
                            }
                        ),
                    }
                ),
                "neo4j": obj({"uri": string(), "user": string(), "database": string()}),
                "qdrant": obj({"url": string()}),
                "otel": obj({"endpoint": string()}),
            }
        ),
        "config": config_schema(union, "Settings of every service that reads them (ENV_NAME: value)."),
        "secrets": obj(
            {
                "existingSecret": string(),
                "rolloutToken": {"type": ["string", "integer"]},
                "neo4jPassword": string(),
                "jwtSecret": string(),
                "adminToken": string(),
                "mlProviderApiKeys": string_map("Provider name -> API key (ML_PROVIDER_API_KEYS)."),
                "qdrantApiKey": string(),
                "kafkaSaslPassword": string(),
                "erasureAuditKey": string(),
                "keys": obj({key: string(minLength=1) for key in secret_keys}),
            }
        ),
        "migrations": obj(
            {
                "initContainer": obj(
                    {"enabled": boolean(), "resources": k8s_object("Init container resources.")}
                )
            }
        ),
        "defaults": obj(pod_settings(for_service=False)),
        **{service: service_schema(service, data["settings"]) for service, data in services.items()},
        "ingress": obj(
            {
                "enabled": boolean(),
                "className": string(),
                "annotations": string_map(),
                "hosts": {
                    "type": "array",
                    "items": obj(
                        {
                            "host": string(),
                            "paths": {
                                "type": "array",
                                "items": obj(
                                    {
                                        "path": string(),
                                        "pathType": string(
                                            enum=["Prefix", "Exact", "ImplementationSpecific"]
                                        ),
                                    }
                                ),
                            },
                        }
                    ),
                },
                "tls": k8s_list("IngressTLS entries."),
            }
        ),
        "httpRoute": obj(
            {
                "enabled": boolean(),
                "annotations": string_map(),
                "labels": string_map(),
                "parentRefs": k8s_list("Gateways (and their HTTPS listener) the route attaches to."),
                "hostnames": {"type": "array", "items": {"type": "string"}},
                "httpsRedirect": obj(
                    {
                        "enabled": boolean(),
                        "parentRefs": k8s_list("The HTTP listener(s) that redirect to HTTPS."),
                    }
                ),
            }
        ),
        "networkPolicy": obj(
            {
                "enabled": boolean(),
                "gatewayFrom": k8s_list("NetworkPolicyPeer entries allowed to the gateway; empty: anyone."),
                "metricsFrom": k8s_list("NetworkPolicyPeer entries allowed to every service's port."),
                "egress": obj(
                    {
                        "enabled": boolean(),
                        "allowDNS": boolean(),
                        "rules": egress_rule,
                    }
                ),
            }
        ),
        "serviceMonitor": obj(
            {
                "enabled": boolean(),
                "labels": string_map(),
                "interval": string(),
                "scrapeTimeout": string(),
            }
        ),
        "prometheusRule": obj(
            {
                "enabled": boolean(),
                "labels": string_map(),
                "serviceDownFor": string(),
                "http5xxRatio": {"type": "number", "minimum": 0, "maximum": 1},
                "http5xxFor": string(),
                "additionalRules": k8s_list("Prometheus rules added to the chart's group."),
            }
        ),
        "tests": obj({"enabled": boolean(), "resources": k8s_object("Resources of the helm test Pod.")}),
        "extraObjects": {
            "type": "array",
            "items": {"type": ["object", "string"]},
            "description": "Extra manifests (templated with tpl).",
        },
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$comment": f"Generated by {REGENERATE}; do not edit.",
        **obj(properties),
    }


def rendered_files() -> dict[Path, str]:
    collected = collect()
    return {
        SETTINGS_JSON: json.dumps(template_data(collected), indent=1, sort_keys=False) + "\n",
        SCHEMA_JSON: json.dumps(values_schema(collected), indent=2) + "\n",
    }


def readme_with_table() -> str:
    """charts/rae/README.md with its values table regenerated (the file itself is left alone)."""
    subprocess.run(["bash", str(REPO_ROOT / "deploy" / "tools" / "install-chart-tools.sh")], check=True)
    with tempfile.TemporaryDirectory() as scratch:
        readme = Path(scratch) / "README.md"
        shutil.copyfile(README, readme)
        result = subprocess.run(
            [str(README_GENERATOR), "--values", str(VALUES), "--readme", str(readme)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(
                f"readme-generator failed on {VALUES.relative_to(REPO_ROOT)}:\n{result.stdout}{result.stderr}"
            )
        return readme.read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated file is stale")
    args = parser.parse_args(argv)
    stale = []
    files = rendered_files()
    files[README] = readme_with_table()
    for path, text in files.items():
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            stale.append(str(path.relative_to(REPO_ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"chart_settings: wrote {path.relative_to(REPO_ROOT)}")  # noqa: T201
    if stale:
        print(f"chart_settings: stale: {', '.join(stale)}; run {REGENERATE}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
