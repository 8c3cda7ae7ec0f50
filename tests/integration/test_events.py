"""The event log end to end: idempotent batch ingest, consumers with committed offsets,
the royalties report (30 s rule, audit), trending, recently played, /metrics, kill -9 of
encored during ingest, and the client outbox surviving a kill -9 of `encore play`."""
import calendar
import csv
import io
import json
import os
import random
import re
import signal
import sqlite3
import string
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import ENCORED, Cli, Server, Tap, attach_stores, events, expect, wait_for  # noqa: E402

ALNUM = string.ascii_letters + string.digits


def rid(rng=random):
    return "".join(rng.choice(ALNUM) for _ in range(22))


def q(srv, sql, *args):
    con = sqlite3.connect(os.path.join(srv.data, "encore.db"), timeout=30)
    attach_stores(con, srv.data)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def tracks(srv, n=3, skip=0):
    return [r[0] for r in q(srv, "SELECT id FROM tracks WHERE state = 'ready' ORDER BY id LIMIT ? OFFSET ?", n, skip)]


def new_user(srv, name, country="DE"):
    admin = srv.login("admin")
    st, body, _ = admin.req("POST", "/v1/admin/users", {"username": name, "password": "demo", "tier": "premium",
                                                        "country": country})
    assert st == 201, body
    return name


def now_ms():
    return int(time.time() * 1000)


def ev(type_, track, ts=None, **kw):
    e = {"id": rid(), "type": type_, "ts": ts or now_ms(), "uri": "encore:track:" + track}
    e.update(kw)
    return e


def caught_up(admin):
    st, body, _ = admin.get("/v1/admin/consumers")
    assert st == 200, body
    return body if all(c["lag"] == 0 for c in body["consumers"]) else None


def test_duplicate_replayed_and_reordered_batches_count_once(srv):
    a = srv.login("bob")
    t = tracks(srv)
    batch = [ev("play_start", t[0]), ev("play_end", t[0], ms_played=40000), ev("skip", t[1])]
    st, body, _ = a.req("POST", "/v1/events", {"events": batch})
    expect((st, body), (200, {"accepted": 3, "duplicates": 0}), "first upload")
    st, body, _ = a.req("POST", "/v1/events", {"events": batch})
    expect(body, {"accepted": 0, "duplicates": 3}, "replay")
    later = [ev("play_start", t[2]), ev("save", t[2])]
    mixed = list(reversed(later + batch)) + [later[0]]  # reordered, overlapping, and a duplicate inside
    st, body, _ = a.req("POST", "/v1/events", {"events": mixed})
    expect(body, {"accepted": 2, "duplicates": 4}, "reordered batch with old and repeated ids")
    rows = q(srv, "SELECT count(*), count(DISTINCT event_id) FROM event_log WHERE user_id = 'bob'")[0]
    expect(rows, (5, 5), "bob's log rows")
    wait_for(lambda: caught_up(srv.login("admin")), what="consumers caught up")
    expect(q(srv, "SELECT count(*) FROM royalty_streams WHERE user_id = 'bob'")[0][0], 1, "royalty streams")
    expect(q(srv, "SELECT plays, skips FROM rt_track_stats WHERE track_id = ?", t[1]), [(0, 1)], "skip counted once")


