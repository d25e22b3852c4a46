#!/usr/bin/env python3
# irclog.t — irclog against real IRC servers: ngircd (IPv6 and IPv4 networks, a keyed
# channel, every event kind from scripted clients, colour codes, UTF-8 and Latin-1, a 510-byte
# line, a nick collision, kill and restart -> reconnect and rejoin), inspircd under faketime
# (skewed @time= server-time tags), a scripted TLS server (CAP LS 302, SASL PLAIN, tags,
# paced CTCP replies), a second irclog whose injected clock crosses local midnight; the logs
# equal hand-written golden files, irclog2html parses every line, and a swank client's
# redefinition of the line formatter changes the next line logged.
# timeout: 300
import base64
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import signal
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, ROOT, Tap, demo_site_conf, free_port, stop, swank_eval, wait_port
from stat_common import Stat

t = Tap()
IRCLOG = os.path.join(BIN, "irclog")
FIX = os.path.join(ROOT, "t", "scenarios", "fixtures", "irclog")
ROOTUSER = os.geteuid() == 0
tmp = tempfile.mkdtemp(prefix="crow-irclog.")
os.chmod(tmp, 0o755)          # ngircd drops to nobody when started as root: it reads from here
LOGS = os.path.join(tmp, "irclog")     # $CROW_VAR/irclog, where crow-httpd's /irc/ looks
os.mkdir(LOGS)
ROLL = os.path.join(tmp, "roll")
os.mkdir(ROLL)
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)  (.*)$")
ENV = dict(os.environ, CROW_CACHE=os.path.join(ROOT, "build", "swank-cache"))
procs = []


def today():
    return time.strftime("%Y-%m-%d", time.gmtime())


def chan_file(net, chan, day=None, base=LOGS):
    return os.path.join(base, net, chan, (day or today()) + ".log")


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8").splitlines()
    except OSError:
        return []


def wait_lines(path, n, timeout=15):
    """Returns the lines of PATH once it has at least N (or what it has after TIMEOUT)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        lines = read_lines(path)
        if len(lines) >= n:
            return lines
        time.sleep(0.05)
    return read_lines(path)


def bodies(lines):
    """The lines without their timestamps; a line without one is kept whole (and fails)."""
    out = []
    for line in lines:
        m = STAMP.match(line)
        out.append(m.group(2) if m else "NO-TIMESTAMP " + line)
    return out


def golden(name, subst=None):
    with open(os.path.join(FIX, name), encoding="utf-8") as f:
        lines = f.read().splitlines()
    for k, v in (subst or {}).items():
        lines = [line.replace(k, v) for line in lines]
    return lines


class Client:
    """A scripted IRC client: raw lines out, lines in (PINGs answered)."""

    def __init__(self, nick, port, host="127.0.0.1"):
        self.nick = nick
        self.s = socket.create_connection((host, port), timeout=15)
        self.buf = b""
        self.seen = []
        self.send("NICK %s" % nick)
        self.send("USER %s 0 * :%s" % (nick, nick))
        self.registered = self.wait(lambda l: (" 001 %s " % nick).encode() in l) is not None

    def send(self, line):
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.s.sendall(line + b"\r\n")

    def wait(self, pred, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            while b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                self.seen.append(line)
                if line.startswith(b"PING "):
                    self.send(b"PONG " + line[5:])
                if pred(line):
                    return line
            self.s.settimeout(max(0.05, deadline - time.time()))
            try:
                chunk = self.s.recv(65536)
            except (socket.timeout, OSError):
                continue
            if not chunk:
                return None
            self.buf += chunk
        return None

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def ngircd(port):
    conf = os.path.join(tmp, "ngircd.conf")
    with open(conf, "w") as f:
        f.write("""[Global]
Name = irc.test
Info = crow irclog test
Listen = 127.0.0.1,::1
Ports = %d
MotdPhrase = crow test
[Limits]
MaxNickLength = 30
PingTimeout = 120
PongTimeout = 60
MaxConnectionsIP = 0
[Options]
DNS = no
Ident = no
PAM = no
""" % port)
    p = subprocess.Popen(["ngircd", "-n", "-f", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(p)
    return p


def inspircd(port):
    d = os.path.join(tmp, "insp")
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "inspircd.conf")
    with open(conf, "w") as f:
        f.write("""<server name="insp.test" description="crow test" network="CrowTest">
