#!/usr/bin/env bash
# Build the service images with podman, on a host without Docker or a reachable image registry
# (docs/deploy/images.md, "Building here with podman"):
#   deploy/images/build-images.sh [--state-dir DIR] [--tag TAG] [--torch] [SERVICE...]
# 1. installs podman, buildah, mmdebstrap and runc with apt-get when missing;
# 2. builds the base image localhost/rae-debian-python:<suite> from the host's own Debian (or
#    Ubuntu) packages with mmdebstrap, once: it is reused while it exists in the image store;
# 3. builds localhost/rae-<service>:TAG (default: local) from the one Dockerfile for each SERVICE
#    (default: all seven), reusing the layers of earlier builds.
# The image store is in DIR (default <repo>/.rae-local/images; RAE_IMAGES_STATE_DIR also), see
# deploy/images/podman.sh. --torch builds the ml image with the torch fallback (ML_TORCH=1).
#
# Build-time inputs from the host, mounted for the build only (never copied into an image):
# - the CA bundle pip's HTTPS needs (a proxy's CA only the host trusts): RAE_IMAGES_CA_BUNDLE,
#   default PIP_CERT, else SSL_CERT_FILE, else /etc/ssl/certs/ca-certificates.crt;
# - the host's pip indexes and wheel directories (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL,
#   PIP_FIND_LINKS, or the same keys of pip's config files): the build's pip resolves exactly
#   what the host's does; local ones (file://, a directory) are mounted read-only at their own
#   path (an index's parent directory, where its files are). When one of those directories holds torch's CPU wheel, torch comes from there;
#   otherwise from the Dockerfile's TORCH_INDEX_URL (download.pytorch.org's CPU index).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
all_services=(gateway memory ml graph reflection cost events)
state_dir="${RAE_IMAGES_STATE_DIR:-${repo_root}/.rae-local/images}"
tag=local
ml_torch=0
services=()
while (($#)); do
  case "$1" in
    --state-dir) state_dir="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --torch) ml_torch=1; shift ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) echo "build-images: unknown option $1" >&2; exit 2 ;;
    *) services+=("$1"); shift ;;
  esac
done
((${#services[@]})) || services=("${all_services[@]}")
for svc in "${services[@]}"; do
  [[ " ${all_services[*]} " == *" ${svc} "* ]] || { echo "build-images: unknown service ${svc}" >&2; exit 2; }
done
mkdir -p "${state_dir}"
state_dir="$(cd "${state_dir}" && pwd)"
podman=("${repo_root}/deploy/images/podman.sh" --state-dir "${state_dir}")

port_of() {
  local i
  for i in "${!all_services[@]}"; do
    [[ ${all_services[i]} == "$1" ]] && { echo $((8000 + i)); return; }
  done
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

bash "${repo_root}/deploy/images/install-podman.sh"

# ---------------------------------------------------------------- base image
# The host's release and apt sources: the base gets the packages this host trusts, from the
# mirrors (and proxy) it already reaches.
# shellcheck disable=SC1091
suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
[[ -n ${suite} ]] || { echo "build-images: no VERSION_CODENAME in /etc/os-release" >&2; exit 1; }
base="localhost/rae-debian-python:${suite}"
if "${podman[@]}" image exists "${base}"; then
  echo "build-images: base ${base} already built"
else
  start="$(now)"
  sources=()
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] && grep -qE '^[[:space:]]*(deb|Types:)' "$f" && sources+=("$f")
  done
  tarball="${state_dir}/base-${suite}.tar"
  # python3-venv: the build stage makes the venv; docs, manuals and translations are left out
  # (copyright files stay).
  mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    "${suite}" "${tarball}" "${sources[@]}"
  "${podman[@]}" import \
    --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' \
    "${tarball}" "${base}" >/dev/null
  rm -f "${tarball}"
  echo "build-images: base ${base} built in $(elapsed "${start}") s"
fi

# ---------------------------------------------------------------- service images
ca_bundle="${RAE_IMAGES_CA_BUNDLE:-${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}"
py="${repo_root}/.venv/bin/python"
[[ -x ${py} ]] || py=python3
host_pip() { # the host's pip setting $1 (index-url, ...): PIP_<NAME> wins over pip's config files
  local var
  var="PIP_$(tr 'a-z-' 'A-Z_' <<<"$1")"
  if [[ -n ${!var:-} ]]; then
    echo "${!var}"
  else
    "${py}" -m pip config get "global.$1" 2>/dev/null | tr '\n' ' ' || true
  fi
}
build_opts=(
  --network=host --pull=never --layers
  -f "${repo_root}/Dockerfile"
  --build-arg "BASE_IMAGE=${base}"
  --build-arg "ML_TORCH=${ml_torch}"
  --build-arg "REVISION=$(git -C "${repo_root}" rev-parse HEAD 2>/dev/null || echo unknown)"
)
if [[ -f ${ca_bundle} ]]; then
  build_opts+=(-v "${ca_bundle}:/etc/ssl/certs/ca-certificates.crt:ro"
    --build-arg PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
fi
declare -A mounted=()
for setting in index-url extra-index-url find-links; do
  value="$(host_pip "${setting}" | xargs)"
  [[ -n ${value} ]] || continue
  build_opts+=(--build-arg "PIP_$(tr 'a-z-' 'A-Z_' <<<"${setting}")=${value}")
  for location in ${value}; do
    path="${location#file://}"
    # A local index (.../simple) links to its files beside it: mount the index's parent.
    [[ ${setting} == *index-url && ${path} == /* ]] && path="$(dirname "${path%/}")"
    if [[ ${path} == /* && -e ${path} && -z ${mounted[${path}]:-} ]]; then
      mounted[${path}]=1
      build_opts+=(-v "${path}:${path}:ro")
      if [[ ${setting} == find-links ]] && compgen -G "${path}/torch-*+cpu-*.whl" >/dev/null; then
        build_opts+=(--build-arg TORCH_INDEX_URL=)
      fi
    fi
  done
done
source_url="$(git -C "${repo_root}" remote get-url origin 2>/dev/null || true)"
[[ -n ${source_url} ]] && build_opts+=(--build-arg "SOURCE=${source_url}")

total="$(now)"
for svc in "${services[@]}"; do
  start="$(now)"
  name="localhost/rae-${svc}:${tag}"
  previous="$("${podman[@]}" image inspect --format '{{.Id}}' "${name}" 2>/dev/null || true)"
  "${podman[@]}" build "${build_opts[@]}" \
    --build-arg "SERVICE=${svc}" --build-arg "PORT=$(port_of "${svc}")" \
    -t "${name}" "${repo_root}"
  # The image this one replaced, with the layers only it used: the store keeps one generation
  # (and the build cache), not one per change.
  if [[ -n ${previous} && ${previous} != "$("${podman[@]}" image inspect --format '{{.Id}}' "${name}")" ]]; then
    "${podman[@]}" rmi "${previous}" >/dev/null 2>&1 || true
  fi
  echo "build-images: ${name} built in $(elapsed "${start}") s"
done
echo "build-images: ${#services[@]} image(s) built in $(elapsed "${total}") s"
for svc in "${services[@]}"; do
  "${podman[@]}" image inspect --format "build-images: {{index .RepoTags 0}} {{.Size}} bytes" "localhost/rae-${svc}:${tag}"
done
