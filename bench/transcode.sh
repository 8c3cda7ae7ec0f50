#!/bin/sh
# Transcoding (issue 3): transcode_rendition() x-realtime per core against oggenc at each
# rung (bench_transcode, C), then the ingest worker pool's speedup, 1 vs 2 workers
# (bench/ingest_pool.py). BENCH_QUICK=1 for a smoke run. Extra args (a WAV path) go to
# bench_transcode.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-bench}
if [ ! -x "$BUILD/bench/bench_transcode" ]; then
	[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --buildtype=release >&2
	ninja -C "$BUILD" bench/bench_transcode bench/bench_rusage mockserver/encored tui/encore >&2
fi
"$BUILD/bench/bench_transcode" "$@"
BUILD=$BUILD python3 bench/ingest_pool.py
