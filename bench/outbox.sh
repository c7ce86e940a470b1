#!/usr/bin/env bash
# Outbox delivery benchmark, one run, on a throwaway cluster and the gRPC
# stand-ins: the stand-in's own ceiling (plain gRPC client), the worker's
# sustained delivery rate from a queue of N messages, and the idle
# commit-to-delivery latency.  See bench/outbox/bench.py.
# Usage: bench/outbox.sh [messages]      (default 100000)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

export BILLING_SRC

bench_prepare >/dev/null
export BILLING_PGBIN
log "outbox benchmark ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
/usr/bin/python3 "$BILLING_SRC/bench/outbox/bench.py" --messages "${1:-100000}"
