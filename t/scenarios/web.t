#!/usr/bin/env python3
# web.t — crow.web through crow-httpd with real HTTP clients (Python's http.client, curl):
# http-let over query, urlencoded and multipart bodies (bad input, defaults, lists), uploads
# with SHA-256, Set-Cookie attributes and the redirect, signed sessions (counting, a forged
# cookie refused, ending), HEAD, and /tpl's escaping.
# timeout: 300
import hashlib
import http.client
import os
import re
import subprocess
import sys
import tempfile
import shutil
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, ROOT, Tap, demo_site_conf, free_port, stop, wait_port

t = Tap()
tmp = tempfile.mkdtemp(prefix="crow-web-")
port = free_port()
demo_site_conf(os.path.join(tmp, "httpd.conf"), port)


def req(method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, r.getheader("Set-Cookie"), r.getheader("Location"), data.decode("utf-8", "replace"), r


def span(html, ident):
    m = re.search(r'id="%s"[^>]*>(.*?)<' % re.escape(ident), html, re.S)
    return m.group(1) if m else None


p = subprocess.Popen([os.path.join(BIN, "crow-httpd"), "-f", os.path.join(tmp, "httpd.conf"), "--foreground"],
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
try:
    t.ok(wait_port("127.0.0.1", port, 60, p), "crow-httpd serves the site")

    # http-let over the query: decoding, bad escapes and bad UTF-8, defaults, repeated names.
    st, _, _, html, _ = req("GET", "/test/form?text=%3Cb%3E+%26%C3%A9&number=12&color=a&color=b%2Cc")
    t.eq(st, 200, "GET /test/form")
    t.eq(span(html, "r-text"), "&lt;b&gt; &amp;é", "query value percent- and UTF-8 decoded, then escaped")
    t.eq(span(html, "r-number"), "12", ":integer")
    t.eq(span(html, "r-color"), "a,b,c", ":list keeps every value in order")
    st, _, _, html, _ = req("GET", "/test/form?text=%FF%zz&number=12x")
    t.eq(span(html, "r-text"), "\ufffd%zz", "ill-formed UTF-8 becomes U+FFFD, a bad escape stays")
    t.eq(span(html, "r-number"), "-1", "a non-integer gives the default")
    st, _, _, html, _ = req("POST", "/test/form?number=5", body="text=from+body&number=7",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    t.eq((span(html, "r-text"), span(html, "r-number")), ("from body", "7"), "the body wins over the query")

    # Multipart: files with their SHA-256, a text field, a malformed body.
    blob = bytes((i * 31 + 7) & 255 for i in range(70000)) + b"\r\n--x--\r\n"
    boundary = "crowTestBoundary42"
    body = (("--%s\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nhi & <you>\r\n" % boundary).encode()
            + ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.bin\"\r\n"
               "Content-Type: application/octet-stream\r\n\r\n" % boundary).encode() + blob
            + ("\r\n--%s--\r\n" % boundary).encode())
    st, _, _, html, _ = req("POST", "/test/upload", body=body,
                            headers={"Content-Type": "multipart/form-data; boundary=" + boundary})
    t.eq(st, 200, "multipart upload answered")
    t.eq(span(html, "r-comment"), "hi &amp; &lt;you&gt;", "the text part, escaped")
    t.ok(hashlib.sha256(blob).hexdigest() in html and ">%d<" % len(blob) in html,
         "the file's size and SHA-256 on the page")
    st, _, _, _, _ = req("POST", "/test/upload", body=b"--zz\r\nno blank line",
                         headers={"Content-Type": "multipart/form-data; boundary=zz"})
    t.eq(st, 400, "a malformed multipart body gets 400")
    st, _, _, _, _ = req("POST", "/test/upload", body=b"x",
                         headers={"Content-Type": "multipart/form-data"})
    t.eq(st, 400, "multipart without a boundary gets 400")

    # Cookies and the redirect.
    st, cookie, loc, _, _ = req("POST", "/test/cookie", body="value=" + urllib.parse.quote("a b;é"),
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    t.eq((st, loc), (303, "/test"), "POST /test/cookie redirects with 303 to /test")
    t.eq(cookie, "crowtest=a%20b%3B%C3%A9; Max-Age=3600; Path=/test; HttpOnly; SameSite=Lax",
         "Set-Cookie with the value encoded and every attribute")
    st, _, _, html, _ = req("GET", "/test", headers={"Cookie": cookie.split(";")[0]})
    t.eq(span(html, "cookie-value"), "a b;é", "the next page shows the cookie's value")

    # Sessions.
    st, sc, _, html, _ = req("GET", "/test")
    t.eq(span(html, "visits"), "1", "a new session counts 1")
    m = re.match(r"crow-session=([0-9a-f]{32}\.[0-9a-f]{64}); Max-Age=1800; Path=/test; HttpOnly; SameSite=Lax$",
                 sc or "")
    t.ok(m, "session cookie: id.HMAC, Max-Age, Path, HttpOnly, SameSite", sc)
    sid = m.group(1) if m else "x"
    st, sc2, _, html, _ = req("GET", "/test", headers={"Cookie": "crow-session=" + sid})
    t.eq((span(html, "visits"), sc2), ("2", None), "the same session counts 2 and sets no new cookie")
    forged = sid[:40] + ("0" if sid[40] != "0" else "1") + sid[41:]
    st, sc3, _, html, _ = req("GET", "/test", headers={"Cookie": "crow-session=" + forged})
    t.ok(span(html, "visits") == "1" and sc3 and not sc3.startswith("crow-session=" + sid.split(".")[0]),
         "a forged signature gets a fresh session", (span(html, "visits"), sc3))
    st, sc4, _, html, _ = req("GET", "/test?forget=1", headers={"Cookie": "crow-session=" + sid})
    t.ok(span(html, "visits") == "(session ended)" and sc4 and "Max-Age=0" in sc4 and "Path=/test" in sc4,
         "ending the session removes the cookie", sc4)
    st, _, _, html, _ = req("GET", "/test", headers={"Cookie": "crow-session=" + sid})
    t.eq(span(html, "visits"), "1", "the ended session is gone server-side")

    # HEAD, the other pages, /tpl.
    st, _, _, html, r = req("HEAD", "/test")
    t.ok(st == 200 and html == "" and int(r.getheader("Content-Length")) > 1000, "HEAD /test: headers only")
    for path in ("/", "/news", "/software", "/docs", "/gallery", "/contact"):
        st, _, _, html, r = req("GET", path)
        t.ok(st == 200 and html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
             and r.getheader("Content-Type") == "text/html; charset=utf-8", "GET %s: a whole HTML page" % path)
    st, _, _, html, _ = req("GET", "/docs")
    t.ok("<h3>What works today</h3>" in html and "<table class=\"grid\">" in html, "/docs renders the README")
    st, _, _, html, _ = req("GET", "/tpl?name=%3Cx%3E%26%27&n=3")
    t.ok(st == 200 and html.count("<td>&lt;x&gt;&amp;&#39;</td>") == 20 and "<td>60</td>" in html,
         "/tpl: 20 rows, the name escaped in each, n used")
    st, _, _, _, _ = req("GET", "/test/nothing-here")
    t.eq(st, 404, "an unknown /test/ page is 404")
finally:
    rc = stop(p)
    t.ok(rc == 0, "crow-httpd stops cleanly", (p.stdout.read() if p.stdout else "")[-1500:])
    shutil.rmtree(tmp, ignore_errors=True)
    t.done()
