"""bench/playback.sh: time to first audio, encore against ogg123 and mpv.

What is measured: process start (spawn) to the first PCM bytes reaching the audio
output. Every player writes a WAV stream into a FIFO the bench reads (encore
--output wav:FIFO, ogg123 -d wav -f FIFO, mpv --ao=pcm --ao-pcm-file=FIFO); the time
is taken when bytes past the WAV "data" chunk header arrive. This is the same point
for all three, includes each player's own start-up, and excludes tear-down (which an
exit-after-first-audio run would add). encore's own `started` event (`t`, from its
command start) is printed beside it as a cross-check.

Cold means an uncached track for an existing user: encore's cache.db exists but is
emptied before each run. A first run after install (no cache.db, so SQLite creates it
with several fsyncs) is printed beside it.

Same rendition: encore plays with --quality 160; the peers play a plain Ogg Vorbis
file encoded from the same source WAV with oggenc at the same managed bitrate
(-b 160 -m 144), served by nginx. Both servers have the bytes in memory (one unmeasured
run each first).

Round trip: 0 ms is direct loopback; 100 ms puts bench/delayproxy.py (50 ms each way,
plus one round trip for the TCP handshake) in front of BOTH servers; for encored it
rewrites the server's own URL in bodies so signed segment URLs use the proxy too.

Prefetched next, two ways, both on `--output null:realtime` (a device with no buffer:
a frame handed to it at T is heard at T, and a skip drops what it holds):
- skip: `encore play A B`, wait until the server has served B's manifest and the
  prefetch has settled (the engine prefetches the next track's manifest with the first
  segment inline, and its segments, once A is fully fetched), then `encore remote next`.
  The figure is the engine's first_audio_ms of B's `started` event: from the skip
  command reaching the engine (engine_next, called by the control socket) to B's first
  frame handed to the sink. Beside it, the wall time from spawning `encore remote next`
  to B's event on the player's stdout, which adds the remote client's own process
  start, the socket and the event's trip to stdout.
- follow-on: `encore play A B --seek 17` (A ends 3 s later); the figure is handover_ms of
  B's `track_changed` event: from the sink accepting A's last frame to B's first frame
  being handed to it (B was decoded into the ring behind A, so this is the gap)."""
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import benchlib as B

RUNS = 2 if B.QUICK else 5
NEXT_RUNS = 1 if B.QUICK else 5
KBPS = 160


def first_audio(argv, fifo, env=None, timeout=30.0, wait_line=None):
    """Seconds from spawn to the first audio bytes in fifo, and the player's stdout. With
    wait_line, the player keeps running (its audio drained) until it prints a line
    containing it (encore's `started` event comes from its main thread, which may still
    be busy when the audio is already out), for at most 5 s more."""
    if os.path.exists(fifo):
        os.unlink(fifo)
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    t0 = time.monotonic()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    lines = []
    seen = threading.Event()

    def reader():
        for line in p.stdout:
            lines.append(line)
            if wait_line and wait_line.encode() in line:
                seen.set()
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    buf = b""
    got = None
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if not r:
            if p.poll() is not None:
                break
            continue
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            # No writer yet (or it closed): poll gently.
            if p.poll() is not None:
                break
            time.sleep(0.0002)
            continue
        buf += chunk
        i = buf.find(b"data")
        if i >= 0 and len(buf) > i + 8:
            got = time.monotonic() - t0
            break
    if got is not None and wait_line:
        until = time.monotonic() + 5
        while not seen.is_set() and time.monotonic() < until and p.poll() is None:
            r, _, _ = select.select([fd], [], [], 0.05)
            if r:
                try:
                    os.read(fd, 1 << 20)
                except BlockingIOError:
                    pass
    # Close our end first: a player blocked writing to the full FIFO gets EPIPE and can exit.
    os.close(fd)
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    th.join(10)
    out = b"".join(lines)
    os.unlink(fifo)
    if got is None:
        raise SystemExit("playback: %s produced no audio" % argv[0])
    return got, out.decode(errors="replace")


