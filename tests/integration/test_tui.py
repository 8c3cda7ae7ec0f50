"""The `encore` TUI in a real terminal (tmux) against a real encored: open, search as you
type, play, progress, seek, skip, queue edits, resize, config errors, a slow server, a
clean exit, and the Playlists, Home, Devices and Downloads views. Assertions are on the
captured screen text and, for what the views do, on the server or the CLI; every wait
polls with a generous deadline."""
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import ENCORE, Cli, Server, Tap, expect, wait_for  # noqa: E402

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

    def quit_ok(self):
        """q, then the exit code must be 0 (under ASan a leak or error makes it non-zero)."""
        self.keys("Escape", "q")
        s = self.wait_text("ENCORE-EXITED", timeout=60)
        code = open(self.exitfile).read().strip()
        assert code == "0", "exit code %s after q:\n%s" % (code, s)

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
            # A download from the slow CDN (2 s a file) runs in the background: the view
            # shows it part-way, and keys are still answered at once.
            t.keys("3")
            t.wait_text("Queue · 1 track")
            t.keys("g", "D")
            t.wait_text("in the background")
            t.keys("8")

            def partial(s):
                import re
                for line in s.splitlines():
                    m = re.search(r"(\d+)%", line)
                    if tracks[0][1] in line and m and 0 < int(m.group(1)) < 100:
                        return "Downloading" in s
                return False
            s = t.wait(partial, "the download part-way, with its progress bar", timeout=60)
            print("# part-way: " + [l for l in s.splitlines() if tracks[0][1] in l and "%" in l][0].split("│", 1)[-1].strip())
            t0 = time.monotonic()
            t.keys("?")
            t.wait_text("Keys (rebind")
            dt = time.monotonic() - t0
            print("# help answered %.0f ms after '?' during the download" % (dt * 1000))
            assert dt < 2.0, "help took %.2f s while downloading from a slow CDN" % dt
            t.quit_ok()