def test_bad_batches_get_400_and_nothing_is_stored(srv):
    a = srv.login("chen")
    t = tracks(srv)[0]
    good = ev("play_start", t)
    cases = {
        "malformed JSON": '{"events": [',
        "not an object": "[]",
        "no events array": {"evts": []},
        "1001 events": {"events": [ev("play_start", t) for _ in range(1001)]},
        "id too long": {"events": [dict(good, id="A" * 5000)]},
        "id not base62": {"events": [dict(good, id="!" * 22)]},
        "unknown type": {"events": [dict(good, type="teleport")]},
        "ts is a string": {"events": [dict(good, ts="yesterday")]},
        "ts is a float": {"events": [dict(good, ts=1.5)]},
        "ts is huge": {"events": [dict(good, ts=10 ** 30)]},
        "uri not an encore URI": {"events": [dict(good, uri="spotify:track:x")]},
        "ms_played negative": {"events": [dict(good, type="play_end", ms_played=-5)]},
        "play_end without ms_played": {"events": [dict(good, type="play_end")]},
        "bitrate wrong type": {"events": [dict(good, bitrate="160")]},
        "event not an object": {"events": [good, 7]},
    }
    for what, body in cases.items():
        st, resp, _ = a.req("POST", "/v1/events", body)
        expect(st, 400, what)
        assert isinstance(resp, dict) and resp["error"]["status"] == 400 and resp["error"]["message"], (what, resp)
    expect(q(srv, "SELECT count(*) FROM event_log WHERE user_id = 'chen'")[0][0], 0, "nothing stored from bad batches")
    anon = srv.conn()
    st, _, _ = anon.req("POST", "/v1/events", {"events": [good]})
    expect(st, 401, "no token")
    st, body, _ = a.req("POST", "/v1/events", {"events": []})
    expect((st, body), (200, {"accepted": 0, "duplicates": 0}), "empty batch")
    st, body, _ = a.req("POST", "/v1/events", {"events": [dict(good, future_field=[1, 2])]})
    expect((st, body["accepted"]), (200, 1), "unknown keys are ignored")


def test_royalties_report_applies_the_30_second_rule_with_audit(srv):
    a, c = srv.login("alice"), srv.login("chen")
    t = tracks(srv, 2)
    day = "2024-03-04"   # in the past: a play's day is its device time, capped at the upload time
    base = calendar.timegm(time.strptime(day + " 12:00", "%Y-%m-%d %H:%M")) * 1000
    counted = [ev("play_end", t[0], ts=base, ms_played=30000), ev("play_end", t[0], ts=base + 1, ms_played=200000)]
    short = [ev("play_end", t[0], ts=base + 2, ms_played=29999), ev("play_start", t[0], ts=base + 3)]
    jp = [ev("play_end", t[1], ts=base + 4, ms_played=45000)]
    next_day = [ev("play_end", t[1], ts=base + 86400000, ms_played=60000)]
    expect(a.req("POST", "/v1/events", {"events": counted + short})[0], 200, "alice upload")
    expect(c.req("POST", "/v1/events", {"events": jp + next_day})[0], 200, "chen upload")
    expect(a.req("POST", "/v1/events", {"events": counted})[1]["duplicates"], 2, "replay ignored")
    label = {tid: q(srv, "SELECT ar.label FROM tracks t JOIN artists ar ON ar.id = t.artist_id WHERE t.id = ?", tid)[0][0]
             for tid in t}
    p = subprocess.run([ENCORED, "report", "royalties", "--data", srv.data, "--from", day, "--to", day, "--audit"],
                       capture_output=True, text=True, timeout=120)
    expect(p.returncode, 0, "report exit: " + p.stderr)
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    got = {(r["track_uri"], r["country"], r["rights_holder"]): (int(r["streams"]), sorted(r["event_ids"].split()))
           for r in rows}
    want = {("encore:track:" + t[0], "SE", label[t[0]]): (2, sorted(e["id"] for e in counted)),
            ("encore:track:" + t[1], "JP", label[t[1]]): (1, [jp[0]["id"]])}
    expect(got, want, "rows for the day (the 29.999 s play and the play_start are not streams)")
    p = subprocess.run([ENCORED, "report", "royalties", "--data", srv.data, "--from", day, "--to", "2024-03-05",
                        "--format", "json"], capture_output=True, text=True, timeout=120)
    body = json.loads(p.stdout)
    expect(body["total_streams"], 4, "two days")
    expect([r["day"] for r in body["rows"]], [day, day, "2024-03-05"], "days in order")
    assert "event_ids" not in body["rows"][0], "ids only with --audit"
    p = subprocess.run([ENCORED, "report", "royalties", "--data", srv.data, "--from", "yesterday", "--to", day],
                       capture_output=True, text=True)
    expect(p.returncode, 2, "bad date is a usage error")


