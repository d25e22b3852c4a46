#!/usr/bin/env python3
# upload.t — multipart/form-data uploads streamed to temporary files while they arrive: curl -F
# with a 64 MiB file (the page echoes its size and SHA-256; the serving process's resident
# size does not grow by anything like the file's), a rate-limited upload whose temporary file
# is seen growing before the body has ended, Python http.client with a chunked body cut at
# odd places, and the refusals: Content-Length over post-max (413 before any 100 Continue), a
# chunked body crossing post-max (413 as it happens), a body without its close delimiter
# (400), more files than upload-max-files (413), a client that stalls past request-timeout and
# one that goes away mid-body.  After
# each, upload-dir holds no file.  The same over listen-tls (curl -k -F, plain and chunked).
# A client still sending when it is refused reads the whole 413, never a reset (the loop
# lingers: it reads and drops the rest of the body before closing), every time, whether it
# reads while sending or only after, over TLS too; and every refused upload writes its
# access-log line.
# timeout: 600
import hashlib
import http.client
import os
import random
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpd import HTTPD, ROOT, Tap, free_port, stop, wait_port  # noqa: E402

t = Tap()
d = tempfile.mkdtemp(prefix="crow-upload-t-")
updir = os.path.join(d, "uploads")
os.makedirs(updir)
port = free_port()
tport = free_port()
tls = os.path.join(d, "tls")
subprocess.run([os.path.join(ROOT, "tools", "mkcert"), tls], capture_output=True, timeout=60)
conf = os.path.join(d, "httpd.conf")
with open(conf, "w") as f:
    f.write("""listen 127.0.0.1:%d
listen-tls 127.0.0.1:%d
tls-cert %s
tls-key %s
log stderr
access-log %s
request-timeout 3s
keepalive-timeout 20s
upload-dir %s
upload-max-files 2
vhost big.test {
  default yes
  mode dynamic
  post-max 200M
  route /test crow.site:test-page
}
vhost small.test {
  mode dynamic
  post-max 1M
  route /test crow.site:test-page
}
""" % (port, tport, os.path.join(tls, "cert.pem"), os.path.join(tls, "key.pem"),
       os.path.join(d, "access.log"), updir))

BIG = 64 << 20
REFUSALS = 5
bigfile = os.path.join(d, "big.bin")
rnd = random.Random(5)
block = bytes(rnd.getrandbits(8) for _ in range(1 << 16))
h = hashlib.sha256()
with open(bigfile, "wb") as f:
    for i in range(BIG // len(block)):
        # boundary-like runs inside the data, as a browser's boundary would look
        piece = block[:1000] + b"\r\n------------------------" + block[1026:]
        f.write(piece)
        h.update(piece)
big_sha = h.hexdigest()


def leftovers():
    return sorted(os.listdir(updir))


def wait_empty(timeout=5.0):
    deadline = time.time() + timeout
    while leftovers() and time.time() < deadline:
        time.sleep(0.05)
    return leftovers()


def tree(pid):
    """PID and its descendants."""
    out = [pid]
    try:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    except OSError:
        kids = []
    for k in kids:
        out += tree(int(k))
    return out


def status_kb(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def page_files(html):
    """[(name, size, sha)] from the /test/upload page."""
    rows = re.findall(r'<td class="name">(.*?)</td><td class="size">(\d+)</td><td>.*?</td>'
                      r'<td class="sha256"><code>([0-9a-f]{64})</code>', html, re.S)
    return [(n, int(s), sha) for n, s, sha in rows]


def curl_upload(host, path, *extra):
    return subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-H", "Host: " + host,
                           "-F", "comment=big one", "-F", "file=@%s;filename=big.bin" % path]
                          + list(extra) + ["http://127.0.0.1:%d/test/upload" % port],
                          capture_output=True, timeout=300)


