#!/usr/bin/env python3
# stat-recovery.t — mmstatd's recovery log: cut at every offset within its last two
# transactions, --check reports a torn tail and counts exactly the whole transactions before
# the cut, and a restarted server holds exactly that prefix (the tail truncated); a damaged
# transaction in the middle stops the server with a clear message, --check exits 1, and
# --repair truncates there so the server starts with the transactions before it.
# timeout: 300
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import Tap
from stat_common import Stat

t = Tap()
st = Stat(sync="always")


def frames(data):
    """Returns the (start, end) of each frame: 32-byte head (magic, len, nops, crc, txn, time)."""
    out, off = [], 0
    while off + 32 <= len(data):
        magic, n = struct.unpack_from("<II", data, off)
        if magic != 0x474C534D:
            break
        out.append((off, off + 32 + n))
        off += 32 + n
    return out


try:
    t.ok(st.start(), "mmstatd starts")
    st.cli("update", "p", "t|a%1")
    st.cli("update", "p", "t|b%2", "t|c%3")
    st.cli("update", "p", "t|a%10")
    st.cli("reset", "p", "t|d%4")
    t.eq(st.values(), {"t|a": 11, "t|b": 2, "t|c": 3, "t|d": 4}, "four transactions in")
    st.stop(9)
    logname = st.logs()[-1]
    logpath = os.path.join(st.data, logname)
    data = open(logpath, "rb").read()
    fr = frames(data)
    t.ok(len(fr) == 4 and fr[-1][1] == len(data), "the log holds four whole frames", fr)
    states = [{}, {"t|a": 1}, {"t|a": 1, "t|b": 2, "t|c": 3}, {"t|a": 11, "t|b": 2, "t|c": 3},
              {"t|a": 11, "t|b": 2, "t|c": 3, "t|d": 4}]
    saved = os.path.join(st.dir, "saved")
    shutil.copytree(st.data, saved)

    def restore(cut=None, flip=None):
        shutil.rmtree(st.data)
        shutil.copytree(saved, st.data)
        b = bytearray(data if cut is None else data[:cut])
        if flip is not None:
            b[flip] ^= 0x40
        open(logpath, "wb").write(bytes(b))

    bad = []
    cuts = list(range(fr[2][0], len(data)))
    for cut in cuts:
        restore(cut)
        rc, out = st.check()
        whole = sum(1 for s, e in fr if e <= cut)
        torn = cut not in [e for s, e in fr]
        if rc != 0 or ("%d transactions replayed" % whole) not in out or (("torn tail" in out) != torn):
            bad.append((cut, rc, out))
        elif os.path.getsize(logpath) != cut:
            bad.append((cut, "--check changed the log"))
    t.eq(bad[:3], [], "--check at each of %d cuts: exit 0, the whole prefix counted, torn tails named" % len(cuts))

    for cut in (fr[2][0] + 5, fr[3][0] + 40, fr[3][1] - 1, fr[2][1]):
        restore(cut)
        whole = sum(1 for s, e in fr if e <= cut)
        ok = st.start()
        got = st.values() if ok else None
        st.stop()
        t.ok(ok and got == states[whole], "cut at %d: the server recovers the %d whole transactions" % (cut, whole),
             (got, states[whole]))
        log = open(st.logfile).read()
        if cut != fr[2][1]:
            t.ok("torn tail" in log and "dropped" in log, "and logs the dropped bytes")

    restore(flip=fr[1][0] + 40)
    ok = st.start(timeout=30)
    t.ok(not ok and st.proc is not None and st.proc.returncode not in (0, None), "a damaged middle: the server refuses to start")
    st.stop()
    log = open(st.logfile).read()
    t.ok("damaged transaction at offset %d" % fr[1][0] in log and "--repair" in log,
         "with a clear message naming the offset and --repair", log[-400:])
    rc, out = st.check()
    t.ok(rc == 1 and "damaged" in out, "--check: exit 1", out)
    rc, out = st.check(repair=True)
    t.ok(rc == 0 and "truncated" in out, "--repair: exit 0, truncated", out)
    t.eq(os.path.getsize(logpath), fr[1][0], "the log now ends before the damage")
    t.ok(st.start(), "the server starts after --repair")
    t.eq(st.values(), states[1], "with the transactions before the damage")
    t.eq(st.stop(), 0, "stops")
finally:
    st.cleanup()
t.done()
