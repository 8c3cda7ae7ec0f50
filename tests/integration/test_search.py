"""Search through the real encored and the real encore: Web API shapes, typo and accent
tolerance, CJK substrings, suggestions, market filter vs sort, debug score parts,
incremental indexing of an ingested track (and no stale cached answer), bad input, the
`encore search` and `encore play QUERY` commands, and recall over the demo vocabulary."""
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unicodedata
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from audio import signal, wav_bytes  # noqa: E402
from harness import ENCORED, Cli, Server, Tap, events, expect, wait_for  # noqa: E402

ALL = "track,artist,album,playlist,show,episode"
PAGE_KEYS = {"href", "items", "limit", "next", "offset", "previous", "total"}


def search(c, q, **args):
    args["q"] = q
    st, body, r = c.get("/v1/search?" + urllib.parse.urlencode(args))
    return st, body, r


def names(body, key):
    return [i["name"] for i in body[key]["items"]]


def db(srv, sql, *args):
    con = sqlite3.connect(os.path.join(srv.data, "encore.db"))
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def test_every_paging_object_has_the_web_api_shape_and_full_objects(srv):
    bob = srv.login("bob")
    st, body, _ = search(bob, "the", type=ALL, limit=50)
    expect(st, 200, body)
    expect(set(body), {"tracks", "artists", "albums", "playlists", "shows", "episodes"}, "one paging object per type")
    for key, page in body.items():
        expect(set(page), PAGE_KEYS, "keys of " + key)
        expect(page["limit"], 50, key + " limit")
        expect(page["offset"], 0, key + " offset")
        assert page["previous"] is None, page
        assert page["total"] >= len(page["items"]), page
    # Items are the objects the catalog routes render, field for field.
    for key, route in (("tracks", "/v1/tracks/"), ("artists", "/v1/artists/")):
        assert body[key]["items"], "no %s for 'the'" % key
        for item in body[key]["items"][:5]:
            st, obj, _ = bob.get(route + item["id"])
            expect(st, 200, route)
            expect(item, obj, "search item vs " + route)
    for item in body["albums"]["items"][:5]:
        st, full, _ = bob.get("/v1/albums/" + item["id"])
        expect({k: full[k] for k in item}, item, "simplified album is the full album's subset")
    # Shows and episodes: their own routes exist and agree.
    st, body, _ = search(bob, "under the hood", type="show,episode")
    expect(st, 200, body)
    show = body["shows"]["items"][0]
    expect(show["type"], "show", "show type")
    st, full, _ = bob.get("/v1/shows/" + show["id"])
    expect(st, 200, full)
    expect({k: full[k] for k in show}, show, "simplified show vs /v1/shows/{id}")
    expect(set(full["episodes"]), PAGE_KEYS, "show's episodes paging")
    st, body, _ = search(bob, "how a stream starts", type="episode")
    ep = body["episodes"]["items"][0]
    st, full, _ = bob.get("/v1/episodes/" + ep["id"])
    expect(st, 200, full)
    expect(full["show"]["id"], show["id"], "episode's show")
    expect({k: full[k] for k in ep}, ep, "simplified episode vs /v1/episodes/{id}")
    for path in ("/v1/shows/" + "A" * 22, "/v1/episodes/" + "A" * 22):
        expect(bob.get(path)[0], 404, path)
    expect(bob.get("/v1/episodes/nope")[0], 400, "bad episode id")
    # Paging: next follows to the following page with the same query.
    st, p1, _ = search(bob, "the", type="track", limit=1)
    assert p1["tracks"]["total"] > 1 and p1["tracks"]["next"], p1["tracks"]
    nxt = urllib.parse.urlparse(p1["tracks"]["next"])
    st, p2, _ = bob.get(nxt.path + "?" + nxt.query)
    expect(st, 200, p2)
    expect(p2["tracks"]["offset"], 1, "next page offset")
    assert p2["tracks"]["items"][0]["id"] != p1["tracks"]["items"][0]["id"], "next page moved on"
    assert p2["tracks"]["previous"], "second page has previous"


