#!/usr/bin/env bash
# `make up`: the gateway on this machine's Docker swarm (a single-node swarm is created if needed).
# Idempotent: builds only what changed, keeps the password of the first run, redeploys in place.
#   STACK (default dgw), PORT (default 8000), POOL_SIZE (warm schedulers kept ready, default 1; 0: none), REGISTRY (host[:port][/prefix] of an existing registry this
#   machine has logged in to; default: a registry on the swarm itself, see scripts/registry.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
STACK=${STACK:-dgw}
PORT=${PORT:-8000}
SECRET=dgw_password
PASSWORD_FILE=${DGW_UP_PASSWORD_FILE:-$HOME/.local/state/dask-gateway-swarm/swarm-password}
log() { echo "up: $*" >&2; }

log "Docker engine and swarm"
scripts/docker-engine.sh --swarm
log "building the gateway"
make --no-print-directory build >&2
log "building images (skipped when unchanged)"
images=$(scripts/build-images.sh)
log "the registry every node pulls from"
DGW_REGISTRY=$(scripts/registry.sh up)
pinned=$(scripts/registry.sh push $images)
DGW_GATEWAY_IMAGE=$(grep '/dgw-gateway@' <<<"$pinned")
DGW_SIDECAR_IMAGE=$(grep '/dgw-sidecar@' <<<"$pinned")
DGW_REGISTRY_AUTH_SECRET=$(scripts/registry.sh auth-secret)
DGW_POOL_SIZE=${POOL_SIZE:-1}
[[ "$DGW_POOL_SIZE" =~ ^[0-9]+$ ]] || { log "POOL_SIZE=$POOL_SIZE is not a whole number"; exit 1; }
export DGW_REGISTRY DGW_GATEWAY_IMAGE DGW_SIDECAR_IMAGE DGW_REGISTRY_AUTH_SECRET DGW_POOL_SIZE

if ! docker secret inspect "$SECRET" >/dev/null 2>&1; then
  log "generating the gateway password (kept as Docker secret $SECRET and in $PASSWORD_FILE)"
  mkdir -p "$(dirname "$PASSWORD_FILE")" && chmod 700 "$(dirname "$PASSWORD_FILE")"
  (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$PASSWORD_FILE")
  docker secret create --label dask-gateway.gateway=default "$SECRET" "$PASSWORD_FILE" >/dev/null
fi
if ! docker secret inspect dgw_records_key >/dev/null 2>&1; then
  log "generating the key that encrypts cluster records kept in the swarm (Docker secret dgw_records_key)"
  head -c 32 /dev/urandom | base64 | docker secret create --label dask-gateway.gateway=default dgw_records_key - >/dev/null
fi
[ -s "$PASSWORD_FILE" ] || { log "the secret $SECRET exists but $PASSWORD_FILE is gone; 'make down' and 'make up' make a new one"; exit 1; }

log "deploying stack $STACK (gateway $DGW_GATEWAY_IMAGE, clusters $DGW_SIDECAR_IMAGE)"
# --with-registry-auth: nodes pulling the gateway's image get this machine's login for the registry.
docker stack deploy --with-registry-auth --prune -c docker/stack.yml "$STACK" >&2
# Credentials of earlier logins that no service uses any more.
for s in $(docker secret ls --filter label=dask-gateway.registry=auth --format '{{.Name}}'); do
  [ "$s" = "$DGW_REGISTRY_AUTH_SECRET" ] || docker secret rm "$s" >/dev/null 2>&1 || true
done

# The deploy returns before the update: wait for it, or the old gateway would answer the health check below.
for i in $(seq 1 180); do
  state=$(docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "${STACK}_gateway")
  running=$(docker service ps --no-trunc --filter desired-state=running --format '{{.Image}} {{.CurrentState}}' "${STACK}_gateway")
  case "$state" in
    ""|completed) [[ "$running" == "$DGW_GATEWAY_IMAGE Running"* ]] && break ;;
    paused|rollback_*) log "the gateway's update stopped ($state): see 'docker service ps ${STACK}_gateway'"; exit 1 ;;
  esac
  [ $((i % 10)) = 0 ] && log "still updating the gateway ($i s)"
  sleep 1
done
log "waiting for http://127.0.0.1:$PORT/api/health"
for i in $(seq 1 120); do
  if curl -fsS -m 2 "http://127.0.0.1:$PORT/api/health" >/dev/null 2>&1; then break; fi
  [ $((i % 10)) = 0 ] && log "still waiting ($i s): $(docker service ps --no-trunc --format '{{.CurrentState}} {{.Error}}' "${STACK}_gateway" | head -1)"
  [ "$i" = 120 ] && { log "the gateway did not answer; see 'docker service logs ${STACK}_gateway'"; exit 1; }
  sleep 1
done

addr=$(docker info --format '{{.Swarm.NodeAddr}}')
[ -n "$addr" ] && [ "$addr" != "0.0.0.0" ] || addr=127.0.0.1
password=$(cat "$PASSWORD_FILE")
cat <<MSG

Dask Gateway is running on the swarm at http://$addr:$PORT
  user:     any name (each user sees only their own clusters)
  password: $password

from dask_gateway import Gateway, BasicAuth
gateway = Gateway("http://$addr:$PORT", auth=BasicAuth("${USER:-$(id -un)}", "$password"))
cluster = gateway.new_cluster()
cluster.scale(2)
client = cluster.get_client()
MSG
