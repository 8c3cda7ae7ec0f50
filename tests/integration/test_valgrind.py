#!/usr/bin/env python3
"""valgrind memcheck over the three paths issue 14 names: a headless play, a search and a
playlist edit. Once with the client under memcheck against a native encored, once with
encored under memcheck serving native clients. Pass means no invalid access, no use of
uninitialised memory and no leak "definitely lost" (valgrind's exit code 99 says
otherwise, and the report is printed). Registered only for builds without sanitizers:
ASan and memcheck cannot share a process."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from harness import ENCORE, ENCORED, Cli, Server, Tap, expect  # noqa: E402

MEMCHECK = ["valgrind", "--tool=memcheck", "--error-exitcode=99", "--leak-check=full",
            "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite", "--num-callers=30",
            "--child-silent-after-fork=yes"]


def report(path):
    with open(path, errors="replace") as f:
        return f.read()


def summary(text):
    """valgrind's own totals, e.g. 'ERROR SUMMARY: 0 errors' and 'definitely lost: 0 bytes'."""
    err = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
    lost = re.findall(r"definitely lost: ([\d,]+) bytes", text)
    return (int(err[-1]) if err else None), (int(lost[-1].replace(",", "")) if lost else 0)


def run_memcheck(cli, log, *args, timeout=900):
    p = subprocess.run(MEMCHECK + ["--log-file=" + log, ENCORE, *args], env=cli.env, capture_output=True, text=True,
                       timeout=timeout, start_new_session=True, stdin=subprocess.DEVNULL)
    text = report(log)
    errors, lost = summary(text)
    assert p.returncode != 99 and errors == 0, "memcheck on encore %s:\n%s" % (" ".join(args), text[-6000:])
    return p, errors, lost


def track(srv):
    import sqlite3
    db = sqlite3.connect(os.path.join(srv.data, "encore.db"))
    row = db.execute("SELECT id, name FROM tracks WHERE markets = '' AND explicit = 0 ORDER BY id LIMIT 1").fetchone()
    db.close()
    return "encore:track:" + row[0], row[1]


def test_client_play_search_and_playlist_edit_are_clean_under_memcheck(srv, tmp):
    uri, name = track(srv)
    cli = Cli(srv.url, "alice")
    p, _, lost = run_memcheck(cli, os.path.join(tmp, "play.vg"), "play", uri, "--output", "null", "--duration", "3",
                              "--quality", "96")
    expect(p.returncode, 0, "play exit code (stderr %r)" % p.stderr[-500:])
    print("# encore play: 0 errors, %d bytes definitely lost" % lost)
    p, _, lost = run_memcheck(cli, os.path.join(tmp, "search.vg"), "search", name.split()[0], "--json")
    expect(p.returncode, 0, "search exit code (stderr %r)" % p.stderr[-500:])
    assert uri in p.stdout or name in p.stdout, "search did not find %r: %r" % (name, p.stdout[:300])
    print("# encore search: 0 errors, %d bytes definitely lost" % lost)
    rc, so, se = cli.run("playlist", "create", "Memcheck", "--json")
    expect(rc, 0, "playlist create %r" % se)
    pid = json.loads(so)["id"]
    p, _, lost = run_memcheck(cli, os.path.join(tmp, "edit.vg"), "playlist", "add", pid, uri)
    expect(p.returncode, 0, "playlist add exit code (stderr %r)" % p.stderr[-500:])
    rc, so, se = cli.run("playlist", "show", pid, "--json")
    assert uri in so, "the edit made under memcheck is not in the playlist: %r" % so[:300]
    print("# encore playlist add: 0 errors, %d bytes definitely lost" % lost)


class MemcheckServer(Server):
    def start(self):
        self.vglog = os.path.join(self.data, "encored.vg")
        real = ENCORED
        wrapper = os.path.join(self.data, "encored-memcheck")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec %s --log-file=%s %s \"$@\"\n" % (" ".join(MEMCHECK), self.vglog, real))
        os.chmod(wrapper, 0o755)
        import harness
        harness.ENCORED = wrapper
        try:
            return super().start()
        finally:
            harness.ENCORED = real


def test_server_play_search_and_playlist_edit_are_clean_under_memcheck(tmp):
    srv = MemcheckServer(tracks=12)
    srv.start()
    try:
        uri, name = track(srv)
        cli = Cli(srv.url, "alice")
        rc, so, se = cli.run("play", uri, "--output", "null", "--duration", "3", "--quality", "96", timeout=900)
        expect(rc, 0, "play against encored under memcheck %r" % se[-500:])
        rc, so, se = cli.run("search", name.split()[0], "--json")
        expect(rc, 0, "search %r" % se)
        rc, so, se = cli.run("playlist", "create", "Server memcheck", "--json")
        expect(rc, 0, "playlist create %r" % se)
        rc, so, se = cli.run("playlist", "add", json.loads(so)["id"], uri)
        expect(rc, 0, "playlist add %r" % se)
    finally:
        code = srv.stop()
    text = report(srv.vglog)
    errors, lost = summary(text)
    assert code != 99 and errors == 0, "memcheck on encored (exit %r):\n%s" % (code, text[-6000:])
    assert errors is not None, "valgrind wrote no summary: %s" % text[-2000:]
    print("# encored: 0 errors, %d bytes definitely lost (exit %d)" % (lost, code))
    shutil.rmtree(srv.data, ignore_errors=True)


def main():
    tap = Tap()
    tmp = tempfile.mkdtemp(prefix="encore-valgrind-")
    with Server(tracks=12) as srv:
        tap.run(test_client_play_search_and_playlist_edit_are_clean_under_memcheck, srv, tmp)
    tap.run(test_server_play_search_and_playlist_edit_are_clean_under_memcheck, tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    tap.done()


if __name__ == "__main__":
    main()
