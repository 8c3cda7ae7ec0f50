"""Integration-test harness: runs the real encored on an ephemeral loopback port with a
fresh data directory, and prints TAP so meson and scripts/test can count results.

Waits are on conditions with generous deadlines, never fixed sleeps."""
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import fcntl
import time
import traceback
import urllib.parse

ENCORED = os.environ.get("ENCORED", "encored")
ENCORE = os.environ.get("ENCORE", "encore")


def wait_for(cond, timeout=30.0, what="condition"):
    """Polls cond() until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def seeded_template(tracks, seconds, episodes):
    """A seeded data directory, made once per build and copied for each test server:
    seeding runs the real ingest pipeline (synthesis, analysis, four transcodes a track),
    which is worth doing once, not once per test."""
    root = os.environ.get("ENCORE_TEST_CACHE") or os.path.join(tempfile.gettempdir(), "encore-test-cache")
    os.makedirs(root, exist_ok=True)
    key = "seed-%s-t%d-s%g-e%d" % (os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(ENCORED)))) or "x",
                                   tracks, seconds, episodes)
    path = os.path.join(root, key)
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(path, ".complete")):
            shutil.rmtree(path, ignore_errors=True)
            subprocess.run([ENCORED, "seed-demo", "--data", path, "--tracks", str(tracks), "--seconds", str(seconds),
                            "--episodes", str(episodes), "--episode-seconds", "6"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            open(os.path.join(path, ".complete"), "w").close()
    return path


class Server:
    """One encored process. Use as a context manager."""

    def __init__(self, args=(), seed=True, tracks=12, data=None, seconds=5, episodes=1):
        self.own_data = data is None
        self.data = data or tempfile.mkdtemp(prefix="encored-test-")
        self.args = list(args)
        self.proc = None
        if seed:
            shutil.rmtree(self.data)
            shutil.copytree(seeded_template(tracks, seconds, episodes), self.data)

    def start(self):
        # A second start would orphan the first process (still serving after the test).
        assert self.proc is None or self.proc.poll() is not None, "Server started twice"
        self.log = open(os.path.join(self.data, "server.log"), "ab")
        self.proc = subprocess.Popen([ENCORED, "serve", "--data", self.data, "--listen", "127.0.0.1:0"] + self.args,
                                     stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening on http://"):
            raise AssertionError("encored did not start: first line %r" % line)
        self.url = line.split()[2]
        u = urllib.parse.urlparse(self.url)
        self.host, self.port = u.hostname, u.port
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.proc.stdout.close()
            self.log.close()
        return self.proc.returncode if self.proc else None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self.own_data and not os.environ.get("KEEP_DATA"):
            shutil.rmtree(self.data, ignore_errors=True)

    def conn(self):
        return Client(self.host, self.port)

    def login(self, user, password="demo"):
        c = self.conn()
        st, body, _ = c.form("/api/token", {"grant_type": "password", "username": user, "password": password})
        assert st == 200, "login %s: expected 200, got %d %r" % (user, st, body)
        c.token = body["access_token"]
        c.refresh = body["refresh_token"]
        return c

    def log_text(self):
        with open(os.path.join(self.data, "server.log"), "rb") as f:
            return f.read().decode(errors="replace")


class Client:
    """A keep-alive HTTP/1.1 connection with JSON helpers."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.token = None
        self.c = http.client.HTTPConnection(host, port, timeout=60)

    def raw(self, method, path, body=None, headers=None):
        h = dict(headers or {})
        if self.token and "Authorization" not in h:
            h["Authorization"] = "Bearer " + self.token
        for attempt in range(2):
            try:
                self.c.request(method, path, body=body, headers=h)
                r = self.c.getresponse()
                data = r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.c.close()
                return r.status, data, r
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                # The server may close an idle keep-alive connection; reconnect once.
                self.c.close()
                self.c = http.client.HTTPConnection(self.host, self.port, timeout=60)
                if attempt:
                    raise

    def req(self, method, path, obj=None, headers=None):
        body = None
        h = dict(headers or {})
        if obj is not None:
            body = obj if isinstance(obj, (bytes, str)) else json.dumps(obj)
            h.setdefault("Content-Type", "application/json")
        st, data, r = self.raw(method, path, body, h)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data
        return st, parsed, r

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def form(self, path, fields):
        body = urllib.parse.urlencode(fields)
        return self.req("POST", path, body, headers={"Content-Type": "application/x-www-form-urlencoded"})


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def run(self, fn, *args):
        self.n += 1
        try:
            fn(*args)
            print("ok %d - %s" % (self.n, fn.__name__))
        except Exception:
            self.failed += 1
            print("not ok %d - %s" % (self.n, fn.__name__))
            for line in traceback.format_exc().splitlines():
                print("#   " + line)
        sys.stdout.flush()

    def done(self):
        print("1..%d" % self.n)
        sys.exit(1 if self.failed else 0)


