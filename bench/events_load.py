"""Load generator for bench/events.sh: pre-renders batches of 100 events and posts them
from client processes (kept off encored's two cores) over keep-alive connections."""
import http.client
import json
import multiprocessing as mp
import os
import random
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
        parts = [(url.hostname, url.port, token, bodies[i::CLIENTS]) for i in range(CLIENTS)]
        with mp.Pool(CLIENTS) as pool:
            t0 = time.perf_counter()
            pool.map(client, parts)
            dt = time.perf_counter() - t0
        cpu = cpu_seconds(p.pid)
        catch_up = consumers_caught_up(url) - t0 - dt
        p.terminate()
        p.wait()
        con = sqlite3.connect(os.path.join(data, "encore.db"))
        n, d = con.execute("SELECT count(*), count(DISTINCT event_id) FROM event_log").fetchone()
        con.close()
        assert n == d == BATCHES * BATCH, (n, d)
        return BATCHES * BATCH / dt, rows, BATCHES * BATCH / cpu, catch_up
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
        with open(sql) as f:
            subprocess.run(["sqlite3", os.path.join(d, "peer.db")], stdin=f, check=True, stdout=subprocess.DEVNULL)
        return len(rows) / (time.perf_counter() - t0)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    enc, peer, percpu, catch = [], [], [], []
    for run in range(RUNS):
        rate, rows, pc, cu = run_encore(run)
        percpu.append(pc)
        catch.append(cu)
        prate = run_peer(rows)
        enc.append(rate)
        peer.append(prate)
        print("run %d: encored %.0f events/s (%.0f per CPU-second of encored during ingest), consumers caught up"
              " %.2f s later, sqlite3 CLI %.0f events/s" % (run + 1, rate, pc, cu, prate))
        sys.stdout.flush()
    e, pv = statistics.median(enc), statistics.median(peer)
    print("encored: median %.0f events/s (batches of %d, %d clients, server on %s, exactly-once check on)"
          % (e, BATCH, CLIENTS, "cpus " + SERVER_CPUS if SERVER_CPUS else "all %d cpus (too few to pin)" % ncpu))
    print("encored CPU during ingest: median %.0f events per CPU-second; consumers finished the log a median"
          " %.2f s after the last batch was acknowledged" % (statistics.median(percpu), statistics.median(catch)))
    print("sqlite3 CLI bulk INSERT, one transaction: median %.0f events/s" % pv)
    print("goal: >= %d events/s: %s" % (GOAL, "met" if e >= GOAL else "NOT met"))
    print("BENCH\tevents_ingest\tevents_per_s_higher_better\t%.0f\tsqlite3-cli-bulk\t%.0f\t%.3f\t>=%d/s"
          % (e, pv, e / pv, GOAL))


if __name__ == "__main__":
    main()
