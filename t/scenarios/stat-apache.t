#!/usr/bin/env python3
# stat-apache.t — apache-mmstat as a real Apache's piped CustomLog (Debian apache2 on a high
# port with a test config; as root it serves as nobody) and as crow-httpd's log-pipe: after
# ab over several paths and statuses, the counters equal the request counts.  Also: lines
# while mmstatd is down are dropped (never blocking) and counted, malformed and overlong lines
# are skipped and counted.
# timeout: 300
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, ROOT, Tap, free_port, stop, wait_port
from stat_common import Stat

t = Tap()
FEEDER = os.path.join(BIN, "apache-mmstat")
APACHE = "/usr/sbin/apache2"
MODS = "/usr/lib/apache2/modules"
root_user = os.geteuid() == 0
st = Stat(sync="every 100ms")
procs = []


def wait_for(pattern, want, timeout=60):
    """Polls the report until the values' sum under PATTERN reaches WANT (or TIMEOUT)."""
    deadline = time.time() + timeout
    v = {}
    while time.time() < deadline:
        v = st.values(pattern) or {}
        if sum(x for x in v.values() if isinstance(x, int)) >= want:
            break
        time.sleep(0.2)
    return v


def ab(url, n):
    r = subprocess.run(["ab", "-q", "-n", str(n), "-c", "8", url], capture_output=True, text=True, timeout=180)
    return r.returncode == 0 and ("Complete requests:      %d" % n) in r.stdout


