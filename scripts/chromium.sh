#!/usr/bin/env bash
# Installs Debian's Chromium (for test/python/test_dashboard_browser.py) when /usr/bin/chromium is missing.
# Idempotent and quiet: prints nothing when Chromium is there or the install works; on failure it prints the
# end of the apt log and exits non-zero.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
log=$(mktemp /tmp/chromium-apt.XXXXXX.log)
if ! { as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } >"$log" 2>&1 \
   || [ ! -x /usr/bin/chromium ]; then
  echo "chromium.sh: installing Debian's chromium failed; the end of $log:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
rm -f "$log"
