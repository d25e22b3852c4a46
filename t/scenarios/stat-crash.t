#!/usr/bin/env python3
# stat-crash.t — mmstatd killed with SIGKILL under load, again and again (bounded: 200 rounds
# or 45 s): after each restart every transaction acknowledged by commit_sync is there, and no
# transaction is ever half applied (crash|b = 2 x crash|a, crash|c = 3 x crash|a).
# timeout: 200
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import Tap
from stat_common import CRASH, Stat

t = Tap()
st = Stat(sync="always")
client = None
try:
    t.ok(st.start(), "mmstatd starts")
    client = subprocess.Popen([CRASH, st.run], stdout=subprocess.PIPE, text=True)
    rng = random.Random(6)
    rounds, bad, restarts_failed = 0, [], 0
    deadline = time.time() + 45
    while rounds < 200 and time.time() < deadline:
        time.sleep(rng.uniform(0.01, 0.12))
        st.stop(9)
        rounds += 1
        if not st.start():
            restarts_failed += 1
            break
        v = st.values("crash|*") or {}
        a, b, c = v.get("crash|a", 0), v.get("crash|b", 0), v.get("crash|c", 0)
        if b != 2 * a or c != 3 * a:
            bad.append((rounds, a, b, c))
    t.ok(rounds >= 20, "%d kill -9 rounds (at least 20)" % rounds)
    t.eq(restarts_failed, 0, "every restart recovered", )
    t.eq(bad, [], "no transaction half applied after any crash")
    os.kill(client.pid, 15)
    out = client.communicate(timeout=30)[0]
    client = None
    acked, attempted = [int(x) for x in out.split()[1::2]]
    v = st.values("crash|*")
    a = v.get("crash|a", 0)
    t.ok(acked > 100 and acked <= a <= attempted,
         "every acknowledged transaction survived (%d acked <= %d applied <= %d sent)" % (acked, a, attempted))
    t.ok(v.get("crash|b") == 2 * a and v.get("crash|c") == 3 * a, "and whole", v)
    t.eq(st.stop(), 0, "stops")
finally:
    if client:
        client.kill()
        client.wait()
    st.cleanup()
t.done()
