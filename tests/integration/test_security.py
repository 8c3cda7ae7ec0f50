"""Security review through the real encored: login throttling (per account and per address,
exponential backoff, admin unlock), authorization between users on every route that touches
a user's data, and secrets kept out of the server log. Threat model: docs/SECURITY.md.
Signed-URL binding (another user's or another IP's URL is refused) is proven in
test_delivery.test_signed_urls_refuse_forged_tampered_other_user_other_ip; key files being
0600 in test_delivery.test_key_rotation_keeps_old_urls_valid and test_gateway."""
import os
import random
import sqlite3
import string
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import Server, Tap, expect, wait_for  # noqa: E402

ALNUM = string.ascii_letters + string.digits


def rid():
    return "".join(random.choice(ALNUM) for _ in range(22))


def attempt(srv, user, password):
    c = srv.conn()
    st, body, r = c.form("/api/token", {"grant_type": "password", "username": user, "password": password})
    return st, body, r.getheader("Retry-After")


def track_ids(srv, n=2):
    con = sqlite3.connect(os.path.join(srv.data, "encore.db"), timeout=30)
    try:
        return [r[0] for r in con.execute("SELECT id FROM tracks WHERE state = 'ready' ORDER BY id LIMIT ?", (n,))]
    finally:
        con.close()


# ---- login throttling ----

def test_account_lock_refuses_even_the_right_password_until_admin_unlock():
    # 3 failures lock the account for 60 s: long enough that no test run outlives it.
    with Server(["--login-throttle", "3:100:60:600"], tracks=2) as srv:
        for i in range(2):
            st, body, ra = attempt(srv, "alice", "wrong%d" % i)
            expect((st, body["error"], ra), (400, "invalid_grant", None), "failure %d" % (i + 1))
        st, body, ra = attempt(srv, "alice", "wrong2")
        expect((st, ra), (400, "60"), "the failure that locks says for how long")
        st, body, ra = attempt(srv, "alice", "demo")
        expect((st, body["error"]), (429, "too_many_attempts"), "right password during the lock")
        assert ra is not None and 1 <= int(ra) <= 60, ra
        # Other accounts from the same address are not locked by alice's failures.
        srv.login("bob")
        # Only an admin may unlock, and the unlock names the account.
        bob = srv.login("bob")
        expect(bob.req("POST", "/v1/admin/users/alice/unlock")[0], 403, "non-admin unlock")
        admin = srv.login("admin")
        expect(admin.req("POST", "/v1/admin/users/nobody/unlock")[0], 404, "unknown user")
        st, body, _ = admin.req("POST", "/v1/admin/users/alice/unlock")
        expect((st, body), (200, {"id": "alice", "was_throttled": True}), "unlock")
        srv.login("alice")
        st, body, _ = admin.req("POST", "/v1/admin/users/alice/unlock")
        expect(body["was_throttled"], False, "a success already cleared the account")


def test_lock_doubles_on_each_failure_after_it_ends():
    # 1 s, 2 s, 4 s with a cap of 4: each failure after a lock ends reports the next lock.
    with Server(["--login-throttle", "2:100:1:4"], tracks=2) as srv:
        expect(attempt(srv, "bob", "x")[2], None, "first failure")
        expect(attempt(srv, "bob", "x")[2], "1", "second failure locks 1 s")
        for want in ("2", "4", "4"):
            # Retry while locked (429, not counted) until a failure is counted again.
            def counted():
                st, _, ra = attempt(srv, "bob", "x")
                return ra if st == 400 else None
            expect(wait_for(counted, timeout=60, what="lock to end"), want, "next lock")


def test_success_resets_the_account_count():
    with Server(["--login-throttle", "3:100:60:600"], tracks=2) as srv:
        for _ in range(2):
            expect(attempt(srv, "chen", "bad")[0], 400, "failure")
        srv.login("chen")
        for _ in range(2):
            expect(attempt(srv, "chen", "bad")[0], 400, "failure after success")
        srv.login("chen")  # would be 429 had the first two failures still counted


def test_address_lock_stops_credential_stuffing_across_accounts():
    # Stuffing tries one password per account: the per-account count never trips, the
    # per-address one does, and then even a valid credential from that address waits.
    with Server(["--login-throttle", "100:5:60:600"], tracks=2) as srv:
        for i in range(5):
            st, _, ra = attempt(srv, "user%d" % i, "hunter2")
            expect(st, 400, "stuffing attempt %d" % i)
        expect(ra, "60", "the fifth failure locks the address")
        st, body, ra = attempt(srv, "alice", "demo")
        expect((st, body["error"]), (429, "too_many_attempts"), "valid credential from the locked address")
        assert "address" in body["error_description"], body
        # Every account is refused from that address, the admin's too.
        expect(attempt(srv, "admin", "demo")[0], 429, "admin login from the locked address")


