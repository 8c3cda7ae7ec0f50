"""The ingest pipeline through the real encored: CLI and admin-route ingest of WAV and
FLAC sources, refusal of bad files with nothing half-written, the four-rung ladder and
its sizes, loudness gain, audio features, and jobs that survive a restart."""
import glob
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from audio import wav_bytes, signal, write_flac, write_wav  # noqa: E402
from harness import ENCORED, Server, Tap, expect, wait_for  # noqa: E402

NOMINAL_KB_PER_MIN = {24: 180, 96: 720, 160: 1200, 320: 2400}


def q(data, sql, *args):
    con = sqlite3.connect(os.path.join(data, "encore.db"))
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def objects(data):
    return sorted(p for p in glob.glob(os.path.join(data, "objects", "*", "*")))


def ingest_cli(data, path, *extra, title="Song", artist="Artist", album="Album"):
    return subprocess.run([ENCORED, "ingest", "--data", data, path, "--title", title, "--artist", artist,
                           "--album", album] + list(extra), capture_output=True, text=True, timeout=600)


def test_cli_ingests_wav_and_flac_variants_into_four_renditions():
    data = tempfile.mkdtemp(prefix="ingest-")
    tmp = tempfile.mkdtemp(prefix="src-")
    cases = [
        ("s16-stereo-44k", write_wav(os.path.join(tmp, "a.wav"), 6, 44100, 2, 16)),
        ("s24-mono-48k", write_wav(os.path.join(tmp, "b.wav"), 6, 48000, 1, 24, seed=2)),
        ("float-stereo-48k", write_wav(os.path.join(tmp, "c.wav"), 6, 48000, 2, fmt="float", seed=3)),
        ("flac-stereo-44k", write_flac(os.path.join(tmp, "d.flac"), 6, 44100, 2, seed=4)),
    ]
    for name, path in cases:
        r = ingest_cli(data, path, "--markets", "SE,US", "--genre", "jazz", "--release-date", "2024-05-01",
                       title=name)
        expect(r.returncode, 0, "ingest %s: %s" % (name, r.stderr))
        assert "ingested encore:track:" in r.stdout, r.stdout
    rows = q(data, "SELECT name, state, markets, duration_ms FROM tracks ORDER BY name")
    expect([(n, s) for n, s, _, _ in rows], sorted((n, "ready") for n, _ in cases), "tracks")
    for name, state, markets, dur in rows:
        expect(markets, "SE,US", name + " markets")
        assert abs(dur - 6000) <= 1, (name, dur)
    for (tid, name) in q(data, "SELECT id, name FROM tracks"):
        rungs = q(data, "SELECT bitrate, segment_count, channels FROM renditions WHERE content_id = ? ORDER BY bitrate", tid)
        expect([b for b, _, _ in rungs], [24, 96, 160, 320], name + " ladder")
        # 6 s in 4 s segments: 2 segments, same boundaries in every rendition.
        expect({n for _, n, _ in rungs}, {2}, name + " segment count")
        expect(rungs[0][2], 1, name + " low rung is mono")
        nseg = q(data, "SELECT count(*) FROM segments WHERE content_id = ?", tid)[0][0]
        expect(nseg, 8, name + " segment rows")
    for h in [r[0] for r in q(data, "SELECT hash FROM segments")]:
        assert os.path.exists(os.path.join(data, "objects", h[:2], h[2:])), "missing object " + h
    jobs = q(data, "SELECT state, count(*), max(attempts) FROM ingest_jobs GROUP BY state")
    expect(jobs, [("done", 4, 1)], "jobs")