def expect(got, want, what=""):
    if got != want:
        raise AssertionError("%s: expected %r, got %r" % (what, want, got))


def run_tests(tests, *args):
    tap = Tap()
    for t in tests:
        tap.run(t, *args)
    tap.done()


class Cli:
    """The encore binary with its own XDG directories, talking to one server."""

    def __init__(self, url, user=None):
        self.tmp = tempfile.mkdtemp(prefix="encore-cli-")
        self.sess = os.path.join(self.tmp, "data", "session.json")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("ENCORE_", "XDG_"))}
        self.env.update(HOME=self.tmp, ENCORE_DATA_DIR=os.path.join(self.tmp, "data"),
                        ENCORE_CONFIG_DIR=os.path.join(self.tmp, "config"),
                        ENCORE_CACHE_DIR=os.path.join(self.tmp, "cache"),
                        ENCORE_RUNTIME_DIR=os.path.join(self.tmp, "run"), ENCORE_SERVER=url)
        if user:
            r = self.run("login", user, env={"ENCORE_PASSWORD": "demo"})
            assert r[0] == 0, r

    def run(self, *args, env=None, timeout=300):
        e = dict(self.env)
        e.update(env or {})
        # A new session has no controlling terminal, so a password prompt cannot hang.
        p = subprocess.run([ENCORE, *args], env=e, capture_output=True, text=True, timeout=timeout,
                           start_new_session=True, stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr

    def spawn(self, *args):
        return subprocess.Popen([ENCORE, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True, stdin=subprocess.DEVNULL)


def events(stdout):
    """The JSON event lines of `encore play --json`."""
    return [json.loads(l) for l in stdout.splitlines() if l.startswith("{")]


def attach_stores(con, data):
    """Attaches the event consumers' stores (DATA/consumer-NAME.db) as encored does, so
    their tables (royalty_streams, rt_*, reco_interactions) can be queried by name."""
    for name in ("royalties", "realtime", "recommendations"):
        path = os.path.join(data, "consumer-%s.db" % name)
        if os.path.exists(path):
            con.execute("ATTACH DATABASE ? AS %s" % name, (path,))


def query(srv, sql, *args):
    """Rows of one SQL statement against a server's database (WAL: safe beside it); srv is
    a Server or a data directory."""
    import sqlite3
    data = getattr(srv, "data", srv)
    con = sqlite3.connect(os.path.join(data, "encore.db"), timeout=30)
    attach_stores(con, data)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def json_lines_so_far(p, acc):
    """The JSON lines a spawned process printed so far, without blocking; acc (a list)
    keeps what was read across calls (pass the same list, and append the rest at exit)."""
    import fcntl
    fd = p.stdout.fileno()
    fl = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, fl | os.O_NONBLOCK)
    try:
        chunk = p.stdout.read() or ""
    except (BlockingIOError, TypeError):
        chunk = ""
    fcntl.fcntl(fd, fcntl.F_SETFL, fl)
    acc.append(chunk)
    return [json.loads(l) for l in "".join(acc).splitlines() if l.startswith("{")]


def read_wav(path):
    """(rate, channels, interleaved int16 samples) of a 16-bit PCM WAV."""
    import array
    import wave
    with wave.open(path, "rb") as w:
        assert w.getsampwidth() == 2, "not 16-bit"
        data = array.array("h")
        data.frombytes(w.readframes(w.getnframes()))
        return w.getframerate(), w.getnchannels(), data
