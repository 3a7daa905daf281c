#!/usr/bin/env bash
# Creates (or refreshes) the project's Python environment in .venv from the pinned requirements.
# Idempotent: skipped when the requirements have not changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
stamp="$venv/.requirements.sha256"
want=$(cat requirements.txt requirements-test.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "python-env: creating $venv from requirements-test.txt" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --disable-pip-version-check -q -r requirements-test.txt
echo "$want" > "$stamp"
echo "python-env: ready" >&2
