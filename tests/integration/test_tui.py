"""The `encore` TUI in a real terminal (tmux) against a real encored: open, search as you
type, play, progress, seek, skip, queue edits, resize, config errors, a slow server, and
a clean exit. Assertions are on the captured screen text; every wait polls capture-pane
with a generous deadline."""
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import ENCORE, Server, Tap, expect, wait_for  # noqa: E402

# Tracks long enough that a seek and a few seconds of progress fit inside one.
TRACKS, SECONDS = 6, 20


class Tui:
    """One `encore` in a detached tmux session, logged in as alice."""

    def __init__(self, srv, config=None, args=("--output", "null:realtime"), width=100, height=30, extra_env=None):
        self.tmp = tempfile.mkdtemp(prefix="encore-tui-")
        self.name = "encore-tui-%d-%d" % (os.getpid(), id(self))
        self.sock = os.path.join(self.tmp, "tmux.sock")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ENCORE_", "XDG_", "NO_COLOR"))}
        env.update(HOME=self.tmp, LANG="C.UTF-8", LC_ALL="C.UTF-8", TERM="xterm-256color",
                   ENCORE_DATA_DIR=os.path.join(self.tmp, "data"), ENCORE_CONFIG_DIR=os.path.join(self.tmp, "config"),
                   ENCORE_CACHE_DIR=os.path.join(self.tmp, "cache"), ENCORE_RUNTIME_DIR=os.path.join(self.tmp, "run"),
                   ENCORE_SERVER=srv.url)
        env.update(extra_env or {})
        self.env = env
        p = subprocess.run([ENCORE, "login", "alice"], env=dict(env, ENCORE_PASSWORD="demo"), capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL, start_new_session=True)
        assert p.returncode == 0, "login failed: %s" % p.stderr
        if config is not None:
            os.makedirs(env["ENCORE_CONFIG_DIR"], exist_ok=True)
            with open(os.path.join(env["ENCORE_CONFIG_DIR"], "config"), "w") as f:
                f.write(config)
        self.exitfile = os.path.join(self.tmp, "exit")
        # The shell records the exit code, then idles so the restored screen can be read.
        cmd = "%s %s; echo $? > %s; echo ENCORE-EXITED; sleep 600" % (
            ENCORE, " ".join(args), self.exitfile)
        self.tmux("new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height), "env", *[
            "%s=%s" % kv for kv in env.items() if kv[0] in (
                "HOME", "LANG", "LC_ALL", "TERM", "ENCORE_DATA_DIR", "ENCORE_CONFIG_DIR", "ENCORE_CACHE_DIR",
                "ENCORE_RUNTIME_DIR", "ENCORE_SERVER", "PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS") or kv[0] in (extra_env or {})],
                  "sh", "-c", cmd)

    def tmux(self, *args):
        return subprocess.run(["tmux", "-S", self.sock, *args], capture_output=True, text=True, timeout=30)

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", self.name).stdout

    def screen_with_attributes(self):
        """The screen with its SGR escape sequences, to see colours."""
        return self.tmux("capture-pane", "-p", "-e", "-t", self.name).stdout

    def keys(self, *keys):
        self.tmux("send-keys", "-t", self.name, *keys)

    def type(self, text):
        self.tmux("send-keys", "-t", self.name, "-l", text)

    def wait(self, pred, what, timeout=30):
        last = [""]

        def cond():
            last[0] = self.screen()
            return last[0] if pred(last[0]) else None
        try:
            return wait_for(cond, timeout, what)
        except AssertionError as e:
            raise AssertionError("%s\n--- screen ---\n%s" % (e, last[0]))

    def wait_text(self, text, timeout=30):
        return self.wait(lambda s: text in s, "%r on screen" % text, timeout)

    def close(self):
        self.tmux("kill-server")
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        self.wait_text("Search:")
        return self

    def __exit__(self, *exc):
        self.close()


def elapsed(screen):
    """Seconds shown at the left of the progress bar, or None."""
    for line in screen.splitlines():
        s = line.strip()
        if s and (s[0].isdigit()) and ("━" in s or "─" in s):
            m, sec = s.split()[0].split(":")
            return int(m) * 60 + int(sec)
    return None


def now_playing(screen):
    for line in screen.splitlines():
        if line.startswith(" ▶ ") or line.startswith(" ⏸ "):
            return line
    return ""


def catalog(srv):
    con = sqlite3.connect(os.path.join(srv.data, "encore.db"))
    rows = con.execute("SELECT t.id, t.name FROM tracks t ORDER BY t.name").fetchall()
    con.close()
    return [("encore:track:" + i, n) for i, n in rows]


def misspell(name):
    """Swaps two inner letters of the first word: 'Circuit' -> 'Circiut'."""
    w = name.split()[0]
    i = len(w) // 2
    return w[:i - 1] + w[i] + w[i - 1] + w[i + 1:]


