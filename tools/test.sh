#!/usr/bin/env bash
# The whole test suite: installs what it needs, then lints and runs every test against
# Valkey, and the compatibility subset (marked `compat`) against Redis 7.
set -euo pipefail
cd "$(dirname "$0")/.."
FF_SETUP_REDIS=1 source tools/setup.sh

.venv/bin/ruff check .
.venv/bin/mypy
echo "== test suite against valkey-server"
FF_TEST_SERVER=valkey-server .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
echo "== compatibility subset against redis-server"
FF_TEST_SERVER=redis-server .venv/bin/python -m pytest -q -p no:cacheprovider -m compat "$@"
