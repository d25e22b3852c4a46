#!/usr/bin/env python3
# mail-stat.t — mmsmtpd and mmpop3d count their events in mmstatd (stat-dir): after N messages
# sent with smtplib, refused recipients, a failed and a good POP3 login and RETRs, the
# counters in a private mmstatd equal what was done (messages and bytes per domain, rejections
# per reason, logins per account, failed logins per address, retrieved messages and bytes,
# deletions), persistent; with mmstatd gone the servers answer exactly as before, promptly,
# and a server started with no mmstatd there serves too.
# timeout: 120
import os
import poplib
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import Tap
from mailfix import Mail
from stat_common import Stat

t = Tap()
st = Stat()
t.ok(st.start(), "mmstatd started")
conf = 'stat-dir "%s"\n' % st.run
m = Mail("stat", smtp_conf=conf, pop3_conf=conf, tls=False)
N = 4


def wait_counts(want, pattern, timeout=5):
    """The counters matching PATTERN once they equal WANT (sends are asynchronous), or the
    last report after TIMEOUT seconds."""
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        got = st.report(pattern)
        if got is not None and {k: v for k, (v, _) in got.items()} == want:
            break
        time.sleep(0.05)
    return got


def send(n, tag):
    """Sends N messages to demo@crow.test in one smtplib session; returns the refusals."""
    refused = []
    with smtplib.SMTP("127.0.0.1", m.smtp_port, local_hostname="client.example", timeout=10) as s:
        for i in range(n):
            body = ("Subject: %s %d\r\n\r\n%s\r\n" % (tag, i, "x" * (100 * (i + 1)))).encode()
            refused.append(s.sendmail("alice@client.example", ["demo@crow.test"], body))
    return refused


try:
    m.start("mmsmtpd")
    m.start("mmpop3d")

    t.eq(send(N, "stat"), [{}] * N, "%d messages accepted" % N)
    with smtplib.SMTP("127.0.0.1", m.smtp_port, local_hostname="client.example", timeout=10) as s:
        s.ehlo("client.example")
        s.mail("alice@client.example")
        t.eq(s.rcpt("nobody@crow.test")[0], 550, "unknown user refused")
        t.eq(s.rcpt("someone@elsewhere.example")[0], 550, "relaying refused")
        t.eq(s.rcpt("someone@elsewhere.example")[0], 550, "relaying refused again")
        s.rset()

    # POP3: a failed login, then demo's, RETR of two messages, DELE of one, QUIT.
    p = poplib.POP3("127.0.0.1", m.pop3_port, timeout=10)
    p.user("demo")
    try:
        p.pass_("wrong")
        t.ok(False, "wrong password refused")
    except poplib.error_proto:
        t.ok(True, "wrong password refused")
    p.quit()
    p = poplib.POP3("127.0.0.1", m.pop3_port, timeout=10)
    p.user("demo")
    p.pass_("demo")
    count, total = p.stat()
    t.eq(count, N, "POP3 sees the %d messages" % N)
    sizes = {int(n): int(sz) for n, sz in (x.split() for x in p.list()[1])}
    p.retr(1)
    p.retr(3)
    p.dele(2)
    p.quit()

    want = {"mmsmtpd|messages|crow.test": N, "mmsmtpd|bytes|crow.test": total,
            "mmsmtpd|rejected|unknown-user": 1, "mmsmtpd|rejected|relaying": 2}
    got = wait_counts(want, "mmsmtpd|*")
    t.eq({k: v for k, (v, _) in (got or {}).items()}, want,
         "mmsmtpd counted messages, bytes (= the stored sizes POP3 reports) and rejections")
    t.ok(got and all(pv == "p" for _, pv in got.values()), "mmsmtpd's counters are persistent")
    want = {"mmpop3d|logins|demo@crow.test": 1, "mmpop3d|failed-logins|127.0.0.1": 1,
            "mmpop3d|retrieved|demo@crow.test": 2,
            "mmpop3d|retrieved-bytes|demo@crow.test": sizes[1] + sizes[3],
            "mmpop3d|deleted|demo@crow.test": 1}
    got = wait_counts(want, "mmpop3d|*")
    t.eq({k: v for k, (v, _) in (got or {}).items()}, want,
         "mmpop3d counted the login, the failed login, RETRs (messages, bytes) and DELE")

    # mmstatd gone: same answers, no noticeable delay.
    st.stop()
    t0 = time.time()
    t.eq(send(2, "down"), [{}, {}], "mmstatd down: messages still accepted")
    p = poplib.POP3("127.0.0.1", m.pop3_port, timeout=10)
    p.user("demo")
    t.ok(p.pass_("demo").startswith(b"+OK"), "mmstatd down: POP3 login still answers +OK")
    p.retr(1)
    p.quit()
    took = time.time() - t0
    t.ok(took < 3, "mmstatd down: 2 messages and a POP3 session took %.2f s (< 3 s)" % took)

    # A server started while no mmstatd answers serves too (and says so in its log).
    m.stop("mmsmtpd")
    m.start("mmsmtpd")
    t.eq(send(1, "absent"), [{}], "mmsmtpd started without mmstatd: message accepted")
    t.ok("no mmstatd answers" in m.log("mmsmtpd"), "mmsmtpd logged that no mmstatd answers")
    t.ok("statistics to mmstatd" in m.log("mmpop3d"), "mmpop3d logged its statistics handle")
finally:
    m.close()
    st.cleanup()
t.done()
