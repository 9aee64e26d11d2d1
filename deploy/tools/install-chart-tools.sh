#!/usr/bin/env bash
# Installs the chart's node tools into <repo>/.tools/node (pinned, from the npm registry):
# - @bitnami/readme-generator-for-helm: the values table of charts/rae/README.md, from the
#   `## @param` comments of values.yaml;
# - @kubernetes-models/prometheus-operator, @kubernetes-models/gateway-api and
#   @kubernetes-models/traefik: validators of the ServiceMonitor, PrometheusRule, HTTPRoute and
#   Traefik Middleware custom resources, which kubernetes-validate does not know
#   (deploy/tools/validate-crds.mjs).
# Idempotent: does nothing when the installed versions are the pinned ones.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
prefix="${repo_root}/.tools/node"
packages=(
  "@bitnami/readme-generator-for-helm@2.7.2"
  "@kubernetes-models/prometheus-operator@6.0.0"
  "@kubernetes-models/gateway-api@2.0.0"
  "@kubernetes-models/traefik@2.0.0"
)
stamp="${prefix}/.installed"
wanted="${packages[*]}"

if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${wanted}" ]]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "install-chart-tools: 'npm' is required" >&2
  exit 1
fi

mkdir -p "${prefix}"
npm install --silent --no-audit --no-fund --save-exact --prefix "${prefix}" "${packages[@]}" >/dev/null
echo "${wanted}" >"${stamp}"
echo "install-chart-tools: ${wanted} installed in ${prefix}"
