#!/bin/sh
# Event ingest: events/s into encored's log over HTTP, batches of 100, exactly-once check
# on (the UNIQUE event id), encored pinned to 2 cores when there are more; load generator
# bench_events_post (C; EVENTS_CLIENT=python for the Python one); peer: the sqlite3 CLI bulk-inserting
# the same rows into the same table in one transaction (no HTTP, no JSON, no per-batch
# commit). Median of 5 runs each. BUILD selects the build dir (default build).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" -Dwerror=true >&2
ninja -C "$BUILD" mockserver/encored bench/bench_events_post >&2
exec python3 bench/events_load.py "$BUILD/mockserver/encored" "$@"
