"""Driver for bench/events.sh: pre-renders batches of 100 events and posts them over
keep-alive connections, by default with the C load generator bench_events_post (one thread
per connection; EVENTS_CLIENT=python uses Python client processes instead, which spend
about a fifth of encored's CPU per event on the same cores)."""
import http.client
import json
import multiprocessing as mp
import os
import random
import resource
import shutil
import sqlite3
import statistics
import string
import subprocess
import sys
import tempfile
import time
import urllib.parse

ENCORED = sys.argv[1]
BATCH = 100
BATCHES = int(os.environ.get("EVENTS_BATCHES", "400"))   # per run: 40 000 events
CLIENTS = int(os.environ.get("EVENTS_CLIENTS", "6"))
CLIENT = os.environ.get("EVENTS_CLIENT", "c")
POSTER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(ENCORED))), "bench", "bench_events_post")
RUNS = 5
GOAL = 50000
ncpu = os.cpu_count() or 1
SERVER_CPUS = "0,1" if ncpu >= 4 else None   # pin encored to 2 cores when clients can use the rest


B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def event_id(rng, ms):
    """What encore's outbox sends (common/id.c id_time_ordered): 48 bits of milliseconds then
    80 random bits, as 22 base62 digits, so ids sort by creation time."""
    v = (ms << 80) | rng.getrandbits(80)
    out = []
    for _ in range(22):
        v, r = divmod(v, 62)
        out.append(B62[r])
    return "".join(reversed(out))


def events(rng, n):
    t = int(time.time() * 1000)
    a = string.ascii_letters + string.digits
    return [{"id": event_id(rng, t + i), "type": "play_end", "ts": t + i,
             "uri": "encore:track:" + "".join(rng.choice(a) for _ in range(22)), "ms_played": 31000 + i,
             "bitrate": 160} for i in range(n)]


