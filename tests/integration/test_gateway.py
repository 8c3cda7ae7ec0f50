"""encored's gateway and catalog API: auth, tokens, rate limits, body limits, ETags,
Web API shapes, and a table of bad inputs after which the server still serves."""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import ENCORED, Server, expect, query, run_tests, wait_for  # noqa: E402

TRACK_FIELDS = {"album", "artists", "available_markets", "disc_number", "duration_ms", "explicit",
                "external_ids", "external_urls", "href", "id", "is_local", "is_playable", "name",
                "popularity", "preview_url", "track_number", "type", "uri"}
PAGING_FIELDS = {"href", "items", "limit", "next", "offset", "previous", "total"}


def b64json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def db_rows(srv, sql, *args):
    con = sqlite3.connect(os.path.join(srv.data, "encore.db"))
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def test_first_line_names_the_ephemeral_port(srv):
    assert srv.port and srv.port != 0, "port %r" % srv.port
    expect(srv.host, "127.0.0.1", "host")


def test_password_login_returns_hs256_jwt_with_claims(srv):
    c = srv.login("alice")
    h, p, sig = c.token.split(".")
    hdr, claims = b64json(h), b64json(p)
    expect(hdr["alg"], "HS256", "alg")
    assert hdr.get("kid"), "no key id in %r" % hdr
    expect((claims["sub"], claims["tier"], claims["country"]), ("alice", "premium", "SE"), "claims")
    assert claims["exp"] > claims["iat"] >= int(time.time()) - 5, claims


def test_bad_credentials_get_oauth_errors(srv):
    c = srv.conn()
    cases = [
        ({"grant_type": "password", "username": "alice", "password": "wrong"}, 400, "invalid_grant"),
        ({"grant_type": "password", "username": "nobody", "password": "demo"}, 400, "invalid_grant"),
        ({"grant_type": "password", "username": "alice"}, 400, "invalid_request"),
        ({"grant_type": "client_credentials"}, 400, "unsupported_grant_type"),
        ({}, 400, "invalid_request"),
    ]
    for fields, status, code in cases:
        st, body, _ = c.form("/api/token", fields)
        expect((st, body["error"]), (status, code), "token request %r" % fields)
    st, body, _ = c.req("POST", "/api/token", {"grant_type": "password"})
    expect(st, 400, "JSON body to the form endpoint")


def test_me_reports_product_and_country(srv):
    for user, product, country in (("alice", "premium", "SE"), ("bob", "free", "US"), ("chen", "premium", "JP")):
        st, me, _ = srv.login(user).get("/v1/me")
        expect(st, 200, "GET /v1/me")
        expect((me["id"], me["product"], me["country"], me["type"], me["uri"]),
               (user, product, country, "user", "encore:user:" + user), "me")


def test_refresh_token_rotates_and_is_single_use(srv):
    c = srv.login("bob")
    st, body, _ = c.form("/api/token", {"grant_type": "refresh_token", "refresh_token": c.refresh})
    expect(st, 200, "first refresh")
    assert body["refresh_token"] != c.refresh, "refresh token not rotated"
    st, body2, _ = c.form("/api/token", {"grant_type": "refresh_token", "refresh_token": c.refresh})
    expect((st, body2["error"]), (400, "invalid_grant"), "reused refresh token")
    c.token = body["access_token"]
    expect(c.get("/v1/me")[0], 200, "new access token works")


