#!/usr/bin/env python3
# live.t — live development against a running crow-httpd: a handler redefined through swank
# (a Python client speaking SLIME's wire protocol, then Emacs in batch mode with SLIME
# connecting to --swank) answers the very next request, without a restart or reconnect.
# timeout: 500
import glob
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpd import Server, Tap, exchange, free_port, make_root, swank_eval, wait_port  # noqa: E402

ELISP = r"""
(add-to-list 'load-path "%(slime)s")
(require 'slime)
(setq slime-protocol-version 'ignore)
(slime-setup '())
(slime-connect "127.0.0.1" %(port)d)
(let ((n 0))
  (while (and (< n 600) (not (and (slime-current-connection)
                                  (slime-connection-name (slime-current-connection)))))
    (accept-process-output nil 0.1)
    (setq n (1+ n))))
(unless (slime-current-connection) (princ "no connection\n") (kill-emacs 3))
(let ((r (slime-eval '(swank:eval-and-grab-output
                       "(progn (crow.http:define-handler crow.http:hello (req) (crow.http:respond req \"redefined from Emacs\" :content-type \"text/plain\")) :emacs-ok)")
                     "CROW.HTTP")))
  (princ (format "result: %%S\n" r)))
(kill-emacs 0)
"""


def curl_hello(port):
    out, _ = exchange(port, b"GET /hello HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    return out.partition(b"\r\n\r\n")[2]


def get(port, host, path):
    out, _ = exchange(port, ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                             % (path, host)).encode())
    return out.partition(b"\r\n\r\n")[2]


# Routes and vhosts changed at run time answer the very next request, though the server keeps
# the last Host's vhost and the last route found (each check follows a request that primed
# them with the old answer).  (form, host, path, expected body, what)
RUNTIME = [
    ('(progn (crow.http:define-handler crow.http::live-two (req)'
     ' (crow.http:respond req "two" :content-type "text/plain"))'
     ' (crow.http:add-route "a.test" "/hello" (quote crow.http::live-two) :exact t) :ok)',
     "a.test", "/hello", b"two", "a route re-added for the same path"),
    ('(progn (crow.http:define-handler crow.http::live-two (req)'
     ' (crow.http:respond req "two again" :content-type "text/plain")) :ok)',
     "a.test", "/hello", b"two again", "the re-added route's handler redefined"),
    ('(progn (crow.http:add-route "a.test" "/hello/" (quote crow.http::live-two)) :ok)',
     "a.test", "/hello/x", b"two again", "a new prefix route"),
    ('(progn (crow.http:define-handler crow.http::live-c (req)'
     ' (crow.http:respond req "vhost c" :content-type "text/plain"))'
     ' (crow.http::register-vhost (crow.http::make-vhost :name "c.test" :mode :dynamic))'
     ' (crow.http:add-route "c.test" "/hello" (quote crow.http::live-c) :exact t) :ok)',
     "c.test", "/hello", b"vhost c", "a vhost added at run time"),
    ('(progn (crow.http:define-handler crow.http::live-a2 (req)'
     ' (crow.http:respond req "new a" :content-type "text/plain"))'
     ' (crow.http::register-vhost (crow.http::make-vhost :name "a.test" :mode :dynamic))'
     ' (crow.http:add-route "a.test" "/hello" (quote crow.http::live-a2) :exact t) :ok)',
     "a.test", "/hello", b"new a", "a vhost replaced by a new one of the same name"),
]


t = Tap()
d = make_root()
sport = free_port()
srv = Server(os.path.join(d, "root"), swank=sport)
try:
    t.ok(srv.up, "crow-httpd listens")
    t.eq(curl_hello(srv.port), b"hello\n", "/hello before")
    up = wait_port("127.0.0.1", sport, 300, srv.proc)
    t.ok(up, "swank is up")
    if up:
        form = ('(crow.http:define-handler crow.http:hello (req)'
                ' (crow.http:respond req (format nil "patched ~a~%" (crow.http:request-path req))'
                ' :content-type "text/plain"))')
        rep = swank_eval(sport, form, "CROW.HTTP")
        t.ok(rep is not None and ":ok" in rep, "swank evaluates a redefinition", rep)
        t.eq(curl_hello(srv.port), b"patched /hello\n", "the next request gets the redefined handler")
        slime = sorted(glob.glob("/usr/share/emacs/site-lisp/elpa-src/slime-*/slime.el"))
        if shutil.which("emacs") and slime:
            el = tempfile.NamedTemporaryFile("w", suffix=".el", delete=False)
            el.write(ELISP % {"slime": os.path.dirname(slime[-1]), "port": sport})
            el.close()
            r = subprocess.run(["emacs", "--batch", "-Q", "-l", el.name], capture_output=True,
                               text=True, timeout=180)
            os.unlink(el.name)
            t.ok(r.returncode == 0 and ":EMACS-OK" in r.stdout, "Emacs (batch, SLIME) redefines the handler",
                 r.stdout[-800:] + r.stderr[-1500:])
            t.eq(curl_hello(srv.port), b"redefined from Emacs", "the next request shows the Emacs definition")
        else:
            t.skip("Emacs+SLIME redefinition", "emacs-nox or slime not installed")
    if up:
        for form, host, path, want, what in RUNTIME:
            before = get(srv.port, host, path)    # primes the server's last-lookup caches
            rep = swank_eval(sport, form, "CROW.HTTP")
            t.ok(rep is not None and ":ok" in rep.lower(), "swank: " + what, rep)
            got = get(srv.port, host, path)
            t.ok(got == want, "the next request: " + what,
                 "got  %r\nwant %r\nbefore %r" % (got, want, before))
        # right after an a.test request: its alias still names the vhost it was registered with
        t.eq(get(srv.port, "b.test", "/hello"), b"two again", "the replaced vhost still answers for its alias")
finally:
    status, log = srv.stop()
    shutil.rmtree(d, ignore_errors=True)
t.eq(status, 0, "crow-httpd stops with status 0")
t.done()
