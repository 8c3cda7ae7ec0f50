"""The `encore` binary against a real encored: exit codes, the session file, login,
whoami, show, transparent token refresh, and a server that goes away."""
import json
import os
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import ENCORE, Cli, Server, Tap, expect, wait_for  # noqa: E402


def check(got, code, out=None, err=None, what=""):
    rc, so, se = got
    ok = rc == code and (out is None or out in so) and (err is None or err in se)
    assert ok, "%s: expected exit %d%s%s, got %d\nstdout: %s\nstderr: %s" % (
        what, code, " with stdout ~ %r" % out if out else "", " with stderr ~ %r" % err if err else "", rc, so, se)


def test_usage_errors_exit_2(srv):
    cli = Cli(srv.url)
    check(cli.run("--version"), 0, out="encore ", what="--version")
    check(cli.run("frobnicate"), 2, err="unknown command", what="unknown command")
    check(cli.run("--frob"), 2, err="usage:", what="unknown option")
    check(cli.run("show"), 2, err="missing URI", what="show without URI")
    check(cli.run("show", "spotify:track:x"), 2, err="not an encore URI", what="foreign URI")


def test_login_whoami_and_session_file(srv):
    cli = Cli(srv.url)
    check(cli.run("whoami"), 3, err="not logged in", what="before login")
    check(cli.run("login", "alice"), 3, err="ENCORE_PASSWORD", what="no password, no tty")
    check(cli.run("login", "alice", env={"ENCORE_PASSWORD": "nope"}), 3, err="Invalid username or password",
          what="wrong password")
    assert not os.path.exists(cli.sess), "failed login wrote a session"
    check(cli.run("login", "alice", env={"ENCORE_PASSWORD": "demo"}), 0, out="Logged in as alice", what="login")
    expect(oct(stat.S_IMODE(os.stat(cli.sess).st_mode)), oct(0o600), "session mode")
    saved = json.load(open(cli.sess))
    expect((saved["server"], saved["username"]), (srv.url, "alice"), "session")
    check(cli.run("whoami"), 0, out="premium", what="whoami")
    rc, so, se = cli.run("whoami", "--json")
    me = json.loads(so)
    expect((rc, me["id"], me["country"], me["product"]), (0, "alice", "SE", "premium"), "whoami --json")
    check(cli.run("logout"), 0, out="Logged out alice", what="logout")
    assert not os.path.exists(cli.sess), "session left after logout"
    check(cli.run("logout"), 0, out="Not logged in", what="logout twice")


def test_show_track_album_artist(srv):
    cli = Cli(srv.url)
    check(cli.run("login", "bob", env={"ENCORE_PASSWORD": "demo"}), 0, what="login")
    con = sqlite3.connect(os.path.join(srv.data, "encore.db"))
    tid, name, album, artist, aid, arid, ms = con.execute(
        "SELECT t.id, t.name, al.name, ar.name, al.id, ar.id, t.duration_ms FROM tracks t JOIN albums al ON al.id = t.album_id"
        " JOIN artists ar ON ar.id = t.artist_id ORDER BY t.id LIMIT 1").fetchone()
    con.close()
    rc, so, se = cli.run("show", "encore:track:" + tid)
    dur = "%d:%02d" % (ms // 60000, (ms // 1000) % 60)
    assert rc == 0 and name in so and album in so and artist in so and dur in so, (dur, so + se)
    rc, so, se = cli.run("show", "encore:track:" + tid, "--json")
    obj = json.loads(so)
    expect((rc, obj["id"], obj["type"]), (0, tid, "track"), "show --json")
    check(cli.run("show", "encore:album:" + aid), 0, out=album, what="album card")
    check(cli.run("show", "encore:artist:" + arid), 0, out=artist, what="artist card")
    check(cli.run("show", "encore:album:" + "A" * 22), 4, err="not found", what="unknown album")


def test_expired_token_is_refreshed_transparently_and_persisted():
    with Server(["--token-ttl", "1"]) as s:
        cli = Cli(s.url)
        check(cli.run("login", "chen", env={"ENCORE_PASSWORD": "demo"}), 0, what="login")
        old = json.load(open(cli.sess))
        # Wait until the server itself refuses the stored access token.
        import urllib.request
        import urllib.error

        def refused():
            try:
                urllib.request.urlopen(urllib.request.Request(s.url + "/v1/me",
                                       headers={"Authorization": "Bearer " + old["access_token"]}), timeout=10)
                return False
            except urllib.error.HTTPError as e:
                return e.code == 401
        wait_for(refused, timeout=30, what="access token expiry")
        check(cli.run("whoami"), 0, out="premium", what="whoami after expiry")
        new = json.load(open(cli.sess))
        assert new["access_token"] != old["access_token"] and new["refresh_token"] != old["refresh_token"], new
        expect(oct(stat.S_IMODE(os.stat(cli.sess).st_mode)), oct(0o600), "mode after refresh")
        # Revoke every refresh token on the server: the client must ask for a login.
        wait_for(lambda: refused_token(s, new["access_token"]), timeout=30, what="second expiry")
        con = sqlite3.connect(os.path.join(s.data, "encore.db"))
        con.execute("DELETE FROM refresh_tokens")
        con.commit()
        con.close()
        check(cli.run("whoami"), 3, err="login", what="revoked session")


def refused_token(s, token):
    import urllib.request
    import urllib.error
    try:
        urllib.request.urlopen(urllib.request.Request(s.url + "/v1/me", headers={"Authorization": "Bearer " + token}),
                               timeout=10)
        return False
    except urllib.error.HTTPError as e:
        return e.code == 401


def test_unreachable_server_is_one_clear_line():
    s = Server().start()
    url = s.url
    s.stop()
    cli = Cli(url)
    rc, so, se = cli.run("login", "alice", env={"ENCORE_PASSWORD": "demo"})
    expect(rc, 1, "exit code")
    assert ("cannot reach server %s: " % url) in se and len(se.strip().splitlines()) == 1, se


if __name__ == "__main__":
    tap = Tap()
    with Server() as shared:
        for t in (test_usage_errors_exit_2, test_login_whoami_and_session_file, test_show_track_album_artist):
            tap.run(t, shared)
    for t in (test_expired_token_is_refreshed_transparently_and_persisted, test_unreachable_server_is_one_clear_line):
        tap.run(t)
    tap.done()
