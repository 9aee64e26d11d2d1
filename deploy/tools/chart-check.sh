#!/usr/bin/env bash
# Checks the Helm charts offline: the generated files (settings.json, values.schema.json, the
# README's values table) are up to date; `helm lint --strict` passes for every values file of
# charts/rae/ci/ and charts/rae/examples/; each renders, and the result validates against the
# Kubernetes 1.31 schema (kubernetes-validate, strict) and, for the custom resources
# (ServiceMonitor, PrometheusRule, HTTPRoute, Traefik Middleware), the @kubernetes-models schemas.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${repo_root}"

kube_version="1.31.0"

bash deploy/tools/install-helm.sh
bash deploy/tools/install-chart-tools.sh

export PATH="${repo_root}/.tools/bin:${PATH}"
export HELM_CACHE_HOME="${repo_root}/.tools/helm/cache"
export HELM_CONFIG_HOME="${repo_root}/.tools/helm/config"
export HELM_DATA_HOME="${repo_root}/.tools/helm/data"
python_bin="${PYTHON:-${repo_root}/.venv/bin/python}"

"${python_bin}" deploy/tools/chart_settings.py --check

helm dependency build --skip-refresh charts/rae >/dev/null

scratch="$(mktemp -d)"
trap 'rm -rf "${scratch}"' EXIT

helm lint --strict charts/rae-service
for values in charts/rae/ci/*.yaml charts/rae/examples/*.yaml; do
  label="$(basename "$(dirname "${values}")")-$(basename "${values}" .yaml)"
  echo "chart-check: ${values}"
  helm lint --strict charts/rae -f "${values}" >"${scratch}/${label}.lint" || {
    cat "${scratch}/${label}.lint" >&2
    exit 1
  }
  helm template r charts/rae --kube-version "${kube_version}" -f "${values}" >"${scratch}/${label}.yaml"
  "${python_bin}" deploy/tools/validate_manifests.py --kube-version "${kube_version}" "${scratch}/${label}.yaml"
done
