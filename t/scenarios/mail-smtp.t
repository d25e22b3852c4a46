#!/usr/bin/env python3
# mail-smtp.t — mmsmtpd against a private PostgreSQL (tools/pg) with the demo data, driven by
# swaks and raw sockets: local mail accepted and relaying refused (also %-hacks, source routes,
# quoted local parts, address literals), PIPELINING, STARTTLS, SIZE, too many recipients;
# early talker, unauthorised pipelining, every SMTP smuggling end-of-data variant and bare
# CR/LF in commands; HELO syntax and impersonation; line, header and hop limits; per-address
# message rate and greylisting (a second instance); header filter rules (reject, discard, tag)
# and envelope filters (reject, discard); STARTTLS command injection answered by nothing.
# timeout: 240
import os
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import Tap, free_port, wait_port
from mailfix import Line, Mail

t = Tap()
port6 = free_port("::1")
m = Mail("smtp", smtp_conf="greet-pause 400ms\nmax-message-size 64K\nmax-recipients 3\n"
                           "max-header-length 2K\nmax-hops 10\nlisten [::1]:%d\n" % port6)


def swaks(*args, port=None):
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % (port or m.smtp_port),
                        "--helo", "client.example", "--timeout", "20"] + list(args),
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def count(where="true"):
    return int(m.sql("SELECT count(*) FROM messages WHERE %s" % where))


def session(port=None, helo=True, wait_banner=True, source=None):
    c = Line(port or m.smtp_port, source=source)
    if wait_banner:
        code, _ = c.reply()
        assert code == 220, code
    if helo:
        code, _ = c.cmd(b"EHLO client.example\r\n")
        assert code == 250, code
    return c


def envelope(c, rcpt=b"demo@crow.test", sender=b"alice@client.example"):
    return [c.cmd(b"MAIL FROM:<" + sender + b">\r\n")[0], c.cmd(b"RCPT TO:<" + rcpt + b">\r\n")[0]]


