#!/usr/bin/env sh
# Install the Debian packages that build and run the images without Docker: podman, buildah,
# mmdebstrap (builds the base image from Debian packages) and runc (crun fails on hosts with
# hybrid cgroups). Idempotent: does nothing when all four are on PATH; uses sudo only when not
# running as root. See docs/deploy/images.md.
set -eu

missing=""
for tool in podman buildah mmdebstrap runc; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -z "$missing" ]; then
    echo "install-podman: podman, buildah, mmdebstrap and runc already installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-podman: apt-get not found; install$missing with your package manager" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-podman: not root and sudo is unavailable; run as root" >&2
    exit 1
fi

echo "install-podman: installing$missing"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
# uidmap: newuidmap/newgidmap, which podman wants even as root; the rest of the recommends
# (slirp4netns, fuse-overlayfs, ...) are not used with host networking and the overlay driver.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    podman buildah mmdebstrap runc uidmap conmon containernetworking-plugins
for tool in podman buildah mmdebstrap runc; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "install-podman: $tool still not on PATH after installation" >&2
        exit 1
    }
done
echo "install-podman: done ($(podman --version))"
