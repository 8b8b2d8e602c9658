#!/usr/bin/env bash
# Sets up (venv, server binary) and runs `ff serve`. With no FF_VALKEY_URL, ff starts its
# own valkey-server (or redis-server) with data under ./.ff/.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup.sh
exec .venv/bin/ff serve "$@"
