#!/usr/bin/env bash
# The image registry every node of the swarm pulls the gateway's images from (idempotent).
#
#   scripts/registry.sh up              makes sure the registry runs; prints its address
#   scripts/registry.sh push IMAGE...   pushes local images (name:tag) there, skipping those it already holds;
#                                       prints one reference by digest a line: <address>/<name>@sha256:...
#   scripts/registry.sh auth-secret     prints the name of a Docker secret (made if needed) holding the
#                                       credentials this machine's `docker login` keeps for the registry, or
#                                       the name of an empty one when there are none
#   scripts/registry.sh image           prints the registry image the nodes run (registry:2 or a local stand-in)
#   scripts/registry.sh down            removes the swarm registry: KEEP_REGISTRY=1 keeps it running with its
#                                       images, KEEP_REGISTRY_DATA=1 removes the services but keeps the images
#                                       (the volume dgw-registry_data) for the next `up`
#
# REGISTRY=host[:port][/prefix] names an existing registry that this machine has logged in to with `docker
# login` (or that needs no login): nothing is started, images are pushed there. Every node must be able to pull
# from it (a name it resolves, a certificate its engine trusts).
# Without REGISTRY, the registry runs on the swarm itself, as the stack dgw-registry (docker/registry.yml): a
# primary on this manager and a pull-through cache on every other node, each published on the node's own port
# DGW_REGISTRY_PORT (default 5000) in host mode, so the address 127.0.0.1:5000 reaches a registry on every
# node, nodes joined later included, with no engine configuration (Docker pulls over plain HTTP from loopback).
# The registry image is registry:2 when present or pullable, else dgw-registry:bookworm built from Debian's
# docker-registry package (scripts/base-images.sh). Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

STACK=dgw-registry
PORT=${DGW_REGISTRY_PORT:-5000}
LABEL=dask-gateway.registry

log() { echo "registry: $*" >&2; }
die() { log "$*"; exit 1; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }

address() { echo "${REGISTRY:-127.0.0.1:$PORT}"; }

registry_image() { scripts/base-images.sh --choose registry:2 dgw-registry:bookworm; }

# Waits (bounded) until the registry answers its API on this machine.
wait_ready() {
  local url="http://127.0.0.1:$PORT/v2/" i
  for i in $(seq 1 120); do
    curl -fsS -m 2 -o /dev/null "$url" 2>/dev/null && return 0
    [ $((i % 10)) = 0 ] && log "still waiting for $url ($i s): $(docker service ps --no-trunc \
      --format '{{.CurrentState}} {{.Error}}' "${STACK}_primary" 2>/dev/null | head -1)"
    sleep 1
  done
  die "the registry did not answer at $url; see 'docker service ps ${STACK}_primary'"
}

cmd_up() {
  if [ -n "${REGISTRY:-}" ]; then
    [[ "$REGISTRY" =~ ^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9._/-]+)?$ ]] ||
      die "REGISTRY=$REGISTRY is not host[:port][/prefix]"
    log "using the registry $REGISTRY (nothing started)"
    address
    return
  fi
  scripts/docker-engine.sh --swarm
  local image node
  image=$(registry_image)
  node=$(docker info --format '{{.Swarm.NodeID}}')
  # The primary's storage is a volume on one node: once deployed, it stays on the node that has its data.
  local pinned
  pinned=$(docker service inspect --format '{{range .Spec.TaskTemplate.Placement.Constraints}}{{.}} {{end}}' \
    "${STACK}_primary" 2>/dev/null | grep -o 'node.id == [a-z0-9]*' | awk '{print $3}' || true)
  if [ -n "$pinned" ] && [ "$pinned" != "$node" ]; then
    die "the registry's primary runs on node $pinned, not on this one ($node): run make up there, or remove it (scripts/registry.sh down)"
  fi
  log "deploying stack $STACK (image $image, port $PORT in host mode on every node)"
  DGW_REGISTRY_IMAGE=$image DGW_REGISTRY_NODE=$node DGW_REGISTRY_PORT=$PORT \
    docker stack deploy --prune -c docker/registry.yml "$STACK" >/dev/null
  wait_ready
  address
}

# The digest under which the registry holds a pushed image, or nothing when it does not hold it.
held_digest() {
  local target=$1 digest
  digest=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$target" 2>/dev/null |
    grep -F "${target%:*}@" | head -1 | cut -d@ -f2 || true)
  [ -n "$digest" ] || return 0
  docker manifest inspect --insecure "${target%:*}@$digest" >/dev/null 2>&1 && echo "$digest"
  return 0
}

