"""Desktop integration: a real `encore play` against a real encored, seen from a private
D-Bus session bus (dbus-daemon --session) through dbus-send and dbus-monitor, the way a
desktop's media keys, playerctl and notification server see it. Also: without a bus,
encore plays and says nothing about D-Bus; `mpris = false` keeps it off the bus."""
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Cli, expect, query as q, Server, Tap, wait_for  # noqa: E402

NAME = "org.mpris.MediaPlayer2.encore"
PATH = "/org/mpris/MediaPlayer2"
PLAYER = "org.mpris.MediaPlayer2.Player"


def tracks(srv, n):
    """(uri, title, artist) of playable tracks, in a fixed order."""
    return q(srv, "SELECT 'encore:track:' || t.id, t.name, a.name FROM tracks t JOIN artists a ON a.id = t.artist_id"
                  " WHERE t.markets = '' AND t.explicit = 0 AND t.state = 'ready' ORDER BY t.id LIMIT ?", n)


class Lines:
    """A child's stdout read line by line without blocking, so waits keep their deadlines."""

    def __init__(self, proc):
        self.fd = proc.stdout.fileno()
        self.buf = ""
        self.lines = []
        self.eof = False

    def poll(self):
        while not self.eof and select.select([self.fd], [], [], 0)[0]:
            chunk = os.read(self.fd, 65536)
            self.eof = not chunk
            self.buf += chunk.decode(errors="replace")
        *done, self.buf = self.buf.split("\n")
        self.lines += done
        return self.lines

    def text(self):
        self.poll()
        return "\n".join(self.lines + [self.buf])


