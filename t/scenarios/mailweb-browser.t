#!/usr/bin/env python3
# mailweb-browser.t — the issue's end-to-end check: a filter created through the mail web
# interface in headless Chromium (playwright-core, mailweb-browser.js) is stored for the user
# and makes mmsmtpd reject a matching message sent with swaks, while a message from another
# sender is accepted.  PostgreSQL is a private tools/pg cluster in a temporary directory.
# timeout: 500
import json
import re
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, ROOT, Tap, browser_ready, free_port, stop, wait_port
import mailweb_env as env

t = Tap()


def main():
    if not browser_ready(t, "mail web browser scenario"):
        return
    if not env.have_postgres():
        t.ok(False, "mail web browser scenario" + ": a dependency is missing (make deps installs it)", "PostgreSQL server binaries not installed (tools/deps/mail.list)")
        return
    tmp = tempfile.mkdtemp(prefix="crow-mailweb-browser-")
    pg = env.Cluster(os.path.join(tmp, "pg"))
    procs = []
    try:
        ok, out = pg.start()
        if not t.ok(ok, "private PostgreSQL cluster with the mail schema and demo data", out):
            return
        port = free_port()
        conf = env.write_conf(tmp, "httpd.conf", port, pg.conninfo())
        p = env.start_httpd(conf)
        procs.append(p)
        if not t.ok(wait_port("127.0.0.1", port, 60, p), "crow-httpd serves /mail"):
            return
        shot = os.path.join(tmp, "mail.png")
        r = subprocess.run(["node", os.path.join(ROOT, "t", "scenarios", "mailweb-browser.js"),
                            "http://127.0.0.1:%d" % port, os.path.join(tmp, "profile"), shot],
                           capture_output=True, text=True, timeout=240, env=dict(os.environ, CROW_ROOT=ROOT))
        try:
            seen = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            t.ok(False, "the browser driver reports", r.stdout[-1000:] + r.stderr[-1500:])
            return
        t.eq(seen.get("errors"), [], "the browser driver ran every step")
        st = seen.get("start") or {}
        t.ok(st.get("url", "").endswith("/mail/login") and st.get("status") == 200,
             "the browser is sent to the login page", st)
        w = seen.get("wrong") or {}
        t.eq(w.get("error"), "Unknown user or wrong password.", "a wrong password is said beside the field")
        t.eq(w.get("login"), "demo", "and the login name stays filled in")
        lg = seen.get("login") or {}
        t.ok(lg.get("url", "").endswith("/mail/") and lg.get("who") == "demo@crow.test",
             "demo logged in through the form", lg)
        t.eq(lg.get("mailboxes"), ["INBOX", "work"], "the mailboxes are listed")
        bad = seen.get("bad") or {}
        t.ok("address pattern" in (bad.get("sender") or ""), "a bad pattern: the error beside the field", bad)
        t.eq(bad.get("priority"), "Not a whole number.", "a bad priority: the error beside the field")
        t.eq(bad.get("kept"), "not a pattern", "the typed value is kept")
        f = seen.get("filter") or {}
        t.eq(f.get("notice"), "The filter was added.", "the filter form succeeds")
        t.eq(f.get("rows"), [["*@spam.example", "*", "reject"]], "the new filter is listed")
        t.ok((seen.get("logout") or {}).get("url", "").endswith("/mail/login"), "log out from the page")
        ad = seen.get("admin") or {}
        t.eq(ad.get("menu"), ["Domains", "Users", "Mailboxes", "Aliases", "Header filters"],
             "the administrator's menu")
        t.ok("regular expression" in (ad.get("regexError") or ""), "admin: a bad regex is explained beside it", ad)
        t.eq(ad.get("notice"), "The header filter was added.", "admin: header filter added from the browser")
        t.eq(pg.sql("SELECT u.name, d.name, f.sender_pattern, f.recipient_pattern, f.action FROM envelope_filters f"
                    " JOIN users u ON u.id = f.user_id JOIN domains d ON d.id = u.domain_id"),
             "demo|crow.test|*@spam.example|*|reject", "the database holds the browser's filter for demo@crow.test")
        t.eq(pg.sql("SELECT header, regex, action FROM header_filters"), "subject|buy (cheap|now)|reject",
             "and the administrator's header filter")
        if os.path.exists(shot):
            try:                # for a human eye; the checkout may not be writable (unprivileged runs)
                os.makedirs(os.path.join(ROOT, "build", "t"), exist_ok=True)
                shutil.copy(shot, os.path.join(ROOT, "build", "t", "mailweb.png"))
            except OSError:
                pass

        # -- the filter at work: mmsmtpd on the same database, driven by swaks
        smtpd = os.path.join(BIN, "mmsmtpd")
        if not os.path.exists(smtpd) or not shutil.which("swaks"):
            t.ok(False, "swaks through mmsmtpd" + ": a dependency is missing (make deps installs it)", "mmsmtpd not built or swaks not installed")
            return
        spool = os.path.join(tmp, "spool")
        os.mkdir(spool, 0o700)
        sport = free_port()
        sconf = os.path.join(tmp, "mmsmtpd.conf")
        with open(sconf, "w") as f:
            f.write('conninfo "%s"\nspool "%s"\nlisten 127.0.0.1:%d\nhostname mail.crow.test\n'
                    'envelope-filters yes\nheader-filters yes\ngreylist no\n' % (pg.conninfo(), spool, sport))
        slog = open(os.path.join(tmp, "mmsmtpd.log"), "w")
        sp = subprocess.Popen([smtpd, "--foreground", "-f", sconf], stdout=slog, stderr=subprocess.STDOUT)
        slog.close()
        procs.append(sp)
        if not t.ok(wait_port("127.0.0.1", sport, 60, sp), "mmsmtpd serves on the same database",
                    open(os.path.join(tmp, "mmsmtpd.log")).read()[-1500:]):
            return

        def swaks(sender, subject="hello"):
            return subprocess.run(["swaks", "--server", "127.0.0.1:%d" % sport, "--helo", "client.example",
                                   "--from", sender, "--to", "demo@crow.test",
                                   "--header", "Subject: " + subject, "--body", "mail web test"],
                                  capture_output=True, text=True, timeout=60)

        def stored():
            return int(pg.sql("SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
                              " JOIN users u ON u.id = b.user_id WHERE u.name = 'demo'") or "0")

        n0 = stored()
        r = swaks("spammer@spam.example")
        t.ok(r.returncode != 0 and re.search(r"<\*\* *550", r.stdout),
             "swaks from spammer@spam.example: rejected with 550 by the browser's filter", r.stdout[-1500:])
        t.eq(stored(), n0, "nothing stored for demo")
        r = swaks("friend@good.example")
        t.ok(r.returncode == 0 and re.search(r"<-  250", r.stdout), "swaks from friend@good.example: accepted",
             r.stdout[-1500:])
        t.eq(stored(), n0 + 1, "and stored in demo's mailbox")
        r = swaks("friend@good.example", subject="buy cheap watches")
        t.ok(r.returncode != 0 and re.search(r"<\*\* *550", r.stdout),
             "a Subject matching the administrator's header filter: rejected with 550", r.stdout[-1500:])
        t.eq(stored(), n0 + 1, "nothing more stored")

        # the accepted message shows in demo's mailbox usage
        import http.cookiejar, urllib.parse, urllib.request
        jar = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = jar.open("http://127.0.0.1:%d/mail/login" % port, timeout=30).read().decode()
        token = re.search(r'name="csrf" value="([0-9a-f]{64})"', page).group(1)
        page = jar.open("http://127.0.0.1:%d/mail/login" % port, timeout=30,
                        data=urllib.parse.urlencode({"csrf": token, "login": "demo", "password": "demo"}).encode()
                        ).read().decode()
        counts = re.findall(r'<td class="name">([^<]*)</td><td class="count">(\d+)</td>', page)
        t.eq(counts, [("INBOX", "%d" % (n0 + 1)), ("work", "0")], "demo's mailbox usage counts the accepted message")
    finally:
        for p in procs:
            stop(p)
        pg.destroy()
        shutil.rmtree(tmp, ignore_errors=True)


try:
    main()
except Exception:
    import traceback
    t.ok(False, "the scenario ran to its end", traceback.format_exc())
finally:
    t.done()
