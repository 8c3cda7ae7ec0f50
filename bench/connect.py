"""Connect transfer bench (issue 11).

Two `encore play` devices (Alpha, Beta) on `wav:FILE:realtime` at a fixed quality, one
encored, and N transfers back and forth, each after ~1.5 s of playing. Every hand-over is
measured from the two WAV files (frame i is heard i/44100 s after FILE.t0, so the files line
up): the gap between the source's last sample and the target's first (negative: an
overlap), and the position error (the target's first frame against the source's last,
located in a reference decode of the track; decoding is bit-exact). Goals: gap < 150 ms,
overlap < 50 ms, position error < 100 ms.

Peer: a cold `encore play --seek S` at the same positions, its engine-reported first audio
(play command to first sample at the output). A transfer without a prepared target could not
beat that, so ratio < 1 is what preparing buys."""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402
from test_connect import FRAME, W, Wav, first_sound, measure_handover  # noqa: E402

Cli, wait_for = B.harness.Cli, B.harness.wait_for


def main():
    n = 4 if B.QUICK else 12
    B.say_load("connect: start")
    srv = B.seeded_server(tracks=8, seconds=60)
    procs, clis = [], []
    try:
        api = srv.login("alice")
        t = [r[0] for r in B.db(srv, "SELECT 'encore:track:' || id FROM tracks WHERE markets = '' AND explicit = 0"
                                      " ORDER BY id LIMIT 2")]
        a, b, c = clis = [Cli(srv.url, "alice"), Cli(srv.url, "alice"), Cli(srv.url, "alice")]
        wa, wb = Wav(os.path.join(a.tmp, "out.wav")), Wav(os.path.join(b.tmp, "out.wav"))

        def devices():
            return {d["name"]: d for d in api.get("/v1/me/player/devices")[1]["devices"]}

        def player():
            st, body, _ = api.get("/v1/me/player")
            return body if st == 200 else {}

        procs.append(a.spawn("play", t[0], "--output", "wav:%s:realtime" % wa.path, "--quality", "160",
                             "--device-name", "Alpha"))
        wait_for(lambda: devices().get("Alpha", {}).get("is_active"), 120, "Alpha active")
        procs.append(b.spawn("play", t[1], "--output", "wav:%s:realtime" % wb.path, "--quality", "160",
                             "--device-name", "Beta"))
        wait_for(lambda: devices().get("Beta", {}).get("is_active") and player().get("is_playing"), 120, "Beta active")
        ref_path = os.path.join(c.tmp, "ref.wav")
        rc, _, err = c.run("play", t[1], "--output", "wav:" + ref_path, "--quality", "160", "--no-connect", "--no-control")
        if rc != 0:
            raise SystemExit("connect: reference decode failed: %s" % err)
        with open(ref_path, "rb") as f:
            ref = f.read()[44:]
        names, wavs = ["Beta", "Alpha"], [wb, wa]
        gaps, errs, positions = [], [], []
        for i in range(n):
            time.sleep(1.5)  # let the source play; a bench may pace itself
            src, dst = i % 2, 1 - i % 2
            dev = devices()[names[dst]]["id"]
            t_req = time.time()
            st, body, _ = api.req("PUT", "/v1/me/player", {"device_ids": [dev], "play": True})
            if st != 204:
                raise SystemExit("connect: transfer refused: %r %r" % (st, body))
            wait_for(lambda: (lambda f: f is not None and f + W <= len(wavs[dst].data()) // FRAME)(
                first_sound(wavs[dst].data(), wavs[dst].index(t_req))), 120, "%s's audio" % names[dst])
            wait_for(lambda: (lambda p: p.get("device", {}).get("name") == names[dst] and not p["transfer_pending"])(
                player()), 120, "hub on %s" % names[dst])
            gap, err, ps, pt = measure_handover(ref, wavs[src], wavs[dst], t_req)
            gaps.append(gap)
            errs.append(err)
            positions.append(ps)
            B.say("connect: %s -> %s at %.0f ms of the track: gap %+.1f ms, position error %+.1f ms",
                  names[src], names[dst], ps, gap, err)
        # The peer: cold starts at the same positions, one player each, same quality and sink kind.
        cold = []
        for k, ps in enumerate(positions):
            path = os.path.join(c.tmp, "cold-%d.wav" % k)
            r = subprocess.run([B.ENCORE, "play", t[1], "--seek", "%.3f" % (ps / 1000), "--duration", "0.5",
                                "--output", "wav:%s:realtime" % path, "--quality", "160", "--no-connect",
                                "--no-control", "--json"], env=c.env, capture_output=True, text=True, timeout=120)
            ev = [e for e in B.events(r.stdout) if e.get("event") == "started" and "first_audio_ms" in e]
            if r.returncode != 0 or not ev:
                raise SystemExit("connect: cold start failed: %r" % (r,))
            cold.append(ev[0]["first_audio_ms"])
        med_gap, med_cold = B.median(gaps), B.median(cold)
        worst_overlap = max([-g for g in gaps] + [0.0])
        worst_err = max(abs(e) for e in errs)
        B.say("connect: %d transfers: gap median %.1f ms (max %.1f), worst overlap %.1f ms, position error median"
              " %+.1f ms (worst |%.1f| ms); cold start at the same positions: median %.1f ms first audio",
              n, med_gap, max(gaps), worst_overlap, B.median(errs), worst_err, med_cold)
        B.say("connect: goals: gap < 150 ms %s, overlap < 50 ms %s, position error < 100 ms %s",
              "met" if max(gaps) < 150 else "NOT met (max)" if med_gap < 150 else "NOT met",
              "met" if worst_overlap < 50 else "NOT met", "met" if worst_err < 100 else "NOT met")
        B.say_load("connect: end")
        B.bench_line("connect_transfer", "gap_ms_lower_better", med_gap, "cold_start_first_audio", med_cold,
                     "gap<150 overlap<50 poserr<100")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        srv.__exit__(None, None, None)
        for cli in clis:
            shutil.rmtree(cli.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
