#!/bin/sh
# Default demo seed (issue 3): scripts/demo's `seed-demo --eager 12` (60 x 30 s tracks,
# 12 artists, 6 genres, a 3-episode podcast) timed until the server can play, and until
# the server has transcoded the whole catalog in the background, against the 2-minute
# goal and against oggenc encoding the same ladder. BENCH_QUICK=1: 12 x 10 s tracks.
# Method: bench/demo_seed.py.
set -eu
exec python3 "$(dirname "$0")/demo_seed.py" "$@"