def forget_cached(db):
    """Empties the client cache (a cold track for an existing user: cache.db exists)."""
    import sqlite3
    con = sqlite3.connect(db, timeout=30)
    try:
        con.execute("DELETE FROM kv")
        con.commit()
    finally:
        con.close()


def cold_runs(label, ngx_url, tid, cli, work):
    fifo = os.path.join(work, "out.wav")
    cache = os.path.join(cli.tmp, "cache")
    env = cli.env
    enc = lambda: [B.ENCORE, "play", "encore:track:" + tid, "--quality", str(KBPS), "--output", "wav:" + fifo, "--json"]
    players = {
        "encore": enc,
        "encore-fresh": enc,
        "ogg123": lambda: ["ogg123", "-q", "-d", "wav", "-f", fifo, ngx_url + "/track.ogg"],
        "mpv": lambda: ["mpv", "--no-config", "--ao=pcm", "--ao-pcm-file=" + fifo, "--no-video", "--really-quiet",
                        ngx_url + "/track.ogg"],
    }
    res = {k: [] for k in players}
    internal = []
    for run in range(RUNS + 1):
        for name, argv in players.items():
            if name == "encore-fresh":
                shutil.rmtree(cache, ignore_errors=True)  # first run after install: no cache.db at all
            elif name == "encore" and os.path.exists(os.path.join(cache, "cache.db")):
                forget_cached(os.path.join(cache, "cache.db"))
            t, out = first_audio(argv(), fifo, env=env if name.startswith("encore") else None,
                                 wait_line='"started"' if name.startswith("encore") else None)
            if run == 0:
                continue  # warm-up: server memory, page cache, dynamic loader
            res[name].append(t * 1000)
            if name == "encore":
                ev = [e for e in B.events(out) if e.get("event") == "started"]
                if ev:
                    internal.append(ev[0]["t"] * 1000)
    med = {k: B.median(v) for k, v in res.items()}
    B.say("  %-6s  encore %7.1f ms (own started t %.1f; no cache.db yet %.1f)  ogg123 %7.1f ms  mpv %7.1f ms"
          "   [encore runs: %s]", label, med["encore"], B.median(internal) if internal else float("nan"),
          med["encore-fresh"], med["ogg123"], med["mpv"], " ".join("%.0f" % x for x in res["encore"]))
    return med


