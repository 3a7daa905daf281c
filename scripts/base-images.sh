#!/usr/bin/env bash
# Makes the local base images that replace registry images on a machine that cannot pull any
# (idempotent: an image that already exists is skipped, so the usual run is a fast no-op).
#
#   scripts/base-images.sh [--rebuild] [IMAGE...]
#   scripts/base-images.sh --choose UPSTREAM LOCAL   prints the image to use in place of UPSTREAM: UPSTREAM when
#                                                    present or pullable, else LOCAL (made if missing)
#
# Images (all Debian bookworm, built with debootstrap --variant=minbase and `docker import`):
#   dgw-base-python:bookworm  python3, python3-venv, python3-pip, ca-certificates, tini
#                             (stands in for python:3.12-slim when building docker/sidecar)
#   dgw-base-node:bookworm    ca-certificates, tini + this host's own `node` (>= 20) and npm, copied in
#                             (Debian bookworm only packages nodejs 18; the gateway needs >= 20)
#                             (stands in for node:20-slim when building docker/gateway)
#   dgw-node:bookworm         docker.io, iproute2, iptables, ca-certificates, procps, tini
#                             (the Docker-in-Docker swarm nodes of scripts/swarm-nodes.sh)
#   dgw-registry:bookworm     Debian's docker-registry (the CNCF distribution registry 2.8), configured like
#                             the upstream registry:2 image (storage /var/lib/registry, port 5000, no auth;
#                             REGISTRY_* environment variables override it the same way)
#                             (stands in for registry:2 in scripts/registry.sh)
# With IMAGE arguments only those are made (names with or without the :bookworm tag).
#
# Every image gets this host's CA bundle (/etc/ssl/certs/ca-certificates.crt, or $DGW_HOST_CA) as its
# system bundle, and ENV variables that make pip, requests, OpenSSL and Node use it, so `pip install` and
# `npm ci` inside builds work behind a TLS-intercepting proxy that only the host trusts.
#
# Caches (outside the repository), under $DGW_CACHE (default /var/cache/dgw):
#   debs/    the .deb files debootstrap downloads (shared between images)
#   rootfs/  one tarball per image and input hash; an image removed from Docker is re-imported from it
#            without running debootstrap again
# --choose: BASE_FROM_LOCAL=1 always takes LOCAL, =0 always UPSTREAM; unset, UPSTREAM when present or pullable
# within BASE_PULL_TIMEOUT seconds (default 120; a pull on a machine with no registry fails within a second).
# Environment: DGW_DEBIAN_MIRROR (default http://deb.debian.org/debian), DGW_CACHE, DGW_HOST_CA.
# Needs root (debootstrap); runs scripts/docker-engine.sh first (engine and debootstrap).
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
MIRROR=${DGW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${DGW_CACHE:-/var/cache/dgw}
HOST_CA=${DGW_HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
ALL=(dgw-base-python:bookworm dgw-base-node:bookworm dgw-node:bookworm dgw-registry:bookworm)

log() { echo "base-images: $*" >&2; }
die() { log "$*"; exit 1; }

# Prints the image to use in place of an upstream one: the upstream image or the local stand-in.
choose() {
  local upstream=$1 local_image=$2
  case "${BASE_FROM_LOCAL:-}" in
    1) ;;
    0) echo "$upstream"; return ;;
    "")
      if docker image inspect "$upstream" >/dev/null 2>&1; then echo "$upstream"; return; fi
      log "pulling $upstream"
      if timeout "${BASE_PULL_TIMEOUT:-120}" docker pull -q "$upstream" >/dev/null 2>&1; then
        echo "$upstream"; return
      fi
      log "cannot pull $upstream: using the local image $local_image"
      ;;
    *) die "BASE_FROM_LOCAL must be 1, 0 or unset" ;;
  esac
  "$0" "$local_image"
  echo "$local_image"
}

if [ "${1:-}" = --choose ]; then
  [ "$#" = 3 ] || die "usage: --choose UPSTREAM LOCAL"
  scripts/docker-engine.sh
  choose "$2" "$3"
  exit 0
fi

rebuild=0
wanted=()
for arg in "$@"; do
  case "$arg" in
    --rebuild) rebuild=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) die "unknown option: $arg" ;;
    *:*) wanted+=("$arg") ;;
    *) wanted+=("$arg:$SUITE") ;;
  esac
done
[ "${#wanted[@]}" -gt 0 ] || wanted=("${ALL[@]}")

scripts/docker-engine.sh   # engine running, debootstrap installed (no-op when they are)

packages_for() {
  case "$1" in
    dgw-base-python:bookworm) echo "python3,python3-venv,python3-pip,ca-certificates,tini" ;;
    dgw-base-node:bookworm)   echo "ca-certificates,tini,libstdc++6" ;;
    dgw-node:bookworm)        echo "docker.io,iproute2,iptables,ca-certificates,procps,tini" ;;
    dgw-registry:bookworm)    echo "docker-registry,ca-certificates" ;;
    *) return 1 ;;
  esac
}

# Host node for dgw-base-node: the binary and the npm package next to it.
node_bin=""
npm_dir=""
find_host_node() {
  node_bin=$(command -v node || true)
  [ -n "$node_bin" ] || die "dgw-base-node needs Node >= 20 on the host to copy in (Debian bookworm only has nodejs 18)"
  node_bin=$(readlink -f "$node_bin")
  local major
  major=$("$node_bin" -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 20 ] || die "host node is $("$node_bin" --version); the gateway needs >= 20 (Debian bookworm only has 18)"
  local npm_cli
  npm_cli=$(readlink -f "$(command -v npm || true)" 2>/dev/null || true)
  if [ -n "$npm_cli" ] && [ -f "$npm_cli" ]; then
    npm_dir=$(dirname "$(dirname "$npm_cli")")
  fi
  [ -n "$npm_dir" ] && [ -f "$npm_dir/package.json" ] || die "cannot find the host's npm package (next to $node_bin)"
}

