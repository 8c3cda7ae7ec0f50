"""The listener's library in the Web API's shapes: saved tracks and albums, followed
artists; per-user, idempotent, with clear errors for bad input."""
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Server, Tap, expect  # noqa: E402


def ids(srv, table, n):
    con = sqlite3.connect(os.path.join(srv.data, "encore.db"))
    try:
        return [r[0] for r in con.execute("SELECT id FROM %s ORDER BY id LIMIT ?" % table, (n,))]
    finally:
        con.close()


def test_saved_tracks_round_trip_per_user(srv):
    a, b = srv.login("alice"), srv.login("bob")
    t = ids(srv, "tracks", 3)
    expect(a.req("PUT", "/v1/me/tracks?ids=" + ",".join(t[:2]))[0], 200, "save two")
    expect(a.req("PUT", "/v1/me/tracks", {"ids": [t[2], t[0]]})[0], 200, "save by body, one again")
    st, page, _ = a.get("/v1/me/tracks?limit=2")
    expect((st, page["total"], page["limit"], len(page["items"])), (200, 3, 2, 2), "paging")
    item = page["items"][0]
    assert item["added_at"].endswith("Z") and item["track"]["type"] == "track", item
    st, has, _ = a.get("/v1/me/tracks/contains?ids=%s,%s" % (t[0], ids(srv, "tracks", 4)[3]))
    expect(has, [True, False], "contains")
    expect(b.get("/v1/me/tracks")[1]["total"], 0, "bob's library is his own")
    expect(a.req("DELETE", "/v1/me/tracks?ids=" + t[0])[0], 200, "remove")
    expect(a.get("/v1/me/tracks")[1]["total"], 2, "after removal")
    expect(a.req("DELETE", "/v1/me/tracks?ids=" + t[0])[0], 200, "remove twice is fine")


def test_saved_albums_and_followed_artists(srv):
    a = srv.login("chen")
    al = ids(srv, "albums", 2)
    ar = ids(srv, "artists", 2)
    expect(a.req("PUT", "/v1/me/albums?ids=" + ",".join(al))[0], 200, "save albums")
    st, page, _ = a.get("/v1/me/albums")
    expect((st, page["total"], page["items"][0]["album"]["type"]), (200, 2, "album"), "albums")
    expect(a.req("PUT", "/v1/me/following?type=artist&ids=" + ",".join(ar))[0], 200, "follow")
    st, f, _ = a.get("/v1/me/following?type=artist&limit=1")
    expect((st, f["artists"]["total"], len(f["artists"]["items"])), (200, 2, 1), "following page")
    after = f["artists"]["cursors"]["after"]
    assert after, f
    st, f2, _ = a.get("/v1/me/following?type=artist&limit=1&after=" + after)
    assert f2["artists"]["items"][0]["id"] != f["artists"]["items"][0]["id"], "cursor did not advance"
    expect(f2["artists"]["cursors"]["after"], None, "last page")
    expect(a.req("DELETE", "/v1/me/following?type=artist&ids=" + ar[0])[0], 200, "unfollow")
    expect(a.get("/v1/me/following?type=artist")[1]["artists"]["total"], 1, "after unfollow")


def test_bad_library_input(srv):
    a = srv.login("alice")
    t = ids(srv, "tracks", 1)[0]
    cases = [
        ("PUT", "/v1/me/tracks", None, 400, "no ids"),
        ("PUT", "/v1/me/tracks?ids=nope", None, 400, "bad id"),
        ("PUT", "/v1/me/tracks?ids=" + ",".join([t] * 51), None, 400, "51 ids"),
        ("PUT", "/v1/me/tracks?ids=" + "A" * 22, None, 404, "unknown track"),
        ("PUT", "/v1/me/tracks", {"ids": [5]}, 400, "number in ids"),
        ("PUT", "/v1/me/tracks", b"{bad json", 400, "malformed JSON"),
        ("PUT", "/v1/me/following?ids=" + t, None, 400, "missing type"),
        ("GET", "/v1/me/following?type=user", None, 400, "wrong type"),
        ("GET", "/v1/me/tracks?limit=0", None, 400, "bad limit"),
    ]
    for method, path, body, want, what in cases:
        expect(a.req(method, path, body)[0], want, what)
    expect(srv.conn().get("/v1/me/tracks")[0], 401, "needs a token")


if __name__ == "__main__":
    tap = Tap()
    with Server() as shared:
        for t in (test_saved_tracks_round_trip_per_user, test_saved_albums_and_followed_artists, test_bad_library_input):
            tap.run(t, shared)
    tap.done()
