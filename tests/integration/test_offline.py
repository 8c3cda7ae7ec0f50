"""Offline downloads through the real encored and the real encore: licences sealed to a
device, encrypted resumable downloads, offline playback with the server stopped,
revocation on downgrade and device removal, limits, tampering and copied folders."""
import json
import math
import os
import shutil
import signal
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Cli, expect, query as q, read_wav, Server, Tap, wait_for  # noqa: E402

RATE = 44100


def plain_tracks(srv, n, offset=0):
    return q(srv, "SELECT 'encore:track:' || id, duration_ms FROM tracks WHERE markets = '' AND explicit = 0"
                  " AND state = 'ready' ORDER BY id LIMIT ? OFFSET ?", n, offset)


def store(cli):
    return os.path.join(cli.tmp, "data", "offline")


def lines(out):
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def ls(cli):
    rc, so, se = cli.run("offline", "ls", "--json")
    expect(rc, 0, "offline ls: " + se)
    return json.loads(so)["tracks"]


def enc_files(cli):
    out = []
    for root, _, files in os.walk(store(cli)):
        out += [os.path.join(root, f) for f in files if f.endswith(".enc")]
    return sorted(out)


def entropy(b):
    counts = [0] * 256
    for x in b:
        counts[x] += 1
    return -sum(c / len(b) * math.log2(c / len(b)) for c in counts if c)


def test_download_killed_midway_resumes_and_verifies():
    with Server() as srv:
        admin = srv.login("admin")
        cli = Cli(srv.url, "alice")
        uris = [t[0] for t in plain_tracks(srv, 6)]
        # Slow CDN answers, so the kill lands mid-download.
        st, _, _ = admin.req("POST", "/v1/admin/faults", {"latency_ms": 150})
        expect(st, 200, "faults")
        p = cli.spawn("download", "--json", *uris)
        seen = []

        def progressed():
            line = p.stdout.readline()
            if line.startswith("{"):
                seen.append(json.loads(line))
            return sum(1 for e in seen if e["event"] == "downloaded") >= 2 and seen[-1]["event"] == "progress" and seen[-1]["done"] >= 1
        wait_for(progressed, timeout=120, what="two tracks and part of a third")
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        before = {}
        for e in seen:
            before[e["uri"]] = max(before.get(e["uri"], 0), e["done"])
        admin.req("POST", "/v1/admin/faults", {"latency_ms": 0})
        rc, so, se = cli.run("download", "--json", *uris)
        expect(rc, 0, "resume: " + se)
        ev = lines(so)
        fin = {e["uri"]: e for e in ev if e["event"] == "downloaded"}
        expect(sorted(fin), sorted(uris), "every track finished")
        for u, n in before.items():
            assert fin[u]["resumed"] >= n, "%s: %d files were stored before the kill, resumed %d" % (u, n, fin[u]["resumed"])
        fetched = sum(e["total"] - e["resumed"] for e in fin.values())
        total = sum(e["total"] for e in fin.values())
        print("# files: %d total, %d stored before kill -9, %d fetched after" % (total, sum(before.values()), fetched))
        assert fetched < total, "the second run fetched everything again"
        expect(sum(e["refetched"] for e in fin.values()), 0, "nothing corrupt after kill -9")
        entries = ls(cli)
        expect(sorted(e["uri"] for e in entries), sorted(uris), "ls")
        assert all(e["complete"] and e["files_done"] == e["files_total"] for e in entries), entries
        # A third run finds everything present and verified: no fetches at all.
        rc, so, se = cli.run("download", "--json", *uris)
        fin = [e for e in lines(so) if e["event"] == "downloaded"]
        expect([e["resumed"] == e["total"] for e in fin], [True] * len(uris), "third run re-authenticated everything")
        rc, so, _ = cli.run("offline", "usage", "--json")
        u = json.loads(so)
        expect(u["tracks"], len(uris), "usage tracks")
        expect(u["bytes"], sum(e["bytes"] for e in entries), "usage bytes = sum of tracks")