def test_forged_tampered_and_alg_none_tokens_are_refused(srv):
    good = srv.login("bob").token
    h, p, s = good.split(".")
    claims = b64json(p)
    claims["tier"] = "premium"
    hdr = b64json(h)
    tokens = {
        "tampered payload": "%s.%s.%s" % (h, b64(claims), s),
        "alg none": "%s.%s." % (b64({"alg": "none", "typ": "JWT", "kid": hdr["kid"]}), p),
        "alg HS512": "%s.%s.%s" % (b64({"alg": "HS512", "typ": "JWT", "kid": hdr["kid"]}), p, s),
        "unknown kid": "%s.%s.%s" % (b64({"alg": "HS256", "typ": "JWT", "kid": "zz"}), p, s),
        "bad signature": "%s.%s.%s" % (h, p, s[:-4] + ("AAAA" if not s.endswith("AAAA") else "BBBB")),
        "garbage": "not-a-token",
        "empty": "",
        "huge": "a." * 3000,
    }
    c = srv.conn()
    for what, tok in tokens.items():
        st, body, r = c.get("/v1/me", headers={"Authorization": "Bearer " + tok})
        expect(st, 401, what)
        expect(body["error"]["status"], 401, what + " error object")
    st, body, _ = c.get("/v1/me")
    expect((st, body["error"]["message"]), (401, "No token provided"), "no token")


def test_expired_token_is_refused():
    with Server(["--token-ttl", "1"]) as s:
        c = s.login("alice")
        expect(c.get("/v1/me")[0], 200, "fresh token")
        wait_for(lambda: c.get("/v1/me")[0] == 401, timeout=30, what="token expiry")
        st, body, _ = c.get("/v1/me")
        expect(body["error"]["message"], "The access token expired", "message")


def test_track_object_has_web_api_shape(srv):
    c = srv.login("alice")
    tid = db_rows(srv, "SELECT id FROM tracks ORDER BY id LIMIT 1")[0][0]
    st, t, r = c.get("/v1/tracks/" + tid)
    expect(st, 200, "GET track")
    missing = TRACK_FIELDS - set(t)
    assert not missing, "track lacks %s" % missing
    expect((t["id"], t["type"], t["uri"]), (tid, "track", "encore:track:" + tid), "ids")
    assert len(tid) == 22 and tid.isalnum(), tid
    assert t["album"]["type"] == "album" and t["artists"][0]["type"] == "artist", t
    assert r.getheader("x-request-id"), "no request id"


def test_is_playable_follows_the_callers_market(srv):
    rows = db_rows(srv, "SELECT id, markets FROM tracks WHERE markets = 'SE,JP' LIMIT 1")
    assert rows, "seed has no market-restricted track"
    tid = rows[0][0]
    expect(srv.login("alice").get("/v1/tracks/" + tid)[1]["is_playable"], True, "SE listener")
    expect(srv.login("bob").get("/v1/tracks/" + tid)[1]["is_playable"], False, "US listener")


def test_several_tracks_and_unknown_ids(srv):
    c = srv.login("alice")
    ids = [r[0] for r in db_rows(srv, "SELECT id FROM tracks ORDER BY id LIMIT 3")]
    unknown = "0" * 22
    st, body, _ = c.get("/v1/tracks?ids=" + ",".join(ids + [unknown]))
    expect(st, 200, "tracks?ids")
    expect([t and t["id"] for t in body["tracks"]], ids + [None], "tracks in order, null for unknown")
    expect(c.get("/v1/tracks/" + unknown)[0], 404, "unknown track")
    expect(c.get("/v1/tracks?ids=" + ",".join([ids[0]] * 51))[0], 400, "51 ids")


def test_albums_artists_paging_and_top_tracks(srv):
    c = srv.login("alice")
    album_id, artist_id = db_rows(srv, "SELECT album_id, artist_id FROM tracks ORDER BY id LIMIT 1")[0]
    st, al, _ = c.get("/v1/albums/" + album_id)
    expect(st, 200, "album")
    assert PAGING_FIELDS <= set(al["tracks"]), al["tracks"].keys()
    n = al["tracks"]["total"]
    assert n >= 1 and len(al["tracks"]["items"]) == n
    st, page, _ = c.get("/v1/albums/%s/tracks?limit=1&offset=0" % album_id)
    expect((st, page["limit"], page["offset"], len(page["items"])), (200, 1, 0, 1), "page 1")
    if n > 1:
        assert page["next"] and "offset=1" in page["next"], page["next"]
    expect(page["previous"], None, "previous of first page")
    st, ar, _ = c.get("/v1/artists/" + artist_id)
    expect((st, ar["type"]), (200, "artist"), "artist")
    assert ar["genres"], "artist without genres"
    st, albums, _ = c.get("/v1/artists/%s/albums" % artist_id)
    assert st == 200 and albums["total"] >= 1 and PAGING_FIELDS <= set(albums)
    st, top, _ = c.get("/v1/artists/%s/top-tracks" % artist_id)
    pops = [t["popularity"] for t in top["tracks"]]
    assert st == 200 and pops == sorted(pops, reverse=True) and len(pops) <= 10, pops
    expect(c.get("/v1/albums/%s/tracks?limit=0" % album_id)[0], 400, "limit=0")
    expect(c.get("/v1/albums/%s/tracks?limit=51" % album_id)[0], 400, "limit=51")
    expect(c.get("/v1/albums/%s/tracks?offset=-1" % album_id)[0], 400, "offset=-1")
    expect(c.get("/v1/artists/%s/top-tracks?market=xx" % artist_id)[0], 400, "bad market")


