#!/usr/bin/env python3
# mail-pop3.t — the round trip mmsmtpd -> store -> mmpop3d with real clients: messages sent
# with swaks and Python smtplib (8BITMIME, SMTPUTF8, lines starting with dots) come back
# through poplib byte-identical (after the Received: field mmsmtpd adds); fetchmail and
# curl pop3:// retrieve them too; UIDL is stable across sessions; DELE then a dropped
# connection deletes nothing, DELE then QUIT deletes rows and files; STAT/LIST/TOP/RSET/CAPA;
# one session per mailbox; failed-login delay and limit; STLS, and STLS command injection
# answered by nothing.
# timeout: 180
import os
import poplib
import smtplib
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import Tap
from mailfix import Line, Mail

t = Tap()
m = Mail("pop3", smtp_conf="reject-unauth-pipelining yes\n")


def strip_received(raw):
    """Drops the Received: field mmsmtpd prepends (it and its folded lines)."""
    lines = raw.split(b"\r\n")
    assert lines[0].startswith(b"Received: "), lines[0]
    i = 1
    while lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b"\r\n".join(lines[i:])


def pop(user="demo", password="demo"):
    p = poplib.POP3("127.0.0.1", m.pop3_port, timeout=20)
    p.user(user)
    p.pass_(password)
    return p


def retr(p, n):
    # poplib un-stuffs dots and splits lines; rebuild the exact bytes with CRLF.
    _, lines, _ = p.retr(n)
    return b"\r\n".join(lines) + b"\r\n"


