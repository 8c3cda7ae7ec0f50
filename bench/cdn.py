"""bench/cdn.sh: segment serving, encored against nginx on the same segment files.

wrk (keep-alive, 64 connections, 2 threads) rotates over every segment of every
rendition of a seeded catalog: for encored the real signed URLs from alice's manifests
(signature checked on every request), for nginx the same objects by path under
DATA/objects (the same files on the same disk). Two encored paths:
  edge   /cdn/...    after POST /v1/admin/warm: answered from the in-memory edge cache
  origin /origin/... the first request of an object goes to a worker (SQLite lookup, file
                     read); repeats are sent from the open file on the I/O thread
Runs are interleaved (nginx, edge, origin, then the reverse order) and repeated; figures
are medians.
The per-IP rate limit is raised for the run (nginx has none). Both servers write an
access-log line per request, both in batches (nginx: buffer=32k flush=100ms; encored: the
same, per I/O thread); nginx keeps served files open (open_file_cache) as encored's origin path
does; both run two workers (nginx: worker_processes auto on 2 cores; encored: 2 I/O
threads) with sendfile and TCP_CORK for files. Besides req/s, MB/s and p99, each server's
CPU time per request (utime + stime from /proc, all threads and workers) is reported: on a
shared machine it moves far less than throughput does."""
import json
import os
import subprocess
import tempfile
import urllib.parse

import benchlib as B

# Five short interleaved runs rather than three long ones, each run in the opposite order
# to the one before: on a shared machine throughput drifts over a minute, and the median
# of more, alternated runs lets drift fall on both servers alike.
RUNS = 1 if B.QUICK else 5
SECONDS = 2 if B.QUICK else 6
CONNS = 64
THREADS = 2
TRACKS, TRACK_S = (2, 8) if B.QUICK else (6, 20)

