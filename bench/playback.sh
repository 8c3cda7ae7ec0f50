#!/bin/sh
# Time to first audio (issue 5): encore against ogg123 and mpv playing the same rendition
# over HTTP, at 0 and 100 ms round trip (a delaying proxy in front of both servers), and
# a prefetched next track. BENCH_QUICK=1 for a smoke run. Method: bench/playback.py.
set -eu
exec python3 "$(dirname "$0")/playback.py" "$@"
