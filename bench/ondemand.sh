#!/bin/sh
# On-demand transcoding (issue 3): time from the first request of a never-transcoded
# track to its first segment being served, median and p90 over 10 tracks, against oggenc
# encoding the same source WAV whole at 24 kbps (the cost without segment streaming) and
# the 300 ms goal. BENCH_QUICK=1: 3 tracks. Method: bench/ondemand.py.
set -eu
exec python3 "$(dirname "$0")/ondemand.py" "$@"
