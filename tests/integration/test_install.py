"""`meson install --destdir` puts everything a packager expects in place, and the
installed binaries run: binaries, man pages, bash and zsh completions, the example
config and the systemd user unit for encored."""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import clihelp
from harness import expect, run_tests

BUILD = os.environ.get("ENCORE_BUILD_ROOT")


def install(dest):
    # --no-rebuild: meson test already built everything, and a second ninja in the same
    # build directory would race the running suite.
    p = subprocess.run(["meson", "install", "-C", BUILD, "--destdir", dest, "--no-rebuild", "--quiet"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, "meson install failed: %s %s" % (p.stdout[-2000:], p.stderr[-2000:])
    p = subprocess.run(["meson", "introspect", BUILD, "--buildoptions"], capture_output=True, text=True)
    opts = {o["name"]: o["value"] for o in json.loads(p.stdout)}
    return opts


class Tree:
    def __init__(self, dest, opts):
        self.dest = dest
        self.prefix = opts["prefix"]
        self.o = opts

    def path(self, *parts):
        """dest + prefix + parts (meson's relative install dirs are under the prefix)."""
        return os.path.join(self.dest + self.prefix, *parts)


def test_binaries_run_from_the_install_tree(t):
    for name in ("encore", "encored"):
        exe = t.path(t.o["bindir"], name)
        assert os.path.isfile(exe) and os.access(exe, os.X_OK), "%s not installed at %s" % (name, exe)
        rc, out, err = clihelp.run([exe, "--version"])
        expect((rc, out), (0, "%s 0.1.0\n" % name), "installed %s --version" % name)
        rc, out, err = clihelp.run([exe, "--help"])
        expect(rc, 0, "installed %s --help" % name)
        assert out.startswith("usage: " + name), out[:100]


def test_man_pages_are_installed_and_render(t):
    for page, sec in (("encore.1", "1"), ("encored.1", "1"), ("encore.conf.5", "5")):
        p = t.path(t.o["mandir"], "man" + sec, page)
        assert os.path.isfile(p), "%s not installed at %s" % (page, p)
        r = subprocess.run(["groff", "-ww", "-man", "-Tutf8", p], capture_output=True, text=True)
        expect((r.returncode, r.stderr), (0, ""), "groff on installed %s" % page)


def complete_bash(script, line):
    """The words bash completion offers for LINE (the cursor at its end)."""
    words = line.split(" ")
    prog = ('source %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\nCOMP_LINE=%s\n_%s\nprintf "%%s\\n" "${COMPREPLY[@]}"\n'
            % (script, " ".join("'%s'" % w for w in words), len(words) - 1, "'%s'" % line, words[0]))
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", prog], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_bash_completion_completes_subcommands_and_options(t):
    d = t.path(t.o["datadir"], "bash-completion", "completions")
    script = os.path.join(d, "encore")
    assert os.path.isfile(script), "no bash completion at %s" % script
    # bash-completion loads completions by command name: encored needs its own entry.
    assert os.path.exists(os.path.join(d, "encored")), "no bash completion entry for encored"
    expect(complete_bash(script, "encore pl"), ["play", "playlist"], "encore pl<TAB>")
    expect(complete_bash(script, "encore play --qu"), ["--quality"], "encore play --qu<TAB>")
    expect(complete_bash(script, "encore play --quality "), ["auto", "24", "96", "160", "320"], "--quality values")
    expect(complete_bash(script, "encored se"), ["serve", "seed-demo", "seed-catalog"], "encored se<TAB>")
    expect(complete_bash(script, "encored serve --fault-d"), ["--fault-drop-rate"], "encored serve --fault-d<TAB>")


def test_zsh_completion_is_installed(t):
    p = t.path(t.o["datadir"], "zsh", "site-functions", "_encore")
    assert os.path.isfile(p), "no zsh completion at %s" % p
    with open(p) as f:
        text = f.read()
    assert text.startswith("#compdef encore encored"), text[:40]
    for word in ("playlist", "--quality", "seed-demo", "--fault-drop-rate"):
        assert word in text, "%s missing from _encore" % word
    if shutil.which("zsh"):
        r = subprocess.run(["zsh", "-n", p], capture_output=True, text=True)
        expect((r.returncode, r.stderr), (0, ""), "zsh -n _encore")


def test_example_config_documents_every_setting(t):
    p = t.path(t.o["datadir"], "doc", "encore", "config.example")
    assert os.path.isfile(p), "no example config at %s" % p
    import re
    with open(os.path.join(clihelp.ROOT, "core", "config.c")) as f:
        known = set(re.findall(r'strcmp\(name, "(\w+)"\) == 0', f.read()))
    assert len(known) >= 6, known
    with open(p) as f:
        text = f.read()
    missing = sorted(k for k in known if not re.search(r"^#?%s\b" % k, text, re.M))
    expect(missing, [], "settings without an example line")


def test_systemd_user_unit_runs_the_installed_encored(t):
    p = t.path("lib", "systemd", "user", "encored.service")
    assert os.path.isfile(p), "no user unit at %s" % p
    with open(p) as f:
        text = f.read()
    exe = os.path.join(t.prefix, t.o["bindir"], "encored")
    want = "ExecStart=%s serve --data %%h/.local/share/encored --listen 127.0.0.1:8080" % exe
    assert want in text.splitlines(), "no line %r in\n%s" % (want, text)
    assert "WantedBy=default.target" in text, text
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "--user", "verify", p], capture_output=True, text=True)
        # verify also checks that ExecStart exists, which it does only under DESTDIR.
        assert "Unknown" not in r.stderr and "Invalid" not in r.stderr, r.stderr


def main():
    if not BUILD:
        print("1..0 # SKIP ENCORE_BUILD_ROOT is not set (run under meson test)")
        return
    dest = tempfile.mkdtemp(prefix="encore-destdir-")
    try:
        t = Tree(dest, install(dest))
        run_tests([test_binaries_run_from_the_install_tree,
                   test_man_pages_are_installed_and_render,
                   test_bash_completion_completes_subcommands_and_options,
                   test_zsh_completion_is_installed,
                   test_example_config_documents_every_setting,
                   test_systemd_user_unit_runs_the_installed_encored], t)
    finally:
        shutil.rmtree(dest, ignore_errors=True)


if __name__ == "__main__":
    main()
