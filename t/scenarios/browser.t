#!/usr/bin/env python3
# browser.t — a real browser on crow's demo site: headless Chromium (Debian) driven by
# playwright-core (npm, build/node/) against crow-httpd serving etc/site with the crow.site
# routes.  Submits the urlencoded, checkbox and upload forms (the page must echo each file's
# SHA-256), does the cookie round trip, and checks a screenshot is not blank (PNG decoded
# here with zlib).
# timeout: 400
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, ROOT, Tap, browser_ready, demo_site_conf, free_port, stop, wait_port

t = Tap()


def png_pixels(path):
    """Returns (width, height, rows) of an 8-bit RGB/RGBA PNG, rows as lists of pixel tuples."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype = ihdr[:4]
    if depth != 8 or ctype not in (2, 6):
        raise ValueError("unexpected PNG format %r" % (ihdr,))
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(h):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[k:k + 3]) for k in range(0, stride, bpp)])
        prev = line
    return w, h, rows


def main():
    if not browser_ready(t, "browser scenario"):
        return
    tmp = tempfile.mkdtemp(prefix="crow-browser-")
    port = free_port()
    conf = demo_site_conf(os.path.join(tmp, "httpd.conf"), port)
    # Upload files: a UTF-8 name, and binary data holding CRLF, dashes and boundary-like runs.
    f1 = os.path.join(tmp, "données ✓.txt")
    with open(f1, "w", encoding="utf-8") as f:
        f.write("crow upload test\r\n--\r\n------WebKitFormBoundary\r\n")
    f2 = os.path.join(tmp, "blob.bin")
    with open(f2, "wb") as f:
        f.write(bytes((i * 7919 + (i >> 8)) & 255 for i in range(300000)) + b"\r\n--\r\n")
    want = [(os.path.basename(p), os.path.getsize(p), hashlib.sha256(open(p, "rb").read()).hexdigest())
            for p in (f1, f2)]
    shot = os.path.join(tmp, "shot.png")
    uploads_before = set(n for n in os.listdir("/tmp") if n.startswith("crow-upload-"))
    p = subprocess.Popen([os.path.join(BIN, "crow-httpd"), "-f", conf, "--foreground"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        if not t.ok(wait_port("127.0.0.1", port, 60, p), "crow-httpd serves the site"):
            return
        r = subprocess.run(["node", os.path.join(ROOT, "t", "scenarios", "browser.js"),
                            "http://127.0.0.1:%d" % port, os.path.join(tmp, "profile"), shot, f1, f2],
                           capture_output=True, text=True, timeout=240,
                           env=dict(os.environ, CROW_ROOT=ROOT))
        try:
            seen = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            t.ok(False, "the browser driver reports", (r.stdout[-1000:] + r.stderr[-1500:]))
            return
        t.eq(seen.get("errors"), [], "the browser driver ran every step")
        pages = seen.get("pages", {})
        for path in ("/", "/news", "/software", "/docs", "/gallery", "/contact", "/test"):
            got = pages.get(path, {})
            t.ok(got.get("status") == 200 and got.get("title", "").startswith("crow")
                 and "text/html" in (got.get("type") or ""), "page %s: 200, HTML, titled" % path, got)
        t.eq((pages.get("/hello") or {}).get("status"), 200, "/hello answers")
        t.eq((seen.get("hello") or "").strip(), "hello", "/hello says hello")
        t.eq(seen.get("cookieBefore"), "(none)", "no test cookie before the round trip")
        form = seen.get("form") or {}
        t.eq(form.get("text"), 'héllo <b>&amp; "q"', "urlencoded POST: text echoed (escaped, UTF-8)")
        t.eq(form.get("number"), "1234", "urlencoded POST: integer field")
        t.eq(form.get("method"), "POST", "urlencoded form went by POST")
        cb = seen.get("checkbox") or {}
        t.eq(cb.get("color"), "red,blue", "checkboxes: repeated names as a list, in order")
        t.eq(cb.get("method"), "GET", "checkbox form went by GET")
        up = seen.get("upload") or {}
        t.eq(up.get("count"), "2", "upload: two files")
        t.eq(up.get("comment"), "two files", "upload: the text field beside the files")
        t.eq(list(zip(up.get("names", []), [int(s) for s in up.get("sizes", [])],
                      [s.strip() for s in up.get("sha256", [])])),
             want, "upload: each file's name, size and SHA-256 as the page shows them")
        ck = seen.get("cookie") or {}
        t.ok((ck.get("url") or "").endswith("/test"), "cookie form redirected back to /test", ck.get("url"))
        t.eq(ck.get("shown"), 'crow ✓ 42; "x"', "the next page shows the cookie's value")
        t.eq(ck.get("again"), 'crow ✓ 42; "x"', "and the one after")
        jar = [c for c in ck.get("jar", []) if c.get("name") == "crowtest"]
        t.ok(len(jar) == 1 and jar[0].get("httpOnly") and jar[0].get("path") == "/test"
             and jar[0].get("sameSite") == "Lax", "the browser stored it HttpOnly, Path=/test, SameSite=Lax", jar)
        t.ok((seen.get("contact") or "").startswith("Thank you, Ann <admin>."), "contact form answered",
             seen.get("contact"))
        t.ok(seen.get("images") == [200, 200, 200, 200], "gallery: four images loaded", seen.get("images"))
        if t.ok(os.path.exists(shot), "a screenshot was taken"):
            os.makedirs(os.path.join(ROOT, "build", "t"), exist_ok=True)
            shutil.copy(shot, os.path.join(ROOT, "build", "t", "browser-gallery.png"))  # for a human eye
            w, h, rows = png_pixels(shot)
            counts = {}
            for row in rows[::4]:
                for px in row[::4]:
                    counts[px] = counts.get(px, 0) + 1
            total = sum(counts.values())
            top = max(counts.values())
            t.ok(w == 1024 and h == 768, "screenshot is 1024x768", (w, h))
            t.ok(len(counts) >= 16 and top < 0.9 * total,
                 "screenshot is not blank: %d colours, the commonest %.0f%%" % (len(counts), 100.0 * top / total))
    finally:
        rc = stop(p)
        out = p.stdout.read() if p.stdout else ""
        t.ok(rc == 0, "crow-httpd stops cleanly on SIGTERM", out[-1500:])
        left = set(n for n in os.listdir("/tmp") if n.startswith("crow-upload-")) - uploads_before
        t.ok(not left, "no upload file left in /tmp", left)
        shutil.rmtree(tmp, ignore_errors=True)


try:
    main()
finally:
    t.done()
