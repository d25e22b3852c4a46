"""tap.py — a tiny TAP producer and process helpers for the Python scenario tests."""
import os
import socket
import subprocess
import sys
import time

ROOT = os.environ.get("CROW_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "build", "bin")


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, what, detail=None):
        self.n += 1
        print("%sok %d - %s" % ("" if cond else "not ", self.n, what))
        if not cond:
            self.failed += 1
            if detail is not None:
                for line in str(detail).splitlines()[:40]:
                    print("#   " + line)
        sys.stdout.flush()
        return cond

    def eq(self, got, want, what):
        return self.ok(got == want, what, "got  %r\nwant %r" % (got, want))

    def skip(self, what, why):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, what, why))

    def done(self):
        print("1..%d" % self.n)
        sys.exit(1 if self.failed else 0)


def demo_site_conf(path, port, drop=(), extra=""):
    """Writes to PATH make run's etc/httpd.conf serving the demo site on 127.0.0.1:PORT: the
    site root made absolute, without make run's TLS listener (fixed port 8443, certificate
    under var/) and without the keys in DROP; EXTRA (config lines) goes after the first line.
    Returns PATH."""
    with open(os.path.join(ROOT, "etc", "httpd.conf")) as f:
        text = f.read()
    text = text.replace("127.0.0.1:8080", "127.0.0.1:%d" % port)
    text = text.replace("root site", "root " + os.path.join(ROOT, "etc", "site"))
    lines = [l for l in text.splitlines(True)
             if l.split()[:1] not in [[k] for k in ("listen-tls", "tls-cert", "tls-key") + tuple(drop)]]
    if extra:
        lines.insert(1, extra)
    with open(path, "w") as f:
        f.write("".join(lines))
    return path


def mmftpasswd(accounts, *args, password=None):
    """Runs build/bin/mmftpasswd -f ACCOUNTS ARGS..., PASSWORD (if given) on its stdin.
    Returns the CompletedProcess (text output captured)."""
    return subprocess.run([os.path.join(BIN, "mmftpasswd"), "-f", accounts] + list(args),
                          input=(password + "\n") if password is not None else None,
                          capture_output=True, text=True)


CHROMIUM = "/usr/bin/chromium"


def browser_ready(t, what):
    """Checks that headless Chromium and playwright-core (build/node, `make browser-deps`) are
    there for the scenario WHAT; a missing one is a failure (make deps installs them).
    Returns True when both are."""
    if not os.path.exists(CHROMIUM):
        return t.ok(False, what + ": a dependency is missing (make deps installs it)",
                    "chromium not installed (tools/deps/web.list)")
    r = subprocess.run(["make", "-s", "browser-deps"], cwd=ROOT, capture_output=True, timeout=300)
    return t.ok(r.returncode == 0, "playwright-core installed into build/node", r.stderr[-800:])


_given_ports = set()


def free_port(host="127.0.0.1"):
    """Returns a TCP port free on HOST now, never one returned before in this process, and
    below the kernel's ephemeral range (32768+ by default) so that no outgoing connection of
    this or another test can take it before the server binds it."""
    import random
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    rng = random.Random(os.getpid() ^ int(time.time() * 1000))
    for _ in range(1000):
        port = rng.randrange(20000, 32000)
        if port in _given_ports:
            continue
        s = socket.socket(fam, socket.SOCK_STREAM)
        try:
            s.bind((host, port))
        except OSError:
            continue
        finally:
            s.close()
        u = socket.socket(fam, socket.SOCK_DGRAM)     # UDP services take the same number
        try:
            u.bind((host, port))
        except OSError:
            continue
        finally:
            u.close()
        _given_ports.add(port)
        return port
    raise RuntimeError("free_port: no free port in 20000-32000")


def wait_port(host, port, timeout=10.0, proc=None):
    """Returns True once HOST:PORT accepts a connection (within TIMEOUT seconds)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def stop(proc, timeout=10):
    """Stops PROC (one we started) by PID: SIGTERM, then SIGKILL.  Returns its status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def swank_eval(port, form, package="CL-USER", timeout=60):
    """Evaluates FORM (a string) in the Lisp behind swank at 127.0.0.1:PORT, speaking SLIME's
    wire protocol (6 hex digits of length, then an s-expression).  Returns the :return frame
    (a string) or None."""
    esc = form.replace("\\", "\\\\").replace('"', '\\"')
    msg = '(:emacs-rex (swank:eval-and-grab-output "%s") "%s" t 1)' % (esc, package)
    data = msg.encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(b"%06x" % len(data) + data)
        buf = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                return None
            buf += chunk
            while len(buf) >= 6:
                n = int(buf[:6], 16)
                if len(buf) < 6 + n:
                    break
                frame, buf = buf[6:6 + n].decode("utf-8", "replace"), buf[6 + n:]
                if frame.startswith("(:return"):
                    return frame
        return None
    finally:
        s.close()
