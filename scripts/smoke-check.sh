#!/usr/bin/env bash
# After a deploy: is the suite up, and does a memory make the round trip (stored, found by
# search, seen by the event engine)? Needs python3 (standard library only) and, without --url,
# kubectl with access to the release's namespace.
#
#   scripts/smoke-check.sh --url https://rae.example.com      # RAE_ADMIN_TOKEN in the environment
#   scripts/smoke-check.sh --release rae --namespace rae      # port-forwards the gateway Service and
#                                                             # reads the admin token from the Secret
# Options: --secret NAME and --secret-key KEY name an existingSecret (default: the chart's own
# Secret `<release>-rae`, key `admin-token`); --timeout SECONDS per asynchronous step.
# `helm test <release>` runs the same check inside the cluster.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
smoke="${here}/../libs/common/src/rae_common/smoke.py"

url="" release="rae" namespace="" secret="" secret_key="admin-token" timeout="60"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --url) url="$2"; shift 2 ;;
    --release) release="$2"; shift 2 ;;
    --namespace|-n) namespace="$2"; shift 2 ;;
    --secret) secret="$2"; shift 2 ;;
    --secret-key) secret_key="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "smoke-check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [[ -n "${url}" ]]; then
  exec python3 "${smoke}" --url "${url}" --timeout "${timeout}"
fi

command -v kubectl >/dev/null || { echo "smoke-check: kubectl is not on PATH (or pass --url)" >&2; exit 2; }
ns_args=()
[[ -n "${namespace}" ]] && ns_args=(--namespace "${namespace}")
secret="${secret:-${release}-rae}"
if [[ -z "${RAE_ADMIN_TOKEN:-}" ]]; then
  RAE_ADMIN_TOKEN="$(kubectl "${ns_args[@]}" get secret "${secret}" -o "jsonpath={.data.${secret_key}}" | base64 -d)"
  export RAE_ADMIN_TOKEN
fi
service="$(kubectl "${ns_args[@]}" get service -l "app.kubernetes.io/instance=${release},app.kubernetes.io/name=gateway" -o name | head -n1)"
[[ -n "${service}" ]] || { echo "smoke-check: no gateway Service of release ${release}" >&2; exit 1; }
port="$(kubectl "${ns_args[@]}" get "${service}" -o 'jsonpath={.spec.ports[0].port}')"
local_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

kubectl "${ns_args[@]}" port-forward "${service}" "${local_port}:${port}" >/dev/null &
forward=$!
trap 'kill "${forward}" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  python3 -c "import socket, sys; socket.create_connection(('127.0.0.1', ${local_port}), 0.2)" 2>/dev/null && break
  sleep 0.2
done
python3 "${smoke}" --url "http://127.0.0.1:${local_port}" --timeout "${timeout}"
