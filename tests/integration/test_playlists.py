"""Playlists through the real encored and encore: Web API routes and shapes, permissions,
bad input, snapshot rebasing, cursor paging under concurrent edits, a randomized
multi-client convergence run over HTTP with WebSocket-fed replicas, push delivery and
order, and the CLI's offline edit queue."""
import json
import os
import random
import sqlite3
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
from harness import Cli, Server, Tap, expect, wait_for  # noqa: E402
from wsclient import WS, Closed  # noqa: E402


def q(srv, sql, *args):
    con = sqlite3.connect(os.path.join(srv.data, "encore.db"))
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def track_uris(srv):
    return ["encore:track:" + r[0] for r in q(srv, "SELECT id FROM tracks ORDER BY id")]


def create(c, name="Test", public=True, collaborative=False):
    st, body, _ = c.req("POST", "/v1/me/playlists", {"name": name, "public": public, "collaborative": collaborative})
    expect(st, 201, "create playlist: %r" % (body,))
    return body


def all_items(c, pid):
    """Every item by offset paging, all pages from one snapshot: ([(item_id, uri)], snapshot).
    Offset pages are of the current list, so a walk that saw the snapshot change restarts."""
    while True:
        out, off, snap = [], 0, None
        while True:
            st, page, _ = c.get("/v1/playlists/%s/tracks?offset=%d&limit=100" % (pid, off))
            expect(st, 200, "tracks page: %r" % (page,))
            if snap is not None and page["snapshot_id"] != snap:
                break
            snap = page["snapshot_id"]
            out += [(i["item_id"], i["track"]["uri"] if i["track"] else None) for i in page["items"]]
            if not page["next"]:
                return out, snap
            off += 100


def uris_of(c, pid):
    return [u for _, u in all_items(c, pid)[0]]


def add(c, pid, uris, **kw):
    body = dict(uris=uris, **kw)
    st, r, _ = c.req("POST", "/v1/playlists/%s/tracks" % pid, body)
    expect(st, 201, "add tracks: %r" % (r,))
    return r["snapshot_id"]


def ws_for(srv, c):
    w = WS(srv.host, srv.port)
    w.send({"type": "auth", "token": c.token})
    expect(w.recv()["type"], "auth_ok", "ws auth")
    return w


def subscribe(w, pid):
    m, _ = w.recv_until(lambda m: m.get("type") in ("subscribed", "error") and m.get("playlist") == pid)
    return m


# ---------------------------------------------------------------- routes and shapes

def test_create_get_update_follow_have_web_api_shapes(srv):
    alice, bob = srv.login("alice"), srv.login("bob")
    p = create(alice, "Morning", public=True)
    for k in ("collaborative", "description", "external_urls", "followers", "href", "id", "images", "name",
              "owner", "public", "snapshot_id", "tracks", "type", "uri"):
        assert k in p, "playlist object lacks %s: %r" % (k, sorted(p))
    expect((p["type"], p["uri"], p["owner"]["id"], p["tracks"]["total"]),
           ("playlist", "encore:playlist:" + p["id"], "alice", 0), "new playlist")
    st, p2, _ = alice.req("POST", "/v1/users/alice/playlists", {"name": "Second", "description": "d"})
    expect((st, p2["description"]), (201, "d"), "create for self via /v1/users/{id}")
    expect(alice.req("POST", "/v1/users/bob/playlists", {"name": "x"})[0], 403, "create for someone else")
    st, _, _ = alice.req("PUT", "/v1/playlists/" + p["id"], {"name": "Evening", "description": "late",
                                                             "image": "http://img/x.png"})
    expect(st, 200, "owner updates details")
    st, g, _ = bob.get("/v1/playlists/" + p["id"])
    expect((st, g["name"], g["description"], g["images"][0]["url"]), (200, "Evening", "late", "http://img/x.png"),
           "details after update (write-through metadata cache)")
    expect(bob.req("PUT", "/v1/playlists/" + p["id"], {"name": "mine"})[0], 403, "non-owner updates details")
    st, f, _ = bob.req("PUT", "/v1/playlists/%s/followers" % p["id"], {})
    expect((st, f["followers"]["total"]), (200, 1), "follow")
    st, mine, _ = bob.get("/v1/me/playlists")
    assert p["id"] in [x["id"] for x in mine["items"]], "followed playlist missing from /v1/me/playlists"
    st, mine, _ = alice.get("/v1/me/playlists?limit=1")
    expect((st, mine["total"], len(mine["items"]), mine["items"][0]["tracks"].keys() >= {"href", "total"}),
           (200, 2, 1, True), "paged /v1/me/playlists with simplified objects")
    expect(bob.get("/v1/playlists/" + p["id"])[2].getheader("etag") is not None, True, "GET has an ETag")