def test_etag_and_if_none_match(srv):
    c = srv.login("alice")
    tid = db_rows(srv, "SELECT id FROM tracks LIMIT 1")[0][0]
    st, _, r = c.get("/v1/tracks/" + tid)
    tag = r.getheader("etag")
    assert tag and tag.startswith('"'), tag
    st, data, r = c.raw("GET", "/v1/tracks/" + tid, headers={"If-None-Match": tag})
    expect((st, data), (304, b""), "conditional GET")
    st, _, _ = c.raw("GET", "/v1/tracks/" + tid, headers={"If-None-Match": '"other"'})
    expect(st, 200, "non-matching ETag")


def test_admin_routes_need_an_admin(srv):
    user = {"username": "dora", "password": "secret1", "tier": "premium", "country": "DE"}
    st, body, _ = srv.login("alice").req("POST", "/v1/admin/users", user)
    expect(st, 403, "non-admin")
    a = srv.login("admin")
    st, body, _ = a.req("POST", "/v1/admin/users", user)
    expect((st, body["id"], body["product"]), (201, "dora", "premium"), "admin creates")
    expect(a.req("POST", "/v1/admin/users", user)[0], 409, "duplicate user")
    expect(srv.login("dora", "secret1").get("/v1/me")[1]["country"], "DE", "new user logs in")
    st, body, _ = a.req("PUT", "/v1/admin/users/dora", {"tier": "free"})
    expect((st, body["product"]), (200, "free"), "downgrade")
    expect(a.req("PUT", "/v1/admin/users/nobody", {"tier": "free"})[0], 404, "unknown user")


def test_user_rate_limit_answers_429_with_retry_after():
    with Server(["--rate-limit-user", "2:5"]) as s:
        c = s.login("alice")
        statuses = [c.get("/v1/me") for _ in range(12)]
        limited = [r for st, _, r in statuses if st == 429]
        assert limited, "no 429 in %r" % [st for st, _, _ in statuses]
        ra = limited[0].getheader("retry-after")
        assert ra and int(ra) >= 1, "Retry-After %r" % ra
        expect(s.login("bob").get("/v1/me")[0], 200, "another user is not limited")


def test_ip_rate_limit_answers_429():
    with Server(["--rate-limit-ip", "2:4"]) as s:
        c = s.conn()
        sts = [c.get("/v1/me")[0] for _ in range(10)]
        assert 429 in sts, sts


def test_oversized_body_gets_413_and_server_keeps_serving(srv):
    # Like nginx, encored answers 413 as soon as the declared length is too big and closes
    # the connection; a client reads the answer without sending the whole body.
    tok = srv.login("admin").token
    sock = socket.create_connection((srv.host, srv.port), timeout=30)
    sock.sendall(("POST /v1/admin/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{" % (tok, 2 << 20)).encode())
    resp = b""
    while b"\r\n\r\n" not in resp:
        chunk = sock.recv(4096)
        if not chunk:
            break
        resp += chunk
    sock.close()
    assert resp.startswith(b"HTTP/1.1 413"), resp[:100]
    expect(srv.login("alice").get("/v1/me")[0], 200, "after 413")


