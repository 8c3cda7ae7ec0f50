#!/bin/sh
# CPU seconds and peak RSS (issue 5): 60 s of 320 kbps playback to a null output, encore
# against ogg123 on the same rendition, both non-realtime. BENCH_QUICK=1: a 10 s track.
# Method: bench/cpu.py.
set -eu
exec python3 "$(dirname "$0")/cpu.py" "$@"
