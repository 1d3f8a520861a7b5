#!/usr/bin/env bash
# The image tests' tools and base (tests/docker.rs, tests/compose.rs): buildah,
# podman (rootful, vfs storage), podman-compose with CNI's dnsname plugin (compose
# services find each other by name), runc, and a Debian bookworm root
# filesystem made by mmdebstrap from Debian's own packages, imported as
# localhost/sluice-bookworm-base. The tests build docker/Dockerfile (and the
# compose file's stand-in services) on it (BASE_IMAGE) instead of pulling from
# a registry. Idempotent; prints the base image's name.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
apt_install buildah podman runc mmdebstrap podman-compose golang-github-containernetworking-plugin-dnsname
TOOLS="${SLUICE_TOOLS_DIR:-$HOME/.cache/sluice-tools}"
IMAGE=localhost/sluice-bookworm-base:latest
if ! podman --storage-driver vfs image exists "$IMAGE"; then
  tar="$TOOLS/bookworm-minbase.tar"
  if [ ! -s "$tar" ]; then
    say "making a bookworm root filesystem (mmdebstrap)"
    mkdir -p "$TOOLS"
    mmdebstrap --quiet --format=tar --variant=minbase --include=ca-certificates,curl bookworm "$tar.part" >&2
    mv "$tar.part" "$tar"
  fi
  podman --storage-driver vfs import --quiet "$tar" "$IMAGE" >&2
fi
echo "$IMAGE"
