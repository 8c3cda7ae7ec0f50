"""Shared parsing for the --help and man page tests: what options a binary's help
prints, and what options a man page defines."""
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LONG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def run(argv, env=None):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       env=env)
    return p.returncode, p.stdout, p.stderr


def commands(binary):
    """The subcommands a binary's own --help lists (so a new one cannot go unchecked)."""
    rc, out, _ = run([binary, "--help"])
    assert rc == 0, "%s --help exited %d" % (binary, rc)
    name = os.path.basename(binary)
    found = []
    if "Commands:" in out:   # encore: an indented "  NAME ..." list under "Commands:"
        block = out.split("Commands:", 1)[1].split("\n\n", 1)[0]
        for line in block.splitlines():
            m = re.match(r"^  ([a-z][a-z-]*)\b", line)
            if m and m.group(1) not in found:
                found.append(m.group(1))
    else:                    # encored: "usage: encored NAME ..." lines
        for m in re.finditer(r"\b%s ([a-z][a-z-]*)" % re.escape(name), out):
            if m.group(1) not in found:
                found.append(m.group(1))
    return found


def help_options(binary):
    """{option: [where it was printed]} over `BIN --help` and `BIN CMD --help` for every CMD."""
    opts = {}
    texts = [("--help", run([binary, "--help"])[1])]
    for cmd in commands(binary):
        rc, out, err = run([binary, cmd, "--help"])
        assert rc == 0, "%s %s --help exited %d: %s" % (binary, cmd, rc, err)
        texts.append((cmd + " --help", out))
    for where, text in texts:
        for o in LONG.findall(text):
            opts.setdefault(o, []).append(where)
    return opts


def man_plain(line):
    """A roff line with escapes and font changes removed, as the reader sees it."""
    line = re.sub(r"\\f[BIRP]|\\f\(..|\\f\[[^]]*\]", "", line)
    line = line.replace("\\-", "-").replace("\\(aq", "'").replace("\\e", "\\").replace("\\&", "")
    return line


def man_sections(text):
    """{SECTION NAME: [lines]} of a man page source."""
    secs, cur = {}, None
    for line in text.splitlines():
        if line.startswith(".SH "):
            cur = line[4:].strip().strip('"')
            secs[cur] = []
        elif cur:
            secs[cur].append(line)
    return secs


def man_defined_options(text):
    """Long options that a man page defines: the tags of .TP items in its OPTIONS and
    COMMANDS sections (where each option gets its own paragraph)."""
    found = set()
    for name, lines in man_sections(text).items():
        if "OPTIONS" not in name and "COMMANDS" not in name:
            continue
        for i, line in enumerate(lines):
            if line.startswith(".TP") and i + 1 < len(lines):
                found.update(LONG.findall(man_plain(lines[i + 1])))
    return found


def compare(help_opts, man_opts):
    """Returns (in help but not defined in the man page, in the man page but in no help)."""
    return sorted(set(help_opts) - set(man_opts)), sorted(set(man_opts) - set(help_opts))
