#!/usr/bin/env python3
# crow-sh.t — crow-sh runs scripts (shebang, args, exit status), -e, the REPL, errors, and
# --swank with a real swank client speaking SLIME's wire protocol.   # timeout: 400
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, ROOT, Tap, free_port, stop, wait_port

t = Tap()
sh = os.path.join(BIN, "crow-sh")
work = tempfile.mkdtemp(prefix="crow-sh-t.")
env = dict(os.environ, PATH=BIN + ":" + os.environ.get("PATH", ""),
           CROW_CACHE=os.path.join(ROOT, "build", "swank-cache"))


def run(args, stdin=None, timeout=60):
    return subprocess.run(args, input=stdin, capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=work)


try:
    # A script listing a directory with crow.unix and exiting 3.
    d = os.path.join(work, "dir")
    os.mkdir(d)
    for name in ("zeta", "alpha", "mid"):
        open(os.path.join(d, name), "w").close()
    script = os.path.join(work, "ls.lisp")
    with open(script, "w") as f:
        f.write("#!/usr/bin/env crow-sh\n"
                ";; list a directory with crow.unix, then exit 3\n"
                "(dolist (n (sort (read-directory (first *args*)) #'string<))\n"
                "  (format t \"~a~%\" n))\n"
                "(format t \"argv=~s~%\" *posix-argv*)\n"
                "(exit 3)\n"
                "(format t \"not reached~%\")\n")
    os.chmod(script, 0o755)
    r = run([script, d])
    t.eq(r.returncode, 3, "shebang script exits with the status it chose")
    t.eq(r.stdout, "alpha\nmid\nzeta\nargv=(\"%s\" \"%s\")\n" % (script, d),
         "script lists the directory through crow.unix and sees its argv")
    r = run([sh, script, d])
    t.eq(r.returncode, 3, "crow-sh SCRIPT ARGS works the same")

    # Normal end is 0; an error is reported with the script name and status 1.
    ok_script = os.path.join(work, "ok.lisp")
    with open(ok_script, "w") as f:
        f.write("(format t \"~a~%\" (+ 40 2))\n")
    r = run([sh, ok_script])
    t.eq((r.returncode, r.stdout), (0, "42\n"), "script returning normally exits 0")
    bad = os.path.join(work, "bad.lisp")
    with open(bad, "w") as f:
        f.write("(open-fd \"/nonexistent/x\")\n")
    r = run([sh, bad])
    t.eq(r.returncode, 1, "a script's unhandled error exits 1")
    t.ok("bad.lisp" in r.stderr and "No such file or directory" in r.stderr,
         "the error names the script and the errno text", r.stderr)
    r = run([sh, os.path.join(work, "missing.lisp")])
    t.eq(r.returncode, 2, "a missing script exits 2")

    # -e FORM prints the values.
    r = run([sh, "-e", "(values (+ 1 2) (core-version))"])
    t.eq((r.returncode, r.stdout), (0, "3\n\"0.1.0\"\n"), "-e evaluates and prints values")
    r = run([sh, "-e", "(exit 5)"])
    t.eq(r.returncode, 5, "-e (exit 5) exits 5")

    # The REPL reads forms from stdin.
    r = run([sh], stdin="(* 6 7)\n(getpid)\n")
    t.ok(r.returncode == 0 and "42" in r.stdout, "REPL evaluates forms from stdin", r.stdout + r.stderr)

    r = run([sh, "--help"])
    t.ok(r.returncode == 0 and "usage: crow-sh" in r.stdout, "--help prints usage")
    r = run([sh, "--version"])
    t.ok(r.returncode == 0 and r.stdout.startswith("crow-sh 0.1.0"), "--version", r.stdout)
    r = run([sh, "--swank"])
    t.eq(r.returncode, 2, "--swank without a port is a usage error")

    # --swank: a real swank client (SLIME's wire protocol: 6 hex digits of length, then an
    # s-expression) evaluates a form inside the running crow-sh.
    port = free_port()
    p = subprocess.Popen([sh, "--swank", str(port)], env=env, cwd=work,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        up = wait_port("127.0.0.1", port, timeout=240, proc=p)
        t.ok(up, "swank listens on 127.0.0.1:%d (first start compiles swank)" % port)
        if up:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            msg = '(:emacs-rex (swank:eval-and-grab-output "(format nil \\"~a/~a\\" (+ 1 2) (crow.unix:getpid))") "CROW-SH-USER" t 1)'
            data = msg.encode()
            s.sendall(b"%06x" % len(data) + data)
            buf = b""
            deadline = time.time() + 60
            reply = None
            while time.time() < deadline and reply is None:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= 6:
                    n = int(buf[:6], 16)
                    if len(buf) < 6 + n:
                        break
                    frame, buf = buf[6:6 + n].decode("utf-8", "replace"), buf[6 + n:]
                    if frame.startswith("(:return"):
                        reply = frame
            s.close()
            want = '\\"3/%d\\"' % p.pid
            t.ok(reply is not None and ":ok" in reply and want in reply,
                 "swank evaluates a form in the live crow-sh (pid %d)" % p.pid, reply)
    finally:
        stop(p)
finally:
    shutil.rmtree(work, ignore_errors=True)
t.done()
