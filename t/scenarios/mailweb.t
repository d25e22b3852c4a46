#!/usr/bin/env python3
# mailweb.t — the mail web interface (crow.mailweb at /mail/) on crow-httpd over a private
# PostgreSQL cluster (tools/pg in a temporary directory, schema sql/mail and its demo data):
# real HTTP clients with cookie jars log in, add and delete envelope filters, fail CSRF checks
# and form validation; the administrator adds domains, users, mailboxes, aliases and header
# filters; every change is checked in the database with psql.  Then /mail/ answers 503 when no
# database is configured or reachable.  (mailweb-browser.t drives the same app in Chromium.)
# timeout: 400
import http.cookiejar
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, ROOT, Tap, free_port, stop, wait_port
import mailweb_env as env

t = Tap()


class Client:
    """A browser-like HTTP client: a cookie jar, redirects followed, errors as responses."""

    def __init__(self, base):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def request(self, path, fields=None, headers=None):
        data = urllib.parse.urlencode(fields).encode() if fields is not None else None
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, r.geturl(), r.read().decode("utf-8"), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.geturl(), e.read().decode("utf-8"), dict(e.headers)

    def get(self, path):
        return self.request(path)

    def post(self, path, fields):
        return self.request(path, fields)

    def cookie(self, name="crow-mail"):
        for c in self.jar:
            if c.name == name:
                return c
        return None


def csrf(page):
    m = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    return m.group(1) if m else None


def field_error(page, name):
    m = re.search(r'<span class="error" id="err-%s">([^<]*)</span>' % re.escape(name), page)
    return m.group(1) if m else None


def login(c, user, password):
    s, url, page, _ = c.get("/mail/login")
    return c.post("/mail/login", {"csrf": csrf(page) or "", "login": user, "password": password})