def test_opens_and_quits_restoring_the_terminal(srv):
    with Tui(srv) as t:
        s = t.screen()
        for want in ("encore · Search", "Library", "Queue", "Now Playing", "Nothing playing", "this device"):
            assert want in s, "%r missing from\n%s" % (want, s)
        t.keys("Escape", "q")
        s = t.wait_text("ENCORE-EXITED")
        assert "encore · Search" not in s, "UI left on screen after quit:\n" + s
        expect(open(t.exitfile).read().strip(), "0", "exit code")


def test_misspelled_search_finds_and_plays_the_track(srv):
    uri, name = catalog(srv)[0]
    with Tui(srv) as t:
        t.keys("/")
        t.type(misspell(name))
        t.wait_text(name)
        t.wait_text("Tracks")
        t.keys("Enter")  # leave the query for the list (cursor on the first track)
        t.keys("Enter")  # play it
        t.wait(lambda s: name in now_playing(s), "%s playing" % name)


def test_play_progress_seek_skip(srv):
    tracks = catalog(srv)
    with Tui(srv) as t:
        t.keys("Escape", ":")
        t.type("play %s %s" % (tracks[0][0], tracks[1][0]))
        t.keys("Enter")
        t.wait(lambda s: tracks[0][1] in now_playing(s), "first track playing")
        e0 = elapsed(t.wait(lambda s: (elapsed(s) or 0) >= 1, "elapsed >= 1 s"))
        t.wait(lambda s: (elapsed(s) or 0) >= e0 + 1, "the progress bar moving")
        before = elapsed(t.screen())
        t.keys("Right")
        t.wait(lambda s: (elapsed(s) or 0) >= before + 4, "a 5 s seek forward (from %d s)" % before)
        t.keys("Left")
        t.wait(lambda s: (elapsed(s) or 99) <= before + 3, "a 5 s seek back")
        t.keys("n")
        t.wait(lambda s: tracks[1][1] in now_playing(s), "skip to the second track")
        t.keys("space")
        t.wait(lambda s: now_playing(s).startswith(" ⏸"), "paused")
        t.keys("+")  # volume is clamped at 100; down then shows the change
        t.keys("-")
        t.wait_text("vol 95%")


def queue_rows(screen, names):
    """Names in the order they appear on screen."""
    pos = {n: screen.find(n) for n in names}
    return [n for n in sorted(names, key=lambda n: pos[n]) if pos[n] >= 0]


def test_queue_add_reorder_remove(srv):
    tracks = catalog(srv)
    a, b, c = tracks[0], tracks[2], tracks[3]
    with Tui(srv) as t:
        t.keys("Escape", ":")
        t.type("play " + a[0])
        t.keys("Enter")
        t.wait(lambda s: a[1] in now_playing(s), "playing")
        # Queue from the search results with 'a'.
        for tr in (b, c):
            t.keys("/")
            t.keys("C-u")
            t.type(tr[1])
            t.wait(lambda s: "Tracks" in s and tr[1] in s.split("Tracks", 1)[1], "%s in results" % tr[1])
            t.keys("Enter", "a")
            t.wait_text("Queued: " + tr[1])
        t.keys("3")
        t.wait_text("Queue · 3 tracks")
        t.wait(lambda s: queue_rows(s, [a[1], b[1], c[1]]) == [a[1], b[1], c[1]], "queue in order a b c")
        # Cursor to the last row, move it up: a c b.
        t.keys("G", "K")
        t.wait(lambda s: queue_rows(s, [a[1], b[1], c[1]]) == [a[1], c[1], b[1]], "K moved c above b")
        t.keys("J")
        t.wait(lambda s: queue_rows(s, [a[1], b[1], c[1]]) == [a[1], b[1], c[1]], "J moved it back")
        t.keys("d")
        t.wait_text("Queue · 2 tracks")
        s = t.screen()
        assert c[1] not in s.split("Queue · 2 tracks", 1)[1].split("────")[0], "removed row still listed:\n" + s


def colour_codes(escaped):
    """SGR parameters that set a colour (30-37, 40-47, 90-107; 39/49 only restore the default)."""
    import re
    codes = set()
    for params in re.findall(r"\x1b\[([0-9;]*)m", escaped):
        for p in params.split(";"):
            if p and (30 <= int(p) <= 47 or 90 <= int(p) <= 107) and int(p) not in (38, 39):
                codes.add(int(p))
    return codes


def test_no_color_turns_colours_off(srv):
    with Tui(srv) as t:
        t.wait_text("this device")
        coloured = colour_codes(t.screen_with_attributes())
    assert coloured, "the default UI shows no colours at all, so this test could not fail"
    with Tui(srv, extra_env={"NO_COLOR": "1"}) as t:
        t.wait_text("this device")
        expect(colour_codes(t.screen_with_attributes()), set(), "colour codes with NO_COLOR set")


def click(t, col, row):
    """An SGR mouse press and release at 0-based (col, row), as a terminal sends them."""
    t.type("\x1b[<0;%d;%dM\x1b[<0;%d;%dm" % (col + 1, row + 1, col + 1, row + 1))


