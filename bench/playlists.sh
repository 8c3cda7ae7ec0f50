#!/bin/sh
# Playlist page latency (10,000 items) and WebSocket push latency (100 subscribers).
set -e
cd "$(dirname "$0")/.."
B=${BUILD:-build}
[ -d "$B" ] || meson setup "$B" -Dwerror=true
ninja -C "$B" mockserver/encored >&2
ENCORED="$PWD/$B/mockserver/encored" exec python3 bench/playlists.py "$@"
