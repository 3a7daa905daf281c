#!/usr/bin/env bash
# Builds the zero-copy relay addon (native/relay.c -> native/build/relay.node) from source, for Linux.
# Idempotent: does nothing when the addon is newer than its source. Never fails the build: without a compiler,
# Node's headers or Linux, it says so in one line and the gateway relays in JavaScript (DGW_RELAY=auto).
set -u
cd "$(dirname "$0")/.."
src=native/relay.c
out=native/build/relay.node

[[ -f $out && $out -nt $src && $out -nt "$0" ]] && exit 0
if [[ $(uname -s) != Linux ]]; then
  echo "native relay: not Linux; the gateway relays in JavaScript"; exit 0
fi
cc=${CC:-$(command -v gcc || command -v cc || true)}
if [[ -z $cc ]]; then
  echo "native relay: no C compiler (apt-get install gcc); the gateway relays in JavaScript"; exit 0
fi
# Node's own headers: beside the node binary (Debian's nodejs package, the official images), else the
# node-api-headers npm package if installed.
prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
include=""
for dir in "$prefix/include/node" /usr/include/node /usr/local/include/node node_modules/node-api-headers/include; do
  [[ -f $dir/node_api.h ]] && { include=$dir; break; }
done
if [[ -z $include ]]; then
  echo "native relay: Node's headers (node_api.h) not found; the gateway relays in JavaScript"; exit 0
fi
mkdir -p native/build
if "$cc" -std=gnu11 -O2 -Wall -Wextra -fPIC -shared -pthread -fvisibility=hidden -I"$include" \
    -DNAPI_VERSION=8 -o "$out.tmp" "$src" 2>native/build/compile.log; then
  mv "$out.tmp" "$out"
  echo "native relay: built $out"
else
  rm -f "$out.tmp"
  echo "native relay: compiling failed (see native/build/compile.log); the gateway relays in JavaScript"
fi
exit 0
