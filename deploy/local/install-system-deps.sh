#!/usr/bin/env sh
# Install the Debian packages the local stack needs and pip cannot provide (today: redis-server).
# Does nothing when redis-server is already on PATH or REDIS_URL points at an existing Redis.
# Idempotent; uses sudo only when not running as root.
set -eu

if [ -n "${REDIS_URL:-}" ]; then
    echo "install-system-deps: REDIS_URL is set, using that Redis; nothing to install"
    exit 0
fi
if command -v redis-server >/dev/null 2>&1; then
    echo "install-system-deps: redis-server already installed ($(command -v redis-server))"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: apt-get not found; install redis-server with your package manager" >&2
    echo "  (or set REDIS_URL to an existing Redis)" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-system-deps: not root and sudo is unavailable; run as root" >&2
    exit 1
fi

echo "install-system-deps: installing redis-server"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server
command -v redis-server >/dev/null 2>&1 || {
    echo "install-system-deps: redis-server still not on PATH after installation" >&2
    exit 1
}
echo "install-system-deps: done ($(command -v redis-server))"
