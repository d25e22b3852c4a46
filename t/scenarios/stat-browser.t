#!/usr/bin/env python3
# stat-browser.t — the /stats page of crow's demo site in headless Chromium (playwright-core,
# as t/scenarios/browser.t): a counter changed with `mmstat update` shows its new value on the
# page without a reload, and its SVG chart (template engine) is served.
# timeout: 300
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, ROOT, Tap, browser_ready, demo_site_conf, free_port, stop, wait_port
from stat_common import Stat

t = Tap()


def main(st):
    if not browser_ready(t, "stats browser scenario"):
        return
    t.ok(st.start(), "mmstatd starts")
    key = "demo|hits|browser"
    t.eq(st.cli("update", "p", key + "%41")[0], 0, "mmstat update p %s%%41" % key)
    tmp = tempfile.mkdtemp(prefix="crow-stat-browser-")
    port = free_port()
    conf = demo_site_conf(os.path.join(tmp, "httpd.conf"), port)
    env = dict(os.environ, MMSTAT_DIR=st.run, CROW_ROOT=ROOT)
    p = subprocess.Popen([os.path.join(BIN, "crow-httpd"), "-f", conf, "--foreground"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
    try:
        if not t.ok(wait_port("127.0.0.1", port, 60, p), "crow-httpd serves the site"):
            return
        node = subprocess.Popen(["node", os.path.join(ROOT, "t", "scenarios", "stat-browser.js"),
                                 "http://127.0.0.1:%d" % port, os.path.join(tmp, "profile"), key],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
        first = node.stdout.readline().strip()
        if first == "update":
            st.cli("update", "p", key + "%1")
            node.stdin.write("go\n")
            node.stdin.flush()
        out, err = node.communicate(timeout=180)
        try:
            seen = json.loads((first + "\n" + out).strip().splitlines()[-1])
        except (ValueError, IndexError):
            t.ok(False, "the browser driver reports", first + out[-1000:] + err[-1500:])
            return
        t.eq(seen.get("errors"), [], "no browser errors")
        t.ok(seen.get("status") == 200 and "Statistics" in (seen.get("title") or ""), "/stats answers 200", seen)
        t.eq(seen.get("before"), "41", "the page shows the counter (41)")
        t.eq(seen.get("after"), "42", "after mmstat update the page shows 42, live")
        t.eq(seen.get("navigations"), 1, "without a reload")
        t.ok(seen.get("chartType", "").startswith("image/svg+xml") and seen.get("chartHasLine")
             and seen.get("chartNamesKey"), "the ticked counter's SVG chart is served", seen)
    finally:
        stop(p, 30)
        subprocess.run(["rm", "-rf", tmp])


st = Stat(sync="every 100ms")
try:
    main(st)
finally:
    st.cleanup()
t.done()