class Bus:
    """A private session bus; address is what DBUS_SESSION_BUS_ADDRESS should say."""

    def __init__(self):
        self.proc = subprocess.Popen(["dbus-daemon", "--session", "--print-address=1", "--nofork", "--nopidfile"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        out = Lines(self.proc)
        self.address = wait_for(lambda: next((l.strip() for l in out.poll() if l.startswith("unix:")), None),
                                timeout=30, what="dbus-daemon's address")
        self.env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=self.address)

    def send(self, method, *args, dest=NAME, path=PATH):
        p = subprocess.run(["dbus-send", "--bus=" + self.address, "--print-reply", "--reply-timeout=20000",
                            "--dest=" + dest, path, method, *args], capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def call(self, method, *args):
        rc, so, se = self.send(method, *args)
        expect(rc, 0, "%s: %s" % (method, se))
        return so

    def get(self, prop, iface=PLAYER):
        """A property's value from dbus-send's printout (strings, numbers, booleans)."""
        so = self.call("org.freedesktop.DBus.Properties.Get", "string:" + iface, "string:" + prop)
        m = re.search(r'variant\s+(string|int64|double|boolean|object path)\s+"?([^"\n]*)"?', so)
        assert m, so
        t, v = m.groups()
        return int(v) if t == "int64" else float(v) if t == "double" else v == "true" if t == "boolean" else v

    def metadata(self):
        so = self.call("org.freedesktop.DBus.Properties.Get", "string:" + PLAYER, "string:Metadata")
        md = {}
        for key, body in re.findall(r'dict entry\(\s*string "([^"]+)"\s*variant\s+(.*?)\n\s*\)', so, re.S):
            strs = re.findall(r'"([^"]*)"', body)
            if body.startswith("array"):
                md[key] = strs
            elif body.startswith("int64"):
                md[key] = int(body.split()[1])
            else:
                md[key] = strs[0] if strs else body
        return md

    def names(self):
        rc, so, se = self.send("org.freedesktop.DBus.ListNames", dest="org.freedesktop.DBus", path="/org/freedesktop/DBus")
        expect(rc, 0, se)
        return re.findall(r'string "([^"]+)"', so)

    def monitor(self, *match):
        p = subprocess.Popen(["dbus-monitor", "--address", self.address, *match], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        lines = Lines(p)
        # dbus-monitor is listening once the bus has told it its name.
        wait_for(lambda: "NameAcquired" in lines.text() or "NameLost" in lines.text(), timeout=30,
                 what="dbus-monitor to attach")
        return p, lines

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    return p.returncode, out, err


def stop_player(p):
    """Stops an `encore play` and checks it exited cleanly (under ASan: no report either)."""
    rc, out, err = stop(p)
    expect(rc, 0, "encore play's exit status: " + err)
    assert "Sanitizer" not in err, err
    return err


def player(srv, bus, uris, config=None, user="alice"):
    cli = Cli(srv.url, user)
    if bus:
        cli.env["DBUS_SESSION_BUS_ADDRESS"] = bus.address
    else:
        cli.env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    if config:
        os.makedirs(cli.env["ENCORE_CONFIG_DIR"], exist_ok=True)
        with open(os.path.join(cli.env["ENCORE_CONFIG_DIR"], "config"), "w") as f:
            f.write(config)
    return cli, cli.spawn("play", *uris, "--output", "null:realtime")


def status(cli):
    rc, so, se = cli.run("remote", "status", "--json")
    return json.loads(so) if rc == 0 else {}


def test_mpris_reports_and_controls_a_headless_player(srv):
    bus = Bus()
    (u1, t1, a1), (u2, t2, _) = tracks(srv, 2)
    cli, p = player(srv, bus, [u1, u2])
    try:
        wait_for(lambda: NAME in bus.names(), timeout=60, what="encore on the bus")
        mon, sig = bus.monitor("type='signal',path='%s'" % PATH)
        wait_for(lambda: bus.get("PlaybackStatus") == "Playing", timeout=60, what="PlaybackStatus Playing")
        bus.call(PLAYER + ".Pause")
        wait_for(lambda: bus.get("PlaybackStatus") == "Paused", timeout=30, what="Paused")
        md = wait_for(lambda: (lambda d: d if d.get("xesam:title") and d.get("mpris:length") else None)(bus.metadata()), timeout=60,
                      what="metadata with a title")
        expect(md.get("xesam:url"), u1, "xesam:url")
        expect(md.get("xesam:title"), t1, "xesam:title is the catalog's")
        expect(md.get("xesam:artist"), [a1], "xesam:artist")
        expect(md.get("mpris:trackid"), "/org/encore/track/" + u1.split(":")[2], "mpris:trackid")
        expect(md.get("mpris:length"), status(cli)["duration_ms"] * 1000, "mpris:length in microseconds")
        assert md.get("xesam:album"), md
        for flag in ("CanPlay", "CanPause", "CanGoNext", "CanGoPrevious", "CanSeek", "CanControl"):
            expect(bus.get(flag), True, flag)
        expect(bus.get("Identity", "org.mpris.MediaPlayer2"), "Encore", "Identity")
        # PlayPause toggles; the control socket agrees with the bus.
        bus.call(PLAYER + ".PlayPause")
        wait_for(lambda: bus.get("PlaybackStatus") == "Playing", timeout=30, what="PlayPause resumes")
        bus.call(PLAYER + ".PlayPause")
        wait_for(lambda: bus.get("PlaybackStatus") == "Paused", timeout=30, what="PlayPause pauses")
        expect(status(cli).get("state"), "paused", "encore remote status after PlayPause")
        # Seek is relative, in microseconds; a paused jump is announced with Seeked.
        before = bus.get("Position")
        bus.call(PLAYER + ".Seek", "int64:3000000")
        wait_for(lambda: bus.get("Position") >= before + 2500000, timeout=30, what="Seek +3 s")
        wait_for(lambda: "member=Seeked" in sig.text(), timeout=30, what="the Seeked signal")
        pos = bus.get("Position")
        assert abs(pos - status(cli)["position_ms"] * 1000) < 1000000, (pos, status(cli))
        # SetPosition takes an absolute position for the current track id only.
        bus.call(PLAYER + ".SetPosition", "objpath:" + md["mpris:trackid"], "int64:1000000")
        wait_for(lambda: bus.get("Position") < 2000000, timeout=30, what="SetPosition 1 s")
        bus.call(PLAYER + ".SetPosition", "objpath:/org/encore/track/stale", "int64:4000000")
        bus.call("org.freedesktop.DBus.Properties.Set", "string:" + PLAYER, "string:Volume", "variant:double:0.4")
        wait_for(lambda: status(cli).get("volume") == 40, timeout=30, what="Volume 0.4 -> 40")
        expect(bus.get("Volume"), 0.4, "Volume")
        assert bus.get("Position") < 2000000, "a stale track id moved the position"
        # Next plays the second track; its metadata is announced with PropertiesChanged.
        bus.call(PLAYER + ".Next")
        wait_for(lambda: bus.metadata().get("xesam:url") == u2, timeout=60, what="Next -> second track")
        expect(bus.metadata().get("xesam:title"), t2, "second title")
        wait_for(lambda: bus.get("PlaybackStatus") == "Playing", timeout=30, what="playing after Next")
        expect(bus.get("CanGoNext"), False, "CanGoNext on the last track")
        # LoopStatus and Shuffle are writable and map to repeat and shuffle.
        bus.call("org.freedesktop.DBus.Properties.Set", "string:" + PLAYER, "string:LoopStatus",
                 "variant:string:Playlist")
        bus.call("org.freedesktop.DBus.Properties.Set", "string:" + PLAYER, "string:Shuffle", "variant:boolean:true")
        wait_for(lambda: (lambda st: st.get("repeat") == "all" and st.get("shuffle"))(status(cli)), timeout=30,
                 what="repeat all and shuffle on")
        expect(bus.get("LoopStatus"), "Playlist", "LoopStatus")
        expect(bus.get("CanGoNext"), True, "CanGoNext with repeat all")
        bus.call("org.freedesktop.DBus.Properties.Set", "string:" + PLAYER, "string:LoopStatus", "variant:string:None")
        wait_for(lambda: bus.get("LoopStatus") == "None", timeout=30, what="LoopStatus None")
        wait_for(lambda: '"xesam:title"' in sig.text() and t2 in sig.text(), timeout=30,
                 what="PropertiesChanged with the second title")
        assert 'string "PlaybackStatus"' in sig.text(), sig.text()
        # Bad calls get D-Bus errors, not a crash.
        rc, so, se = bus.send(PLAYER + ".Seek", "string:soon")
        assert rc != 0 and "InvalidArgs" in se, (rc, se)
        rc, so, se = bus.send("org.freedesktop.DBus.Properties.Set", "string:" + PLAYER, "string:Metadata",
                              "variant:string:x")
        assert rc != 0 and "PropertyReadOnly" in se, (rc, se)
        rc, so, se = bus.send("org.freedesktop.DBus.Properties.Get", "string:" + PLAYER, "string:Nope")
        assert rc != 0 and "UnknownProperty" in se, (rc, se)
        expect(p.poll(), None, "encore still playing")
        stop(mon)
    finally:
        try:
            err = stop_player(p)
            for word in ("d-bus", "dbus", "mpris", "session bus"):
                assert word not in err.lower(), err
            wait_for(lambda: NAME not in bus.names(), timeout=30, what="the name released on exit")
        finally:
            bus.close()


def test_a_second_player_gets_an_instance_name_and_mpris_false_stays_off(srv):
    bus = Bus()
    (u1, _, _), = tracks(srv, 1)
    _, p1 = player(srv, bus, [u1, u1, u1])
    wait_for(lambda: NAME in bus.names(), timeout=60, what="the first player on the bus")
    _, p2 = player(srv, bus, [u1, u1, u1], user="chen")
    cli3, p3 = player(srv, bus, [u1, u1, u1], config="mpris = false\n", user="bob")
    try:
        inst = "%s.instance%d" % (NAME, p2.pid)
        wait_for(lambda: NAME in bus.names() and inst in bus.names(), timeout=60, what="both names on the bus")
        other = [n for n in bus.names() if n.startswith(NAME) and n not in (NAME, inst)]
        # Once the third player plays, the bus would have its name by now if it had asked.
        wait_for(lambda: status(cli3).get("state") == "playing", timeout=60, what="the mpris = false player playing")
        rc, so, se = bus.send("org.freedesktop.DBus.GetConnectionUnixProcessID", "string:" + NAME,
                              dest="org.freedesktop.DBus", path="/org/freedesktop/DBus")
        assert rc == 0 and ("uint32 %d" % p1.pid) in so, (so, se)
        other = [n for n in bus.names() if n.startswith(NAME) and n not in (NAME, inst)]
        expect(other, [], "a name for the player with mpris = false")
        pids = set()
        for n in [n for n in bus.names() if n.startswith(":")]:
            rc, so, se = bus.send("org.freedesktop.DBus.GetConnectionUnixProcessID", "string:" + n,
                                  dest="org.freedesktop.DBus", path="/org/freedesktop/DBus")
            pids.update(int(x) for x in re.findall(r"uint32 (\d+)", so))
        assert p3.pid not in pids, "the mpris = false player connected to the bus"
        rc, so, se = bus.send("org.freedesktop.DBus.Properties.Get", "string:" + PLAYER, "string:PlaybackStatus",
                              dest=inst)
        expect(rc, 0, se)
    finally:
        try:
            for p in (p1, p2, p3):
                stop_player(p)
        finally:
            bus.close()


def test_notify_shows_each_new_track_replacing_the_last(srv):
    bus = Bus()
    (u1, t1, a1), (u2, t2, _) = tracks(srv, 2)
    # 1. Nobody serves notifications: the call still goes out (seen by eavesdropping).
    mon, lines = bus.monitor("interface='org.freedesktop.Notifications'")
    cli, p = player(srv, bus, [u1], config="notify = true\n")
    try:
        wait_for(lambda: "member=Notify" in lines.text() and '"%s"' % t1 in lines.text(), timeout=60,
                 what="a Notify call with the title")
        assert a1 in lines.text(), lines.text()
    finally:
        stop(mon)
        stop_player(p)
    # 2. A notification server answers with ids; the next track's notification replaces it.
    fake = subprocess.Popen([os.environ["FAKE_NOTIFYD"]], env=bus.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out = Lines(fake)
    try:
        wait_for(lambda: "ready" in out.poll(), timeout=30, what="fake notification server")
        cli, p = player(srv, bus, [u1, u2], config="notify = true\n")
        wait_for(lambda: len([l for l in out.poll() if l.startswith("notify")]) >= 1, timeout=60, what="first notify")
        cli.run("remote", "next")
        notes = wait_for(lambda: (lambda n: n if len(n) >= 2 else None)([l for l in out.poll() if l.startswith("notify")]),
                         timeout=60, what="second notify")
        first, second = [l.split(" ", 3) for l in notes[:2]]
        expect(first[2], "0", "the first notification replaces nothing")
        expect(first[3].split("\t")[0], t1, "first summary")
        expect(second[2], first[1], "the second replaces the first's id")
        expect(second[3].split("\t")[0], t2, "second summary")
        stop_player(p)
        # Notifications are off by default.
        before = len([l for l in out.poll() if l.startswith("notify")])
        cli, p = player(srv, bus, [u1])
        wait_for(lambda: status(cli).get("state") == "playing", timeout=60, what="playing without notify")
        wait_for(lambda: NAME in bus.names(), timeout=30, what="on the bus")
        stop_player(p)
        expect(len([l for l in out.poll() if l.startswith("notify")]), before, "notifications without notify = true")
    finally:
        stop(fake)
        bus.close()


def test_the_interactive_ui_is_on_the_bus_too(srv):
    from test_tui import Tui
    bus = Bus()
    (u1, t1, _), = tracks(srv, 1)
    try:
        with Tui(srv, extra_env={"DBUS_SESSION_BUS_ADDRESS": bus.address}) as t:
            wait_for(lambda: NAME in bus.names(), timeout=60, what="the UI on the bus")
            expect(bus.get("PlaybackStatus"), "Stopped", "before anything plays")
            t.keys("Escape")
            t.keys(":")
            t.type("play " + u1)
            t.keys("Enter")
            wait_for(lambda: bus.get("PlaybackStatus") == "Playing", timeout=60, what="Playing")
            # Playing covers loading too; the title follows with the track's metadata.
            wait_for(lambda: bus.metadata().get("xesam:title") == t1, timeout=60, what="the title on the bus")
            # A media key (Pause over the bus) shows on the screen.
            bus.call(PLAYER + ".Pause")
            t.wait(lambda s: " \u23f8 " in s, "the pause symbol on screen")
            t.keys("Escape", "q")
            t.wait_text("ENCORE-EXITED")
            with open(t.exitfile) as f:
                expect(f.read().strip(), "0", "the UI's exit status")
            wait_for(lambda: NAME not in bus.names(), timeout=30, what="the name released when the UI quits")
    finally:
        bus.close()


def test_without_a_session_bus_encore_plays_and_says_nothing(srv):
    (u1, _, _), = tracks(srv, 1)
    cli = Cli(srv.url, "alice")
    # A "bus" that accepts the connection and never says a word: registration must not
    # hold up playback or the exit.
    hung = socket.socket(socket.AF_UNIX)
    hung_path = os.path.join(cli.tmp, "hung-bus")
    hung.bind(hung_path)
    hung.listen(8)
    for addr in (None, "unix:path=/nonexistent/encore-test-bus", "tcp:host=127.0.0.1,port=1",
                 "unix:path=" + hung_path, "not an address"):
        env = {"DBUS_SESSION_BUS_ADDRESS": addr} if addr else {}
        if not addr:
            cli.env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        rc, so, se = cli.run("play", u1, "--output", "null", "--json", env=env, timeout=120)
        expect(rc, 0, se)
        assert any(json.loads(l).get("event") == "ended" for l in so.splitlines() if l.startswith("{")), so
        for word in ("bus", "mpris", "d-bus", "dbus"):
            assert word not in se.lower(), (addr, se)
    hung.close()


if __name__ == "__main__":
    tap = Tap()
    # Tracks long enough that pausing, seeking and skipping happen inside one on a loaded machine.
    with Server(tracks=4, seconds=15, episodes=0) as shared:
        for t in (test_mpris_reports_and_controls_a_headless_player,
                  test_a_second_player_gets_an_instance_name_and_mpris_false_stays_off,
                  test_notify_shows_each_new_track_replacing_the_last,
                  test_the_interactive_ui_is_on_the_bus_too,
                  test_without_a_session_bus_encore_plays_and_says_nothing):
            tap.run(t, shared)
    tap.done()