def test_typos_accents_case_and_cjk_substrings_find_the_demo_artists(srv):
    bob = srv.login("bob")
    cases = [("BeAtls", "The Beatles Clones"), ("beatlse clones", "The Beatles Clones"),
             ("bjork", "The Blue Björk Trio"), ("BJÖRK TRIO", "The Blue Björk Trio"),
             ("eolienne", "Éolienne"), ("eolinne", "Éolienne"), ("senor swing", "Señor Swing"),
             ("motorway", "Motörway"), ("静かな", "静かな海"), ("かな海", "静かな海"),
             ("schumann", "Clara Schümann Ensemble"), ("室内", "北京室内乐团")]
    for q, want in cases:
        st, body, _ = search(bob, q, type="artist", limit=10)
        expect(st, 200, body)
        got = names(body, "artists")
        assert got and got[0] == want, "%r: expected %r first, got %r" % (q, want, got)


def test_suggestions_complete_prefixes(srv):
    bob = srv.login("bob")
    for q, want in (("beat", "The Beatles Clones"), ("eol", "Éolienne"), ("Kraftw", "Kraftwerk Kinder"),
                    ("under the h", "Under the Hood"), ("静か", "静かな海")):
        st, body, _ = bob.get("/v1/search/suggest?q=" + urllib.parse.quote(q))
        expect(st, 200, body)
        sug = body["suggestions"]
        assert 0 < len(sug) <= 10, sug
        for s in sug:
            expect(set(s), {"type", "uri", "text"}, "suggestion keys")
            assert s["uri"] == "encore:%s:%s" % (s["type"], s["uri"].split(":")[2]), s
        assert any(s["text"].startswith(want) for s in sug), "%r: %r not in %r" % (q, want, sug)


def test_market_filters_with_market_and_sorts_by_country_without(srv):
    (tid, title), = db(srv, "SELECT id, name FROM tracks WHERE markets = 'SE,JP' LIMIT 1")
    # A word of its title, album or artist that other tracks share, so playable and
    # unplayable tracks match the same query.
    rows = db(srv, "SELECT t.id, t.name || ' ' || al.name || ' ' || ar.name FROM tracks t"
                   " JOIN albums al ON al.id = t.album_id JOIN artists ar ON ar.id = t.artist_id")
    mine = dict(rows)[tid].lower().split()
    shared = [w for w in mine if len(w) >= 4 and sum(w in text.lower().split() for _, text in rows) >= 2]
    assert shared, "no shared word in %r" % mine
    bob, alice = srv.login("bob"), srv.login("alice")
    # bob (US), no market: the SE,JP track is there, unplayable, after every playable match.
    st, body, _ = search(bob, shared[0], type="track", limit=50)
    items = body["tracks"]["items"]
    ids = [i["id"] for i in items]
    assert tid in ids, "restricted track missing for bob: %r" % names(body, "tracks")
    flags = [i["is_playable"] for i in items]
    expect(flags, sorted(flags, reverse=True), "playable first for bob")
    expect(items[ids.index(tid)]["is_playable"], False, "restricted track unplayable for bob")
    assert flags.count(True) > 0, "the query should also match playable tracks"
    # alice (SE): the exact title is first and playable.
    st, body, _ = search(alice, title, type="track")
    expect(body["tracks"]["items"][0]["id"], tid, "alice gets the exact title first")
    expect(body["tracks"]["items"][0]["is_playable"], True, "playable in SE")
    # market=US filters it out; market=JP keeps it, playable.
    st, body, _ = search(bob, title, type="track", limit=50, market="US")
    assert tid not in [i["id"] for i in body["tracks"]["items"]], "market=US must drop it"
    assert all(i["is_playable"] for i in body["tracks"]["items"]), "market=US: only playable items"
    st, body, _ = search(bob, title, type="track", market="JP")
    expect(body["tracks"]["items"][0]["id"], tid, "market=JP keeps it first")
    expect(body["tracks"]["items"][0]["is_playable"], True, "is_playable answers for the market")
    st, body, _ = search(bob, title, type="track", market="from_token")
    assert tid not in [i["id"] for i in body["tracks"]["items"]], "from_token = bob's US"


