#!/usr/bin/env python3
# http.t — runs crow-httpd's scenario suite in t/scenarios/http/ (conformance corpus, static
# files with curl, live redefinition through swank and Emacs/SLIME, live fuzz, slowloris),
# one file after another, renumbering their TAP lines into one stream.
# timeout: 1500
import os
import re
import subprocess
import sys

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "http")
TAP = re.compile(r"^(not )?ok\b\s*\d*\s*-?\s*(.*)$")
n = 0
failed = 0
for name in sorted(f for f in os.listdir(HERE) if f.endswith(".t")):
    path = os.path.join(HERE, name)
    plan = None
    seen = 0
    try:
        r = subprocess.run([path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
        out = r.stdout.decode("utf-8", "replace")
        status = r.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        status = "timeout"
    for line in out.splitlines():
        m = TAP.match(line)
        if m:
            n += 1
            seen += 1
            print("%sok %d - %s: %s" % (m.group(1) or "", n, name, m.group(2)))
            if m.group(1):
                failed += 1
        elif re.match(r"^1\.\.(\d+)", line):
            plan = int(line[3:])
        else:
            print(line if line.startswith("#") else "# " + line)
    if plan != seen or status != 0:
        n += 1
        failed += 1
        print("not ok %d - %s: finished cleanly (status %s, plan %s, ran %d)" % (n, name, status, plan, seen))
    sys.stdout.flush()
print("1..%d" % n)
sys.exit(1 if failed else 0)
