#!/bin/sh
# Recommendations: quality of ALS against item-kNN, popularity and random on a synthetic
# population with hidden tastes (bench_recs quality), then ALS training time per iteration at
# 64 factors on a Last.fm-360K-shaped matrix (bench_recs timing): wall and CPU seconds of the
# vector kernel alternating with the library's plain loops (the peer, same run), GFLOP/s
# against the machine's single-precision peak estimated from lscpu, and the ratio to the
# implicit library's published per-core figure.
# Usage: bench/recs.sh                      full scale (360k x 160k, 17.5M nnz: ~2 GB RAM)
#        RECS_SCALE=0.1 bench/recs.sh       the timing matrix at 10% in each dimension
#        RECS_USERS=5000 RECS_ITEMS=2000 bench/recs.sh   a smaller quality population
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SCALE=${RECS_SCALE:-1}
ITERS=${RECS_ITERATIONS:-5}
USERS=${RECS_USERS:-20000}
ITEMS=${RECS_ITEMS:-5000}
[ -d "$BUILD" ] || meson setup "$BUILD" -Dwerror=true >&2
ninja -C "$BUILD" bench/bench_recs >&2

# Peak = cores x GHz x FLOPs per cycle: two FMA ports x vector lanes x 2 (multiply and add).
cores=$(nproc)
mhz=$(lscpu | awk -F: '/^CPU max MHz/ {gsub(/ /, "", $2); print $2; exit}')
[ -n "$mhz" ] || mhz=$(awk -F: '/^cpu MHz/ {gsub(/ /, "", $2); print $2; exit}' /proc/cpuinfo)
flags=$(lscpu | grep -i '^flags' || true)
lanes=4
case "$flags" in *avx512f*) lanes=16 ;; *avx2*) lanes=8 ;; esac
peak=$(awk -v c="$cores" -v m="$mhz" -v l="$lanes" 'BEGIN { printf "%.0f", c * m / 1000 * 2 * l * 2 }')
echo "machine: $cores cores at $mhz MHz, $lanes fp32 lanes, 2 FMA ports assumed: peak $peak GFLOP/s"

"$BUILD/bench/bench_recs" quality "$USERS" "$ITEMS" 64 || true
if [ "$SCALE" != 1 ]; then
	"$BUILD/bench/bench_recs" timing "$SCALE" "$ITERS" 64 "$cores" "$peak"
else
	# Both: the reduced run first (quick), then the full Last.fm-360K shape.
	"$BUILD/bench/bench_recs" timing 0.1 "$ITERS" 64 "$cores" "$peak"
	"$BUILD/bench/bench_recs" timing 1 "$ITERS" 64 "$cores" "$peak"
fi