def test_debug_adds_score_parts(srv):
    bob = srv.login("bob")
    (title,), = db(srv, "SELECT name FROM tracks WHERE markets = 'SE,JP' LIMIT 1")
    st, body, _ = search(bob, title, type="track,artist", debug=1, limit=50)
    expect(st, 200, body)
    parts = {"total", "text", "typo", "popularity", "taste", "market", "boost", "matched", "typos"}
    for key in ("tracks", "artists"):
        for i in body[key]["items"]:
            expect(set(i["score"]), parts, "score parts")
    top = body["tracks"]["items"][0]["score"]
    assert top["text"] > 0 and top["boost"] > 0 and top["typos"] == 0, top
    unplayable = [i for i in body["tracks"]["items"] if not i["is_playable"]]
    assert unplayable and all(i["score"]["market"] < 0 for i in unplayable), "market part negative when unplayable"
    st, body, _ = search(bob, "hapyy", type="track", debug=1)
    assert body["tracks"]["items"][0]["score"]["typos"] >= 1, body["tracks"]["items"][0]["score"]
    st, body, _ = search(bob, title, type="track")
    assert "score" not in body["tracks"]["items"][0], "no score without debug"


def test_ingested_track_is_found_at_once_and_the_cache_is_not_stale(srv):
    admin, bob = srv.login("admin"), srv.login("bob")
    q = "zephyrine quokka"
    st, body, r = search(bob, q, type="track")
    expect(body["tracks"]["total"], 0, "nothing before ingest")
    expect(r.getheader("X-Search-Cache"), "miss", "first query")
    st, body, r = search(bob, q, type="track")
    expect(r.getheader("X-Search-Cache"), "hit", "same query again is cached")
    wav = wav_bytes(signal(3, seed=7))
    st, job, _ = admin.req("POST", "/v1/admin/ingest?" + urllib.parse.urlencode(
        {"title": "Zephyrine Quokka Anthem", "artist": "Quokka Parade", "album": "Marsupial Dawn", "genre": "rock"}),
        wav, headers={"Content-Type": "audio/wav"})
    expect(st, 202, job)
    # Indexed when the catalog row is committed: no restart, no wait for the transcode.
    st, body, r = search(bob, q, type="track")
    expect(r.getheader("X-Search-Cache"), "miss", "index changed: the cached answer is not used")
    expect(names(body, "tracks"), ["Zephyrine Quokka Anthem"], "found right after submit")
    expect(body["tracks"]["items"][0]["uri"], job["uri"], "same track as the job")
    st, body, _ = search(bob, "quoka parade", type="artist")
    expect(names(body, "artists"), ["Quokka Parade"], "its new artist is searchable")
    wait_for(lambda: admin.get("/v1/admin/ingest/%d" % job["id"])[1]["state"] == "done", timeout=300, what="ingest")
    st, body, _ = search(bob, "zephirine", type="track")
    expect(names(body, "tracks"), ["Zephyrine Quokka Anthem"], "still found (typo) after the transcode")


def test_bad_input_is_a_clear_400_or_searched_as_text(srv):
    bob = srv.login("bob")
    cases = [
        ("", None, 400), ("q=", None, 400), ("q=" + "a" * 10000, "too long", 400),
        ("q=%01%02happy%7F", None, 200), ("q=%01%02%03", "searchable", 400),
        ("q=%FF%FEhappy%C3", None, 200), ("q=" + urllib.parse.quote('"happy" AND NEAR(x*, -y) OR ^z:'), None, 200),
        ("q=happy&type=", "type", 400), ("q=happy&type=track,,artist", "type", 400),
        ("q=happy&type=song", "type", 400), ("q=happy&type=track,", "type", 400),
        ("q=happy&limit=0", "limit", 400), ("q=happy&limit=51", "limit", 400), ("q=happy&limit=-1", "limit", 400),
        ("q=happy&limit=ten", "limit", 400), ("q=happy&offset=-1", "offset", 400),
        ("q=happy&offset=1001", "offset", 400), ("q=happy&offset=1e3", "offset", 400),
        ("q=happy&market=usa", "market", 400), ("q=happy&market=se", "market", 400),
        ("q=happy&debug=2", "debug", 400), ("q=happy&limit=50&offset=1000", None, 200),
    ]
    for path in ("/v1/search", "/v1/search/suggest"):
        for qs, msg, want in cases:
            if path.endswith("suggest") and any(k in qs for k in ("limit", "offset", "debug")):
                continue
            st, body, _ = bob.get(path + "?" + qs)
            expect(st, want, "%s?%s: %r" % (path, qs[:60], body))
            if want == 400:
                assert isinstance(body, dict) and body["error"]["status"] == 400, body
                if msg:
                    assert msg in body["error"]["message"], (qs[:60], body)
    st, body, _ = search(bob, '"happy" NEAR*', type="track")
    assert "Happy" in names(body, "tracks"), "FTS syntax is plain text"
    expect(bob.get("/v1/search?q=happy")[0], 200, "server still up")
    expect(srv.conn().get("/v1/search?q=happy")[0], 401, "needs a token")


