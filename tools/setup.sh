#!/usr/bin/env bash
# Installs what ff needs, idempotently: a Valkey (or Redis) server binary and a virtualenv
# (.venv) with ff and its test tools. Sourced by tools/serve.sh and tools/test.sh.
# On Debian 12, Valkey 8.0 comes from bookworm-backports; Redis 7.0 from the main suite.
# FF_SETUP_REDIS=1 also installs redis-server (the compatibility test run needs both).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" = 0 ]; then
        as_root apt-get update -q
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

enable_backports() {
    local list=/etc/apt/sources.list.d/bookworm-backports.list
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "deb http://deb.debian.org/debian bookworm-backports main" | as_root tee "$list" >/dev/null
        APT_UPDATED=0
    fi
}

install_servers() {
    if ! command -v valkey-server >/dev/null 2>&1; then
        if grep -qs 'VERSION_CODENAME=bookworm' /etc/os-release; then
            enable_backports
            apt_install -t bookworm-backports valkey-server
        elif command -v apt-get >/dev/null 2>&1; then
            apt_install valkey-server || apt_install redis-server
        fi
    fi
    if [ "${FF_SETUP_REDIS:-0}" = 1 ] && ! command -v redis-server >/dev/null 2>&1; then
        apt_install redis-server
    fi
    if ! command -v valkey-server >/dev/null 2>&1 && ! command -v redis-server >/dev/null 2>&1; then
        echo "setup: could not install valkey-server or redis-server" >&2
        exit 1
    fi
}

install_venv() {
    local python="${PYTHON:-python3}"
    if [ ! -x "$VENV/bin/python" ]; then
        if ! "$python" -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            apt_install python3-venv
            "$python" -m venv "$VENV"
        fi
    fi
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e "$ROOT[test]"
}

install_servers
install_venv
