#!/bin/sh
# Load (issue 14): 500 simulated listeners streaming at real-time pace with 1% injected
# CDN errors, then the knee (playback sped up until underruns or p99 > 1 s), with nginx
# serving the same segments to the same generator as the peer. See bench/load.py.
set -eu
exec python3 "$(dirname "$0")/load.py" "$@"
