#!/usr/bin/env bash
# Set up (first run) and start the whole stack on this machine; Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/tinyllm up "$@"
