"""bench/load.sh: simulated listeners streaming from encored at real-time pace.

Each listener behaves like the client engine: it asks for a playback manifest
(GET /v1/playback/ID?quality=160&inline=0), starts "playing" when segment 0 has
arrived, keeps fetching signed segments so that about 10 s stay buffered, counts an
underrun whenever playback reaches a segment that has not arrived (and waits for it,
as a real player rebuffers), retries a failed segment after 200 ms, and moves to
another track at the end. encored runs with --fault-error-rate 0.01 (1% of CDN
answers are 503), so the retry path is exercised all the time.

Phase 1 (the goal): LISTENERS listeners at real-time pace for SECONDS: server CPU
(share of one core), peak RSS, segment latency p50/p99, error rate, listeners with an
underrun (goal: none while the machine has headroom).
Phase 2 (the knee): steps double the listeners (2x, 4x, 8x), then keep 8x and speed
playback up PACE times, so one simulated listener asks for what PACE real ones would
(a sped-up listener also feels latency PACE times harder, so this end of the scale is
pessimistic); it stops at the first step with an underrun or a segment p99 over 1 s,
or when the load generator itself runs out of CPU (then the knee is beyond what this
machine can show, and it says so).
Peer: nginx serving the same segment files to the same generator at phase 1's load
(same paths, no signatures, no manifests, no injected errors): latency ratio."""
import asyncio
import os
import random
import resource
import statistics
import sys
import time
import urllib.parse

import benchlib as B

LISTENERS = int(os.environ.get("LOAD_LISTENERS", "500"))
SECONDS = 20 if B.QUICK else int(os.environ.get("LOAD_SECONDS", "60"))
STEP_SECONDS = 10 if B.QUICK else 25
TRACKS, TRACK_S = (4, 20) if B.QUICK else (8, 40)
AHEAD_S = 10.0
SEG_S = 4.0


class Stats:
    def __init__(self):
        self.lat = []
        self.requests = 0
        self.errors = 0
        self.underrun_listeners = set()
        self.underruns = 0
        self.segments = 0


async def http_get(reader, writer, host, path, token):
    req = "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (path, host, ("Authorization: Bearer %s\r\n" % token) if token else "")
    writer.write(req.encode())
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    length, close = 0, False
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        k = k.strip().lower()
        if k == "content-length":
            length = int(v)
        elif k == "connection" and v.strip().lower() == "close":
            close = True
    body = await reader.readexactly(length) if length else b""
    return status, body, close


class Listener:
    def __init__(self, n, target, stats, pace, stop_at, rng):
        self.n, self.t, self.stats, self.pace, self.stop_at, self.rng = n, target, stats, pace, stop_at, rng
        self.reader = self.writer = None

    async def connect(self):
        if self.writer:
            self.writer.close()
        self.reader, self.writer = await asyncio.open_connection(self.t.host, self.t.port)

    async def get(self, path, token):
        for _ in range(3):
            try:
                if not self.writer:
                    await self.connect()
                st, body, close = await http_get(self.reader, self.writer, self.t.host, path, token)
                if close:
                    self.writer.close()
                    self.writer = None
                return st, body
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                self.writer = None
        raise ConnectionError("no answer after 3 connections")

    async def segment(self, url):
        """One segment, retried after 200 ms on an error, as the client's backoff does."""
        while time.monotonic() < self.stop_at:
            t0 = time.monotonic()
            st, body = await self.get(url, None)
            self.stats.requests += 1
            if st == 200:
                self.stats.lat.append(time.monotonic() - t0)
                self.stats.segments += 1
                return
            self.stats.errors += 1
            # 200 ms of the listener's time: sped-up listeners back off proportionally less.
            await asyncio.sleep(0.2 / self.pace)

    async def run(self):
        await asyncio.sleep(self.rng.random() * 2)   # listeners do not all press play at once
        while time.monotonic() < self.stop_at:
            urls = await self.t.track_urls(self)
            if not urls:
                continue
            start = None          # wall time at which position 0 plays, shifted by stalls
            for k, url in enumerate(urls):
                if start is not None:
                    # Fetch segment k when the buffer ahead drops below AHEAD_S (in track time).
                    pos = (time.monotonic() - start) * self.pace
                    wait = (k * SEG_S - AHEAD_S - pos) / self.pace
                    if wait > 0:
                        await asyncio.sleep(min(wait, max(0.0, self.stop_at - time.monotonic())))
                if time.monotonic() >= self.stop_at:
                    return
                await self.segment(url)
                now = time.monotonic()
                if start is None:
                    start = now
                    continue
                late = (now - start) * self.pace - k * SEG_S
                if late > 0:
                    # Playback reached segment k before it arrived: an underrun; it resumes now.
                    self.stats.underruns += 1
                    self.stats.underrun_listeners.add(self.n)
                    start += late / self.pace
            # Let the last segment play out before the next track.
            if start is not None:
                rest = (len(urls) * SEG_S - (time.monotonic() - start) * self.pace) / self.pace
                if rest > 0:
                    await asyncio.sleep(min(rest, max(0.0, self.stop_at - time.monotonic())))