cmd_push() {
  [ "$#" -ge 1 ] || usage
  local reg src name target digest t0
  reg=$(address)
  for src in "$@"; do
    docker image inspect "$src" >/dev/null 2>&1 || die "no local image $src"
    name=${src##*/}
    target="$reg/$name"
    [[ "$target" == *:* && "${target##*:}" != */* ]] || target="$target:latest"
    docker tag "$src" "$target"
    digest=$(held_digest "$target")
    if [ -n "$digest" ]; then
      log "$target: already in the registry"
    else
      t0=$(date +%s.%N)
      log "pushing $target"
      local out
      out=$(docker push "$target" 2>&1) || { echo "$out" | tail -n 5 >&2; die "pushing $target failed"; }
      digest=$(echo "$out" | grep -o 'digest: sha256:[0-9a-f]*' | tail -1 | cut -d' ' -f2)
      [ -n "$digest" ] || die "pushing $target printed no digest"
      log "pushed $target in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
    fi
    echo "${target%:*}@$digest"
  done
}

# Credentials of `docker login` for the registry's host, as the JSON the engine takes in X-Registry-Auth.
login_json() {
  local host=${1%%/*}
  node - "$host" <<'JS'
const fs = require("fs"), os = require("os"), path = require("path"), { execFileSync } = require("child_process");
const host = process.argv[2];
const dir = process.env.DOCKER_CONFIG || path.join(os.homedir(), ".docker");
let config = {};
try { config = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")); } catch { /* no login */ }
const helper = (config.credHelpers || {})[host] || config.credsStore;
let creds = null;
if (helper) {
  try {
    const out = JSON.parse(execFileSync(`docker-credential-${helper}`, ["get"], { input: host, stdio: ["pipe", "pipe", "ignore"] }));
    creds = { username: out.Username, password: out.Secret };
  } catch { /* the helper has nothing for this host */ }
}
const entry = (config.auths || {})[host];
if (!creds && entry && entry.auth) {
  const plain = Buffer.from(entry.auth, "base64").toString();
  const i = plain.indexOf(":");
  creds = { username: plain.slice(0, i), password: plain.slice(i + 1) };
}
if (!creds && entry && entry.identitytoken) creds = { identitytoken: entry.identitytoken };
process.stdout.write(JSON.stringify(creds ? { ...creds, serveraddress: host } : {}));
JS
}

cmd_auth_secret() {
  local json name
  json=$(login_json "$(address)")
  # Secrets cannot change: a new login makes a new secret. Only managers (root-equivalent) see secret names.
  name="dgw_registry_auth_$(printf '%s' "$json" | sha256sum | cut -c1-12)"
  if ! docker secret inspect "$name" >/dev/null 2>&1; then
    if [ "$json" = "{}" ]; then log "no docker login for $(address): pulls go without credentials"
    else log "passing this machine's docker login for $(address) to the gateway (Docker secret $name)"; fi
    printf '%s' "$json" | docker secret create --label dask-gateway.gateway=default --label "$LABEL=auth" "$name" - >/dev/null
  fi
  echo "$name"
}

cmd_down() {
  docker info >/dev/null 2>&1 || { log "no Docker engine running: nothing to remove"; return 0; }
  # Secrets of earlier logins; the one in use goes with the stack that uses it.
  local s
  for s in $(docker secret ls -q --filter "label=$LABEL=auth"); do docker secret rm "$s" >/dev/null 2>&1 || true; done
  if [ "${KEEP_REGISTRY:-0}" = 1 ]; then log "KEEP_REGISTRY=1: the registry stays"; return 0; fi
  if docker stack ls --format '{{.Name}}' 2>/dev/null | grep -qx "$STACK"; then
    log "removing stack $STACK"
    docker stack rm "$STACK" >/dev/null
  fi
  local i
  for i in $(seq 1 60); do
    [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] && break
    sleep 1
  done
  docker volume rm "${STACK}_cache" >/dev/null 2>&1 || true
  if [ "${KEEP_REGISTRY_DATA:-0}" = 1 ]; then
    log "KEEP_REGISTRY_DATA=1: keeping the images in the volume ${STACK}_data"
  else
    docker volume rm "${STACK}_data" >/dev/null 2>&1 || true
  fi
  for i in $(seq 1 30); do
    docker network inspect "${STACK}_registry" >/dev/null 2>&1 || break
    docker network rm "${STACK}_registry" >/dev/null 2>&1 || sleep 1
  done
}

case "${1:-}" in
  up) cmd_up ;;
  push) shift; cmd_push "$@" ;;
  auth-secret) cmd_auth_secret ;;
  image) registry_image ;;
  down) cmd_down ;;
  *) usage ;;
esac
