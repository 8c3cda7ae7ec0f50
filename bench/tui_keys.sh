#!/bin/sh
# TUI keypress-to-screen latency with a 2 s slow server (issue 7), against the tty's own
# echo in the same tmux. BENCH_QUICK=1: 10 keys. Method: bench/tui_keys.py.
set -eu
exec python3 "$(dirname "$0")/tui_keys.py" "$@"
