#!/usr/bin/env bash
# Makes sure a Docker engine is installed and running on this machine (idempotent, fast no-op when it is).
#
#   scripts/docker-engine.sh            install docker.io + debootstrap if missing, start dockerd if not running
#   scripts/docker-engine.sh --swarm    ... and also make the engine a single-node swarm manager if it is not
#                                       in a swarm yet
#
# The engine is started as a plain background process (no systemd here); its log is /var/log/dockerd.log.
# The swarm advertises the docker0 bridge address when there is one (Docker-in-Docker nodes made by
# scripts/swarm-nodes.sh can only join, and resolve overlay names across nodes, through that address),
# else 127.0.0.1. Environment: DOCKERD_WAIT (seconds to wait for the engine, default 60).
# Progress goes to stderr; nothing is printed on stdout.
set -euo pipefail

swarm=0
for arg in "$@"; do
  case "$arg" in
    --swarm) swarm=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "docker-engine: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { echo "docker-engine: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- install -------------------------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]} (apt)"
  # Keep the package's init script from starting its own daemon: this script starts dockerd itself.
  added_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  trap '[ "$added_policy" = 1 ] && as_root rm -f /usr/sbin/policy-rc.d' EXIT
  apt_log=/var/log/dgw-apt.log; [ -w /var/log ] || apt_log=${TMPDIR:-/tmp}/dgw-apt.log
  if ! { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
         as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
           "${missing[@]}"; } >>"$apt_log" 2>&1; then
    log "apt-get failed; last lines of $apt_log:"
    tail -n 30 "$apt_log" >&2
    exit 1
  fi
  if [ "$added_policy" = 1 ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
  trap - EXIT
fi

# --- start ---------------------------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  if pgrep -x dockerd >/dev/null 2>&1; then
    log "dockerd is already starting (pid $(pgrep -x dockerd | head -1)); waiting for it"
  else
    log "starting dockerd (log: /var/log/dockerd.log)"
    # setsid + nohup: the daemon must outlive this script and the shell that ran it.
    # No userland proxy: with it, a loopback connection to a published port is accepted and then closed
    # while the service restarts, which distributed's reconnect does not retry; without it, the
    # connection is refused until the new task listens, and clients reconnect by themselves.
    # Descriptors above 2 are closed first: the daemon outlives this script and would otherwise hold whatever its
    # caller had open (a lock taken with flock around this script was held until dockerd stopped).
    as_root bash -c 'for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
      setsid nohup dockerd --userland-proxy=false >>/var/log/dockerd.log 2>&1 </dev/null &'
  fi
  deadline=$(( $(date +%s) + ${DOCKERD_WAIT:-60} ))
  until docker info >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "dockerd did not become ready within ${DOCKERD_WAIT:-60} s; last lines of /var/log/dockerd.log:"
      tail -n 20 /var/log/dockerd.log >&2 || true
      exit 1
    fi
    if ! pgrep -x dockerd >/dev/null 2>&1; then
      log "dockerd exited; last lines of /var/log/dockerd.log:"
      tail -n 20 /var/log/dockerd.log >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  log "dockerd is ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
fi

# --- swarm ---------------------------------------------------------------------------------------------
if [ "$swarm" = 1 ]; then
  state=$(docker info --format '{{.Swarm.LocalNodeState}}')
  case "$state" in
    active) ;;
    inactive)
      addr=$(ip -4 -o addr show dev docker0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -1 || true)
      if [ -z "$addr" ]; then
        addr=127.0.0.1
        log "no docker0 address: advertising 127.0.0.1 (Docker-in-Docker nodes will not be able to join)"
      fi
      log "initialising a single-node swarm (advertise address $addr)"
      docker swarm init --advertise-addr "$addr" >/dev/null
      ;;
    *)
      log "the engine's swarm state is '$state'; not touching it (expected 'active' or 'inactive')"
      exit 1
      ;;
  esac
fi