try:
    # --- -n checks the configuration
    from tap import BIN
    good = m.conf("mmsmtpd", m.smtp_port, m.smtp_extra)
    r = subprocess.run([os.path.join(BIN, "mmsmtpd"), "-n", "-f", good], capture_output=True, text=True)
    t.ok(r.returncode == 0 and "configuration ok" in r.stdout, "mmsmtpd -n: a good configuration is ok", r.stderr)
    bad = os.path.join(m.tmp, "bad.conf")
    with open(bad, "w") as f:
        f.write('spool "%s"\nmax-recipients none\n' % m.spool)
    r = subprocess.run([os.path.join(BIN, "mmsmtpd"), "-n", "-f", bad], capture_output=True, text=True)
    t.ok(r.returncode == 1 and "bad.conf:2:" in r.stderr and "conninfo" in r.stderr,
         "mmsmtpd -n: errors as file:line (bad value, missing conninfo)", r.stderr)
    r = subprocess.run([os.path.join(BIN, "mmpop3d"), "--help"], capture_output=True, text=True)
    t.ok(r.returncode == 0 and "default-domain" in r.stdout, "mmpop3d --help lists its keys")
    m.start("mmsmtpd")

    # --- swaks: local accepted, relay refused, unknown user, pipelining, STARTTLS, SIZE
    rc, out = swaks("--to", "demo@crow.test", "--from", "alice@client.example")
    t.ok(rc == 0 and "250 2.0.0 Ok: queued as" in out, "swaks: mail to demo@crow.test accepted", out)
    t.eq(count(), 1, "swaks: one row stored")
    rc, out = swaks("--to", "someone@example.org")
    t.ok(rc != 0 and "550 5.7.1" in out, "swaks: relaying to example.org refused with 550 5.7.1", out)
    rc, out = swaks("--to", "nobody@crow.test")
    t.ok(rc != 0 and "550 5.1.1" in out, "swaks: unknown local user gets 550 5.1.1", out)
    rc, out = swaks("--to", "postmaster@crow.test")
    t.ok(rc == 0, "swaks: alias postmaster accepted", out)
    rc, out = swaks("--to", "info-sales@crow.test")
    t.ok(rc == 0, "swaks: pattern alias info-* accepted", out)
    rc, out = swaks("--to", "demo+work@crow.test")
    t.ok(rc == 0, "swaks: demo+work accepted (mailbox work)", out)
    t.eq(count("mailbox_id = (SELECT id FROM mailboxes WHERE name = 'work')"), 1,
         "swaks: demo+work stored in mailbox work")
    rc, out = swaks("--to", "demo@crow.test", "--pipeline")
    t.ok(rc == 0 and "PIPELINING" in out, "swaks --pipeline: accepted", out)
    rc, out = swaks("--to", "demo@crow.test", "--tls", "--tls-verify", "--tls-ca-path",
                    os.path.join(m.tmp, "cert.pem"), "--tls-sni", "localhost")
    t.ok(rc == 0 and "TLS started" in out, "swaks --tls: STARTTLS and delivery", out)
    rc, out = swaks("--to", "demo@crow.test", "--body", ("y" * 900 + "\n") * 80)
    t.ok(rc != 0 and "552 5.3.4" in out, "swaks: 72 KiB over the 64K SIZE limit gets 552", out)
    c = session()
    t.eq(c.cmd(b"MAIL FROM:<a@client.example> SIZE=999999\r\n")[0], 552,
         "SIZE=999999 declared at MAIL gets 552")
    t.eq(c.cmd(b"MAIL FROM:<a@client.example> SIZE=100 BODY=8BITMIME SMTPUTF8\r\n")[0], 250,
         "SIZE, BODY=8BITMIME, SMTPUTF8 parameters accepted")
    codes = [c.cmd(b"RCPT TO:<demo@crow.test>\r\n")[0] for _ in range(4)]
    t.eq(codes, [250, 250, 250, 452], "the 4th recipient over max-recipients 3 gets 452")
    rc, out = swaks("--to", "demo@crow.test,demo+work@crow.test,postmaster@crow.test,info-a@crow.test")
    t.ok("452 4.5.3" in out, "swaks: 4 recipients, the 4th gets 452 4.5.3", out)
    t.eq(c.cmd(b"VRFY demo\r\n")[0], 252, "VRFY answers 252")
    t.eq(c.cmd(b"HELP\r\n")[0], 214, "HELP answers 214")
    t.eq(c.cmd(b"NOOP\r\n")[0], 250, "NOOP answers 250")
    t.eq(c.cmd(b"RSET\r\n")[0], 250, "RSET answers 250")
    t.eq(c.cmd(b"DATA\r\n")[0], 503, "DATA without MAIL gets 503")
    t.eq(c.cmd(b"EXPN x\r\n")[0], 502, "EXPN gets 502")
    t.eq(c.cmd(b"QUIT\r\n")[0], 221, "QUIT answers 221")
    c.close()

    # --- relay tricks at RCPT
    c = session()
    c.cmd(b"MAIL FROM:<a@client.example>\r\n")
    for addr, what in [(b"<demo%example.org@crow.test>", "%-hack"),
                       (b"<@relay.example,@crow.test:demo@crow.test>", "source route"),
                       (b"<\"demo@example.org\"@crow.test>", "quoted local part"),
                       (b"<example.org!demo@crow.test>", "bang path"),
                       (b"<demo@[127.0.0.1]>", "address literal"),
                       (b"<demo@crow.test.example.org>", "look-alike domain")]:
        code, text = c.cmd(b"RCPT TO:" + addr + b"\r\n")
        t.ok(code == 550 and b"5.7.1" in text, "RCPT %s refused with 550 5.7.1" % what, text)
    c.close()

    # --- early talker (greet-pause 400ms)
    c = Line(m.smtp_port)
    c.send(b"EHLO fast.example\r\n")
    code, text = c.reply()
    t.ok(code == 554 and c.closed(), "early talker: 554 and closed", text)

    # --- unauthorised pipelining
    c = session(helo=False)
    t.eq(c.cmd(b"HELO client.example\r\n")[0], 250, "HELO accepted")
    c.send(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<demo@crow.test>\r\n")
    code, text = c.reply()
    t.ok(code == 554 and b"pipelining" in text.lower() and c.closed(),
         "pipelining after HELO (not offered): 554 and closed", text)
    c = session()
    before = count()
    c.send(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<demo@crow.test>\r\nDATA\r\n")
    codes = [c.reply()[0] for _ in range(3)]
    t.eq(codes, [250, 250, 354], "pipelining after EHLO: MAIL, RCPT, DATA in one segment")
    t.eq(c.cmd(b"Subject: p\r\n\r\npipelined\r\n.\r\n")[0], 250, "pipelined message accepted")
    c.send(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<demo@crow.test>\r\nDATA\r\nSubject: x\r\n\r\nearly\r\n.\r\n")
    codes = [c.reply()[0] for _ in range(3)]
    t.ok(codes[:2] == [250, 250] and codes[2] == 554 and c.closed(),
         "message sent with DATA before 354: 554 and closed", codes)
    t.eq(count(), before + 1, "only the legitimately pipelined message was stored")

    # --- SMTP smuggling: none of these ends DATA early; each message is refused
    variants = [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r", b"\r\n.\n", b"\r.\r\n", b".\n"]
    for v in variants:
        before = count()
        c = session()
        envelope(c)
        c.cmd(b"DATA\r\n")
        c.send(b"Subject: smuggle\r\n\r\nfirst" + v +
               b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<demo@crow.test>\r\nDATA\r\n"
               b"Subject: smuggled\r\n\r\nsmuggled\r\n.\r\n")
        code, text = c.reply()
        code2, _ = c.cmd(b"QUIT\r\n")
        t.ok(code == 554 and b"5.6.0" in text and code2 == 221 and count() == before,
             "smuggling %r: one 554 5.6.0 reply, nothing stored" % v, (code, text, code2))
        c.close()
    t.eq(count("sender = 'evil@attacker.example'"), 0, "no smuggled message stored")
    c = session()
    t.eq(c.cmd(b"NOOP\rRSET\r\n")[0], 500, "bare CR in a command: 500")
    t.eq(c.cmd(b"NOOP\nRSET\r\n")[0], 500, "bare LF in a command: 500")
    t.eq(c.cmd(b"NOOP\r\n")[0], 250, "the session goes on after a bare CR/LF")
    c.close()

    # --- HELO checks
    c = session(helo=False, source="127.0.0.2")
    t.eq(c.cmd(b"EHLO bad_name!@here\r\n")[0], 501, "EHLO with a malformed name: 501")
    t.eq(c.cmd(b"EHLO mail.crow.test\r\n")[0], 550, "EHLO impersonating our hostname: 550")
    t.eq(c.cmd(b"EHLO [127.0.0.1]\r\n")[0], 550, "EHLO impersonating our address (from 127.0.0.2): 550")
    t.eq(c.cmd(b"MAIL FROM:<a@client.example>\r\n")[0], 503, "MAIL before a good HELO: 503")
    t.eq(c.cmd(b"EHLO [192.0.2.1]\r\n")[0], 250, "EHLO with another address literal: 250")
    c.close()
    c = session(helo=False)
    t.eq(c.cmd(b"EHLO [127.0.0.1]\r\n")[0], 250,
         "EHLO [127.0.0.1] from 127.0.0.1 itself (a client on this host, e.g. smtplib): 250")
    c.close()

    # --- line, header and hop limits
    def send_message(body, rcpt=b"demo@crow.test", sender=b"alice@client.example"):
        c = session()
        envelope(c, rcpt, sender)
        c.cmd(b"DATA\r\n")
        r = c.cmd(body + b"\r\n.\r\n")
        c.cmd(b"QUIT\r\n")
        c.close()
        return r

    code, text = send_message(b"Subject: long\r\n\r\n" + b"x" * 1200)
    t.ok(code == 554 and b"line" in text, "a 1,200-octet line: 554", text)
    code, text = send_message(b"Subject: " + b"h" * 900 + (b"\r\n " + b"h" * 900) * 2 + b"\r\n\r\nbody")
    t.ok(code == 554 and b"Header" in text, "a 2.7 KiB folded header field over 2K: 554", text)
    code, text = send_message(b"Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n" * 10 +
                              b"Subject: loop\r\n\r\nbody")
    t.ok(code == 554 and b"5.4.6" in text, "10 Received: fields at max-hops 10: 554 5.4.6", text)
    code, text = send_message(b"Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n" * 9 +
                              b"Subject: ok\r\n\r\nbody")
    t.eq(code, 250, "9 Received: fields: accepted")

    # --- header filter rules (mmsmtpd caches rules and resolutions: the changes below must
    # reach it through NOTIFY, its watcher must be connected for the test to mean that)
    t.ok("caches on, dropped on NOTIFY mail_changed" in m.log("mmsmtpd"), "the cache watcher is connected",
         m.log("mmsmtpd")[-500:])
    m.sql("INSERT INTO header_filters (header, regex, action, priority) VALUES "
          "('subject', 'cheap\\s+pills', 'reject', 1), ('subject', '^newsletter', 'discard', 2), "
          "('from', '@lists\\.example$', 'tag', 3)")
    m.sql("UPDATE header_filters SET tag = 'list' WHERE action = 'tag'")
    time.sleep(0.3)     # mmsmtpd's caches are dropped on NOTIFY mail_changed (sql/mail/004)
    before = count()
    code, text = send_message(b"Subject: Cheap   PILLS today\r\n\r\nbuy")
    t.ok(code == 550 and count() == before, "header filter reject: 550, not stored", text)
    code, text = send_message(b"Subject: newsletter #5\r\n\r\nnews")
    t.ok(code == 250 and count() == before, "header filter discard: 250, not stored", text)
    code, text = send_message(b"From: x@lists.example\r\nSubject: hello\r\n\r\nlist mail")
    f = m.sql("SELECT file FROM messages ORDER BY id DESC LIMIT 1")
    with open(os.path.join(m.spool, f), "rb") as fh:
        stored = fh.read()
    t.ok(code == 250 and b"\r\nX-Crow-Tag: list\r\n" in stored, "header filter tag: stored with X-Crow-Tag",
         stored[:300])

    # --- envelope filters (demo's)
    m.sql("INSERT INTO envelope_filters (user_id, sender_pattern, recipient_pattern, action, priority) "
          "SELECT id, '*@spam.example', '*', 'reject', 1 FROM users WHERE name = 'demo' UNION ALL "
          "SELECT id, '*@junk.example', 'demo@*', 'discard', 2 FROM users WHERE name = 'demo'")
    time.sleep(0.3)
    c = session()
    codes = envelope(c, sender=b"bob@spam.example")
    t.eq(codes, [250, 550], "envelope filter reject: 550 at RCPT")
    c.close()
    before = count()
    code, text = send_message(b"Subject: junk\r\n\r\njunk", sender=b"bob@junk.example")
    t.ok(code == 250 and count() == before, "envelope filter discard: 250, not stored", text)
    code, text = send_message(b"Subject: fine\r\n\r\nfine", sender=b"bob@good.example")
    t.ok(code == 250 and count() == before + 1, "no filter matches: stored", text)

    # --- STARTTLS command injection: nothing answered inside TLS
    c = session()
    c.send(b"STARTTLS\r\nRSET\r\n")
    code, text = c.reply()
    t.ok(code == 554 and c.closed(), "STARTTLS\\r\\nRSET in one segment: refused as unauthorised pipelining", text)

    # --- IPv6, and SIGHUP: a new serving process (no second recovery), mail still accepted
    import smtplib      # (Debian's swaks lacks IO::Socket::INET6)
    with smtplib.SMTP("::1", port6, local_hostname="client.example", timeout=20) as sm:
        refused = sm.sendmail("a@client.example", ["demo@crow.test"], b"Subject: v6\r\n\r\nover IPv6\r\n")
    t.eq(refused, {}, "smtplib over [::1]: accepted")
    import signal
    m.procs["mmsmtpd"].send_signal(signal.SIGHUP)
    deadline = time.time() + 30
    while "generation 1) finished" not in m.log("mmsmtpd") and time.time() < deadline:
        time.sleep(0.1)
    rc, out = swaks("--to", "demo@crow.test")
    t.ok(rc == 0 and "generation 1) finished" in m.log("mmsmtpd") and
         m.log("mmsmtpd").count("store recovery") <= 1, "SIGHUP: replaced serving process accepts mail", out[-300:])
    # --- a second instance: rate limit, greylisting, no pipelining check (injection discarded)
    m2port = free_port()
    conf2 = m.conf("mmsmtpd2", m2port, "message-rate-per-address 3/1m\ngreylist yes\n"
                   "greylist-delay 1s\nreject-unauth-pipelining no\nmax-per-address 2\n")
    log2 = open(os.path.join(m.tmp, "mmsmtpd2.log"), "w")
    from tap import BIN, stop
    p2 = subprocess.Popen([os.path.join(BIN, "mmsmtpd"), "--foreground", "-f", conf2],
                          stdout=log2, stderr=subprocess.STDOUT)
    try:
        t.ok(wait_port("127.0.0.1", m2port, 60, p2), "second mmsmtpd (rate, greylisting) started")
        time.sleep(0.5)
        held = [session(m2port, helo=False), session(m2port, helo=False)]
        c = Line(m2port)
        code, text = c.reply()
        t.ok(code == 421 and c.closed(), "max-per-address 2: the third connection gets 421", text)
        for h in held:
            h.close()
        time.sleep(0.5)
        c = session(m2port)
        t.eq(envelope(c)[1], 451, "greylisting: first attempt gets 451")
        c.cmd(b"RSET\r\n")
        time.sleep(1.3)
        t.eq(envelope(c)[1], 250, "greylisting: retry after the delay gets 250")
        c.cmd(b"RSET\r\n")
        t.eq(envelope(c)[1], 250, "greylisting: the triplet stays accepted")
        c.cmd(b"RSET\r\n")
        t.eq(c.cmd(b"MAIL FROM:<alice@client.example>\r\n")[0], 452,
             "message rate 3/1m: the 4th MAIL gets 452")
        c.close()
        c = session(m2port)
        c.send(b"STARTTLS\r\nRSET\r\n")
        code, _ = c.reply()
        ctx = ssl.create_default_context(cafile=os.path.join(m.tmp, "cert.pem"))
        tls = ctx.wrap_socket(c.s, server_hostname="localhost")
        tls.settimeout(1.5)
        try:
            extra = tls.recv(4096)
        except socket.timeout:
            extra = b""
        t.ok(code == 220 and extra == b"", "STARTTLS injection: the injected RSET is not answered inside TLS",
             (code, extra))
        tls.sendall(b"EHLO client.example\r\n")
        tls.settimeout(10)
        got = b""
        while b"250 " not in got:
            got += tls.recv(4096)
        t.ok(b"STARTTLS" not in got and b"PIPELINING" in got, "EHLO inside TLS answers, no STARTTLS offered", got)
        tls.close()
    finally:
        stop(p2)
finally:
    m.close()
t.done()