<admin name="crow" nick="crow" email="crow@localhost">
<bind address="127.0.0.1" port="%d" type="clients">
<connect allow="*" timeout="60" pingfreq="120" sendq="262144" recvq="8192" localmax="100" globalmax="100" threshold="1000" commandrate="100000" fakelag="no" limit="100" useident="no">
<performance netbuffersize="10240" somaxconn="128" softlimit="1024" quietbursts="yes">
<security hideserver="" allowcoreunload="no" genericoper="no">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="%s/ircd.log">
<pid file="%s/inspircd.pid">
<dns timeout="1">
<module name="cap">
<module name="ircv3">
<module name="ircv3_servertime">
""" % (port, d, d))
    # libfaketime preloaded directly: the faketime command forks, and stopping its PID left
    # inspircd running after the test.
    lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
    env = dict(os.environ, LD_PRELOAD=lib, FAKETIME="@2030-01-01 12:00:00")
    cmd = ["inspircd", "--config=" + conf, "--nofork"]
    if ROOTUSER:
        cmd.append("--runasroot")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    p.pidfile = os.path.join(d, "inspircd.pid")   # inspircd may go on in a child of its own
    procs.append(p)
    return p


# ---------------------------------------------------------------- a scripted TLS server

FAKE = {"sasl": None, "caps": None, "replies": [], "joined": False, "error": None, "lines": []}


def fake_server(lsock, ctx):
    """One connection: CAP LS 302 -> offers sasl, server-time; SASL PLAIN; 001; JOIN; tagged
    lines; ten CTCP PINGs at once, recording when each reply arrives."""
    try:
        raw, _ = lsock.accept()
        raw.settimeout(20)
        s = ctx.wrap_socket(raw, server_side=True)
        buf = b""

        def line():
            nonlocal buf
            while b"\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    raise EOFError("irclog closed")
                buf += chunk
            l, buf = buf.split(b"\r\n", 1)
            FAKE["lines"].append(l)
            return l.decode("utf-8", "replace")

        def out(text):
            s.sendall(text.encode() + b"\r\n")

        first = [line() for _ in range(3)]
        FAKE["first"] = first
        out(":fake.test CAP * LS :multi-prefix sasl=PLAIN,EXTERNAL server-time")
        req = line()
        FAKE["caps"] = req
        out(":fake.test CAP * ACK :" + req.split(":", 1)[1])
        if line() != "AUTHENTICATE PLAIN":
            raise ValueError("no AUTHENTICATE PLAIN")
        out("AUTHENTICATE +")
        FAKE["sasl"] = line()
        out(":fake.test 903 ifake :SASL authentication successful")
        if line() != "CAP END":
            raise ValueError("no CAP END")
        out(":fake.test 001 ifake :Welcome")
        j = line()
        FAKE["joined"] = j == "JOIN #fake"
        out("@time=2031-05-05T05:05:04.000Z :ifake!irclog@fake.test JOIN #fake")
        out("@time=2031-05-05T05:05:05.250Z;msgid=abc :x!x@fake.test PRIVMSG #fake :tagged")
        out("".join(":x!x@fake.test PRIVMSG ifake :\x01PING %d\x01\r\n" % i for i in range(10)).rstrip("\r\n"))
        t0 = time.time()
        while len(FAKE["replies"]) < 10 and time.time() - t0 < 15:
            l = line()
            if l.startswith("NOTICE x :\x01PING"):
                FAKE["replies"].append((time.time() - t0, l))
        # Silence since t0: irclog pings after ping-interval (3s), and without an answer
        # reconnects.
        t1 = t0
        while not line().startswith("PING "):
            pass
        FAKE["ping"] = time.time() - t1
        try:
            while True:
                line()
        except (EOFError, OSError):
            FAKE["dropped"] = time.time() - t1
        lsock.settimeout(15)
        again, _ = lsock.accept()
        FAKE["again"] = time.time() - t1
        again.close()
        lsock.close()
        s.close()
    except Exception as e:           # reported by the test below
        FAKE["error"] = repr(e)


def irclog_conf(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


try:
    port = free_port()
    iport = free_port()
    fport = free_port()
    sw = free_port()
    ng = ngircd(port)
    ins = inspircd(iport)
    t.ok(wait_port("127.0.0.1", port, 20, ng), "ngircd listens on 127.0.0.1:%d" % port)
    t.ok(wait_port("::1", port, 5, ng), "and on [::1]")
    insp_up = wait_port("127.0.0.1", iport, 20, ins)
    t.ok(insp_up, "inspircd (under faketime, 2030-01-01 12:00) listens")

    # The TLS server for SASL, tags and pacing.
    subprocess.run([os.path.join(ROOT, "tools", "mkcert"), os.path.join(tmp, "tls")], check=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(tmp, "tls", "cert.pem"), os.path.join(tmp, "tls", "key.pem"))
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", fport))
    lsock.listen(1)
    lsock.settimeout(60)
    fake = threading.Thread(target=fake_server, args=(lsock, ctx), daemon=True)
    fake.start()

    # mmstatd, where irclog counts its events.
    mmstat = Stat()
    t.ok(mmstat.start(), "mmstatd (for the event counts) started")

    # The scripted clients, before irclog comes: a squatter holds its nick.
    squatter = Client("irclog", port)
    alice = Client("alice", port)
    bob = Client("bob", port, "::1")
    t.ok(squatter.registered and alice.registered and bob.registered, "scripted clients registered (IPv4 and IPv6)")
    alice.send("JOIN #crow")
    alice.wait(lambda l: b" 366 " in l)
    alice.send("JOIN #keyed")
    alice.wait(lambda l: b" 366 " in l)
    alice.send("MODE #keyed +k sesame")
    alice.wait(lambda l: b"MODE #keyed +k" in l)
    alice.send("JOIN #v4")
    alice.wait(lambda l: b" 366 " in l)
    bob.send("JOIN #crow")
    bob.wait(lambda l: b" 366 " in l)
    bob.send("JOIN #keyed sesame")
    t.ok(bob.wait(lambda l: b" 366 " in l) is not None, "bob joins the keyed channel with its key")

    conf = irclog_conf(os.path.join(tmp, "irclog.conf"), """# irclog.t