def test_nothing_plaintext_on_disk_and_key_file_is_private():
    with Server() as srv:
        cli = Cli(srv.url, "alice")
        uris = [t[0] for t in plain_tracks(srv, 2)]
        rc, so, se = cli.run("download", *uris)
        expect(rc, 0, "download: " + se)
        files = enc_files(cli)
        assert len(files) >= 4, files
        # Every magic of the wire format and the codec, anywhere in the folder (db included).
        for root, _, names in os.walk(store(cli)):
            for n in names:
                data = open(os.path.join(root, n), "rb").read()
                for magic in (b"OggS", b"ENCS", b"ENCI", b"vorbis", b"RIFF"):
                    assert magic not in data, "%s found in %s" % (magic, n)
        # PCM or compressed audio in the clear has structure; ciphertext has ~8 bits/byte.
        for f in files:
            data = open(f, "rb").read()
            for off in range(0, len(data) - 4096, 4096):
                h = entropy(data[off:off + 4096])
                assert h > 7.8, "%s: a 4 KiB run at %d has %.2f bits/byte" % (f, off, h)
        key = os.path.join(cli.tmp, "data", "offline-device.key")
        expect(oct(os.stat(key).st_mode & 0o777), "0o600", "device key mode")


def test_plays_offline_with_the_server_stopped():
    srv = Server().start()
    try:
        cli = Cli(srv.url, "alice")
        tracks = plain_tracks(srv, 2)
        rc, so, se = cli.run("download", *[t[0] for t in tracks])
        expect(rc, 0, "download: " + se)
    finally:
        srv.stop()
    out = os.path.join(cli.tmp, "offline.wav")
    rc, so, se = cli.run("play", *[t[0] for t in tracks], "--output", "wav:" + out, "--json")
    expect(rc, 0, "offline play: " + se)
    rate, ch, data = read_wav(out)
    want = sum(round(t[1] * RATE / 1000) for t in tracks)
    expect((rate, ch, len(data) // ch), (RATE, 2, want), "frames of both tracks, played with no server")
    # Offline mode too (no network attempted at all), and a seek back within the track.
    rc, so, se = cli.run("play", "--offline", tracks[0][0], "--seek", "2", "--output", "wav:" + out, "--json")
    shutil.rmtree(srv.data, ignore_errors=True)
    expect(rc, 0, "offline play: " + se)
    rate, ch, data = read_wav(out)
    expect(len(data) // ch, round(tracks[0][1] * RATE / 1000) - 2 * RATE, "frames from 2 s, offline mode")
    assert max(abs(x) for x in data[:RATE * 2]) > 1000, "audio, not silence"


def test_downgrade_to_free_revokes_and_deletes_on_sync():
    srv = Server().start()
    try:
        admin = srv.login("admin")
        cli = Cli(srv.url, "chen")
        uri = plain_tracks(srv, 1)[0][0]
        rc, so, se = cli.run("download", uri)
        expect(rc, 0, "download: " + se)
        assert enc_files(cli)
        st, body, _ = admin.req("PUT", "/v1/admin/users/chen", {"tier": "free"})
        expect(st, 200, "downgrade %r" % (body,))
        rc, so, se = cli.run("offline", "sync", "--json")
        expect(rc, 0, "sync: " + se)
        r = json.loads(so)
        expect((r["premium"], r["revoked"], r["renewed"]), (False, 1, 0), "sync answer")
        expect(enc_files(cli), [], "files deleted")
        expect(ls(cli), [], "nothing listed")
        # Free now: downloads are refused with a clear reason.
        rc, so, se = cli.run("download", uri)
        expect(rc, 3, "download as free")
        assert "premium" in se, se
    finally:
        srv.stop()
    out = os.path.join(cli.tmp, "gone.wav")
    rc, so, se = cli.run("play", "--offline", uri, "--output", "wav:" + out)
    shutil.rmtree(srv.data, ignore_errors=True)
    assert rc != 0 and "not downloaded" in se, "played revoked content with no server: %r" % ((rc, se),)


def test_removed_device_is_revoked_and_expired_licence_refused():
    with Server() as srv:
        cli = Cli(srv.url, "alice")
        uri = plain_tracks(srv, 1)[0][0]
        rc, so, se = cli.run("download", uri)
        expect(rc, 0, "download: " + se)
        # Expire the licence locally: playback is refused with a clear message...
        con = sqlite3.connect(os.path.join(store(cli), "offline.db"))
        con.execute("UPDATE tracks SET expires_at = 1000")
        con.commit()
        con.close()
        rc, so, se = cli.run("play", uri, "--output", "null")
        assert rc != 0 and "expired" in se and "offline sync" in se, (rc, se)
        # ...until a sync renews it.
        rc, so, se = cli.run("offline", "sync", "--json")
        expect(json.loads(so)["renewed"], 1, "renewed")
        assert ls(cli)[0]["expires_at"] > time.time() + 29 * 86400, ls(cli)
        rc, so, se = cli.run("play", uri, "--output", "null")
        expect(rc, 0, "plays after renewal: " + se)
        dev = open(os.path.join(cli.tmp, "data", "offline-device.key")).read().split()[1]
        alice = srv.login("alice")
        st, _, _ = alice.req("DELETE", "/v1/me/offline/devices/" + dev)
        expect(st, 200, "remove device")
        rc, so, se = cli.run("offline", "sync", "--json")
        r = json.loads(so)
        expect((r["device_active"], r["revoked"]), (False, 1), "sync after removal")
        expect(enc_files(cli), [], "files deleted")


def test_tampered_ciphertext_is_refused_then_refetched():
    with Server() as srv:
        cli = Cli(srv.url, "alice")
        uri = plain_tracks(srv, 1)[0][0]
        rc, so, se = cli.run("download", uri)
        expect(rc, 0, "download: " + se)
        f = enc_files(cli)[1]
        data = bytearray(open(f, "rb").read())
        data[len(data) // 2] ^= 0x01
        open(f, "wb").write(data)
        rc, so, se = cli.run("play", uri, "--output", "null")
        assert rc != 0 and "failed authentication" in se, (rc, se)
        # Truncation is caught too, and a download run fetches both files again.
        g = enc_files(cli)[0]
        open(g, "r+b").truncate(os.path.getsize(g) - 5)
        rc, so, se = cli.run("download", "--json", uri)
        fin = [e for e in lines(so) if e["event"] == "downloaded"][0]
        expect(fin["refetched"], 2, "refetched the tampered and the truncated file")
        rc, so, se = cli.run("play", uri, "--output", "null")
        expect(rc, 0, "plays after repair: " + se)


def test_another_devices_files_are_refused():
    with Server() as srv:
        a = Cli(srv.url, "alice")
        b = Cli(srv.url, "alice")
        uri = plain_tracks(srv, 1)[0][0]
        rc, so, se = a.run("download", uri)
        expect(rc, 0, "download: " + se)
        shutil.copytree(store(a), store(b))
        rc, so, se = b.run("play", uri, "--output", "null")
        assert rc != 0 and "another device" in se, (rc, se)
        # Even with the other device's key id forged into the file, the secret differs.
        rc, so, se = b.run("offline", "ls", "--json")
        expect(rc, 0, "ls works on a copied folder")


def test_free_users_refused_and_bad_input_is_400():
    with Server() as srv:
        bob = srv.login("bob")
        st, body, _ = bob.req("POST", "/v1/me/offline/devices", {"device_id": "d1", "public_key": "A" * 43})
        expect(st, 403, "free device registration")
        assert "premium_required" in json.dumps(body), body
        st, body, _ = bob.req("POST", "/v1/me/offline/licenses", {"device_id": "d1", "uris": ["encore:track:x"]})
        expect(st, 403, "free licences")
        alice = srv.login("alice")
        for bad in ({"device_id": 5, "public_key": "A" * 43}, {"device_id": "d/1", "public_key": "A" * 43},
                    {"device_id": "d1", "public_key": "short"}, {"device_id": "d1"}):
            st, body, _ = alice.req("POST", "/v1/me/offline/devices", bad)
            expect(st, 400, "bad device %r: %r" % (bad, body))
        st, _, _ = alice.raw("POST", "/v1/me/offline/licenses", "{not json", {"Content-Type": "application/json"})
        expect(st, 400, "malformed JSON")
        st, body, _ = alice.req("POST", "/v1/me/offline/licenses", {"device_id": "nope", "uris": ["encore:track:" + "A" * 22]})
        expect(st, 404, "unregistered device %r" % (body,))
        st, _, _ = alice.req("POST", "/v1/me/offline/devices", {"device_id": "d1", "public_key": "A" * 43})
        for bad in ({"device_id": "d1", "uris": "x"}, {"device_id": "d1", "uris": []}, {"device_id": "d1", "uris": [3]},
                    {"device_id": "d1", "uris": ["encore:album:" + "A" * 22]}):
            st, body, _ = alice.req("POST", "/v1/me/offline/licenses", bad)
            expect(st, 400, "bad licences %r: %r" % (bad, body))
        st, body, _ = alice.req("POST", "/v1/me/offline/licenses", {"device_id": "d1", "uris": ["encore:track:" + "A" * 22]})
        expect(st, 404, "unknown track")
        st, _, _ = alice.req("DELETE", "/v1/me/offline/devices/unknown")
        expect(st, 404, "delete unknown device")
        st, _, _ = alice.req("POST", "/v1/me/offline/sync", {"device_id": []})
        expect(st, 400, "sync wrong type")


def test_limits_three_devices_and_3333_tracks():
    srv = Server()
    # Metadata-only tracks: licensing needs no audio.
    con = sqlite3.connect(os.path.join(srv.data, "encore.db"))
    artist, album = con.execute("SELECT artist_id, album_id FROM tracks LIMIT 1").fetchone()
    ids = ["Lim%019d" % i for i in range(3340)]
    con.executemany("INSERT INTO tracks (id, name, album_id, artist_id) VALUES (?, ?, ?, ?)",
                    [(i, "limit " + i, album, artist) for i in ids])
    con.commit()
    con.close()
    with srv:
        alice = srv.login("alice")
        for d in ("d1", "d2", "d3"):
            st, body, _ = alice.req("POST", "/v1/me/offline/devices", {"device_id": d, "public_key": "A" * 43})
            expect(st, 201, "device %s %r" % (d, body))
        st, body, _ = alice.req("POST", "/v1/me/offline/devices", {"device_id": "d4", "public_key": "A" * 43})
        expect(st, 403, "fourth device")
        assert "3 offline devices" in body["error"]["message"], body
        st, _, _ = alice.req("DELETE", "/v1/me/offline/devices/d3")
        expect(st, 200, "remove one")
        st, _, _ = alice.req("POST", "/v1/me/offline/devices", {"device_id": "d4", "public_key": "A" * 43})
        expect(st, 201, "room for another after removal")
        uris = ["encore:track:" + i for i in ids]
        st, body, _ = alice.req("POST", "/v1/me/offline/licenses", {"device_id": "d1", "uris": uris[:3333]})
        expect(st, 200, "3333 licences")
        expect(len(body["licenses"]), 3333, "licences issued")
        st, body, _ = alice.req("POST", "/v1/me/offline/licenses", {"device_id": "d1", "uris": uris[3333:3334]})
        expect(st, 403, "track 3334")
        assert "3333 offline tracks per device" in body["error"]["message"], body
        # Renewing one already held is not a new track.
        st, body, _ = alice.req("POST", "/v1/me/offline/licenses", {"device_id": "d1", "uris": uris[:1]})
        expect(st, 200, "renewal at the limit")
        st, body, _ = alice.req("POST", "/v1/me/offline/licenses", {"device_id": "d2", "uris": uris[3333:]})
        expect(st, 200, "another device has its own allowance")
        st, body, _ = alice.req("POST", "/v1/me/offline/licenses", {"device_id": "d1", "uris": uris[:3334]})
        expect(st, 400, "one request over the limit")
    shutil.rmtree(srv.data, ignore_errors=True)


def track_dir_bytes(cli):
    """{uri-less id: bytes of its .enc files on disk}"""
    out = {}
    for f in enc_files(cli):
        tid = os.path.basename(os.path.dirname(f))
        out[tid] = out.get(tid, 0) + os.path.getsize(f)
    return out


def usage(cli):
    rc, so, se = cli.run("offline", "usage", "--json")
    expect(rc, 0, "offline usage: " + se)
    return json.loads(so), se


def write_config(cli, text):
    os.makedirs(os.path.join(cli.tmp, "config"), exist_ok=True)
    with open(os.path.join(cli.tmp, "config", "config"), "w") as f:
        f.write(text)


def test_usage_is_exact_and_quota_refuses_before_writing():
    with Server() as srv:
        cli = Cli(srv.url, "alice")
        tracks = [t[0] for t in plain_tracks(srv, 3)]
        rc, so, se = cli.run("download", *tracks[:2])
        expect(rc, 0, "download: " + se)
        # Bytes per track and in all are exactly what is on disk.
        u, _ = usage(cli)
        disk = track_dir_bytes(cli)
        per = {e["uri"].split(":")[2]: e["bytes"] for e in u["items"]}
        expect(per, disk, "usage bytes per track = sizes of its files")
        expect(u["bytes"], sum(disk.values()), "usage total = sum of file sizes")
        expect((u["tracks"], u["quota_bytes"]), (2, 0), "two tracks, no quota")
        print("# usage: %d bytes in %d tracks; disk free %s" % (u["bytes"], u["tracks"], u["disk_free_bytes"]))
        used = u["bytes"]
        # A quota smaller than the next download: refused before writing, named, nothing left.
        quota = used + 1000
        rc, so, se = cli.run("offline", "quota", str(quota), "--json")
        expect((rc, json.loads(so)["quota_bytes"]), (0, quota), "quota set: " + se)
        before = enc_files(cli)
        rc, so, se = cli.run("download", tracks[2])
        assert rc != 0, "download over the quota succeeded: %r" % so
        assert "quota" in se and str(quota) in se, "message names the quota: %r" % se
        third = tracks[2].split(":")[2]
        expect(enc_files(cli), before, "no file written for the refused track")
        expect(os.path.exists(os.path.join(store(cli), third)), False, "no folder left for the refused track")
        expect(sorted(e["uri"] for e in ls(cli)), sorted(tracks[:2]), "the refused track is not listed")
        expect(usage(cli)[0]["bytes"], used, "usage unchanged")
        # Re-running the stored tracks writes nothing, so the quota does not stop their re-verification.
        rc, so, se = cli.run("download", *tracks[:2])
        expect(rc, 0, "re-verifying stored tracks under a quota: " + se)
        # The config file's offline_quota overrides the stored one: 'none' lets it through...
        write_config(cli, "offline_quota none\n")
        rc, so, se = cli.run("download", tracks[2])
        expect(rc, 0, "download with the config's quota none: " + se)
        u, _ = usage(cli)
        expect(u["bytes"], sum(track_dir_bytes(cli).values()), "usage total after a third track")
        # ...and a config quota (with a unit) refuses the same way.
        rc, _, _ = cli.run("offline", "rm", tracks[2])
        expect(rc, 0, "rm")
        write_config(cli, "offline_quota 1K\n")
        rc, so, se = cli.run("download", tracks[2])
        assert rc != 0 and "quota of 1024 bytes" in se, (rc, se)
        expect(os.path.exists(os.path.join(store(cli), third)), False, "nothing left after the config quota")


def test_low_disk_is_refused_cleanly_before_writing():
    with Server() as srv:
        cli = Cli(srv.url, "alice")
        uri = plain_tracks(srv, 1)[0][0]
        # The real statvfs figure of the data folder's filesystem; ask to keep more than it.
        os.makedirs(os.path.join(cli.tmp, "data"), exist_ok=True)
        st = os.statvfs(os.path.join(cli.tmp, "data"))
        free_mb = st.f_bavail * st.f_frsize >> 20
        write_config(cli, "offline_min_free_mb %d\n" % (free_mb + 1024 * 1024))
        rc, so, se = cli.run("download", "--json", uri)
        assert rc != 0, "download went ahead with the disk 'nearly full': %r" % so
        assert "disk nearly full" in se and "offline_min_free_mb" in se, se
        expect([l for l in lines(so) if l["event"] == "progress"], [], "not a single file started")
        expect(enc_files(cli), [], "nothing written")
        expect(ls(cli), [], "nothing listed")
        u, se = usage(cli)
        expect(u["low_disk"], True, "usage reports the low disk")
        assert "warning: disk nearly full" in se, se
        # With room to spare the same download goes through.
        write_config(cli, "offline_min_free_mb 1\n")
        rc, so, se = cli.run("download", uri)
        expect(rc, 0, "download with room: " + se)
        u, se = usage(cli)
        expect((u["low_disk"], u["min_free_bytes"]), (False, 1 << 20), "no warning with room")
        expect(u["bytes"], sum(track_dir_bytes(cli).values()), "usage = files")
        # A bad value is reported, not silently taken.
        write_config(cli, "offline_min_free_mb lots\n")
        rc, so, se = cli.run("offline", "usage", "--json")
        expect(json.loads(so)["min_free_bytes"], 64 << 20, "a bad value keeps the 64 MB default")


def test_podcast_episode_downloads_and_plays_offline():
    srv = Server().start()
    try:
        cli = Cli(srv.url, "alice")
        ep, dur = q(srv, "SELECT id, duration_ms FROM episodes WHERE state = 'ready' ORDER BY id LIMIT 1")[0]
        uri = "encore:episode:" + ep
        rc, so, se = cli.run("download", "--json", uri)
        expect(rc, 0, "episode download: " + se)
        fin = [e for e in lines(so) if e["event"] == "downloaded"]
        expect([e["uri"] for e in fin], [uri], "downloaded event names the episode")
        entries = ls(cli)
        expect([(e["uri"], e["complete"]) for e in entries], [(uri, True)], "ls lists the episode")
        expect(entries[0]["bytes"], sum(track_dir_bytes(cli).values()), "episode bytes")
        for f in enc_files(cli):
            assert b"OggS" not in open(f, "rb").read(), f
        # The licence is an episode licence on the server too (sync keeps it as one).
        rc, so, se = cli.run("offline", "sync", "--json")
        expect((rc, json.loads(so)["renewed"], json.loads(so)["revoked"]), (0, 1, 0), "sync keeps the episode: " + se)
        expect([e["uri"] for e in ls(cli)], [uri], "still an episode after sync")
        # A show downloads all its episodes.
        show = q(srv, "SELECT show_id FROM episodes WHERE id = ?", ep)[0][0]
        eps = sorted("encore:episode:" + r[0] for r in q(srv, "SELECT id FROM episodes WHERE show_id = ? AND state = 'ready'", show))
        other = Cli(srv.url, "chen")
        rc, so, se = other.run("download", "--json", "encore:show:" + show)
        expect(rc, 0, "show download: " + se)
        expect(sorted(e["uri"] for e in lines(so) if e["event"] == "downloaded"), eps, "every episode of the show")
    finally:
        srv.stop()
    out = os.path.join(cli.tmp, "episode.wav")
    rc, so, se = cli.run("play", "--offline", uri, "--output", "wav:" + out, "--json")
    shutil.rmtree(srv.data, ignore_errors=True)
    expect(rc, 0, "offline episode play: " + se)
    rate, ch, data = read_wav(out)
    expect((rate, len(data) // ch), (RATE, round(dur * RATE / 1000)), "exact samples of the episode, no server")
    assert max(abs(x) for x in data) > 1000, "speech, not silence"


def main():
    tap = Tap()
    for t in (test_download_killed_midway_resumes_and_verifies, test_nothing_plaintext_on_disk_and_key_file_is_private,
              test_plays_offline_with_the_server_stopped, test_downgrade_to_free_revokes_and_deletes_on_sync,
              test_removed_device_is_revoked_and_expired_licence_refused, test_tampered_ciphertext_is_refused_then_refetched,
              test_another_devices_files_are_refused, test_free_users_refused_and_bad_input_is_400,
              test_limits_three_devices_and_3333_tracks, test_usage_is_exact_and_quota_refuses_before_writing,
              test_low_disk_is_refused_cleanly_before_writing, test_podcast_episode_downloads_and_plays_offline):
        tap.run(t)
    tap.done()


main()