def test_add_reorder_remove_each_return_a_new_snapshot(srv):
    alice = srv.login("alice")
    u = track_uris(srv)
    p = create(alice)
    pid = p["id"]
    s1 = add(alice, pid, u[0:3])
    s2 = add(alice, pid, [u[3], u[4]], position=1)
    expect(uris_of(alice, pid), [u[0], u[3], u[4], u[1], u[2]], "insert at a position")
    st, r, _ = alice.req("PUT", "/v1/playlists/%s/tracks" % pid, {"range_start": 1, "range_length": 2, "insert_before": 5})
    expect(st, 200, "reorder")
    s3 = r["snapshot_id"]
    expect(uris_of(alice, pid), [u[0], u[1], u[2], u[3], u[4]], "reorder a range to the end")
    st, r, _ = alice.req("DELETE", "/v1/playlists/%s/tracks" % pid, {"tracks": [{"uri": u[1]}, {"uri": u[4], "positions": [4]}]})
    expect(st, 200, "remove")
    s4 = r["snapshot_id"]
    expect(uris_of(alice, pid), [u[0], u[2], u[3]], "remove by URI and by URI+position")
    assert len({s1, s2, s3, s4}) == 4, "snapshots repeat: %r" % [s1, s2, s3, s4]
    st, r, _ = alice.req("PUT", "/v1/playlists/%s/tracks" % pid, {"uris": [u[5], u[6]]})
    expect((st, uris_of(alice, pid)), (200, [u[5], u[6]]), "replace all items")
    st, g, _ = alice.get("/v1/playlists/" + pid)
    expect((g["snapshot_id"], g["tracks"]["total"]), (r["snapshot_id"], 2), "object shows the latest snapshot")
    item = g["tracks"]["items"][0]
    for k in ("added_at", "added_by", "is_local", "item_id", "track"):
        assert k in item, "playlist track object lacks %s" % k
    expect((item["added_by"]["id"], item["track"]["type"]), ("alice", "track"), "item shape")
    ep = q(srv, "SELECT id FROM episodes LIMIT 1")
    if ep:
        add(alice, pid, ["encore:episode:" + ep[0][0]])
        st, t, _ = alice.get("/v1/playlists/%s/tracks?offset=2" % pid)
        expect(t["items"][0]["track"]["type"], "episode", "episodes can be playlist items")
    st, ch, _ = alice.get("/v1/playlists/%s/changes?since=%s" % (pid, s4))
    assert st == 200 and ch["ops"] and all(o["op"] in ("insert", "remove") for o in ch["ops"]), ch


def test_permissions_owner_collaborator_other_and_private(srv):
    alice, bob, chen = srv.login("alice"), srv.login("bob"), srv.login("chen")
    u = track_uris(srv)
    priv = create(alice, "Secret", public=False)["id"]
    pub = create(alice, "Open", public=True)["id"]
    for path in ("/v1/playlists/" + priv, "/v1/playlists/%s/tracks" % priv):
        expect(bob.get(path)[0], 404, "private playlist is invisible: GET " + path)
    expect(bob.req("POST", "/v1/playlists/%s/tracks" % priv, {"uris": [u[0]]})[0], 404, "edit invisible playlist")
    expect(bob.req("PUT", "/v1/playlists/%s/followers" % priv, {})[0], 404, "follow invisible playlist")
    expect(bob.get("/v1/playlists/" + pub)[0], 200, "public playlist readable")
    expect(bob.req("POST", "/v1/playlists/%s/tracks" % pub, {"uris": [u[0]]})[0], 403, "other user adds")
    expect(bob.req("DELETE", "/v1/playlists/%s/tracks" % pub, {"tracks": [{"uri": u[0]}]})[0], 403, "other user removes")
    expect(bob.req("PUT", "/v1/playlists/%s/tracks" % pub, {"range_start": 0, "insert_before": 0})[0], 403, "other user reorders")
    expect(bob.req("POST", "/v1/playlists/%s/collaborators" % priv, {"id": "bob"})[0], 404, "invite self to private")
    expect(bob.req("POST", "/v1/playlists/%s/collaborators" % pub, {"id": "bob"})[0], 403, "non-owner invites")
    st, r, _ = alice.req("POST", "/v1/playlists/%s/collaborators" % priv, {"id": "bob"})
    expect((st, r["collaborators"]), (201, ["bob"]), "owner invites bob")
    expect(alice.req("POST", "/v1/playlists/%s/collaborators" % priv, {"id": "nobody-here"})[0], 404, "invite unknown user")
    expect(bob.get("/v1/playlists/" + priv)[0], 200, "collaborator reads private playlist")
    expect(bob.req("POST", "/v1/playlists/%s/tracks" % priv, {"uris": [u[1]]})[0], 201, "collaborator adds")
    expect(chen.get("/v1/playlists/" + priv)[0], 404, "third user still cannot see it")
    expect(bob.req("PUT", "/v1/playlists/" + priv, {"name": "x"})[0], 403, "collaborator cannot rename")
    st, _, _ = alice.req("DELETE", "/v1/playlists/%s/collaborators" % priv, {"id": "bob"})
    expect(st, 200, "owner removes collaborator")
    expect(bob.get("/v1/playlists/" + priv)[0], 404, "removed collaborator loses access")


