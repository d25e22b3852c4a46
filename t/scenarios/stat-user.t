#!/usr/bin/env python3
# stat-user.t — mmstatd's `user` key: started as root, it opens its sockets and log, gives
# data-dir and stat-dir to the user and drops to it; as that user it still counts, rotates
# (snapshot + new log in data-dir), stops cleanly and its data survives a restart.  Not root:
# the key is honoured as far as it can be (a warning, serving as the current user).
# timeout: 120
import os
import pwd
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import Tap
from stat_common import MMSTATD, Stat

t = Tap()


def ids(pid):
    """(real, effective) uid of process PID, from /proc."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                u = line.split()
                return int(u[1]), int(u[2])
    return None


st = Stat(sync="always")
try:
    nobody = pwd.getpwnam("nobody")
    root = os.geteuid() == 0
    user = "nobody" if root else "root"  # not root: a user it cannot become
    st.write_conf("always", "user %s\n" % user)
    t.ok(st.start(), "mmstatd with `user %s` starts and answers" % user)
    want = nobody.pw_uid if root else os.geteuid()
    t.eq(ids(st.proc.pid), (want, want),
         "it runs as %s (real and effective uid)" % ("nobody" if root else "the current user"))
    if root:
        owners = {f: os.lstat(os.path.join(st.data, f)).st_uid for f in os.listdir(st.data)}
        t.ok(os.stat(st.data).st_uid == nobody.pw_uid and os.stat(st.run).st_uid == nobody.pw_uid
             and owners and set(owners.values()) == {nobody.pw_uid},
             "data-dir, stat-dir and the files in data-dir belong to nobody", owners)
    else:
        with open(st.logfile) as f:
            log = f.read()
        t.ok("not root: serving as uid %d, not as user root" % os.geteuid() in log,
             "not root: says it serves as the current user", log[-600:])
    rc, _, err = st.cli("update", "p", "a%3", "update", "v", "vol%1")
    t.ok(rc == 0, "counts as the user", err)
    before = st.logs()
    rc, _, err = st.cli("rotate")
    t.ok(rc == 0 and st.logs() != before and os.path.exists(os.path.join(st.data, "snapshot")),
         "rotates as the user: a snapshot and a new log in data-dir", (rc, err, before, st.logs()))
    st.cli("update", "p", "a%4")
    t.eq(st.stop(), 0, "SIGTERM: exit 0 (the final snapshot written as the user)")
    t.ok(not os.path.exists(os.path.join(st.run, "logger.sock")), "its sockets are removed at exit")
    t.ok(st.start(), "restarts")
    t.eq(st.values(), {"a": 7}, "persistent counts kept across the restart, the volatile one gone")
    t.eq(st.stop(), 0, "stops again")
    st.write_conf("always", "user no-such-user-here\n")
    r = subprocess.run([MMSTATD, "-n", "-f", st.conf], capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 1 and "mmstatd.conf:5:" in r.stderr and "no-such-user-here" in r.stderr,
         "-n: an unknown user is a configuration error at its line", (r.returncode, r.stderr))
finally:
    st.cleanup()
t.done()
