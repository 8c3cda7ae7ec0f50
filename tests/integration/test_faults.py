#!/usr/bin/env python3
"""Fault injection on the internal service boundaries (search, recommendations,
playlists, metadata), switched at run time through POST /v1/admin/faults: each outage
gives the degraded behaviour docs/PROTOCOL.md promises, never an error for the user.
Search answers from its cache or a plain catalog scan; recommendations fall back to
genre and popular picks; playlist reads come from the client's cached copy and edits wait
in its queue until the service is back; playback goes on with cached metadata."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import query as q, ENCORED, Cli, Server, Tap, events, expect, read_wav  # noqa: E402
import subprocess  # noqa: E402


def faults(admin, services):
    st, body, _ = admin.req("POST", "/v1/admin/faults", {"services": services})
    expect(st, 200, "set faults %r" % (body,))
    expect(sorted(body["services"]), sorted(services), "services echoed")


def playable(srv, n):
    return q(srv, "SELECT id, name FROM tracks WHERE markets = '' AND explicit = 0 AND state = 'ready' ORDER BY id LIMIT ?", n)


def test_search_outage_answers_from_the_cache_or_a_catalog_scan(srv):
    admin, alice = srv.login("admin"), srv.login("alice")
    (tid, name), (tid2, name2) = playable(srv, 2)
    word = name.split()[0]
    cached_path = "/v1/search?q=%s&type=track&limit=50" % word.replace(" ", "%20")
    st, before, _ = alice.get(cached_path)
    expect(st, 200, "search before the fault")
    faults(admin, ["search"])
    try:
        st, during, r = alice.raw("GET", cached_path)
        expect(st, 200, "cached search during the outage")
        expect(r.getheader("X-Encore-Degraded"), "search: cached answer", "degraded header")
        expect(json.loads(during)["tracks"]["items"], before["tracks"]["items"], "the cached answer is the same")
        word2 = name2.split()[-1]
        st, body, r = alice.raw("GET", "/v1/search?q=%s&type=track,artist" % word2.replace(" ", "%20"))
        expect(st, 200, "uncached search during the outage")
        expect(r.getheader("X-Encore-Degraded"), "search: catalog scan", "degraded header")
        ids = [t["id"] for t in json.loads(body)["tracks"]["items"]]
        assert tid2 in ids, "the catalog scan did not find %r by %r: %r" % (name2, word2, ids)
        st, body, r = alice.raw("GET", "/v1/search/suggest?q=zz")
        expect((st, json.loads(body)), (200, {"suggestions": []}), "suggest during the outage")
        cli = Cli(srv.url, "alice")
        rc, so, se = cli.run("search", word2, "--type", "track", "--json")
        expect(rc, 0, "encore search during the outage %r" % se)
        assert tid2 in so, "encore search did not find %r: %r" % (name2, so[:300])
    finally:
        faults(admin, [])
    st, _, r = alice.raw("GET", "/v1/search?q=%s&type=track" % word2.replace(" ", "%20"))
    expect((st, r.getheader("X-Encore-Degraded")), (200, None), "healthy again")


def test_recommendations_outage_falls_back_not_fails(srv):
    admin, alice = srv.login("admin"), srv.login("alice")
    (tid, _), = playable(srv, 1)
    faults(admin, ["recs"])
    try:
        st, body, _ = alice.get("/v1/recommendations?seed_tracks=%s&limit=5" % tid)
        expect(st, 200, "recommendations during the outage %r" % (body,))
        assert body["tracks"], "no fallback tracks"
        st, status, _ = admin.get("/v1/admin/recs")
        expect(status["fault"], True, "the model is marked faulted")
        st, body, _ = alice.get("/v1/me/discover-weekly")
        expect(st, 200, "discover weekly during the outage")
    finally:
        faults(admin, [])
    st, status, _ = admin.get("/v1/admin/recs")
    expect(status["fault"], False, "fault cleared")


def test_playlist_outage_reads_the_cached_copy_and_queues_edits(srv):
    admin = srv.login("admin")
    (t1, n1), (t2, n2) = playable(srv, 2)
    cli = Cli(srv.url, "alice")
    rc, so, se = cli.run("playlist", "create", "Outage", "--json")
    expect(rc, 0, "create %r" % se)
    pid = json.loads(so)["id"]
    expect(cli.run("playlist", "add", pid, "encore:track:" + t1)[0], 0, "add before the outage")
    rc, so, se = cli.run("playlist", "show", pid)
    expect(rc, 0, "show (fills the cache)")
    faults(admin, ["playlists"])
    try:
        alice = srv.login("alice")
        st, body, _ = alice.get("/v1/playlists/%s" % pid)
        expect(st, 503, "the route itself is down %r" % (body,))
        rc, so, se = cli.run("playlist", "show", pid)
        expect(rc, 0, "show during the outage %r" % se)
        assert n1 in so and "cached" in so, "not the cached copy: %r" % so
        assert "unavailable" in se, "the user is not told: %r" % se
        rc, so, se = cli.run("playlist", "add", pid, "encore:track:" + t2)
        expect(rc, 0, "add during the outage %r" % se)
        assert "queued" in (so + se).lower(), "edit not queued: %r %r" % (so, se)
    finally:
        faults(admin, [])
    rc, so, se = cli.run("playlist", "show", pid, "--json")
    expect(rc, 0, "show after the outage %r" % se)
    assert t2 in so, "the queued edit was not sent when the service came back: %r" % so[:400]
    st, body, _ = srv.login("alice").get("/v1/playlists/%s/tracks" % pid)
    expect([i["track"]["id"] for i in body["items"]], [t1, t2], "server's order after the replay")


def test_metadata_outage_plays_on_with_cached_metadata(srv, tmp):
    admin = srv.login("admin")
    (t1, n1), (t2, n2) = playable(srv, 2)
    cli = Cli(srv.url, "alice")
    wav = os.path.join(tmp, "a.wav")
    rc, so, se = cli.run("play", "encore:track:" + t1, "--output", "wav:" + wav, "--duration", "1", "--json")
    expect(rc, 0, "play before the outage %r" % se)
    faults(admin, ["metadata"])
    try:
        st, body, _ = srv.login("alice").get("/v1/tracks/%s" % t1)
        expect(st, 503, "metadata route down %r" % (body,))
        rc, so, se = cli.run("play", "encore:track:" + t1, "--output", "wav:" + wav, "--duration", "1", "--json")
        expect(rc, 0, "play during the outage %r" % se)
        started = [e for e in events(so) if e["event"] == "started"]
        assert started and started[0].get("title") == n1, "cached title not used: %r" % started
        rate, ch, data = read_wav(wav)
        assert len(data) >= rate * ch * 0.9, "too little audio: %d samples" % len(data)
        # A track this client never saw: it plays, without a title.
        rc, so, se = cli.run("play", "encore:track:" + t2, "--output", "wav:" + wav, "--duration", "1", "--json")
        expect(rc, 0, "uncached track during the outage %r" % se)
        rate, ch, data = read_wav(wav)
        assert len(data) >= rate * ch * 0.9, "too little audio for the uncached track: %d" % len(data)
    finally:
        faults(admin, [])


def test_bad_fault_requests_are_refused(srv):
    admin = srv.login("admin")
    for body in ({"services": "search"}, {"services": ["search", "nonsense"]}, {"services": [1]},
                 {"services": ["search,recs"]}):
        st, resp, _ = admin.req("POST", "/v1/admin/faults", body)
        expect(st, 400, "faults %r -> %r" % (body, resp))
    st, cur, _ = admin.get("/v1/admin/faults")
    expect(cur["services"], [], "nothing half-applied")
    expect(srv.login("alice").req("POST", "/v1/admin/faults", {"services": ["search"]})[0], 403, "non-admin")
    p = subprocess.run([ENCORED, "serve", "--data", srv.data, "--listen", "127.0.0.1:0", "--fault-service", "bogus"],
                       capture_output=True, text=True, timeout=60)
    expect(p.returncode, 2, "unknown service on the command line: %r" % p.stderr)
    assert "--fault-service" in p.stderr, p.stderr


def main():
    import tempfile
    tap = Tap()
    tmp = tempfile.mkdtemp(prefix="encore-faults-")
    with Server(tracks=12) as srv:
        tap.run(test_search_outage_answers_from_the_cache_or_a_catalog_scan, srv)
        tap.run(test_recommendations_outage_falls_back_not_fails, srv)
        tap.run(test_playlist_outage_reads_the_cached_copy_and_queues_edits, srv)
        tap.run(test_metadata_outage_plays_on_with_cached_metadata, srv, tmp)
        tap.run(test_bad_fault_requests_are_refused, srv)
    tap.done()


if __name__ == "__main__":
    main()
