#!/usr/bin/env bash
# The whole test suite: installs what it needs, then lints and runs every test against
# Valkey, the compatibility subset (marked `compat`) against Redis 7, and the cluster
# subset (marked `cluster`, slow ones excluded: they run in the first pass on clusters of
# their own) against a 3-primary Valkey Cluster that tools/cluster.sh starts on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
FF_SETUP_REDIS=1 source tools/setup.sh

.venv/bin/ruff check .
.venv/bin/mypy
echo "== test suite against valkey-server"
FF_TEST_SERVER=valkey-server .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
echo "== compatibility subset against redis-server"
FF_TEST_SERVER=redis-server .venv/bin/python -m pytest -q -p no:cacheprovider -m compat "$@"
echo "== cluster subset against a 3-primary valkey cluster"
FF_TEST_CLUSTER=1 .venv/bin/python -m pytest -q -p no:cacheprovider -m "cluster and not slow" "$@"