p = subprocess.Popen([HTTPD, "--foreground", "-f", conf], stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT, text=True)
try:
    t.ok(wait_port("127.0.0.1", port, 60, p), "crow-httpd serves with upload-dir")
    r = subprocess.run(["curl", "-s", "-F", "comment=x", "-F", "file=@%s" % conf,
                        "http://127.0.0.1:%d/test/upload" % port], capture_output=True, text=True, timeout=60)
    t.ok("file-count\">1<" in r.stdout, "a small upload (buffered, then scanned) is answered", r.stdout[-300:])
    # the serving process: the one (of the tree) with the largest resident size
    time.sleep(0.3)
    pids = tree(p.pid)
    base = {q: status_kb(q, "VmRSS") for q in pids}

    # 1. curl -F with 64 MiB: streamed, memory flat
    peak = dict(base)
    done = threading.Event()

    def watch():
        while not done.is_set():
            for q in pids:
                peak[q] = max(peak[q], status_kb(q, "VmRSS"))
            time.sleep(0.01)
    w = threading.Thread(target=watch)
    w.start()
    t0 = time.time()
    r = curl_upload("big.test", bigfile)
    secs = time.time() - t0
    done.set()
    w.join()
    body, _, code = r.stdout.rpartition(b"\n")
    html = body.decode("utf-8", "replace")
    files = page_files(html)
    t.ok(code == b"200" and files == [("big.bin", BIG, big_sha)],
         "curl -F with a 64 MiB file: 200, the page shows its size and SHA-256", (code, files, html[-400:]))
    t.ok('id="r-comment">big one<' in html, "the text field beside the file")
    grew = max(peak[q] - base[q] for q in pids)
    hwm_grew = max(status_kb(q, "VmHWM") - base[q] for q in pids)
    print("# 64 MiB upload in %.2f s; server RSS before %s kB, peak growth %d kB (VmHWM growth %d kB)"
          % (secs, max(base.values()), grew, hwm_grew))
    t.ok(grew < 16 * 1024, "the server's resident size grew by %d kB during the upload (< 16 MiB of 64)" % grew)
    t.ok(hwm_grew < 16 * 1024, "... and its high-water mark too (%d kB)" % hwm_grew)
    t.eq(wait_empty(), [], "upload-dir is empty once the request is answered")

    # 2. a rate-limited upload: its file grows in upload-dir while the body arrives
    mid = os.path.join(d, "mid.bin")
    with open(mid, "wb") as f:
        f.write(block * 96)  # 6 MiB
    proc = subprocess.Popen(["curl", "-s", "-o", os.devnull, "-w", "%{http_code}", "--limit-rate", "2M",
                             "-F", "file=@" + mid, "http://127.0.0.1:%d/test/upload" % port],
                            stdout=subprocess.PIPE, text=True)
    sizes = []
    deadline = time.time() + 60
    while proc.poll() is None and time.time() < deadline:
        for n in leftovers():
            try:
                sizes.append(os.path.getsize(os.path.join(updir, n)))
            except OSError:
                pass
        time.sleep(0.1)
    out, _ = proc.communicate(timeout=60)
    growing = sorted(set(s for s in sizes if 0 < s < len(block) * 96))
    t.ok(out == "200" and len(growing) >= 3,
         "at 2 MB/s the temporary file is seen growing while the body arrives (%d sizes)" % len(growing),
         (out, growing[:5]))
    t.eq(wait_empty(), [], "... and removed after")

    # 3. Python http.client, chunked, cut at odd places, two files and a field
    boundary = "pyBoundary7x"
    f1 = (b"\r\n--" + boundary.encode() + b"-not\r\n") * 3000 + os.urandom(150000)
    f2 = b""
    parts = [b"--%s\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nchunked \xc3\xa9\r\n" % boundary.encode(),
             b"--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"one.bin\"\r\n"
             b"Content-Type: application/octet-stream\r\n\r\n" % boundary.encode() + f1 + b"\r\n",
             b"--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"empty\"\r\n\r\n" % boundary.encode()
             + f2 + b"\r\n",
             b"--%s--\r\n" % boundary.encode()]
    body = b"".join(parts)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.putrequest("POST", "/test/upload")
    c.putheader("Content-Type", "multipart/form-data; boundary=" + boundary)
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    i, k = 0, 1
    while i < len(body):
        n = min(len(body) - i, (k * 7919) % 9001 + 1)
        c.send(b"%x\r\n" % n + body[i:i + n] + b"\r\n")
        i += n
        k += 1
    c.send(b"0\r\n\r\n")
    resp = c.getresponse()
    html = resp.read().decode("utf-8", "replace")
    c.close()
    want = [("one.bin", len(f1), hashlib.sha256(f1).hexdigest()), ("empty", 0, hashlib.sha256(b"").hexdigest())]
    t.ok(resp.status == 200 and page_files(html) == want and 'id="r-comment">chunked é<' in html,
         "http.client, chunked in %d pieces: both files (one empty) and the field" % (k - 1),
         (resp.status, page_files(html), html[-300:]))
    t.eq(wait_empty(), [], "upload-dir empty")

    # 3b. over TLS: Content-Length (Expect: 100-continue) and chunked
    mid_sha = hashlib.sha256(block * 96).hexdigest()
    for how, extra in (("Content-Length", []), ("chunked", ["-H", "Transfer-Encoding: chunked"])):
        r = subprocess.run(["curl", "-sk", "-F", "file=@%s;filename=mid.bin" % mid] + extra
                           + ["https://127.0.0.1:%d/test/upload" % tport], capture_output=True, timeout=120)
        files = page_files(r.stdout.decode("utf-8", "replace"))
        t.ok(files == [("mid.bin", len(block) * 96, mid_sha)], "over TLS, %s: the 6 MiB file's size and SHA-256" % how,
             (files, r.stderr[-200:]))
    t.eq(wait_empty(), [], "upload-dir empty")

    # 4. refusals
    r = curl_upload("small.test", mid)
    t.eq(r.stdout.rpartition(b"\n")[2], b"413", "Content-Length over post-max: 413 (no 100 Continue)")
    head = b"--zz\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n"

    def read_to_eof(s, out):
        """Appends what S delivers until EOF to the bytearray OUT (OSError goes through)."""
        while True:
            x = s.recv(65536)
            if not x:
                return
            out += x

    def refused_upload(chunked, watch, tls=False):
        """4 MiB to small.test (post-max 1 MiB), sent all before reading (WATCH false, as
        http.client does) or read as soon as an answer comes (as curl does), over TLS with TLS.
        Returns (the bytes read, the error that cut the client off or None)."""
        s = socket.create_connection(("127.0.0.1", tport if tls else port), timeout=10)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s)
        body = [b"10000\r\n" + block + b"\r\n" if chunked else block for i in range(64)]
        s.sendall(b"POST /test/upload HTTP/1.1\r\nHost: small.test\r\n"
                  + (b"Transfer-Encoding: chunked\r\n" if chunked
                     else b"Content-Length: %d\r\n" % (len(head) + 64 * len(block)))
                  + b"Content-Type: multipart/form-data; boundary=zz\r\n\r\n"
                  + (b"%x\r\n%s\r\n" % (len(head), head) if chunked else head))
        got, err = bytearray(), None
        try:
            for piece in body:
                if watch and select.select([s], [], [], 0)[0]:
                    break
                s.sendall(piece)
            read_to_eof(s, got)
        except OSError as e:
            err = e
        s.close()
        return bytes(got), err

    for chunked, watch, tls, what in (
            (True, True, False, "a chunked upload crossing post-max, answer read while sending"),
            (True, False, False, "a chunked upload crossing post-max, all sent first"),
            (False, False, False, "Content-Length over post-max without Expect, all sent first"),
            (True, False, True, "over TLS, a chunked upload crossing post-max, all sent first")):
        results = [refused_upload(chunked, watch, tls) for i in range(REFUSALS)]
        good = [g.startswith(b"HTTP/1.1 413") and g.endswith(b"</html>\n") and e is None for g, e in results]
        t.ok(all(good), "%s: the whole 413 and a clean close, %d/%d times" % (what, good.count(True), REFUSALS),
             [(g[:40], g[-20:], e) for g, e in results])
    t.eq(wait_empty(), [], "... their partial files removed at once")

    def raw(data, pause=0.0, tail=b"", read=True):
        s = socket.create_connection(("127.0.0.1", port), timeout=15)
        try:
            s.sendall(data)
        except OSError:
            pass
        if pause:
            time.sleep(pause)
        out = bytearray()
        try:
            if tail:
                s.sendall(tail)
            if read:
                read_to_eof(s, out)
        except OSError:
            pass
        s.close()
        return bytes(out)

    mp_head = (b"--zz\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n")
    three = (mp_head + block * 2 + b"\r\n") * 3 + b"--zz--\r\n"
    out = raw(b"POST /test/upload HTTP/1.1\r\nHost: big.test\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
              b"Content-Length: %d\r\n\r\n" % len(three) + three)
    t.ok(out.startswith(b"HTTP/1.1 413"), "three files with upload-max-files 2: 413", out[:60])
    t.eq(wait_empty(), [], "... the two written removed")
    unfinished = mp_head + block * 4
    out = raw(b"POST /test/upload HTTP/1.1\r\nHost: big.test\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
              b"Content-Length: %d\r\n\r\n" % len(unfinished) + unfinished)
    t.ok(out.startswith(b"HTTP/1.1 400"), "a body without its close delimiter: 400", out[:60])
    t.eq(wait_empty(), [], "... its file removed")

    # every refusal above is in the access log like any other request
    with open(os.path.join(d, "access.log"), "rb") as f:
        lines = f.read().decode("utf-8", "replace").splitlines()
    refused = [ln for ln in lines if '"POST /test/upload HTTP/1.1" 413 ' in ln]
    bad = [ln for ln in lines if '"POST /test/upload HTTP/1.1" 400 ' in ln]
    t.eq(len(refused), 2 + 4 * REFUSALS,
         "access log: a 413 line for each refused upload (before 100 Continue, mid-stream, too many files)")
    t.eq(len(bad), 1, "access log: a 400 line for the malformed body")
    t.ok(refused and bad and all(ln.startswith("127.0.0.1 - - [") for ln in refused + bad),
         "... in the combined format",
         (refused + bad)[:2])

    # a client that stalls past request-timeout (3 s) mid-body
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    s.sendall(b"POST /test/upload HTTP/1.1\r\nHost: big.test\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
              b"Content-Length: %d\r\n\r\n" % (len(mp_head) + 10 * len(block)) + mp_head + block * 3)
    time.sleep(1)
    seen = leftovers()
    t0 = time.time()
    out = b""
    try:
        while True:
            x = s.recv(65536)
            if not x:
                break
            out += x
    except OSError:
        pass
    waited = time.time() - t0
    s.close()
    t.ok(seen and 1.0 < waited < 10 and (out == b"" or out.startswith(b"HTTP/1.1 408")),
         "a body stalled past request-timeout: closed after %.1f s (its file existed meanwhile)" % waited,
         (seen, out[:60]))
    t.eq(wait_empty(), [], "... and its file removed")

    # a client that goes away mid-body
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    s.sendall(b"POST /test/upload HTTP/1.1\r\nHost: big.test\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
              b"Content-Length: %d\r\n\r\n" % (len(mp_head) + 10 * len(block)) + mp_head + block * 3)
    time.sleep(0.5)
    seen = leftovers()
    s.close()
    t.ok(seen, "a client's partial upload is in upload-dir", seen)
    t.eq(wait_empty(), [], "the client goes away mid-body: its file removed")

    r = subprocess.run(["curl", "-s", "-F", "comment=still", "http://127.0.0.1:%d/test/upload" % port],
                       capture_output=True, text=True, timeout=60)
    t.ok('id="r-comment">still<' in r.stdout, "the server goes on answering")
finally:
    rc = stop(p)
    log = p.stdout.read() if p.stdout else ""
t.ok(rc == 0, "crow-httpd stops cleanly", log[-1500:])
shutil.rmtree(d, ignore_errors=True)
t.done()