def main():
    if not env.have_postgres():
        t.ok(False, "mail web scenario" + ": a dependency is missing (make deps installs it)", "PostgreSQL server binaries not installed (tools/deps/mail.list)")
        return
    tmp = tempfile.mkdtemp(prefix="crow-mailweb-")
    pg = env.Cluster(os.path.join(tmp, "pg"))
    procs = []
    try:
        ok, out = pg.start()
        if not t.ok(ok, "private PostgreSQL cluster started, schema and demo data loaded", out):
            return
        sql = pg.sql
        port = free_port()
        conf = env.write_conf(tmp, "httpd.conf", port, pg.conninfo())
        p = env.start_httpd(conf)
        procs.append(p)
        if not t.ok(wait_port("127.0.0.1", port, 60, p), "crow-httpd serves the demo site with /mail"):
            return
        base = "http://127.0.0.1:%d" % port
        c = Client(base)

        # -- logged out: everything leads to the login page
        s, url, page, hdr = c.get("/mail")
        t.ok(s == 200 and url.endswith("/mail/login"), "/mail -> /mail/ -> the login page", (s, url))
        t.ok("<title>crow mail — Log in</title>" in page and csrf(page), "the login form carries a CSRF token")
        t.eq(hdr.get("Cache-Control"), "no-store", "pages are not cached")
        t.ok("frame-ancestors 'none'" in (hdr.get("Content-Security-Policy") or ""), "pages refuse framing (CSP)")
        sc = c.cookie()
        t.ok(sc is not None and sc.path == "/mail" and sc.has_nonstandard_attr("HttpOnly"),
             "the session cookie is crow-mail, Path=/mail, HttpOnly", sc and (sc.path, sc._rest))
        s, url, page, _ = c.get("/mail/admin/users")
        t.ok(url.endswith("/mail/login"), "an admin page logged out -> login", url)

        # -- CSRF on the login form itself
        s, url, page, _ = c.post("/mail/login", {"login": "demo", "password": "demo"})
        t.ok(s == 403 and "CSRF" in page, "login without the token: 403, CSRF explained", (s, page[-400:]))
        s, url, page, _ = c.post("/mail/login", {"login": "demo", "password": "demo", "csrf": "0" * 64})
        t.eq(s, 403, "login with a wrong token: 403")
        other = Client(base)
        other.get("/mail/login")
        s, _, lp, _ = other.get("/mail/login")
        s, url, page, _ = c.post("/mail/login", {"login": "demo", "password": "demo", "csrf": csrf(lp)})
        t.eq(s, 403, "login with another session's token: 403")

        # -- validation and wrong passwords
        s, url, page = login(c, "", "")[:3]
        t.ok(s == 400 and field_error(page, "login") == "Required." and field_error(page, "password") == "Required.",
             "empty login form: 400, Required beside both fields", (s, page[-600:]))
        t.ok('id="errors"' in page and "2 fields need a change" in page and ">Password</a>: Required." in page,
             "and a summary of the errors, by the fields' labels")
        s, url, page = login(c, "demo", "wrong")[:3]
        t.ok(s == 403 and field_error(page, "password") == "Unknown user or wrong password.",
             "wrong password: 403, said beside the password", (s, field_error(page, "password")))
        t.ok('value="demo"' in page and "wrong" not in re.sub(r"wrong password", "", page),
             "the login name is kept, the password is not written back")
        s, url, page = login(c, "nobody@crow.test", "demo")[:3]
        t.ok(s == 403 and field_error(page, "password") == "Unknown user or wrong password.",
             "unknown user: the same answer as a wrong password")

        # -- logging in as demo
        before = c.cookie().value
        s, _, lp, _ = c.get("/mail/login")
        old_token = csrf(lp)
        s, url, page, _ = c.post("/mail/login", {"csrf": old_token, "login": "Demo@Crow.Test", "password": "demo"})
        t.ok(s == 200 and url.endswith("/mail/") and 'id="who">demo@crow.test<' in page,
             "demo logs in (name@domain, any case) and lands on /mail/", (s, url, page[-500:]))
        t.ok(c.cookie().value != before, "a login starts a new session (no fixation)")
        names = re.findall(r'<td class="name">([^<]*)</td>', page)
        t.eq(names, ["INBOX", "work"], "mailbox usage lists INBOX then work")
        t.ok('id="no-filters"' in page, "no envelope filters yet")
        s, url, page, _ = c.post("/mail/filters", {"csrf": old_token, "sender": "*@x.example", "action": "reject"})
        t.eq(s, 403, "the token from before the login is refused after it")
        t.eq(sql("SELECT count(*) FROM envelope_filters"), "0", "and nothing was stored")

        s, _, home, _ = c.get("/mail/")
        tok = csrf(home)
        s, url, page, _ = c.post("/mail/filters", {"csrf": tok, "sender": "spam example", "recipient": "a@b@c",
                                                   "action": "explode", "priority": "soon"})
        t.ok(s == 400, "a bad filter form answers 400", s)
        t.ok(field_error(page, "sender") and "address pattern" in field_error(page, "sender"),
             "sender pattern error beside the field", field_error(page, "sender"))
        t.ok(field_error(page, "recipient"), "recipient pattern error beside the field")
        t.eq(field_error(page, "action"), "Choose one of the listed values.", "action error beside the field")
        t.eq(field_error(page, "priority"), "Not a whole number.", "priority error beside the field")
        t.ok('value="spam example"' in page and 'value="soon"' in page, "the submitted values are shown again")
        t.eq(sql("SELECT count(*) FROM envelope_filters"), "0", "nothing stored from the bad form")

        s, url, page, _ = c.post("/mail/filters", {"csrf": tok, "sender": "*@SPAM.example", "recipient": "",
                                                   "action": "reject", "priority": "10"})
        t.ok(s == 200 and url.endswith("/mail/") and 'id="notice">The filter was added.<' in page,
             "a good filter: redirected to /mail/ with a notice", (s, url))
        t.ok('<td class="sender">*@spam.example</td>' in page, "the filter is listed (pattern lowercased)")
        t.eq(sql("SELECT u.name, f.sender_pattern, f.recipient_pattern, f.action, f.priority FROM envelope_filters f"
                 " JOIN users u ON u.id = f.user_id"),
             "demo|*@spam.example|*|reject|10", "the database holds the filter for demo")
        fid = sql("SELECT id FROM envelope_filters")
        s, url, page, _ = c.post("/mail/filters", {"csrf": tok, "sender": "", "recipient": "demo+work@crow.test",
                                                   "action": "discard"})
        t.eq(sql("SELECT count(*) FROM envelope_filters WHERE action = 'discard' AND sender_pattern = '*'"), "1",
             "a second filter (empty sender: any)")

        s, url, page, _ = c.get("/mail/admin/")
        t.ok(s == 403 and "Administrators only" in page, "demo is refused the administration (403)", s)
        s, url, page, _ = c.post("/mail/admin/domains", {"csrf": tok, "name": "evil.example"})
        t.eq(s, 403, "and cannot post to it")
        t.eq(sql("SELECT count(*) FROM domains WHERE name = 'evil.example'"), "0", "nothing added")

        # a forged cross-site POST: right cookie (the browser sends it), no token
        s, url, page, _ = c.post("/mail/filters/delete", {"id": fid})
        t.eq(s, 403, "deleting without the token: 403")
        t.eq(sql("SELECT count(*) FROM envelope_filters WHERE id = %s" % fid), "1", "the filter is still there")
        s, url, page, _ = c.post("/mail/filters/delete", {"csrf": tok, "id": fid})
        t.ok(s == 200 and "The filter was deleted." in page, "deleting with the token works")
        t.eq(sql("SELECT count(*) FROM envelope_filters WHERE id = %s" % fid), "0", "the filter is gone")

        s, url, page, _ = c.post("/mail/password", {"csrf": tok, "current": "nope", "password1": "demo2pass",
                                                    "password2": "demo2pass"})
        t.ok(s == 400 and field_error(page, "current") == "Wrong password.", "own password: a wrong current one is said",
             (s, field_error(page, "current")))
        s, url, page, _ = c.post("/mail/password", {"csrf": tok, "current": "demo", "password1": "demo2pass",
                                                    "password2": "demo2past"})
        t.eq(field_error(page, "password2"), "Does not match the new password.", "own password: a mismatch is said")
        t.ok(sql("SELECT password_hash FROM users WHERE name = 'demo'").startswith("$6$crowdemo0$"),
             "the stored hash did not change meanwhile")
        s, url, page, _ = c.post("/mail/password", {"csrf": tok, "current": "demo", "password1": "demo2pass",
                                                    "password2": "demo2pass"})
        t.ok(s == 200 and "Your password was changed." in page, "own password changed")
        t.ok(sql("SELECT password_hash FROM users WHERE name = 'demo'").startswith("$y$"),
             "stored as a new yescrypt hash")
        s, url, page = login(Client(base), "demo", "demo")[:3]
        t.eq(s, 403, "the old password no longer logs in")
        s, url, page = login(Client(base), "demo", "demo2pass")[:3]
        t.ok('id="who">demo@crow.test<' in page, "the new one does")

        s, url, page, _ = c.post("/mail/logout", {"csrf": tok})
        t.ok(url.endswith("/mail/login"), "log out -> the login page", url)
        s, url, page, _ = c.get("/mail/")
        t.ok(url.endswith("/mail/login"), "logged out: /mail/ asks to log in again", url)

        # -- the administrator
        a = Client(base)
        s, url, page, _ = login(a, "admin", "admin")
        t.ok(s == 200 and url.endswith("/mail/admin/") and 'id="admin-menu"' in page,
             "admin logs in and lands on the administration", (s, url))
        for r in ("domains", "users", "mailboxes", "aliases", "header-filters"):
            s, url, page, _ = a.get("/mail/admin/" + r)
            t.ok(s == 200 and 'id="add-form"' in page, "admin page %s lists and offers a form" % r, s)
        s, _, page, _ = a.get("/mail/admin/domains")
        atok = csrf(page)
        s, url, page, _ = a.post("/mail/admin/domains", {"csrf": atok, "name": "not a domain"})
        t.ok(s == 400 and "Not a domain name" in (field_error(page, "name") or ""), "bad domain name: 400, said beside the field")
        s, url, page, _ = a.post("/mail/admin/domains", {"csrf": atok, "name": "Example.ORG"})
        t.ok(s == 200 and "The domain was added." in page, "domain example.org added", s)
        t.eq(sql("SELECT name FROM domains WHERE name = 'example.org'"), "example.org", "in the database, lowercased")
        s, url, page, _ = a.post("/mail/admin/domains", {"csrf": atok, "name": "example.org"})
        t.ok(s == 400 and field_error(page, "name") == "That domain exists already.", "duplicate domain: said beside the field",
             (s, field_error(page, "name")))
        did = sql("SELECT id FROM domains WHERE name = 'example.org'")
        s, url, page, _ = a.post("/mail/admin/users", {"csrf": atok, "name": "bob", "domain": did, "password": "ab"})
        t.ok(s == 400 and "at least" in (field_error(page, "password") or ""), "short password refused", field_error(page, "password"))
        s, url, page, _ = a.post("/mail/admin/users", {"csrf": atok, "name": "bob", "domain": "", "password": "bobpass1"})
        t.eq(field_error(page, "domain"), "Required.", "no domain chosen: Required")
        s, url, page, _ = a.post("/mail/admin/users", {"csrf": atok, "name": "bob", "domain": "999999", "password": "bobpass1"})
        t.eq(field_error(page, "domain"), "Choose one of the listed values.", "unknown domain id refused")
        s, url, page, _ = a.post("/mail/admin/users", {"csrf": atok, "name": "Bob", "domain": did, "password": "bob pass ü"})
        t.ok(s == 200 and "The user was added." in page, "user bob@example.org added", s)
        t.ok(sql("SELECT password_hash FROM users WHERE name = 'bob'").startswith("$y$"),
             "bob's password is stored as a yescrypt crypt(3) hash")
        t.eq(sql("SELECT b.name FROM mailboxes b JOIN users u ON u.id = b.user_id WHERE u.name = 'bob'"), "INBOX",
             "bob got an INBOX")
        b = Client(base)
        s, url, page, _ = login(b, "bob@example.org", "bob pass ü")
        t.ok(s == 200 and 'id="who">bob@example.org<' in page, "bob logs in with the password set by the admin", (s, url))
        bid = sql("SELECT id FROM users WHERE name = 'bob'")
        s, url, page, _ = a.post("/mail/admin/users/password", {"csrf": atok, "pw_user": bid, "new_password": "newpass9"})
        t.ok(s == 200 and "The password was set." in page, "the admin sets bob's password")
        s, url, page, _ = login(Client(base), "bob@example.org", "newpass9")
        t.ok('id="who">bob@example.org<' in page, "bob logs in with the new one")

        s, url, page, _ = a.post("/mail/admin/mailboxes", {"csrf": atok, "user": bid, "name": "lists",
                                                           "max_bytes": "5M", "max_messages": "many"})
        t.ok(s == 400 and field_error(page, "max_messages") == "Not a whole number.", "mailbox: bad limit said beside it")
        s, url, page, _ = a.post("/mail/admin/mailboxes", {"csrf": atok, "user": bid, "name": "lists",
                                                           "max_bytes": "5M", "max_messages": "100"})
        t.ok(s == 200 and "The mailbox was added." in page, "mailbox lists added")
        t.eq(sql("SELECT max_bytes, max_messages FROM mailboxes WHERE name = 'lists'"), "5242880|100",
             "with its limits (5M = 5242880 bytes)")

        lid = sql("SELECT id FROM mailboxes WHERE name = 'lists'")
        s, url, page, _ = a.post("/mail/admin/mailboxes/limits", {"csrf": atok, "mailbox": lid,
                                                                  "new_max_bytes": "lots", "new_max_messages": ""})
        t.ok(s == 400 and "Not a size" in (field_error(page, "new_max_bytes") or ""), "limits: a bad size is said beside it")
        s, url, page, _ = a.post("/mail/admin/mailboxes/limits", {"csrf": atok, "mailbox": lid,
                                                                  "new_max_bytes": "1G", "new_max_messages": ""})
        t.ok(s == 200 and "The limits were set." in page, "limits set")
        t.eq(sql("SELECT max_bytes, max_messages FROM mailboxes WHERE id = %s" % lid), "1073741824|",
             "1G, and no message limit (NULL)")

        s, _, bpage, _ = b.get("/mail/")
        t.ok('id="who">bob@example.org<' in bpage, "bob's session is live")
        s, url, page, _ = a.post("/mail/admin/users/toggle", {"csrf": atok, "id": bid, "column": "name"})
        t.ok("Nothing to switch." in page, "a column not offered as a switch is refused")
        s, url, page, _ = a.post("/mail/admin/users/toggle", {"csrf": atok, "id": bid, "column": "active"})
        t.ok("The Active was switched." in page, "the admin disables bob")
        t.eq(sql("SELECT active FROM users WHERE id = %s" % bid), "f", "bob is inactive in the database")
        s, url, page, _ = b.get("/mail/")
        t.ok(url.endswith("/mail/login"), "bob's open session ends at his next request", url)
        s, url, page = login(Client(base), "bob@example.org", "newpass9")[:3]
        t.eq(s, 403, "and he cannot log in")
        s, url, page, _ = a.post("/mail/admin/users/toggle", {"csrf": atok, "id": bid, "column": "active"})
        t.eq(sql("SELECT active FROM users WHERE id = %s" % bid), "t", "switched back on")
        s, url, page, _ = a.post("/mail/admin/users/toggle", {"csrf": atok, "id": sql("SELECT id FROM users WHERE name = 'admin'"),
                                                              "column": "is_admin"})
        t.ok("You cannot switch your own account" in page, "the admin cannot demote themself")
        t.eq(sql("SELECT is_admin FROM users WHERE name = 'admin'"), "t", "still an administrator")

        s, url, page, _ = a.post("/mail/admin/aliases", {"csrf": atok, "domain": did, "kind": "regex",
                                                         "pattern": "^sales-(", "target": "bob@example.org"})
        t.ok(s == 400 and "regular expression" in (field_error(page, "pattern") or ""),
             "alias: PostgreSQL's own regex check said beside the pattern", field_error(page, "pattern"))
        s, url, page, _ = a.post("/mail/admin/aliases", {"csrf": atok, "domain": did, "kind": "exact",
                                                         "pattern": "sales", "target": "bob@elsewhere.example"})
        t.ok(s == 400 and "not a local domain" in (field_error(page, "target") or ""), "alias to a foreign domain refused")
        s, url, page, _ = a.post("/mail/admin/aliases", {"csrf": atok, "domain": did, "kind": "regex",
                                                         "pattern": "^sales-[a-z]+$", "target": "bob+lists@example.org"})
        t.ok(s == 200 and "The alias was added." in page, "regex alias added")
        t.eq(sql("SELECT kind, pattern, target FROM aliases WHERE domain_id = %s" % did),
             "regex|^sales-[a-z]+$|bob+lists@example.org", "in the database")

        s, url, page, _ = a.post("/mail/admin/header-filters", {"csrf": atok, "header": "Subject", "regex": "([a-z",
                                                                "action": "tag", "tag": ""})
        t.ok(s == 400 and "regular expression" in (field_error(page, "regex") or ""),
             "header filter: bad regex said beside it", field_error(page, "regex"))
        s, url, page, _ = a.post("/mail/admin/header-filters", {"csrf": atok, "header": "Subject", "regex": "viagra",
                                                                "action": "tag", "tag": ""})
        t.eq(field_error(page, "tag"), "Required for the tag action.", "tag action without a tag refused")
        s, url, page, _ = a.post("/mail/admin/header-filters", {"csrf": atok, "header": "Subject", "regex": "v[i1]agra",
                                                                "action": "reject", "priority": "5", "active": "yes"})
        t.ok(s == 200 and "The header filter was added." in page, "header filter added")
        t.eq(sql("SELECT domain_id IS NULL, header, regex, action, priority, active FROM header_filters"),
             "t|subject|v[i1]agra|reject|5|t", "in the database, for every domain")

        aid = sql("SELECT id FROM users WHERE name = 'admin'")
        s, url, page, _ = a.post("/mail/admin/users/delete", {"csrf": atok, "id": aid})
        t.ok("You cannot delete the account you are logged in with." in page, "the admin cannot delete themself")
        s, url, page, _ = a.post("/mail/admin/domains/delete", {"csrf": atok, "id": did})
        t.ok("The domain was deleted." in page, "deleting example.org")
        t.eq(sql("SELECT count(*) FROM users WHERE name = 'bob'"), "0", "took its users with it")
        s, url, page, _ = a.get("/mail/admin/nosuch")
        t.eq(s, 404, "an unknown admin page: 404")

        # -- guessing passwords: after 10 failures from one address in 5 minutes, 429
        statuses = [login(Client(base), "demo", "guess%d" % i)[0] for i in range(12)]
        t.ok(statuses[-1] == 429 and 403 in statuses and statuses.index(429) <= 10,
             "repeated failed logins from one address end in 429", statuses)
        s, url, page = login(Client(base), "demo", "demo2pass")[:3]
        t.ok(s == 429 and "Too many failed logins" in (field_error(page, "password") or ""),
             "then even the right password waits, and the page says why", (s, field_error(page, "password")))

        stop(p)
        procs.remove(p)

        # -- no database: 503 with a clear page
        for label, info in (("no mail-conninfo", None),
                            ("an unreachable database", "host=%s user=crow dbname=mail connect_timeout=2"
                             % os.path.join(tmp, "nowhere"))):
            port2 = free_port()
            conf2 = env.write_conf(tmp, "httpd-%d.conf" % port2, port2, info)
            p2 = env.start_httpd(conf2)
            procs.append(p2)
            if t.ok(wait_port("127.0.0.1", port2, 60, p2), "crow-httpd with %s" % label):
                c2 = Client("http://127.0.0.1:%d" % port2)
                s, url, page, _ = c2.get("/mail/login")
                if info is None:
                    t.ok(s == 503 and "not configured" in page and "mail-conninfo" in page,
                         "/mail/ answers 503 without mail-conninfo, saying what to set", (s, page[-400:]))
                else:
                    t.eq(s, 200, "the login page itself needs no database")
                    s, url, page, _ = c2.post("/mail/login", {"csrf": csrf(page) or "", "login": "demo",
                                                              "password": "demo"})
                    t.ok(s == 503 and "cannot be reached" in page,
                         "logging in with the database unreachable: 503, saying so", (s, page[-400:]))
                s, url, page, _ = Client("http://127.0.0.1:%d" % port2).get("/")
                t.eq(s, 200, "the rest of the site still serves")
            stop(p2)
            procs.remove(p2)
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
