#!/usr/bin/env python3
"""idlemem.py — memory per idle connection, called by spawn.bench: crow-appserv's event and
session models (an echo service, model event / session) and nginx for reference.  Opens N
idle connections to each (each one sends one line and reads it back, so it is really being
served), and prints one line per server: NAME KIB-PER-CONNECTION BEFORE-KIB AFTER-KIB.
The RSS is summed over the server's process tree (parent and serving processes)."""
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(os.environ.get("BENCH_IDLE", "1000"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open("/proc/%d/task/%d/children" % (p, p)) as f:
                todo += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def rss(pid):
    total = 0
    for p in tree(pid):
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def wait_port(port, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def measure(name, argv, port, request=b"ping\r\n", end=b"\n"):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socks = []
    try:
        if not wait_port(port, proc):
            print("%s - - - (did not start)" % name)
            return
        time.sleep(1)
        before = rss(proc.pid)
        for i in range(N):
            s = socket.create_connection(("127.0.0.1", port), timeout=20)
            s.sendall(request)
            got = b""
            while not got.endswith(end):
                c = s.recv(100)
                if not c:
                    break
                got += c
            socks.append(s)
        time.sleep(1)
        after = rss(proc.pid)
        print("%s %.1f %d %d" % (name, (after - before) / N, before, after))
        sys.stdout.flush()
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


work = tempfile.mkdtemp(prefix="crow-bench-idlemem-")
echo = os.path.join(ROOT, "etc", "appserv", "echo.lisp")
for model in ("event", "session"):
    port = free_port()
    conf = os.path.join(work, model + ".conf")
    with open(conf, "w") as f:
        f.write("log stderr\nservice echo {\n  listen 127.0.0.1:%d\n  handler %s\n  model %s\n"
                "  framing raw\n  max-connections %d\n  max-per-address %d\n}\n"
                % (port, echo, model, N + 100, N + 100))
    measure("crow-appserv-" + model,
            [os.path.join(ROOT, "build", "bin", "crow-appserv"), "--foreground", "-f", conf], port)
if os.path.exists("/usr/sbin/nginx"):
    port = free_port()
    d = os.path.join(work, "nginx")
    os.makedirs(d)
    # Idle keep-alive connections after one request each.
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write("daemon off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log;\n"
                "events { worker_connections %d; }\n"
                "http { access_log off; client_body_temp_path %s; proxy_temp_path %s;\n"
                "  fastcgi_temp_path %s; uwsgi_temp_path %s; scgi_temp_path %s;\n"
                "  keepalive_timeout 300s;\n"
                "  server { listen 127.0.0.1:%d; location / { return 200 \"ok\\n\"; } } }\n"
                % (d, d, N + 100, d, d, d, d, d, port))
    measure("nginx", ["/usr/sbin/nginx", "-p", d, "-c", os.path.join(d, "nginx.conf")], port,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"ok\n")
subprocess.run(["rm", "-rf", work])