# Everything that decides an image's content, hashed: a cached root filesystem is reused only for the
# same inputs.
input_hash() {
  local image=$1
  {
    echo "suite=$SUITE mirror=$MIRROR packages=$(packages_for "$image") recipe=3"
    [ "$image" != dgw-registry:bookworm ] || registry_config
    if [ -f "$HOST_CA" ]; then sha256sum <"$HOST_CA"; fi
    if [ "$image" = dgw-base-node:bookworm ]; then
      "$node_bin" --version
      sha256sum <"$npm_dir/package.json"
    fi
  } | sha256sum | cut -c1-16
}

# Image configuration given to `docker import --change`.
import_changes() {
  local image=$1 hash=$2
  local -a c=(
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    --change "ENV LANG=C.UTF-8"
    --change "LABEL org.opencontainers.image.description=\"$image: local debootstrap base\" dgw.rootfs=$hash"
  )
  if [ -f "$HOST_CA" ]; then
    c+=(
      --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
      --change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt"
      --change "ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt"
      --change "ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt"
    )
  fi
  case "$image" in
    dgw-node:bookworm)
      c+=(--change 'CMD ["tini","--","dockerd","--host","unix:///var/run/docker.sock","--storage-driver","vfs"]') ;;
    dgw-base-node:bookworm)
      c+=(--change 'CMD ["node"]') ;;
    dgw-registry:bookworm)
      c+=(--change 'EXPOSE 5000' --change 'VOLUME /var/lib/registry'
          --change 'CMD ["/usr/bin/docker-registry","serve","/etc/docker/registry/config.yml"]') ;;
    *)
      c+=(--change 'CMD ["bash"]') ;;
  esac
  printf '%s\0' "${c[@]}"
}

# The configuration of the upstream registry:2 image, so that both images take the same REGISTRY_* variables.
registry_config() {
  cat <<'YAML'
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
YAML
}

make_rootfs() {
  local image=$1 tarball=$2
  local name=${image%%:*}
  local dir="$CACHE/tmp/$name"
  [ "$(id -u)" = 0 ] || die "debootstrap needs root"
  command -v debootstrap >/dev/null || die "debootstrap is missing (scripts/docker-engine.sh installs it)"
  rm -rf "$dir"
  mkdir -p "$dir" "$CACHE/debs" "$CACHE/rootfs"
  local t0=$SECONDS dlog="$CACHE/tmp/$name.debootstrap.log"
  log "$image: debootstrap $SUITE ($(packages_for "$image")), log $dlog"
  if ! debootstrap --variant=minbase --include="$(packages_for "$image")" --cache-dir="$CACHE/debs" \
      "$SUITE" "$dir" "$MIRROR" >"$dlog" 2>&1; then
    tail -n 30 "$dlog" >&2
    die "$image: debootstrap failed"
  fi
  # Host CA bundle: as the system bundle, and as a local CA source so update-ca-certificates keeps it.
  if [ -f "$HOST_CA" ]; then
    install -D -m 0644 "$HOST_CA" "$dir/usr/local/share/ca-certificates/dgw-host-bundle.crt"
    install -m 0644 "$HOST_CA" "$dir/etc/ssl/certs/ca-certificates.crt"
  else
    log "$image: no host CA bundle at $HOST_CA; keeping Debian's"
  fi
  if [ "$image" = dgw-base-node:bookworm ]; then
    install -D -m 0755 "$node_bin" "$dir/usr/local/bin/node"
    mkdir -p "$dir/usr/local/lib/node_modules"
    cp -a "$npm_dir" "$dir/usr/local/lib/node_modules/npm"
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$dir/usr/local/bin/npm"
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$dir/usr/local/bin/npx"
    chroot "$dir" /usr/local/bin/node --version >/dev/null || die "$image: the copied node does not run in the image"
  fi
  # Debian's registry configuration asks for an htpasswd file it does not ship: use registry:2's instead.
  if [ "$image" = dgw-registry:bookworm ]; then
    registry_config >"$dir/etc/docker/registry/config.yml"
    mkdir -p "$dir/var/lib/registry"
  fi
  # Slim down: package lists and downloaded .debs are not needed in an image.
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin \
         "$dir"/var/log/* "$dir"/tmp/* "$dir"/root/.cache
  : >"$dir/etc/hostname"
  tar -C "$dir" --numeric-owner -cf "$tarball.part" .
  find "$CACHE/rootfs" -maxdepth 1 -name "$name-*.tar" ! -path "$tarball" -delete  # older inputs
  mv "$tarball.part" "$tarball"
  rm -rf "$dir"
  log "$image: root filesystem ready in $((SECONDS - t0)) s ($(du -h "$tarball" | cut -f1))"
}

for image in "${wanted[@]}"; do
  packages_for "$image" >/dev/null || die "unknown image $image (known: ${ALL[*]})"
  if [ "$rebuild" = 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
    continue
  fi
  [ "$image" != dgw-base-node:bookworm ] || find_host_node
  hash=$(input_hash "$image")
  tarball="$CACHE/rootfs/${image%%:*}-$hash.tar"
  if [ "$rebuild" = 1 ] || [ ! -f "$tarball" ]; then
    make_rootfs "$image" "$tarball"
  else
    log "$image: using cached root filesystem $tarball"
  fi
  mapfile -d '' changes < <(import_changes "$image" "$hash")
  docker import "${changes[@]}" - "$image" <"$tarball" >/dev/null
  log "$image: imported ($(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
done