log-dir irclog
log stderr
strip-colours yes
event-keyword lisp
event-nick carol
event-join carol
stat-dir %s
ping-interval 3s
flood-burst 3
flood-interval 300ms
reconnect-min 300ms
reconnect-max 2s
network local {
    server [::1]:%d
    nick irclog
    alt-nick irclog_alt
    channel "#crow"
    channel keyed sesame
}
network v4 {
    server 127.0.0.1:%d
    nick irclog4
    channel "#v4"
}
network insp {
    server 127.0.0.1:%d
    nick irclogi
    channel skew
}
network fake {
    server 127.0.0.1:%d
    tls yes
    tls-ca tls/cert.pem
    nick ifake
    sasl-user demo
    sasl-password "s3cret pass"
    channel "#fake"
}
""" % (mmstat.run, port, port, iport, fport))
    r = subprocess.run([IRCLOG, "-n", "-f", conf], capture_output=True, text=True, timeout=60)
    t.eq((r.returncode, r.stdout.strip()), (0, "irclog: configuration ok"), "irclog -n accepts the test config")
    bad = irclog_conf(os.path.join(tmp, "bad.conf"), "log-dir irclog\nnetwork x {\n  server 127.0.0.1:1\n  nick n\n  channel a,b\n}\n")
    r = subprocess.run([IRCLOG, "-n", "-f", bad], capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 1 and "bad.conf:5:" in r.stderr and "not a channel" in r.stderr,
         "irclog -n refuses a bad channel as file:line: message", r.stderr)
    r = subprocess.run([IRCLOG, "--help"], capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 0 and "log-dir" in r.stdout and "--swank" in r.stdout and "event-keyword" in r.stdout,
         "irclog --help lists the options and keys")
    r = subprocess.run([IRCLOG, "--version"], capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 0 and r.stdout.startswith("irclog "), "irclog --version", r.stdout)

    # The day-rollover irclog: its clock starts at 23:59:45 local time (TZ UTC+2).
    # As root it runs as nobody (privilege separation), logging into a directory nobody owns.
    if ROOTUSER:
        import pwd
        nobody = pwd.getpwnam("nobody")
        os.chown(ROLL, nobody.pw_uid, nobody.pw_gid)
    rport_conf = irclog_conf(os.path.join(tmp, "roll.conf"), ("user nobody\n" if ROOTUSER else "") + """log-dir roll
