"""Validates rendered manifests: Kubernetes kinds against the API schema of one version
(kubernetes-validate, strict: an unknown field fails), the custom resources the chart renders
(ServiceMonitor, PrometheusRule, HTTPRoute, Traefik's Middleware) with deploy/tools/validate-crds.mjs.

    .venv/bin/python deploy/tools/validate_manifests.py rendered.yaml [...]

Exit 1 with one line per problem. Offline once deploy/tools/install-chart-tools.sh has run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBE_VERSION = "1.31.0"
NODE_MODULES = REPO_ROOT / ".tools" / "node" / "node_modules"
CUSTOM_GROUPS = ("monitoring.coreos.com/", "gateway.networking.k8s.io/", "traefik.io/")


def problems(manifests: Iterable[dict[str, Any]], kube_version: str = KUBE_VERSION) -> list[str]:
    found: list[str] = []
    custom: list[dict[str, Any]] = []
    for manifest in manifests:
        name = f"{manifest.get('kind')} {manifest.get('metadata', {}).get('name')}"
        if str(manifest.get("apiVersion", "")).startswith(CUSTOM_GROUPS):
            custom.append(manifest)
            continue
        try:
            kubernetes_validate.validate(manifest, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            found.append(f"{name}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            found.append(f"{name}: no schema: {exc}")
    if custom:
        result = subprocess.run(
            ["node", str(REPO_ROOT / "deploy" / "tools" / "validate-crds.mjs")],
            input=json.dumps(custom),
            env={**os.environ, "RAE_NODE_MODULES": str(NODE_MODULES)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            found.extend(line for line in (result.stdout + result.stderr).splitlines() if line.strip())
    return found


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--kube-version", default=KUBE_VERSION)
    args = parser.parse_args(argv)
    failed = False
    for path in args.files:
        manifests = load(path)
        found = problems(manifests, args.kube_version)
        for problem in found:
            print(f"{path}: {problem}", file=sys.stderr)  # noqa: T201
        failed = failed or bool(found)
        if not found:
            print(f"{path}: {len(manifests)} manifests valid for Kubernetes {args.kube_version}")  # noqa: T201
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
