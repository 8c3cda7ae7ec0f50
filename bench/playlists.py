"""Playlist benchmarks against a real encored:

1. Track pages of a 10,000-item playlist: server-side time of 100-item pages by offset
   (every offset once after an edit) and by cursor (a whole walk), p50/p99; peer: the
   catalog's album-tracks paging route in the same run. Two server-side measures from
   the access log: "ms", from the request parsed to the last byte handed to the kernel
   (queueing for a thread and the socket's pace included), and "handle_ms", the handler
   alone (a worker's, or the I/O thread's for pages answered from memory).
2. Push latency: 100 WebSocket subscribers on loopback; an editor makes 50 edits; latency
   is from just before the edit's HTTP request to each subscriber's receipt of the push,
   p50/p99 over all deliveries; peer: one HTTP poll round trip (GET .../changes?since=).

Goals: page p99 < 5 ms server-side; push p99 < 50 ms."""
import json
import os
import random
import selectors
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import Server  # noqa: E402
from wsclient import WS  # noqa: E402

ITEMS = int(os.environ.get("BENCH_ITEMS", "10000"))
SUBSCRIBERS = int(os.environ.get("BENCH_SUBSCRIBERS", "100"))
EDITS = int(os.environ.get("BENCH_EDITS", "50"))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def server_ms(srv, rids, key="ms"):
    want, out = set(rids), []
    for line in srv.log_text().splitlines():
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("rid") in want:
                out.append(rec.get(key, 0.0) if key != "io_thread" else bool(rec.get(key)))
    return out


def timed_get(c, path):
    st, body, r = c.raw("GET", path)
    assert st == 200, (path, st, body[:200])
    return r.getheader("x-request-id"), json.loads(body)


