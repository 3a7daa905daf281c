#!/bin/sh
# Entry point of the sidecar image: runs the command given by the gateway (`dask scheduler ...` or
# `dask worker ...`) under tini when the container has no init process of its own (PID 1 here), so
# signals reach dask and exited children are reaped. With `docker run --init` or a swarm service with
# Init: true, PID 1 is already docker-init and the command is run directly.
if [ "$$" = 1 ] && command -v tini >/dev/null 2>&1; then
  exec tini -- "$@"
fi
exec "$@"