def test_bad_input_gets_clear_4xx(srv):
    alice = srv.login("alice")
    u = track_uris(srv)
    pid = create(alice)["id"]
    add(alice, pid, u[:3])
    base = "/v1/playlists/%s/tracks" % pid
    cases = [
        ("POST", base, {"uris": [u[0]] * 101}, 400, "101 items"),
        ("POST", base, {"uris": []}, 400, "no items"),
        ("POST", base, {"uris": "encore:track:x"}, 400, "uris not a list"),
        ("POST", base, {"uris": ["spotify:track:4iV5W9uYEdYUVa79Axb7Rh"]}, 400, "foreign URI"),
        ("POST", base, {"uris": ["encore:track:short"]}, 400, "malformed id"),
        ("POST", base, {"uris": ["encore:album:" + u[0].split(":")[2]]}, 400, "album URI"),
        ("POST", base, {"uris": ["encore:track:" + "A" * 22]}, 400, "unknown track"),
        ("POST", base, {"uris": [u[0]], "position": 4}, 400, "position past the end"),
        ("POST", base, {"uris": [u[0]], "position": -1}, 400, "negative position"),
        ("POST", base, {"uris": [u[0]], "position": "1"}, 400, "position as a string"),
        ("POST", base, {"uris": [u[0]], "snapshot_id": "garbage"}, 400, "bad snapshot id"),
        ("POST", base, "{not json", 400, "malformed JSON"),
        ("POST", base, [1, 2], 400, "body not an object"),
        ("PUT", base, {"range_start": 3, "insert_before": 0}, 400, "range start out of range"),
        ("PUT", base, {"range_start": 0, "range_length": 4, "insert_before": 0}, 400, "range too long"),
        ("PUT", base, {"range_start": 0, "insert_before": 9}, 400, "insert_before out of range"),
        ("PUT", base, {"range_start": 0}, 400, "no insert_before"),
        ("DELETE", base, {"tracks": [{"uri": u[0], "positions": [2]}]}, 400, "position does not hold the URI"),
        ("DELETE", base, {"tracks": [{"uri": u[0]}] * 101}, 400, "101 tracks to remove"),
        ("DELETE", base, {"tracks": [{"uri": "nope"}]}, 400, "malformed URI to remove"),
        ("GET", base + "?cursor=zzzz", None, 400, "bad cursor"),
        ("GET", base + "?limit=101", None, 400, "limit over 100"),
        ("GET", "/v1/playlists/%s" % ("B" * 22), None, 404, "unknown playlist"),
        ("POST", "/v1/playlists/%s/tracks" % ("B" * 22), {"uris": [u[0]]}, 404, "add to unknown playlist"),
        ("GET", "/v1/playlists/not-an-id", None, 400, "malformed playlist id"),
        ("POST", "/v1/me/playlists", {"name": ""}, 400, "empty name"),
        ("POST", "/v1/me/playlists", {"name": "x", "public": "yes"}, 400, "public not a boolean"),
        ("GET", "/v1/playlists/%s/changes?since=xyz" % pid, None, 400, "bad since"),
    ]
    for method, path, body, want, what in cases:
        st, r, _ = alice.req(method, path, body)
        expect(st, want, what)
        assert isinstance(r, dict) and r["error"]["status"] == want and r["error"]["message"], (what, r)
    expect(uris_of(alice, pid), u[:3], "rejected requests changed nothing")


# ---------------------------------------------------------------- rebasing and paging

def test_edit_against_old_snapshot_is_rebased(srv):
    alice, bob = srv.login("alice"), srv.login("bob")
    u = track_uris(srv)
    pid = create(alice)["id"]
    alice.req("POST", "/v1/playlists/%s/collaborators" % pid, {"id": "bob"})
    seen = add(alice, pid, u[0:4])  # alice sees A B C D
    add(bob, pid, [u[5], u[6]], position=0)  # bob: F G A B C D
    st, _, _ = bob.req("DELETE", "/v1/playlists/%s/tracks" % pid, {"tracks": [{"uri": u[1]}]})  # F G A C D
    # Alice, still looking at A B C D: insert X at 2 (after B), move A (0) before D (3), remove C at 2.
    add(alice, pid, [u[7]], position=2, snapshot_id=seen)
    expect(uris_of(alice, pid), [u[5], u[6], u[0], u[7], u[2], u[3]], "insert rebased after B's old place")
    st, r, _ = alice.req("PUT", "/v1/playlists/%s/tracks" % pid, {"range_start": 0, "insert_before": 3, "snapshot_id": seen})
    expect(st, 200, "stale reorder accepted")
    expect(uris_of(alice, pid), [u[5], u[6], u[7], u[2], u[0], u[3]], "move rebased: A lands before D as alice saw it")
    st, r, _ = alice.req("DELETE", "/v1/playlists/%s/tracks" % pid, {"tracks": [{"uri": u[2], "positions": [2]}], "snapshot_id": seen})
    expect(st, 200, "stale positional remove")
    expect(uris_of(alice, pid), [u[5], u[6], u[7], u[0], u[3]], "positional remove resolved in the old snapshot")