def test_refresh_grant_is_not_throttled_by_password_failures():
    with Server(["--login-throttle", "2:2:60:600"], tracks=2) as srv:
        a = srv.login("alice")
        attempt(srv, "alice", "x")
        attempt(srv, "alice", "x")
        st, body, _ = srv.conn().form("/api/token", {"grant_type": "refresh_token", "refresh_token": a.refresh})
        expect(st, 200, "refresh during a lock: the holder already proved the password")


# ---- authorization between users ----

def test_users_cannot_read_or_change_each_others_private_data(srv):
    alice, bob = srv.login("alice"), srv.login("bob")
    t = track_ids(srv)
    st, pl, _ = alice.req("POST", "/v1/me/playlists", {"name": "secret", "public": False})
    expect(st, 201, "create private playlist")
    pid = pl["id"]
    st, _, _ = alice.req("POST", "/v1/playlists/%s/tracks" % pid, {"uris": ["encore:track:" + t[0]]})
    expect(st, 201, "alice adds")
    # Reads of a private playlist look exactly like an unknown id (its existence is private too).
    for path in ("/v1/playlists/%s" % pid, "/v1/playlists/%s/tracks" % pid, "/v1/playlists/%s/tracks?cursor=" % pid,
                 "/v1/playlists/%s/changes" % pid, "/v1/playlists/%s/collaborators" % pid):
        st, _, _ = bob.get(path)
        assert st in (403, 404), "bob GET %s: got %d" % (path, st)
    st, mine, _ = bob.get("/v1/me/playlists")
    assert pid not in [p["id"] for p in mine["items"]], "alice's private playlist in bob's list"
    # Writes.
    writes = [
        ("POST", "/v1/playlists/%s/tracks" % pid, {"uris": ["encore:track:" + t[1]]}),
        ("PUT", "/v1/playlists/%s/tracks" % pid, {"range_start": 0, "insert_before": 1}),
        ("PUT", "/v1/playlists/%s/tracks" % pid, {"uris": []}),
        ("DELETE", "/v1/playlists/%s/tracks" % pid, {"tracks": [{"uri": "encore:track:" + t[0]}]}),
        ("PUT", "/v1/playlists/%s" % pid, {"name": "pwned"}),
        ("POST", "/v1/playlists/%s/collaborators" % pid, {"id": "bob"}),
        ("POST", "/v1/users/alice/playlists", {"name": "in alice's name"}),
    ]
    for method, path, body in writes:
        st, _, _ = bob.req(method, path, body)
        assert st in (403, 404), "bob %s %s: got %d" % (method, path, st)
    st, after, _ = alice.get("/v1/playlists/%s" % pid)
    expect((after["name"], after["tracks"]["total"]), ("secret", 1), "alice's playlist untouched")
    # A public playlist is readable but still not writable by others.
    alice.req("PUT", "/v1/playlists/%s" % pid, {"public": True})
    expect(bob.get("/v1/playlists/%s" % pid)[0], 200, "public read")
    expect(bob.req("POST", "/v1/playlists/%s/tracks" % pid, {"uris": ["encore:track:" + t[1]]})[0], 403,
           "public playlist write by a non-collaborator")


def test_listening_history_is_per_token(srv):
    alice, bob = srv.login("alice"), srv.login("bob")
    t = track_ids(srv, 1)[0]
    now = int(time.time() * 1000)
    evs = [{"id": rid(), "type": "play_start", "ts": now - 40000, "uri": "encore:track:" + t},
           {"id": rid(), "type": "play_end", "ts": now, "uri": "encore:track:" + t, "ms_played": 40000}]
    st, body, _ = alice.req("POST", "/v1/events", {"events": evs})
    assert st in (200, 202), (st, body)

    def alice_sees():
        st, body, _ = alice.get("/v1/me/player/recently-played")
        return st == 200 and body["items"]
    wait_for(alice_sees, what="alice's play in her history")
    st, body, _ = bob.get("/v1/me/player/recently-played")
    expect((st, body["items"]), (200, []), "bob's history")
    # No route takes another user's id for history: the token alone decides whose it is.
    expect(bob.get("/v1/me/player/recently-played?user=alice")[1]["items"], [], "a user parameter is ignored")


