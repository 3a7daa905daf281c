#!/usr/bin/env bash
# Builds the project's images (idempotent: an image whose inputs have not changed is not rebuilt).
#
#   scripts/build-images.sh [--sidecar-only | --gateway-only]
#
#   dgw-sidecar:<hash> and :latest  docker/sidecar/Dockerfile; <hash> covers docker/sidecar/ (the
#                                   Dockerfile and entrypoint.sh) and requirements.txt
#   dgw-gateway:<hash> and :latest  docker/gateway/Dockerfile; <hash> covers docker/gateway/,
#                                   package.json, package-lock.json, dist/, protocol/ and the relay
#                                   addon's source (native/relay.c, scripts/native.sh; built in the image)
#                                   (dist/ must exist: run `npm run build` or `make build` first)
# <hash> is the first 12 hex digits of a SHA-256 over the inputs' paths and contents.
#
# Base images: the Dockerfiles default to python:3.12-slim and node:20-slim. Without a registry,
# the local bases of scripts/base-images.sh (dgw-base-python:bookworm, dgw-base-node:bookworm) are made
# if needed and passed as --build-arg BASE=... (`scripts/base-images.sh --choose`: BASE_FROM_LOCAL=1 forces
# the local bases, BASE_FROM_LOCAL=0 the upstream ones).
# Prints the images, one name:<hash> a line; progress and build output go to stderr. Starts the engine (scripts/docker-engine.sh) if needed.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "build-images: $*" >&2; }
die() { log "$*"; exit 1; }

do_sidecar=1
do_gateway=1
for arg in "$@"; do
  case "$arg" in
    --sidecar-only) do_gateway=0 ;;
    --gateway-only) do_sidecar=0 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $arg" ;;
  esac
done
[ "$do_sidecar$do_gateway" != 00 ] || die "--sidecar-only and --gateway-only exclude each other"

scripts/docker-engine.sh

# Content hash of files and directories (paths and contents, in a stable order).
content_hash() {
  find "$@" -type f ! -name '*.log' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z |
    while IFS= read -r -d '' f; do
      printf '%s\0' "$f"
      sha256sum <"$f"
    done | sha256sum | cut -c1-12
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

build() {
  local name=$1 dockerfile=$2 upstream=$3 local_base=$4
  shift 4
  local tag
  tag=$(content_hash "$(dirname "$dockerfile")" "$@")
  if image_exists "$name:$tag"; then
    docker tag "$name:$tag" "$name:latest"
    log "$name:$tag is up to date (also :latest)"
    echo "$name:$tag"
    return
  fi
  local base t0=$SECONDS
  base=$(scripts/base-images.sh --choose "$upstream" "$local_base")
  log "building $name:$tag from $base"
  # The legacy builder prints a deprecation notice when buildx is missing; the build itself is fine.
  docker build -f "$dockerfile" --build-arg "BASE=$base" \
    --label "dgw.inputs=$tag" --label "dgw.base=$base" \
    -t "$name:$tag" -t "$name:latest" . >&2 || die "building $name:$tag failed"
  log "built $name:$tag (and :latest) in $((SECONDS - t0)) s"
  echo "$name:$tag"
  # Older content-hash tags of this image go (an image still used by a container stays).
  local old
  for old in $(docker image ls "$name" --format '{{.Tag}}' | grep -E '^[0-9a-f]{12}$' | grep -v -x "$tag"); do
    docker rmi "$name:$old" >/dev/null 2>&1 || true
  done
}

if [ "$do_sidecar" = 1 ]; then
  build dgw-sidecar docker/sidecar/Dockerfile python:3.12-slim dgw-base-python:bookworm \
    requirements.txt
fi
if [ "$do_gateway" = 1 ]; then
  [ -f dist/cli.js ] || die "dist/cli.js is missing: build the gateway first (npm run build, or make build)"
  build dgw-gateway docker/gateway/Dockerfile node:20-slim dgw-base-node:bookworm \
    package.json package-lock.json dist protocol native/relay.c scripts/native.sh
fi
