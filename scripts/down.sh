#!/usr/bin/env bash
# `make down`: removes everything `make up` created: the stack, the clusters' services and secrets, the cluster
# records (Docker configs), the network, the password and records-key secrets, the password's copy, and the
# registry on the swarm (KEEP_REGISTRY=1 keeps it running, KEEP_REGISTRY_DATA=1 keeps its images for the next
# `make up`). Idempotent; the local images are kept (they are a cache).
set -euo pipefail
cd "$(dirname "$0")/.."
STACK=${STACK:-dgw}
PASSWORD_FILE=${DGW_UP_PASSWORD_FILE:-$HOME/.local/state/dask-gateway-swarm/swarm-password}
log() { echo "down: $*" >&2; }
docker info >/dev/null 2>&1 || { log "no Docker engine running: nothing to remove"; exit 0; }

if docker stack ls --format '{{.Name}}' 2>/dev/null | grep -qx "$STACK"; then
  log "removing stack $STACK"
  # The network goes below, once the clusters' services (a warm scheduler at least) that use it are gone.
  docker stack rm "$STACK" >/dev/null 2>&1 || true
fi
for i in $(seq 1 60); do
  [ -z "$(docker ps -q --filter "label=com.docker.stack.namespace=$STACK")" ] && break
  sleep 1
done
label=dask-gateway.gateway
services=$(docker service ls -q --filter "label=$label")
[ -n "$services" ] && { log "removing cluster services"; docker service rm $services >/dev/null; }
for i in $(seq 1 30); do
  secrets=$(docker secret ls -q --filter "label=$label")
  [ -z "$secrets" ] && break
  docker secret rm $secrets >/dev/null 2>&1 || sleep 1
done
docker secret rm dgw_password dgw_records_key >/dev/null 2>&1 || true
configs=$(docker config ls -q --filter "label=$label")
[ -n "$configs" ] && { log "removing cluster records"; docker config rm $configs >/dev/null; }
for i in $(seq 1 30); do
  docker network inspect dgw >/dev/null 2>&1 || break
  docker network rm dgw >/dev/null 2>&1 || sleep 1
done
docker volume rm "${STACK}_dgw-state" >/dev/null 2>&1 || true
scripts/registry.sh down   # KEEP_REGISTRY=1 keeps it, KEEP_REGISTRY_DATA=1 keeps its images
rm -f "$PASSWORD_FILE"
log "done"
