"""The client writes only under the XDG base directories: with HOME a fresh directory
and no XDG_* or ENCORE_* variables, login, search, play, playlist and events create
files only under ~/.config/encore, ~/.local/share/encore and ~/.cache/encore; the
ENCORE_*_DIR and XDG_*_HOME variables move them."""
import os
import shutil
import subprocess
import tempfile

from harness import ENCORE, Server, expect, run_tests

ALLOWED = (".config/encore", ".local/share/encore", ".cache/encore")


def bare_env(home, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENCORE_", "XDG_"))}
    env["HOME"] = home
    env.update(extra)
    return env


def encore(env, *args):
    p = subprocess.run([ENCORE, *args], env=env, capture_output=True, text=True, timeout=300,
                       start_new_session=True, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def files_under(root):
    out = []
    for d, dirs, files in os.walk(root):
        for name in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            out.append(os.path.relpath(os.path.join(d, name), root))
    return sorted(out)


def session(env, srv):
    """Every command that writes something: session, search, playback with its event
    outbox and control socket, playlists (metadata cache), event status."""
    url = srv.url
    rc, out, err = encore(dict(env, ENCORE_PASSWORD="demo"), "--server", url, "login", "alice")
    expect(rc, 0, "login: " + err)
    rc, out, err = encore(env, "search", "a", "--limit", "2")
    expect(rc, 0, "search: " + err)
    rc, out, err = encore(env, "play", "a", "--output", "null", "--duration", "1")
    expect(rc, 0, "play: " + err)
    rc, out, err = encore(env, "playlist", "create", "XDG test")
    expect(rc, 0, "playlist create: " + err)
    rc, out, err = encore(env, "playlist", "ls")
    expect(rc, 0, "playlist ls: " + err)
    rc, out, err = encore(env, "events", "status")
    expect(rc, 0, "events status: " + err)


def test_defaults_write_only_under_the_xdg_directories(srv):
    home = tempfile.mkdtemp(prefix="encore-home-")
    try:
        session(bare_env(home), srv)
        files = files_under(home)
        stray = [f for f in files if not f.startswith(tuple(a + "/" for a in ALLOWED))]
        expect(stray, [], "files outside the XDG directories (all: %r)" % files)
        # The check above proves something only if the commands wrote where expected.
        for want in (".local/share/encore/session.json", ".local/share/encore/outbox.db",
                     ".cache/encore/cache.db"):
            assert want in files, "%s not written (all: %r)" % (want, files)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_xdg_variables_move_every_file(srv):
    home = tempfile.mkdtemp(prefix="encore-home-")
    xdg = tempfile.mkdtemp(prefix="encore-xdg-")
    try:
        env = bare_env(home, XDG_CONFIG_HOME=os.path.join(xdg, "config"), XDG_DATA_HOME=os.path.join(xdg, "data"),
                       XDG_CACHE_HOME=os.path.join(xdg, "cache"), XDG_RUNTIME_DIR=os.path.join(xdg, "run"))
        os.mkdir(os.path.join(xdg, "run"), 0o700)
        session(env, srv)
        expect(files_under(home), [], "files under HOME with XDG_* set")
        files = files_under(xdg)
        assert "data/encore/session.json" in files and "cache/encore/cache.db" in files, files
        stray = [f for f in files if f.split("/")[1:2] != ["encore"]]
        expect(stray, [], "files outside XDG_*/encore")
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(xdg, ignore_errors=True)


def test_encore_dir_overrides_beat_xdg(srv):
    home = tempfile.mkdtemp(prefix="encore-home-")
    own = tempfile.mkdtemp(prefix="encore-own-")
    try:
        env = bare_env(home, XDG_DATA_HOME=os.path.join(home, "xdg-data"), XDG_CACHE_HOME=os.path.join(home, "xdg-cache"),
                       ENCORE_CONFIG_DIR=os.path.join(own, "c"), ENCORE_DATA_DIR=os.path.join(own, "d"),
                       ENCORE_CACHE_DIR=os.path.join(own, "k"), ENCORE_RUNTIME_DIR=os.path.join(own, "r"))
        session(env, srv)
        expect(files_under(home), [], "files under HOME with ENCORE_*_DIR set")
        files = files_under(own)
        for want in ("d/session.json", "d/outbox.db", "k/cache.db"):
            assert want in files, "%s not written (all: %r)" % (want, files)
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(own, ignore_errors=True)


if __name__ == "__main__":
    with Server() as srv:
        run_tests([test_defaults_write_only_under_the_xdg_directories,
                   test_xdg_variables_move_every_file,
                   test_encore_dir_overrides_beat_xdg], srv)
