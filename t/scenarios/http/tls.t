#!/usr/bin/env python3
# tls.t — crow-httpd on listen-tls with tls-cert/tls-key (a self-signed certificate from
# tools/mkcert): curl over HTTPS verifying against that certificate gets the Lisp handler, a
# small file, a 1 MiB file (sendfile path) byte-identical, a range, keep-alive, and a chunked
# upload; plain HTTP on the other listener still works; a missing key refuses -n.
# timeout: 300
import hashlib
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpd import HTTPD, ROOT, Server, Tap, free_port, make_root, wait_port  # noqa: E402

t = Tap()
d = make_root()
root = os.path.join(d, "root")
tls = os.path.join(d, "tls")
r = subprocess.run([os.path.join(ROOT, "tools", "mkcert"), tls], capture_output=True, text=True, timeout=60)
t.ok(r.returncode == 0 and os.path.exists(os.path.join(tls, "cert.pem")), "tools/mkcert makes a certificate", r.stderr)
big = os.urandom(1 << 20)
with open(os.path.join(root, "big.bin"), "wb") as f:
    f.write(big)
tport = free_port()
extra = "listen-tls 127.0.0.1:%d\ntls-cert %s\ntls-key %s\n" % (tport, os.path.join(tls, "cert.pem"), os.path.join(tls, "key.pem"))
srv = Server(root, extra=extra)
cafile = os.path.join(tls, "cert.pem")


def curl(*args):
    return subprocess.run(["curl", "-s", "--cacert", cafile, "-H", "Host: a.test"] + list(args),
                          capture_output=True, timeout=30)


try:
    t.ok(srv.up and wait_port("127.0.0.1", tport, 30, srv.proc), "crow-httpd listens on plain and TLS ports")
    u = lambda p: "https://localhost:%d%s" % (tport, p)
    res = ["--resolve", "localhost:%d:127.0.0.1" % tport]
    r = curl(*res, "-i", u("/hello"))
    t.ok(r.stdout.startswith(b"HTTP/1.1 200") and r.stdout.endswith(b"hello\n"), "HTTPS /hello (certificate verified)", r.stdout + r.stderr)
    r = curl(*res, u("/a.txt"))
    t.eq(r.stdout, b"hello file\n", "HTTPS small file")
    r = curl(*res, u("/big.bin"))
    t.ok(hashlib.sha256(r.stdout).digest() == hashlib.sha256(big).digest(), "HTTPS 1 MiB file byte-identical (%d bytes)" % len(r.stdout))
    r = curl(*res, "-r", "1000-1999", u("/big.bin"))
    t.eq(r.stdout, big[1000:2000], "HTTPS range of the big file")
    r = subprocess.run(["curl", "-sv", "--cacert", cafile, "-H", "Host: a.test"] + res + [u("/hello"), u("/a.txt")],
                       capture_output=True, timeout=30)
    t.ok(r.stdout == b"hello\nhello file\n" and b"Re-using existing connection" in r.stderr, "HTTPS keep-alive", r.stderr[-300:])
    data = os.urandom(20000)
    path = os.path.join(d, "up.bin")
    with open(path, "wb") as f:
        f.write(data)
    r = curl(*res, "-H", "Transfer-Encoding: chunked", "--data-binary", "@" + path, u("/echo"))
    t.ok(r.stdout.endswith(data), "HTTPS chunked upload", r.stdout[:200])
    r = subprocess.run(["curl", "-s", "-H", "Host: a.test", srv.url("/hello")], capture_output=True, timeout=30)
    t.eq(r.stdout, b"hello\n", "plain HTTP still served beside TLS")
    r = subprocess.run(["curl", "-s", "-k", "http://127.0.0.1:%d/hello" % tport], capture_output=True, timeout=30)
    t.ok(b"hello\n" != r.stdout, "plain HTTP on the TLS port is not answered as HTTP")
finally:
    status, log = srv.stop()
t.eq(status, 0, "crow-httpd stops with status 0")
conf = os.path.join(d, "bad.conf")
with open(conf, "w") as f:
    f.write("listen-tls 127.0.0.1:9\ntls-cert %s\n" % cafile)
r = subprocess.run([HTTPD, "-f", conf, "-n"], capture_output=True, text=True, timeout=60)
t.ok(r.returncode == 1 and "tls-key" in r.stderr, "-n: listen-tls without tls-key is refused", r.stderr)
shutil.rmtree(d, ignore_errors=True)
t.done()