def test_cursor_paging_is_stable_under_concurrent_edits(srv):
    alice = srv.login("alice")
    u = track_uris(srv)
    pid = create(alice)["id"]
    for _ in range(3):
        add(alice, pid, [u[i % len(u)] for i in range(100)])
    initial, _ = all_items(alice, pid)
    stop = threading.Event()
    removed, lock, errors, edits = set(), threading.Lock(), [], [0]

    def editor(seed):
        c = srv.login("alice")
        rnd = random.Random(seed)
        while not stop.is_set():
            try:
                items, snap = all_items(c, pid)
                if rnd.random() < 0.5 or len(items) < 50:
                    st, _, _ = c.req("POST", "/v1/playlists/%s/tracks" % pid,
                                     {"uris": [rnd.choice(u)], "position": rnd.randrange(len(items) + 1), "snapshot_id": snap})
                else:
                    pos = rnd.randrange(len(items))
                    st, _, _ = c.req("DELETE", "/v1/playlists/%s/tracks" % pid,
                                     {"tracks": [{"uri": items[pos][1], "positions": [pos]}], "snapshot_id": snap})
                    if st == 200:
                        with lock:
                            removed.add(items[pos][0])
                assert st in (200, 201), st
                with lock:
                    edits[0] += 1
            except Exception as e:  # reported after the walk
                errors.append(repr(e))
                return

    threads = [threading.Thread(target=editor, args=(s,)) for s in range(2)]
    for t in threads:
        t.start()
    got, cursor, pages = [], "", 0
    pager = srv.login("alice")
    try:
        while cursor is not None:
            st, page, _ = pager.get("/v1/playlists/%s/tracks?limit=7&cursor=%s" % (pid, cursor))
            expect(st, 200, "cursor page")
            got += [i["item_id"] for i in page["items"]]
            cursor = page["cursors"]["after"]
            pages += 1
            if pages % 5 == 0:
                # Make sure edits really interleave with the walk, whatever the scheduling.
                n0 = edits[0]
                wait_for(lambda: edits[0] > n0 or errors, 60, "an edit between pages")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    dupes = {i for i in got if got.count(i) > 1}
    assert not dupes, "items returned twice: %r" % sorted(dupes)[:5]
    survivors = [i for i, _ in initial if i not in removed]
    missing = [i for i in survivors if i not in set(got)]
    assert not missing, "%d items that lived through the walk were skipped: %r" % (len(missing), missing[:5])
    final, _ = all_items(alice, pid)
    assert len(final) != len(initial) or removed, "no edit happened during the walk (%d pages)" % pages


# ---------------------------------------------------------------- convergence

class Replica:
    """RGA with per-item last-writer-wins placement, fed by pushed ops: what a client computes."""

    def __init__(self):
        self.children = {(0, 0): []}
        self.parent = {}
        self.item_of = {}
        self.uri = {}
        self.winner = {}
        self.max_rm = {}
        self.version = 0
        self.applied = set()

    @staticmethod
    def pid(s):
        a, b = s.split(".")
        return (int(a), int(b))

    def apply(self, op):
        oid = self.pid(op["id"])
        if oid in self.applied:
            return
        self.applied.add(oid)
        item = self.pid(op["item"])
        if op["op"] == "insert":
            origin = self.pid(op["after"])
            self.children[oid] = []
            sib = self.children[origin]
            i = 0
            while i < len(sib) and sib[i] > oid:
                i += 1
            sib.insert(i, oid)
            self.item_of[oid] = item
            if item == oid:
                self.uri[item] = op["uri"]
            if item not in self.winner or oid > self.winner[item]:
                self.winner[item] = oid
        else:
            self.max_rm[item] = max(self.max_rm.get(item, (0, 0)), oid)

    def order(self):
        out, stack = [], list(reversed(self.children[(0, 0)]))
        while stack:
            e = stack.pop()
            it = self.item_of[e]
            if self.winner[it] == e and self.max_rm.get(it, (0, 0)) < e:
                out.append("%d.%d" % it)
            stack.extend(reversed(self.children[e]))
        return out