def client(args):
    host, port, token, bodies = args
    c = http.client.HTTPConnection(host, port, timeout=60)
    for b in bodies:
        c.request("POST", "/v1/events", body=b, headers={"Authorization": "Bearer " + token,
                                                          "Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        if r.status != 200 or json.loads(data)["accepted"] != BATCH:
            raise SystemExit("bad answer %d %r" % (r.status, data[:200]))
    return len(bodies)


def post_c(url, token, bodies, data):
    """Posts with bench_events_post; returns (seconds, client CPU-seconds)."""
    path = os.path.join(data, "bodies.jsonl")
    with open(path, "w") as f:
        f.write("\n".join(bodies) + "\n")
    out = subprocess.run([POSTER, url.hostname, str(url.port), token, path, str(CLIENTS), str(BATCH)],
                         check=True, stdout=subprocess.PIPE).stdout.split()
    return float(out[0]), float(out[1])


def post_python(url, token, bodies):
    parts = [(url.hostname, url.port, token, bodies[i::CLIENTS]) for i in range(CLIENTS)]
    with mp.Pool(CLIENTS) as pool:
        pool.map(client, [(url.hostname, url.port, token, [])] * CLIENTS)   # processes up
        t0 = time.perf_counter()
        cpu = pool.map(client_cpu, parts)
        dt = time.perf_counter() - t0
    return dt, sum(cpu)


def client_cpu(args):
    t = os.times()
    client(args)
    u = os.times()
    return (u.user - t.user) + (u.system - t.system)


def cpu_seconds(pid):
    """encored's user+system CPU so far: events per CPU-second is steadier than wall-clock
    throughput on a machine whose cores other work shares."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def consumers_caught_up(url, deadline_s=300):
    """Consumers (royalties, realtime, recommendations) run behind ingest at the lowest CPU
    priority; this is when all three have committed the whole log (lag 0 in /metrics)."""
    end = time.perf_counter() + deadline_s
    c = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    while time.perf_counter() < end:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        lags = [float(l.split()[-1]) for l in text.splitlines() if l.startswith("encore_consumer_lag{")]
        if lags and all(v == 0 for v in lags):
            return time.perf_counter()
        time.sleep(0.05)
    raise SystemExit("consumers did not catch up within %d s" % deadline_s)


def run_encore(run):
    data = tempfile.mkdtemp(prefix="encore-bench-events-")
    try:
        subprocess.run([ENCORED, "user", "add", "--data", data, "bench", "benchpw"], check=True, stdout=subprocess.DEVNULL)
        cmd = [ENCORED, "serve", "--data", data, "--listen", "127.0.0.1:0", "--workers", "4",
               "--rate-limit-user", "0", "--rate-limit-ip", "0"]
        if SERVER_CPUS:
            cmd = ["taskset", "-c", SERVER_CPUS] + cmd
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        url = urllib.parse.urlparse(p.stdout.readline().decode().split()[2])
        c = http.client.HTTPConnection(url.hostname, url.port)
        c.request("POST", "/api/token", body="grant_type=password&username=bench&password=benchpw",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        token = json.loads(c.getresponse().read())["access_token"]
        rng = random.Random(run)
        rows = []
        bodies = []
        for _ in range(BATCHES):
            ev = events(rng, BATCH)
            rows.extend(ev)
            bodies.append(json.dumps({"events": ev}))
        cpu0 = cpu_seconds(p.pid)
        if CLIENT == "python":
            dt, ccpu = post_python(url, token, bodies)
        else:
            dt, ccpu = post_c(url, token, bodies, data)
        t_end = time.perf_counter()
        cpu = cpu_seconds(p.pid) - cpu0
        catch_up = consumers_caught_up(url) - t_end
        cpu_all = cpu_seconds(p.pid) - cpu0
        p.terminate()
        p.wait()
        con = sqlite3.connect(os.path.join(data, "encore.db"))
        n, d = con.execute("SELECT count(*), count(DISTINCT event_id) FROM event_log").fetchone()
        con.close()
        assert n == d == BATCHES * BATCH, (n, d)
        k = 100000.0 / (BATCHES * BATCH)
        return BATCHES * BATCH / dt, rows, cpu * k, catch_up, cpu_all * k, ccpu * k
    finally:
        shutil.rmtree(data, ignore_errors=True)


def run_peer(rows):
    """sqlite3 CLI: the same table (UNIQUE event_id), WAL, synchronous=NORMAL, one transaction."""
    d = tempfile.mkdtemp(prefix="encore-bench-sqlite-")
    try:
        sql = os.path.join(d, "load.sql")
        with open(sql, "w") as f:
            f.write("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;\n"
                    "CREATE TABLE event_log (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, user_id TEXT NOT NULL,"
                    " country TEXT NOT NULL, type TEXT NOT NULL, ts INTEGER NOT NULL, received_at INTEGER NOT NULL,"
                    " uri TEXT NOT NULL, ms_played INTEGER, bitrate INTEGER, position_ms INTEGER, context TEXT, reason TEXT);\n"
                    "BEGIN;\n")
            for e in rows:
                f.write("INSERT INTO event_log(event_id,user_id,country,type,ts,received_at,uri,ms_played,bitrate)"
                        " VALUES('%s','bench','US','%s',%d,%d,'%s',%d,%d) ON CONFLICT(event_id) DO NOTHING;\n"
                        % (e["id"], e["type"], e["ts"], e["ts"], e["uri"], e["ms_played"], e["bitrate"]))
            f.write("COMMIT;\n")
        t0 = time.perf_counter()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(sql) as f:
            subprocess.run(["sqlite3", os.path.join(d, "peer.db")], stdin=f, check=True, stdout=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        return len(rows) / dt, cpu * 100000.0 / len(rows)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    enc, peer, ingest_cpu, catch, all_cpu, client_cpu_, peer_cpu = [], [], [], [], [], [], []
    load0 = os.getloadavg()[0]
    for run in range(RUNS):
        rate, rows, cpu, cu, cpu_all, ccpu = run_encore(run)
        prate, pcpu = run_peer(rows)
        for lst, v in ((enc, rate), (peer, prate), (ingest_cpu, cpu), (catch, cu), (all_cpu, cpu_all),
                       (client_cpu_, ccpu), (peer_cpu, pcpu)):
            lst.append(v)
        print("run %d: encored %.0f events/s, sqlite3 CLI %.0f events/s (%.2fx); CPU-s per 100k events: encored"
              " %.2f during ingest, %.2f until the consumers caught up (%.2f s after the last answer),"
              " sqlite3 CLI %.2f, load generator (%s) %.2f; load average %.2f"
              % (run + 1, rate, prate, rate / prate, cpu, cpu_all, cu, pcpu, CLIENT, ccpu, os.getloadavg()[0]))
        sys.stdout.flush()
    e, pv = statistics.median(enc), statistics.median(peer)
    print("encored: median %.0f events/s (batches of %d, %d connections, %s load generator, server on %s,"
          " exactly-once check on)" % (e, BATCH, CLIENTS, CLIENT,
                                      "cpus " + SERVER_CPUS if SERVER_CPUS else "all %d cpus (too few to pin)" % ncpu))
    print("encored CPU-seconds per 100k events: median %.2f during ingest, %.2f including the consumers;"
          " consumers finished the log a median %.2f s after the last batch was acknowledged"
          % (statistics.median(ingest_cpu), statistics.median(all_cpu), statistics.median(catch)))
    print("load generator: median %.2f CPU-seconds per 100k events" % statistics.median(client_cpu_))
    print("sqlite3 CLI bulk INSERT, one transaction: median %.0f events/s; ratio of medians %.2f"
          % (pv, e / pv))
    print("CPU-seconds per 100k events (steadier than events/s on a shared machine): encored %.2f during ingest,"
          " %.2f with the consumers; sqlite3 CLI %.2f (encored/peer %.2f and %.2f)"
          % (statistics.median(ingest_cpu), statistics.median(all_cpu), statistics.median(peer_cpu),
             statistics.median(ingest_cpu) / statistics.median(peer_cpu),
             statistics.median(all_cpu) / statistics.median(peer_cpu)))
    print("load average (1 min): %.2f at start, %.2f at end" % (load0, os.getloadavg()[0]))
    print("goal: >= %d events/s: %s" % (GOAL, "met" if e >= GOAL else "NOT met"))
    print("BENCH\tevents_ingest\tevents_per_s_higher_better\t%.0f\tsqlite3-cli-bulk\t%.0f\t%.3f\t>=%d/s"
          % (e, pv, e / pv, GOAL))


if __name__ == "__main__":
    main()
