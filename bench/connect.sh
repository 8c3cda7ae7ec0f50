#!/bin/sh
# Connect transfer (issue 11): the gap, overlap and position error of a hand-over between two
# headless players, measured from their realtime WAV outputs, against a cold start at the
# same position (what a transfer without "prepare" would cost at best). BENCH_QUICK=1 for a
# smoke run. Method: bench/connect.py.
set -eu
exec python3 "$(dirname "$0")/connect.py" "$@"