def test_oversized_headers_drop_the_connection_and_server_keeps_serving(srv):
    c = srv.conn()
    try:
        st = c.raw("GET", "/v1/me", headers={"Authorization": "Bearer " + "a" * 20000})[0]
        assert st in (400, 431), st
    except (ConnectionError, OSError, Exception) as e:  # libwebsockets closes such connections
        pass
    expect(srv.login("alice").get("/v1/me")[0], 200, "after oversized headers")


BAD_INPUTS = [
    # (method, path, body, content-type, expected status, what)
    ("POST", "/v1/admin/users", b"{\"username\": ", "application/json", 400, "malformed JSON"),
    ("POST", "/v1/admin/users", b"[1,2,3]", "application/json", 400, "JSON array"),
    ("POST", "/v1/admin/users", b"{\"username\": 5, \"password\": true}", "application/json", 400, "wrong types"),
    ("POST", "/v1/admin/users", b"{\"username\": \"x\", \"password\": \"yyyy\", \"admin\": \"yes\"}", "application/json", 400, "string for bool"),
    ("POST", "/v1/admin/users", b"{\"username\": \"../etc\", \"password\": \"yyyy\"}", "application/json", 400, "path in name"),
    ("POST", "/v1/admin/users", b"{\"username\": \"a' OR 1=1 --\", \"password\": \"yyyy\"}", "application/json", 400, "SQL in name"),
    ("POST", "/v1/admin/users", b"{\"username\": \"\xff\xfe\", \"password\": \"yyyy\"}", "application/json", 400, "non-UTF-8 JSON"),
    ("POST", "/v1/admin/users", b"\x00\x01\x02", "application/json", 400, "binary body"),
    ("GET", "/v1/nothing/here", None, None, 404, "unknown route"),
    ("DELETE", "/v1/me", None, None, 405, "wrong method"),
    ("GET", "/v1/tracks/not-an-id", None, None, 400, "malformed id"),
    ("GET", "/v1/tracks/%27%20OR%201%3D1--", None, None, 400, "SQL in id"),
    ("GET", "/v1/tracks/..%2F..%2Fetc%2Fpasswd", None, None, None, "../ in id"),
    ("GET", "/v1/tracks/" + "A" * 22, None, None, 404, "unknown id"),
    ("GET", "/v1/albums/" + "A" * 22 + "/tracks", None, None, 404, "unknown album"),
    ("GET", "/v1/artists/" + "A" * 22 + "/top-tracks", None, None, 404, "unknown artist"),
    ("GET", "/v1/audio-features/" + "A" * 22, None, None, 404, "unknown features"),
    ("GET", "/v1/tracks?ids=" + "A" * 22 + ",%00", None, None, "drop", "NUL in ids"),
    ("GET", "/v1/tracks?ids=", None, None, 400, "empty ids"),
    ("GET", "/v1/albums/" + "A" * 22 + "/tracks?limit=abc", None, None, 400, "non-numeric limit"),
    ("GET", "/v1/albums/" + "A" * 22 + "/tracks?offset=99999999999999999999", None, None, 400, "huge offset"),
    ("GET", "/v1/tracks/%FF%FE" + "A" * 20, None, None, None, "non-UTF-8 in path"),
]


def test_bad_input_table_then_server_still_answers_and_db_is_intact(srv):
    c = srv.login("admin")
    for method, path, body, ctype, want, what in BAD_INPUTS:
        headers = {"Content-Type": ctype} if ctype else {}
        if want == "drop":
            # libwebsockets refuses an encoded NUL in the URI by closing the connection.
            try:
                st, data, _ = c.raw(method, path, body, headers)
                assert 400 <= st < 500, "%s: expected a 4xx or a closed connection, got %d" % (what, st)
            except (ConnectionError, OSError):
                c = srv.login("admin")
            continue
        st, data, _ = c.raw(method, path, body, headers)
        if want is None:
            assert 400 <= st < 500, "%s: expected a 4xx, got %d" % (what, st)
        else:
            expect(st, want, what)
        if st != 404 or data:
            try:
                err = json.loads(data)
                assert err["error"]["status"] == st and err["error"]["message"], err
            except ValueError:
                # libwebsockets itself rejects some malformed requests with HTML; still a 4xx.
                assert 400 <= st < 500, (what, st, data[:80])
    expect(srv.login("alice").get("/v1/me")[0], 200, "server still serves")
    con = sqlite3.connect(os.path.join(srv.data, "encore.db"))
    expect(con.execute("PRAGMA integrity_check").fetchone()[0], "ok", "integrity_check")
    con.close()


