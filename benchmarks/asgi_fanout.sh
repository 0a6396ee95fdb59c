#!/bin/bash
# fan-out through aiohttp (hubbub serve) vs ASGI (uvicorn), memory store, plain text lobby
set -u
cd "$(dirname "$0")/.."
ulimit -n 20000
W="${WSLOAD:?build it: gcc -O2 -o \$WSLOAD ../shared/bench/wsload.c}"
for rate in 200 500; do
for rep in 1 2; do
for kind in aiohttp asgi; do
  port=$((9300 + RANDOM % 500))
  d=$(mktemp -d)
  if [ $kind = aiohttp ]; then
    taskset -c 0 .venv/bin/hubbub serve --port $port --data-dir $d --store memory --rate-per-second 0 --plain-history 0 --max-connections-per-ip 0 --connection-rate-per-second 0 > /dev/null 2>&1 &
  else
    HUBBUB_STORE=memory HUBBUB_RATE_PER_SECOND=0 HUBBUB_PLAIN_HISTORY=0 HUBBUB_DATA_DIR=$d taskset -c 0 .venv/bin/python -m uvicorn --factory hubbub.asgi:from_environment --host 127.0.0.1 --port $port --no-access-log --log-level warning > /dev/null 2>&1 &
  fi
  pid=$!; sleep 3
  echo "$kind rate=$rate rep=$rep $(taskset -c 1 $W --port $port --subs 1000 --rate $rate --duration 6 --size 64 --watch-pid $pid --json)"
  kill $pid; wait $pid 2>/dev/null; rm -rf $d
done; done; done