def test_random_multi_client_edits_converge_over_http(srv):
    users = ["alice", "bob", "chen", "admin"]
    clients = {n: srv.login(n) for n in users}
    owner = clients["alice"]
    u = track_uris(srv)
    pid = create(owner, "Jam", public=False, collaborative=True)["id"]
    for n in users[1:]:
        owner.req("POST", "/v1/playlists/%s/collaborators" % pid, {"id": n})
    add(owner, pid, u[:6])
    sockets = {n: ws_for(srv, clients[n]) for n in users}
    replicas = {n: Replica() for n in users}
    pushes = {n: [] for n in users}
    for n in users:
        sockets[n].send({"type": "subscribe", "playlist": pid})
        expect(subscribe(sockets[n], pid)["type"], "subscribed", "subscribe " + n)
    # Catch up from the log (the six inserts predate the subscriptions).
    st, ch, _ = owner.get("/v1/playlists/%s/changes" % pid)
    for n in users:
        for op in ch["ops"]:
            replicas[n].apply(op)
        replicas[n].version = ch["version"]
    acked, errors = [], []
    offline_batch = []

    def reader(n):
        w = sockets[n]
        try:
            while True:
                m = w.recv(timeout=120)
                if m.get("type") == "playlist_changed":
                    pushes[n].append(m)
                    if m["version"] > replicas[n].version:
                        for op in m["ops"]:
                            replicas[n].apply(op)
                        replicas[n].version = m["version"]
        except Closed:
            return
        except Exception as e:
            errors.append("%s reader: %r" % (n, e))

    def editor(n, seed):
        c = srv.login(n)
        rnd = random.Random(seed)
        try:
            for step in range(25):
                items, snap = all_items(c, pid)
                if rnd.random() < 0.3 and len(items) > 0:
                    # A stale snapshot: an older one this client saw.
                    snap = rnd.choice(seen_snaps[n]) if seen_snaps[n] else snap
                    items = snap_lists.get(snap, items)
                seen_snaps[n].append(snap)
                snap_lists[snap] = items
                r = rnd.random()
                body, method = None, None
                if r < 0.5 or len(items) < 3:
                    run = [rnd.choice(u) for _ in range(rnd.randint(1, 4))]
                    body, method = {"uris": run, "position": rnd.randrange(len(items) + 1), "snapshot_id": snap}, "POST"
                elif r < 0.8:
                    start = rnd.randrange(len(items))
                    body, method = {"range_start": start, "range_length": rnd.randint(1, min(3, len(items) - start)),
                                    "insert_before": rnd.randrange(len(items) + 1), "snapshot_id": snap}, "PUT"
                else:
                    pos = rnd.randrange(len(items))
                    body, method = {"tracks": [{"uri": items[pos][1], "positions": [pos]}], "snapshot_id": snap}, "DELETE"
                if n == "admin" and step % 5 == 4:
                    offline_batch.append((method, body))  # made offline, sent at the end
                    continue
                st, resp, _ = c.req(method, "/v1/playlists/%s/tracks" % pid, body)
                assert st in (200, 201), (n, method, body, st, resp)
                acked.append((n, method, resp["snapshot_id"]))
        except Exception as e:
            errors.append("%s editor: %r" % (n, e))

    seen_snaps = {n: [] for n in users}
    snap_lists = {}
    readers = [threading.Thread(target=reader, args=(n,), daemon=True) for n in users]
    for t in readers:
        t.start()
    editors = [threading.Thread(target=editor, args=(n, i)) for i, n in enumerate(users)]
    for t in editors:
        t.start()
    for t in editors:
        t.join()
    # The offline batch reconnects: replayed against the snapshots it was made on.
    for method, body in offline_batch:
        st, resp, _ = clients["admin"].req(method, "/v1/playlists/%s/tracks" % pid, body)
        assert st in (200, 201), ("offline replay", method, body, st, resp)
        acked.append(("admin", method, resp["snapshot_id"]))
    assert not errors, errors
    final, snap = all_items(owner, pid)
    st, ch, _ = owner.get("/v1/playlists/%s/changes" % pid)
    version = ch["version"]
    for n in users:
        wait_for(lambda: replicas[n].version >= version, 60, "%s's replica to reach version %d" % (n, version))
    server_order = [i for i, _ in final]
    for n in users:
        expect(replicas[n].order(), server_order, "replica %s equals the server" % n)
    # Every acknowledged insert not later removed is present.
    ops = ch["ops"]
    removed = {o["item"] for o in ops if o["op"] == "remove"}
    placements = {}
    for v, o in enumerate(ops, 1):
        if o["op"] == "insert":
            placements[o["item"]] = (v, o["id"])
    inserted = [o["item"] for o in ops if o["op"] == "insert" and o["item"] == o["id"]]
    missing = [i for i in inserted if i not in removed and i not in server_order]
    assert not missing, "acknowledged inserts lost: %r" % missing
    assert len(acked) >= 60, "only %d edits acknowledged" % len(acked)
    # No run interleaved: between two unmoved items of one request's run, only items placed
    # after that request.
    pos = {i: k for k, i in enumerate(server_order)}
    checked = 0
    for m in pushes["alice"]:
        run = [o["id"] for o in m["ops"] if o["op"] == "insert" and o["item"] == o["id"]]
        if len(run) >= 2:
            checked += check_run(run, pos, placements, m["version"], server_order)
    assert checked > 0, "no run survived to be checked"
    for n in users:
        sockets[n].close()


