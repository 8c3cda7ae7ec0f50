"""Recommendations end to end: the fallback chain with no model, `encored train` publishing a
versioned model that a running encored picks up, personal Discover Weekly from a planted
taste population, the fault switch, cold start from PUT /v1/me/taste, the diversity rule on
every product, Radio shifting away from skipped artists, bad input, and `encore recs`."""
import json
import os
import random
import sqlite3
import string
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import ENCORED, Cli, Server, Tap, expect, wait_for  # noqa: E402

ALNUM = string.ascii_letters + string.digits
TRACKS = 36   # 12 artists x 3 tracks, 6 genres x 6 tracks


def rid(rng=random):
    return "".join(rng.choice(ALNUM) for _ in range(22))


def q(srv, sql, *args):
    con = sqlite3.connect(os.path.join(srv.data, "encore.db"), timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def catalog(srv):
    """{track_id: (artist_id, genre)} of ready tracks."""
    return {r[0]: (r[1], r[2]) for r in q(srv, "SELECT id, artist_id, genre FROM tracks WHERE state = 'ready'")}


def by_genre(cat):
    out = {}
    for tid, (_, g) in sorted(cat.items()):
        out.setdefault(g, []).append(tid)
    return out


def new_user(srv, name, country="SE"):
    admin = srv.login("admin")
    st, body, _ = admin.req("POST", "/v1/admin/users", {"username": name, "password": "demo", "tier": "premium",
                                                        "country": country})
    assert st == 201, body
    return srv.login(name)


def play(client, track_ids, ms=60000):
    evs = [{"id": rid(), "type": "play_end", "ts": int(time.time() * 1000), "uri": "encore:track:" + t,
            "ms_played": ms, "reason": "trackdone"} for t in track_ids]
    st, body, _ = client.req("POST", "/v1/events", {"events": evs})
    assert st == 200, (st, body)


def caught_up(srv):
    admin = srv.login("admin")

    def done():
        st, body, _ = admin.get("/v1/admin/consumers")
        return st == 200 and all(c["lag"] == 0 for c in body["consumers"])
    wait_for(done, 60, "consumers caught up")


def train(srv, *extra):
    # 2 factors for 2 planted tastes: more would let 11 users be memorised exactly.
    p = subprocess.run([ENCORED, "train", "--data", srv.data, "--factors", "2", "--iterations", "15", *extra],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


def wait_version(srv, v):
    admin = srv.login("admin")

    def loaded():
        st, body, _ = admin.get("/v1/admin/recs")
        return st == 200 and body["version"] >= v
    wait_for(loaded, 60, "model version %d loaded" % v)


def track_ids(tracks):
    return [t["id"] for t in tracks if t]


def artists_of(tracks):
    return [t["artists"][0]["id"] for t in tracks if t]


def assert_diverse(tracks, what):
    arts = artists_of(tracks)
    for i in range(2, len(arts)):
        assert not (arts[i] == arts[i - 1] == arts[i - 2]), "%s: 3 in a row by %s at %d: %r" % (what, arts[i], i, arts)


def plist_tracks(body):
    return [it["track"] for it in body["tracks"]["items"]]


def populate(srv, cat):
    """A population with planted tastes: 'jazzamb' users play jazz + ambient, 'rocktech'
    users play rock + techno. alice (jazz + ambient) holds back 2 tracks of each genre."""
    g = by_genre(cat)
    for i in range(5):
        play(new_user(srv, "ja%d" % i), g["jazz"] + g["ambient"])
        play(new_user(srv, "rt%d" % i), g["rock"] + g["techno"])
    alice = srv.login("alice")
    mine = g["jazz"][:4] + g["ambient"][:4]
    play(alice, mine)
    caught_up(srv)
    return set(g["jazz"][4:] + g["ambient"][4:]), set(mine)


def test_no_model_falls_back_to_genre_then_popular(srv, state):
    c = new_user(srv, "nobody")
    st, body, _ = c.get("/v1/me/discover-weekly")
    expect(st, 200, "discover-weekly")
    expect(body["source"], "popular", "source with no model and no history")
    assert len(body["tracks"]["items"]) > 0
    pops = [t["popularity"] for t in plist_tracks(body)]
    assert pops[0] >= pops[-1], pops
    st, body, _ = c.get("/v1/recommendations?seed_genres=jazz&limit=5")
    expect(st, 200, "recommendations")
    expect(body["source"], "genre", "seed_genres with no model")
    genres = [state["cat"][t["id"]][1] for t in body["tracks"]]
    expect(genres[:3], ["jazz"] * 3, "seed_genres=jazz leads with jazz")
    expect(body["seeds"][0]["type"], "GENRE", "seed type")
    for path in ("/v1/me/daily-mixes", "/v1/me/release-radar", "/v1/radio?seed=encore:track:" + state["any"]):
        st, body, _ = c.get(path)
        expect(st, 200, path)


def test_bad_input_gets_4xx_not_500(srv, state):
    c = srv.login("bob")
    t = state["any"]
    cases = [
        ("/v1/recommendations", 400),
        ("/v1/recommendations?seed_tracks=" + ",".join([t] * 6), 400),
        ("/v1/recommendations?seed_tracks=nope", 400),
        ("/v1/recommendations?seed_tracks=" + "A" * 22, 404),
        ("/v1/recommendations?seed_artists=" + "B" * 22, 404),
        ("/v1/recommendations?seed_tracks=%s&target_energy=2" % t, 400),
        ("/v1/recommendations?seed_tracks=%s&target_energy=x" % t, 400),
        ("/v1/recommendations?seed_tracks=%s&limit=0" % t, 400),
        ("/v1/recommendations?seed_tracks=%s&limit=101" % t, 400),
        ("/v1/radio", 400),
        ("/v1/radio?seed=encore:album:" + "A" * 22, 400),
        ("/v1/radio?seed=encore:track:" + "A" * 22, 404),
        ("/v1/radio?seed=encore:track:%s&skipped=bad" % t, 400),
        ("/v1/radio?seed=encore:track:%s&skipped=%s" % (t, ",".join([t] * 101)), 400),
    ]
    for path, want in cases:
        st, body, _ = c.get(path)
        expect(st, want, path)
        assert "error" in body, body
    for body, want in [("{", 400), ([], 400), ({"genres": "jazz"}, 400), ({"genres": [1]}, 400),
                       ({"genres": ["x" * 40]}, 400), ({"genres": ["g%d" % i for i in range(51)]}, 400),
                       ({"artists": ["C" * 22]}, 404), ({"artists": ["short"]}, 400), ({}, 400)]:
        st, resp, _ = c.req("PUT", "/v1/me/taste", body)
        expect(st, want, "PUT taste %r" % (body,))


def test_cold_start_from_taste(srv, state):
    c = new_user(srv, "coldie")
    st, body, _ = c.req("PUT", "/v1/me/taste", {"genres": ["Classical"], "artists": []})
    expect(st, 200, "PUT taste")
    expect(body, {"genres": ["classical"], "artists": []}, "stored taste")
    st, body, _ = c.get("/v1/me/discover-weekly")
    expect(body["source"], "genre", "cold start source")
    first = plist_tracks(body)[:4]
    expect([state["cat"][t["id"]][1] for t in first], ["classical"] * 4, "first tracks follow the picked genre")
    st, body, _ = c.get("/v1/me/daily-mixes")
    expect(st, 200, "daily mixes")
    expect(body["mixes"][0]["genre"], "classical", "first mix")


def test_train_publishes_a_version_that_serve_loads(srv, state):
    held, mine = populate(srv, state["cat"])
    state["held"], state["mine"] = held, mine
    out = train(srv)
    assert "model version 1" in out, out
    wait_version(srv, 1)
    rows = q(srv, "SELECT version, users, items, factors FROM reco_models")
    expect(rows[0][0], 1, "version row")
    expect(rows[0][3], 2, "factors")
    assert os.path.exists(os.path.join(srv.data, "models", "recs-000001.bin"))
    assert not [f for f in os.listdir(os.path.join(srv.data, "models")) if f.endswith(".tmp")]
    train(srv)
    wait_version(srv, 2)


def test_discover_weekly_is_personal_unplayed_and_finds_held_out_tracks(srv, state):
    c = srv.login("alice")
    st, body, _ = c.get("/v1/me/discover-weekly")
    expect(st, 200, "discover-weekly")
    expect(body["source"], "personal", "source with a model")
    ids = track_ids(plist_tracks(body))
    assert 0 < len(ids) <= 30, len(ids)
    assert not set(ids) & state["mine"], "played tracks recommended: %r" % (set(ids) & state["mine"])
    # Alice's 4 unplayed jazz/ambient tracks are what her taste-mates played: they lead.
    top = ids[:4]
    hits = len(set(top) & state["held"])
    assert hits >= 3, "expected >= 3 of the 4 held-out tracks on top, got %d: %r" % (hits, top)
    assert_diverse(plist_tracks(body), "discover-weekly")


def test_fault_switches_to_fallbacks_and_back(srv, state):
    admin = srv.login("admin")
    alice = srv.login("alice")
    # alice's weekly and daily lists were computed before the fault: they are cached for the
    # period and need no model, so the fault does not change them.
    before = {p: alice.get(p)[1] for p in ("/v1/me/discover-weekly", "/v1/me/daily-mixes", "/v1/me/release-radar")}
    # A new jazz listener has asked for nothing yet: nothing cached, so the chain answers.
    fan = new_user(srv, "jazzfan")
    play(fan, by_genre(state["cat"])["jazz"][:2])
    caught_up(srv)
    st, body, _ = admin.req("POST", "/v1/admin/recs/fault", {"error": True})
    expect(st, 200, "fault on")
    expect(body["fault"], True, "fault flag")
    try:
        st, body, _ = fan.get("/v1/me/discover-weekly")
        expect((st, body["source"], body["cached"]), (200, "genre", False), "jazzfan under the fault")
        expect({state["cat"][t][1] for t in track_ids(plist_tracks(body))[:2]} <= {"jazz", "ambient"}, True,
               "genre fallback follows her history")
        fresh = new_user(srv, "fresh")
        st, body, _ = fresh.get("/v1/me/discover-weekly")
        expect((st, body["source"]), (200, "popular"), "a user with nothing under the fault")
        for path in ("/v1/me/daily-mixes", "/v1/me/release-radar", "/v1/radio?seed=encore:track:" + state["any"],
                     "/v1/recommendations?seed_tracks=" + state["any"]):
            st, body, _ = fan.get(path)
            expect(st, 200, path + " under the fault")
            assert body["source"] != "personal", (path, body["source"])
        for path, b in before.items():
            st, body, _ = alice.get(path)
            expect((st, body["source"], body["cached"]), (200, b["source"], True), path + ": alice's cached list under the fault")
            expect(ident(body), ident(b), path + ": the same list as before the fault")
    finally:
        admin.req("POST", "/v1/admin/recs/fault", {"error": False})
    # The fallback was not pinned for the week: the model's list comes back at once.
    st, body, _ = fan.get("/v1/me/discover-weekly")
    expect(body["source"], "personal", "after the fault clears")
    st, body, _ = admin.get("/v1/admin/recs")
    assert body["served"]["genre"] >= 1 and body["served"]["popular"] >= 1, body


def test_every_product_keeps_the_diversity_rule(srv, state):
    c = srv.login("alice")
    g = by_genre(state["cat"])
    st, body, _ = c.get("/v1/recommendations?seed_genres=jazz,rock&limit=30")
    assert_diverse(body["tracks"], "recommendations")
    st, body, _ = c.get("/v1/recommendations?seed_tracks=%s&target_energy=0.9&limit=10" % g["rock"][0])
    expect(st, 200, "targets")
    assert_diverse(body["tracks"], "recommendations with targets")
    st, body, _ = c.get("/v1/me/daily-mixes")
    assert 1 <= len(body["mixes"]) <= 6, len(body["mixes"])
    expect(body["mixes"][0]["genre"] in ("jazz", "ambient"), True, "first mix is a taste cluster")
    for m in body["mixes"]:
        assert_diverse(plist_tracks(m), m["name"])
    st, body, _ = c.get("/v1/me/release-radar")
    assert_diverse(plist_tracks(body), "release radar")
    st, body, _ = c.get("/v1/radio?seed=encore:track:" + g["jazz"][0])
    assert_diverse(body["tracks"], "radio")


def test_target_energy_reorders(srv, state):
    c = srv.login("bob")
    t = by_genre(state["cat"])["ambient"][0]
    energy = lambda ids: [q(srv, "SELECT energy FROM audio_features WHERE track_id = ?", i)[0][0] for i in ids]
    st, hi, _ = c.get("/v1/recommendations?seed_tracks=%s&target_energy=1&limit=5" % t)
    st, lo, _ = c.get("/v1/recommendations?seed_tracks=%s&target_energy=0&limit=5" % t)
    eh, el = energy(track_ids(hi["tracks"])), energy(track_ids(lo["tracks"]))
    assert sum(eh) / len(eh) > sum(el) / len(el) + 0.1, (eh, el)


def test_radio_moves_away_from_skipped_artists(srv, state):
    c = srv.login("alice")
    seed = by_genre(state["cat"])["jazz"][0]
    st, b1, _ = c.get("/v1/radio?seed=encore:track:" + seed)
    expect((st, b1["source"]), (200, "personal"), "radio")
    first = b1["tracks"]
    assert 0 < len(first) <= 30
    assert seed not in track_ids(first)
    skipped = track_ids(first[:2])
    skipped_artists = set(artists_of(first[:2]))
    st, b2, _ = c.get("/v1/radio?seed=encore:track:%s&skipped=%s" % (seed, ",".join(skipped)))
    second = b2["tracks"]
    assert not set(skipped) & set(track_ids(second)), "skipped tracks came back"
    pos = lambda ts: [i for i, a in enumerate(artists_of(ts)) if a in skipped_artists]
    p1, p2 = pos(first), pos(second)
    expect(p1[:2], [0, 1], "the skipped tracks led the first batch")
    # Their artists' other tracks are gone or pushed to the back half of the next batch.
    assert not p2 or min(p2) >= len(second) // 2, "skipped artists still near the top: %r of %d" % (p2, len(second))
    liked = track_ids(second[-1:])
    st, b3, _ = c.get("/v1/radio?seed=encore:track:%s&liked=%s" % (seed, liked[0]))
    expect(st, 200, "radio with liked")
    assert liked[0] not in track_ids(b3["tracks"])


def test_radio_from_a_playlist(srv, state):
    c = srv.login("bob")
    st, pl, _ = c.req("POST", "/v1/me/playlists", {"name": "techno night"})
    assert st in (200, 201), (st, pl)
    techno = by_genre(state["cat"])["techno"][:3]
    st, body, _ = c.req("POST", "/v1/playlists/%s/tracks" % pl["id"], {"uris": ["encore:track:" + t for t in techno]})
    assert st in (200, 201), (st, body)
    st, body, _ = c.get("/v1/radio?seed=encore:playlist:" + pl["id"])
    expect(st, 200, "radio from a playlist")
    ids = track_ids(body["tracks"])
    assert ids and not set(ids) & set(techno), "playlist tracks repeated: %r" % (set(ids) & set(techno))
    st, body, _ = c.get("/v1/radio?seed=encore:playlist:" + "Z" * 22)
    expect(st, 404, "radio from an unknown playlist")


def test_cli_recs(srv, state):
    cli = Cli(srv.url, "alice")
    rc, out, err = cli.run("recs", "discover", "--json")
    expect(rc, 0, "encore recs discover: " + err)
    body = json.loads(out)
    expect(body["source"], "personal", "cli discover source")
    rc, out, err = cli.run("recs", "discover")
    expect(rc, 0, "text discover: " + err)
    assert "Discover Weekly" in out, out
    rc, out, err = cli.run("recs", "radio", "encore:track:" + state["any"], "--json")
    expect(rc, 0, "radio: " + err)
    assert json.loads(out)["tracks"], out
    for sub in ("daily", "release"):
        rc, out, err = cli.run("recs", sub)
        expect(rc, 0, "recs %s: %s" % (sub, err))
    rc, out, err = cli.run("recs", "radio")
    expect(rc, 2, "radio without a URI is a usage error")
    rc, out, err = cli.run("recs", "radio", "encore:track:" + "A" * 22)
    assert rc != 0 and "no track" in err, (rc, err)


def ident(body):
    """What a cached product must keep: where it came from, its period and model, its tracks."""
    lists = [track_ids(plist_tracks(m)) for m in body["mixes"]] if "mixes" in body else track_ids(plist_tracks(body))
    return (body["source"], body["period"], body["model_version"], body["generated_at"], lists)


def test_daily_mixes_are_one_per_taste_cluster_and_coherent(srv, state):
    """A listener of two distinct tastes (jazz and techno, which the population never mixes):
    the mixes come from k-means over the model's item vectors, each mix's favourites are of
    one taste, and each mix's tracks are nearer its own centroid than any other on average."""
    g = by_genre(state["cat"])
    two = new_user(srv, "twotaste")
    jazz, techno = g["jazz"][:4], g["techno"][:4]
    play(two, jazz + techno)
    caught_up(srv)
    v = q(srv, "SELECT max(version) FROM reco_models")[0][0]
    train(srv)
    wait_version(srv, v + 1)
    st, body, _ = two.get("/v1/me/daily-mixes")
    expect((st, body["source"]), (200, "personal"), "daily mixes")
    mixes = body["mixes"]
    assert 2 <= len(mixes) <= 6, [m["name"] for m in mixes]
    taste = {t: "jazz" for t in jazz}
    taste.update({t: "techno" for t in techno})
    seen = set()
    for m in mixes:
        ids = track_ids(plist_tracks(m))
        mine = {taste[t] for t in ids if t in taste}
        assert len(mine) == 1, "%s mixes the two tastes: %r" % (m["name"], mine)
        seen |= mine
        c = m["cluster"]
        print("# %s (%s): %d tracks, %d listened, distance to own centroid %.3f, to the nearest other %.3f"
              % (m["name"], m["genre"], len(ids), c["listened"], c["mean_distance_own"], c["mean_distance_nearest_other"]))
        expect(c["clusters"], len(mixes), "one mix per cluster")
        assert c["mean_distance_own"] < c["mean_distance_nearest_other"], (m["name"], c)
        assert_diverse(plist_tracks(m), m["name"])
    expect(seen, {"jazz", "techno"}, "both tastes have a mix")


def test_weekly_and_daily_lists_are_cached_per_period_and_survive_restart(srv, state):
    """Discover Weekly and Release Radar per ISO week, Daily Mixes per UTC day: the same list
    within the period even after new plays and a new model version, after an encored restart
    too; the next period (--clock-offset-s) regenerates them with the newest model."""
    import datetime
    paths = {"dw": "/v1/me/discover-weekly", "dm": "/v1/me/daily-mixes", "rr": "/v1/me/release-radar"}
    alice = srv.login("alice")
    first = {k: alice.get(p)[1] for k, p in paths.items()}
    for k in paths:
        expect(first[k]["source"], "personal", k + " source")
        st, again, _ = alice.get(paths[k])
        expect(ident(again), ident(first[k]), k + " twice in the period")
    week, day = first["dw"]["period"], first["dm"]["period"]
    now = datetime.datetime.fromtimestamp(first["dm"]["generated_at"], datetime.timezone.utc)
    expect(week, "%d-W%02d" % now.isocalendar()[:2], "week period is the ISO week")
    expect(day, now.strftime("%Y-%m-%d"), "day period is the UTC date")
    # New plays (three of the list) and a new model version: the period's lists stay.
    dw_ids = track_ids(plist_tracks(first["dw"]))
    play(alice, dw_ids[:3])
    caught_up(srv)
    newest = q(srv, "SELECT max(version) FROM reco_models")[0][0] + 1
    train(srv)
    wait_version(srv, newest)
    for k, p in paths.items():
        st, body, _ = alice.get(p)
        expect(ident(body), ident(first[k]), k + " after new plays and a new model")
    # A restart keeps them (SQLite).
    srv.stop()
    srv.start()
    alice = srv.login("alice")
    for k, p in paths.items():
        st, body, _ = alice.get(p)
        expect((st, body["cached"]), (200, True), k + " after a restart")
        expect(ident(body), ident(first[k]), k + " is the same list after a restart")
    # Another day of the same ISO week: the next one, or the day before on a Sunday.
    step = 86400 if now.isoweekday() < 7 else -86400
    srv.stop()
    srv.args = ["--clock-offset-s", str(step)]
    srv.start()
    alice = srv.login("alice")
    st, dm, _ = alice.get(paths["dm"])
    expect((dm["cached"], dm["period"] != day), (False, True), "daily mixes regenerated for another day")
    expect(dm["model_version"], newest, "the new day's mixes use the newest model")
    st, dw, _ = alice.get(paths["dw"])
    expect(ident(dw), ident(first["dw"]), "discover weekly unchanged on another day of the week")
    # The next week: regenerated, with the newest model, without the tracks played meanwhile.
    srv.stop()
    srv.args = ["--clock-offset-s", str(7 * 86400)]
    srv.start()
    alice = srv.login("alice")
    st, dw, _ = alice.get(paths["dw"])
    expect((dw["source"], dw["cached"], dw["model_version"]), ("personal", False, newest), "next week's discover weekly")
    assert dw["period"] != week, (dw["period"], week)
    new_ids = track_ids(plist_tracks(dw))
    assert not set(new_ids) & set(dw_ids[:3]), "played tracks still in next week's list"
    assert new_ids != dw_ids, "the same list in a new week"
    st, rr, _ = alice.get(paths["rr"])
    expect((rr["cached"], rr["period"], rr["model_version"]), (False, dw["period"], newest), "next week's release radar")
    st, again, _ = alice.get(paths["dw"])
    expect((again["cached"], ident(again)), (True, ident(dw)), "next week's list is then cached too")
    srv.stop()
    srv.args = []
    srv.start()


def test_fault_flag_and_scheduled_training():
    with Server(["--fault-recs-error", "--train-interval", "1", "--recs-check-ms", "200"], tracks=TRACKS,
                seconds=3) as srv:
        admin = srv.login("admin")
        st, body, _ = admin.get("/v1/admin/recs")
        expect(body["fault"], True, "--fault-recs-error")
        play(srv.login("bob"), sorted(catalog(srv))[:5])
        # The schedule trains on its own and serving loads what it wrote.
        wait_version(srv, 1)
        st, body, _ = admin.get("/v1/admin/recs")
        assert body["trainings"] >= 1, body
        st, body, _ = srv.login("bob").get("/v1/me/discover-weekly")
        expect((st, body["source"] != "personal"), (200, True), "discover under --fault-recs-error")
        admin.req("POST", "/v1/admin/recs/fault", {"error": False})
        st, body, _ = srv.login("bob").get("/v1/me/discover-weekly")
        expect((st, body["source"]), (200, "personal"), "discover once the fault is cleared")


def main():
    tap = Tap()
    with Server(tracks=TRACKS, seconds=3) as srv:
        cat = catalog(srv)
        state = {"cat": cat, "any": sorted(cat)[0]}
        for t in (test_no_model_falls_back_to_genre_then_popular, test_bad_input_gets_4xx_not_500,
                  test_cold_start_from_taste, test_train_publishes_a_version_that_serve_loads,
                  test_discover_weekly_is_personal_unplayed_and_finds_held_out_tracks,
                  test_fault_switches_to_fallbacks_and_back, test_every_product_keeps_the_diversity_rule,
                  test_target_energy_reorders, test_radio_moves_away_from_skipped_artists, test_radio_from_a_playlist,
                  test_cli_recs, test_daily_mixes_are_one_per_taste_cluster_and_coherent,
                  test_weekly_and_daily_lists_are_cached_per_period_and_survive_restart):
            tap.run(t, srv, state)
    tap.run(test_fault_flag_and_scheduled_training)
    tap.done()


if __name__ == "__main__":
    main()