class EncoredTarget:
    def __init__(self, srv, tokens, ids):
        u = urllib.parse.urlsplit(srv.url)
        self.host, self.port = u.hostname, u.port
        self.tokens, self.ids = tokens, ids

    async def track_urls(self, lst):
        tid = lst.rng.choice(self.ids)
        st, body = await lst.get("/v1/playback/%s?quality=160&inline=0" % tid, self.tokens[lst.n % len(self.tokens)])
        lst.stats.requests += 1
        if st != 200:
            lst.stats.errors += 1
            await asyncio.sleep(0.2)
            return None
        import json
        m = json.loads(body)
        rd = [r for r in m["renditions"] if r["bitrate"] == 160][0]
        out = []
        for k in range(len(rd["segments"])):
            u = urllib.parse.urlsplit(rd["segment_url_template"].replace("{index}", str(k)))
            out.append(u.path + "?" + u.query)
        return out


class NginxTarget:
    def __init__(self, ngx, tracks):
        self.host, self.port = "127.0.0.1", ngx.port
        self.tracks = tracks

    async def track_urls(self, lst):
        return lst.rng.choice(self.tracks)


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def phase(target, listeners, pace, seconds, pids, seed):
    stats = Stats()
    rng = random.Random(seed)
    cpu0 = {p: proc_cpu(p) for p in pids}
    gen0 = self_cpu()
    t0 = time.monotonic()
    stop_at = t0 + seconds

    async def go():
        ls = [Listener(i, target, stats, pace, stop_at, random.Random(rng.random())) for i in range(listeners)]
        await asyncio.gather(*(l.run() for l in ls))
        for l in ls:
            if l.writer:
                l.writer.close()
    asyncio.run(go())
    wall = time.monotonic() - t0
    cpu = sum(proc_cpu(p) - cpu0[p] for p in pids) / wall
    gen = (self_cpu() - gen0) / wall
    return {"listeners": listeners, "pace": pace, "equiv": listeners * pace, "cpu": cpu, "gen_cpu": gen,
            "p50_ms": B.pct(stats.lat, 50) * 1000, "p99_ms": B.pct(stats.lat, 99) * 1000,
            "err": stats.errors / max(1, stats.requests), "requests": stats.requests, "segments": stats.segments,
            "underrun_listeners": len(stats.underrun_listeners), "underruns": stats.underruns}


