#!/usr/bin/env bash
# A local Valkey Cluster on loopback for development, the cluster test subset and the
# scale-out benchmark.
#
#   tools/cluster.sh start [--replicas] [--port BASE] [--dir DIR]
#   tools/cluster.sh stop  [--dir DIR]
#
# start: 3 primaries on ports BASE..BASE+2 (default 27000), with --replicas 3 more
# (BASE+3..BASE+5), one replica per primary; waits for `cluster_state:ok` and prints the
# URL to use (`redis+cluster://127.0.0.1:BASE`). Each node's data, nodes.conf, log and
# pid live under DIR/<port> (default ./.ff/cluster). stop: stops exactly the pids
# recorded there and removes the data.
set -euo pipefail

command=${1:-}
shift || true
base=27000
dir=.ff/cluster
replicas=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --replicas) replicas=1 ;;
        --port) base=$2; shift ;;
        --dir) dir=$2; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
server=${FF_CLUSTER_SERVER:-valkey-server}
cli=${FF_CLUSTER_CLI:-valkey-cli}

start() {
    local count=$((3 + 3 * replicas)) nodes=() port
    mkdir -p "$dir"
    for ((i = 0; i < count; i++)); do
        port=$((base + i))
        mkdir -p "$dir/$port"
        (cd "$dir/$port" && exec "$server" --port "$port" --bind 127.0.0.1 \
            --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-node-timeout 2000 --cluster-replica-validity-factor 0 --appendonly yes --save '' \
            --logfile server.log --daemonize no) > /dev/null 2>&1 < /dev/null &
        echo $! > "$dir/$port/pid"
        nodes+=("127.0.0.1:$port")
    done
    for node in "${nodes[@]}"; do
        for _ in $(seq 100); do
            "$cli" -p "${node#*:}" ping > /dev/null 2>&1 && continue 2
            sleep 0.05
        done
        echo "node $node did not start (port or bus port $((${node#*:} + 10000)) taken?)" >&2
        stop
        exit 1
    done
    "$cli" --cluster create "${nodes[@]}" --cluster-replicas "$replicas" --cluster-yes \
        > "$dir/create.log"
    for node in "${nodes[@]}"; do
        for _ in $(seq 200); do
            "$cli" -p "${node#*:}" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
            sleep 0.05
        done
    done
    echo "redis+cluster://127.0.0.1:$base"
}

stop() {
    local pidfile
    for pidfile in "$dir"/*/pid; do
        [[ -f $pidfile ]] || continue
        kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    for pidfile in "$dir"/*/pid; do
        [[ -f $pidfile ]] || continue
        while kill -0 "$(cat "$pidfile")" 2>/dev/null; do sleep 0.05; done
    done
    rm -rf "$dir"
}

case $command in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start [--replicas] [--port BASE] [--dir DIR] | stop [--dir DIR]" >&2
       exit 2 ;;
esac