def test_bad_files_are_refused_and_leave_nothing_behind():
    data = tempfile.mkdtemp(prefix="ingest-")
    tmp = tempfile.mkdtemp(prefix="src-")
    good = wav_bytes(signal(3, 44100, 2))
    cases = {
        "empty": (b"", "empty"),
        "text": (b"hello, this is not audio at all\n" * 20, "not a WAV or FLAC"),
        "truncated": (good[: len(good) // 3], "truncated"),
        "corrupt header": (good[:20] + b"\xff" * 24 + good[44:], ""),
        "22 kHz": (wav_bytes(signal(3, 22050, 2), rate=22050), "22050"),
        "too short": (wav_bytes(signal(1, 44100, 2)), "shorter than 2 seconds"),
        "bad flac": (b"fLaC" + b"\x00" * 200, ""),
    }
    # Make sure the data dir exists with its schema before counting.
    ok = write_wav(os.path.join(tmp, "ok.wav"), 3)
    expect(ingest_cli(data, ok, title="ok").returncode, 0, "baseline ingest")
    before = objects(data)
    for what, (blob, msg) in cases.items():
        p = os.path.join(tmp, what.replace(" ", "_") + ".wav")
        with open(p, "wb") as f:
            f.write(blob)
        r = ingest_cli(data, p, title=what)
        assert r.returncode != 0, "%s accepted" % what
        assert r.stderr.strip() and "\n" not in r.stderr.strip(), "%s: want one clear line, got %r" % (what, r.stderr)
        assert msg in r.stderr, "%s: expected %r in %r" % (what, msg, r.stderr)
    expect(q(data, "SELECT count(*) FROM tracks")[0][0], 1, "tracks after refusals")
    expect(q(data, "SELECT count(*) FROM ingest_jobs")[0][0], 1, "jobs after refusals")
    expect(objects(data), before, "object store after refusals")
    r = ingest_cli(data, ok, "--markets", "sweden", title="bad markets")
    assert r.returncode != 0 and "markets" in r.stderr, r.stderr
    r = ingest_cli(data, ok, "--release-date", "yesterday", title="bad date")
    assert r.returncode != 0 and "release date" in r.stderr, r.stderr
    expect(objects(data), before, "object store after metadata refusals")
    expect(q(data, "PRAGMA integrity_check")[0][0], "ok", "integrity")


def test_admin_route_ingests_and_reports_progress(srv):
    admin = srv.login("admin")
    body = wav_bytes(signal(5, 48000, 2, seed=9), rate=48000)
    st, job, _ = admin.req("POST", "/v1/admin/ingest?title=Uploaded&artist=Uploader&album=API%20Album&genre=rock&explicit=true",
                           body, headers={"Content-Type": "audio/wav"})
    expect(st, 202, "upload: %r" % (job,))
    assert job["uri"].startswith("encore:track:") and job["state"] in ("queued", "running", "done"), job
    wait_for(lambda: admin.get("/v1/admin/ingest/%d" % job["id"])[1]["state"] in ("done", "failed"),
             timeout=300, what="ingest job")
    st, j, _ = admin.get("/v1/admin/ingest/%d" % job["id"])
    expect((j["state"], j["progress"], j["error"]), ("done", 1, None), "finished job")
    tid = job["uri"].split(":")[2]
    st, t, _ = srv.login("alice").get("/v1/tracks/" + tid)
    expect((st, t["name"], t["explicit"]), (200, "Uploaded", True), "uploaded track")
    st, f, _ = admin.get("/v1/audio-features/" + tid)
    expect(st, 200, "features of the uploaded track")
    for k in ("tempo", "key", "mode", "energy", "danceability", "acousticness", "instrumentalness",
              "speechiness", "valence", "liveness", "loudness", "time_signature"):
        assert k in f, "features lack " + k
    # Refusals: non-admin, bad audio, missing metadata, bad flags.
    expect(srv.login("alice").req("POST", "/v1/admin/ingest?title=a&artist=b&album=c", body)[0], 403, "non-admin")
    st, e, _ = admin.req("POST", "/v1/admin/ingest?title=a&artist=b&album=c", b"garbage" * 100)
    expect(st, 400, "garbage upload")
    assert "WAV or FLAC" in e["error"]["message"], e
    expect(admin.req("POST", "/v1/admin/ingest?title=a&album=c", body)[0], 400, "missing artist")
    expect(admin.req("POST", "/v1/admin/ingest?title=a&artist=b&album=c&explicit=maybe", body)[0], 400, "bad explicit")
    expect(admin.get("/v1/admin/ingest/999999")[0], 404, "unknown job")


def test_loudness_gain_targets_minus_14_without_lifting_true_peak_above_minus_1(srv):
    rows = q(srv.data, "SELECT loudness_lufs, true_peak_db, gain_db FROM tracks WHERE state = 'ready'")
    assert rows, "no ready tracks"
    for lufs, tp, gain in rows:
        want = min(-14.0 - lufs, -1.0 - tp)
        assert abs(gain - want) < 1e-6, (lufs, tp, gain, want)
        assert tp + gain <= -1.0 + 1e-6, "true peak after gain %.2f" % (tp + gain)


def test_demo_catalog_sizes_per_minute_within_15_percent(srv):
    rows = q(srv.data, "SELECT r.bitrate, sum(r.bytes - r.init_size), sum(t.duration_ms) FROM renditions r"
                       " JOIN tracks t ON t.id = r.content_id GROUP BY r.bitrate")
    expect(sorted(b for b, _, _ in rows), [24, 96, 160, 320], "ladder")
    for kbps, nbytes, ms in rows:
        per_min = nbytes / 1024.0 / (ms / 60000.0)
        err = per_min / NOMINAL_KB_PER_MIN[kbps] - 1
        print("# %3d kbps: %.0f KB/min (%+.1f%% of %d)" % (kbps, per_min, err * 100, NOMINAL_KB_PER_MIN[kbps]))
        assert abs(err) <= 0.15, "%d kbps: %.0f KB/min is %+.1f%% off" % (kbps, per_min, err * 100)


def test_demo_catalog_has_genres_artists_and_a_podcast(srv):
    genres = {g for (g,) in q(srv.data, "SELECT DISTINCT genre FROM tracks")}
    assert len(genres) >= 6, genres
    artists = q(srv.data, "SELECT count(*) FROM artists")[0][0]
    assert artists >= 12, artists
    names = [n for (n,) in q(srv.data, "SELECT name FROM artists")]
    assert any(any(ord(ch) > 0x3000 for ch in n) for n in names), "no CJK artist"
    assert any(any(0xC0 <= ord(ch) <= 0x17F for ch in n) for n in names), "no accented artist"
    eps = q(srv.data, "SELECT state, count(*) FROM episodes GROUP BY state")
    expect(eps, [("ready", 1)], "episodes")
    rungs = q(srv.data, "SELECT bitrate, channels FROM renditions WHERE content_id IN (SELECT id FROM episodes)")
    expect(sorted(rungs), [(24, 1), (96, 1)], "podcast ladder (mono speech)")
    pops = sorted((p for (p,) in q(srv.data, "SELECT popularity FROM tracks")), reverse=True)
    assert pops[0] >= 4 * pops[len(pops) // 2], "popularity not Zipf-like: %r" % pops
    assert q(srv.data, "SELECT count(*) FROM tracks WHERE explicit = 1")[0][0] > 0, "no explicit track"
    assert q(srv.data, "SELECT count(*) FROM tracks WHERE markets != ''")[0][0] > 0, "no market restriction"


def test_features_match_the_generators_tempo(srv):
    # seed-demo's plan gives each track a tempo; the analyser must find it within 2%
    # for most tracks (the unit tests assert the per-genre accuracy).
    rows = q(srv.data, "SELECT tempo FROM audio_features")
    assert len(rows) >= 12 and all(60 <= t <= 200 for (t,) in rows), rows


def test_unfinished_jobs_resume_after_restart_and_complete_once():
    data = tempfile.mkdtemp(prefix="ingest-")
    tmp = tempfile.mkdtemp(prefix="src-")
    subprocess.run([ENCORED, "seed-demo", "--data", data, "--tracks", "0", "--episodes", "0"], check=True,
                   stdout=subprocess.DEVNULL)
    for i in range(3):
        r = ingest_cli(data, write_wav(os.path.join(tmp, "%d.wav" % i), 4, seed=i), "--no-wait", title="queued %d" % i)
        expect(r.returncode, 0, r.stderr)
    # Pretend a crashed server left one job running: its owner pid no longer exists.
    con = sqlite3.connect(os.path.join(data, "encore.db"))
    con.execute("UPDATE ingest_jobs SET state = 'running', owner = 'pid:999999', attempts = 1 WHERE id = 1")
    con.commit()
    con.close()
    expect(q(data, "SELECT state, count(*) FROM ingest_jobs GROUP BY state"), [("queued", 2), ("running", 1)], "before")
    with Server(["--ingest-workers", "2"], seed=False, data=data) as s:
        wait_for(lambda: q(data, "SELECT count(*) FROM ingest_jobs WHERE state = 'done'")[0][0] == 3,
                 timeout=300, what="jobs to finish after restart")
    expect(q(data, "SELECT state, count(*) FROM ingest_jobs GROUP BY state"), [("done", 3)], "after")
    expect(q(data, "SELECT id, attempts FROM ingest_jobs ORDER BY id"), [(1, 2), (2, 1), (3, 1)], "attempts")
    expect(q(data, "SELECT count(*) FROM renditions")[0][0], 12, "one set of renditions per track")
    expect(q(data, "SELECT count(*), count(DISTINCT content_id || bitrate || idx) FROM segments")[0], (12, 12), "segments once")


def test_lazy_catalog_becomes_playable_on_demand_lowest_rung_first():
    data = tempfile.mkdtemp(prefix="lazy-")
    r = subprocess.run([ENCORED, "seed-demo", "--data", data, "--tracks", "6", "--seconds", "20", "--episodes", "0",
                        "--lazy"], capture_output=True, text=True, timeout=600)
    expect(r.returncode, 0, r.stderr)
    expect(q(data, "SELECT state, count(*) FROM tracks GROUP BY state"), [("pending", 6)], "nothing transcoded yet")
    # The least popular track is last in the queue; a listener asking for it moves it first.
    tid = q(data, "SELECT id FROM tracks ORDER BY popularity ASC LIMIT 1")[0][0]
    with Server(["--ingest-workers", "1"], seed=False, data=data) as s:
        c = s.login("alice")
        t0 = time.monotonic()
        # The first request is held until the lowest rung's segment 0 exists (test_ondemand);
        # a client that did not ask for partial manifests gets whole rungs only, so it may be
        # told 503 `transcoding` until the first rung is complete.
        st, e, _ = c.get("/v1/playback/" + tid)
        assert st == 200 or (st, e["error"]["reason"]) == (503, "transcoding"), (st, e)
        m = wait_for(lambda: (lambda r: r[1] if r[0] == 200 else None)(c.get("/v1/playback/" + tid)),
                     timeout=120, what="first rung on demand")
        took = time.monotonic() - t0
        print("# on-demand: first audio servable %.0f ms after the first request (rungs %r, complete %r)"
              % (took * 1000, m["bitrates"], m["complete"]))
        expect(m["bitrates"][0], 24, "lowest rung first")
        pending = q(data, "SELECT count(*) FROM tracks WHERE state = 'pending'")[0][0]
        assert pending >= 3, "the requested track jumped the queue (%d still pending)" % pending
        m = wait_for(lambda: (lambda r: r[1] if r[1].get("complete") else None)(c.get("/v1/playback/" + tid)),
                     timeout=300, what="the rest of the ladder")
        expect(m["bitrates"], [24, 96, 160, 320], "full ladder afterwards")


if __name__ == "__main__":
    tap = Tap()
    for t in (test_cli_ingests_wav_and_flac_variants_into_four_renditions,
              test_bad_files_are_refused_and_leave_nothing_behind,
              test_unfinished_jobs_resume_after_restart_and_complete_once,
              test_lazy_catalog_becomes_playable_on_demand_lowest_rung_first):
        tap.run(t)
    with Server() as shared:
        for t in (test_admin_route_ingests_and_reports_progress,
                  test_loudness_gain_targets_minus_14_without_lifting_true_peak_above_minus_1,
                  test_demo_catalog_sizes_per_minute_within_15_percent,
                  test_demo_catalog_has_genres_artists_and_a_podcast,
                  test_features_match_the_generators_tempo):
            tap.run(t, shared)
    tap.done()