def show(name, r, rss=None):
    B.say("  %-8s %5d listeners x pace %-3d = %6d equiv: %6d segments, p50 %7.2f ms, p99 %8.2f ms, errors %.2f%%, "
          "underruns %d (%d listeners), server CPU %.0f%% of a core%s, generator CPU %.0f%%",
          name, r["listeners"], r["pace"], r["equiv"], r["segments"], r["p50_ms"], r["p99_ms"], 100 * r["err"],
          r["underruns"], r["underrun_listeners"], 100 * r["cpu"], (", peak RSS %.1f MB" % rss) if rss else "",
          100 * r["gen_cpu"])


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    B.say_load("load")
    srv = B.seeded_server(TRACKS, TRACK_S, ["--fault-error-rate", "0.01", "--rate-limit-ip", "100000000:100000000",
                                            "--rate-limit-user", "100000000:100000000"])
    ngx = None
    try:
        ids = [r[0] for r in B.db(srv, "SELECT id FROM tracks WHERE state = 'ready' AND markets = '' AND explicit = 0")]
        tokens = [srv.login(u).token for u in ("alice", "bob", "chen")]
        admin = srv.login("admin")
        st, _, _ = admin.req("POST", "/v1/admin/warm", {"ids": ids})
        assert st == 200
        # nginx peer: the same 160 kbps segment files by path.
        alice = srv.login("alice")
        ng_tracks = []
        for tid in ids:
            st, m, _ = alice.get("/v1/playback/%s?quality=160&inline=0" % tid)
            rd = [r for r in m["renditions"] if r["bitrate"] == 160][0]
            ng_tracks.append(["/%s/%s" % (s["hash"][:2], s["hash"][2:]) for s in rd["segments"]])
        ngx = B.Nginx(os.path.join(srv.data, "objects"))
        nginx_pids = [int(open(os.path.join(ngx.dir, "nginx.pid")).read())]
        nginx_pids += [int(p) for p in os.popen("pgrep -P %d" % nginx_pids[0]).read().split()]
        B.say("load: %d tracks of %d s, 160 kbps, %d listeners for %d s, 1%% injected CDN errors (encored only)",
              len(ids), TRACK_S, LISTENERS, SECONDS)
        target = EncoredTarget(srv, tokens, ids)
        r = phase(target, LISTENERS, 1, SECONDS, [srv.proc.pid], 1)
        rss = proc_hwm_mb(srv.proc.pid)
        show("encored", r, rss)
        p = phase(NginxTarget(ngx, ng_tracks), LISTENERS, 1, SECONDS, nginx_pids, 1)
        show("nginx", p)
        knee = None
        steps = []
        # More listeners first (connections and requests grow together); past what one
        # Python process can hold open, speed playback up instead.
        plan = [(LISTENERS * 2, 1), (LISTENERS * 4, 1), (LISTENERS * 8, 1)]
        plan += [(LISTENERS * 8, 2 ** k) for k in range(1, 6)]
        for listeners, pace in plan:
            s = phase(target, listeners, pace, STEP_SECONDS, [srv.proc.pid], pace + listeners)
            show("step", s)
            steps.append(s)
            if s["underrun_listeners"] or s["p99_ms"] > 1000:
                knee = s
                break
            if s["gen_cpu"] > 0.9:
                B.say("  the load generator used %.0f%% of a core: the knee is beyond what it can drive here",
                      100 * s["gen_cpu"])
                break
        if knee:
            last_ok = steps[-2]["equiv"] if len(steps) > 1 else LISTENERS
            B.say("knee: underruns or p99 > 1 s first at %d listener-equivalents (%d were fine); server CPU there %.0f%%",
                  knee["equiv"], last_ok, 100 * knee["cpu"])
        else:
            B.say("knee: not reached up to %d listener-equivalents (server CPU %.0f%% of a core at the last step)",
                  steps[-1]["equiv"], 100 * steps[-1]["cpu"])
        B.say("goal: %d listeners with no underrun: %s (%d listeners had one)", LISTENERS,
              "met" if r["underrun_listeners"] == 0 else "NOT met", r["underrun_listeners"])
        B.bench_line("load_%d_listeners" % LISTENERS, "segment_p99_ms_lower_better", r["p99_ms"], "nginx", p["p99_ms"],
                     "0 underruns; got %d" % r["underrun_listeners"])
    finally:
        B.say_load("load (end)")
        if ngx:
            ngx.stop()
        srv.stop()
        if not os.environ.get("KEEP_DATA"):
            import shutil
            shutil.rmtree(srv.data, ignore_errors=True)


if __name__ == "__main__":
    main()