try:
    t.ok(st.start(), "mmstatd starts")
    d = st.dir
    htdocs = os.path.join(d, "htdocs")
    for sub in ("a", "b"):
        os.makedirs(os.path.join(htdocs, sub))
    open(os.path.join(htdocs, "a", "x.html"), "w").write("<p>a</p>\n")
    open(os.path.join(htdocs, "b", "y.txt"), "w").write("bbbb\n")
    os.makedirs(os.path.join(d, "denied"))
    for dp, dns, fns in os.walk(d):
        os.chmod(dp, 0o755)
        for fn in fns:
            os.chmod(os.path.join(dp, fn), 0o644)
    amconf = os.path.join(d, "apache-mmstat.conf")
    with open(amconf, "w") as f:
        f.write('stat-dir %s\nformat vhost status method bytes path\n'
                'count "apache|hits|{vhost}"\ncount "apache|status|{vhost}|{status}"\n'
                'count "apache|class|{class}"\ncount "apache|path|{prefix}"\n'
                'sum "apache|bytes" bytes\n' % st.run)

    # --- Apache
    if not os.path.exists(APACHE) or not shutil.which("ab"):
        t.ok(False, "apache2 + ab" + ": a dependency is missing (make deps installs it)", "apache2 or apache2-utils not installed")
    else:
        port = free_port()
        conf = os.path.join(d, "apache2.conf")
        with open(conf, "w") as f:
            f.write("""ServerRoot %(d)s
DefaultRuntimeDir %(d)s
PidFile %(d)s/apache2.pid
Mutex file:%(d)s default
Listen 127.0.0.1:%(port)d
ServerName localhost
LoadModule mpm_event_module %(mods)s/mod_mpm_event.so
LoadModule authz_core_module %(mods)s/mod_authz_core.so
%(user)s
ErrorLog %(d)s/apache-error.log
LogLevel warn
DocumentRoot %(d)s/htdocs
<Directory />
  Require all granted
</Directory>
<Location /denied>
  Require all denied
</Location>
LogFormat "%%v %%>s %%m %%B %%U" mmstat
CustomLog "|%(feeder)s -f %(amconf)s" mmstat
""" % {"d": d, "port": port, "mods": MODS, "feeder": FEEDER, "amconf": amconf,
       "user": "User nobody\nGroup nogroup" if root_user else ""})
        ap = subprocess.Popen([APACHE, "-f", conf, "-DFOREGROUND"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)
        procs.append(ap)
        up = wait_port("127.0.0.1", port, 30, ap)
        t.ok(up, "Apache listens on 127.0.0.1:%d%s" % (port, " (as nobody)" if root_user else ""),
             open(os.path.join(d, "apache-error.log")).read() if os.path.exists(os.path.join(d, "apache-error.log")) else "")
        base = "http://127.0.0.1:%d" % port
        runs = [("/a/x.html", 4000), ("/b/y.txt", 3000), ("/missing", 2000), ("/denied/z", 1000)]
        t.ok(all(ab(base + p, n) for p, n in runs), "ab: 10,000 requests over four paths")
        v = wait_for("apache|hits|*", 10000)
        t.eq(v, {"apache|hits|localhost": 10000}, "apache|hits = 10,000")
        t.eq(st.values("apache|status|*"), {"apache|status|localhost|200": 7000,
                                            "apache|status|localhost|404": 2000,
                                            "apache|status|localhost|403": 1000},
             "per status: 7,000 x 200, 2,000 x 404, 1,000 x 403")
        t.eq(st.values("apache|class|*"), {"apache|class|2xx": 7000, "apache|class|4xx": 3000}, "per class")
        t.eq(st.values("apache|path|*"), {"apache|path|/a": 4000, "apache|path|/b": 3000,
                                          "apache|path|/missing": 2000, "apache|path|/denied": 1000},
             "per path prefix")
        b = (st.values("apache|bytes") or {}).get("apache|bytes", 0)
        t.ok(b >= 4000 * 9 + 3000 * 5, "bytes summed (%d >= the bodies of the 200s)" % b)
        stop(ap, 30)
        procs.remove(ap)

    # --- crow-httpd log-pipe (combined format)
    hconf_dir = os.path.join(d, "httpd")
    os.makedirs(hconf_dir)
    am2 = os.path.join(hconf_dir, "am.conf")
    with open(am2, "w") as f:
        f.write('stat-dir %s\nformat combined\nvhost crow\ncount "crow|hits|{vhost}"\n'
                'count "crow|status|{status}|{method}"\ncount "crow|path|{prefix}"\n' % st.run)
    hport = free_port()
    hconf = os.path.join(hconf_dir, "httpd.conf")
    with open(hconf, "w") as f:
        f.write('listen 127.0.0.1:%d\nlog stderr\nlog-pipe "|%s -f %s"\n'
                'vhost localhost {\n  default yes\n  root %s\n}\n' % (hport, FEEDER, am2, htdocs))
    hp = subprocess.Popen([os.path.join(BIN, "crow-httpd"), "--foreground", "-f", hconf],
                          stdout=open(os.path.join(hconf_dir, "log"), "w"), stderr=subprocess.STDOUT)
    procs.append(hp)
    t.ok(wait_port("127.0.0.1", hport, 60, hp), "crow-httpd listens with log-pipe to apache-mmstat")
    hbase = "http://127.0.0.1:%d" % hport
    ok = ab(hbase + "/a/x.html", 1500) and ab(hbase + "/nothing/here", 500)
    t.ok(ok, "ab: 2,000 requests to crow-httpd")
    v = wait_for("crow|hits|*", 2000)
    t.eq(v, {"crow|hits|crow": 2000}, "crow|hits = 2,000")
    t.eq(st.values("crow|status|*"), {"crow|status|200|GET": 1500, "crow|status|404|GET": 500},
         "per status and method")
    t.eq(st.values("crow|path|*"), {"crow|path|/a": 1500, "crow|path|/nothing": 500}, "per path prefix")
    stop(hp, 30)
    procs.remove(hp)

    # --- never blocks; drops, malformed and overlong lines counted
    lines = ("localhost 200 GET 10 /ok\n" * 5 + "garbage\n" + "localhost abc GET 1 /x\n" +
             "localhost 200 GET 1 /" + "x" * 10000 + "\n" + "localhost 200 GET 10 /ok\n")
    r = subprocess.run([FEEDER, "-f", amconf], input=lines, capture_output=True, text=True, timeout=30)
    t.ok(r.returncode == 0 and "9 lines, 0 dropped (mmstatd down or busy), 2 malformed, 1 overlong" in r.stderr,
         "the feeder reads a mixed input and reports it on stderr", r.stderr)
    time.sleep(0.3)
    v = st.values("apache-mmstat|*")
    t.eq((v.get("apache-mmstat|malformed"), v.get("apache-mmstat|overlong")), (2, 1),
         "2 malformed and 1 overlong line counted")
    st.stop()
    t0 = time.time()
    r = subprocess.run([FEEDER, "-f", amconf], input="localhost 200 GET 10 /down\n" * 20000,
                       capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 0 and time.time() - t0 < 20 and "20000 dropped" in r.stderr,
         "mmstatd down: 20,000 lines read at once, all counted as dropped", r.stderr)
finally:
    for p in procs:
        stop(p, 10)
    st.cleanup()
t.done()
