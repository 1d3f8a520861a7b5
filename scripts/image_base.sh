#!/usr/bin/env bash
# The image tests' tools and base (tests/docker.rs, tests/compose.rs): buildah,
# podman (rootful), podman-compose with CNI's dnsname plugin (compose services
# find each other by name), runc, and a Debian bookworm root filesystem made by
# mmdebstrap from Debian's own packages, imported as
# localhost/sluice-bookworm-base. The tests build docker/Dockerfile (and the
# compose file's stand-in services) on it (BASE_IMAGE) instead of pulling from
# a registry. Idempotent. Prints two lines:
#
#   storage: --storage-driver overlay --root ... --runroot ...
#   localhost/sluice-bookworm-base:latest
#
# the global options every podman and buildah call of the tests passes, then
# the base image's name. The storage is the kernel's overlay filesystem in a
# store of the tests' own where the kernel can mount one, and podman's default
# store with the vfs driver where it cannot. vfs copies a whole image for every
# container and build step: the compose test's five containers took minutes.
# SLUICE_CONTAINER_STORAGE=vfs forces the fallback.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
apt_install buildah podman runc mmdebstrap podman-compose golang-github-containernetworking-plugin-dnsname
TOOLS="${SLUICE_TOOLS_DIR:-$HOME/.cache/sluice-tools}"
IMAGE=localhost/sluice-bookworm-base:latest

# Can the kernel mount an overlay on the store's filesystem? Tried for real.
overlay_works() {
  local parent=/var/lib/containers probe ok=1
  as_root mkdir -p "$parent"
  probe=$(as_root mktemp -d "$parent/overlay-probe.XXXXXX")
  as_root mkdir -p "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
  if as_root mount -t overlay overlay \
    -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
    as_root umount "$probe/merged"
    ok=0
  fi
  as_root rm -rf "$probe"
  return $ok
}

if [ "${SLUICE_CONTAINER_STORAGE:-}" != vfs ] && overlay_works; then
  STORAGE=(--storage-driver overlay --root /var/lib/containers/sluice-overlay
    --runroot /run/containers/sluice-overlay)
else
  STORAGE=(--storage-driver vfs)
fi

if ! podman "${STORAGE[@]}" image exists "$IMAGE"; then
  tar="$TOOLS/bookworm-minbase.tar"
  if [ ! -s "$tar" ]; then
    say "making a bookworm root filesystem (mmdebstrap)"
    mkdir -p "$TOOLS"
    mmdebstrap --quiet --format=tar --variant=minbase --include=ca-certificates,curl bookworm "$tar.part" >&2
    mv "$tar.part" "$tar"
  fi
  podman "${STORAGE[@]}" import --quiet "$tar" "$IMAGE" >&2
fi
echo "storage: ${STORAGE[*]}"
echo "$IMAGE"