LUA = r"""
local paths = { %s }
local n = #paths
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("start", counter * 7919)
end
function init(args)
  i = (start or 0) %% n
end
function request()
  i = i + 1
  if i > n then i = 1 end
  return wrk.format(nil, paths[i])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%%d,"bytes":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,' ..
    '"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}\n',
    summary.requests, summary.bytes, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def lua_file(paths):
    f = tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-cdn-", delete=False)
    f.write(LUA % ",\n".join(json.dumps(p) for p in paths))
    f.close()
    return f.name


def proc_ticks(pids):
    """utime + stime, in clock ticks, of the processes (all their threads)."""
    t = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            t += int(fields[11]) + int(fields[12])
        except FileNotFoundError:
            pass
    return t


def children(pid):
    """The direct children of pid (nginx's workers)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return out


def wrk(base, script, seconds=SECONDS, pids=()):
    t0 = proc_ticks(pids)
    out = subprocess.run(["wrk", "-t%d" % THREADS, "-c%d" % CONNS, "-d%ds" % seconds, "--timeout", "10s",
                          "-s", script, base], capture_output=True, text=True, check=True).stdout
    line = [l for l in out.splitlines() if l.startswith("WRKJSON ")][-1]
    ticks = proc_ticks(pids) - t0
    r = json.loads(line[8:])
    s = r["duration_us"] / 1e6
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return {"rps": r["requests"] / s, "mbps": r["bytes"] / s / 1e6, "p99_ms": r["p99_us"] / 1000.0,
            "p50_ms": r["p50_us"] / 1000.0, "errors": errors, "requests": r["requests"],
            "cpu_us": ticks * 1e6 / os.sysconf("SC_CLK_TCK") / max(r["requests"], 1)}


def main():
    B.say_load("cdn")
    srv = B.seeded_server(TRACKS, TRACK_S, ["--rate-limit-ip", "100000000:100000000",
                                            "--rate-limit-user", "100000000:100000000"])
    ngx = None
    scripts = []
    try:
        alice = srv.login("alice")
        ids = [r[0] for r in B.db(srv, "SELECT id FROM tracks WHERE state = 'ready' ORDER BY id")]
        edge_paths, origin_paths, nginx_paths, sizes = [], [], [], []
        used = []
        for tid in ids:
            st, m, _ = alice.get("/v1/playback/%s?inline=0" % tid)
            if st != 200:
                continue
            used.append(tid)
            for rd in m["renditions"]:
                for k, seg in enumerate(rd["segments"]):
                    for tmpl, dest in ((rd["segment_url_template"], edge_paths), (rd["origin_url_template"], origin_paths)):
                        u = urllib.parse.urlsplit(tmpl.replace("{index}", str(k)))
                        dest.append(u.path + "?" + u.query)
                    nginx_paths.append("/%s/%s" % (seg["hash"][:2], seg["hash"][2:]))
                    sizes.append(seg["size"])
        admin = srv.login("admin")
        st, w, _ = admin.req("POST", "/v1/admin/warm", {"ids": used})
        assert st == 200, (st, w)
        # nginx at its strongest for this job, and on the same terms as encored: it batches
        # its access log as encored does, and keeps served files open as encored's origin
        # path does (both off in nginx's defaults).
        ngx = B.Nginx(os.path.join(srv.data, "objects"), access_log_buffer="32k", open_file_cache=True)
        B.say("cdn: %d tracks, %d segment objects (mean %.0f KB), warmed %d objects / %.1f MB; "
              "wrk -t%d -c%d -d%ds, %d runs", len(used), len(sizes), sum(sizes) / len(sizes) / 1e3,
              w["objects"], w["bytes"] / 1e6, THREADS, CONNS, SECONDS, RUNS)
        # The direct path takes a request off the socket with one recv() only where TCP has
        # a peek offset (Linux 6.10); before, two: say which this run had.
        B.say("cdn: kernel %s (TCP peek offset %s)", os.uname().release,
              "yes" if tuple(int(x) for x in os.uname().release.split(".")[:2] if x.isdigit()) >= (6, 10) else "no")
        targets = [("nginx", ngx.url, nginx_paths), ("edge", srv.url, edge_paths), ("origin", srv.url, origin_paths)]
        # CPU per request, from the servers' own utime + stime: on a shared machine it
        # moves far less than req/s does. nginx's is its master plus workers.
        # (nginx's workers are looked up per run: they start after its port is open.)
        pids = {"nginx": lambda: [ngx.proc.pid] + children(ngx.proc.pid), "edge": lambda: [srv.proc.pid],
                "origin": lambda: [srv.proc.pid]}
        results = {name: [] for name, _, _ in targets}
        for name, base, paths in targets:
            scripts.append(lua_file(paths))
        # A short unmeasured pass each: page cache, connection set-up, lazy allocations.
        for (name, base, _), sc in zip(targets, scripts):
            wrk(base, sc, 1)
        for run in range(RUNS):
            order = list(zip(targets, scripts))
            for (name, base, _), sc in (order if run % 2 == 0 else order[::-1]):
                r = wrk(base, sc, pids=pids[name]())
                results[name].append(r)
                B.say("  run %d %-6s %9.0f req/s %8.1f MB/s  p50 %6.2f ms  p99 %6.2f ms  %5.1f CPU-us/req  errors %d",
                      run + 1, name, r["rps"], r["mbps"], r["p50_ms"], r["p99_ms"], r["cpu_us"], r["errors"])
                if r["errors"]:
                    raise SystemExit("cdn: %s had %d errors (non-2xx or socket) in %d requests"
                                     % (name, r["errors"], r["requests"]))
        st, stats, _ = admin.get("/v1/admin/stats")
        B.say("  encored stats: %s", json.dumps(stats))
        med = {n: {k: B.median([r[k] for r in rs]) for k in ("rps", "mbps", "p99_ms", "p50_ms", "cpu_us")} for n, rs in results.items()}
        for n in ("nginx", "edge", "origin"):
            B.say("  median %-6s %9.0f req/s %8.1f MB/s  p50 %6.2f ms  p99 %6.2f ms  %5.1f CPU-us/req", n, med[n]["rps"],
                  med[n]["mbps"], med[n]["p50_ms"], med[n]["p99_ms"], med[n]["cpu_us"])
        nx = med["nginx"]
        for path in ("edge", "origin"):
            e = med[path]
            B.bench_line("cdn_%s" % path, "req_s_higher_better", e["rps"], "nginx", nx["rps"], ">= 0.9")
            B.bench_line("cdn_%s" % path, "MB_s_higher_better", e["mbps"], "nginx", nx["mbps"], ">= 0.9")
            B.bench_line("cdn_%s" % path, "p99_ms_lower_better", e["p99_ms"], "nginx", nx["p99_ms"], "(info)")
            B.bench_line("cdn_%s" % path, "cpu_us_per_req_lower_better", e["cpu_us"], "nginx", nx["cpu_us"], "(info)")
    finally:
        B.say_load("cdn (end)")
        for sc in scripts:
            os.unlink(sc)
        if ngx:
            ngx.stop()
        srv.stop()
        if not os.environ.get("KEEP_DATA"):
            import shutil
            shutil.rmtree(srv.data, ignore_errors=True)


if __name__ == "__main__":
    main()