log stderr
time-zone local
strip-colours no
fake-clock 2026-06-30T21:59:45Z
network roll {
    server 127.0.0.1:%d
    nick roller
    channel "#roll"
}
""" % port)
    rolly = Client("rolly", port)
    rolly.send("JOIN #roll")
    rolly.wait(lambda l: b" 366 " in l)
    roll_t0 = time.time()
    rl = subprocess.Popen([IRCLOG, "--foreground", "-f", rport_conf], stdout=subprocess.DEVNULL,
                          stderr=open(os.path.join(tmp, "roll.err"), "w"), env=dict(ENV, TZ="CROW-2"))
    procs.append(rl)

    ilog_err = open(os.path.join(tmp, "irclog.err"), "w")
    il = subprocess.Popen([IRCLOG, "--foreground", "-f", conf, "--swank", str(sw)], stdout=subprocess.DEVNULL,
                          stderr=ilog_err, env=ENV)
    procs.append(il)

    C = chan_file("local", "#crow")
    K = chan_file("local", "#keyed")
    V = chan_file("v4", "#v4")
    t.ok(wait_lines(C, 1, 30) and wait_lines(K, 1, 10), "irclog joins #crow and #keyed (with the key)")
    t.ok(alice.wait(lambda l: l.startswith(b":irclog_alt!") and b"JOIN" in l) is not None,
         "nick collision: irclog took its alternate nick irclog_alt")

    # The day rollover: before the injected local midnight, then after it (local 23:59:45 at
    # start, TZ=UTC+2).
    rolled = rolly.wait(lambda l: l.startswith(b":roller!") and b"JOIN" in l, 10) is not None
    roll_seen = time.time()
    # The injected clock runs no later than 23:59:45 + the time since launch.
    before_ok = rolled and roll_seen - roll_t0 < 13.5
    rolly.send("PRIVMSG #roll :before midnight")

    n = 1

    def step(line, who=None, expect=1, path=C):
        """Sends LINE as WHO (alice) and waits for EXPECT more lines in PATH."""
        global n
        (who or alice).send(line)
        if path is C:
            n += expect
            return wait_lines(C, n)
        return None

    step("PRIVMSG #crow :hello, world")
    step("PRIVMSG #crow :\x01ACTION waves\x01")
    step("NOTICE #crow :notice to all")
    step("PRIVMSG #crow :\x0304red\x03 and \x02bold\x02 and \x1funder\x1f\x0f")
    step("PRIVMSG #crow :UTF-8: héllo wörld ✓")
    step(b"PRIVMSG #crow :Latin-1: caf\xe9")
    # As relayed to irclog the line is exactly 510 bytes (the most RFC 1459 allows).
    longline = "PRIVMSG #crow :" + ("0123456789" * 60)[:471]
    t.eq(len(":alice!~alice@127.0.0.1 " + longline), 510, "the relayed long line is 510 bytes")
    step(longline)
    step("PRIVMSG #crow :I like Lisp")
    step("TOPIC #crow :Crow's nest")
    step("MODE #crow +o bob")
    alice.send("PRIVMSG irclog_alt :\x01VERSION\x01")
    v = alice.wait(lambda l: b"NOTICE alice :\x01VERSION" in l)
    t.ok(v is not None and b"crow irclog 0.1" in v, "CTCP VERSION answered", v)
    alice.send("PRIVMSG irclog_alt :\x01PING 12345\x01")
    v = alice.wait(lambda l: b"NOTICE alice :\x01PING" in l)
    t.ok(v is not None and v.endswith(b"\x01PING 12345\x01"), "CTCP PING echoed", v)
    step("PRIVMSG #crow :\x01VERSION\x01")
    t.ok(alice.wait(lambda l: b"NOTICE alice :\x01VERSION" in l) is not None, "a channel CTCP VERSION is answered too")
    step("NICK robert", bob)
    wait_lines(K, 2)
    bob.send("PRIVMSG #keyed :in the keyed channel")
    wait_lines(K, 3)
    step("KICK #crow robert :behave")
    carol = Client("carol", port)
    step("JOIN #crow", carol)
    step("PRIVMSG #crow :hi from carol", carol)
    step("PART #crow :see you", carol)
    dave = Client("dave", port)
    step("JOIN #crow", dave)
    dave.send("JOIN #keyed sesame")
    wait_lines(K, 4)
    step("QUIT :bye now", dave)
    wait_lines(K, 5)
    step("KICK #crow irclog_alt :out", expect=3)      # kicked, irclog joins again (and gets the topic)
    v4 = wait_lines(V, 1)
    alice.send("PRIVMSG #v4 :over IPv4")
    wait_lines(V, 2)

    # inspircd: tags from a clock in 2030.
    S = chan_file("insp", "#skew", "2030-01-01")
    if insp_up:
        zed = Client("zed", iport)
        zed.send("JOIN #skew")
        zed.wait(lambda l: b" 366 " in l)
        wait_lines(S, 1, 15)
        zed.send("PRIVMSG #skew :from the future")
        skew = wait_lines(S, 3, 15)
        t.eq(bodies(skew), golden("skew.golden"), "inspircd: #skew logged into 2030-01-01.log")
        t.ok(skew and all(l.startswith("2030-01-01T12:0") for l in skew),
             "timestamps follow the skewed @time= tags (2030-01-01T12:0x)", skew)
        t.ok(not os.path.exists(chan_file("insp", "#skew")), "no file for today's date: the tags decided")
    else:
        t.ok(False, "inspircd did not start")

    # The scripted TLS server.
    deadline = time.time() + 30
    while time.time() < deadline and len(FAKE["replies"]) < 10 and FAKE["error"] is None:
        time.sleep(0.1)
    t.ok(FAKE["error"] is None, "TLS server conversation completed", FAKE["error"])
    t.eq(FAKE.get("first"), ["CAP LS 302", "NICK ifake", "USER irclog 0 * :crow irclog"],
         "registration starts with CAP LS 302, NICK, USER (over TLS)")
    t.eq(FAKE["caps"], "CAP REQ :server-time sasl", "requests server-time and sasl when offered")
    want = "AUTHENTICATE " + base64.b64encode(b"demo\0demo\0s3cret pass").decode()
    t.eq(FAKE["sasl"], want, "SASL PLAIN credentials")
    t.ok(FAKE["joined"], "joins #fake after 001")
    F = chan_file("fake", "#fake", "2031-05-05")
    t.eq(wait_lines(F, 2), golden("fake.golden"), "server-time tags decide the file and timestamps")
    times = [x[0] for x in FAKE["replies"]]
    t.eq(len(times), 10, "ten CTCP PINGs at once get ten replies")
    t.ok(len(times) == 10 and times[-1] - times[0] >= 1.5,
         "replies are paced (burst 3, then one per 300ms: >= 1.5s for ten)", times)
    fake.join(30)
    t.ok(2.9 <= FAKE.get("ping", 0) < 8, "a quiet server is pinged after ping-interval (3s)", FAKE.get("ping"))
    t.ok(5.5 <= FAKE.get("dropped", 0) < 12 and FAKE.get("again", 99) < 16,
         "no answer: irclog drops the connection (2 x ping-interval) and reconnects", (FAKE.get("dropped"), FAKE.get("again")))

    # The rollover: after the injected midnight.
    # Local midnight comes (60 - ss) seconds after irclog stamped its join 23:59:ss.
    first = read_lines(chan_file("roll", "#roll", "2026-06-30", ROLL))
    m = re.match(r"2026-06-30T23:59:(\d\d)", first[0]) if first else None
    midnight = roll_seen + (60 - int(m.group(1)) if m else 15) + 1.2
    while time.time() < midnight:
        time.sleep(0.1)
    rolly.send("PRIVMSG #roll :after \x02midnight\x02")
    R1 = chan_file("roll", "#roll", "2026-06-30", ROLL)
    R2 = chan_file("roll", "#roll", "2026-07-01", ROLL)
    r2 = wait_lines(R2, 1)
    r1 = read_lines(R1)
    if before_ok:
        t.eq(bodies(r1), ["*** roller (~irclog@127.0.0.1) has joined #roll", "<rolly> before midnight"],
             "rollover: the day before midnight (local, TZ=UTC+2) in 2026-06-30.log")
        t.ok(all(l.startswith("2026-06-30T23:59:") for l in r1), "its stamps are 23:59:xx local", r1)
    else:
        t.ok(False, "rollover: irclog joined too late to log before midnight (%.1fs)" % (time.time() - roll_t0))
    t.eq(bodies(r2), ["<rolly> after \x02midnight\x02"],
         "rollover: the next line opens 2026-07-01.log (strip-colours no: the bold codes stay)")
    t.ok(r2 and r2[0].startswith("2026-07-01T00:00:"), "stamped just after local midnight", r2)
    if ROOTUSER:
        t.eq(os.stat(R2).st_uid, nobody.pw_uid, "root: the rollover irclog logged as nobody")

    # Kill the IRC server and start it again: irclog reconnects and rejoins.
    ng.kill()
    ng.wait(10)
    for c in (squatter, alice, bob, carol, dave, rolly):
        c.close()
    time.sleep(1)
    ng = ngircd(port)
    t.ok(wait_port("127.0.0.1", port, 20, ng), "ngircd restarted")
    t.ok(len(wait_lines(C, n + 1, 30)) == n + 1 and len(wait_lines(K, 6, 10)) == 6,
         "irclog reconnects and rejoins #crow and #keyed")
    n += 1
    alice = Client("alice", port)
    step("JOIN #crow")
    step("PRIVMSG #crow :after restart")
    wait_lines(V, 3)

    # The reconnect waits double from reconnect-min up to reconnect-max.
    with open(os.path.join(tmp, "irclog.err")) as f:
        waits = [float(x) for x in re.findall(r"local: reconnecting in ([0-9.]+)s", f.read())]
    t.ok(len(waits) >= 2 and waits[0] == 0.3 and all(b == min(2 * a, 2.0) for a, b in zip(waits, waits[1:])),
         "reconnect backoff: 0.3s doubling up to 2s", waits)

    # Live redefinition through swank: the next line follows the new formatter.
    t.ok(wait_port("127.0.0.1", sw, 60, il), "swank listens in irclog")
    rep = swank_eval(sw, "(let ((old (function crow.irc:format-line))) "
                         "(setf (fdefinition 'crow.irc::original-format-line) old) "
                         "(defun crow.irc:format-line (e) "
                         "(concatenate 'string (crow.irc::original-format-line e) \" [live]\")))",
                     "CROW.IRC")
    t.ok(rep is not None and ":ok" in rep, "swank evaluates a new format-line", rep)
    step("PRIVMSG #crow :after swank")

    # The whole files against the golden ones.
    host6 = "[0::1]"
    t.eq(bodies(read_lines(C)), golden("crow.golden", {"H6": host6}), "#crow's log equals the golden file")
    t.eq(bodies(read_lines(K)), golden("keyed.golden", {"H6": host6}), "#keyed's log equals the golden file")
    t.eq(bodies(read_lines(V)), golden("v4.golden"), "#v4 (the IPv4 network) equals the golden file")
    ev = read_lines(os.path.join(LOGS, "events.log"))
    t.eq(bodies(ev), golden("events.golden"), "events.log has the keyword, nick and join events")
    want = {"irclog|keyword|lisp": 1, "irclog|join|carol": 1, "irclog|nick|carol": 1}
    deadline = time.time() + 15
    while time.time() < deadline:
        counts = mmstat.values("irclog|*")
        if counts == want:
            break
        time.sleep(0.1)
    t.eq(counts, want, "mmstatd counted each event (irclog|CATEGORY|DETAIL)")
    t.ok(all(STAMP.match(l) for l in read_lines(C) + read_lines(K)), "every line starts with an ISO-8601 timestamp")

    # irclog2html: every line parsed (nothing OTHER), and it renders.
    files = [C, K, V, S, F, R1, R2]
    check = subprocess.run(["/usr/bin/python3", "-c", """
