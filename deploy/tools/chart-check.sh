#!/usr/bin/env bash
# Lints the Helm charts, renders charts/rae with its defaults and with every optional feature on
# (charts/rae/ci/all-features-values.yaml), and validates each rendered manifest against the
# Kubernetes 1.31 schemas. Works offline once helm and kubernetes-validate are installed.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${repo_root}"

kube_version="1.31.0"
validator_spec="kubernetes-validate==1.37.0"

bash deploy/tools/install-helm.sh

export PATH="${repo_root}/.tools/bin:${PATH}"
export HELM_CACHE_HOME="${repo_root}/.tools/helm/cache"
export HELM_CONFIG_HOME="${repo_root}/.tools/helm/config"
export HELM_DATA_HOME="${repo_root}/.tools/helm/data"

if [[ -n "${PYTHON:-}" ]]; then
  python_bin="${PYTHON}"
else
  python_bin="${repo_root}/.venv/bin/python"
  if [[ ! -x "${python_bin}" ]]; then
    python3 -m venv "${repo_root}/.venv"
  fi
fi
if ! "${python_bin}" -c "import kubernetes_validate" >/dev/null 2>&1; then
  "${python_bin}" -m pip install --quiet "${validator_spec}"
fi

helm dependency build --skip-refresh charts/rae >/dev/null

scratch="$(mktemp -d)"
trap 'rm -rf "${scratch}"' EXIT

check() {
  local label="$1"
  shift
  echo "chart-check: ${label}"
  helm lint --strict charts/rae "$@"
  helm template r charts/rae --kube-version "${kube_version}" "$@" >"${scratch}/${label}.yaml"
  # --quiet prints only warnings (e.g. a kind without a schema) and failures: both fail the check.
  local report
  if ! report="$("${python_bin}" -m kubernetes_validate -k "${kube_version}" --strict --quiet "${scratch}/${label}.yaml" 2>&1)"; then
    echo "${report}" >&2
    return 1
  fi
  if [[ -n "${report}" ]]; then
    echo "${report}" >&2
    return 1
  fi
  echo "chart-check: ${label}: $(grep -c '^kind:' "${scratch}/${label}.yaml") manifests valid for Kubernetes ${kube_version}"
}

helm lint --strict charts/rae-service
check defaults
check all-features -f charts/rae/ci/all-features-values.yaml