def test_every_response_carries_a_request_id_that_the_log_names(srv):
    c = srv.login("alice")
    st, _, r = c.get("/v1/nothing")
    rid = r.getheader("x-request-id")
    assert rid and len(rid) == 16, rid
    wait_for(lambda: rid in srv.log_text(), timeout=10, what="request id in the access log")
    line = [l for l in srv.log_text().splitlines() if rid in l][0]
    entry = json.loads(line)
    expect((entry["path"], entry["status"]), ("/v1/nothing", 404), "log entry")
    assert c.token not in srv.log_text(), "token leaked into the log"


def test_sigterm_shuts_down_cleanly():
    s = Server().start()
    c = s.login("alice")
    expect(c.get("/v1/me")[0], 200, "before")
    expect(s.stop(signal.SIGTERM), 0, "exit status after SIGTERM")
    assert "shutting down" in s.log_text()


def test_user_add_cli_and_login():
    s = Server()
    r = subprocess.run([ENCORED, "user", "add", "--data", s.data, "--tier", "premium", "--country", "GB", "erin", "pw1234"],
                       capture_output=True, text=True)
    expect(r.returncode, 0, "user add: " + r.stderr)
    r = subprocess.run([ENCORED, "user", "add", "--data", s.data, "erin", "pw1234"], capture_output=True, text=True)
    assert r.returncode != 0 and "already exists" in r.stderr, r.stderr
    with s:
        expect(s.login("erin", "pw1234").get("/v1/me")[1]["product"], "premium", "erin")


def server_rx_queue(srv, client_port):
    """Bytes the server has not yet read from the connection coming from client_port
    (the server side's rx_queue in /proc/net/tcp); None while the socket is not listed."""
    want_local, want_remote = ":%04X" % srv.port, ":%04X" % client_port
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if f[1].endswith(want_local) and f[2].endswith(want_remote):
            return int(f[4].split(":")[1], 16)
    return None


def test_sigterm_and_sigint_finish_in_flight_requests_and_close_the_database():
    import threading
    for sig in (signal.SIGTERM, signal.SIGINT):
        s = Server(["--fault-latency-ms", "1500"]).start()
        try:
            c = s.login("alice")
            tid = query(s, "SELECT id FROM tracks WHERE markets = '' AND explicit = 0 AND state = 'ready' LIMIT 1")[0][0]
            st, m, _ = c.get("/v1/playback/%s?inline=0" % tid)
            expect(st, 200, "manifest")
            init = m["renditions"][0]["init"]
            path = init["url"].split(str(s.port), 1)[1]
            slow = http.client.HTTPConnection(s.host, s.port, timeout=60)
            slow.connect()
            got = {}

            def fetch():
                r = slow.getresponse()
                got["status"], got["body"] = r.status, r.read()
            slow.request("GET", path)
            port = slow.sock.getsockname()[1]
            # The server has read the request (and is holding it for 1.5 s) before the signal.
            wait_for(lambda: server_rx_queue(s, port) == 0, timeout=30, what="the server reading the request")
            th = threading.Thread(target=fetch)
            th.start()
            s.proc.send_signal(sig)
            th.join(60)
            expect((got.get("status"), len(got.get("body", b""))), (200, init["size"]),
                   "the in-flight request's answer after %s" % sig.name)
            expect(s.proc.wait(timeout=60), 0, "exit status after %s" % sig.name)
            # A clean close checkpoints the WAL into the database and removes it.
            assert not os.path.exists(os.path.join(s.data, "encore.db-wal")), "WAL left behind: database not closed"
            con = sqlite3.connect(os.path.join(s.data, "encore.db"))
            expect(con.execute("PRAGMA integrity_check").fetchone()[0], "ok", "integrity after %s" % sig.name)
            con.close()
        finally:
            s.stop()


