#!/bin/sh
# Segment serving (issue 4): encored's signed /cdn (edge hit) and /origin paths against
# nginx serving the same segment files, with wrk (64 keep-alive connections, medians).
# BENCH_QUICK=1 for a smoke run. The work is in bench/cdn.py (see its header).
set -eu
exec python3 "$(dirname "$0")/cdn.py" "$@"
