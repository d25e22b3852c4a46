"""stat_common.py — helpers for the mmstatd scenario tests: a private mmstatd in a temporary
directory, the mmstat CLI, reports as dictionaries."""
import os
import socket
import subprocess
import tempfile
import time

from tap import BIN, ROOT

MMSTATD = os.path.join(BIN, "mmstatd")
MMSTAT = os.path.join(BIN, "mmstat")
BENCH = os.path.join(ROOT, "build", "bench", "bench_mmstat")
CRASH = os.path.join(ROOT, "build", "t", "stat", "mmstat-crash")


class Stat:
    """A private mmstatd: sockets in DIR/run, data in DIR/data, log in DIR/mmstatd.log."""

    def __init__(self, sync="always", d=None):
        self.dir = d or tempfile.mkdtemp(prefix="mmstatd-test.")
        os.chmod(self.dir, 0o755)
        self.run = os.path.join(self.dir, "run")
        self.data = os.path.join(self.dir, "data")
        self.conf = os.path.join(self.dir, "mmstatd.conf")
        self.logfile = os.path.join(self.dir, "mmstatd.log")
        self.proc = None
        self.write_conf(sync)

    def write_conf(self, sync, extra=""):
        with open(self.conf, "w") as f:
            f.write("stat-dir run\ndata-dir data\nsync %s\nlog stderr\n%s" % (sync, extra))

    def start(self, timeout=60):
        """Starts mmstatd; returns True once it answers PING."""
        self.log = open(self.logfile, "a")
        self.proc = subprocess.Popen([MMSTATD, "-f", self.conf, "--foreground"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.ping():
                return True
            time.sleep(0.02)
        return False

    def ping(self):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            s.connect(os.path.join(self.run, "librarian.sock"))
            s.sendall(b"PING\n")
            ok = s.recv(100).startswith(b"+OK")
            s.close()
            return ok
        except OSError:
            return False

    def request(self, line, timeout=30):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(os.path.join(self.run, "librarian.sock"))
        s.sendall(line.encode() + b"\n")
        out = b""
        while not (out.endswith(b"\n.\n") or out == b".\n" or
                   (out[:1] in (b"+", b"-") and out.endswith(b"\n"))):
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        s.close()
        return out.decode()

    def stop(self, sig=15, timeout=30):
        """Stops mmstatd by PID (SIGTERM by default, 9 for a crash).  Returns its status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def cli(self, *args, timeout=60):
        r = subprocess.run([MMSTAT, "-d", self.run] + list(args), capture_output=True,
                           text=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr

    def report(self, pattern="*"):
        """Returns {key: (value, 'p'|'v')} (text values as '=TEXT'), or None on failure."""
        rc, out, err = self.cli("report", pattern)
        if rc != 0:
            return None
        d = {}
        for line in out.splitlines():
            k, v, pv, c, m = line.split("\t")
            d[k] = (v if v.startswith("=") else int(v), pv)
        return d

    def values(self, pattern="*"):
        r = self.report(pattern)
        return None if r is None else {k: v for k, (v, _) in r.items()}

    def check(self, repair=False):
        r = subprocess.run([MMSTATD, "-f", self.conf, "--repair" if repair else "--check"],
                           capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout + r.stderr

    def logs(self):
        return sorted(f for f in os.listdir(self.data) if f.startswith("log."))

    def cleanup(self):
        self.stop(9)
        subprocess.run(["rm", "-rf", self.dir])
