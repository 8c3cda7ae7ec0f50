"""Counts test points across meson test logs: every TAP 'ok'/'not ok' line is one test;
a test program that failed without reporting a failing point (a crash, a sanitizer
report, a timeout) counts as one more failure. Prints 'N passed, N failed' last."""
import json
import re
import sys

passed = failed = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        print("missing test log %s" % path)
        failed += 1
        continue
    for line in lines:
        t = json.loads(line)
        out = t.get("stdout") or ""
        ok = len(re.findall(r"^ok \d+", out, re.M))
        bad = len(re.findall(r"^not ok \d+", out, re.M))
        passed += ok
        failed += bad
        if t.get("result") not in ("OK", "EXPECTEDFAIL", "SKIP") and bad == 0:
            failed += 1
            print("FAIL (no failing point reported): %s [%s] %s" % (t.get("name"), path, t.get("result")))
        elif bad:
            print("FAIL: %s [%s]: %d failing points" % (t.get("name"), path, bad))
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
