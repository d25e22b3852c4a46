#!/usr/bin/env python3
# embed.t — make site builds crow-httpd with etc/site's files (and a config) compiled in; run
# from a directory where etc/site does not exist, it serves them byte-identical, with 304 on
# a conditional request, 206 on ranges (one and several), 416, 404
# for an absent path; with `external-files no` a file present on disk is 404, and without it
# the same disk vhost serves it.  The embedded config is used when no -f is given.  With
# `listing yes` an embedded directory without an index is listed (links to each entry), without
# it 404.  The program runs under its own name: --version, --help and its log lines say NAME.
# timeout: 600
import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, ROOT, Tap, free_port, stop, wait_port

t = Tap()
SITE = os.path.join(ROOT, "etc", "site")
NAME = "crow-site-demo"
prog = os.path.join(BIN, NAME)
tmp = tempfile.mkdtemp(prefix="crow-embed-")
embedded_conf = os.path.join(tmp, "embedded.conf")
with open(embedded_conf, "w") as f:
    f.write("vhost site {\n  embedded yes\n  default yes\n}\nexternal-files no\n")

r = subprocess.run(["make", "-C", ROOT, "--no-print-directory", "site", "SITE=etc/site",
                    "NAME=" + NAME, "CONFIG=" + embedded_conf],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=540)
t.ok(r.returncode == 0 and os.access(prog, os.X_OK), "make site builds " + NAME, r.stdout[-2000:])

# the files under etc/site (what must be embedded)
originals = {}
for d, dirs, names in os.walk(SITE):
    for n in names:
        if not n.startswith("."):
            full = os.path.join(d, n)
            originals["/" + os.path.relpath(full, SITE)] = open(full, "rb").read()
t.ok(len(originals) >= 2, "etc/site has files to embed (%d)" % len(originals))

run_dir = os.path.join(tmp, "run")
os.makedirs(os.path.join(run_dir, "disk"))
with open(os.path.join(run_dir, "disk", "on-disk.txt"), "w") as f:
    f.write("from the disk\n")
t.ok(not os.path.exists(os.path.join(run_dir, "etc", "site")), "etc/site absent where it runs")