def main():
    print("load average at start: %.2f %.2f %.2f" % os.getloadavg())
    args = ["--rate-limit-user", "100000:100000", "--rate-limit-ip", "100000:100000"]
    with Server(args=args, tracks=12) as srv:
        alice = srv.login("alice")
        alice.get("/v1/me")  # warm the connection
        import sqlite3
        db = sqlite3.connect(os.path.join(srv.data, "encore.db"))
        uris = ["encore:track:" + r[0] for r in db.execute("SELECT id FROM tracks")]
        album = db.execute("SELECT album_id, count(*) FROM tracks GROUP BY album_id ORDER BY 2 DESC LIMIT 1").fetchone()[0]
        db.close()
        st, p, _ = alice.req("POST", "/v1/me/playlists", {"name": "Big", "public": True})
        pid = p["id"]
        t0 = time.monotonic()
        for i in range(0, ITEMS, 100):
            st, _, _ = alice.req("POST", "/v1/playlists/%s/tracks" % pid, {"uris": [uris[(i + k) % len(uris)] for k in range(100)]})
            assert st == 201, st
        fill_s = time.monotonic() - t0

        # Five rounds; each starts with one edit, so every page is a page-cache miss again.
        offsets = list(range(0, ITEMS, 100))
        # A first walk renders every item (one catalog lookup each), as a playlist's first
        # readers after a start-up do; the rounds then measure the steady state.
        t0 = time.monotonic()
        first = [timed_get(alice, "/v1/playlists/%s/tracks?offset=%d&limit=100" % (pid, o))[0] for o in offsets]
        first_ms = server_ms(srv, first)
        print("first walk after start-up (every item rendered): %.2f s; page p50 %.3f ms, p99 %.3f ms" % (
            time.monotonic() - t0, pct(first_ms, 50), pct(first_ms, 99)))
        rounds = []
        kinds = ("offset", "cursor", "offset again", "peer")
        io, count = {k: 0 for k in kinds}, {k: 0 for k in kinds}
        for rnd in range(5):
            alice.req("POST", "/v1/playlists/%s/tracks" % pid, {"uris": [uris[rnd]], "position": 0})
            random.Random(rnd).shuffle(offsets)
            rids = {}
            rids["offset"] = [timed_get(alice, "/v1/playlists/%s/tracks?offset=%d&limit=100" % (pid, o))[0] for o in offsets]
            rids["cursor"], cursor = [], ""
            while cursor is not None:
                rid, page = timed_get(alice, "/v1/playlists/%s/tracks?limit=100&cursor=%s" % (pid, cursor))
                rids["cursor"].append(rid)
                cursor = page["cursors"]["after"]
            rids["offset again"] = [timed_get(alice, "/v1/playlists/%s/tracks?offset=%d&limit=100" % (pid, o))[0] for o in offsets]
            rids["peer"] = [timed_get(alice, "/v1/albums/%s/tracks?limit=50&offset=0" % album)[0] for _ in range(len(offsets))]
            row = {}
            for k in kinds:
                tot, hnd = server_ms(srv, rids[k]), server_ms(srv, rids[k], "handle_ms")
                io[k] += sum(server_ms(srv, rids[k], "io_thread"))
                count[k] += len(rids[k])
                row[k] = (pct(tot, 50), pct(tot, 99), pct(hnd, 50), pct(hnd, 99))
            rounds.append(row)
        med = {k: [statistics.median(r[k][i] for r in rounds) for i in range(4)] for k in kinds}
        print("fill: %d items in %.2f s; medians of 5 rounds of 100 pages each, after an edit:" % (ITEMS, fill_s))
        print("%-28s %21s   %21s   %s" % ("", "total (ms) p50 / p99", "handler (ms) p50 / p99", "on the I/O thread"))
        labels = {"offset": "page of 100 by offset", "cursor": "page of 100 by cursor (walk)",
                  "offset again": "page of 100 by offset, again", "peer": "peer: album tracks (50)"}
        for k in kinds:
            m = med[k]
            print("%-28s %9.3f / %9.3f   %9.3f / %9.3f   %d of %d" % (labels[k], m[0], m[1], m[2], m[3], io[k], count[k]))
        print("worst round total p99: offset %.3f ms, cursor %.3f ms" % (
            max(r["offset"][1] for r in rounds), max(r["cursor"][1] for r in rounds)))
        page_p99 = max(med["offset"][1], med["cursor"][1])
        med = [med["offset"][0], med["offset"][1], 0, 0, 0, 0, med["peer"][0], med["peer"][1]]

        # Push latency.
        small = alice.req("POST", "/v1/me/playlists", {"name": "Live", "public": True})[1]["id"]
        subs = []
        for _ in range(SUBSCRIBERS):
            w = WS(srv.host, srv.port, path="/?token=" + alice.token)
            w.recv()
            w.send({"type": "subscribe", "playlist": small})
            w.recv_until(lambda m: m.get("type") == "subscribed")
            w.sock.setblocking(False)
            subs.append(w)
        sel = selectors.DefaultSelector()
        for w in subs:
            sel.register(w.sock, selectors.EVENT_READ, w)
        lat, polls = [], []
        editor = srv.login("alice")
        poller = srv.login("bob")
        for e in range(EDITS):
            t_send = time.monotonic()
            st, r, _ = editor.req("POST", "/v1/playlists/%s/tracks" % small, {"uris": [uris[e % len(uris)]]})
            assert st == 201
            pending = set(range(SUBSCRIBERS))
            deadline = time.monotonic() + 10
            while pending and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=1):
                    w = key.data
                    try:
                        chunk = w.sock.recv(65536)
                    except BlockingIOError:
                        continue
                    now = time.monotonic()
                    w.buf += chunk
                    # Frames from server are unmasked text frames; count whole ones.
                    while len(w.buf) >= 2:
                        n = w.buf[1] & 0x7F
                        hl = 2 + (2 if n == 126 else 8 if n == 127 else 0)
                        if len(w.buf) < hl:
                            break
                        if n == 126:
                            n = int.from_bytes(w.buf[2:4], "big")
                        elif n == 127:
                            n = int.from_bytes(w.buf[2:10], "big")
                        if len(w.buf) < hl + n:
                            break
                        msg = json.loads(w.buf[hl:hl + n])
                        w.buf = w.buf[hl + n:]
                        if msg.get("type") == "playlist_changed" and msg["snapshot_id"] == r["snapshot_id"]:
                            lat.append((now - t_send) * 1000)
                            pending.discard(subs.index(w))
            assert not pending, "%d subscribers missed edit %d" % (len(pending), e)
            t0 = time.monotonic()
            st, _, _ = poller.get("/v1/playlists/%s/changes?since=%s" % (small, r["snapshot_id"]))
            polls.append((time.monotonic() - t0) * 1000)
        print("push to %d subscribers: p50 %.2f ms, p99 %.2f ms over %d deliveries" % (SUBSCRIBERS, pct(lat, 50), pct(lat, 99), len(lat)))
        print("peer: one HTTP poll round trip: p50 %.2f ms, p99 %.2f ms" % (pct(polls, 50), pct(polls, 99)))
        for w in subs:
            w.close()
        peer = med[7]
        print("BENCH\tplaylist_page\tp99_ms_lower_better\t%.3f\talbum_tracks_route\t%.3f\t%.2f\t< 5 ms" % (page_p99, peer, page_p99 / peer if peer else 0))
        print("load average at end: %.2f %.2f %.2f" % os.getloadavg())
        pp = pct(polls, 99)
        print("BENCH\tplaylist_push\tp99_ms_lower_better\t%.2f\thttp_poll_rtt\t%.2f\t%.2f\t< 50 ms" % (pct(lat, 99), pp, pct(lat, 99) / pp if pp else 0))


if __name__ == "__main__":
    main()
