"""The man pages match the binaries: every long option a --help prints is defined in the
man page, every option the man page defines is printed by some --help, and the pages
render without warnings."""
import os
import shutil
import subprocess

import clihelp
from harness import ENCORE, ENCORED, expect, run_tests

MAN = os.path.join(clihelp.ROOT, "man")


def read(name):
    with open(os.path.join(MAN, name)) as f:
        return f.read()


def check_page(binary, page):
    h = clihelp.help_options(binary)
    m = clihelp.man_defined_options(read(page))
    # The parsers must have found something, or the comparison proves nothing.
    assert len(h) >= 8, "only %r found in %s's help" % (sorted(h), binary)
    assert len(m) >= 8, "only %r found in %s" % (sorted(m), page)
    missing, extra = clihelp.compare(h, m)
    expect(missing, [], "options in %s's --help but not defined in %s" % (os.path.basename(binary), page))
    expect(extra, [], "options defined in %s but printed by no --help" % page)


def test_every_encore_option_is_in_encore_1_and_back():
    check_page(ENCORE, "encore.1")


def test_every_encored_option_is_in_encored_1_and_back():
    check_page(ENCORED, "encored.1")


def test_every_subcommand_has_a_section_in_its_man_page():
    for binary, page in ((ENCORE, "encore.1"), (ENCORED, "encored.1")):
        cmds = clihelp.commands(binary)
        assert len(cmds) >= 5, "only %r found in %s --help" % (cmds, binary)
        heads = [clihelp.man_plain(l) for l in read(page).splitlines() if l.startswith(".SS")]
        name = os.path.basename(binary)
        missing = [c for c in cmds if not any(h.strip('.SS "').startswith("%s %s" % (name, c)) for h in heads)]
        expect(missing, [], "%s subcommands without a .SS in %s" % (name, page))


def test_comparison_reports_a_missing_and_an_undocumented_option():
    # The checker itself can fail: drop one option from a real page and add a bogus one.
    text = read("encore.1").replace(".BI \\-\\-limit", ".BI \\-\\-limitx")
    h = clihelp.help_options(ENCORE)
    missing, extra = clihelp.compare(h, clihelp.man_defined_options(text))
    expect(missing, ["--limit"], "missing after removing --limit")
    expect(extra, ["--limitx"], "extra after adding --limitx")


def test_every_key_binding_action_is_in_encore_1():
    # The actions of tui/keymap.c's table, each named in KEY BINDINGS.
    import re
    with open(os.path.join(clihelp.ROOT, "tui", "keymap.c")) as f:
        actions = re.findall(r'\[ACT_\w+\] = \{"(\w+)"', f.read())
    assert len(actions) >= 20, actions
    keys = "\n".join(clihelp.man_sections(read("encore.1"))["KEY BINDINGS"])
    keys = clihelp.man_plain(keys)
    missing = [a for a in actions if a != "none" and not re.search(r"\b%s\b" % a, keys)]
    expect(missing, [], "keymap actions missing from KEY BINDINGS")


def test_every_config_setting_is_in_encore_conf_5():
    import re
    with open(os.path.join(clihelp.ROOT, "core", "config.c")) as f:
        src = f.read()
    known = re.findall(r'strcmp\(name, "(\w+)"\) == 0', src)
    assert len(known) >= 6, known
    text = clihelp.man_plain(read("encore.conf.5"))
    missing = [k for k in set(known) if not re.search(r"^\.(BI|B|TP) %s\b" % k, text, re.M)]
    expect(missing, [], "settings missing from encore.conf.5")


def test_pages_render_without_warnings():
    for page in ("encore.1", "encored.1", "encore.conf.5"):
        p = subprocess.run(["groff", "-ww", "-man", "-Tutf8", os.path.join(MAN, page)],
                           capture_output=True, text=True)
        expect((p.returncode, p.stderr), (0, ""), "groff on %s" % page)
        assert len(p.stdout) > 1000, "%s rendered to almost nothing" % page
        if shutil.which("mandoc"):
            p = subprocess.run(["mandoc", "-Tlint", "-W", "style", os.path.join(MAN, page)],
                               capture_output=True, text=True)
            expect((p.returncode, p.stdout + p.stderr), (0, ""), "mandoc -Tlint on %s" % page)


if __name__ == "__main__":
    run_tests([test_every_encore_option_is_in_encore_1_and_back,
               test_every_encored_option_is_in_encored_1_and_back,
               test_every_subcommand_has_a_section_in_its_man_page,
               test_comparison_reports_a_missing_and_an_undocumented_option,
               test_every_key_binding_action_is_in_encore_1,
               test_every_config_setting_is_in_encore_conf_5,
               test_pages_render_without_warnings])