def check_run(run, pos, placements, run_version, order):
    live = [i for i in run if i in pos and placements[i][1] == i]  # present and never moved
    checked = 0
    for a, b in zip(live, live[1:]):
        for k in range(pos[a] + 1, pos[b]):
            between = order[k]
            assert placements[between][0] > run_version, \
                "run %r interleaved with %s placed before the run finished" % (run, between)
        checked += 1
    return checked


# ---------------------------------------------------------------- push

def test_websocket_pushes_every_change_in_order_and_refuses_bad_clients(srv):
    alice, bob, chen = srv.login("alice"), srv.login("bob"), srv.login("chen")
    u = track_uris(srv)
    pid = create(alice, "Live", public=False)["id"]
    alice.req("POST", "/v1/playlists/%s/collaborators" % pid, {"id": "bob"})
    w = WS(srv.host, srv.port, path="/?token=" + alice.token)  # token in the query string
    expect(w.recv()["type"], "auth_ok", "query-string auth")
    w.send({"type": "subscribe", "playlist": pid})
    expect(subscribe(w, pid)["type"], "subscribed", "owner subscribes")
    snaps = []
    for i in range(10):
        snaps.append(add(bob, pid, [u[i % len(u)], u[(i + 1) % len(u)]], position=0))
    got = [w.recv_until(lambda m: m.get("type") == "playlist_changed")[0] for _ in range(10)]
    expect([m["snapshot_id"] for m in got], snaps, "pushes arrive once each, in order")
    expect({m["by"] for m in got}, {"bob"}, "pushes name the editor")
    assert all(len(m["ops"]) == 2 and m["ops"][0]["op"] == "insert" for m in got), got[0]
    versions = [m["version"] for m in got]
    expect(versions, sorted(versions), "versions increase")
    # Others: chen cannot subscribe to a private playlist; no auth, no subscription.
    wc = ws_for(srv, chen)
    wc.send({"type": "subscribe", "playlist": pid})
    m = subscribe(wc, pid)
    expect((m["type"], m["status"]), ("error", 404), "private playlist subscription refused")
    wn = WS(srv.host, srv.port)
    wn.send({"type": "subscribe", "playlist": pid})
    expect(wn.recv()["status"], 401, "subscribe before auth")
    wn.send("{not json")
    expect(wn.recv()["type"], "error", "malformed message answered")
    wn.send({"type": "ping"})
    expect(wn.recv()["type"], "pong", "connection survives bad messages")
    for send, code, what in ((lambda s: s.send({"type": "auth", "token": "a.b.c"}), 4001, "forged token"),
                             (lambda s: s.send("x" * 9000), 1009, "oversized message"),
                             (lambda s: s.send_frame(0x2, b"\x00\x01"), 1003, "binary message")):
        s = WS(srv.host, srv.port)
        send(s)
        try:
            s.recv(timeout=30)
            raise AssertionError("%s: connection stayed open" % what)
        except Closed as e:
            expect(e.code, code, what + " close code")
    try:
        WS(srv.host, srv.port, protocol=None)
        raise AssertionError("upgrade without the encore-v1 subprotocol accepted")
    except (ConnectionError, Closed):
        pass
    expect(alice.get("/v1/playlists/" + pid)[0], 200, "server keeps serving HTTP")
    add(bob, pid, [u[0]])
    expect(w.recv_until(lambda m: m.get("type") == "playlist_changed")[0]["by"], "bob", "subscriber still live")
    for s in (w, wc, wn):
        s.close()


def log_rec(srv, rid):
    """encored's access-log record of a request id (written once the response is sent)."""
    def find():
        for line in srv.log_text().splitlines():
            if line.startswith("{") and rid in line:
                rec = json.loads(line)
                if rec.get("rid") == rid:
                    return rec
        return None
    return wait_for(find, 30, "log line of request " + rid)