try:
    m.start("mmsmtpd")
    m.start("mmpop3d")

    sent = []
    # 1: smtplib, 8BITMIME, lines starting with dots, a lone dot line, trailing spaces
    body1 = ("From: Alice <alice@client.example>\r\nTo: demo@crow.test\r\nSubject: dots\r\n"
             "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
             ".leading dot\r\n..two dots\r\n.\r\nend with spaces   \r\ncaf\u00e9 \u00fcber\r\n").encode("utf-8")
    with smtplib.SMTP("127.0.0.1", m.smtp_port, local_hostname="client.example", timeout=20) as s:
        s.ehlo("client.example")
        t.ok(s.has_extn("8bitmime") and s.has_extn("smtputf8") and s.has_extn("size")
             and s.has_extn("enhancedstatuscodes") and s.has_extn("starttls"),
             "EHLO offers 8BITMIME, SMTPUTF8, SIZE, ENHANCEDSTATUSCODES, STARTTLS")
        r = s.sendmail("alice@client.example", ["demo@crow.test"], body1, mail_options=["BODY=8BITMIME"])
        t.eq(r, {}, "smtplib 8BITMIME message accepted")
        sent.append(body1)
        # 2: SMTPUTF8 with a UTF-8 sender
        body2 = ("From: J\u00fcrgen <j\u00fcrgen@b\u00fccher.example>\r\nTo: demo@crow.test\r\n"
                 "Subject: gr\u00fc\u00dfe\r\n\r\nUTF-8 headers \u2713\r\n").encode("utf-8")
        r = s.sendmail("j\u00fcrgen@b\u00fccher.example", ["demo@crow.test"], body2,
                       mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        t.eq(r, {}, "smtplib SMTPUTF8 message accepted")
        sent.append(body2)
    # 3: swaks
    body3 = b"Subject: from swaks\r\nX-Test: 3\r\n\r\nswaks body\r\n.dot line\r\n"
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % m.smtp_port, "--helo", "client.example",
                        "--to", "demo@crow.test", "--from", "s@client.example", "--data", "-"],
                       input=body3, capture_output=True, timeout=60)
    t.ok(r.returncode == 0, "swaks message accepted", r.stdout[-500:])
    sent.append(body3)
    # swaks --data - sends the bytes as lines; normalise its line ends for the comparison
    t.eq(m.sql("SELECT string_agg(plain::text, ',' ORDER BY id) FROM messages"), "false,true,false",
         "messages with dot lines are stored for stuffing, the other for sendfile (both RETR paths)")
    p = pop()
    count, size = p.stat()
    t.eq(count, 3, "STAT: 3 messages")
    got = [strip_received(retr(p, i + 1)) for i in range(3)]
    t.eq(got[0], sent[0], "RETR 1 (8BITMIME, dot lines) is byte-identical")
    t.eq(got[1], sent[1], "RETR 2 (SMTPUTF8) is byte-identical")
    # swaks --data ends DATA with CRLF "." CRLF after the message's own last line end, so the
    # message it sends has one more empty line than its input
    t.eq(got[2], sent[2] + b"\r\n", "RETR 3 (swaks) is byte-identical to what swaks sent")
    raw1 = retr(p, 1)
    t.ok(raw1.startswith(b"Received: from client.example ([127.0.0.1])") and b"for <demo@crow.test>" in raw1,
         "Received: names the HELO, address and recipient", raw1[:200])
    _, lst, _ = p.list()
    sizes = [int(x.split()[1]) for x in lst]
    t.eq(sizes, [len(retr(p, i + 1)) for i in range(3)], "LIST sizes are the stored sizes")
    _, top, _ = p.top(1, 1)
    t.ok(b"Subject: dots" in top and top[-1] == b"..leading dot"[1:] and len(top) < 12,
         "TOP 1 1: headers and one body line (dot-stuffed on the wire)", top)
    _, uid1, _ = p.uidl()
    p.quit()
    p = pop()
    _, uid2, _ = p.uidl()
    t.eq(uid1, uid2, "UIDL is stable across sessions")
    p.quit()

    # --- curl and fetchmail
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "pop3://127.0.0.1:%d/1" % m.pop3_port,
                        "-u", "demo:demo"], capture_output=True, timeout=30)
    t.ok(r.returncode == 0 and strip_received(r.stdout) == sent[0], "curl pop3:// retrieves message 1 identically",
         r.stderr + r.stdout[:300])
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "pop3://127.0.0.1:%d/" % m.pop3_port,
                        "-u", "demo:demo"], capture_output=True, text=True, timeout=30)
    t.ok(r.returncode == 0 and len(r.stdout.strip().splitlines()) == 3, "curl pop3:// lists 3 messages",
         r.stderr + r.stdout)
    out = os.path.join(m.tmp, "fetched.mbox")
    rc = os.path.join(m.tmp, "fetchmailrc")
    with open(rc, "w") as f:
        f.write('set no syslog\npoll 127.0.0.1 protocol pop3 port %d user "demo" password "demo" '
                'sslproto "" keep mda "/bin/sh -c \'cat >> %s\'"\n' % (m.pop3_port, out))
    os.chmod(rc, 0o600)
    r = subprocess.run(["fetchmail", "-f", rc, "--idfile", os.path.join(m.tmp, "fetchids"),
                        "--nodetach", "--nosyslog"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, HOME=m.tmp))
    fetched = open(out, "rb").read() if os.path.exists(out) else b""
    t.ok(r.returncode == 0 and fetched.count(b"Subject: dots") == 1 and b"swaks body" in fetched,
         "fetchmail retrieves the 3 messages", r.stdout + r.stderr)

    # --- DELE then a dropped connection deletes nothing; DELE then QUIT deletes
    p = pop()
    p.dele(1)
    p.sock.shutdown(socket.SHUT_RDWR)     # dropped without QUIT (poplib's file keeps the fd)
    p.sock.close()
    time.sleep(0.5)
    p = pop()
    t.eq(p.stat()[0], 3, "DELE then a dropped connection: still 3 messages")
    p.dele(1)
    t.eq(p.stat()[0], 2, "STAT after DELE counts 2")
    p.rset()
    t.eq(p.stat()[0], 3, "RSET undeletes")
    p.dele(2)
    files_before = int(m.sql("SELECT count(*) FROM messages"))
    gone = m.sql("SELECT file FROM messages ORDER BY id OFFSET 1 LIMIT 1")
    p.quit()
    p = pop()
    t.eq(p.stat()[0], 2, "DELE then QUIT: 2 messages left")
    t.ok(not os.path.exists(os.path.join(m.spool, gone)), "the deleted message's file is gone")
    _, uid3, _ = p.uidl()
    t.eq([u.split()[1] for u in uid3], [u.split()[1] for u in uid1 if u.split()[0] != b"2"],
         "UIDLs of the remaining messages unchanged")

    # --- one session per mailbox
    try:
        q = pop()
        t.ok(False, "a second session on a locked mailbox is refused")
        q.quit()
    except poplib.error_proto as e:
        t.ok(b"IN-USE" in e.args[0], "a second session on a locked mailbox is refused", e)
    p.quit()

    # --- raw: CAPA, failed logins, STLS injection
    c = Line(m.pop3_port)
    c.line()
    c.send(b"CAPA\r\n")
    capa = []
    while True:
        l = c.line()
        capa.append(l)
        if l == b".":
            break
    t.ok(b"UIDL" in capa and b"TOP" in capa and b"STLS" in capa and b"USER" in capa, "CAPA lists UIDL TOP STLS USER", capa)
    start = time.time()
    for i in range(3):
        c.send(b"USER demo\r\n")
        c.line()
        c.send(b"PASS wrong\r\n")
        l = c.line()
    t.ok(l.startswith(b"-ERR") and time.time() - start >= 0.6 and c.closed(),
         "3 failed logins: -ERR each after the login delay, then closed", l)
    c = Line(m.pop3_port)
    c.line()
    c.send(b"STLS\r\nCAPA\r\n")
    l = c.line()
    ctx = ssl.create_default_context(cafile=os.path.join(m.tmp, "cert.pem"))
    tls = ctx.wrap_socket(c.s, server_hostname="localhost")
    tls.settimeout(1.5)
    try:
        extra = tls.recv(4096)
    except socket.timeout:
        extra = b""
    t.ok(l.startswith(b"+OK") and extra == b"", "STLS injection: the injected CAPA is not answered inside TLS",
         (l, extra))
    tls.settimeout(10)
    tls.sendall(b"USER demo\r\nPASS demo\r\nSTAT\r\n")
    got = b""
    while got.count(b"\r\n") < 3:
        got += tls.recv(4096)
    t.ok(got.splitlines()[2].startswith(b"+OK 2 "), "login and STAT inside TLS", got)
    tls.close()
finally:
    m.close()
t.done()
