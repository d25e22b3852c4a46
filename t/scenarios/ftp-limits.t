#!/usr/bin/env python3
# ftp-limits.t — mmftpd's per-user login limit (the accounts file's max-logins field, set with
# `mmftpasswd -m N`): N sessions of a user with max-logins N log in; the N+1th gets
# `530 Too many sessions` after a correct password (its control connection stays open, and it
# counts as no bad password), while another user still logs in; a wrong password at the limit
# gets the plain `530 Login incorrect` (the limit is not revealed without the password); a
# slot frees when a session QUITs, when its client just drops the connection, and when it
# sends USER again (re-login) — each seen by a login that then succeeds, within a bounded wait.
# The anonymous user's limit counts `anonymous` and `ftp` together.
# timeout: 60
import atexit
import ftplib
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, Tap, free_port, mmftpasswd, stop, wait_port

t = Tap()
tmp = tempfile.mkdtemp(prefix="crow-ftp-limits-t-")
os.chmod(tmp, 0o755)
procs = []
atexit.register(lambda: [stop(p) for p in procs])
atexit.register(lambda: subprocess.run(["rm", "-rf", tmp]))


def passwd(*args, password=None):
    return mmftpasswd(accounts, *args, password=password)


def home(name):
    d = os.path.join(tmp, "home", name)
    os.makedirs(d, exist_ok=True)
    return d


accounts = os.path.join(tmp, "accounts")
# SHA-512: this test is about counting sessions, not about yescrypt's deliberate slowness.
r = passwd("add", "lim", "-d", home("lim"), "-p", "lr", "-m", "2", "--sha512", "--stdin", password="limpw")
t.ok(r.returncode == 0, "mmftpasswd add lim -m 2", r.stderr)
passwd("add", "other", "-d", home("other"), "-p", "lr", "--sha512", "--stdin", password="otherpw")
passwd("add", "anonymous", "-d", home("anon"), "-p", "lr", "-m", "1", "--anonymous")
with open(accounts) as f:
    lines = {l.split(":")[0]: l.rstrip("\n") for l in f if not l.startswith("#")}
t.ok(lines.get("lim", "").endswith(":2") and lines.get("anonymous", "").endswith(":1")
     and lines.get("other", "").endswith(":"),
     "accounts file: max-logins is the last field (2, 1, empty for none)", lines)

port = free_port()
conf = os.path.join(tmp, "mmftpd.conf")
with open(conf, "w") as f:
    f.write("listen 127.0.0.1:%d\naccounts %s\nlogin-delay 200ms\nlogin-failures 3\n" % (port, accounts))
log = open(os.path.join(tmp, "mmftpd.log"), "w")
p = subprocess.Popen([os.path.join(BIN, "mmftpd"), "-f", conf, "--foreground"],
                     stdout=log, stderr=subprocess.STDOUT)
procs.append(p)
if not wait_port("127.0.0.1", port, 20, p):
    t.ok(False, "mmftpd started", open(log.name).read())
    t.done()


def connect():
    f = ftplib.FTP(timeout=10)
    f.connect("127.0.0.1", port)
    return f


def login(f, user, pw):
    """USER/PASS on F; returns the final reply line (its code first)."""
    try:
        r = f.sendcmd("USER " + user)
        if r.startswith("331"):
            r = f.sendcmd("PASS " + pw)
        return r
    except ftplib.all_errors as e:
        return str(e)


def retry_login(f, user, pw, seconds=5.0):
    """Logs in on F until 230 or SECONDS pass (the server frees a slot just after the other
    session's end, which the client may see first).  Returns the last reply."""
    deadline = time.time() + seconds
    while True:
        r = login(f, user, pw)
        if r.startswith("230") or time.time() > deadline:
            return r
        time.sleep(0.05)


def codes(rs):
    return [r[:3] for r in rs]


# ---------------------------------------------------------------------------- N, then N+1
a, b, c = connect(), connect(), connect()
rs = [login(a, "lim", "limpw"), login(b, "lim", "limpw")]
t.eq(codes(rs), ["230", "230"], "max-logins 2: two sessions of lim log in")
r = login(c, "lim", "limpw")
t.ok(r.startswith("530") and "Too many sessions" in r, "the third session of lim: 530 Too many sessions", r)
t.ok(c.sendcmd("NOOP").startswith("200"), "the refused session's connection stays open (NOOP 200)")
r = login(c, "lim", "wrong")
t.ok(r.startswith("530") and "incorrect" in r, "a wrong password at the limit: plain 530 Login incorrect", r)
o = connect()
r = login(o, "other", "otherpw")
t.ok(r.startswith("230"), "meanwhile another user logs in (230)", r)
# The refusal counted no bad password: two more refusals do not reach login-failures (3).
rs = [login(c, "lim", "limpw"), login(c, "lim", "limpw")]
t.ok(all(x.startswith("530") and "Too many" in x for x in rs), "refusals again: 530, no disconnect", rs)
t.ok(c.sendcmd("NOOP").startswith("200"), "still connected after 3 refusals (not counted as bad passwords)")

# ---------------------------------------------------------------------------- freeing slots
t.ok(a.quit().startswith("221"), "one lim session QUITs (221)")
r = retry_login(c, "lim", "limpw")
t.ok(r.startswith("230"), "after the QUIT, the waiting session logs in as lim (230)", r)
r = login(connect(), "lim", "limpw")
t.ok(r.startswith("530") and "Too many" in r, "full again: the next one gets 530", r)

b.sock.close()          # drop without QUIT
b.file.close()
d = connect()
r = retry_login(d, "lim", "limpw")
t.ok(r.startswith("230"), "after a session's client drops the connection, a new login succeeds", r)

# USER again in a logged-in session ends that login: its slot is free for another.
r = c.sendcmd("USER other")
t.ok(r.startswith("331"), "USER again in a logged-in lim session: 331", r)
e = connect()
r = retry_login(e, "lim", "limpw")
t.ok(r.startswith("230"), "the re-USER freed a slot: a new lim login succeeds", r)
r = c.sendcmd("PASS otherpw")
t.ok(r.startswith("230"), "and the re-USER session logs in as other (230)", r)
for f in (c, d, e, o):
    try:
        f.quit()
    except ftplib.all_errors:
        pass

# ---------------------------------------------------------------------------- anonymous
x, y = connect(), connect()
r = login(x, "anonymous", "me@example.org")
t.ok(r.startswith("230"), "anonymous max-logins 1: first anonymous login (230)", r)
r = login(y, "ftp", "me@example.org")
t.ok(r.startswith("530") and "Too many" in r, "a second one as `ftp` counts as anonymous: 530", r)
x.quit()
r = retry_login(y, "ftp", "me@example.org")
t.ok(r.startswith("230"), "after the first QUITs, `ftp` logs in (230)", r)
y.quit()

lg = open(log.name).read()
t.ok(lg.count("login lim from") == 5, "the log shows 5 lim logins", lg)
t.ok(stop(p) == 0, "mmftpd stops cleanly")
t.done()