def test_pages_answered_from_memory_equal_the_rendered_ones(srv):
    """The second read of a page is served from the hydrated list (on the I/O thread): the
    same bytes and ETag as the first, rendered, one; 304 on If-None-Match; a new ETag after
    an edit; and the gateway's checks (token, privacy, paging arguments) still hold."""
    alice, chen = srv.login("alice"), srv.login("chen")
    u = track_uris(srv)
    pid = create(alice, "Memory", public=False)["id"]
    add(alice, pid, [u[i % len(u)] for i in range(100)])
    add(alice, pid, [u[i % len(u)] for i in range(50)])
    for path in ("/v1/playlists/%s/tracks?offset=100&limit=30" % pid, "/v1/playlists/%s/tracks?cursor=&limit=40" % pid):
        st1, b1, r1 = alice.raw("GET", path)
        st2, b2, r2 = alice.raw("GET", path)
        expect((st1, st2), (200, 200), path)
        expect(b2, b1, "the page from memory equals the rendered one: " + path)
        expect([log_rec(srv, r.getheader("x-request-id")).get("io_thread", False) for r in (r1, r2)], [False, True],
               "first read rendered by a worker, the second answered on the I/O thread")
        tag = r1.getheader("etag")
        assert tag, "no ETag"
        expect(r2.getheader("etag"), tag, "same ETag")
        st, b, _ = alice.raw("GET", path, headers={"If-None-Match": tag})
        expect((st, b), (304, b""), "If-None-Match")
        expect(chen.raw("GET", path)[0], 404, "private to others, also once it is in memory")
        expect(srv.login("alice").raw("GET", path, headers={"Authorization": "Bearer x.y.z"})[0], 401, "bad token")
    path = "/v1/playlists/%s/tracks?offset=0&limit=100" % pid
    _, b1, r1 = alice.raw("GET", path)
    _, b2, _ = alice.raw("GET", path)
    expect(b2, b1, "offset page from memory")
    page = json.loads(b1)
    expect((len(page["items"]), page["total"], page["next"] is not None), (100, 150, True), "page shape")
    add(alice, pid, [u[0]], position=0)
    _, b3, r3 = alice.raw("GET", path)
    assert r3.getheader("etag") != r1.getheader("etag"), "ETag unchanged after an edit"
    expect(json.loads(b3)["items"][1]["item_id"], page["items"][0]["item_id"], "the edit shows at once")
    expect(alice.raw("GET", "/v1/playlists/%s/tracks?limit=101" % pid)[0], 400, "limit over 100")
    expect(alice.raw("GET", "/v1/playlists/%s/tracks?cursor=zz&limit=5" % pid)[0], 400, "bad cursor")


def apply_change(rows, change):
    """Applies a push's positional change to [(item_id, uri)] rows (PROTOCOL.md)."""
    gone = {p: rows[p] for p in change["remove"]}
    assert change["remove"] == sorted(set(change["remove"])), change["remove"]
    kept = [r for i, r in enumerate(rows) if i not in gone]
    run = []
    for it in change["items"]:
        if "from" in it:
            assert it["from"] in gone, ("moved row did not leave", it)
            assert gone[it["from"]][0] == it["item_id"], ("moved row is another item", it, gone[it["from"]])
            run.append(gone[it["from"]])
        else:
            assert it["track"] and it["track"]["name"] and it["track"]["duration_ms"] > 0, it
            run.append((it["item_id"], it["track"]["uri"]))
    at = change["insert_at"] if run else 0
    out = kept[:at] + run + kept[at:]
    expect(len(out), change["total"], "change total")
    return out


def test_push_change_replays_every_edit_as_positions(srv):
    """Random adds, moves, removes and a replace, some against stale snapshots: each push's
    `change`, applied to the rows at its base snapshot, gives exactly the list after it."""
    alice, bob = srv.login("alice"), srv.login("bob")
    u = track_uris(srv)
    pid = create(alice, "Positions", collaborative=True)["id"]
    alice.req("POST", "/v1/playlists/%s/collaborators" % pid, {"id": "bob"})
    add(alice, pid, [u[i % len(u)] for i in range(12)])
    rows, snap = all_items(alice, pid)
    w = ws_for(srv, alice)
    w.send({"type": "subscribe", "playlist": pid})
    expect(subscribe(w, pid)["type"], "subscribed", "subscribed")
    rng = random.Random(8)
    seen = [(snap, len(rows))]  # snapshots and their lengths, for edits from stale ones
    kinds = {}
    for step in range(40):
        c = rng.choice((alice, bob))
        n = len(rows)
        stale = rng.random() < 0.3 and len(seen) > 2
        body, lim = {}, n
        if stale:
            old, lim = rng.choice(seen[-4:-1])
            body["snapshot_id"] = old
        kind = "replace" if step == 20 else rng.choice(("add", "add", "move", "move", "remove"))
        if kind == "add" or lim < 3:
            kind = "add"
            body.update(uris=[rng.choice(u) for _ in range(rng.randint(1, 3))], position=rng.randint(0, lim))
            st, r, _ = c.req("POST", "/v1/playlists/%s/tracks" % pid, body)
        elif kind == "move":
            start = rng.randrange(lim - 1)
            length = rng.randint(1, min(3, lim - start))
            body.update(range_start=start, range_length=length, insert_before=rng.randint(0, lim))
            st, r, _ = c.req("PUT", "/v1/playlists/%s/tracks" % pid, body)
        elif kind == "remove":
            body = {}  # positions name the present list
            ps = sorted(rng.sample(range(n), min(2, n)))
            body["tracks"] = [{"uri": rows[p][1], "positions": [p]} for p in ps]
            st, r, _ = c.req("DELETE", "/v1/playlists/%s/tracks" % pid, body)
        else:
            body = {"uris": [rng.choice(u) for _ in range(5)]}
            st, r, _ = c.req("PUT", "/v1/playlists/%s/tracks" % pid, body)
        assert st in (200, 201), (kind, body, st, r)
        if r["snapshot_id"] == snap:
            continue  # nothing changed (a move onto itself): no push
        m, _ = w.recv_until(lambda m: m.get("type") == "playlist_changed" and m["snapshot_id"] == r["snapshot_id"])
        expect(m["base_snapshot_id"], snap, "push %d follows the previous one" % step)
        assert "change" in m, ("no positional change", kind, m)
        rows = apply_change(rows, m["change"])
        now, snap = all_items(alice, pid)
        expect(m["snapshot_id"], snap, "push is the latest")
        expect(rows, now, "rows after push %d (%s%s)" % (step, kind, ", stale" if stale else ""))
        seen.append((snap, len(rows)))
        kinds[kind] = kinds.get(kind, 0) + 1
    assert all(kinds.get(k) for k in ("add", "move", "remove", "replace")), kinds
    print("# %d pushes replayed as positions: %r" % (sum(kinds.values()), kinds))
    w.close()


