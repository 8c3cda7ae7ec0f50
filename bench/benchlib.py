"""Shared pieces of the shell benchmarks (bench/*.sh): medians, the BENCH record, a
seeded encored (through tests/integration/harness.py), an nginx peer on a private
config, and the delaying proxy. Loopback only.

Environment: BUILD (default build-bench), BENCH_QUICK=1 for a small smoke run."""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build-bench"))
os.environ.setdefault("ENCORED", os.path.join(BUILD, "mockserver", "encored"))
os.environ.setdefault("ENCORE", os.path.join(BUILD, "tui", "encore"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
ENCORED = os.environ["ENCORED"]
ENCORE = os.environ["ENCORE"]
if not (os.access(ENCORED, os.X_OK) and os.access(ENCORE, os.X_OK)):
    raise SystemExit("bench: build first: meson setup %s --buildtype=release && ninja -C %s (or run scripts/bench)"
                     % (BUILD, BUILD))


def say(fmt, *args):
    """Progress and figures go to stdout (scripts/bench keeps only BENCH lines)."""
    print(fmt % args if args else fmt, flush=True)


def say_load(what):
    """The machine is shared: print the load average so a noisy run can be recognised."""
    say("%s: load average %.2f %.2f %.2f on %d cores", what, *os.getloadavg(), os.cpu_count())


def median(xs):
    return statistics.median(xs)


def pct(xs, p):
    """The p-th percentile (nearest rank) of xs; NaN for none."""
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def bench_line(name, metric, encore, peer, peer_value, goal, ratio=None):
    if ratio is None:
        ratio = encore / peer_value if peer_value else float("nan")
    say("BENCH\t%s\t%s\t%s\t%s\t%s\t%.2f\t%s", name, metric, fmt(encore), peer, fmt(peer_value), ratio, goal)


def fmt(v):
    if isinstance(v, float):
        return "%.3g" % v if abs(v) < 100 else "%.0f" % v
    return str(v)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=10.0):
    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False
    harness.wait_for(up, timeout, "port %d" % port)


def seeded_server(tracks, seconds, args=()):
    """A started encored on a copy of a cached seeded catalog (episodes off)."""
    return harness.Server(args=list(args), tracks=tracks, seconds=seconds, episodes=0).start()


# Rows of one SQL statement against a server's database.
db = harness.query


def object_path(data_dir, h):
    return os.path.join(data_dir, "objects", h[:2], h[2:])


class Nginx:
    """nginx serving ROOT on a loopback port with its usual static-file settings
    (sendfile, access log on, 2 workers on 2 cores)."""

    def __init__(self, root, access_log_buffer=None, open_file_cache=False):
        """access_log_buffer (e.g. "32k"): buffer log lines, flushed at least every 100 ms;
        open_file_cache: keep open descriptors of served files (nginx's default is off)."""
        self.dir = tempfile.mkdtemp(prefix="bench-nginx-")
        self.port = free_port()
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = """%sworker_processes auto;
pid %s/nginx.pid;
error_log %s/error.log;
events { worker_connections 4096; }
http {
    access_log %s/access.log%s;
    %s
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    types { audio/ogg ogg; }
    client_body_temp_path %s/tmp; proxy_temp_path %s/tmp; fastcgi_temp_path %s/tmp;
    uwsgi_temp_path %s/tmp; scgi_temp_path %s/tmp;
    server { listen 127.0.0.1:%d; root %s; }
}
""" % (user, self.dir, self.dir, self.dir, " combined buffer=%s flush=100ms" % access_log_buffer if access_log_buffer else "",
       "open_file_cache max=1024 inactive=60s; open_file_cache_valid 60s;" if open_file_cache else "",
       self.dir, self.dir, self.dir, self.dir, self.dir, self.port, root)
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(conf)
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-c", os.path.join(self.dir, "nginx.conf"),
                                      "-g", "daemon off;"], stderr=subprocess.DEVNULL)
        wait_port(self.port)
        self.url = "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Proxy:
    """bench/delayproxy.py in front of upstream: delay_ms each way (RTT = 2 x delay_ms),
    optionally rewriting the upstream's own URL in bodies to the proxy's."""

    def __init__(self, upstream_port, delay_ms, rewrite=False):
        args = [sys.executable, os.path.join(ROOT, "bench", "delayproxy.py"), "--upstream",
                "127.0.0.1:%d" % upstream_port, "--delay-ms", str(delay_ms)]
        if rewrite:
            args.append("--rewrite-self")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError("delayproxy did not start: %r" % line)
        self.port = int(line.split(":")[-1])
        self.url = "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


def rusage_run(argv, env=None, timeout=600):
    """Runs argv to the end under build/bench/bench_rusage (a small parent: Linux carries a
    parent's peak RSS across fork+exec, so measuring from Python would inflate it).
    Returns (wall s, user+sys CPU s, peak RSS KiB, exit code, stdout)."""
    tool = os.path.join(BUILD, "bench", "bench_rusage")
    p = subprocess.run([tool] + list(argv), env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout)
    line = [l for l in p.stderr.decode(errors="replace").splitlines() if l.startswith("RUSAGE ")][-1].split()
    return float(line[1]), float(line[2]), int(line[3]), int(line[4]), p.stdout.decode(errors="replace")


def events(text):
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out
