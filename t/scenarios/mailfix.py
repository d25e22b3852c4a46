"""mailfix.py — the mail scenario tests' fixture: a private PostgreSQL cluster (tools/pg in a
temporary directory, run by an unprivileged user when root), the mail schema and demo data,
and mmsmtpd / mmpop3d started on free ports and stopped by PID."""
import os
import shutil
import socket
import subprocess
import tempfile
import time

from tap import BIN, ROOT, free_port, stop, wait_port

PG = os.path.join(ROOT, "tools", "pg")


class Mail:
    def __init__(self, name, smtp_conf="", pop3_conf="", tls=True):
        self.tmp = tempfile.mkdtemp(prefix="crow-%s-t-" % name)
        self.pgdir = os.path.join(self.tmp, "pg")
        self.spool = os.path.join(self.tmp, "spool")
        os.mkdir(self.spool, 0o700)
        self.procs = {}
        self.logs = {}
        self.tls = tls
        if tls:
            subprocess.run([os.path.join(ROOT, "tools", "mkcert"), self.tmp], check=True)
        self.pg("start")
        self.pg("migrate", "mail", os.path.join(ROOT, "sql", "mail"),
                os.path.join(ROOT, "sql", "mail", "demo.sql"))
        self.conninfo = self.pg("conninfo", "mail").strip()
        self.smtp_port = free_port()
        self.pop3_port = free_port()
        self.smtp_extra = smtp_conf
        self.pop3_extra = pop3_conf

    def pg(self, *args, input=None):
        r = subprocess.run([PG, "-d", self.pgdir] + list(args), capture_output=True, text=True,
                           input=input)
        if r.returncode != 0:
            raise RuntimeError("tools/pg %s: %s%s" % (args, r.stdout, r.stderr))
        return r.stdout

    def sql(self, statement):
        """Runs STATEMENT in the mail database; returns psql's unaligned output."""
        return self.pg("psql", "-d", "mail", "-Atqc", statement).strip()

    def conf(self, name, port, extra):
        path = os.path.join(self.tmp, name + ".conf")
        with open(path, "w") as f:
            f.write('conninfo "%s"\nspool "%s"\nlisten 127.0.0.1:%d\nhostname mail.crow.test\n'
                    % (self.conninfo, self.spool, port))
            if name == "mmpop3d":
                f.write("default-domain crow.test\nlogin-delay 200ms\n")
            if self.tls:
                f.write('tls-cert "%s/cert.pem"\ntls-key "%s/key.pem"\n' % (self.tmp, self.tmp))
            f.write(extra)
        return path

    def start(self, name):
        port = self.smtp_port if name == "mmsmtpd" else self.pop3_port
        extra = self.smtp_extra if name == "mmsmtpd" else self.pop3_extra
        path = self.conf(name, port, extra)
        log = open(os.path.join(self.tmp, name + ".log"), "a+")
        before = self.log_text(log).count("serving (process")
        p = subprocess.Popen([os.path.join(BIN, name), "--foreground", "-f", path],
                             stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = p
        self.logs[name] = log
        if not wait_port("127.0.0.1", port, 60, p):
            raise RuntimeError("%s did not start: %s" % (name, self.log(name)))
        # The parent listens first; the serving child (store recovery) says when it serves.
        deadline = time.time() + 60
        while self.log_text(log).count("serving (process") <= before and time.time() < deadline:
            if p.poll() is not None:
                raise RuntimeError("%s ended: %s" % (name, self.log(name)))
            time.sleep(0.05)
        return p

    @staticmethod
    def log_text(log):
        log.flush()
        with open(log.name) as f:
            return f.read()

    def stop(self, name):
        p = self.procs.pop(name, None)
        if p:
            stop(p)

    def kill9(self, name):
        """SIGKILL to the serving child(ren) and the parent at once: a crash, no drain."""
        p = self.procs.pop(name)
        kids = []
        try:
            with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            pass
        for k in kids:
            try:
                os.kill(k, 9)
            except OSError:
                pass
        p.kill()
        p.wait(10)
        return kids

    def log(self, name):
        log = self.logs.get(name)
        if not log:
            return ""
        log.flush()
        with open(log.name) as f:
            return f.read()

    def close(self):
        for n in list(self.procs):
            self.stop(n)
        try:
            self.pg("destroy")
        except Exception:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


class Line:
    """A raw CRLF line client (bytes in, bytes out)."""

    def __init__(self, port, timeout=10, source=None):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                          source_address=(source, 0) if source else None)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                r, self.buf = self.buf, b""
                return r
            self.buf += chunk
        i = self.buf.index(b"\r\n")
        r, self.buf = self.buf[:i], self.buf[i + 2:]
        return r

    def reply(self):
        """Reads one SMTP reply (all its lines); returns (code, text of the last line)."""
        while True:
            l = self.line()
            if len(l) < 4 or l[3:4] != b"-":
                try:
                    return int(l[:3]), l
                except ValueError:
                    return None, l

    def send(self, data):
        self.s.sendall(data)

    def cmd(self, data):
        self.send(data)
        return self.reply()

    def closed(self, timeout=5):
        """True when the server closes the connection within TIMEOUT (leftover replies read)."""
        self.s.settimeout(timeout)
        try:
            while True:
                if not self.s.recv(65536):
                    return True
        except (socket.timeout, OSError) as e:
            return isinstance(e, ConnectionResetError)

    def close(self):
        self.s.close()
