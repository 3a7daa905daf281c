#!/usr/bin/env bash
# A multi-node Docker Swarm on one machine: N Docker-in-Docker containers join this engine's swarm
# as worker nodes (idempotent: healthy nodes are kept, missing or broken ones are (re)made).
#
#   scripts/swarm-nodes.sh up N     nodes dgw-node1..dgw-nodeN (container name = hostname = swarm
#                                   node hostname); nodes numbered above N are removed. Prints the
#                                   node names on stdout, one a line.
#   scripts/swarm-nodes.sh down     every node made by this script leaves the swarm and is removed
#   scripts/swarm-nodes.sh status   `docker node ls` plus the node containers
#
# Each node runs the image dgw-node:bookworm (scripts/base-images.sh) with the settings that work on the
# project's machines (no --privileged there): all capabilities but SYS_RESOURCE, seccomp and AppArmor
# unconfined, the host cgroup namespace, /var/lib/docker on a tmpfs and the vfs storage driver.
# The host's engine must be the swarm manager advertising its docker0 address (scripts/docker-engine.sh
# --swarm does that on a machine not yet in a swarm): nodes join through it, and overlay name
# resolution across nodes fails when the manager advertises 127.0.0.1.
# A node is like a real machine that ran `docker swarm join`: it holds no image the project builds, and pulls
# them from the registry (scripts/registry.sh) when a task needs them. The one exception stands in for Docker
# Hub, which these machines cannot reach: the registry image a real node would pull (registry:2 or its local
# stand-in, `scripts/registry.sh image`), or the images in $DGW_NODE_IMAGES, is loaded into each node before it
# joins (`docker save | docker exec -i NODE docker load`, skipped when the node already has the same image ID).
# Each node gets the swarm node labels dgw.dind=true and dgw.node=<name>.
# Two more stand-ins for what real machines have: every node mounts the host directory $DGW_NODE_SHARED (default
# /srv/dgw-shared) at the same path, as machines mount a network file system; and the nodes listed in
# $DGW_NODE_GENERIC (default "2:GPU=1", space-separated INDEX:KIND=N) declare generic resources, as an engine
# configured with node-generic-resources on a machine with a GPU does. A node made with other values is replaced.
# Take a node away in a test with `docker stop dgw-nodeK`; the next `up` replaces it.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=dgw-node
NODE_IMAGE=dgw-node:bookworm
MARK=dgw.swarm-node    # label on the node containers
IMAGES=${DGW_NODE_IMAGES:-}
SHARED=${DGW_NODE_SHARED-/srv/dgw-shared}
GENERIC=${DGW_NODE_GENERIC-2:GPU=1}
WAIT=${DGW_NODE_WAIT:-60}

log() { echo "swarm-nodes: $*" >&2; }
die() { log "$*"; exit 1; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }

