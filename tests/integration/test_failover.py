#!/usr/bin/env python3
"""Failover between servers: two encored processes share one data dir (catalog, users,
signing keys), the client is given both (`--server URL1,URL2`). The first is killed with
SIGKILL mid-track; playback goes on from the buffer, then from the second server, and no
track restarts. Also: API calls go to the second server when the first is down from the
start, and a list with no live server fails with one clear line."""
import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import ENCORED, Cli, Server, Tap, expect, json_lines_so_far, query, wait_for  # noqa: E402


def plain_tracks(srv, n):
    rows = query(srv, "SELECT id FROM tracks WHERE markets = '' AND explicit = 0 AND state = 'ready' ORDER BY id LIMIT ?", n)
    return ["encore:track:" + r[0] for r in rows]


def cdn_hits(srv):
    with open(os.path.join(srv.data, "server-b.log"), "rb") as f:
        return sum(1 for l in f.read().decode(errors="replace").splitlines() if '"/cdn/' in l or '"/origin/' in l)


def test_server_killed_mid_track_the_other_continues_without_restarting(a, b):
    uris = plain_tracks(a, 3)
    cli = Cli(a.url + "," + b.url, "alice")
    # Real-time output and a small prefetch, so the first server dies with the rest of the
    # queue (manifests and segments) still to fetch.
    p = cli.spawn("play", *uris, "--output", "null:realtime", "--prefetch", "2", "--json")
    acc = []
    try:
        wait_for(lambda: any(e["event"] == "started" for e in json_lines_so_far(p, acc)), timeout=60, what="playing")
        before_b = cdn_hits(b)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        out = p.communicate(timeout=300)[0]
    finally:
        if p.poll() is None:
            p.kill()
    acc.append(out)
    ev = [json.loads(l) for l in "".join(acc).splitlines() if l.startswith("{")]
    kinds = [e["event"] for e in ev]
    expect(p.returncode, 0, "exit (events %r)" % kinds)
    expect(kinds[-1], "ended", "the queue finished: %r" % kinds)
    expect(kinds.count("started") + kinds.count("track_changed"), 3, "each track started once: %r" % kinds)
    after_b = cdn_hits(b)
    assert after_b > before_b, "the second server served no segment after the first died (%d -> %d)" % (before_b, after_b)
    print("# second server served %d segment requests after the kill" % (after_b - before_b))


def test_api_calls_fail_over_when_the_first_server_is_down(b, dead_url, state):
    # Logging in, searching and reading the account all go through the list, whose
    # first server is down from the start.
    cli = Cli(dead_url + "," + b.url, "alice")
    rc, so, se = cli.run("search", "a", "--json")
    expect(rc, 0, "search with the first server down %r" % se)
    json.loads(so)
    rc, so, se = cli.run("whoami")
    expect(rc, 0, "whoami %r" % se)
    state["cli"] = cli


def test_no_live_server_is_one_clear_error(b, state):
    b.proc.terminate()
    b.proc.wait(timeout=30)
    rc, so, se = state["cli"].run("search", "x")
    assert rc != 0, "succeeded with no server"
    lines = [l for l in se.splitlines() if l.strip()]
    expect(len(lines), 1, "one line: %r" % se)
    assert "cannot reach" in se, se


def main():
    tap = Tap()
    a = Server().start()
    # The second server on the same data dir, with its own log.
    b = Server(seed=False, data=a.data)
    b.log = open(os.path.join(a.data, "server-b.log"), "ab")
    b.proc = subprocess.Popen([ENCORED, "serve", "--data", a.data, "--listen", "127.0.0.1:0"],
                              stdout=subprocess.PIPE, stderr=b.log)
    line = b.proc.stdout.readline().decode()
    assert line.startswith("listening on"), line
    b.url = line.split()[2]
    try:
        tap.run(test_server_killed_mid_track_the_other_continues_without_restarting, a, b)
        state = {}
        tap.run(test_api_calls_fail_over_when_the_first_server_is_down, b, a.url, state)
        tap.run(test_no_live_server_is_one_clear_error, b, state)
    finally:
        for s in (a, b):
            if s.proc and s.proc.poll() is None:
                s.proc.terminate()
                s.proc.wait(timeout=30)
    tap.done()


if __name__ == "__main__":
    main()
