#!/usr/bin/env python3
# ftp-auth-cache.t — mmftpd's verified-credentials cache (auth-cache N, auth-cache-ttl): the
# first login of a yescrypt user runs crypt, the next with the same password is answered
# from the cache (the log says "(cached)"); a wrong password after a cached login is still
# refused and delayed; the cache holds at most N users (the oldest goes); an entry expires
# after the TTL; a password changed with mmftpasswd and SIGHUP (re-read accounts) refuses the
# old password and accepts the new one; with auth-cache 0 (the default) nothing is cached.
# timeout: 90
import atexit
import ftplib
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, Tap, free_port, mmftpasswd, stop, wait_port

t = Tap()
tmp = tempfile.mkdtemp(prefix="crow-ftp-auth-cache-t-")
os.chmod(tmp, 0o755)
procs = []
atexit.register(lambda: [stop(p) for p in procs])
atexit.register(lambda: subprocess.run(["rm", "-rf", tmp]))
accounts = os.path.join(tmp, "accounts")


def passwd(*args, password=None):
    return mmftpasswd(accounts, *args, password=password)


for name in ("alice", "bob", "carol"):
    home = os.path.join(tmp, "home", name)
    os.makedirs(home)
    r = passwd("add", name, "-d", home, "-p", "lr", "--stdin", password=name + "-pw")   # yescrypt
t.ok(r.returncode == 0 and open(accounts).read().count("$y$") == 3, "three yescrypt users", r.stderr)


def start(name, extra):
    port = free_port()
    conf = os.path.join(tmp, name + ".conf")
    with open(conf, "w") as f:
        f.write("listen 127.0.0.1:%d\naccounts %s\nlogin-delay 100ms\n%s" % (port, accounts, extra))
    log = os.path.join(tmp, name + ".log")
    p = subprocess.Popen([os.path.join(BIN, "mmftpd"), "-f", conf, "--foreground"],
                         stdout=open(log, "w"), stderr=subprocess.STDOUT)
    procs.append(p)
    if not wait_port("127.0.0.1", port, 20, p):
        raise RuntimeError("%s did not start: %s" % (name, open(log).read()))
    return p, port, log


def login(port, user, pw):
    """One session: USER/PASS then QUIT; returns PASS's reply line."""
    f = ftplib.FTP(timeout=20)
    f.connect("127.0.0.1", port)
    try:
        r = f.sendcmd("USER " + user)
        if r.startswith("331"):
            r = f.sendcmd("PASS " + pw)
    except ftplib.all_errors as e:
        r = str(e)
    try:
        f.quit()
    except ftplib.all_errors:
        pass
    return r


def log_lines(log, what):
    with open(log) as f:
        return [l.rstrip("\n") for l in f if what in l]


def wait_log(log, what, n, seconds=5.0):
    """The log lines containing WHAT once there are N of them (or after SECONDS)."""
    deadline = time.time() + seconds
    while True:
        ls = log_lines(log, what)
        if len(ls) >= n or time.time() > deadline:
            return ls
        time.sleep(0.05)


# ---------------------------------------------------------------------------- cache on
p, port, log = start("on", "auth-cache 2\nauth-cache-ttl 3s\n")
t.ok(login(port, "alice", "alice-pw").startswith("230"), "alice logs in (230)")
t.ok(login(port, "alice", "alice-pw").startswith("230"), "alice logs in again (230)")
ls = wait_log(log, "login alice", 2)
t.ok(len(ls) == 2 and "(cached)" not in ls[0] and ls[1].endswith("(cached)"),
     "first login ran crypt, the second came from the cache", ls)
t0 = time.time()
r = login(port, "alice", "wrong")
t.ok(r.startswith("530") and time.time() - t0 >= 0.09,
     "a wrong password after a cached login: 530 and the failure delay", r)
t.ok(login(port, "alice", "alice-pw").startswith("230"), "the right one still works")
ls = wait_log(log, "login alice", 3)
t.ok(len(ls) == 3 and ls[2].endswith("(cached)"), "(the failure did not drop the entry)", ls)

# bounded: 2 users; bob and carol push alice out
login(port, "bob", "bob-pw")
login(port, "carol", "carol-pw")
t.ok(login(port, "alice", "alice-pw").startswith("230"), "alice after bob and carol (cache size 2)")
ls = wait_log(log, "login alice", 4)
t.ok(len(ls) == 4 and "(cached)" not in ls[3], "alice was evicted: crypt again", ls)

# TTL 3 s (alice is back in the cache, bob was the oldest and went)
login(port, "alice", "alice-pw")
ls = wait_log(log, "login alice", 5)
t.ok(len(ls) == 5 and ls[4].endswith("(cached)"), "alice cached within the TTL", ls)
time.sleep(3.3)
login(port, "alice", "alice-pw")
ls = wait_log(log, "login alice", 6)
t.ok(len(ls) == 6 and "(cached)" not in ls[5], "after the TTL: crypt again", ls)

# a changed password: mmftpasswd, then SIGHUP re-reads the accounts
login(port, "carol", "carol-pw")
r = passwd("passwd", "carol", "--stdin", password="carol-new")
t.ok(r.returncode == 0, "mmftpasswd passwd carol", r.stderr)
p.send_signal(signal.SIGHUP)
deadline = time.time() + 10
r = ""
while time.time() < deadline:            # the new serving process answers once it is up
    r = login(port, "carol", "carol-new")
    if r.startswith("230"):
        break
    time.sleep(0.2)
t.ok(r.startswith("230"), "after SIGHUP the new password logs in", r)
r = login(port, "carol", "carol-pw")
t.ok(r.startswith("530"), "and the old one is refused (530)", r)
t.ok(stop(p) == 0, "mmftpd stops")

# ---------------------------------------------------------------------------- cache off
p, port, log = start("off", "")
for i in range(2):
    login(port, "alice", "alice-pw")
ls = wait_log(log, "login alice", 2)
t.ok(len(ls) == 2 and not any("(cached)" in l for l in ls), "auth-cache 0 (default): never cached", ls)
t.ok(stop(p) == 0, "mmftpd stops")
t.done()
