#!/usr/bin/env bash
# Installs Debian's Chromium for the dashboard browser test when it is missing (idempotent, quiet).
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
echo "chromium: installing Debian's chromium (log: /var/log/dgw-chromium-apt.log)" >&2
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
{ as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } >/var/log/dgw-chromium-apt.log 2>&1
