"""Both binaries answer --help and --version on every subcommand, and an unknown option
gets a short usage line on stderr and exit status 2 (before touching any file)."""
import os

import clihelp
from harness import ENCORE, ENCORED, Cli, expect, run_tests


def version_of(binary):
    return "%s " % os.path.basename(binary)


def check_help_and_version(binary, env):
    cmds = clihelp.commands(binary)
    assert len(cmds) >= 5, cmds
    for argv in [[]] + [[c] for c in cmds]:
        for h in ("--help", "-h"):
            rc, out, err = clihelp.run([binary, *argv, h], env=env)
            expect(rc, 0, "%r %s exit status" % (argv, h))
            assert out.startswith("usage: %s" % " ".join([os.path.basename(binary), *argv])), \
                "%r %s printed %r" % (argv, h, out[:200])
            expect(err, "", "%r %s stderr" % (argv, h))
        rc, out, err = clihelp.run([binary, *argv, "--version"], env=env)
        expect(rc, 0, "%r --version exit status" % argv)
        assert out.startswith(version_of(binary)) and out.count("\n") == 1, "%r --version: %r" % (argv, out)


def check_unknown_option(binary, env):
    for argv in [[]] + [[c] for c in clihelp.commands(binary)]:
        rc, out, err = clihelp.run([binary, *argv, "--no-such-option"], env=env)
        expect(rc, 2, "%r --no-such-option exit status (stderr %r)" % (argv, err))
        expect(out, "", "%r --no-such-option stdout" % argv)
        assert "usage:" in err, "%r --no-such-option stderr has no usage line: %r" % (argv, err)
        assert len(err.splitlines()) <= 10, "%r: usage is not short: %r" % (argv, err)


def test_encore_help_and_version_on_every_subcommand(cli):
    check_help_and_version(ENCORE, cli.env)


def test_encored_help_and_version_on_every_subcommand(cli):
    check_help_and_version(ENCORED, cli.env)


def test_encore_unknown_option_is_a_usage_error_on_every_subcommand(cli):
    check_unknown_option(ENCORE, cli.env)
    # Nothing was written: usage errors come before any file is touched.
    expect([d for d in os.listdir(cli.tmp)], [], "files created under the test HOME")


def test_encored_unknown_option_is_a_usage_error_on_every_subcommand(cli):
    check_unknown_option(ENCORED, cli.env)


def test_help_after_other_arguments_still_wins(cli):
    rc, out, _ = clihelp.run([ENCORE, "search", "some", "query", "--limit", "5", "--help"], env=cli.env)
    expect(rc, 0, "search ... --help")
    assert "--limit" in out, out
    rc, out, _ = clihelp.run([ENCORED, "serve", "--data", "/nonexistent", "--help"], env=cli.env)
    expect(rc, 0, "serve ... --help")
    assert "--fault-drop-rate" in out, out


if __name__ == "__main__":
    run_tests([test_encore_help_and_version_on_every_subcommand,
               test_encored_help_and_version_on_every_subcommand,
               test_encore_unknown_option_is_a_usage_error_on_every_subcommand,
               test_encored_unknown_option_is_a_usage_error_on_every_subcommand,
               test_help_after_other_arguments_still_wins],
              Cli("http://127.0.0.1:9"))