def rid():
    return "".join(random.choice("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(22))


def play_cmd(t, *uris):
    t.keys("Escape", ":")
    t.type("play " + " ".join(uris))
    t.keys("Enter")


def playlist_uris(api, pid):
    st, body, _ = api.get("/v1/playlists/%s/tracks?limit=100" % pid)
    assert st == 200, (st, body)
    return [it["track"]["uri"] for it in body["items"]]


def test_playlists_view_lists_opens_plays_edits_and_updates_live(srv):
    tracks = catalog(srv)
    alice, bob = srv.login("alice"), srv.login("bob")
    name = "Road Trip %d" % random.randrange(10 ** 6)
    st, pl, _ = alice.req("POST", "/v1/me/playlists", {"name": name, "collaborative": True, "public": False})
    assert st == 201, (st, pl)
    pid = pl["id"]
    st, body, _ = alice.req("POST", "/v1/playlists/%s/collaborators" % pid, {"id": "bob"})
    assert st == 201, (st, body)
    st, body, _ = alice.req("POST", "/v1/playlists/%s/tracks" % pid, {"uris": [u for u, _ in tracks[:3]]})
    assert st == 201, (st, body)
    a, b, c, d, e = tracks[:5]
    names = [x[1] for x in tracks[:5]]
    with Tui(srv) as t:
        t.keys("Escape", "6")
        t.wait_text(name)
        t.keys("g")
        # Playlists come newest first: this one is at the top.
        t.keys("Enter")
        s = t.wait(lambda s: all(n in s for n in (a[1], b[1], c[1])) and "collaborators: bob" in s,
                   "the open playlist with its tracks and collaborators")
        assert "encore · Playlists › " + name in s, "title does not name the playlist:\n" + s
        t.keys("Enter")  # plays from the first item
        t.wait(lambda s: a[1] in now_playing(s), "the playlist playing")
        # Move the first item down (J), then remove the new first item (d): b goes, a c remain.
        t.keys("g", "J")
        wait_for(lambda: playlist_uris(alice, pid) == [b[0], a[0], c[0]], 30, "J moved the item on the server")
        t.wait(lambda s: queue_rows(s, [a[1], b[1], c[1]]) == [b[1], a[1], c[1]], "the moved order on screen")
        t.keys("g", "d")
        wait_for(lambda: playlist_uris(alice, pid) == [a[0], c[0]], 30, "d removed the item on the server")
        # Add from search: P on a result, Enter on the playlist.
        t.keys("/")
        t.keys("C-u")
        t.type(d[1])
        t.wait(lambda s: "Tracks" in s and d[1] in s.split("Tracks", 1)[1], "%s in results" % d[1])
        t.keys("Enter", "P")
        t.wait_text("to: (Enter adds")
        t.wait_text(name)
        t.keys("g", "Enter")
        wait_for(lambda: playlist_uris(alice, pid) == [a[0], c[0], d[0]], 30, "P added the search result")
        t.wait_text("Added " + d[1])
        # And from the queue.
        t.keys("3")
        t.wait_text("Queue · ")
        t.keys("g", "P")
        t.wait_text("to: (Enter adds")
        t.wait_text(name)
        t.keys("g", "Enter")
        wait_for(lambda: playlist_uris(alice, pid) == [a[0], c[0], d[0], a[0]], 30, "P added the queue's entry")
        # Another client (the collaborator) edits: the open playlist follows.
        loads0 = full_list_gets(srv, pid)
        t.keys("6")
        t.wait(lambda s: "encore · Playlists › " in s and d[1] in s, "the playlist open again")
        # Coming back to the view reloads it once; let that finish before counting.
        wait_for(lambda: full_list_gets(srv, pid) > loads0, 30, "the view's reload")
        t.wait(lambda s: playlist_rows(s, names) == [a[1], c[1], d[1], a[1]], "the reloaded rows")
        # The open playlist is subscribed over the WebSocket: each change comes by push and
        # is applied to the rows in place, so neither a `changes` poll (the UI polls only
        # while the push is not live) nor a fetch of the list is logged.
        polls = lambda: srv.log_text().count("/v1/playlists/%s/changes" % pid)  # noqa: E731
        polls0, loads0 = polls(), full_list_gets(srv, pid)
        t0 = time.monotonic()
        st, body, _ = bob.req("POST", "/v1/playlists/%s/tracks" % pid, {"uris": [e[0]], "position": 0})
        assert st == 201, (st, body)
        t.wait(lambda s: playlist_rows(s, names) == [e[1], a[1], c[1], d[1], a[1]], "bob's insert on screen", timeout=30)
        print("# bob's edit reached the open view in %.0f ms" % ((time.monotonic() - t0) * 1000))
        expect(full_list_gets(srv, pid) - loads0, 0, "fetches of the playlist for bob's insert")
        t.wait_text("bob added 1")  # who changed what, from the push
        # A move of the range [0, 2) (e, a) to before position 3 (after d).
        st, body, _ = bob.req("PUT", "/v1/playlists/%s/tracks" % pid, {"range_start": 0, "range_length": 2, "insert_before": 4})
        assert st == 200, (st, body)
        t.wait(lambda s: playlist_rows(s, names) == [c[1], d[1], e[1], a[1], a[1]], "bob's move on screen", timeout=30)
        st, body, _ = bob.req("DELETE", "/v1/playlists/%s/tracks" % pid, {"tracks": [{"uri": d[0], "positions": [1]}]})
        assert st == 200, (st, body)
        s = t.wait(lambda s: playlist_rows(s, names) == [c[1], e[1], a[1], a[1]], "bob's removal on screen", timeout=30)
        assert "4 tracks" in s, "the count did not follow:\n" + s
        expect(polls() - polls0, 0, "snapshot polls while the push subscription was live")
        expect(full_list_gets(srv, pid) - loads0, 0, "fetches of the playlist while pushes were applied in place")
        expect(playlist_uris(alice, pid), [c[0], e[0], a[0], a[0]], "the server's order")
        t.quit_ok()


def full_list_gets(srv, pid):
    """GETs of the playlist object or its track list in encored's access log."""
    want = ("/v1/playlists/%s" % pid, "/v1/playlists/%s/tracks" % pid)
    n = 0
    for line in srv.log_text().splitlines():
        if line.startswith("{") and pid in line:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            n += rec.get("method") == "GET" and rec.get("path") in want
    return n


def playlist_rows(screen, names):
    """The open playlist's rows as drawn (below its key help line), each named by the
    longest of names it shows."""
    rows = [l.split("│", 1)[1] for l in screen.splitlines() if "│" in l]
    start = [i for i, l in enumerate(rows) if "J/K move" in l]
    out = []
    for l in rows[start[0] + 1:] if start else []:
        hit = sorted((n for n in names if n in l), key=len)
        if hit:
            out.append(hit[-1])
    return out


def test_home_view_shows_shelves_and_enter_plays_one(srv):
    alice = srv.login("alice")
    # Trending counts play starts of the last 30 minutes: make one.
    tr = catalog(srv)[4]
    st, body, _ = alice.req("POST", "/v1/events", {"events": [
        {"id": rid(), "type": "play_start", "ts": int(time.time() * 1000), "uri": tr[0], "bitrate": 160}]})
    assert st == 200, (st, body)
    shelves = {}
    for path in ("/v1/me/discover-weekly", "/v1/me/release-radar"):
        st, body, _ = alice.get(path)
        assert st == 200, (path, st, body)
        shelves[body["name"]] = [it["track"] for it in body["tracks"]["items"]]
    st, body, _ = alice.get("/v1/me/daily-mixes")
    assert st == 200, (st, body)
    for m in body["mixes"]:
        shelves[m["name"]] = [it["track"] for it in m["tracks"]["items"]]
    dw = shelves["Discover Weekly"]
    assert dw, "no Discover Weekly tracks, so the test could not fail"
    with Tui(srv) as t:
        t.keys("Escape", "5")
        t.wait(lambda s: all(n in s for n, v in shelves.items() if v) and "Trending now" in s and tr[1] in s,
               "every shelf and the trending track")
        t.keys("g", "Enter")  # the first row is Discover Weekly
        t.wait(lambda s: dw[0]["name"] in now_playing(s), "Discover Weekly playing")

        def server_says():
            st, p, _ = alice.get("/v1/me/player")
            return p if st == 200 and p["item"] and p["item"]["uri"] == dw[0]["uri"] else None
        wait_for(server_says, 30, "the server sees Discover Weekly's first track playing")
        t.quit_ok()


def devices(api):
    st, body, _ = api.get("/v1/me/player/devices")
    assert st == 200, (st, body)
    return body["devices"]


def test_devices_view_transfers_playback_to_a_headless_device(srv):
    tracks = catalog(srv)
    alice = srv.login("alice")
    kitchen = Cli(srv.url, "alice")
    p = kitchen.spawn("play", *[u for u, _ in tracks[2:6]], "--output", "null:realtime", "--device-name", "Kitchen")
    try:
        wait_for(lambda: any(d["name"] == "Kitchen" for d in devices(alice)), 60, "Kitchen online")
        with Tui(srv) as t:
            play_cmd(t, tracks[0][0])
            t.wait(lambda s: tracks[0][1] in now_playing(s), "playing in the TUI")
            # The TUI is a device too, and the one that plays last is the active one.
            mine = wait_for(lambda: [d for d in devices(alice) if d["name"] != "Kitchen" and d["is_active"]], 60,
                            "the TUI active")[0]
            t.keys("7")
            s = t.wait(lambda s: "Kitchen" in s and "● " + mine["name"] in s, "both devices, the TUI's marked")
            # Rows as drawn: the header line, then one row per device.
            rows = [l.split("│", 1)[1] for l in s.splitlines() if "│" in l]
            head = [i for i, l in enumerate(rows) if "Devices · this one is" in l][0]
            kitchen_row = [i for i, l in enumerate(rows) if "Kitchen" in l][0] - head - 1
            t.keys("g", *["j"] * kitchen_row)
            t.keys("Enter")

            def on_kitchen():
                st, pl, _ = alice.get("/v1/me/player")
                return pl if st == 200 and pl["device"]["name"] == "Kitchen" and not pl["transfer_pending"] else None
            pl = wait_for(on_kitchen, 30, "the server says Kitchen plays")
            expect(pl["item"]["uri"], tracks[0][0], "the TUI's track continues on Kitchen")
            wait_for(lambda: (lambda r: r[0] == 0 and json.loads(r[1])["state"] == "playing" and
                              json.loads(r[1])["uri"] == tracks[0][0])(kitchen.run("remote", "status", "--json")),
                     30, "Kitchen's own player playing the track")
            t.wait_text("● Kitchen", timeout=30)
            t.wait(lambda s: not s.splitlines()[-3].startswith(" ▶") and "⇢ Kitchen" in s.splitlines()[-3],
                   "the TUI stopped, its bar pointing at Kitchen")
            t.quit_ok()
    finally:
        p.terminate()
        p.wait(timeout=30)


def test_downloads_view_downloads_in_the_background_and_shows_progress(srv):
    tracks = catalog(srv)
    uri, name = tracks[1]
    with Tui(srv) as t:
        t.keys("/")
        t.type(name)
        t.wait(lambda s: "Tracks" in s and name in s.split("Tracks", 1)[1], "%s in results" % name)
        t.keys("Enter", "d")
        t.wait_text("in the background")
        t.keys("8")
        s = t.wait(lambda s: any(name in l and "100%" in l and "licence" in l for l in s.splitlines())
                   and "Downloading" not in s, "the track at 100% with its licence, the download finished")
        p = subprocess.run([ENCORE, "offline", "ls", "--json"], env=t.env, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr
        got = {e["uri"]: e for e in json.loads(p.stdout)["tracks"]}
        assert uri in got and got[uri]["complete"], "encore offline ls does not list %s complete: %s" % (uri, p.stdout)
        days = (got[uri]["expires_at"] - time.time()) / 86400
        assert any("licence %d d" % n in s for n in (int(days) - 1, int(days), int(days) + 1)), \
            "licence expiry (%.1f days) not shown:\n%s" % (days, s)
        used = "%.1f MB used" % (got[uri]["bytes"] / 1e6) if got[uri]["bytes"] >= 1e6 else "%.0f kB used" % (got[uri]["bytes"] / 1e3)
        assert used in s, "storage usage %r not shown:\n%s" % (used, s)
        # d in Downloads removes the selected download.
        t.keys("g", "d")
        t.wait_text("Nothing downloaded yet.")
        p = subprocess.run([ENCORE, "offline", "ls", "--json"], env=t.env, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        expect(json.loads(p.stdout)["tracks"], [], "downloads after d in the Downloads view")
        t.quit_ok()


def test_new_views_fit_80x24_and_honour_no_color(srv):
    with Tui(srv, width=80, height=24, extra_env={"NO_COLOR": "1"}) as t:
        for key, want in (("5", "Trending now"), ("6", "Your playlists"), ("7", "Devices · this one is"),
                          ("8", "Downloads · ")):
            t.keys("Escape", key)
            s = t.wait(lambda s: want in s and "Loading" not in s, "%s at 80x24" % want)
            lines = s.splitlines()
            assert max(len(line) for line in lines) <= 80, "a line wider than 80 columns:\n" + s
            assert "Nothing playing" in lines[-3], "now-playing bar not at the bottom:\n" + s
            expect(colour_codes(t.screen_with_attributes()), set(), "colour codes with NO_COLOR in view %s" % key)
        t.keys("?")
        t.wait_text("Keys (rebind")
        t.keys("G")  # the new actions are at the end of the list
        t.wait_text("add_to_playlist")
        for action in ("view_home", "view_playlists", "view_devices", "view_downloads", "download", "back"):
            t.wait_text(action)
        t.quit_ok()


def access_log(srv, path):
    """The access-log entries for one route path, in order."""
    out = []
    for line in srv.log_text().splitlines():
        if line.startswith("{"):
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("path") == path:
                out.append(e)
    return out


def test_search_suggests_above_grouped_results_and_debounces_typing(srv):
    con = sqlite3.connect(os.path.join(srv.data, "encore.db"))
    artist = con.execute("SELECT a.name FROM artists a JOIN tracks t ON t.artist_id = a.id "
                         "GROUP BY a.id ORDER BY count(*) DESC, a.name LIMIT 1").fetchone()[0]
    con.close()
    with Tui(srv) as t:
        before = len(access_log(srv, "/v1/search"))
        t.keys("/")
        # One keystroke per tmux call, as a typist's arrive (tens of ms apart, under the debounce).
        for ch in artist:
            t.type(ch)

        def grouped(s):
            rows = s.splitlines()
            at = {h: next((i for i, l in enumerate(rows) if l.strip().endswith(h) or ("│" + h) in l.replace(" ", ""))
                          , None) for h in ("Suggestions", "Tracks", "Artists", "Albums")}
            return all(v is not None for v in at.values()) and at["Suggestions"] < min(at["Tracks"], at["Artists"],
                                                                                         at["Albums"])
        s = t.wait(grouped, "suggestions above the results grouped under Tracks, Artists and Albums")
        assert artist in s.split("Artists", 1)[1].split("Albums")[0], "the artist is not under Artists:\n" + s
        # Debounced: the keystrokes become a few searches, not one each (without the debounce
        # this run sent one per keystroke).
        wait_for(lambda: len(access_log(srv, "/v1/search")) > before, timeout=30, what="the search request")
        n = len(access_log(srv, "/v1/search")) - before
        print("# %d keystrokes, %d search requests" % (len(artist), n))
        assert n <= len(artist) // 3, "%d search requests for %d keystrokes" % (n, len(artist))
        t.quit_ok()


def test_library_view_empty_then_saved_followed_and_albums(srv):
    tracks = catalog(srv)
    api = srv.login("alice")
    for kind in ("tracks", "albums"):
        st, page, _ = api.get("/v1/me/%s?limit=50" % kind)
        ids = [it[kind[:-1]]["id"] for it in page["items"]]
        if ids:
            api.req("DELETE", "/v1/me/%s?ids=%s" % (kind, ",".join(ids)))
    st, f, _ = api.get("/v1/me/following?type=artist&limit=50")
    ids = [a["id"] for a in f["artists"]["items"]]
    if ids:
        api.req("DELETE", "/v1/me/following?type=artist&ids=" + ",".join(ids))
    uri, name = tracks[1]
    st, tr, _ = api.get("/v1/tracks/" + uri.rsplit(":", 1)[1])
    artist, album = tr["artists"][0], tr["album"]
    with Tui(srv) as t:
        t.keys("Escape", "2")
        t.wait_text("Your library is empty")
        t.wait_text("press L on a track")
        t.keys("/")
        t.type(name)
        t.wait(lambda s: "Tracks" in s and name in s.split("Tracks", 1)[1], "%s in results" % name)
        t.keys("Enter", "L")
        t.wait_text("Saved to your library")
        wait_for(lambda: api.get("/v1/me/tracks/contains?ids=" + tr["id"])[1] == [True], timeout=30,
                 what="the save reaching the server")
        expect(api.req("PUT", "/v1/me/following?type=artist&ids=" + artist["id"])[0], 200, "follow")
        expect(api.req("PUT", "/v1/me/albums?ids=" + album["id"])[0], 200, "save album")
        t.keys("Escape", "2")

        def library(s):
            if "Saved tracks" not in s or "Followed artists" not in s or "Albums" not in s:
                return False
            tracks_part, rest = s.split("Saved tracks", 1)[1].split("Followed artists", 1)
            artists_part, albums_part = rest.split("Albums", 1)
            return name in tracks_part and artist["name"] in artists_part and album["name"] in albums_part
        t.wait(library, "the saved track, the followed artist and the saved album under their headings")
        t.quit_ok()


def bar(screen):
    """The now-playing bar's two lines (the state line and the progress line)."""
    rows = screen.splitlines()
    for i, line in enumerate(rows):
        if line.startswith(" ▶ ") or line.startswith(" ⏸ "):
            return "\n".join(rows[i:i + 2])
    return ""


def test_now_playing_bar_shows_bitrate_buffer_shuffle_repeat_and_play_next(srv):
    tracks = catalog(srv)
    a, b, c = tracks[0], tracks[3], tracks[4]
    with Tui(srv) as t:
        play_cmd(t, a[0])
        t.wait(lambda s: a[1] in now_playing(s), "playing")
        s = t.wait(lambda s: " kbps" in bar(s) and "buf " in bar(s) and "this device" in bar(s),
                   "bitrate, buffer and device in the bar")
        assert "shuffle off" in bar(s) and "repeat off" in bar(s), bar(s)
        t.keys("s")
        t.wait(lambda s: "shuffle on" in bar(s), "shuffle on")
        t.keys("s", "r")
        t.wait(lambda s: "shuffle off" in bar(s) and "repeat all" in bar(s), "repeat all")
        t.keys("r")
        t.wait(lambda s: "repeat one" in bar(s), "repeat one")
        t.keys("r")
        t.wait(lambda s: "repeat off" in bar(s), "repeat off again")
        # 'a' appends, 'A' puts the track right after the current one.
        for tr, key in ((c, "a"), (b, "A")):
            t.keys("/")
            t.keys("C-u")
            t.type(tr[1])
            t.wait(lambda s: "Tracks" in s and tr[1] in s.split("Tracks", 1)[1], "%s in results" % tr[1])
            t.keys("Enter", key)
            t.wait_text(tr[1])
        t.keys("Escape", "3")
        t.wait(lambda s: queue_rows(s, [a[1], b[1], c[1]]) == [a[1], b[1], c[1]], "queue a, then b (A), then c (a)")
        t.quit_ok()


def tui_pid(t):
    """The encore process of this Tui (found by its private data directory)."""
    want = ("ENCORE_DATA_DIR=" + t.env["ENCORE_DATA_DIR"]).encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv0 = f.read().split(b"\0")[0]
            with open("/proc/%s/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if argv0.endswith(b"encore") and want in env:
            return int(pid)
    return None


def ui_wakeups(pid):
    """Context switches of the UI thread (the main thread: its tid is the pid)."""
    with open("/proc/%d/task/%d/status" % (pid, pid)) as f:
        return sum(int(l.split()[1]) for l in f if l.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt")))


def test_idle_ui_sleeps_until_a_key_or_an_engine_event(srv):
    tracks = catalog(srv)
    with Tui(srv) as t:
        t.keys("Escape", "3")
        t.wait_text("The queue is empty")
        pid = wait_for(lambda: tui_pid(t), timeout=30, what="the encore process")
        # Idle: nothing plays, nothing loads. A polling UI wakes every tick; this one sleeps.
        w0, t0 = ui_wakeups(pid), time.monotonic()
        wait_for(lambda: time.monotonic() - t0 >= 2.0, timeout=30, what="a 2 s idle window")
        idle = ui_wakeups(pid) - w0
        print("# UI thread woke %d times in 2 s of idle" % idle)
        assert idle <= 4, "the idle UI thread woke %d times in 2 s" % idle
        # An engine event (a remote command through the control socket) wakes it at once.
        p = subprocess.run([ENCORE, "remote", "play", tracks[0][0]], env=t.env, capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr
        t.wait(lambda s: tracks[0][1] in now_playing(s), "the remote play on screen")
        t.quit_ok()


def test_h_l_and_tab_move_between_the_sidebar_and_the_content(srv):
    with Tui(srv) as t:
        t.keys("Escape", "3")
        t.wait_text("encore · Queue")
        t.keys("h", "j")  # the sidebar has focus: down selects the next view
        t.wait_text("encore · Now Playing")
        t.keys("Tab", "j")  # the content has focus: down scrolls it, the view stays
        t.keys("Tab", "k")  # the sidebar again: up goes back to the Queue
        t.wait_text("encore · Queue")
        # The content again: these ups stay in the Queue (in the sidebar they would have
        # gone to Library and Search, and the next h, j to Library rather than Now Playing).
        t.keys("l", "k", "k", "h", "j")
        t.wait_text("encore · Now Playing")
        t.quit_ok()


def main():
    tap = Tap()
    with Server(tracks=TRACKS, seconds=SECONDS) as srv:
        for fn in (test_opens_and_quits_restoring_the_terminal, test_misspelled_search_finds_and_plays_the_track,
                   test_play_progress_seek_skip, test_queue_add_reorder_remove, test_no_color_turns_colours_off,
                   test_mouse_selects_views_and_seeks_on_the_progress_bar,
                   test_now_playing_view_shows_details_and_audio_features,
                   test_resize_to_80x24_and_back,
                   test_bad_config_line_is_reported_and_the_rest_loads, test_help_answers_at_once_while_the_server_is_slow,
                   test_playlists_view_lists_opens_plays_edits_and_updates_live,
                   test_home_view_shows_shelves_and_enter_plays_one,
                   test_devices_view_transfers_playback_to_a_headless_device,
                   test_downloads_view_downloads_in_the_background_and_shows_progress,
                   test_new_views_fit_80x24_and_honour_no_color,
                   test_search_suggests_above_grouped_results_and_debounces_typing,
                   test_library_view_empty_then_saved_followed_and_albums,
                   test_now_playing_bar_shows_bitrate_buffer_shuffle_repeat_and_play_next,
                   test_idle_ui_sleeps_until_a_key_or_an_engine_event,
                   test_h_l_and_tab_move_between_the_sidebar_and_the_content):
            # TUI_TESTS=substring runs a subset while developing.
            if os.environ.get("TUI_TESTS", "") in fn.__name__:
                tap.run(fn, srv)
    tap.done()


if __name__ == "__main__":
    if not shutil.which("tmux"):
        print("not ok 1 - tmux is not installed (scripts/deps installs it)")
        print("1..1")
        sys.exit(0)
    main()