# ---------------------------------------------------------------- CLI

def test_cli_edits_made_offline_queue_and_merge_on_reconnect(srv):
    u = track_uris(srv)
    cli = Cli(srv.url, "alice")
    rc, out, err = cli.run("playlist", "create", "Offline", "--collaborative")
    expect(rc, 0, "create: " + err)
    pid = out.strip().split(":")[-1]
    rc, out, err = cli.run("playlist", "add", pid, *u[:4])
    expect(rc, 0, "add: " + err)
    rc, out, err = cli.run("playlist", "show", pid, "--json")
    shown = json.loads(out)
    expect([i["uri"] for i in shown["items"]], u[:4], "show lists the items")
    expect(cli.run("playlist", "collab", pid, "bob")[0], 0, "invite bob")
    rc, out, _ = cli.run("playlist", "ls", "--json")
    assert pid in [p["id"] for p in json.loads(out)], out
    port, data = srv.port, srv.data
    srv.stop()
    # Offline: alice moves the first item to the end and adds one; both queue.
    rc, out, err = cli.run("playlist", "mv", pid, "0", "3", "--json")
    expect((rc, json.loads(out)), (0, {"queued": True}), "offline move queued: " + err)
    rc, out, err = cli.run("playlist", "add", pid, u[5])
    assert rc == 0 and "queued" in err, (rc, err)
    rc, out, err = cli.run("playlist", "show", pid)
    assert rc == 0 and "cached" in out, (rc, out, err)
    with Server(data=data, seed=False, args=["--listen", "127.0.0.1:%d" % port]) as srv2:
        bob = srv2.login("bob")
        add(bob, pid, [u[6], u[7]], position=0)  # someone else edits before alice reconnects
        rc, out, err = cli.run("playlist", "show", pid, "--json")
        expect(rc, 0, "reconnect: " + err)
        assert err.count("sent a queued edit") == 0  # --json keeps stderr quiet
        got = [i["uri"] for i in json.loads(out)["items"]]
        expect(got, [u[6], u[7], u[1], u[2], u[3], u[0], u[5]], "queued edits merged, rebased on the snapshot alice saw")
        expect(uris_of(srv2.login("alice"), pid), got, "the server agrees")
        rc, out, err = cli.run("playlist", "rm", pid, "encore:track:" + "A" * 22)
        expect(rc, 0, "removing an absent track is a no-op")
        expect(cli.run("playlist", "show", "nonsense")[0], 2, "bad id is a usage error")
        expect(cli.run("playlist", "show", "C" * 22)[0], 4, "unknown playlist exits 4")


def main():
    tap = Tap()
    with Server() as srv:
        for t in (test_create_get_update_follow_have_web_api_shapes,
                  test_add_reorder_remove_each_return_a_new_snapshot,
                  test_permissions_owner_collaborator_other_and_private,
                  test_bad_input_gets_clear_4xx,
                  test_edit_against_old_snapshot_is_rebased,
                  test_cursor_paging_is_stable_under_concurrent_edits,
                  test_random_multi_client_edits_converge_over_http,
                  test_websocket_pushes_every_change_in_order_and_refuses_bad_clients,
                  test_push_change_replays_every_edit_as_positions,
                  test_pages_answered_from_memory_equal_the_rendered_ones):
            tap.run(t, srv)
    srv = Server().start()
    try:
        tap.run(test_cli_edits_made_offline_queue_and_merge_on_reconnect, srv)
    finally:
        srv.stop()
        import shutil
        shutil.rmtree(srv.data, ignore_errors=True)
    tap.done()


if __name__ == "__main__":
    main()