def test_trending_and_recently_played_have_web_api_shapes(srv):
    b = srv.login(new_user(srv, "rita", "NO"))
    t = tracks(srv, 3, skip=3)   # tracks no other test plays, so the counts are this test's
    now = now_ms()
    plays = [ev("play_start", t[1], ts=now - 1000 * i) for i in range(3)] + [ev("play_start", t[0], ts=now)]
    old = [ev("play_start", t[2], ts=now - 2 * 3600 * 1000) for _ in range(5)]  # outside the 30-minute window
    ends = [ev("play_end", t[i % 3], ts=now - 60000 + i * 1000, ms_played=31000) for i in range(5)]
    expect(b.req("POST", "/v1/events", {"events": plays + old + ends})[0], 200, "upload")
    admin = srv.login("admin")
    wait_for(lambda: caught_up(admin), what="consumers caught up")
    st, body, _ = b.get("/v1/browse/trending?limit=10")
    expect(st, 200, "trending")
    items = body["tracks"]["items"]
    mine = [(i["track"]["id"], i["plays"]) for i in items if i["track"]["id"] in t]
    expect(mine, [(t[1], 3), (t[0], 1)], "plays in the window, most first")
    assert t[2] not in [m[0] for m in mine], "plays from two hours ago are outside the window"
    for k in ("href", "items", "limit", "next", "offset", "previous", "total"):
        assert k in body["tracks"], k
    expect(body["window_ms"], 30 * 60 * 1000, "window")
    # Recently played: newest first, cursor paging by time.
    st, page1, _ = b.get("/v1/me/player/recently-played?limit=2")
    expect(st, 200, "recently played")
    expect(len(page1["items"]), 2, "limit")
    item = page1["items"][0]
    assert set(item) >= {"track", "played_at", "context"}, item
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", item["played_at"]), item["played_at"]
    expect(item["track"]["uri"], "encore:track:" + t[4 % 3], "newest first")
    assert page1["next"] and "before=" in page1["next"], page1
    cur = page1["cursors"]
    expect(int(cur["after"]), ends[4]["ts"], "after cursor is the newest")
    expect(int(cur["before"]), ends[3]["ts"], "before cursor is the oldest")
    st, page2, _ = b.get("/v1/me/player/recently-played?limit=2&before=" + cur["before"])
    expect([i["track"]["id"] for i in page2["items"]], [t[2 % 3], t[1 % 3]], "second page")
    st, newer, _ = b.get("/v1/me/player/recently-played?limit=50&after=" + str(ends[2]["ts"]))
    expect([i["track"]["id"] for i in newer["items"]], [t[4 % 3], t[3 % 3]], "after cursor: only newer plays")
    expect(b.get("/v1/me/player/recently-played?before=1&after=2")[0], 400, "before and after")
    expect(b.get("/v1/me/player/recently-played?limit=51")[0], 400, "limit over 50")
    expect(b.get("/v1/me/player/recently-played?before=abc")[0], 400, "bad cursor")
    st, rt, _ = admin.get("/v1/admin/realtime")
    expect(st, 200, "realtime")
    assert any(r["country"] == "NO" and r["listeners"] == 1 for r in rt["listeners"]), rt["listeners"]
    expect(b.get("/v1/admin/realtime")[0], 403, "admin only")
    pop = q(srv, "SELECT popularity FROM tracks WHERE id = ?", t[1])[0][0]
    assert pop >= 1, "popularity follows plays"


SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[a-zA-Z_][a-zA-Z0-9_]*="(?:\\.|[^"\\])*"'
                    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:\\.|[^"\\])*")*)?\})? (?P<value>-?[0-9.e+-]+|\+Inf|-Inf|NaN)$')