def start(conf_text):
    """Starts the site program in run_dir (with -f when CONF_TEXT is given).  Returns
    (proc, port)."""
    port = free_port()
    args = [prog, "--foreground", "-l", "127.0.0.1:%d" % port]
    if conf_text is not None:
        path = os.path.join(run_dir, "c.conf")
        with open(path, "w") as f:
            f.write(conf_text)
        args += ["-f", path]
    p = subprocess.Popen(args, cwd=run_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_port("127.0.0.1", port, timeout=20, proc=p)
    return p, port


def get(port, path, headers=None, host="site"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = {"Host": host}
    h.update(headers or {})
    c.request("GET", path, headers=h)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), body


procs = []
try:
    # 1. the embedded config (no -f): the embedded vhost, external files off
    p, port = start(None)
    procs.append(p)
    for path, data in sorted(originals.items()):
        st, h, body = get(port, path)
        t.ok(st == 200 and body == data, "%s: 200, byte-identical (%d bytes)" % (path, len(data)),
             "status %d, %d bytes, sha %s" % (st, len(body), hashlib.sha256(body).hexdigest()))
    st, h, body = get(port, "/")
    t.ok(st == 200 and body == originals["/index.html"], "/ answers the embedded index.html")
    st, h, _ = get(port, "/index.html")
    etag, lm = h.get("etag"), h.get("last-modified")
    t.ok(etag and lm, "ETag and Last-Modified sent", str(h))
    st, h, body = get(port, "/index.html", {"If-None-Match": etag or "x"})
    t.ok(st == 304 and body == b"", "If-None-Match: 304", "status %d" % st)
    st, h, body = get(port, "/index.html", {"If-Modified-Since": lm or "x"})
    t.ok(st == 304, "If-Modified-Since: 304", "status %d" % st)
    data = originals["/index.html"]
    st, h, body = get(port, "/index.html", {"Range": "bytes=5-14"})
    t.ok(st == 206 and body == data[5:15]
         and h.get("content-range") == "bytes 5-14/%d" % len(data), "Range: 206 with the slice",
         "status %d %r %r" % (st, h.get("content-range"), body))
    st, h, body = get(port, "/index.html", {"Range": "bytes=0-1,-3"})
    t.ok(st == 206 and h.get("content-type", "").startswith("multipart/byteranges")
         and data[0:2] in body and data[-3:] in body, "two ranges: 206 multipart", "status %d" % st)
    st, h, body = get(port, "/index.html", {"Range": "bytes=%d-" % (len(data) + 5)})
    t.ok(st == 416, "unsatisfiable range: 416", "status %d" % st)
    st, h, _ = get(port, "/no-such-file.html")
    t.ok(st == 404, "absent path: 404", "status %d" % st)
    st, h, _ = get(port, "/img/")
    t.ok(st == 404, "no listing without `listing yes`: an embedded directory without an index is 404",
         "status %d" % st)
    st, h, _ = get(port, "/../etc/passwd")
    t.ok(st in (400, 404), "dot-dot refused", "status %d" % st)
    stop(p)
    procs.remove(p)
    log = p.stdout.read()
    lines = [l for l in log.splitlines() if l.strip()]
    t.ok(lines and all(l.startswith(NAME + ":") for l in lines) and "crow-httpd" not in log,
         "its log lines start with its own name", log[-600:])

    # its own name on the command line
    r = subprocess.run([prog, "--version"], capture_output=True, text=True, timeout=60, cwd=run_dir)
    t.ok(r.returncode == 0 and r.stdout.startswith(NAME + " "), "--version: " + r.stdout.strip(), r.stderr)
    r = subprocess.run([prog, "--help"], capture_output=True, text=True, timeout=60, cwd=run_dir)
    t.ok(r.returncode == 0 and NAME in r.stdout and "crow-httpd [" not in r.stdout
         and "usage: crow-httpd" not in r.stdout.lower(), "--help names " + NAME, r.stdout[:300])

    # 3. listing yes: embedded directories are listed
    p, port = start("vhost site {\n  embedded yes\n  default yes\n  listing yes\n}\nexternal-files no\n")
    procs.append(p)
    imgs = sorted(k[len("/img/"):] for k in originals if k.startswith("/img/"))
    st, h, body = get(port, "/img/")
    html = body.decode("utf-8", "replace")
    t.ok(st == 200 and h.get("content-type", "").startswith("text/html")
         and all('<a href="%s">%s</a>' % (n, n) in html for n in imgs) and 'href="../"' in html,
         "listing yes: /img/ lists its %d embedded files" % len(imgs), "status %d %s" % (st, html[:400]))
    st, h, body = get(port, "/")
    t.ok(st == 200 and body == originals["/index.html"], "a directory with an index still gets it")
    st, h, _ = get(port, "/img")
    t.ok(st == 301 and h.get("location") == "/img/", "/img redirects to /img/", "status %d %s" % (st, h))
    st, h, _ = get(port, "/nothing/")
    t.ok(st == 404, "a directory that holds no embedded file: 404", "status %d" % st)
    stop(p)
    procs.remove(p)

    # 2. -f with a disk vhost: external-files no refuses it, yes (default) serves it
    base = "vhost site {\n  embedded yes\n  default yes\n}\nvhost disk {\n  root %s/disk\n}\n" % run_dir
    p, port = start(base + "external-files no\n")
    procs.append(p)
    st, h, body = get(port, "/on-disk.txt", host="disk")
    t.ok(st == 404, "external-files no: a file on disk is 404", "status %d %r" % (st, body))
    st, h, body = get(port, "/index.html")
    t.ok(st == 200 and body == data, "external-files no: embedded files still served")
    stop(p)
    procs.remove(p)
    p, port = start(base)
    procs.append(p)
    st, h, body = get(port, "/on-disk.txt", host="disk")
    t.ok(st == 200 and body == b"from the disk\n", "external-files yes: the disk file is served",
         "status %d" % st)
    st, h, body = get(port, "/index.html", host="disk")
    t.ok(st == 404, "the disk vhost does not see the embedded files", "status %d" % st)
    stop(p)
    procs.remove(p)
finally:
    for p in procs:
        stop(p)
    shutil.rmtree(tmp, ignore_errors=True)
t.done()
