#!/usr/bin/env python3
"""CLI checks for `encore` against a scripted stand-in for encored that speaks the
agreed protocol (token route, bearer auth, Spotify-shaped objects). It proves the
command line's exit codes, session file handling and transparent refresh; checks
against the real encored are separate. Usage: test_client_cli.py PATH/TO/encore
Prints TAP."""
import json, os, stat, subprocess, sys, tempfile, threading, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TID = "0123456789abcdefghijkl"
ME = {"id": "alice", "display_name": "alice", "product": "premium", "country": "SE",
      "type": "user", "uri": "encore:user:alice", "href": "/v1/me"}
TRACK = {"id": TID, "name": "Song", "duration_ms": 225999, "explicit": True, "is_playable": True,
         "artists": [{"name": "A"}, {"name": "B"}], "album": {"name": "LP", "release_date": "2020-01-01"},
         "uri": "encore:track:" + TID, "type": "track"}


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.access = None
        self.refresh = None
        self.n = 0

    def issue(self):
        self.n += 1
        self.access, self.refresh = "A%d" % self.n, "R%d" % self.n
        return {"access_token": self.access, "token_type": "Bearer", "expires_in": 3600,
                "refresh_token": self.refresh, "scope": "streaming"}


def make_handler(st):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send(self, code, obj):
            b = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            f = urllib.parse.parse_qs(body)
            with st.lock:
                if self.path == "/api/token" and f.get("grant_type") == ["password"] \
                        and f.get("username") == ["alice"] and f.get("password") == ["s3cret &x"]:
                    return self.send(200, st.issue())
                if self.path == "/api/token" and f.get("grant_type") == ["refresh_token"] \
                        and st.refresh and f.get("refresh_token") == [st.refresh]:
                    return self.send(200, st.issue())
            self.send(400, {"error": "invalid_grant", "error_description": "Invalid username or password"})

        def do_GET(self):
            with st.lock:
                ok = st.access and self.headers.get("Authorization") == "Bearer " + st.access
            if not ok:
                return self.send(401, {"error": {"status": 401, "message": "The access token expired"}})
            if self.path == "/v1/me":
                return self.send(200, ME)
            if self.path == "/v1/tracks/" + TID:
                return self.send(200, TRACK)
            self.send(404, {"error": {"status": 404, "message": "non existing id"}})
    return H


n = 0
failed = 0


def check(name, cond, detail=""):
    global n, failed
    n += 1
    if cond:
        print("ok %d - %s" % (n, name))
    else:
        failed += 1
        print("not ok %d - %s" % (n, name))
        for line in str(detail).splitlines():
            print("#   " + line)


def main():
    encore = os.path.abspath(sys.argv[1])
    st = State()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(st))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d" % srv.server_address[1]
    tmp = tempfile.mkdtemp(prefix="encore-cli-")
    sess = os.path.join(tmp, "data", "session.json")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("ENCORE_", "XDG_"))}
    base_env.update(HOME=tmp, ENCORE_DATA_DIR=os.path.join(tmp, "data"), ENCORE_SERVER=url)

    def run(*args, env=None):
        e = dict(base_env)
        e.update(env or {})
        # A new session has no controlling terminal, so the password prompt cannot hang.
        p = subprocess.run([encore, *args], env=e, capture_output=True, text=True,
                           timeout=60, start_new_session=True, stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr

    def expect(name, got, code, out=None, err=None):
        rc, so, se = got
        ok = rc == code and (out is None or out in so) and (err is None or err in se)
        check(name, ok, "expected exit %d%s%s, got %d\nstdout: %s\nstderr: %s" % (
            code, " with stdout ~ %r" % out if out else "", " with stderr ~ %r" % err if err else "", rc, so, se))

    expect("version_prints_project_version", run("--version"), 0, out="encore ")
    expect("no_command_reaches_the_tui_stub", run(), 1, err="TUI not built yet")
    expect("unknown_command_is_usage_error", run("frobnicate"), 2, err="unknown command")
    expect("unknown_option_is_usage_error", run("--frob"), 2, err="usage:")
    expect("show_without_uri_is_usage_error", run("show"), 2, err="missing URI")
    expect("show_malformed_uri_is_usage_error", run("show", "spotify:track:x"), 2, err="not an encore URI")
    expect("whoami_before_login_needs_auth", run("whoami"), 3, err="not logged in")
    expect("login_without_password_or_tty_needs_auth", run("login", "alice"), 3, err="ENCORE_PASSWORD")
    expect("login_with_wrong_password_fails_auth", run("login", "alice", env={"ENCORE_PASSWORD": "nope"}), 3,
           err="Invalid username or password")
    check("failed_login_writes_no_session", not os.path.exists(sess))
    expect("login_succeeds", run("login", "alice", env={"ENCORE_PASSWORD": "s3cret &x"}), 0, out="Logged in as alice")
    mode = stat.S_IMODE(os.stat(sess).st_mode) if os.path.exists(sess) else None
    check("session_file_is_mode_0600", mode == 0o600, "mode %r" % (oct(mode) if mode is not None else None))
    saved = json.load(open(sess)) if os.path.exists(sess) else {}
    check("session_records_server_user_and_tokens",
          saved.get("server") == url and saved.get("username") == "alice" and saved.get("access_token") == st.access
          and saved.get("refresh_token") == st.refresh, saved)
    expect("whoami_prints_card", run("whoami"), 0, out="premium")
    rc, so, se = run("whoami", "--json")
    try:
        same = json.loads(so) == ME
    except ValueError:
        same = False
    check("whoami_json_is_the_object_as_received", rc == 0 and same, so + se)
    rc, so, se = run("show", "encore:track:" + TID)
    check("show_track_card_has_artists_duration_explicit",
          rc == 0 and "A, B" in so and "3:45" in so and "explicit   yes" in so and "LP (2020)" in so, so + se)
    expect("show_missing_object_is_not_found", run("show", "encore:album:" + TID), 4, err="not found: encore:album:")

    with st.lock:  # the server forgets the access token: the client must refresh transparently
        st.access = "expired-" + st.access
        old_refresh = st.refresh
    expect("expired_token_is_refreshed_transparently", run("whoami"), 0, out="premium")
    saved = json.load(open(sess))
    check("refreshed_tokens_are_persisted",
          saved.get("access_token") == st.access and saved.get("refresh_token") != old_refresh, saved)
    check("session_file_stays_0600_after_refresh", stat.S_IMODE(os.stat(sess).st_mode) == 0o600)

    with st.lock:  # both tokens revoked
        st.access, st.refresh = "gone", "gone"
    expect("revoked_session_needs_auth", run("whoami"), 3, err="login")
    expect("session_for_other_server_needs_auth", run("--server", "http://127.0.0.1:9", "whoami"), 3,
           err="the session is for " + url)
    expect("logout_removes_session", run("logout"), 0, out="Logged out alice")
    check("session_file_gone_after_logout", not os.path.exists(sess))
    expect("logout_when_logged_out_is_ok", run("logout"), 0, out="Not logged in")

    srv.shutdown()
    srv.server_close()
    expect("unreachable_server_is_reported_on_one_line",
           run("login", "alice", env={"ENCORE_PASSWORD": "x"}), 1, err="cannot reach server %s: " % url)
    print("1..%d" % n)
    subprocess.run(["rm", "-rf", tmp])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
