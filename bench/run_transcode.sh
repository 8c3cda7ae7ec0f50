#!/bin/sh
# Builds and runs the transcode benchmark (encored vs oggenc). Extra args go to the bench
# (e.g. a WAV path).
set -e
cd "$(dirname "$0")/.."
[ -d build ] || meson setup build -Dwerror=true
ninja -C build bench/bench_transcode
exec ./build/bench/bench_transcode "$@"
