#!/usr/bin/env python3
# mail-crash.t — nothing acknowledged is lost: a 1,000-message load over 4 connections, mmsmtpd
# killed with SIGKILL in the middle, restarted (start-up recovery), the rest sent; every
# message that got 250 is retrievable through mmpop3d byte-identical (after Received:), and
# the spool holds exactly one file per row (no orphan row or file, tmp/ empty).
# timeout: 240
import os
import poplib
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import Tap
from mailfix import Line, Mail

t = Tap()
m = Mail("crash", smtp_conf="message-rate-per-address 100000/1s\n", tls=False)
TOTAL, CONNS = 1000, 4
acked = {}                      # message number -> body
lock = threading.Lock()
next_n = [0]


def body(n):
    return (b"Message-ID: <%d@crash.test>\r\nSubject: load %d\r\n\r\n" % (n, n) +
            b"line %d of the load test\r\n" % n * (1 + n % 20))


def take():
    with lock:
        if next_n[0] >= TOTAL:
            return None
        next_n[0] += 1
        return next_n[0]


def sender(deadline):
    """Sends messages until TOTAL are taken, the server dies, or DEADLINE; records the 250s."""
    c = None
    n = None
    while time.time() < deadline:
        try:
            if c is None:
                c = Line(m.smtp_port, timeout=10)
                if c.reply()[0] != 220 or c.cmd(b"EHLO load.example\r\n")[0] != 250:
                    raise OSError("no session")
            if n is None:
                n = take()
                if n is None:
                    c.cmd(b"QUIT\r\n")
                    return
            if c.cmd(b"MAIL FROM:<load@load.example>\r\n")[0] != 250:
                raise OSError("MAIL")
            if c.cmd(b"RCPT TO:<demo@crow.test>\r\n")[0] != 250:
                raise OSError("RCPT")
            if c.cmd(b"DATA\r\n")[0] != 354:
                raise OSError("DATA")
            code, _ = c.cmd(body(n) + b".\r\n")
            if code == 250:
                with lock:
                    acked[n] = body(n)
                n = None
            else:
                raise OSError("end of data %s" % code)
        except (OSError, ValueError, TypeError):
            # the server is gone (or going): retry the same message on a new connection later
            if c is not None:
                try:
                    c.close()
                except OSError:
                    pass
            c = None
            time.sleep(0.05)


try:
    m.start("mmsmtpd")
    deadline = time.time() + 150
    threads = [threading.Thread(target=sender, args=(deadline,)) for _ in range(CONNS)]
    for th in threads:
        th.start()
    # kill -9 once a few hundred are in
    while len(acked) < 300 and time.time() < deadline:
        time.sleep(0.01)
    kids = m.kill9("mmsmtpd")
    killed_at = len(acked)
    # plant what a crash at the worst moments leaves: a half-written temporary file, a linked
    # file whose row never committed, and (never made by mmsmtpd's order, but recovered too) a
    # row whose file is gone
    open(os.path.join(m.spool, "tmp", "planted.tmp"), "wb").write(b"half")
    open(os.path.join(m.spool, "msg", "00", "planted.orphan"), "wb").write(b"no row")
    m.sql("INSERT INTO messages (mailbox_id, size, file, uidl) SELECT id, 1, 'msg/01/planted.norow', "
          "'planted.norow' FROM mailboxes WHERE name = 'INBOX' LIMIT 1")
    time.sleep(0.5)
    m.start("mmsmtpd")
    t.ok(not os.path.exists(os.path.join(m.spool, "tmp", "planted.tmp")) and
         not os.path.exists(os.path.join(m.spool, "msg", "00", "planted.orphan")) and
         m.sql("SELECT count(*) FROM messages WHERE uidl = 'planted.norow'") == "0",
         "start-up recovery removed the planted temporary file, orphan file and orphan row")
    for th in threads:
        th.join(max(1, deadline - time.time()))
    t.ok(killed_at >= 300 and kids, "killed mmsmtpd (serving process %s and parent) with SIGKILL after %d "
         "acknowledged messages" % (kids, killed_at))
    for l in m.log("mmsmtpd").splitlines():
        if "recovery" in l:
            print("# " + l)
    t.ok(len(acked) == TOTAL, "all %d messages acknowledged in the end (%d)" % (TOTAL, len(acked)))
    rows = int(m.sql("SELECT count(*) FROM messages"))
    files = sum(len(fs) for d, _, fs in os.walk(os.path.join(m.spool, "msg")))
    tmpfiles = os.listdir(os.path.join(m.spool, "tmp"))
    t.ok(rows >= len(acked), "rows (%d) >= acknowledged (%d)" % (rows, len(acked)))
    # A message stored but whose 250 was lost in the kill is a duplicate, never a loss; the
    # restart's recovery removed every file without a row.
    m.stop("mmsmtpd")
    m.start("mmsmtpd")         # recovery again, with no writer running
    files = sum(len(fs) for d, _, fs in os.walk(os.path.join(m.spool, "msg")))
    t.eq(files, rows, "one file per row after recovery (no orphan file)")
    missing = int(m.sql("SELECT count(*) FROM messages WHERE file IS NULL"))
    t.eq(os.listdir(os.path.join(m.spool, "tmp")), [], "tmp/ is empty after recovery")
    m.start("mmpop3d")
    p = poplib.POP3("127.0.0.1", m.pop3_port, timeout=30)
    p.user("demo")
    p.pass_("demo")
    n, _ = p.stat()
    got = {}
    bad = 0
    for i in range(1, n + 1):
        _, lines, _ = p.retr(i)
        raw = b"\r\n".join(lines) + b"\r\n"
        ls = raw.split(b"\r\n")
        j = 1
        while ls[j][:1] in (b" ", b"\t"):
            j += 1
        msg = b"\r\n".join(ls[j:])
        num = int(msg.split(b"<", 1)[1].split(b"@", 1)[0])
        if msg != body(num):
            bad += 1
        got[num] = True
    p.quit()
    lost = [k for k in acked if k not in got]
    t.ok(not lost, "every acknowledged message is retrievable (%d checked)" % len(acked), lost[:20])
    t.eq(bad, 0, "every retrieved message is byte-identical")
    # a spool that lost its files (wrong directory, lost disk) must not empty the database
    m.stop("mmsmtpd")
    rows = m.sql("SELECT count(*) FROM messages")
    os.rename(m.spool, m.spool + ".moved")
    os.mkdir(m.spool, 0o700)
    m.start("mmsmtpd")
    t.ok(m.sql("SELECT count(*) FROM messages") == rows and "rows kept" in m.log("mmsmtpd"),
         "recovery with an empty spool keeps the rows (and says so)", m.log("mmsmtpd")[-400:])
finally:
    m.close()
t.done()
