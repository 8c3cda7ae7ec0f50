"""Audio delivery through the real encored: manifests and licensing, signed CDN URLs and
every refusal, Range and ETag, key rotation, the edge cache and its admission policy,
the origin fallback, and fault injection."""
import hashlib
import http.client
import json
import signal as signals
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from audio import signal, wav_bytes  # noqa: E402
from harness import Server, Tap, expect, wait_for  # noqa: E402


def q(srv, sql, *args):
    con = sqlite3.connect(os.path.join(srv.data, "encore.db"))
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def fetch(url, headers=None, source="127.0.0.1"):
    """GET an absolute URL from a chosen loopback source address."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60, source_address=(source, 0))
    try:
        c.request("GET", u.path + ("?" + u.query if u.query else ""), headers=headers or {})
        r = c.getresponse()
        return r.status, r.read(), r
    finally:
        c.close()


def blake(data):
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def b64d(s):
    import base64
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def plain_track(srv):
    return q(srv, "SELECT id FROM tracks WHERE markets = '' AND explicit = 0 AND state = 'ready' ORDER BY popularity DESC LIMIT 1")[0][0]


def admin_stats(srv):
    return srv.login("admin").get("/v1/admin/stats")[1]


def test_manifest_lists_tier_bitrates_sizes_hashes_and_gain(srv):
    tid = plain_track(srv)
    st, m, r = srv.login("alice").get("/v1/playback/" + tid)
    expect(st, 200, "premium manifest")
    expect(m["bitrates"], [24, 96, 160, 320], "premium bitrates")
    expect((m["segment_seconds"], m["type"]), (4, "track"), "segment duration")
    n = m["segment_count"]
    expect(n, -(-m["duration_ms"] // 4000), "segment count from duration")
    for rd in m["renditions"]:
        expect(len(rd["segments"]), n, "segments per rendition")
        assert "{index}" in rd["segment_url_template"] and "/cdn/" in rd["segment_url_template"], rd
        assert all(s["size"] > 0 and len(s["hash"]) == 64 for s in rd["segments"])
    gain = q(srv, "SELECT gain_db FROM tracks WHERE id = ?", tid)[0][0]
    assert abs(m["normalization"]["gain_db"] - gain) < 1e-6, m["normalization"]
    assert m["expires_at"] > time.time(), m["expires_at"]
    assert r.getheader("cache-control") == "private, no-store"
    st, m, _ = srv.login("bob").get("/v1/playback/" + tid)
    expect((st, m["bitrates"]), (200, [24, 96, 160]), "free tier stops at 160")
    st, e, _ = srv.login("bob").get("/v1/playback/%s?quality=320" % tid)
    expect((st, e["error"]["reason"]), (403, "premium_required"), "free asks for 320")
    expect(srv.login("alice").get("/v1/playback/%s?quality=999" % tid)[0], 400, "bad quality")
    st, m, _ = srv.login("alice").get("/v1/playback/%s?quality=96" % tid)
    expect(m["bitrates"], [24, 96], "quality caps the ladder")


def test_inline_start_carries_init_and_first_segment_matching_the_cdn(srv):
    tid = plain_track(srv)
    st, m, _ = srv.login("alice").get("/v1/playback/" + tid)
    inl = m["inline"]
    expect((inl["bitrate"], inl["segment_index"]), (96, 0), "inline start")
    rd = [r for r in m["renditions"] if r["bitrate"] == 96][0]
    init, seg = b64d(inl["init"]), b64d(inl["segment"])
    expect(blake(init), rd["init"]["hash"], "inline init hash")
    expect(blake(seg), rd["segments"][0]["hash"], "inline segment hash")
    st, body, _ = fetch(rd["segment_url_template"].replace("{index}", "0"))
    expect((st, body), (200, seg), "CDN segment equals the inline one")
    st, m2, _ = srv.login("alice").get("/v1/playback/%s?start_segment=1&start_bitrate=24" % tid)
    expect((m2["inline"]["bitrate"], m2["inline"]["segment_index"]), (24, 1), "inline for a seek")
    st, m3, _ = srv.login("alice").get("/v1/playback/%s?inline=0" % tid)
    expect(m3["inline"], None, "inline off")


def test_market_and_explicit_rules(srv):
    restricted = q(srv, "SELECT id FROM tracks WHERE markets = 'SE,JP' AND state = 'ready' LIMIT 1")[0][0]
    st, e, _ = srv.login("bob").get("/v1/playback/" + restricted)
    expect((st, e["error"]["reason"]), (403, "not_available_in_market"), "US listener")
    expect(srv.login("alice").get("/v1/playback/" + restricted)[0], 200, "SE listener")
    explicit = q(srv, "SELECT id FROM tracks WHERE explicit = 1 AND markets = '' LIMIT 1")[0][0]
    admin = srv.login("admin")
    expect(admin.req("PUT", "/v1/admin/users/chen", {"explicit_ok": False})[0], 200, "filter chen")
    st, e, _ = srv.login("chen").get("/v1/playback/" + explicit)
    expect((st, e["error"]["reason"]), (403, "explicit_content_filtered"), "filtered account")
    admin.req("PUT", "/v1/admin/users/chen", {"explicit_ok": True})
    expect(srv.login("chen").get("/v1/playback/" + explicit)[0], 200, "unfiltered again")
    expect(srv.login("alice").get("/v1/playback/" + "A" * 22)[0], 404, "unknown id")
    expect(srv.login("alice").get("/v1/playback/nope")[0], 400, "bad id")


def test_signed_urls_refuse_forged_tampered_other_user_other_ip(srv):
    tid = plain_track(srv)
    m = srv.login("alice").get("/v1/playback/" + tid)[1]
    url = m["renditions"][1]["segment_url_template"].replace("{index}", "0")
    before = admin_stats(srv)["signature_failures"]
    u = urllib.parse.urlsplit(url)
    qs = dict(urllib.parse.parse_qsl(u.query))

    def variant(path=None, **kw):
        d = dict(qs)
        d.update(kw)
        return "%s://%s%s?%s" % (u.scheme, u.netloc, path or u.path, urllib.parse.urlencode(d))
    other = m["renditions"][2]
    cases = {
        "forged signature": variant(s="A" * 43),
        "truncated signature": variant(s=qs["s"][:-1]),
        "another user": variant(u="bob"),
        "later expiry": variant(e=str(int(qs["e"]) + 3600)),
        "another rendition": variant(path=u.path.replace("/96/", "/320/")),
        "another track": variant(path=u.path.replace(tid, "A" * 22)),
        "unknown key": variant(k="k99"),
        "no signature": "%s://%s%s" % (u.scheme, u.netloc, u.path),
    }
    for what, bad in cases.items():
        expect(fetch(bad)[0], 403, what)
    expect(fetch(url, source="127.0.0.2")[0], 403, "another IP")
    expect(fetch(url)[0], 200, "the real URL still works")
    assert other["bitrate"] == 160
    after = admin_stats(srv)["signature_failures"]
    expect(after - before, len(cases) + 1, "signature failure counter")


def test_expired_urls_are_refused():
    with Server(["--url-ttl", "2"]) as s:
        tid = plain_track(s)
        m = s.login("alice").get("/v1/playback/" + tid)[1]
        url = m["renditions"][0]["init"]["url"]
        expect(fetch(url)[0], 200, "fresh URL")
        wait_for(lambda: fetch(url)[0] == 403, timeout=30, what="URL expiry")
        body = json.loads(fetch(url)[1])
        expect(body["error"]["message"], "signed URL expired", "message")


def test_range_etag_and_immutable_caching(srv):
    tid = plain_track(srv)
    m = srv.login("alice").get("/v1/playback/" + tid)[1]
    rd = m["renditions"][3]
    url = rd["segment_url_template"].replace("{index}", "0")
    st, full, r = fetch(url)
    expect(st, 200, "full")
    etag = r.getheader("etag")
    expect(etag, '"%s"' % rd["segments"][0]["hash"], "strong ETag is the content hash")
    expect(r.getheader("cache-control"), "public, max-age=31536000, immutable", "cache-control")
    st, part, r = fetch(url, {"Range": "bytes=0-99"})
    expect((st, part, r.getheader("content-range")), (206, full[:100], "bytes 0-99/%d" % len(full)), "first 100")
    st, part, r = fetch(url, {"Range": "bytes=-10"})
    expect((st, part), (206, full[-10:]), "suffix range")
    st, part, r = fetch(url, {"Range": "bytes=%d-" % (len(full) - 5)})
    expect((st, part), (206, full[-5:]), "open range")
    st, _, r = fetch(url, {"Range": "bytes=%d-" % (len(full) + 10)})
    expect((st, r.getheader("content-range")), (416, "bytes */%d" % len(full)), "unsatisfiable")
    st, body, _ = fetch(url, {"If-None-Match": etag})
    expect((st, body), (304, b""), "If-None-Match")
    # Keep-alive: many segments over one connection.
    uu = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(uu.hostname, uu.port, timeout=60)
    for k in range(m["segment_count"]):
        p = urllib.parse.urlsplit(rd["segment_url_template"].replace("{index}", str(k)))
        c.request("GET", p.path + "?" + p.query)
        r = c.getresponse()
        data = r.read()
        expect((r.status, blake(data)), (200, rd["segments"][k]["hash"]), "segment %d over one connection" % k)
    c.close()


def test_origin_repeats_are_sent_from_the_object_file_with_the_same_semantics(srv):
    """The first /origin request for an object goes to a worker (database lookup, file
    read); later ones are answered on the I/O thread with sendfile() from the open file.
    Both must be the same HTTP: bytes, ETag, Range, If-None-Match, signature refusals,
    keep-alive; and every request still gets its own access-log line."""
    tid = plain_track(srv)
    m = srv.login("alice").get("/v1/playback/%s?inline=0" % tid)[1]
    rd = m["renditions"][1]
    url = rd["origin_url_template"].replace("{index}", "1")
    s0 = admin_stats(srv)
    st, first, r1 = fetch(url)
    expect((st, blake(first)), (200, rd["segments"][1]["hash"]), "first origin fetch (worker)")
    s1 = admin_stats(srv)
    st, again, r2 = fetch(url)
    s2 = admin_stats(srv)
    expect((st, again), (200, first), "repeat (file path) has the same bytes")
    expect((s1["origin_sendfile"] - s0["origin_sendfile"], s2["origin_sendfile"] - s1["origin_sendfile"]), (0, 1),
           "the repeat was sent from the file, the first was not")
    expect((r2.getheader("etag"), r2.getheader("cache-control"), r2.getheader("content-type")),
           (r1.getheader("etag"), r1.getheader("cache-control"), r1.getheader("content-type")), "same headers")
    etag = r2.getheader("etag")
    st, part, r = fetch(url, {"Range": "bytes=10-109"})
    expect((st, part, r.getheader("content-range")), (206, first[10:110], "bytes 10-109/%d" % len(first)), "range")
    st, part, _ = fetch(url, {"Range": "bytes=-7"})
    expect((st, part), (206, first[-7:]), "suffix range")
    st, _, r = fetch(url, {"Range": "bytes=%d-" % len(first)})
    expect((st, r.getheader("content-range")), (416, "bytes */%d" % len(first)), "unsatisfiable")
    expect(fetch(url, {"If-None-Match": etag})[:2], (304, b""), "If-None-Match")
    u = urllib.parse.urlsplit(url)
    forged = url.replace("s=" + dict(urllib.parse.parse_qsl(u.query))["s"], "s=" + "A" * 43)
    expect(fetch(forged)[0], 403, "forged signature on a cached file")
    expect(fetch(url, source="127.0.0.2")[0], 403, "another IP on a cached file")
    s3 = admin_stats(srv)
    expect(s3["signature_failures"] - s2["signature_failures"], 2, "refusals counted")
    # Keep-alive: every segment twice over one connection (worker, then file path).
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    rids = []
    for k in list(range(m["segment_count"])) * 2:
        p = urllib.parse.urlsplit(rd["origin_url_template"].replace("{index}", str(k)))
        c.request("GET", p.path + "?" + p.query)
        r = c.getresponse()
        data = r.read()
        rids.append(r.getheader("x-request-id"))
        expect((r.status, blake(data)), (200, rd["segments"][k]["hash"]), "origin segment %d over one connection" % k)
    c.close()
    expect(len(set(rids)), len(rids), "distinct request ids")

    def logged():
        lines = {}
        for line in srv.log_text().splitlines():
            if line.startswith("{") and '"rid"' in line:
                e = json.loads(line)
                lines[e["rid"]] = e
        return all(rid in lines for rid in rids) and lines
    lines = wait_for(logged, 30, "an access-log line for each request")
    expect(sorted({(lines[r]["status"], lines[r]["method"], lines[r]["path"].split("/")[1]) for r in rids}),
           [(200, "GET", "origin")], "log lines: status, method, path")


def read_response(f):
    """One HTTP/1.1 response from a buffered socket file: (status, headers, body)."""
    line = f.readline()
    if not line:
        return None
    status = int(line.split()[1])
    headers = {}
    while True:
        h = f.readline().rstrip(b"\r\n")
        if not h:
            break
        k, v = h.decode().split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return status, headers, f.read(int(headers.get("content-length", "0")))


def test_segment_connections_keep_http_semantics_and_move_to_the_general_path(srv):
    """Segment GETs skip libwebsockets' request machinery (the direct path); pipelining,
    split request heads, Connection: close, and a connection that goes on to other
    requests must behave exactly as on the general path."""
    tid = plain_track(srv)
    a = srv.login("alice")
    m = a.get("/v1/playback/%s?inline=0" % tid)[1]
    rd = m["renditions"][2]
    paths = []
    for k in range(2):
        u = urllib.parse.urlsplit(rd["segment_url_template"].replace("{index}", str(k)))
        paths.append((u.path + "?" + u.query).encode())
        fetch(rd["segment_url_template"].replace("{index}", str(k)))  # admitted to the edge
    host = ("127.0.0.1", srv.port)
    s = socket.create_connection(host)
    f = s.makefile("rb")
    # Pipelined: two edge hits, a range, then an API request on the same connection.
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % paths[0] +
              b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % paths[1] +
              b"GET %s HTTP/1.1\r\nHost: x\r\nRange: bytes=5-14\r\n\r\n" % paths[0] +
              b"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % a.token.encode())
    got = [read_response(f) for _ in range(4)]
    expect([g[0] for g in got], [200, 200, 206, 200], "pipelined statuses")
    expect([blake(got[0][2]), blake(got[1][2])], [rd["segments"][0]["hash"], rd["segments"][1]["hash"]], "pipelined bodies")
    expect((got[2][2], got[2][1].get("content-range")), (got[0][2][5:15], "bytes 5-14/%d" % len(got[0][2])), "range")
    expect(json.loads(got[3][2])["id"], "alice", "an API request after segments on one connection")
    expect(len({g[1]["x-request-id"] for g in got}), 4, "a request id each")
    # After moving to the general path the connection still serves segments.
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % paths[1])
    st, _, body = read_response(f)
    expect((st, blake(body)), (200, rd["segments"][1]["hash"]), "a segment after the API request")
    s.close()
    # A request head that arrives in pieces, then Connection: close.
    s = socket.create_connection(host)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    head = b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % paths[0]
    for i in range(0, len(head), 40):
        s.sendall(head[i:i + 40])
    st, h, body = read_response(f)
    expect((st, blake(body), h.get("connection")), (200, rd["segments"][0]["hash"], "close"), "split head, close")
    expect(f.read(), b"", "closed after Connection: close")
    s.close()
    # Percent-encoding is left to libwebsockets' decoder: same answer.
    s = socket.create_connection(host)
    f = s.makefile("rb")
    s.sendall(b"GET %s&x=%%41 HTTP/1.1\r\nHost: x\r\n\r\n" % paths[0])
    st, _, body = read_response(f)
    expect((st, blake(body)), (200, rd["segments"][0]["hash"]), "percent-encoded argument")
    s.close()


def test_many_answered_segment_requests_then_a_post_on_the_same_connection(srv):
    """The direct path takes answered requests off the socket in batches (a peek offset);
    whatever it has answered must be gone, and nothing else, when the connection moves to
    the general path or closes. 120 pipelined hits (over 16 KB of request heads, past one
    batch), then a POST with a body: every answer in order, the POST answered by the
    general path; then 100 more hits and Connection: close end with a clean close."""
    tid = plain_track(srv)
    a = srv.login("alice")
    rd = a.get("/v1/playback/%s?inline=0" % tid)[1]["renditions"][0]
    n = min(3, len(rd["segments"]))
    paths = []
    for k in range(n):
        u = urllib.parse.urlsplit(rd["segment_url_template"].replace("{index}", str(k)))
        paths.append((u.path + "?" + u.query).encode())
        fetch(rd["segment_url_template"].replace("{index}", str(k)))  # admitted to the edge
    heads = [b"GET %s HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n" % (paths[i % n], b"p" * 40) for i in range(120)]
    assert sum(map(len, heads)) > 16384, "the pipeline must cross one consume batch"
    form = b"grant_type=password&username=bob&password=demo"
    post = (b"POST /api/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(form), form))
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.settimeout(60)
    f = s.makefile("rb")
    s.sendall(b"".join(heads) + post)
    got = [read_response(f) for _ in range(121)]
    bad = [(i, g[0]) for i, g in enumerate(got[:120]) if g[0] != 200 or blake(g[2]) != rd["segments"][i % n]["hash"]]
    expect(bad, [], "pipelined segment answers (index, status) that were wrong")
    expect(got[120][0], 200, "the POST after 120 segment requests")
    expect("access_token" in json.loads(got[120][2]), True, "the POST's body was read whole")
    s.close()
    # A long keep-alive run that ends with Connection: close: every byte, then EOF (a
    # close with answered bytes left unread would reset the connection instead).
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.settimeout(60)
    f = s.makefile("rb")
    total = 0
    for i in range(100):
        last = i == 99
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n%s\r\n" %
                  (paths[i % n], b"q" * 200, b"Connection: close\r\n" if last else b""))
        st, h, body = read_response(f)
        expect((st, blake(body)), (200, rd["segments"][i % n]["hash"]), "keep-alive request %d" % i)
        total += len(body)
    expect(h.get("connection"), "close", "the last answer says close")
    expect(f.read(), b"", "a clean end of stream after Connection: close")
    s.close()
    assert total > 0


def test_key_rotation_keeps_old_urls_valid(srv):
    tid = plain_track(srv)
    old = srv.login("alice").get("/v1/playback/" + tid)[1]["renditions"][0]["init"]["url"]
    st, body, _ = srv.login("admin").req("POST", "/v1/admin/keys/rotate", {})
    expect(st, 200, "rotate")
    new_kid = body["kid"]
    new = srv.login("alice").get("/v1/playback/" + tid)[1]["renditions"][0]["init"]["url"]
    assert "k=%s" % new_kid in new, new
    expect(fetch(old)[0], 200, "old key still verifies")
    expect(fetch(new)[0], 200, "new key verifies")
    expect(srv.login("alice").req("POST", "/v1/admin/keys/rotate", {})[0], 403, "non-admin rotation")
    mode = os.stat(os.path.join(srv.data, "cdn.keys")).st_mode & 0o777
    expect(oct(mode), oct(0o600), "cdn.keys mode")


def test_edge_cache_hits_after_a_miss_and_warm_prepopulates(srv):
    ids = [r[0] for r in q(srv, "SELECT id FROM tracks WHERE markets = '' AND explicit = 0 AND state = 'ready' ORDER BY id LIMIT 3")]
    a = srv.login("alice")
    m = a.get("/v1/playback/%s?inline=0" % ids[0])[1]
    url = m["renditions"][2]["segment_url_template"].replace("{index}", "0")
    s0 = admin_stats(srv)["edge"]
    fetch(url)
    s1 = admin_stats(srv)["edge"]
    fetch(url)
    s2 = admin_stats(srv)["edge"]
    expect((s1["misses"] - s0["misses"], s1["hits"] - s0["hits"]), (1, 0), "first fetch misses")
    expect((s2["misses"] - s1["misses"], s2["hits"] - s1["hits"]), (0, 1), "second fetch hits")
    st, w, _ = srv.login("admin").req("POST", "/v1/admin/warm", {"ids": [ids[1]]})
    expect(st, 200, "warm")
    nseg = q(srv, "SELECT count(*) FROM segments WHERE content_id = ?", ids[1])[0][0]
    expect(w["objects"], nseg + 4, "warm loads every init and segment")
    m = a.get("/v1/playback/%s?inline=0" % ids[1])[1]
    s3 = admin_stats(srv)["edge"]
    for rd in m["renditions"]:
        expect(fetch(rd["init"]["url"])[0], 200, "warmed init")
    s4 = admin_stats(srv)["edge"]
    expect((s4["misses"] - s3["misses"], s4["hits"] - s3["hits"]), (0, 4), "warmed objects hit")
    expect(srv.login("admin").req("POST", "/v1/admin/warm", {"ids": ["x"]})[0], 400, "bad warm id")


def test_podcast_episodes_enter_the_edge_only_when_popular(srv):
    ep = q(srv, "SELECT id FROM episodes WHERE state = 'ready' LIMIT 1")[0][0]
    a = srv.login("alice")
    m = a.get("/v1/playback/%s?inline=0" % ep)[1]
    expect(m["type"], "episode", "episode manifest")
    rd = m["renditions"][0]
    seg = rd["segment_url_template"].replace("{index}", "0")
    s0 = admin_stats(srv)["edge"]
    fetch(rd["init"]["url"])
    fetch(seg)
    fetch(seg)
    s1 = admin_stats(srv)["edge"]
    expect(s1["hits"] - s0["hits"], 0, "an unpopular episode is not cached")
    for _ in range(3):
        fetch(rd["init"]["url"])
    fetch(seg)
    fetch(seg)
    s2 = admin_stats(srv)["edge"]
    assert s2["hits"] - s1["hits"] >= 1, "a popular episode is cached: %r -> %r" % (s1, s2)


def test_faults_are_injected_on_the_cdn_but_the_origin_stays_reachable(srv):
    tid = plain_track(srv)
    admin = srv.login("admin")
    m = srv.login("alice").get("/v1/playback/%s?inline=0" % tid)[1]
    rd = m["renditions"][1]
    cdn = rd["segment_url_template"].replace("{index}", "0")
    origin = rd["origin_url_template"].replace("{index}", "0")
    try:
        expect(admin.req("POST", "/v1/admin/faults", {"error_rate": 1.0})[0], 200, "set error rate")
        expect(fetch(cdn)[0], 503, "edge error")
        st, body, _ = fetch(origin)
        expect((st, blake(body)), (200, rd["segments"][0]["hash"]), "origin fallback")
        admin.req("POST", "/v1/admin/faults", {"error_rate": 0.0, "drop_rate": 1.0})
        try:
            st, body, _ = fetch(cdn)
            assert len(body) < rd["segments"][0]["size"], "dropped connection delivered everything"
        except (http.client.IncompleteRead, ConnectionError, OSError):
            pass
        admin.req("POST", "/v1/admin/faults", {"drop_rate": 0.0, "latency_ms": 400})
        t = time.monotonic()
        expect(fetch(cdn)[0], 200, "with latency")
        assert time.monotonic() - t >= 0.4, "latency not injected"
        size = rd["segments"][0]["size"]
        admin.req("POST", "/v1/admin/faults", {"latency_ms": 0, "bandwidth_kbps": 160})
        t = time.monotonic()
        st, body, _ = fetch(cdn)
        took = time.monotonic() - t
        expect(len(body), size, "throttled body complete")
        # 160 kbit/s is 20 KB/s: the body cannot arrive faster than that.
        assert took >= size / 20000.0 * 0.8, "%d bytes in %.2fs is faster than the cap" % (size, took)
        st, e, _ = admin.req("POST", "/v1/admin/faults", {"error_rate": 2})
        expect(st, 400, "bad rate")
        expect(admin.req("POST", "/v1/admin/faults", {"latency_ms": "slow"})[0], 400, "bad latency")
        expect(srv.login("alice").req("POST", "/v1/admin/faults", {"error_rate": 0})[0], 403, "non-admin")
    finally:
        admin.req("POST", "/v1/admin/faults", {"error_rate": 0, "drop_rate": 0, "latency_ms": 0, "bandwidth_kbps": 0})
    expect(fetch(cdn)[0], 200, "faults cleared")


def test_faults_from_the_command_line():
    with Server(["--fault-error-rate", "1"]) as s:
        tid = plain_track(s)
        m = s.login("alice").get("/v1/playback/%s?inline=0" % tid)[1]
        expect(fetch(m["renditions"][0]["init"]["url"])[0], 503, "error rate 1 from flags")
        expect(s.login("admin").get("/v1/admin/faults")[1]["error_rate"], 1, "faults readable")


def test_pending_track_answers_503_transcoding_then_plays():
    import tempfile
    data = tempfile.mkdtemp(prefix="pending-")
    with Server(["--ingest-workers", "-1"], data=data) as s:
        admin = s.login("admin")
        body = wav_bytes(signal(4, 44100, 2, seed=5))
        st, job, _ = admin.req("POST", "/v1/admin/ingest?title=Late&artist=Later&album=Latest", body,
                               headers={"Content-Type": "audio/wav"})
        expect(st, 202, "queued")
        tid = job["uri"].split(":")[2]
        st, e, r = s.login("alice").get("/v1/playback/" + tid)
        expect((st, e["error"]["reason"], r.getheader("retry-after")), (503, "transcoding", "1"), "pending")
        prio = q(s, "SELECT priority FROM ingest_jobs WHERE content_id = ?", tid)[0][0]
        assert prio >= 1000000, "a waiting listener moves the job to the front (priority %d)" % prio
    with Server(seed=False, data=data) as s2:
        wait_for(lambda: s2.login("alice").get("/v1/playback/" + tid)[0] == 200, timeout=300, what="transcode")


def test_sigterm_lets_an_in_flight_request_finish():
    import threading
    s = Server(["--fault-latency-ms", "1500"]).start()
    try:
        tid = plain_track(s)
        m = s.login("alice").get("/v1/playback/%s?inline=0" % tid)[1]
        url = m["renditions"][0]["segment_url_template"].replace("{index}", "0")
        before = admin_stats(s)["cdn_requests"]
        result = {}

        def get():
            result["r"] = fetch(url)
        t = threading.Thread(target=get)
        t.start()
        # The request is in flight once the server has counted it (it then waits 1.5 s).
        wait_for(lambda: admin_stats(s)["cdn_requests"] > before, timeout=30, what="request in flight")
        s.proc.send_signal(signals.SIGTERM)
        t.join(timeout=60)
        st, body, _ = result["r"]
        expect((st, blake(body)), (200, m["renditions"][0]["segments"][0]["hash"]), "in-flight request answered")
        expect(s.proc.wait(timeout=60), 0, "clean exit")
    finally:
        s.stop()


if __name__ == "__main__":
    tap = Tap()
    with Server() as shared:
        for t in (test_manifest_lists_tier_bitrates_sizes_hashes_and_gain,
                  test_inline_start_carries_init_and_first_segment_matching_the_cdn,
                  test_market_and_explicit_rules,
                  test_signed_urls_refuse_forged_tampered_other_user_other_ip,
                  test_range_etag_and_immutable_caching,
                  test_origin_repeats_are_sent_from_the_object_file_with_the_same_semantics,
                  test_segment_connections_keep_http_semantics_and_move_to_the_general_path,
                  test_many_answered_segment_requests_then_a_post_on_the_same_connection,
                  test_key_rotation_keeps_old_urls_valid,
                  test_edge_cache_hits_after_a_miss_and_warm_prepopulates,
                  test_podcast_episodes_enter_the_edge_only_when_popular,
                  test_faults_are_injected_on_the_cdn_but_the_origin_stays_reachable):
            tap.run(t, shared)
    for t in (test_expired_urls_are_refused, test_faults_from_the_command_line, test_sigterm_lets_an_in_flight_request_finish,
              test_pending_track_answers_503_transcoding_then_plays):
        tap.run(t)
    tap.done()