def test_encore_search_prints_groups_and_json(srv):
    cli = Cli(srv.url, "bob")
    rc, out, err = cli.run("search", "bjork")
    expect(rc, 0, err)
    (tid, tname, album), = db(srv, "SELECT t.id, t.name, al.name FROM tracks t JOIN artists ar ON ar.id = t.artist_id"
                                   " JOIN albums al ON al.id = t.album_id WHERE ar.name = 'The Blue Björk Trio'"
                                   " ORDER BY t.popularity DESC LIMIT 1")
    lines = out.splitlines()
    assert lines[0].startswith("Tracks ("), out
    assert "%s \u2014 The Blue Björk Trio \u2014 %s  encore:track:%s" % (tname, album, tid) in out, out
    assert "Artists (" in out and "The Blue Björk Trio  encore:artist:" in out, out
    rc, out, err = cli.run("search", "bjork", "--type", "artist", "--limit", "1", "--json")
    expect(rc, 0, err)
    got = json.loads(out)
    st, want, _ = search(srv.login("bob"), "bjork", type="artist", limit=1)
    expect(got, want, "--json is the API answer as received")
    rc, out, err = cli.run("search", "bjork", "--type", "song")
    assert rc == 1 and "type must be" in err, (rc, err)
    rc, out, err = cli.run("search")
    expect(rc, 2, "missing query")
    rc, out, err = cli.run("search", "qqqqzzzz")
    assert rc == 0 and "No results" in out, (rc, out)


def test_encore_play_a_misspelled_title_plays_that_track(srv):
    (title,), = db(srv, "SELECT name FROM tracks WHERE markets = '' AND length(name) > 12 ORDER BY popularity DESC LIMIT 1")
    bob = srv.login("bob")
    st, body, _ = search(bob, title, type="track", limit=1)
    want = body["tracks"]["items"][0]["uri"]
    words = title.split()
    w = max(words, key=len)
    typo = title.replace(w, w[0] + w[2] + w[1] + w[3:], 1).lower()   # transpose two letters
    cli = Cli(srv.url, "bob")
    rc, out, err = cli.run("play", *typo.split(), "--output", "null", "--duration", "1", "--json")
    expect(rc, 0, err)
    started = [e for e in events(out) if e["event"] in ("started", "track_changed")]
    assert started, out
    expect(started[0]["uri"], want, "played %r for %r" % (started[0].get("title"), typo))


# ---- recall over the demo vocabulary ----

def one_edit(rnd, w):
    p = rnd.randrange(len(w))
    c = rnd.choice("abcdefghijklmnopqrstuvwxyz")
    kind = rnd.randrange(4)
    if kind == 0:
        return w[:p] + c + w[p + 1:] if w[p] != c else w[:p] + ("b" if c == "a" else "a") + w[p + 1:]
    if kind == 1:
        return w[:p] + w[p + 1:]
    if kind == 2:
        return w[:p] + c + w[p:]
    p = min(p, len(w) - 2)
    return w[:p] + w[p + 1] + w[p] + w[p + 2:] if w[p] != w[p + 1] else w[:p] + c + w[p + 1:]


def strip_accents(s):
    return "".join(ch for ch in unicodedata.normalize("NFKD", s) if not unicodedata.combining(ch))


