"""Adaptive bitrate against the real server's bandwidth fault: on a 60 kbps link the
client settles at 24 kbps without an underrun, and climbs back when bandwidth returns."""
import json
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Cli, Server, Tap, expect, wait_for  # noqa: E402
from test_play import READ_BUF, open_lines  # noqa: E402


def test_settles_at_24_on_60_kbps_without_underrun_and_climbs_back():
    with Server(["--fault-bandwidth-kbps", "60"], tracks=1, seconds=70, episodes=0) as srv:
        con = sqlite3.connect(os.path.join(srv.data, "encore.db"))
        uri = "encore:track:" + con.execute("SELECT id FROM tracks").fetchone()[0]
        con.close()
        cli = Cli(srv.url, "alice")
        p = cli.spawn("play", uri, "--output", "null:realtime", "--json", "--duration", "62")
        admin = srv.login("admin")
        try:
            wait_for(lambda: any(json.loads(l)["event"] == "started" for l in open_lines(p)), timeout=60, what="start")
            t_start = time.monotonic()

            def heard():
                return [json.loads(l) for l in open_lines(p)]
            # Low phase: give the estimator 24 s of audio on the slow link.
            wait_for(lambda: time.monotonic() - t_start >= 24, timeout=40, what="low-bandwidth phase")
            low = heard()
            expect(admin.req("POST", "/v1/admin/faults", {"bandwidth_kbps": 0})[0], 200, "lift the cap")
            t_lift = time.monotonic()
            climbed = wait_for(lambda: [e for e in heard() if e["event"] == "bitrate_changed" and e["bitrate_kbps"] >= 96
                                        and e["t"] > low[-1]["t"]], timeout=45, what="climb after the cap is lifted")
            climb_s = time.monotonic() - t_lift
            out = p.communicate(timeout=120)[0]
        finally:
            if p.poll() is None:
                p.kill()
        ev = [json.loads(l) for l in (READ_BUF.get(p, "") + out).splitlines() if l.startswith("{")]
        print("# events: " + ", ".join("%.1fs %s %s" % (e["t"], e["event"], e.get("bitrate_kbps")) for e in ev))
        low_rates = [e["bitrate_kbps"] for e in low if e["event"] in ("started", "bitrate_changed")]
        print("# heard bitrates while capped: %r; climbed to %d kbps %.1f s after the cap was lifted"
              % (low_rates, climbed[0]["bitrate_kbps"], climb_s))
        expect(low_rates[-1], 24, "settled rung at 60 kbps")
        under = [e for e in ev if e["event"] == "underrun"]
        expect(under, [], "underruns")
        assert climb_s <= 30, "climbed back after %.1f s (goal: within 30 s)" % climb_s


if __name__ == "__main__":
    tap = Tap()
    tap.run(test_settles_at_24_on_60_kbps_without_underrun_and_climbs_back)
    tap.done()