def parse_prometheus(text):
    """Strict enough: every line is a comment (HELP/TYPE) or a sample; TYPE precedes samples."""
    series, typed = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            typed[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        name = m.group("name")
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or base in typed, "sample before its TYPE: %r" % line
        series.setdefault(name, []).append((m.group("labels") or "", float(m.group("value"))))
    return series


def test_metrics_is_prometheus_text_with_the_named_series(srv):
    a = srv.login("alice")
    a.get("/v1/tracks/" + tracks(srv)[0])
    a.get("/v1/tracks/" + tracks(srv)[0])
    a.get("/v1/nope")
    st, data, r = srv.conn().raw("GET", "/metrics")
    expect(st, 200, "public")
    assert r.getheader("content-type").startswith("text/plain; version=0.0.4"), r.getheader("content-type")
    s = parse_prometheus(data.decode())
    for name in ("encore_http_requests_total", "encore_http_request_duration_seconds_bucket",
                 "encore_http_request_duration_seconds_sum", "encore_http_request_duration_seconds_count",
                 "encore_edge_cache_hit_ratio", "encore_metadata_cache_hit_ratio", "encore_websockets_open",
                 "encore_transcode_queue_depth", "encore_consumer_lag", "encore_rate_limited_total",
                 "encore_signature_failures_total", "encore_events_accepted_total"):
        assert name in s, "missing " + name
    reqs = dict(s["encore_http_requests_total"])
    assert reqs.get('route="/v1/tracks/{id}",method="GET",status="200"', 0) >= 2, reqs
    assert reqs.get('route="unmatched",method="GET",status="404"', 0) >= 1, reqs
    buckets = [v for lab, v in s["encore_http_request_duration_seconds_bucket"] if 'route="/v1/tracks/{id}"' in lab
               and 'status="200"' in lab]
    assert buckets == sorted(buckets) and buckets[-1] >= 2, buckets
    expect(sorted(lab for lab, _ in s["encore_consumer_lag"]),
           ['consumer="realtime"', 'consumer="recommendations"', 'consumer="royalties"'], "lag per consumer")
    assert dict(s["encore_metadata_cache_hit_ratio"])[""] > 0, "the second track GET was a cache hit"
    # Lines are written in batches, once per pass of the I/O thread's loop: wait for it.
    wait_for(lambda: re.search(r'"rid":"[0-9a-f]{16}".*"path":"/metrics".*"ms":', srv.log_text()), 30,
             "access log line for /metrics")


def test_kill_9_during_ingest_loses_no_acknowledged_event_and_counts_none_twice(srv):
    """A client keeps posting batches while encored is killed with SIGKILL ten times.
    Acknowledged batches must be in the log after restart; everything is then re-sent
    (as an outbox would) and must be counted exactly once by the log and the consumers."""
    t = tracks(srv, 3)
    rng = random.Random(9)
    batches = [[{"id": rid(rng), "type": "play_end", "ts": now_ms(), "uri": "encore:track:" + t[i % 3],
                 "ms_played": 30000 + i % 2} for i in range(100)] for _ in range(60)]
    user = new_user(srv, "kate")
    acked = set()
    sent = 0
    srv.stop()
    for round_ in range(10):
        srv.start()
        c = srv.login(user)
        stop = threading.Event()

        def writer():
            nonlocal sent
            while not stop.is_set():
                b = batches[sent % len(batches)]
                try:
                    st, body, _ = c.req("POST", "/v1/events", {"events": b})
                except Exception:
                    return
                if st == 200:
                    acked.update(e["id"] for e in b)
                sent += 1

        th = threading.Thread(target=writer)
        th.start()
        before = sent
        wait_for(lambda: sent >= before + 1 + round_ % 3, what="some batches sent")
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        stop.set()
        th.join()
        srv.stop()
    srv.start()
    assert acked, "no batch was acknowledged, so the test proved nothing"
    logged = {r[0] for r in q(srv, "SELECT event_id FROM event_log WHERE user_id = ?", user)}
    missing = acked - logged
    expect(len(missing), 0, "acknowledged events lost")
    expect(q(srv, "PRAGMA integrity_check")[0][0], "ok", "integrity")
    c = srv.login(user)
    for b in batches:  # replay everything, acknowledged or not
        st, _, _ = c.req("POST", "/v1/events", {"events": b})
        expect(st, 200, "replay")
    all_ids = {e["id"] for b in batches for e in b}
    expect(q(srv, "SELECT count(*), count(DISTINCT event_id) FROM event_log WHERE user_id = ?", user)[0],
           (len(all_ids), len(all_ids)), "each event once")
    admin = srv.login("admin")
    wait_for(lambda: caught_up(admin), timeout=120, what="consumers caught up")
    expect(q(srv, "SELECT count(*), count(DISTINCT event_id) FROM royalty_streams WHERE user_id = ?", user)[0],
           (len(all_ids), len(all_ids)), "each stream counted once by the royalties consumer")
    srv.stop()
    srv.start()


def test_outbox_survives_kill_9_of_the_client_and_uploads_once(srv):
    user = new_user(srv, "olga")
    cli = Cli(srv.url, user)
    tid = q(srv, "SELECT id FROM tracks WHERE state = 'ready' AND markets = '' AND explicit = 0 ORDER BY id LIMIT 1")[0][0]
    uri = "encore:track:" + tid
    # The uploader lingers for ten minutes, so whatever the outbox holds at the kill is all there is.
    cli.env["ENCORE_OUTBOX_LINGER_MS"] = "600000"
    p = cli.spawn("play", uri, uri, "--output", "null:realtime", "--json")
    seen = []

    def progressed():
        line = p.stdout.readline()
        if line.startswith("{"):
            seen.append(json.loads(line))
        return any(e["event"] == "started" for e in seen)
    wait_for(progressed, timeout=120, what="playback started")
    wait_for(lambda: os.path.exists(os.path.join(cli.tmp, "data", "outbox.db")), what="outbox file")

    def checkpointed():
        con = sqlite3.connect(os.path.join(cli.tmp, "data", "outbox.db"), timeout=30)
        try:
            return con.execute("SELECT ms_played FROM open_play").fetchall()
        finally:
            con.close()
    wait_for(lambda: checkpointed() and checkpointed()[0][0] >= 1000, timeout=60, what="a checkpointed play")
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    p.stdout.close()
    p.stderr.close()
    expect(q(srv, "SELECT count(*) FROM event_log WHERE user_id = ?", user)[0][0], 0, "nothing uploaded before the kill")
    rc, out, err = cli.run("events", "status", "--json")
    expect(rc, 0, "status: " + err)
    pending = json.loads(out)["pending"]
    assert pending >= 2, "play_start and the recovered play_end are waiting: %r" % out
    rc, out, err = cli.run("events", "flush")
    expect(rc, 0, "flush: " + err)
    expect(json.loads(cli.run("events", "status", "--json")[1])["pending"], 0, "outbox empty after flush")
    rows = q(srv, "SELECT type, reason, ms_played FROM event_log WHERE user_id = ? ORDER BY seq", user)
    expect(len(rows), pending, "every waiting event uploaded once")
    expect([r[0] for r in rows], ["play_start", "play_end"], "types")
    assert rows[1][1] == "crash" and rows[1][2] >= 1000, rows
    rc, out, err = cli.run("events", "flush")
    expect((rc, q(srv, "SELECT count(*) FROM event_log WHERE user_id = ?", user)[0][0]), (0, pending), "second flush")


def test_play_records_start_and_end_with_ms_played_and_rendition(srv):
    user = new_user(srv, "pete")
    cli = Cli(srv.url, user)
    row = q(srv, "SELECT id, duration_ms FROM tracks WHERE state = 'ready' AND markets = '' AND explicit = 0"
                 " ORDER BY id LIMIT 1")[0]
    rc, out, err = cli.run("play", "encore:track:" + row[0], "--output", "null", "--quality", "96",
                           env={"ENCORE_OUTBOX_LINGER_MS": "0"})
    expect(rc, 0, "play: " + err)
    # outbox_stop uploads what is left on exit.
    rows = q(srv, "SELECT type, ms_played, bitrate, reason FROM event_log WHERE user_id = ? ORDER BY seq", user)
    expect([r[0] for r in rows], ["play_start", "play_end"], "events")
    expect(rows[1][1], row[1], "ms_played of a whole track is its duration")
    expect((rows[1][2], rows[1][3]), (96, "trackdone"), "rendition and reason")
    expect(json.loads(cli.run("events", "status", "--json")[1])["pending"], 0, "nothing left")


if __name__ == "__main__":
    tap = Tap()
    with Server() as srv:
        for t in (test_duplicate_replayed_and_reordered_batches_count_once,
                  test_bad_batches_get_400_and_nothing_is_stored,
                  test_royalties_report_applies_the_30_second_rule_with_audit,
                  test_trending_and_recently_played_have_web_api_shapes,
                  test_metrics_is_prometheus_text_with_the_named_series,
                  test_outbox_survives_kill_9_of_the_client_and_uploads_once,
                  test_play_records_start_and_end_with_ms_played_and_rendition,
                  test_kill_9_during_ingest_loses_no_acknowledged_event_and_counts_none_twice):
            tap.run(t, srv)
    tap.done()
