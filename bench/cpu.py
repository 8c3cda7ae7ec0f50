"""bench/cpu.sh: CPU seconds (user+sys, from wait4's rusage) and peak RSS for playing a
60 s track at 320 kbps to a null output, encore against ogg123.

Fair comparison: both run non-realtime, as fast as they decode, over HTTP from the same
machine: `encore play URI --quality 320 --output null` from encored (signed segments,
ABR, gain and limiter included), and `ogg123 -d null URL` on a plain Ogg Vorbis file
encoded from the same source WAV at the same managed bitrate (oggenc -b 320 -m 288),
served by nginx. Medians of RUNS runs, interleaved. The whole process is counted (start-up,
network, decode, output, tear-down) for both.

Also reported, not compared: one realtime run of encore (`--output null:realtime`, 60 s
of wall time), which is what a listener's session costs (wake-ups, prefetch buffer)."""
import os
import shutil
import subprocess
import tempfile

import benchlib as B

RUNS = 2 if B.QUICK else 5
SECONDS = 10 if B.QUICK else 60
KBPS = 320


def main():
    B.say_load("cpu")
    work = tempfile.mkdtemp(prefix="bench-cpu-")
    srv = B.seeded_server(1, SECONDS)
    ngx = None
    try:
        tid, src, dur = B.db(srv, "SELECT id, source_hash, duration_ms FROM tracks WHERE state = 'ready'")[0]
        www = os.path.join(work, "www")
        os.makedirs(www)
        subprocess.run(["oggenc", "-Q", "-b", str(KBPS), "-m", str(KBPS * 9 // 10), "-o", os.path.join(www, "t.ogg"),
                        B.object_path(srv.data, src)], check=True)
        ngx = B.Nginx(www)
        cli = B.harness.Cli(srv.url, "alice")
        enc_argv = [B.ENCORE, "play", "encore:track:" + tid, "--quality", str(KBPS), "--output", "null", "--json"]
        ogg_argv = ["ogg123", "-q", "-d", "null", ngx.url + "/t.ogg"]
        B.say("cpu: %.0f s track at %d kbps, non-realtime to null, %d runs each (medians)", dur / 1000, KBPS, RUNS)
        res = {"encore": [], "ogg123": []}
        low = 0
        for run in range(RUNS + 1):
            for name, argv, env in (("encore", enc_argv, cli.env), ("ogg123", ogg_argv, None)):
                if name == "encore":
                    shutil.rmtree(os.path.join(cli.tmp, "cache"), ignore_errors=True)
                wall, cpu, rss, rc, out = B.rusage_run(argv, env=env)
                if rc != 0:
                    raise SystemExit("cpu: %s exited %d" % (name, rc))
                if name == "encore":
                    ev = B.events(out)
                    below = [e for e in ev if e.get("event") in ("started", "bitrate_changed") and e["bitrate_kbps"] < KBPS]
                    if below and run:
                        low += 1
                    if not any(e.get("event") == "ended" for e in ev):
                        raise SystemExit("cpu: encore did not play to the end")
                if run == 0:
                    continue  # warm-up
                res[name].append((wall, cpu, rss))
                B.say("  run %d %-7s wall %6.3f s  cpu %6.3f s  rss %6.1f MB", run, name, wall, cpu, rss / 1024)
        if low:
            B.say("  note: in %d of %d encore runs ABR fetched some segments below %d kbps", low, RUNS, KBPS)
        med = {k: (B.median([r[0] for r in v]), B.median([r[1] for r in v]), B.median([r[2] for r in v]))
               for k, v in res.items()}
        for k in ("encore", "ogg123"):
            B.say("  median %-7s wall %6.3f s  cpu %6.3f s  rss %6.1f MB", k, med[k][0], med[k][1], med[k][2] / 1024)
        rt = None
        if not B.QUICK:
            shutil.rmtree(os.path.join(cli.tmp, "cache"), ignore_errors=True)
            rt = B.rusage_run(enc_argv[:-2] + ["null:realtime", "--json"], env=cli.env)
            B.say("  encore realtime (null:realtime, 1 run): wall %.1f s  cpu %.3f s  rss %.1f MB", rt[0], rt[1], rt[2] / 1024)
        B.bench_line("cpu_play_60s_320k", "cpu_s_lower_better", med["encore"][1], "ogg123", med["ogg123"][1], "<= 1.2")
        B.bench_line("cpu_play_60s_320k", "peak_rss_MB_lower", med["encore"][2] / 1024, "ogg123", med["ogg123"][2] / 1024,
                     "encore < 16 MB")
        if rt:
            B.bench_line("cpu_play_realtime", "peak_rss_MB_lower", rt[2] / 1024, "ogg123", med["ogg123"][2] / 1024,
                         "encore < 16 MB")
    finally:
        B.say_load("cpu (end)")
        if ngx:
            ngx.stop()
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
        if not os.environ.get("KEEP_DATA"):
            shutil.rmtree(srv.data, ignore_errors=True)


if __name__ == "__main__":
    main()
