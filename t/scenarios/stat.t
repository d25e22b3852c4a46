#!/usr/bin/env python3
# stat.t — mmstatd with the mmstat CLI, libmmstat (the load client) and the Lisp binding
# (crow-sh): every command, transactions across several operations, malformed arguments,
# patterns, text values, 10 processes x 10,000 transactions summing exactly, rotation,
# volatile keys gone and persistent ones kept after a restart, --check.
# timeout: 300
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, ROOT, Tap
from stat_common import BENCH, MMSTAT, Stat

t = Tap()
st = Stat(sync="always")
try:
    r = subprocess.run([MMSTAT, "-d", st.run, "report"], capture_output=True, text=True)
    t.ok(r.returncode == 1 and "no mmstatd" in r.stderr, "no server: exit 1 with a message", r.stderr)
    t.ok(st.start(), "mmstatd starts and answers")

    rc, out, err = st.cli("update", "p", "a%1", "b%2")
    t.eq(rc, 0, "update p a%1 b%2")
    t.eq(st.report(), {"a": (1, "p"), "b": (2, "p")}, "report shows both, persistent")
    rc, out, err = st.cli("update", "p", "a%10", "reset", "v", "vol%7", "set", "p", "conf|motd%hello world")
    t.eq(rc, 0, "update, reset and set on one command line")
    t.eq(st.report(), {"a": (11, "p"), "b": (2, "p"), "vol": (7, "v"), "conf|motd": ("=hello world", "p")},
         "one transaction: counter, volatile reset, text value")
    for args, what in ((["update", "p", "x%abc"], "a non-numeric delta"),
                       (["update", "q", "x%1"], "bad flags"),
                       (["update", "p", "nokey"], "no %"),
                       (["update", "p", "x%99999999999999999999"], "a delta beyond 64 bits"),
                       (["frob"], "an unknown command"),
                       (["update", "p", "a%1", "x%zz"], "a bad second operation")):
        rc, out, err = st.cli(*args)
        t.ok(rc == 2 and err.strip(), "malformed: %s -> exit 2 with a message" % what, (rc, err))
    t.eq(st.values("a"), {"a": 11}, "nothing of a malformed line was applied")
    rc, out, err = st.cli("update", "p", "ctl\x01key%1")
    t.ok(rc == 2, "a control byte in a key is refused", (rc, err))

    st.cli("update", "v", "pat|a%1", "pat|b%2", "pat|cc%3", "other|a%4")
    t.eq(st.values("pat|?"), {"pat|a": 1, "pat|b": 2}, "report with ? pattern")
    t.eq(st.values("pat|[ac]*"), {"pat|a": 1, "pat|cc": 3}, "report with [...] pattern")
    st.cli("update", "v", "pat|*%10")
    t.eq(st.values("pat|*"), {"pat|a": 11, "pat|b": 12, "pat|cc": 13}, "update on a pattern adds to each match")
    st.cli("reset", "v", "pat|?%0")
    t.eq(st.values("pat|*"), {"pat|a": 0, "pat|b": 0, "pat|cc": 13}, "reset on a pattern")
    rc, _, _ = st.cli("delete", "pat|*", "other|a")
    t.ok(rc == 0 and st.values("pat|*") == {} and st.values("other|*") == {}, "delete patterns and keys")
    rc, out, err = st.cli("hreport", "a")
    t.ok(rc == 0 and re.match(r"a\t11\tp\t\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\t\d{4}-", out), "hreport: human times", out)
    rc, out, err = st.cli("update", "pa", "auto1%1", "auto2%2")
    t.ok(rc == 0 and st.values("auto*") == {"auto1": 1, "auto2": 2}, "autoflush flag")

    # 10 processes x 10,000 transactions of 3 keys each, all at once
    procs = [subprocess.Popen([BENCH, st.run, "1", "10000", "3", "async", "sum%d" % i],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(10)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    t.ok(all(p.returncode == 0 for p in procs), "10 clients x 10,000 transactions: each sees its sum", outs[0])
    vals = st.values("sum*")
    t.ok(vals is not None and len(vals) == 30 and all(v == 10000 for v in vals.values())
         and sum(vals.values()) == 300000, "30 keys of exactly 10,000, sum 300,000",
         vals and sorted(set(vals.values())))
    rc, _, _ = st.cli("delete", "sum*")   # persistent keys: a logged pattern delete, checked after the restart
    t.ok(rc == 0 and st.values("sum*") == {}, "delete sum* (persistent keys, by pattern)")

    # the Lisp binding (crow.unix), through crow-sh
    form = """(progn
  (crow.unix:with-mmstat (h "%s")
    (crow.unix:mmstat-update h "lisp|a" 5 :persistent t)
    (crow.unix:with-mmstat-transaction (h)
      (crow.unix:mmstat-update h "lisp|b" 1)
      (crow.unix:mmstat-reset h "lisp|c" -2))
    (ignore-errors
      (crow.unix:with-mmstat-transaction (h)
        (crow.unix:mmstat-update h "lisp|rolled-back" 1)
        (error "abort")))
    (crow.unix:mmstat-set-text h "lisp|t" "txt")
    (crow.unix:mmstat-commit-sync h)
    (format t "~s~%%" (mapcar (lambda (e) (list (first e) (second e) (fifth e)))
                             (crow.unix:mmstat-report h "lisp|*")))
    (format t "~a~%%" (handler-case (crow.unix:mmstat-update h "" 1) (crow.unix:unix-error (e) (crow.unix:unix-error-errno e))))))""" % st.run
    r = subprocess.run([os.path.join(BIN, "crow-sh"), "-e", form], capture_output=True, text=True, timeout=120)
    t.eq(r.stdout.splitlines()[:1],
         ['(("lisp|a" 5 T) ("lisp|b" 1 NIL) ("lisp|c" -2 NIL) ("lisp|t" "txt" NIL))'],
         "Lisp binding: update, transaction, rollback on a non-local exit, text, report")
    t.eq(r.stdout.splitlines()[1:2], ["22"], "Lisp binding: a bad key signals unix-error EINVAL")
    form = """(progn
  (format t "~a ~a~%%" (crow.unix:mmstat-count "shared|none") (crow.unix:mmstat-setup "/nonexistent"))
  (crow.unix:mmstat-setup "%s")
  (let ((ths (loop for i below 4 collect
                (mp:process-run-function "c" (lambda () (dotimes (k 250) (crow.unix:mmstat-count "shared|n" 1 :persistent t)))))))
    (mapc #'mp:process-join ths))
  (format t "~a~%%" (crow.unix:mmstat-count "shared|n" 0))
  (crow.unix:mmstat-setup nil))""" % st.run
    r = subprocess.run([os.path.join(BIN, "crow-sh"), "-e", form], capture_output=True, text=True, timeout=120)
    t.ok(r.stdout.splitlines()[:2] == ["NIL NIL", "T"], "shared handle: NIL without mmstatd, T once set up", r.stdout + r.stderr)
    t.eq(st.values("shared|*"), {"shared|n": 1000}, "mmstat-count from 4 threads x 250: 1,000")

    other = Stat(sync="always")
    with open(other.conf, "w") as f:
        f.write("stat-dir run\ndata-dir %s\nsync always\nlog stderr\n" % st.data)
    t.ok(not other.start(timeout=20), "a second mmstatd on the same data-dir refuses to start")
    t.ok("in use by another mmstatd" in open(other.logfile).read(), "and says why")
    other.cleanup()
    rc, out = st.check(repair=True)
    t.ok(rc == 1 and "stop it before --repair" in out, "--repair refuses while mmstatd runs", out)

    import socket, time
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(os.path.join(st.run, "librarian.sock"))
    t0 = time.time()
    v = st.values("a")
    t.ok(v == {"a": 11} and time.time() - t0 < 5, "a silent librarian client delays no report (%.2fs)" % (time.time() - t0))
    silent.close()

    # volatile operations never reach the disk: not in the logs, not in the snapshot
    def disk(names):
        blob = b"".join(open(os.path.join(st.data, f), "rb").read() for f in os.listdir(st.data)
                        if f.startswith("log.") or f == "snapshot")
        return {n: n.encode() in blob for n in names}
    size = sum(os.path.getsize(os.path.join(st.data, f)) for f in st.logs())
    rc, _, _ = st.cli("update", "v", "volonly|x%1", "reset", "v", "volonly|y%2")
    t.ok(rc == 0 and st.values("volonly|*") == {"volonly|x": 1, "volonly|y": 2}, "a volatile-only transaction is applied")
    t.eq(sum(os.path.getsize(os.path.join(st.data, f)) for f in st.logs()), size,
         "and writes nothing to the log")
    rc, _, _ = st.cli("update", "p", "mixed|p%1", "update", "v", "mixed|v%1")
    t.ok(rc == 0 and st.values("mixed|*") == {"mixed|p": 1, "mixed|v": 1}, "a mixed transaction is applied whole")
    t.eq(disk(["mixed|p", "mixed|v", "volonly", "vol2", "pat|cc", "lisp|b"]),
         {"mixed|p": True, "mixed|v": False, "volonly": False, "vol2": False, "pat|cc": False, "lisp|b": False},
         "the log holds its persistent part only, and no volatile key")
    st.cli("update", "v", "mixed|p%5", "reset", "v", "mixed|*%9")
    t.eq(st.values("mixed|*"), {"mixed|p": 1, "mixed|v": 9}, "volatile operations leave persistent keys alone")

    before = st.logs()
    rc, out, err = st.cli("rotate")
    t.ok(rc == 0 and st.logs() != before and len(st.logs()) == 1 and os.path.exists(os.path.join(st.data, "snapshot")),
         "rotate: a snapshot, a new log, the old one deleted", (rc, err, before, st.logs()))
    t.eq(disk(["mixed|p", "mixed|v", "volonly", "vol"]), {"mixed|p": True, "mixed|v": False, "volonly": False, "vol": False},
         "the snapshot holds no volatile key")
    st.cli("update", "p", "after-rotate%1", "reset", "v", "vol2%1")

    t.eq(st.stop(), 0, "SIGTERM: exit 0")
    rc, out = st.check()
    t.ok(rc == 0 and "ok" in out, "--check on a clean store: exit 0", out)
    t.ok(st.start(), "restarts")
    vals = st.values()
    t.eq(vals, {"a": 11, "b": 2, "conf|motd": "=hello world", "auto1": 1, "auto2": 2, "lisp|a": 5,
                "after-rotate": 1, "shared|n": 1000, "mixed|p": 1},
         "after a restart: persistent keys kept, volatile ones gone")
    t.eq(st.stop(), 0, "stops again")
finally:
    st.cleanup()
t.done()