# Waits (bounded) until a command succeeds.
wait_for() {
  local what=$1; shift
  local deadline=$(( $(date +%s) + WAIT ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "timed out after ${WAIT} s waiting for $what"
    sleep 0.5
  done
}

node_containers() {  # all containers made by this script, running or not
  docker ps -a --filter "label=$MARK" --format '{{.Names}}' | LC_ALL=C sort -V
}

inner_state() {  # the swarm state of a node container's own engine
  docker exec "$1" docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || true
}

# Removes the manager's entries for a hostname that are not a live node (left behind by a node container
# that was stopped or removed without leaving).
forget_stale() {
  local host=$1 id h state
  while read -r id h state; do
    [ "$h" = "$host" ] || continue
    if [ "$state" != ready ] || [ "${2:-}" = all ]; then
      docker node rm --force "$id" >/dev/null 2>&1 || true
    fi
  done < <(docker node ls --format '{{.ID}} {{.Hostname}} {{.Status}}' | awk '{print $1, $2, tolower($3)}')
}

remove_node() {
  local name=$1 id=""
  if [ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null || true)" = true ]; then
    id=$(docker exec "$name" docker info --format '{{.Swarm.NodeID}}' 2>/dev/null || true)
    if [ "$(inner_state "$name")" = active ]; then
      log "$name: leaving the swarm"
      docker exec "$name" docker swarm leave --force >/dev/null 2>&1 || true
    fi
  fi
  [ -z "$id" ] || docker node rm --force "$id" >/dev/null 2>&1 || true
  forget_stale "$name" all
  docker rm -f -v "$name" >/dev/null 2>&1 || true
  log "$name: removed"
}

manager_address() {
  local docker0 addr
  docker0=$(docker network inspect bridge --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}' 2>/dev/null || true)
  [ -n "$docker0" ] || docker0=$(ip -4 -o addr show dev docker0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -1)
  [ -n "$docker0" ] || die "no docker0 bridge address: cannot make Docker-in-Docker nodes"
  addr=$(docker info --format '{{.Swarm.NodeAddr}}')
  if [ "$addr" != "$docker0" ]; then
    die "the swarm manager advertises $addr, not the docker0 address $docker0: nodes could not resolve \
overlay names across nodes. Re-create the swarm (this removes its services, networks and secrets): \
docker swarm leave --force && scripts/docker-engine.sh --swarm"
  fi
  echo "$addr"
}

image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

# Loads the images into a node when it does not have the same image IDs yet.
load_images() {
  local name=$1 img want have t0=$SECONDS
  local -a todo=()
  for img in $IMAGES; do
    want=$(image_id "$img")
    have=$(docker exec "$name" docker image inspect --format '{{.Id}}' "$img" 2>/dev/null || true)
    [ "$want" = "$have" ] || todo+=("$img")
  done
  [ "${#todo[@]}" -gt 0 ] || return 0
  log "$name: loading ${todo[*]}"
  docker save "${todo[@]}" | docker exec -i "$name" docker load -q >/dev/null
  log "$name: loaded in $((SECONDS - t0)) s"
}

# The dockerd flags of a node: its generic resources from $GENERIC.
node_flags() {
  local idx=${1#"$PREFIX"} entry
  for entry in $GENERIC; do
    [ "${entry%%:*}" = "$idx" ] && printf -- '--node-generic-resource %s ' "${entry#*:}"
  done
  return 0
}

# What a node container was made with; a node whose label differs is replaced.
node_config() { echo "shared=$SHARED;flags=$(node_flags "$1")"; }

make_node() {
  local name=$1 manager=$2 token=$3 ip node_id
  local -a shared=()
  log "$name: starting"
  if [ -n "$SHARED" ]; then mkdir -p "$SHARED"; shared=(-v "$SHARED:$SHARED"); fi
  # shellcheck disable=SC2046  # node_flags prints separate words on purpose
  docker run -d --name "$name" --hostname "$name" --label "$MARK=1" --label "dgw.node-config=$(node_config "$name")" "${shared[@]}" \
    --cap-add ALL --cap-drop SYS_RESOURCE \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup \
    --tmpfs /var/lib/docker:exec \
    "$NODE_IMAGE" tini -- dockerd --host unix:///var/run/docker.sock --storage-driver vfs $(node_flags "$name") >/dev/null
  wait_for "the engine in $name" docker exec "$name" docker info
  load_images "$name"
  ip=$(docker inspect -f '{{.NetworkSettings.IPAddress}}' "$name")
  [ -n "$ip" ] || die "$name has no address on the default bridge"
  forget_stale "$name"
  docker exec "$name" docker swarm join --advertise-addr "$ip" --token "$token" "$manager:2377" >/dev/null
  node_id=$(docker exec "$name" docker info --format '{{.Swarm.NodeID}}')
  log "$name: joined as $node_id ($ip)"
}

cmd_up() {
  local n=$1
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || die "up needs a node count >= 1"
  local t0=$SECONDS
  scripts/docker-engine.sh --swarm
  local manager token img
  manager=$(manager_address)
  scripts/base-images.sh "$NODE_IMAGE"
  [ -n "$IMAGES" ] || IMAGES=$(scripts/registry.sh image)
  for img in $IMAGES; do
    [ -n "$(image_id "$img")" ] || die "image $img is not on this engine"
  done
  token=$(docker swarm join-token -q worker)

  # Nodes numbered above N go away.
  local name idx
  for name in $(node_containers); do
    idx=${name#"$PREFIX"}
    if ! [[ "$idx" =~ ^[0-9]+$ ]] || [ "$idx" -gt "$n" ]; then remove_node "$name"; fi
  done

  local -a names=()
  for idx in $(seq 1 "$n"); do
    name="$PREFIX$idx"
    names+=("$name")
    if docker inspect "$name" >/dev/null 2>&1; then
      local id state
      id=$(docker exec "$name" docker info --format '{{.Swarm.NodeID}}' 2>/dev/null || true)
      state=""
      [ -z "$id" ] || state=$(docker node inspect -f '{{.Status.State}}' "$id" 2>/dev/null || true)
      if [ "$(docker inspect -f '{{index .Config.Labels "dgw.node-config"}}' "$name")" = "$(node_config "$name")" ] \
         && [ "$(inner_state "$name")" = active ] && [ "$state" = ready ]; then
        load_images "$name"
        continue
      fi
      log "$name: not a ready swarm node made with these settings; replacing it"
      remove_node "$name"
    fi
    make_node "$name" "$manager" "$token"
  done

  for name in "${names[@]}"; do
    local node_id
    node_id=$(docker exec "$name" docker info --format '{{.Swarm.NodeID}}')
    wait_for "$name to be ready in the swarm" \
      bash -c "[ \"\$(docker node inspect -f '{{.Status.State}}' $node_id)\" = ready ]"
    docker node update --label-add dgw.dind=true --label-add "dgw.node=$name" "$node_id" >/dev/null
  done
  log "$n node(s) ready in $((SECONDS - t0)) s"
  printf '%s\n' "${names[@]}"
}

cmd_down() {
  docker info >/dev/null 2>&1 || { log "no engine running: nothing to do"; return 0; }
  local name pid
  local -a pids=()
  for name in $(node_containers); do remove_node "$name" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid" || true; done
  # Entries left in the manager by nodes whose containers were removed by hand.
  if [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" = true ]; then
    local id h
    while read -r id h; do
      [[ "$h" =~ ^${PREFIX}[0-9]+$ ]] && docker node rm --force "$id" >/dev/null 2>&1 || true
    done < <(docker node ls --format '{{.ID}} {{.Hostname}}')
  fi
}

cmd_status() {
  docker node ls
  echo
  docker ps -a --filter "label=$MARK" --format 'table {{.Names}}\t{{.Status}}'
}

case "${1:-}" in
  up) [ $# -eq 2 ] || usage; cmd_up "$2" ;;
  down) [ $# -eq 1 ] || usage; cmd_down ;;
  status) cmd_status ;;
  *) usage ;;
esac
