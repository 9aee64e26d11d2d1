#!/usr/bin/env bash
# podman with the project's own configuration: the image store, the runtime's state and the
# registries under a state directory, never the user's or the system's containers config.
#   deploy/images/podman.sh [--state-dir DIR] <podman arguments>
#   (or RAE_IMAGES_STATE_DIR; default <repo>/.rae-local/images)
# The settings are those that work on a host without Docker (docs/deploy/images.md): runc (crun
# fails with hybrid cgroups), cgroupfs, events in a file, host networking only, and explicit
# ulimits (root may lack CAP_SYS_RESOURCE to raise them). With --print-env it prints the
# CONTAINERS_* variables instead, for a shell or for buildah.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
state_dir="${RAE_IMAGES_STATE_DIR:-${repo_root}/.rae-local/images}"
if [[ ${1:-} == --state-dir ]]; then
  state_dir="$2"
  shift 2
fi
mkdir -p "${state_dir}"
state_dir="$(cd "${state_dir}" && pwd)"

# Locks and per-boot state belong on a temporary file system; one directory per state dir.
run_dir="${TMPDIR:-/tmp}/rae-images-$(id -u)-$(printf '%s' "${state_dir}" | cksum | cut -d' ' -f1)"
config_dir="${state_dir}/config"
mkdir -p "${config_dir}" "${state_dir}/storage" "${state_dir}/networks" "${run_dir}"

nofile="$(ulimit -Hn)"
[[ ${nofile} == unlimited ]] && nofile=1048576

write_if_changed() {
  local target="$1" content="$2"
  if [[ ! -f ${target} || "$(cat "${target}")" != "${content}" ]]; then
    printf '%s\n' "${content}" >"${target}.tmp"
    mv -f "${target}.tmp" "${target}"
  fi
}

write_if_changed "${config_dir}/containers.conf" "# Written by deploy/images/podman.sh
[containers]
netns = \"host\"
default_ulimits = [\"nofile=${nofile}:${nofile}\", \"nproc=32768:32768\"]

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\"
events_logfile_path = \"${run_dir}/events.log\"
tmp_dir = \"${run_dir}/libpod\"

[network]
network_config_dir = \"${state_dir}/networks\""

write_if_changed "${config_dir}/storage.conf" "# Written by deploy/images/podman.sh
[storage]
driver = \"overlay\"
graphroot = \"${state_dir}/storage\"
runroot = \"${run_dir}/storage\""

write_if_changed "${config_dir}/registries.conf" "# Written by deploy/images/podman.sh: no registry is searched for a short name.
unqualified-search-registries = []"

export CONTAINERS_CONF="${config_dir}/containers.conf"
export CONTAINERS_STORAGE_CONF="${config_dir}/storage.conf"
export CONTAINERS_REGISTRIES_CONF="${config_dir}/registries.conf"

if [[ ${1:-} == --print-env ]]; then
  printf 'export CONTAINERS_CONF=%q\nexport CONTAINERS_STORAGE_CONF=%q\nexport CONTAINERS_REGISTRIES_CONF=%q\n' \
    "${CONTAINERS_CONF}" "${CONTAINERS_STORAGE_CONF}" "${CONTAINERS_REGISTRIES_CONF}"
  exit 0
fi
exec podman "$@"
