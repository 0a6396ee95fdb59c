#!/usr/bin/env bash
# Fan-out latency by store, measured from outside with the independent C load generator
# (../shared/bench/wsload.c): 1,000 plain-text subscribers, one publisher, 64-byte
# messages, server on CPU 0, generator on CPU 1, --rate-per-second 0, fresh data directory
# per point. The shape of the measurements in docs/storage.md and docs/performance.md.
#
#   bash benchmarks/store_latency.sh [RATES] [STORES]     e.g. "50 200 800" "memory sqlite"
#
# WSLOAD names a built wsload binary (default: built into a temp dir from ../shared/bench);
# HUBBUB_SRC=path/to/src measures another checkout's code with this venv.
set -euo pipefail
cd "$(dirname "$0")/.."
RATES=${1:-"50 200 800"}
STORES=${2:-"memory sqlite"}
SUBS=${SUBS:-1000}
DURATION=${DURATION:-6}
PORT=${PORT:-9100}
if [[ -z ${WSLOAD:-} ]]; then
    WSLOAD=$(mktemp -d)/wsload
    gcc -O2 -o "$WSLOAD" ../shared/bench/wsload.c
fi
ulimit -n 20000
for store in $STORES; do
    for rate in $RATES; do
        data=$(mktemp -d)
        # The per-address limits (off here: every client is 127.0.0.1) as variables, which
        # older checkouts ignore.
        HUBBUB_MAX_CONNECTIONS_PER_IP=0 HUBBUB_CONNECTION_RATE_PER_SECOND=0 \
        PYTHONPATH=${HUBBUB_SRC:-} taskset -c 0 .venv/bin/python -m hubbub serve \
            --port "$PORT" --data-dir "$data" --store "$store" --rate-per-second 0 \
            --plain-history 0 --log-level warning &
        server=$!
        for _ in $(seq 50); do
            curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
            sleep 0.1
        done
        printf '%s %s ' "$store" "$rate"
        taskset -c 1 "$WSLOAD" --port "$PORT" --subs "$SUBS" --rate "$rate" \
            --duration "$DURATION" --size 64 --watch-pid "$server" --json
        kill "$server"
        wait "$server" || true
        rm -rf "$data"
    done
done
