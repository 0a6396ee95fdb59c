#!/usr/bin/env bash
# The measurements quoted in docs/performance.md. Each step is bounded (a few minutes);
# raw JSON lands in benchmarks/results/, summaries (medians) are printed as markdown.
#
#   bash benchmarks/measure.sh [fanout1000|fanout10000|idle|stalled|all]   (default all)
#
# REPEATS (default 3) sets how many times each load run is repeated. Needs 2+ CPUs: the
# server is pinned to CPU 0 and the load generator to the rest. Other work on the machine
# skews the numbers: every point reports "other CPU %" so that it can be seen.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=benchmarks/results
REPEATS=${REPEATS:-3}
NICE=${NICE:--15}  # negative needs root; NICE=0 to run without
mkdir -p "$OUT" docs/img
ulimit -n "$(ulimit -Hn)"
# With sched_autogroup (the default on many distributions) CPU is first shared between
# sessions, so `nice` alone does nothing against another session's work: raise the priority
# of this session's group too.
# The group outlives this script (it is the whole login session), so restore it on exit.
if [[ -w /proc/self/autogroup && $NICE != 0 ]]; then
    old_nice=$(sed -n 's/.* nice //p' /proc/self/autogroup)
    trap 'echo "${old_nice:-0}" > /proc/self/autogroup' EXIT
    echo "$NICE" > /proc/self/autogroup
fi

# Other work on a 2-core machine ruins the numbers: wait (up to 15 s) for it to be idle.
wait_quiet() {
    "$PY" - <<'PY'
import sys
import psutil
for _ in range(5):
    if psutil.cpu_percent(interval=3) < 10:
        sys.exit(0)
print("measure.sh: the machine is still busy; measuring anyway", file=sys.stderr)
PY
}

# bench OUTPUT.json FLAGS...: skipped when OUTPUT.json exists, so an interrupted run resumes.
bench() {
    local out=$1
    shift
    [[ -s $out ]] && return 0
    wait_quiet
    # Raised priority (the server and the workers inherit it) so that other work that starts
    # on the machine mid-run takes CPU from itself rather than from the measurement.
    nice -n "$NICE" "$PY" -m hubbub.loadgen --quiet --json "$@" > "$out.tmp" && mv "$out.tmp" "$out"
}

# One invocation per target (rather than --compare) so that each waits for a quiet machine.
TARGETS_1000=("--fanout sequential" "--fanout concurrent" "--fanout queued" "--fanout auto"
              "--server websockets" "--server note")

fanout1000() {
    for i in $(seq 1 "$REPEATS"); do
        for target in "${TARGETS_1000[@]}"; do
            # shellcheck disable=SC2086  # $target is two words on purpose
            bench "$OUT/fanout-1000-${target##* }-$i.json" $target --subscribers 1000 \
                --size 64 --duration 3 --warmup 1 --drain 3 \
                --sweep 10,20,50,100,200,400,800,1000,1500,2000,3000,4000
        done
    done
    "$PY" benchmarks/summarize.py "$OUT"/fanout-1000-*.json --plot docs/img/fanout-1000.png \
        --title "fan-out to 1,000 subscribers, 64-byte messages (medians of $REPEATS runs)"
}

fanout10000() {
    for i in $(seq 1 "$REPEATS"); do
        for target in "--fanout auto" "--fanout sequential" "--server websockets"; do
            # shellcheck disable=SC2086  # $target is two words on purpose
            bench "$OUT/fanout-10000-${target##* }-$i.json" $target --subscribers 10000 \
                --size 64 --duration 3 --warmup 1 --drain 3 --sweep 10,20,30,40,60,80,100,150 \
                --p99-budget-ms 500  # the issue's budget at this size
        done
    done
    "$PY" benchmarks/summarize.py "$OUT"/fanout-10000-*.json \
        --plot docs/img/fanout-10000.png \
        --title "fan-out to 10,000 subscribers, 64-byte messages (medians of $REPEATS runs)"
}

idle() {
    bench "$OUT/idle-10000.json" --compare --idle 10000
    "$PY" benchmarks/summarize.py "$OUT/idle-10000.json"
}

stalled() {
    # 4 KiB messages and a 256 KiB outbox, so that the stalled client overflows within the
    # point: before hubbub's outbox fills, the kernel buffers ~4 MB for it on loopback.
    for i in $(seq 1 "$REPEATS"); do
        for n in 0 1; do
            bench "$OUT/stalled-$n-$i.json" --fanout auto --subscribers 1000 --rate 100 \
                --size 4096 --duration 10 --warmup 1 --stalled "$n" \
                --server-arg=--outbox-max-bytes=262144
        done
    done
    echo "### without a stalled client"
    "$PY" benchmarks/summarize.py "$OUT"/stalled-0-*.json
    echo "### with one stalled client"
    "$PY" benchmarks/summarize.py "$OUT"/stalled-1-*.json
}

case "${1:-all}" in
    fanout1000) fanout1000 ;;
    fanout10000) fanout10000 ;;
    idle) idle ;;
    stalled) stalled ;;
    all) fanout1000; fanout10000; idle; stalled ;;
    *) echo "usage: $0 [fanout1000|fanout10000|idle|stalled|all]" >&2; exit 2 ;;
esac
