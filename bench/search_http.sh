#!/bin/sh
# Search over HTTP: seeds a generated metadata-only catalog (encored seed-catalog), starts
# encored on it, measures search and suggest p50/p99 through HTTP (bench_search_http), then
# runs bench_search on a catalog of the same size and recipe for the in-process engine and
# SQLite FTS5 figures, and prints them side by side.
# Usage: bench/search_http.sh [TRACKS=1000000] [QUERIES=2000]   (smoke: search_http.sh 20000 300)
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TRACKS=${1:-1000000}
QUERIES=${2:-2000}
[ -d "$BUILD" ] || meson setup "$BUILD" -Dwerror=true >&2
ninja -C "$BUILD" mockserver/encored bench/bench_search bench/bench_search_http >&2
ENCORED=$BUILD/mockserver/encored
data=$(mktemp -d /tmp/encore-bench-search.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$data"
}
trap cleanup EXIT INT TERM

"$ENCORED" seed-catalog --data "$data" --tracks "$TRACKS"
# Rate limits off: the bench is one client asking as fast as it can.
"$ENCORED" serve --data "$data" --listen 127.0.0.1:0 --rate-limit-user 1000000:1000000 \
	--rate-limit-ip 1000000:1000000 >"$data/stdout" 2>"$data/stderr" &
pid=$!
i=0
until grep -q '^listening on' "$data/stdout" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 1200 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "encored did not start:" >&2
		cat "$data/stderr" >&2
		exit 1
	fi
	sleep 0.1
done
url=$(awk '/^listening on/ {print $3}' "$data/stdout")
grep 'search index' "$data/stderr"
http=$("$BUILD/bench/bench_search_http" "$url" "$data" "$QUERIES")
echo "$http"
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=
inproc=$("$BUILD/bench/bench_search" "$TRACKS" "$QUERIES")
echo "$inproc"

hs50=$(echo "$http" | awk '/^http search/ {print $4}')
hs99=$(echo "$http" | awk '/^http search/ {print $6}')
hg50=$(echo "$http" | awk '/^http suggest/ {print $4}')
hg99=$(echo "$http" | awk '/^http suggest/ {print $6}')
# bench_search's rows: "search (limit 10/type)  E50ms E99ms  F50ms F99ms ..."
row() { echo "$inproc" | grep "^$1" | sed 's/ms//g' | awk -v f="$2" '{print $f}'; }
es50=$(row 'search (limit' 4); es99=$(row 'search (limit' 5); fs50=$(row 'search (limit' 6); fs99=$(row 'search (limit' 7)
eg50=$(row 'suggest (10)' 3); eg99=$(row 'suggest (10)' 4); fg50=$(row 'suggest (10)' 5); fg99=$(row 'suggest (10)' 6)

echo
printf '%-10s %-22s %10s %10s\n' "$TRACKS" "" p50_ms p99_ms
printf '%-10s %-22s %10s %10s\n' search "encore over HTTP" "$hs50" "$hs99"
printf '%-10s %-22s %10s %10s\n' "" "encore in-process" "$es50" "$es99"
printf '%-10s %-22s %10s %10s\n' "" "FTS5 in-process" "$fs50" "$fs99"
printf '%-10s %-22s %10s %10s\n' suggest "encore over HTTP" "$hg50" "$hg99"
printf '%-10s %-22s %10s %10s\n' "" "encore in-process" "$eg50" "$eg99"
printf '%-10s %-22s %10s %10s\n' "" "FTS5 in-process" "$fg50" "$fg99"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}'; }
printf 'BENCH\tsearch_http_suggest\tp99_ms_lower_better\t%s\tfts5_inprocess\t%s\t%s\t<2ms encore p99 (HTTP adds the round trip)\n' \
	"$hg99" "$fg99" "$(ratio "$hg99" "$fg99")"
printf 'BENCH\tsearch_http\tp99_ms_lower_better\t%s\tfts5_inprocess\t%s\t%s\t<5ms encore p99 (HTTP adds the round trip)\n' \
	"$hs99" "$fs99" "$(ratio "$hs99" "$fs99")"
