"""The two quick-start commands' machinery: scripts/demo run for real (seeding on the first
run only, encored on a free port, the client, headless play without a terminal, the TUI
with one, the server stopped when the client exits) on a small catalog in a private
directory, and scripts/deps' three ways to install packages (root, sudo, or the exact
apt-get line and exit 1), with dpkg-query, id, sudo and apt-get stood in by recording
scripts (system tools, not our components)."""
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import ENCORED, Tap, expect, wait_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("ENCORE_BUILD_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(ENCORED)))


def demo_env(tmp):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENCORE_", "XDG_"))}
    env.update(ENCORE_DEMO_DIR=os.path.join(tmp, "demo"), ENCORE_DEMO_BUILD=os.path.relpath(BUILD, ROOT),
               ENCORE_DEMO_SEED="--tracks 4 --seconds 4 --episodes 0", HOME=tmp)
    return env


def servers_on(data):
    """encored processes serving this data directory."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"encored") for a in argv[:1]) and b"serve" in argv and data.encode() in argv:
            out.append(int(pid))
    return out


def run_demo(env):
    t0 = time.monotonic()
    p = subprocess.run([os.path.join(ROOT, "scripts", "demo")], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=900, start_new_session=True)
    return p, time.monotonic() - t0


def test_demo_without_a_terminal_seeds_once_plays_headlessly_and_stops_the_server():
    tmp = tempfile.mkdtemp(prefix="encore-demo-")
    try:
        env = demo_env(tmp)
        data = os.path.join(tmp, "demo", "server")
        p, first = run_demo(env)
        assert p.returncode == 0, "demo exit %d:\n%s" % (p.returncode, p.stderr[-3000:])
        for want in ("seeding the demo catalog (first run only)", "encored is serving on http://127.0.0.1:",
                     "no terminal, so playing headlessly"):
            assert want in p.stderr, "%r missing from the demo's stderr:\n%s" % (want, p.stderr[-3000:])
        # Headless play reports its progress on stderr: at least two tracks, one after the other.
        titles = []
        for line in p.stderr.splitlines():
            line = line.replace("\r", "\n").strip().splitlines()[-1] if line.strip() else ""
            if line.startswith("playing ") and " kbps " in line:
                title = line.split("  ")[-1]
                if title not in titles:
                    titles.append(title)
        assert len(titles) >= 2, "the headless play did not go through two tracks:\n" + p.stderr[-3000:]
        print("# played headlessly: %s" % "; ".join(titles))
        expect(servers_on(data), [], "encored still running after the demo")
        # The second run: no seeding, and the server is up in seconds.
        p2, second = run_demo(env)
        assert p2.returncode == 0, p2.stderr[-3000:]
        assert "seeding" not in p2.stderr, "seeded again:\n" + p2.stderr
        assert "encored is serving on" in p2.stderr, p2.stderr
        print("# first run %.1f s (seeding 4 tracks), second run %.1f s (10 s of that is the headless play)"
              % (first, second))
        expect(servers_on(data), [], "encored still running after the second run")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_demo_with_a_terminal_opens_the_tui_and_stops_the_server_on_quit():
    if not shutil.which("tmux"):
        raise AssertionError("tmux is not installed (scripts/deps installs it)")
    tmp = tempfile.mkdtemp(prefix="encore-demo-tty-")
    sock = os.path.join(tmp, "tmux.sock")

    def tmux(*a):
        return subprocess.run(["tmux", "-S", sock, *a], capture_output=True, text=True, timeout=30)
    try:
        env = demo_env(tmp)
        env.update(TERM="xterm-256color", LANG="C.UTF-8", LC_ALL="C.UTF-8")
        data = os.path.join(tmp, "demo", "server")
        done = os.path.join(tmp, "exit")
        tmux("new-session", "-d", "-s", "demo", "-x", "100", "-y", "30", "env",
             *["%s=%s" % kv for kv in env.items()], "sh", "-c",
             "%s; echo $? > %s; sleep 600" % (os.path.join(ROOT, "scripts", "demo"), done))
        screen = [""]

        def tui_up():
            screen[0] = tmux("capture-pane", "-p", "-t", "demo").stdout
            return "encore · Search" in screen[0] and "this device" in screen[0]
        try:
            wait_for(tui_up, timeout=900, what="the TUI opened by scripts/demo")
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, screen[0]))
        assert servers_on(data), "no encored serving the demo while the TUI is open"
        tmux("send-keys", "-t", "demo", "Escape", "q")
        wait_for(lambda: os.path.exists(done) and open(done).read().strip(), timeout=120, what="the demo exiting")
        expect(open(done).read().strip(), "0", "demo exit code")
        wait_for(lambda: not servers_on(data), timeout=60, what="encored stopped after the client quit")
    finally:
        tmux("kill-server")
        shutil.rmtree(tmp, ignore_errors=True)


def fake_bin(tmp, uid, with_sudo, installed=False):
    """A PATH of the few tools scripts/deps calls; the system-changing ones record their argv."""
    d = os.path.join(tmp, "bin")
    os.makedirs(d)
    log = os.path.join(tmp, "calls")

    def script(name, body):
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body + "\n")
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    for tool in ("grep", "cat"):
        os.symlink(shutil.which(tool), os.path.join(d, tool))
    script("dpkg-query", "echo 'install ok installed'" if installed else "exit 1")
    script("id", "echo %d" % uid)
    script("apt-get", 'echo "apt-get $*" >> %s' % log)
    if with_sudo:
        script("sudo", 'echo "sudo $*" >> %s; exec "$@"' % log)
    return d, log


def deps(tmp, uid, with_sudo, installed=False):
    d, log = fake_bin(tmp, uid, with_sudo, installed)
    p = subprocess.run([os.path.join(ROOT, "scripts", "deps")], env={"PATH": d}, capture_output=True,
                       text=True, timeout=60)
    calls = open(log).read().splitlines() if os.path.exists(log) else []
    return p, calls


def test_deps_installs_as_root_through_sudo_or_prints_the_apt_line():
    for uid, sudo, want_rc, want_calls in ((0, False, 0, ["apt-get update -q", "apt-get install -y -q"]),
                                           (1000, True, 0, ["sudo apt-get update -q", "apt-get update -q",
                                                            "sudo apt-get install -y -q", "apt-get install -y -q"]),
                                           (1000, False, 1, [])):
        tmp = tempfile.mkdtemp(prefix="encore-deps-")
        try:
            p, calls = deps(tmp, uid, sudo)
            what = "uid %d, sudo %s" % (uid, sudo)
            expect(p.returncode, want_rc, "exit code (%s): %s" % (what, p.stderr))
            expect([c.split(" libncurses")[0].split(" meson")[0] for c in calls], want_calls, "commands run (%s)" % what)
            for c in calls:
                if "install" in c:
                    assert "libwebsockets-dev" in c and "libsodium-dev" in c, c
            if want_rc == 1:
                line = [l for l in p.stderr.splitlines() if "apt-get install -y" in l]
                assert line and "libwebsockets-dev" in line[0] and "libebur128-dev" in line[0], p.stderr
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    tmp = tempfile.mkdtemp(prefix="encore-deps-")
    try:
        p, calls = deps(tmp, 1000, False, installed=True)
        expect((p.returncode, calls, p.stderr), (0, [], ""), "nothing to install: silent, exit 0")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    tap = Tap()
    for fn in (test_deps_installs_as_root_through_sudo_or_prints_the_apt_line,
               test_demo_without_a_terminal_seeds_once_plays_headlessly_and_stops_the_server,
               test_demo_with_a_terminal_opens_the_tui_and_stops_the_server_on_quit):
        tap.run(fn)
    tap.done()