import sys
from irclog2html.irclog2html import LogParser
bad = 0
for name in sys.argv[1:]:
    with open(name, 'rb') as f:
        for time, what, info in LogParser(f):
            if what is LogParser.OTHER or time is None:
                bad += 1
                print(name, what, info)
print('unparsed', bad)
""", *files], capture_output=True, text=True, timeout=60)
    t.ok(check.returncode == 0 and check.stdout.strip().endswith("unparsed 0"),
         "irclog2html's parser reads every line (none OTHER, all timed)", check.stdout + check.stderr)
    out = os.path.join(tmp, "crow.html")
    r = subprocess.run(["irclog2html", "-o", out, C], capture_output=True, text=True, timeout=60)
    html = open(out, encoding="utf-8").read() if os.path.exists(out) else ""
    t.ok(r.returncode == 0 and "héllo wörld ✓" in html and "is now known as" in html,
         "irclog2html renders #crow", r.stderr)


    # The web view: crow-httpd with the demo site's config shows the logs at /irc/.
    hport = free_port()
    demo_site_conf(os.path.join(tmp, "httpd.conf"), hport, drop=("log-pipe",))
    hp = subprocess.Popen([os.path.join(BIN, "crow-httpd"), "-f", os.path.join(tmp, "httpd.conf"), "--foreground"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(ENV, CROW_VAR=tmp))
    procs.append(hp)
    t.ok(wait_port("127.0.0.1", hport, 60, hp), "crow-httpd serves the demo site")

    def get(path):
        import urllib.request
        import urllib.error
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (hport, path), timeout=20) as r:
                return r.status, r.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            return e.code, ""

    st, body = get("/irc/")
    t.ok(st == 200 and 'href="/irc/local/"' in body and 'href="/irc/v4/"' in body and 'id="irc-q"' in body,
         "/irc/ lists the networks and has a search box", body[-800:])
    st, body = get("/irc/local/")
    t.ok(st == 200 and 'href="/irc/local/%23crow/"' in body and 'href="/irc/local/%23keyed/"' in body,
         "/irc/local/ lists its channels", body[-800:])
    st, body = get("/irc/local/%23crow/")
    t.ok(st == 200 and ('href="/irc/local/%%23crow/%s"' % today()) in body, "the channel lists its days", body[-800:])
    st, body = get("/irc/local/%%23crow/%s" % today())
    nlines = len(read_lines(C))
    t.ok(st == 200 and ('id="l%d"' % nlines) in body and 'href="#l1"' in body
         and "héllo wörld ✓" in body and "&lt;alice&gt;" in body and "Crow&#39;s nest" in body.replace("&#x27;", "&#39;"),
         "a day's log: one anchor per line (%d), escaped and UTF-8" % nlines, body[-1500:])
    st, body = get("/irc/local/%23crow/?q=LISP")
    t.ok(st == 200 and ('/irc/local/%%23crow/%s#l9' % today()) in body and 'id="hit-count">1<' in body,
         "search in a channel finds the line, linked to its anchor", body[-1500:])
    st, body = get("/irc/?q=midnight")
    t.ok(st == 200 and 'id="hit-count">0<' in body, "a search over every log (the rollover logs are elsewhere)", body[-600:])
    st, body = get("/irc/?q=from%20the%20future")
    t.ok(st == 200 and "/irc/insp/%23skew/2030-01-01#l3" in body, "search across networks", body[-800:])
    codes = [get(p)[0] for p in ("/irc/nonet/", "/irc/local/%23nochan/", "/irc/local/%23crow/1999-01-01",
                                 "/irc/local/..%2F..%2F/", "/irc/local/%23crow/../../../etc/passwd", "/ircx")]
    t.ok(codes[:3] == [404] * 3 and all(c in (400, 404) for c in codes[3:]),
         "unknown names get 404, traversal attempts 400 or 404", codes)

    # SIGTERM: irclog says QUIT and ends.
    watcher = Client("watcher", port)
    watcher.send("JOIN #crow")
    watcher.wait(lambda l: b" 366 " in l)
    il.terminate()
    q = watcher.wait(lambda l: b"QUIT" in l and l.startswith(b":irclog!"), 15)
    t.ok(q is not None and b"irclog stopping" in q, "SIGTERM: irclog says QUIT", q)
    t.eq(il.wait(15), 0, "and exits 0")
finally:
    try:
        mmstat.cleanup()
    except Exception:
        pass
    for p in procs:
        try:
            stop(p)
        except Exception:
            pass
        try:  # the inspircd this test started, by the PID it wrote to its own pid file
            with open(p.pidfile) as f:
                pid = int(f.read().split()[0])
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
        except (AttributeError, OSError, ValueError, IndexError):
            pass
    if os.environ.get("CROW_KEEP_TMP"):
        print("# kept", tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
t.done()
