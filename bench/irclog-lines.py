#!/usr/bin/env python3
# irclog-lines.py — irclog's logging cost: a scripted IRC server sends N channel PRIVMSGs (with
# colour codes and UTF-8) at once; prints the wall time until all are logged and irclog's CPU
# time.  No peer (not in make bench): bench/irclog-lines.py [N]
import os, socket, subprocess, sys, tempfile, time, glob, shutil
N = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
tmp = tempfile.mkdtemp(prefix="ircbench.")
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); ls.bind(("127.0.0.1", 0)); ls.listen(1)
port = ls.getsockname()[1]
os.mkdir(tmp + "/logs")
open(tmp + "/c.conf", "w").write('log-dir logs\nlog stderr\nnetwork b {\n server 127.0.0.1:%d\n nick bench\n channel "#b"\n}\n' % port)
p = subprocess.Popen([root + "/build/bin/irclog", "--foreground", "-f", tmp + "/c.conf"], stderr=subprocess.DEVNULL)
c, _ = ls.accept()
time.sleep(0.5)
c.recv(65536)
c.sendall(b":s CAP * LS :\r\n:s 001 bench :hi\r\n:bench!u@h JOIN #b\r\n")
time.sleep(0.5)
body = b"".join(b":alice!a@h PRIVMSG #b :message number %d with some text \x0304colour\x03 and caf\xc3\xa9\r\n" % i for i in range(N))
t0 = time.time()
c.sendall(body)
f = glob.glob(tmp + "/logs/b/#b/*.log")[0]
while True:
    with open(f, "rb") as fh:
        n = fh.read().count(b"\n")
    if n >= N + 1: break
    time.sleep(0.5)
dt = time.time() - t0
cpu = 0
for pid in [p.pid] + [int(x) for x in open("/proc/%d/task/%d/children" % (p.pid, p.pid)).read().split()]:
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    cpu += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
print("%d lines logged in %.2fs wall (%.0f lines/s), irclog CPU %.2fs (%.0f lines per CPU-second)" % (N, dt, N / dt, cpu, N / cpu))
p.terminate(); p.wait()
shutil.rmtree(tmp, ignore_errors=True)