def test_recall_over_the_demo_catalog():
    data = tempfile.mkdtemp(prefix="search-recall-")
    try:
        r = subprocess.run([ENCORED, "seed-catalog", "--data", data, "--tracks", "600", "--plan", "demo"],
                           capture_output=True, text=True)
        expect(r.returncode, 0, r.stderr)
        with Server(["--rate-limit-user", "100000:100000", "--rate-limit-ip", "100000:100000"], seed=False,
                    data=data) as srv:
            recall_cases(srv)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def recall_cases(srv):
    # Unplayable items rank last by design, so each query is asked by a listener in a country
    # where its target plays (alice SE, bob US): recall measures matching, not availability.
    alice, bob = srv.login("alice"), srv.login("bob")
    who = {}
    rnd = random.Random(20260101)
    items = []
    for i, n, m in db(srv, "SELECT id, name, markets FROM tracks"):
        items.append(("track", i, n))
        who[i] = bob if m == "US" else alice
    items += [("artist", i, n) for i, n in db(srv, "SELECT id, name FROM artists")]
    kinds = {"one edit": [], "two edits (9+ letters)": [], "accents stripped": [], "case changed": [], "prefix": []}
    for typ, iid, name in items:
        words = name.split()
        latin = [k for k, w in enumerate(words) if w.isalpha() and w.isascii() and len(w) >= 5]
        if latin:
            k = rnd.choice(latin)
            kinds["one edit"].append((typ, iid, " ".join(words[:k] + [one_edit(rnd, words[k].lower())] + words[k + 1:])))
        long_words = [k for k, w in enumerate(words) if w.isalpha() and w.isascii() and len(w) >= 9]
        if long_words:
            for _ in range(3):   # long words are few in the demo vocabulary: three draws each
                k = rnd.choice(long_words)
                w2 = one_edit(rnd, one_edit(rnd, words[k].lower()))
                kinds["two edits (9+ letters)"].append((typ, iid, " ".join(words[:k] + [w2] + words[k + 1:])))
        if strip_accents(name) != name:
            kinds["accents stripped"].append((typ, iid, strip_accents(name)))
        kinds["case changed"].append((typ, iid, "".join(ch.upper() if rnd.random() < 0.5 else ch.lower() for ch in name)))
        if typ == "artist":
            for n in range(3, len(name)):
                if name[n - 1] != " ":
                    kinds["prefix"].append((typ, iid, name[:n]))
    rates = {}
    for kind, qs in kinds.items():
        found = 0
        misses = []
        for typ, iid, q in qs:
            st, body, _ = search(who.get(iid, alice), q, type=typ, limit=10)
            expect(st, 200, (q, body))
            ids = [i["id"] for i in body[typ + "s"]["items"]]
            if iid in ids:
                found += 1
            else:
                misses.append(q)
        rates[kind] = (found / len(qs) if qs else 1.0, len(qs))
        print("# recall@10 %-24s %.3f over %d queries%s" % (kind, rates[kind][0], len(qs),
                                                            ("; misses e.g. %r" % misses[:3]) if misses else ""))
    assert rates["one edit"][0] >= 0.97, rates
    assert rates["accents stripped"][0] >= 0.99 and rates["case changed"][0] >= 0.99, rates
    if rates["two edits (9+ letters)"][1] >= 20:
        assert rates["two edits (9+ letters)"][0] >= 0.9, rates
    assert rates["prefix"][0] >= 0.95, rates


if __name__ == "__main__":
    tap = Tap()
    with Server() as shared:
        for t in (test_every_paging_object_has_the_web_api_shape_and_full_objects,
                  test_typos_accents_case_and_cjk_substrings_find_the_demo_artists,
                  test_suggestions_complete_prefixes,
                  test_market_filters_with_market_and_sorts_by_country_without,
                  test_debug_adds_score_parts,
                  test_ingested_track_is_found_at_once_and_the_cache_is_not_stale,
                  test_bad_input_is_a_clear_400_or_searched_as_text,
                  test_encore_search_prints_groups_and_json,
                  test_encore_play_a_misspelled_title_plays_that_track):
            tap.run(t, shared)
    tap.run(test_recall_over_the_demo_catalog)
    tap.done()