def test_wal_mode_and_migrations_run_once_at_start():
    s = Server().start()
    try:
        con = sqlite3.connect(os.path.join(s.data, "encore.db"))
        expect(con.execute("PRAGMA journal_mode").fetchone()[0], "wal", "journal mode")
        version = con.execute("PRAGMA user_version").fetchone()[0]
        con.close()
        assert version >= 10, "schema version %d" % version
        c = s.login("alice")
        st, pl, _ = c.req("POST", "/v1/me/playlists", {"name": "Kept across restarts"})
        expect(st, 201, "create")
    finally:
        s.stop()
    s2 = Server(seed=False, data=s.data).start()
    try:
        con = sqlite3.connect(os.path.join(s.data, "encore.db"))
        expect(con.execute("PRAGMA user_version").fetchone()[0], version, "schema version after a restart")
        con.close()
        st, body, _ = s2.login("alice").get("/v1/playlists/" + pl["id"])
        expect((st, body.get("name")), (200, "Kept across restarts"), "data across the restart")
    finally:
        s2.stop()
        shutil.rmtree(s.data, ignore_errors=True)


def test_user_add_admin_reaches_admin_routes():
    s = Server()
    r = subprocess.run([ENCORED, "user", "add", "--data", s.data, "--admin", "root2", "pw5678"], capture_output=True,
                       text=True)
    expect(r.returncode, 0, "user add --admin: " + r.stderr)
    r = subprocess.run([ENCORED, "user", "add", "--data", s.data, "plain2", "pw5678"], capture_output=True, text=True)
    expect(r.returncode, 0, "user add: " + r.stderr)
    with s:
        expect(s.login("root2", "pw5678").get("/v1/admin/faults")[0], 200, "an admin on an admin route")
        expect(s.login("plain2", "pw5678").get("/v1/admin/faults")[0], 403, "a user on an admin route")


def test_keys_file_is_private(srv):
    mode = os.stat(os.path.join(srv.data, "jwt.keys")).st_mode & 0o777
    expect(oct(mode), oct(0o600), "jwt.keys mode")


if __name__ == "__main__":
    with Server() as shared:
        tests_with_srv = [
            test_first_line_names_the_ephemeral_port,
            test_password_login_returns_hs256_jwt_with_claims,
            test_bad_credentials_get_oauth_errors,
            test_me_reports_product_and_country,
            test_refresh_token_rotates_and_is_single_use,
            test_forged_tampered_and_alg_none_tokens_are_refused,
            test_track_object_has_web_api_shape,
            test_is_playable_follows_the_callers_market,
            test_several_tracks_and_unknown_ids,
            test_albums_artists_paging_and_top_tracks,
            test_etag_and_if_none_match,
            test_admin_routes_need_an_admin,
            test_oversized_body_gets_413_and_server_keeps_serving,
            test_oversized_headers_drop_the_connection_and_server_keeps_serving,
            test_bad_input_table_then_server_still_answers_and_db_is_intact,
            test_every_response_carries_a_request_id_that_the_log_names,
            test_keys_file_is_private,
        ]
        from harness import Tap
        tap = Tap()
        for t in tests_with_srv:
            tap.run(t, shared)
        for t in (test_expired_token_is_refused, test_user_rate_limit_answers_429_with_retry_after,
                  test_ip_rate_limit_answers_429, test_sigterm_shuts_down_cleanly, test_user_add_cli_and_login,
                  test_sigterm_and_sigint_finish_in_flight_requests_and_close_the_database,
                  test_wal_mode_and_migrations_run_once_at_start, test_user_add_admin_reaches_admin_routes):
            tap.run(t)
    tap.done()
