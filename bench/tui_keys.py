"""Keypress-to-screen latency of the TUI while the server is slow (issue 7: "a slow server
(--fault-latency-ms 2000) leaves the UI responsive: a keypress is answered on screen within
100 ms"). encore runs in tmux against an encored that delays every answer by 2 s, with a
track loading; each sample sends one key (alternately '?' for Help and '3' for the Queue
view) and polls the pane until that view is drawn. Peer, in the same run and the same tmux:
the terminal's own floor, a key echoed by the tty under `cat` in another session, measured
the same way. Median and p90 of 40 keys each (BENCH_QUICK=1: 10)."""
import os
import shutil
import subprocess
import tempfile
import time

import benchlib
from benchlib import QUICK, bench_line, median, pct, say, say_load
from harness import Server
from test_tui import Tui, catalog, play_cmd

N = 10 if QUICK else 40


def time_until(screen, pred, timeout=10.0):
    """Seconds from now until pred(screen()) holds; polls as fast as tmux answers."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred(screen()):
            return time.monotonic() - t0
    raise SystemExit("bench: the screen did not change within %.0f s" % timeout)


def echo_floor():
    tmp = tempfile.mkdtemp(prefix="encore-bench-tty-")
    sock = os.path.join(tmp, "tmux.sock")

    def tmux(*a):
        return subprocess.run(["tmux", "-S", sock, *a], capture_output=True, text=True, timeout=30)
    try:
        tmux("new-session", "-d", "-s", "echo", "-x", "100", "-y", "30", "cat")
        out = []
        for i in range(N):
            mark = "k%03dq" % i
            t0 = time.monotonic()
            tmux("send-keys", "-t", "echo", "-l", mark)
            dt = time_until(lambda: tmux("capture-pane", "-p", "-t", "echo").stdout, lambda s: mark in s)
            out.append((time.monotonic() - t0) if dt is not None else None)
            tmux("send-keys", "-t", "echo", "Enter")
        return out
    finally:
        tmux("kill-server")
        shutil.rmtree(tmp, ignore_errors=True)


def encore_keys():
    with Server(["--fault-latency-ms", "2000"], tracks=4, seconds=20) as slow:
        tracks = catalog(slow)
        with Tui(slow) as t:
            play_cmd(t, tracks[0][0])
            out = []
            views = (("?", "Keys (rebind"), ("3", "Queue ·"))
            for i in range(N):
                key, text = views[i % 2]
                t0 = time.monotonic()
                t.keys(key)
                time_until(t.screen, lambda s: text in s)
                out.append(time.monotonic() - t0)
                # Off the view again so the next key's answer is a visible change.
                t.keys("1")
                time_until(t.screen, lambda s: "Search:" in s and text not in s)
            return out


def main():
    if not shutil.which("tmux"):
        raise SystemExit("bench: tmux is not installed (scripts/deps installs it)")
    say_load("tui_keys start")
    floor = [x * 1000 for x in echo_floor()]
    keys = [x * 1000 for x in encore_keys()]
    say_load("tui_keys end")
    say("tty echo under cat:          median %.1f ms, p90 %.1f ms (%d keys)", median(floor), pct(floor, 90), N)
    say("encore view key, 2 s server: median %.1f ms, p90 %.1f ms, max %.1f ms (%d keys)",
        median(keys), pct(keys, 90), max(keys), N)
    bench_line("tui_keys", "ms_lower_better", median(keys), "tty-echo", median(floor), "< 100 ms with a 2 s server")


if __name__ == "__main__":
    benchlib.say("bench: %s" % os.path.basename(benchlib.BUILD))
    main()