def test_admin_routes_refuse_ordinary_users_and_anonymous(srv):
    bob = srv.login("bob")
    anon = srv.conn()
    routes = [("GET", "/v1/admin/stats", None), ("GET", "/v1/admin/faults", None),
              ("POST", "/v1/admin/faults", {"error_rate": 1}), ("POST", "/v1/admin/keys/rotate", {}),
              ("POST", "/v1/admin/warm", {}), ("GET", "/v1/admin/consumers", None),
              ("GET", "/v1/admin/realtime", None), ("GET", "/v1/admin/ingest/x", None),
              ("POST", "/v1/admin/users", {"username": "mallory", "password": "x"}),
              ("PUT", "/v1/admin/users/bob", {"tier": "premium"}),
              ("POST", "/v1/admin/users/bob/unlock", {})]
    for method, path, body in routes:
        expect(bob.req(method, path, body)[0], 403, "bob %s %s" % (method, path))
        expect(anon.req(method, path, body)[0], 401, "anonymous %s %s" % (method, path))
    st, me, _ = bob.get("/v1/me")
    expect(me.get("product"), "free", "bob did not upgrade himself")


def test_public_profile_hides_private_fields(srv):
    bob = srv.login("bob")
    st, me, _ = srv.login("alice").get("/v1/me")
    st, other, _ = bob.get("/v1/users/alice")
    expect(st, 200, "profile")
    for private in ("email", "country", "product", "explicit_content"):
        assert private not in other, "alice's %s visible to bob: %r" % (private, other)


# ---- secrets ----

def test_no_token_password_or_key_in_the_log():
    secret_pw = "Pw-" + rid()
    with Server(tracks=2) as srv:
        admin = srv.login("admin")
        expect(admin.req("POST", "/v1/admin/users", {"username": "dora", "password": secret_pw, "tier": "premium",
                                                      "country": "DE"})[0], 201, "add user")
        secrets = {secret_pw}
        wrong = "Wrong-" + rid()
        attempt(srv, "dora", wrong)
        secrets.add(wrong)
        d = srv.login("dora", secret_pw)
        secrets |= {d.token, d.refresh, admin.token, admin.refresh}
        st, body, _ = srv.conn().form("/api/token", {"grant_type": "refresh_token", "refresh_token": d.refresh})
        expect(st, 200, "refresh")
        secrets |= {body["access_token"], body["refresh_token"]}
        d.token = body["access_token"]
        srv.conn().form("/api/token", {"grant_type": "refresh_token", "refresh_token": d.refresh})  # reuse: refused
        t = track_ids(srv, 1)[0]
        st, m, _ = d.get("/v1/playback/" + t)
        expect(st, 200, "manifest")
        seg = m["renditions"][0]["segment_url_template"].replace("{index}", "0")
        u = urllib.parse.urlparse(seg)
        for v in urllib.parse.parse_qs(u.query).values():
            if len(v[0]) >= 16:
                secrets.add(v[0])
        c = srv.conn()
        expect(c.raw("GET", u.path + "?" + u.query)[0], 200, "segment")
        expect(c.raw("GET", u.path + "?" + u.query.replace("s=", "s=A"))[0], 403, "tampered segment URL")
        st, pl, _ = d.req("POST", "/v1/me/playlists", {"name": "p"})
        d.req("POST", "/v1/playlists/%s/tracks" % pl["id"], {"uris": ["encore:track:" + t]})
        d.req("PUT", "/v1/playlists/%s" % pl["id"], {"name": "q"})
        d.get("/v1/me", headers={"Authorization": "Bearer " + d.token + "x"})  # bad token: logged refusal
        for name in ("jwt.keys", "cdn.keys"):
            with open(os.path.join(srv.data, name)) as f:
                for word in f.read().split():
                    if len(word) >= 16:
                        secrets.add(word)
                    for part in word.split(":"):
                        if len(part) >= 16:
                            secrets.add(part)
        log = srv.log_text()
        assert log.strip(), "the server logged nothing: this test would prove nothing"
        # A secret is also leaked by a long piece of it (a JWT's signature part, say).
        leaked = [s[:12] + "..." for s in secrets if s in log or any(p in log for p in s.split(".") if len(p) >= 16)]
        expect(leaked, [], "secrets in the server log (%d checked, log %d bytes)" % (len(secrets), len(log)))



def main():
    tap = Tap()
    for t in (test_account_lock_refuses_even_the_right_password_until_admin_unlock,
              test_lock_doubles_on_each_failure_after_it_ends, test_success_resets_the_account_count,
              test_address_lock_stops_credential_stuffing_across_accounts,
              test_refresh_grant_is_not_throttled_by_password_failures,
              test_no_token_password_or_key_in_the_log):
        tap.run(t)
    with Server(tracks=3) as srv:
        for t in (test_users_cannot_read_or_change_each_others_private_data, test_listening_history_is_per_token,
                  test_admin_routes_refuse_ordinary_users_and_anonymous, test_public_profile_hides_private_fields):
            tap.run(t, srv)
    tap.done()


if __name__ == "__main__":
    main()
