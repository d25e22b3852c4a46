"""httpd.py — helpers for the crow-httpd scenarios: start the server on a free port with a
config written for the test, talk raw HTTP over sockets, stop it by PID."""
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tap import BIN, ROOT, Tap, free_port, stop, swank_eval, wait_port  # noqa: E402,F401

HTTPD = os.path.join(BIN, "crow-httpd")


def raise_nofile(n=8192):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(soft, n), hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def make_root():
    """A temporary document root with a few files, a subdirectory with an index, a file whose
    name needs escaping, a symlink inside and one leading outside.  Returns its path (the
    caller removes it with shutil.rmtree)."""
    d = tempfile.mkdtemp(prefix="crow-httpd-")
    root = os.path.join(d, "root")
    os.makedirs(os.path.join(root, "sub"))
    os.makedirs(os.path.join(root, "bare"))
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<h1>index</h1>\n")
    with open(os.path.join(root, "a.txt"), "w") as f:
        f.write("hello file\n")
    with open(os.path.join(root, "style.css"), "w") as f:
        f.write("body{}\n")
    with open(os.path.join(root, "sub", "index.html"), "w") as f:
        f.write("sub index\n")
    with open(os.path.join(root, "bare", "<b>&x.txt"), "w") as f:
        f.write("x\n")
    with open(os.path.join(root, "bin4k"), "wb") as f:
        f.write(bytes(range(256)) * 16)
    with open(os.path.join(d, "secret.txt"), "w") as f:
        f.write("outside the root\n")
    os.symlink(os.path.join(d, "secret.txt"), os.path.join(root, "escape.txt"))
    os.symlink(d, os.path.join(root, "escdir"))
    os.symlink("a.txt", os.path.join(root, "inside.txt"))
    return d


CONF = """listen 127.0.0.1:{port}
log stderr
max-connections {maxconn}
request-timeout {reqto}
keepalive-timeout {kato}
{extra}
vhost a.test {{
  alias b.test
  root {root}
  listing {listing}
  post-max 64K
  route /echo crow.http:echo
  route /stream crow.http:stream-lines
  route /hello crow.http:hello exact GET,HEAD
}}
vhost other.test {{
  default yes
  mode dynamic
  route /echo crow.http:echo
  route /hello crow.http:hello exact
}}
"""


class Server:
    """A crow-httpd started for a test: Server(root, **conf) ... .stop()."""

    def __init__(self, root, swank=None, maxconn=1024, reqto="5s", kato="5s", extra="",
                 listing="no", workers=1):
        raise_nofile()
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="crow-httpd-conf-")
        self.conf = os.path.join(self.dir, "httpd.conf")
        with open(self.conf, "w") as f:
            f.write(CONF.format(port=self.port, root=root, maxconn=maxconn, reqto=reqto,
                                kato=kato, extra=extra, listing=listing))
        argv = [HTTPD, "--foreground", "-f", self.conf, "-t", str(workers)]
        if swank:
            argv += ["--swank", str(swank)]
        env = dict(os.environ, CROW_CACHE=os.path.join(ROOT, "build", "swank-cache"))
        self.log = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.up = wait_port("127.0.0.1", self.port, 60, self.proc)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        status = stop(self.proc, 30)
        self.log.seek(0)
        out = self.log.read()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return status, out


def exchange(port, data, timeout=5.0, chunks=None):
    """Sends DATA (or the list CHUNKS with small pauses) on a fresh connection and reads until
    the server closes or TIMEOUT passes.  Returns (BYTES, CLOSED): CLOSED is True when the
    server closed the connection (EOF or reset) within the time."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    closed = False
    deadline = time.time() + timeout
    try:
        if chunks:
            for c in chunks:
                s.sendall(c)
                time.sleep(0.05)
        else:
            s.sendall(data)
        while time.time() < deadline:
            s.settimeout(max(0.05, deadline - time.time()))
            try:
                c = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not c:
                closed = True
                break
            out += c
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    finally:
        s.close()
    return out, closed


def statuses(data):
    """Returns the status codes of the responses in DATA, in order (bodies skipped by
    Content-Length or chunked framing; 1xx interim responses included)."""
    out = []
    i = 0
    while i < len(data):
        end = data.find(b"\r\n\r\n", i)
        if end < 0 or not data.startswith(b"HTTP/1.", i):
            break
        head = data[i:end].decode("latin-1")
        lines = head.split("\r\n")
        try:
            code = int(lines[0].split(" ")[1])
        except (IndexError, ValueError):
            break
        out.append(code)
        i = end + 4
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if code < 200 or code in (204, 304):
            continue
        if "content-length" in hdrs:
            i += int(hdrs["content-length"])
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            while True:
                le = data.find(b"\r\n", i)
                if le < 0:
                    return out
                n = int(data[i:le].split(b";")[0], 16)
                i = le + 2 + n + 2
                if n == 0:
                    break
    return out


def body_of(data):
    """Returns the body of the single response DATA (after its head)."""
    return data.partition(b"\r\n\r\n")[2]
