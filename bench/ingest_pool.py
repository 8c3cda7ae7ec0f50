"""Part of bench/transcode.sh: the ingest worker pool's speedup on this machine's cores.

K demo tracks are synthesized and queued once (`encored seed-demo --no-wait`, no
transcoding); each run copies that data directory and starts `encored serve
--ingest-workers N`, timing from the spawn until every track is ready (SQLite polled
every 20 ms). Runs alternate N = 1 and N = 2; medians. Each job (analysis, loudness,
four renditions) runs on one worker thread, so the pool is the only parallelism."""
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time

import benchlib as B

RUNS = 1 if B.QUICK else 3
TRACKS, SECONDS = (4, 5) if B.QUICK else (6, 15)


def pending(data):
    con = sqlite3.connect(os.path.join(data, "encore.db"), timeout=30)
    try:
        return con.execute("SELECT count(*) FROM tracks WHERE state NOT IN ('ready', 'failed')").fetchone()[0]
    finally:
        con.close()


def one_run(tmpl, work, n):
    data = os.path.join(work, "run")
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(tmpl, data)
    t0 = time.monotonic()
    p = subprocess.Popen([B.ENCORED, "serve", "--data", data, "--listen", "127.0.0.1:0", "--ingest-workers", str(n)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while pending(data):
            if p.poll() is not None:
                raise SystemExit("ingest_pool: encored exited %d" % p.returncode)
            if time.monotonic() - t0 > 1800:
                raise SystemExit("ingest_pool: not done after 30 min")
            time.sleep(0.02)
        t = time.monotonic() - t0
        failed = sqlite3.connect(os.path.join(data, "encore.db")).execute(
            "SELECT count(*) FROM tracks WHERE state = 'failed'").fetchone()[0]
        if failed:
            raise SystemExit("ingest_pool: %d tracks failed" % failed)
        return t
    finally:
        p.terminate()
        p.wait()


def main():
    B.say_load("ingest_pool")
    work = tempfile.mkdtemp(prefix="bench-ingest-")
    try:
        tmpl = os.path.join(work, "tmpl")
        subprocess.run([B.ENCORED, "seed-demo", "--data", tmpl, "--tracks", str(TRACKS), "--seconds", str(SECONDS),
                        "--episodes", "0", "--no-wait"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if pending(tmpl) != TRACKS:
            raise SystemExit("ingest_pool: expected %d queued tracks, found %d" % (TRACKS, pending(tmpl)))
        B.say("ingest pool: %d tracks x %d s queued, time to all ready, %d runs each (medians), %d cores",
              TRACKS, SECONDS, RUNS, os.cpu_count())
        res = {1: [], 2: []}
        for run in range(RUNS):
            for n in (1, 2):
                t = one_run(tmpl, work, n)
                res[n].append(t)
                B.say("  run %d  --ingest-workers %d: %.2f s", run + 1, n, t)
        one, two = B.median(res[1]), B.median(res[2])
        B.say("  median: 1 worker %.2f s, 2 workers %.2f s, speedup %.2fx", one, two, one / two)
        B.bench_line("ingest_pool_2w", "s_lower_better", two, "1-worker", one, "<= 0.6 (>= 1.7x on 2 cores)")
    finally:
        B.say_load("ingest_pool (end)")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