def run_player(argv, env, want):
    """Starts `encore play ... --json`; returns (process, lines, event set when a line
    containing every string of want appears)."""
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                         text=True, start_new_session=True)
    lines = []
    got = threading.Event()

    def reader():
        for line in p.stdout:
            lines.append((time.monotonic(), line))
            if all(w in line for w in want):
                got.set()
    threading.Thread(target=reader, daemon=True).start()
    return p, lines, got


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def next_runs(srv, a, b, cli):
    """Skip to a prefetched next track: (engine ms, wall ms from spawning `encore remote next`)."""
    env = cli.env
    walls, engine_ms = [], []
    for run in range(NEXT_RUNS):
        shutil.rmtree(os.path.join(cli.tmp, "cache"), ignore_errors=True)
        log_mark = len(srv.log_text())
        p, lines, got = run_player([B.ENCORE, "play", "encore:track:" + a, "encore:track:" + b, "--quality", str(KBPS),
                                    "--output", "null:realtime", "--json"], env, ['"started"', b])
        try:
            B.harness.wait_for(lambda: any('"started"' in l for _, l in lines), 30, "track A started")
            # B's manifest served, then its last prefetched segment request settles.
            B.harness.wait_for(lambda: ("/v1/playback/" + b) in srv.log_text()[log_mark:], 60, "B prefetched")
            size = -1
            while True:  # until the access log stops growing for 300 ms (prefetch done)
                n = len(srv.log_text())
                if n == size:
                    break
                size = n
                time.sleep(0.3)
            t0 = time.monotonic()
            r = subprocess.run([B.ENCORE, "remote", "next"], env=env, capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                raise SystemExit("playback: encore remote next failed: %r" % (r,))
            if not got.wait(30):
                raise SystemExit("playback: B never started after remote next")
            tb, line = [(t, l) for t, l in lines if b in l and '"started"' in l][0]
            ev = B.events(line)[0]
            walls.append((tb - t0) * 1000)
            engine_ms.append(ev.get("first_audio_ms", float("nan")))
        finally:
            stop(p)
    return engine_ms, walls


def follow_runs(a, b, cli):
    """A ends and B follows on: handover_ms of B's track_changed event."""
    out = []
    for run in range(NEXT_RUNS):
        shutil.rmtree(os.path.join(cli.tmp, "cache"), ignore_errors=True)
        p, lines, got = run_player([B.ENCORE, "play", "encore:track:" + a, "encore:track:" + b, "--seek", "17",
                                    "--quality", str(KBPS), "--output", "null:realtime", "--json"], cli.env,
                                   ['"track_changed"', b])
        try:
            if not got.wait(60):
                raise SystemExit("playback: B never followed A")
            ev = [e for e in B.events("".join(l for _, l in lines)) if e.get("event") == "track_changed"][0]
            out.append(ev.get("handover_ms", float("nan")))
        finally:
            stop(p)
    return out


def main():
    B.say_load("playback")
    work = tempfile.mkdtemp(prefix="bench-playback-")
    srv = B.seeded_server(2 if B.QUICK else 6, 8 if B.QUICK else 20)
    ngx = None
    proxies = []
    try:
        rows = B.db(srv, "SELECT id, source_hash FROM tracks WHERE state = 'ready' AND markets = '' AND explicit = 0"
                         " ORDER BY id LIMIT 2")
        (tid, src), (tid2, _) = rows[0], rows[1]
        www = os.path.join(work, "www")
        os.makedirs(www)
        subprocess.run(["oggenc", "-Q", "-b", str(KBPS), "-m", str(KBPS * 9 // 10), "-o", os.path.join(www, "track.ogg"),
                        B.object_path(srv.data, src)], check=True)
        os.chmod(work, 0o755)
        ngx = B.Nginx(www)
        cli = B.harness.Cli(srv.url, "alice")
        B.say("playback: first audio from process start, %d kbps, %d runs each (medians), cold track", KBPS, RUNS)
        med0 = cold_runs("0 ms", ngx.url, tid, cli, work)
        pe, pn = B.Proxy(srv.port, 50, rewrite=True), B.Proxy(ngx.port, 50)
        proxies += [pe, pn]
        cli100 = B.harness.Cli(pe.url, "alice")  # a session is bound to the server URL it logged in to
        med100 = cold_runs("100 ms", pn.url, tid, cli100, work)
        eng, walls = next_runs(srv, tid, tid2, cli100)
        B.say("  next (prefetched, 100 ms RTT), skip: %.1f ms from the skip command to B's first frame at the sink"
              "  [runs: %s]; %.1f ms from spawning `encore remote next` to B's event on stdout [runs: %s]",
              B.median(eng), " ".join("%.1f" % x for x in eng), B.median(walls), " ".join("%.0f" % x for x in walls))
        hand = follow_runs(tid, tid2, cli100)
        B.say("  next (prefetched, 100 ms RTT), follow-on: %.3f ms from A's last frame accepted by the sink to B's"
              " first frame handed to it  [runs: %s]", B.median(hand), " ".join("%.3f" % x for x in hand))
        for label, med in (("0ms", med0), ("100ms", med100)):
            peer = min(("ogg123", "mpv"), key=lambda k: med[k])
            B.bench_line("playback_cold_%s" % label, "first_audio_ms_lower", med["encore"], peer, med[peer], "<= 1.0")
        peer = min(("ogg123", "mpv"), key=lambda k: med100[k])
        B.bench_line("playback_next_prefetch", "first_audio_ms_lower", B.median(eng), peer + "(cold)", med100[peer],
                     "< 10 ms")
        B.bench_line("playback_next_followon", "handover_ms_lower", B.median(hand), peer + "(cold)", med100[peer],
                     "< 10 ms")
    finally:
        B.say_load("playback (end)")
        for p in proxies:
            p.stop()
        if ngx:
            ngx.stop()
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
        if not os.environ.get("KEEP_DATA"):
            shutil.rmtree(srv.data, ignore_errors=True)


if __name__ == "__main__":
    main()