def elapsed_s(screen):
    import re
    for line in screen.splitlines():
        m = re.match(r"\s*(\d+):(\d\d) [━─]", line)
        if m:
            return int(m.group(1)) * 60 + int(m.group(2))
    return None


def test_mouse_selects_views_and_seeks_on_the_progress_bar(srv):
    uri, name = catalog(srv)[0]
    with Tui(srv) as t:
        t.wait_text("this device")
        lines = t.screen().split("\n")
        row = [i for i, l in enumerate(lines) if l.strip().startswith("Queue")][0]
        click(t, 3, row)
        t.wait_text("The queue is empty")
        t.keys("Escape", ":")
        t.type("play " + uri)
        t.keys("Enter")
        t.wait(lambda s: name in now_playing(s) and elapsed_s(s) is not None, "playing")
        lines = t.screen().split("\n")
        bar_row = [i for i, l in enumerate(lines) if elapsed_s(l) is not None][0]
        cols = [i for i, ch in enumerate(lines[bar_row]) if ch in "━─"]
        click(t, cols[0] + (cols[-1] - cols[0]) * 3 // 4, bar_row)
        # 3/4 into a 20 s track: the elapsed time jumps to about 15 s.
        t.wait(lambda s: (elapsed_s(s) or 0) >= 12, "seek by clicking the progress bar")


def test_now_playing_view_shows_details_and_audio_features(srv):
    uri, name = catalog(srv)[0]
    with Tui(srv) as t:
        t.wait_text("this device")
        t.keys("Escape", ":")
        t.type("play " + uri)
        t.keys("Enter")
        t.wait(lambda s: name in now_playing(s), "playing")
        t.keys("4")
        t.wait(lambda s: "danceability" in s and "energy" in s and "tempo" in s.lower(), "audio features in Now Playing")
        t.keys("?")
        t.wait_text("toggle")


def test_resize_to_80x24_and_back(srv):
    with Tui(srv) as t:
        t.tmux("resize-window", "-t", t.name, "-x", "80", "-y", "24")
        s = t.wait(lambda s: len(s.splitlines()) <= 24 and "Nothing playing" in s and "this device" in s,
                   "a redraw at 80x24")
        lines = s.splitlines()
        assert max(len(line) for line in lines) <= 80, "a line wider than 80 columns:\n" + s
        assert "Nothing playing" in lines[-3], "now-playing bar not at the bottom at 80x24:\n" + s
        t.tmux("resize-window", "-t", t.name, "-x", "100", "-y", "30")
        s = t.wait(lambda s: len(s.splitlines()) >= 29 and "Nothing playing" in s.splitlines()[-3],
                   "a redraw at 100x30")


def test_bad_config_line_is_reported_and_the_rest_loads(srv):
    cfg = "output null:realtime\nvolume 40\nvolme 30\nbind x quit\n"
    with Tui(srv, config=cfg, args=()) as t:
        t.wait_text("config:3: unknown setting 'volme'")
        t.wait_text("vol 40%")
        t.keys("Escape", "x")  # the rebound key quits
        t.wait_text("ENCORE-EXITED")


def test_help_answers_at_once_while_the_server_is_slow(srv_unused):
    with Server(["--fault-latency-ms", "2000"], tracks=TRACKS, seconds=SECONDS) as slow:
        tracks = catalog(slow)
        with Tui(slow) as t:
            t.keys("Escape", ":")
            t.type("play " + tracks[0][0])
            t.keys("Enter")
            t.wait(lambda s: tracks[0][1] in s and ("⠋" in s or "▶" in s or "⠙" in s or "⠹" in s or "⠸" in s
                                                    or "⠼" in s or "⠴" in s or "⠦" in s or "⠧" in s or "⠇" in s
                                                    or "⠏" in s), "loading started")
            t0 = time.monotonic()
            t.keys("?")
            t.wait_text("Keys (rebind")
            dt = time.monotonic() - t0
            print("# help answered %.0f ms after '?' with a 2000 ms CDN latency" % (dt * 1000))
            # A UI that waited on the network would need at least the injected 2 s.
            assert dt < 2.0, "help took %.2f s while the CDN was slow" % dt


def main():
    tap = Tap()
    with Server(tracks=TRACKS, seconds=SECONDS) as srv:
        for fn in (test_opens_and_quits_restoring_the_terminal, test_misspelled_search_finds_and_plays_the_track,
                   test_play_progress_seek_skip, test_queue_add_reorder_remove, test_no_color_turns_colours_off,
                   test_mouse_selects_views_and_seeks_on_the_progress_bar,
                   test_now_playing_view_shows_details_and_audio_features,
                   test_resize_to_80x24_and_back,
                   test_bad_config_line_is_reported_and_the_rest_loads, test_help_answers_at_once_while_the_server_is_slow):
            tap.run(fn, srv)
    tap.done()


if __name__ == "__main__":
    if not shutil.which("tmux"):
        print("not ok 1 - tmux is not installed (scripts/deps installs it)")
        print("1..1")
        sys.exit(0)
    main()
