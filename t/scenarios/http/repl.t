#!/usr/bin/env python3
# repl.t — crow-httpd --foreground --repl: an ECL REPL on the terminal (here a pipe) while
# serving; a handler redefined at the REPL answers the next request; end of input stops the
# server.  Also -n on good and bad configs (file:line messages).
# timeout: 200
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpd import HTTPD, Tap, exchange, free_port, make_root, wait_port  # noqa: E402

t = Tap()
d = make_root()
conf = os.path.join(d, "bad.conf")
with open(conf, "w") as f:
    f.write("listen 127.0.0.1:9\nvhost a {\n  root %s\n  mode sometimes\n}\n" % os.path.join(d, "root"))
r = subprocess.run([HTTPD, "-f", conf, "-n"], capture_output=True, text=True, timeout=60)
t.ok(r.returncode == 1 and ("%s:4:" % conf) in r.stderr, "-n: a bad mode is reported as file:line", r.stderr)
with open(conf, "w") as f:
    f.write("vhost a {\n  root %s\n  route /x nosuchpackage:handler\n}\n" % os.path.join(d, "root"))
r = subprocess.run([HTTPD, "-f", conf, "-n"], capture_output=True, text=True, timeout=60)
t.ok(r.returncode == 1 and "nosuchpackage" in r.stderr, "-n: a route to a missing package is refused", r.stderr)
with open(conf, "w") as f:
    f.write("vhost a {\n  root %s\n  route /x crow.http:echo\n}\n" % os.path.join(d, "root"))
r = subprocess.run([HTTPD, "-f", conf, "-n"], capture_output=True, text=True, timeout=60)
t.ok(r.returncode == 0 and "ok" in r.stdout, "-n: a good config passes", r.stdout + r.stderr)

port = free_port()
p = subprocess.Popen([HTTPD, "--foreground", "--repl", "-l", "127.0.0.1:%d" % port],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
try:
    t.ok(wait_port("127.0.0.1", port, 60, p), "crow-httpd --repl listens")
    p.stdin.write(b'(crow.http:define-handler crow.http:hello (req) (crow.http:respond req "from the repl"))\n')
    p.stdin.write(b"(* 6 7)\n")
    p.stdin.flush()
    time.sleep(1.5)
    out, _ = exchange(port, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    t.ok(out.endswith(b"from the repl"), "a handler defined at the REPL answers the next request", out)
    p.stdin.close()
    try:
        rc = p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait(10)
    log = p.stdout.read().decode("utf-8", "replace")
    t.ok("42" in log, "the REPL evaluates and prints", log[-800:])
    t.eq(rc, 0, "end of input at the REPL stops the server with status 0")
finally:
    if p.poll() is None:
        p.kill()
        p.wait(10)
    shutil.rmtree(d, ignore_errors=True)
t.done()
