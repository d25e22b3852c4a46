#!/usr/bin/env python3
# ftp.t — mmftpd driven by real clients: an ftplib conformance run over every command of
# issue 7 and its reply codes on 127.0.0.1 and [::1]; jail escapes in the simulated chroot
# (and under chroot(2) when root); bounce and theft attempts from 127.0.0.2; N+1 connections
# refused with 421 while 127.0.0.3 is served; bad passwords delayed then disconnected; lftp
# mirror up and back (spaces, UTF-8 names, MLSD on and off) + diff -r; curl upload, download
# and resume; FTPS with curl --ssl-reqd, lftp ftp:ssl-force and FTP_TLS.prot_p; AUTH TLS with
# a pipelined NOOP; ABOR during a 256 MiB transfer; a throttled download never beats its limit.
# timeout: 240
import atexit
import ftplib
import io
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, ROOT, Tap, free_port, mmftpasswd, stop, wait_port

t = Tap()
tmp = tempfile.mkdtemp(prefix="crow-ftp-t-")
os.chmod(tmp, 0o755)
subprocess.run([os.path.join(ROOT, "tools", "mkcert"), tmp], check=True)
CERT = os.path.join(tmp, "cert.pem")
procs = []
atexit.register(lambda: [stop(p) for p in procs])
IS_ROOT = os.getuid() == 0


def mkhome(name):
    d = os.path.join(tmp, "home", name)
    os.makedirs(d, exist_ok=True)
    return d


passwd = mmftpasswd


def start(name, conf_text, ports):
    conf = os.path.join(tmp, name + ".conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    log = open(os.path.join(tmp, name + ".log"), "w")
    p = subprocess.Popen([os.path.join(BIN, "mmftpd"), "-f", conf, "--foreground"],
                         stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    for host, port in ports:
        if not wait_port(host, port, 20, p):
            raise RuntimeError("%s did not start: %s" % (name, open(log.name).read()))
    return p


def server_log(name):
    with open(os.path.join(tmp, name + ".log")) as f:
        return f.read()


def code(fn, *a):
    """Runs an ftplib call; returns the reply code (an int) of its reply or error."""
    try:
        r = fn(*a)
        return int(str(r)[:3]) if r and str(r)[:3].isdigit() else 0
    except ftplib.all_errors as e:
        s = str(e)
        return int(s[:3]) if s[:3].isdigit() else -1


def stor_code(f, cmd, data):
    """STOR that tolerates the server cutting the data connection (quota): the reply code."""
    try:
        conn = f.transfercmd(cmd)
    except ftplib.all_errors as e:
        return int(str(e)[:3]) if str(e)[:3].isdigit() else -1
    try:
        conn.sendall(data)
    except OSError:
        pass
    conn.close()
    return code(f.getresp)


# ---------------------------------------------------------------------------- set-up
accounts = os.path.join(tmp, "accounts")
demo_home = mkhome("demo")
ok_add = passwd(accounts, "add", "demo", "-d", demo_home, "-p", "all", "--stdin", password="demo")
t.ok(ok_add.returncode == 0, "mmftpasswd add demo --stdin", ok_add.stderr)
passwd(accounts, "add", "ro", "-d", mkhome("ro"), "-p", "lr", "--stdin", "--sha512", password="ro")
passwd(accounts, "add", "quota", "-d", mkhome("quota"), "-p", "all", "-q", "100K", "-Q", "5",
       "--stdin", password="quota")
passwd(accounts, "add", "slow", "-d", mkhome("slow"), "-p", "lr", "-o", "1M", "--stdin", password="slow")
passwd(accounts, "add", "anonymous", "-d", mkhome("anon"), "-p", "all", "--anonymous")
with open(accounts) as f:
    acc_text = f.read()
t.ok("$y$" in acc_text and "$6$" in acc_text and "anonymous::" in acc_text
     and ":lr:" in acc_text, "accounts file: yescrypt and sha512 hashes, anonymous, perms", acc_text)
r = passwd(accounts, "list")
t.ok(r.returncode == 0 and "demo " in r.stdout and "quota " in r.stdout, "mmftpasswd list", r.stdout)
with open(os.path.join(mkhome("ro"), "readme.txt"), "w") as f:
    f.write("read only\n")
with open(os.path.join(mkhome("slow"), "two-mb"), "wb") as f:
    f.write(os.urandom(2 * 1024 * 1024))
with open(os.path.join(tmp, "secret.txt"), "w") as f:
    f.write("outside the jail\n")
os.symlink("/etc", os.path.join(demo_home, "etc-link"))
os.symlink(os.path.join(tmp, "secret.txt"), os.path.join(demo_home, "secret-link"))
os.symlink(os.path.join(tmp, "created-outside"), os.path.join(demo_home, "dangling-link"))
os.makedirs(os.path.join(demo_home, "sub"))
os.symlink("../sub", os.path.join(demo_home, "sub", "inside-link"))
with open(os.path.join(tmp, "welcome.txt"), "w") as f:
    f.write("Welcome to the crow test FTP\n")
with open(os.path.join(tmp, "motd.txt"), "w") as f:
    f.write("Message of the day\n")
big = os.path.join(demo_home, "big256")
with open(big, "wb") as f:
    f.truncate(256 * 1024 * 1024)

port, port6 = free_port(), free_port("::1")
pasv_lo = free_port()
start("main", """listen 127.0.0.1:%d
listen [::1]:%d
accounts accounts
tls-cert cert.pem
tls-key key.pem
welcome welcome.txt
motd motd.txt
passive-ports %d-%d
login-delay 200ms
login-failures 3
transfer-timeout 20s
timeout 60s
""" % (port, port6, pasv_lo, pasv_lo + 40), [("127.0.0.1", port), ("::1", port6)])
t.ok(True, "mmftpd started on 127.0.0.1:%d and [::1]:%d" % (port, port6))


# ---------------------------------------------------------------------------- conformance
def conformance(host, p):
    v6 = ":" in host
    tag = "[%s]" % host
    f = ftplib.FTP(timeout=15)
    welcome = f.connect(host, p)
    t.ok(welcome.startswith("220-Welcome to the crow test FTP") and "\n220 " in welcome,
         "%s 220 greeting with the welcome file" % tag, welcome)
    t.eq(code(f.sendcmd, "PWD"), 530, "%s PWD before login: 530" % tag)
    t.eq(code(f.sendcmd, "SYST"), 215, "%s SYST 215" % tag)
    feat = f.sendcmd("FEAT")
    t.ok(feat.startswith("211-") and all(x in feat for x in
                                         ("UTF8", "EPSV", "MLST type*", "AUTH TLS", "REST STREAM", "SIZE", "MDTM")),
         "%s FEAT 211 lists UTF8 EPSV MLST AUTH TLS REST SIZE MDTM" % tag, feat)
    t.eq(code(f.sendcmd, "OPTS UTF8 ON"), 200, "%s OPTS UTF8 ON 200" % tag)
    t.eq(code(f.sendcmd, "HELP"), 214, "%s HELP 214" % tag)
    t.eq(code(f.sendcmd, "NOOP"), 200, "%s NOOP 200" % tag)
    t.eq(code(f.sendcmd, "STAT"), 211, "%s STAT 211" % tag)
    t.eq(code(f.sendcmd, "XYZZY"), 500, "%s unknown command 500" % tag)
    t.eq(code(f.sendcmd, "SITE CHMOD 777 x"), 502, "%s SITE 502 (not implemented)" % tag)
    t.eq(code(f.sendcmd, "PASS x"), 503, "%s PASS without USER 503" % tag)
    t.eq(code(f.sendcmd, "USER demo"), 331, "%s USER 331" % tag)
    t.eq(code(f.sendcmd, "PASS demo"), 230, "%s PASS 230" % tag)
    t.eq(f.pwd(), "/", "%s PWD /" % tag)
    t.eq(code(f.sendcmd, "XPWD"), 257, "%s XPWD 257" % tag)
    for c, want in (("TYPE I", 200), ("TYPE A", 200), ("TYPE L 8", 200), ("TYPE E", 504),
                    ("MODE S", 200), ("MODE B", 504), ("STRU F", 200), ("STRU R", 504),
                    ("ALLO 1000", 202), ("ABOR", 225), ("REST x", 501)):
        t.eq(code(f.sendcmd, c), want, "%s %s -> %d" % (tag, c, want))
    d = "dir %s ünï" % ("v6" if v6 else "v4")
    t.ok(f.mkd(d).endswith(d), "%s MKD with a space and UTF-8: 257" % tag)
    t.eq(code(f.sendcmd, "XMKD x-" + d), 257, "%s XMKD 257" % tag)
    t.eq(code(f.sendcmd, "XRMD x-" + d), 250, "%s XRMD 250" % tag)
    t.eq(code(f.cwd, d), 250, "%s CWD 250" % tag)
    t.eq(f.pwd(), "/" + d, "%s PWD after CWD" % tag)
    t.eq(code(f.sendcmd, "CDUP"), 250, "%s CDUP 250" % tag)
    t.eq(code(f.sendcmd, "XCWD " + d), 250, "%s XCWD 250" % tag)
    t.eq(code(f.sendcmd, "XCUP"), 250, "%s XCUP 250" % tag)
    t.eq(code(f.cwd, "no-such-dir"), 550, "%s CWD missing: 550" % tag)
    data = os.urandom(300000)
    name = d + "/fïle one.bin"
    t.eq(code(f.storbinary, "STOR " + name, io.BytesIO(data)), 226, "%s STOR 226" % tag)
    out = io.BytesIO()
    t.eq(code(f.retrbinary, "RETR " + name, out.write), 226, "%s RETR 226" % tag)
    t.ok(out.getvalue() == data, "%s RETR byte-identical" % tag)
    f.voidcmd("TYPE I")
    t.eq(f.size(name), len(data), "%s SIZE 213" % tag)
    mdtm = f.sendcmd("MDTM " + name)
    t.ok(mdtm.startswith("213 ") and len(mdtm.split()[1]) == 14, "%s MDTM 213 YYYYMMDDHHMMSS" % tag, mdtm)
    out = io.BytesIO()
    f.retrbinary("RETR " + name, out.write, rest=1000)
    t.ok(out.getvalue() == data[1000:], "%s REST 1000 + RETR" % tag)
    t.eq(code(f.sendcmd, "REST 999999999"), 350, "%s REST 350" % tag)
    t.eq(code(f.retrbinary, "RETR " + name, lambda b: None), 554, "%s REST beyond the end: 554" % tag)
    t.eq(code(f.storbinary, "APPE " + name, io.BytesIO(b"tail")), 226, "%s APPE 226" % tag)
    t.eq(f.size(name), len(data) + 4, "%s APPE appended" % tag)
    # ASCII both ways
    f.voidcmd("TYPE A")
    t.eq(code(f.storlines, "STOR " + d + "/text.txt", io.BytesIO(b"line one\r\nline two\r\n")), 226,
         "%s STOR in TYPE A" % tag)
    with open(os.path.join(demo_home, d, "text.txt"), "rb") as fh:
        t.eq(fh.read(), b"line one\nline two\n", "%s TYPE A upload stored with LF" % tag)
    f.voidcmd("TYPE A")
    conn = f.transfercmd("RETR " + d + "/text.txt")   # the wire bytes, not ftplib's lines
    raw = b""
    while True:
        b = conn.recv(4096)
        if not b:
            break
        raw += b
    conn.close()
    f.voidresp()
    t.eq(raw, b"line one\r\nline two\r\n", "%s TYPE A download sent with CRLF" % tag)
    t.eq(code(f.sendcmd, "SIZE " + name), 550, "%s SIZE in TYPE A: 550" % tag)
    f.voidcmd("TYPE I")
    # STOU
    conn = f.transfercmd("STOU")
    conn.sendall(b"unique")
    conn.close()
    t.eq(code(f.voidresp), 226, "%s STOU 150 FILE: / 226" % tag)
    # listings
    lines = []
    f.dir(d, lines.append)
    t.ok(any(l.startswith("-rw") and l.endswith("fïle one.bin") for l in lines), "%s LIST" % tag, lines)
    t.ok(sorted(f.nlst(d)) == sorted([d + "/fïle one.bin", d + "/text.txt"]), "%s NLST" % tag, f.nlst(d))
    facts = dict(f.mlsd(d))
    t.ok(facts.get("fïle one.bin", {}).get("size") == str(len(data) + 4)
         and facts["fïle one.bin"]["type"] == "file" and facts["."]["type"] == "cdir"
         and "modify" in facts["text.txt"] and "r" in facts["text.txt"]["perm"],
         "%s MLSD facts (type size modify perm)" % tag, facts)
    mlst = f.sendcmd("MLST " + name)
    t.ok(mlst.startswith("250-") and "type=file;" in mlst and "size=%d;" % (len(data) + 4) in mlst,
         "%s MLST 250" % tag, mlst)
    t.eq(code(f.sendcmd, "OPTS MLST type;size;"), 200, "%s OPTS MLST 200" % tag)
    t.ok("modify=" not in f.sendcmd("MLST " + name), "%s OPTS MLST restricts the facts" % tag)
    # renames and deletes
    t.eq(code(f.sendcmd, "RNTO x"), 503, "%s RNTO without RNFR: 503" % tag)
    t.eq(code(f.sendcmd, "RNFR " + name), 350, "%s RNFR 350" % tag)
    t.eq(code(f.sendcmd, "RNTO " + d + "/renamed.bin"), 250, "%s RNTO 250" % tag)
    t.eq(code(f.sendcmd, "RNFR " + name), 550, "%s RNFR missing: 550" % tag)
    t.eq(code(f.delete, d + "/renamed.bin"), 250, "%s DELE 250" % tag)
    t.eq(code(f.delete, d + "/renamed.bin"), 550, "%s DELE missing: 550" % tag)
    t.eq(code(f.rmd, d), 550, "%s RMD non-empty: 550" % tag)
    f.delete(d + "/text.txt")
    t.eq(code(f.rmd, d), 250, "%s RMD 250" % tag)
    # data connection set-up
    if v6:
        t.eq(code(f.sendcmd, "PASV"), 522, "[::1] PASV on IPv6 fails cleanly: 522")
        t.eq(code(f.sendcmd, "EPSV 1"), 522, "[::1] EPSV 1 on IPv6: 522")
        t.eq(code(f.sendcmd, "PORT 127,0,0,1,100,100"), 522, "[::1] PORT on IPv6: 522")
    else:
        r = f.sendcmd("PASV")
        pp = [int(x) for x in r[r.index("(") + 1:r.index(")")].split(",")]
        t.ok(r.startswith("227 ") and pp[:4] == [127, 0, 0, 1]
             and pasv_lo <= pp[4] * 256 + pp[5] <= pasv_lo + 40, "127.0.0.1 PASV 227 in the passive range", r)
        t.eq(code(f.sendcmd, "EPSV 2"), 522, "127.0.0.1 EPSV 2 on IPv4: 522")
    t.ok(f.sendcmd("EPSV").startswith("229 Entering Extended Passive Mode (|||"), "%s EPSV 229" % tag)
    f.set_pasv(False)        # PORT on IPv4, EPRT on IPv6
    out = io.BytesIO()
    t.eq(code(f.retrbinary, "RETR big256", lambda b: None, 1 << 20, 256 * 1024 * 1024 - 5), 226,
         "%s active mode (%s) RETR" % (tag, "EPRT" if v6 else "PORT"))
    f.set_pasv(True)
    t.eq(code(f.sendcmd, "EPSV ALL"), 200, "%s EPSV ALL 200" % tag)
    t.eq(code(f.sendcmd, "PASV" if not v6 else "EPRT |2|::1|5000|"), 503, "%s after EPSV ALL: 503" % tag)
    t.eq(code(f.sendcmd, "RETR"), 501, "%s RETR without argument: 501" % tag)
    s = f.sock
    s.sendall(b"NOOP " + b"x" * 3000 + b"\r\n")
    t.eq(code(f.getresp), 500, "%s line too long: 500" % tag)
    t.eq(code(f.sendcmd, "NOOP"), 200, "%s still served after a long line" % tag)
    t.eq(code(f.quit), 221, "%s QUIT 221" % tag)


for host, p in (("127.0.0.1", port), ("::1", port6)):
    try:
        conformance(host, p)
    except Exception as e:
        t.ok(False, "conformance on %s raised" % host, repr(e))

# ---------------------------------------------------------------------------- permissions
f = ftplib.FTP(timeout=10)
f.connect("127.0.0.1", port)
t.eq(code(f.login, "ro", "ro"), 230, "read-only user logs in")
t.eq(code(f.storbinary, "STOR x", io.BytesIO(b"x")), 550, "read-only user: STOR 550")
t.eq(code(f.mkd, "d"), 550, "read-only user: MKD 550")
t.eq(code(f.delete, "readme.txt"), 550, "read-only user: DELE 550")
out = io.BytesIO()
t.eq(code(f.retrbinary, "RETR readme.txt", out.write), 226, "read-only user: RETR 226")
f.quit()
f = ftplib.FTP(timeout=10)
f.connect("127.0.0.1", port)
t.eq(code(f.login, "anonymous", "guest@example.org"), 230, "anonymous logs in with any e-mail address")
t.eq(code(f.storbinary, "STOR x", io.BytesIO(b"x")), 550, "anonymous is read-only despite `all`")
f.quit()
# quotas
f = ftplib.FTP(timeout=10)
f.connect("127.0.0.1", port)
f.login("quota", "quota")
t.eq(code(f.storbinary, "STOR a", io.BytesIO(b"a" * 60000)), 226, "quota user: 60 KB stored")
t.eq(stor_code(f, "STOR b", b"b" * 60000), 552, "quota user: 60 KB more: 552")
qh = os.path.join(tmp, "home", "quota")
t.ok(sorted(os.listdir(qh)) == ["a"] and os.path.getsize(os.path.join(qh, "a")) == 60000,
     "quota: the failed upload left nothing, the first file intact", os.listdir(qh))
t.eq(code(f.storbinary, "STOR a", io.BytesIO(b"c" * 90000)), 226, "quota: replacing a file counts its old size")
for i in range(4):
    f.storbinary("STOR f%d" % i, io.BytesIO(b"1"))
t.eq(stor_code(f, "STOR f9", b"1"), 552, "quota: file count 552")
f.quit()

# ---------------------------------------------------------------------------- jail
f = ftplib.FTP(timeout=10)
f.connect("127.0.0.1", port)
f.login("demo", "demo")
f.voidcmd("TYPE I")


def retr_code(path):
    return code(f.retrbinary, "RETR " + path, lambda b: None)


for path in ("/etc/passwd", "../../../../../../etc/passwd", "//etc//passwd", "sub/../../../etc/passwd",
             "etc-link/passwd", "secret-link", "sub/inside-link/../../secret.txt", "..\\..\\etc\\passwd",
             "~/../../etc/passwd", "/../etc/passwd"):
    t.eq(retr_code(path), 550, "jail: RETR %s -> 550" % path)
t.eq(code(f.sendcmd, "RETR a\0/../../etc/passwd"), 553, "jail: a NUL byte in the path -> 553")
t.eq(code(f.sendcmd, "MKD " + "n" * 300), 553, "jail: a 300-byte name -> 553")
t.eq(code(f.cwd, "etc-link"), 550, "jail: CWD to a symlink out -> 550")
t.eq(code(f.cwd, "../../.."), 250, "jail: CWD ../../.. stays at the root")
t.eq(f.pwd(), "/", "jail: PWD is still /")
t.eq(code(f.cwd, "sub/inside-link"), 250, "jail: a symlink inside the home is followed")
f.cwd("/")
t.eq(code(f.storbinary, "STOR ../../escape.txt", io.BytesIO(b"e")), 226, "jail: STOR ../../escape.txt lands inside")
t.ok(os.path.exists(os.path.join(demo_home, "escape.txt")) and not os.path.exists(os.path.join(tmp, "escape.txt"))
     and not os.path.exists(os.path.join(tmp, "home", "escape.txt")), "jail: nothing written outside the home")
t.eq(code(f.storbinary, "STOR secret-link", io.BytesIO(b"overwrite")), 553, "jail: STOR through a symlink out -> 553")
t.eq(code(f.storbinary, "STOR dangling-link", io.BytesIO(b"x")), 553, "jail: STOR through a dangling symlink out -> 553")
t.ok(not os.path.exists(os.path.join(tmp, "created-outside")), "jail: the dangling target was not created")
with open(os.path.join(tmp, "secret.txt")) as fh:
    t.eq(fh.read(), "outside the jail\n", "jail: the outside file is untouched")
lines = []
f.dir("/", lines.append)
t.ok(not any("etc-link" in l or "secret-link" in l for l in lines), "jail: symlinks out are not listed", lines)
t.eq(code(f.sendcmd, "RNFR escape.txt"), 350, "jail: RNFR")
t.eq(code(f.sendcmd, "RNTO ../../../tmp-escape"), 250, "jail: RNTO ../../../x lands inside")
t.ok(os.path.exists(os.path.join(demo_home, "tmp-escape")), "jail: renamed inside the home")
f.quit()

# ---------------------------------------------------------------------------- bounce and theft
f = ftplib.FTP(timeout=10)
f.connect("127.0.0.1", port)
f.login("demo", "demo")
t.eq(code(f.sendcmd, "PORT 127,0,0,2,100,1"), 504, "bounce: PORT to 127.0.0.2 from 127.0.0.1: 504")
t.eq(code(f.sendcmd, "PORT 127,0,0,1,0,25"), 504, "bounce: PORT to port 25: 504")
t.eq(code(f.sendcmd, "EPRT |1|127.0.0.2|30000|"), 504, "bounce: EPRT to another address: 504")
t.eq(code(f.sendcmd, "EPRT |1|127.0.0.1|1023|"), 504, "bounce: EPRT to port 1023: 504")
r = f.sendcmd("PASV")
pp = [int(x) for x in r[r.index("(") + 1:r.index(")")].split(",")]
pport = pp[4] * 256 + pp[5]
thief = socket.socket()
thief.settimeout(5)
thief.bind(("127.0.0.2", 0))
thief.connect(("127.0.0.1", pport))
time.sleep(0.2)
legit = socket.create_connection(("127.0.0.1", pport), timeout=10)
f.putcmd("RETR big256")
t.ok(f.getresp().startswith("150"), "theft: the real client's RETR is answered 150")
got = 0
legit.settimeout(10)
while True:
    b = legit.recv(1 << 20)
    if not b:
        break
    got += len(b)
legit.close()
t.eq(code(f.voidresp), 226, "theft: the real client's transfer completes")
t.eq(got, 256 * 1024 * 1024, "theft: the real client got every byte")
try:
    stolen = thief.recv(100)
except OSError:
    stolen = b""
t.eq(stolen, b"", "theft: the connection from 127.0.0.2 got nothing")
thief.close()
t.ok("refused data connection from 127.0.0.2" in server_log("main"), "theft: logged")
t.ok("not capped" not in server_log("main") and "serving ftp" in server_log("main"),
     "session threads get small dispatch caches (ecl_make_cache interposed in the built program)")
# a 127.0.0.2 client may use its own address
f2 = ftplib.FTP(timeout=10, source_address=("127.0.0.2", 0))
f2.connect("127.0.0.1", port)
f2.login("demo", "demo")
f2.set_pasv(False)
t.eq(code(f2.retrbinary, "RETR escape.txt" if False else "RETR tmp-escape", lambda b: None), 226,
     "a client on 127.0.0.2 uses PORT to itself")
f2.quit()

# ---------------------------------------------------------------------------- ABOR
f.voidcmd("TYPE I")
conn = f.transfercmd("RETR big256")
first = conn.recv(65536)
t0 = time.time()
try:
    resp = f.abort()
    if resp.startswith("426"):        # RFC 959: 426 for the transfer, then 226 for ABOR
        resp += " / " + f.getresp()
    abort_ok = resp.startswith("426") and "226" in resp
except ftplib.all_errors as e:
    resp, abort_ok = str(e), False
conn.close()
t.ok(first and abort_ok and time.time() - t0 < 5, "ABOR during a 256 MiB RETR: 426 + 226 within 5 s", resp)
t.eq(code(f.sendcmd, "NOOP"), 200, "the session goes on after ABOR")
f.quit()

# ---------------------------------------------------------------------------- throttling
f = ftplib.FTP(timeout=20)
f.connect("127.0.0.1", port)
f.login("slow", "slow")
t0 = time.time()
n = [0]
f.retrbinary("RETR two-mb", lambda b: n.__setitem__(0, n[0] + len(b)))
dt = time.time() - t0
t.ok(n[0] == 2 * 1024 * 1024 and dt >= 2 * 1024 * 1024 / (1024 * 1024) * 0.99,
     "throttled download (1 MiB/s user limit): 2 MiB in %.2f s, never faster" % dt)
f.quit()

# ---------------------------------------------------------------------------- curl
src = os.path.join(tmp, "curl-src.bin")
with open(src, "wb") as fh:
    fh.write(os.urandom(3 * 1024 * 1024 + 7))
url = "ftp://demo:demo@127.0.0.1:%d/" % port
r = subprocess.run(["curl", "-sS", "-T", src, url + "curl%20up.bin"], capture_output=True, text=True, timeout=60)
t.ok(r.returncode == 0 and open(os.path.join(demo_home, "curl up.bin"), "rb").read() == open(src, "rb").read(),
     "curl -T upload byte-identical", r.stderr)
dst = os.path.join(tmp, "curl-dst.bin")
r = subprocess.run(["curl", "-sS", "-o", dst, url + "curl%20up.bin"], capture_output=True, text=True, timeout=60)
t.ok(r.returncode == 0 and open(dst, "rb").read() == open(src, "rb").read(), "curl download byte-identical", r.stderr)
with open(dst, "r+b") as fh:
    fh.truncate(1000000)
r = subprocess.run(["curl", "-sS", "-C", "-", "-o", dst, url + "curl%20up.bin"], capture_output=True, text=True, timeout=60)
t.ok(r.returncode == 0 and open(dst, "rb").read() == open(src, "rb").read(), "curl -C - resumed download (REST)", r.stderr)
with open(os.path.join(demo_home, "curl up.bin"), "r+b") as fh:
    fh.truncate(2000000)
r = subprocess.run(["curl", "-sS", "-C", "-", "-T", src, url + "curl%20up.bin"], capture_output=True, text=True, timeout=60)
t.ok(r.returncode == 0 and open(os.path.join(demo_home, "curl up.bin"), "rb").read() == open(src, "rb").read(),
     "curl -C - -T resumed upload (SIZE + APPE)", r.stderr)
r = subprocess.run(["curl", "-sS", "--ssl-reqd", "--cacert", CERT, "-T", src,
                    "ftp://demo:demo@localhost:%d/tls%%20up.bin" % port], capture_output=True, text=True, timeout=60)
r2 = subprocess.run(["curl", "-sS", "--ssl-reqd", "--cacert", CERT, "-o", dst + ".tls",
                     "ftp://demo:demo@localhost:%d/tls%%20up.bin" % port], capture_output=True, text=True, timeout=60)
t.ok(r.returncode == 0 and r2.returncode == 0 and open(dst + ".tls", "rb").read() == open(src, "rb").read(),
     "curl --ssl-reqd upload and download (AUTH TLS, PROT P)", r.stderr + r2.stderr)

# ---------------------------------------------------------------------------- FTPS with ftplib
ctx = ssl.create_default_context(cafile=CERT)
ft = ftplib.FTP_TLS(context=ctx, timeout=15)
ft.connect("localhost", port)
t.ok(ft.auth().startswith("234"), "FTP_TLS: AUTH TLS 234")
ft.login("demo", "demo")
t.ok(ft.prot_p().startswith("200"), "FTP_TLS: PBSZ 0 + PROT P 200")
payload = os.urandom(500000)
ft.storbinary("STOR tls.bin", io.BytesIO(payload))
out = io.BytesIO()
ft.retrbinary("RETR tls.bin", out.write)
t.ok(out.getvalue() == payload, "FTP_TLS prot_p: STOR and RETR byte-identical over TLS data")
t.ok(len(ft.nlst()) > 3, "FTP_TLS prot_p: NLST over TLS data")
ft.quit()
f = ftplib.FTP(timeout=10)
f.connect("127.0.0.1", port)
f.login("demo", "demo")
t.eq(code(f.sendcmd, "PROT P"), 503, "PROT P without AUTH: 503")
t.eq(code(f.sendcmd, "AUTH KERBEROS"), 504, "AUTH with an unknown mechanism: 504")
f.quit()
# AUTH TLS and NOOP in one segment: the NOOP must never be answered inside TLS
s = socket.create_connection(("127.0.0.1", port), timeout=10)
buf = b""
while b"\r\n220 " not in buf and not buf.startswith(b"220 "):
    buf += s.recv(4096)
s.sendall(b"AUTH TLS\r\nNOOP\r\n")
rep = b""
while b"\r\n" not in rep:
    rep += s.recv(1)
t.ok(rep.startswith(b"234"), "injection: AUTH TLS answered 234", rep)
ts = ctx.wrap_socket(s, server_hostname="localhost")
ts.sendall(b"PWD\r\n")
first = b""
while b"\r\n" not in first:
    first += ts.recv(1)
t.ok(first.startswith(b"530"), "injection: the first reply inside TLS is PWD's 530, not NOOP's 200", first)
ts.close()
# lftp with ftp:ssl-force
lsrc = os.path.join(tmp, "lftp-src")
os.makedirs(os.path.join(lsrc, "a dir", "ünïcödé dïr"))
for rel, size in (("top file.txt", 1000), ("a dir/inner file.bin", 200000),
                  ("a dir/ünïcödé dïr/çafé ñ.txt", 12345), ("empty", 0)):
    with open(os.path.join(lsrc, rel), "wb") as fh:
        fh.write(os.urandom(size))


def lftp(script, tls=False):
    pre = "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 15; set ftp:passive-mode on; "
    if tls:
        pre += "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:ca-file %s; " % CERT
    else:
        pre += "set ftp:ssl-allow false; "
    return subprocess.run(["lftp", "-u", "demo,demo", "-p", str(port), "-e", pre + script + "; quit",
                           "localhost" if tls else "127.0.0.1"],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, HOME=tmp))


for mlsd in ("on", "off"):
    back = os.path.join(tmp, "lftp-back-" + mlsd)
    r = lftp("set ftp:use-mlsd %s; mirror -R %s mirror-%s; mirror mirror-%s %s" % (mlsd, lsrc, mlsd, mlsd, back))
    d = subprocess.run(["diff", "-r", lsrc, back], capture_output=True, text=True)
    t.ok(r.returncode == 0 and d.returncode == 0,
         "lftp mirror up and back (MLSD %s), spaces and UTF-8 names: diff -r clean" % mlsd, r.stderr + d.stdout)
back = os.path.join(tmp, "lftp-back-tls")
r = lftp("mirror -R %s mirror-tls; mirror mirror-tls %s" % (lsrc, back), tls=True)
d = subprocess.run(["diff", "-r", lsrc, back], capture_output=True, text=True)
t.ok(r.returncode == 0 and d.returncode == 0, "lftp ftp:ssl-force mirror up and back over FTPS", r.stderr + d.stdout)

# ---------------------------------------------------------------------------- limits server
lport = free_port()
start("limits", """listen 127.0.0.1:%d
accounts accounts
max-per-address 2
login-delay 300ms
login-failures 3
bandwidth-out 2M
""" % lport, [("127.0.0.1", lport)])
time.sleep(0.3)      # wait_port's probe connection is gone
held = []
for i in range(2):
    c = socket.create_connection(("127.0.0.1", lport), timeout=5)
    held.append(c)
    held[-1].recv(100)
extra = socket.create_connection(("127.0.0.1", lport), timeout=5)
r = extra.recv(200)
t.ok(r.startswith(b"421"), "N+1 connections from 127.0.0.1: 421", r)
extra.close()
other = socket.socket()
other.settimeout(5)
other.bind(("127.0.0.3", 0))
other.connect(("127.0.0.1", lport))
t.ok(other.recv(200).startswith(b"220"), "meanwhile 127.0.0.3 is served (220)")
other.close()
for c in held:
    c.close()
time.sleep(0.3)
f = ftplib.FTP(timeout=10)
f.connect("127.0.0.1", lport)
times = []
codes = []
for i in range(3):
    t0 = time.time()
    f.putcmd("USER demo")
    f.getresp()
    f.putcmd("PASS wrong%d" % i)
    try:
        codes.append(f.getresp()[:3])
    except ftplib.all_errors as e:
        codes.append(str(e)[:3])
    times.append(time.time() - t0)
t.eq(codes, ["530", "530", "421"], "bad passwords: 530, 530, then 421")
t.ok(times[0] >= 0.28 and times[1] >= 0.58 and times[2] >= 0.88, "bad passwords: growing delay %s" % times)
try:
    closed = f.sock.recv(10) == b""
except OSError:
    closed = True
t.ok(closed, "bad passwords: then disconnected")
f.close()
f = ftplib.FTP(timeout=20)
f.connect("127.0.0.1", lport)
f.login("ro", "ro")
with open(os.path.join(tmp, "home", "ro", "two-mb"), "wb") as fh:
    fh.write(os.urandom(3 * 1024 * 1024))
t0 = time.time()
f.retrbinary("RETR two-mb", lambda b: None)
dt = time.time() - t0
t.ok(dt >= 1.48, "per-connection bandwidth-out 2M: 3 MiB in %.2f s, never faster" % dt)
f.quit()

# ---------------------------------------------------------------------------- real chroot
if not IS_ROOT:
    t.skip("chroot(2) jail: RETR /etc/passwd and symlinks out", "needs root (CI runs as root)")
else:
    jail = os.path.join(tmp, "jail")
    jhome = os.path.join(jail, "srv", "demo")
    os.makedirs(jhome)
    nobody = pwd.getpwnam("nobody")
    os.chown(jhome, nobody.pw_uid, nobody.pw_gid)
    with open(os.path.join(jhome, "file.txt"), "w") as fh:
        fh.write("in the jail\n")
    os.symlink("/etc/passwd", os.path.join(jhome, "abs-link"))
    os.symlink("../../../../../../etc/passwd", os.path.join(jhome, "rel-link"))
    jacc = os.path.join(tmp, "jail-accounts")
    passwd(jacc, "add", "demo", "-d", jhome, "-p", "all", "--stdin", password="demo")
    jport = free_port()
    start("jail", "listen 127.0.0.1:%d\naccounts jail-accounts\nchroot jail\nuser nobody\n" % jport,
          [("127.0.0.1", jport)])
    f = ftplib.FTP(timeout=10)
    f.connect("127.0.0.1", jport)
    f.login("demo", "demo")
    out = io.BytesIO()
    t.eq(code(f.retrbinary, "RETR file.txt", out.write), 226, "chroot(2): RETR inside works")
    for p in ("/etc/passwd", "../../../etc/passwd", "abs-link", "rel-link"):
        t.eq(code(f.retrbinary, "RETR " + p, lambda b: None), 550, "chroot(2): RETR %s -> 550" % p)
    t.eq(code(f.storbinary, "STOR up.txt", io.BytesIO(b"u")), 226, "chroot(2): STOR as nobody")
    t.eq(os.stat(os.path.join(jhome, "up.txt")).st_uid, nobody.pw_uid, "chroot(2): the file is nobody's")
    f.quit()

for p in procs:
    stop(p)
t.eq(sorted(os.listdir(os.path.join(tmp, "home"))), ["anon", "demo", "quota", "ro", "slow"],
     "nothing was created beside the homes (upload temporaries stay inside)")
t.ok(not [n for n in os.listdir(demo_home) if n.startswith(".mmftpd-")], "no upload temporaries left")
errs = [l for name in ("main", "limits") for l in server_log(name).splitlines() if "handler:" in l]
t.ok(not errs, "no handler errors in the server logs", "\n".join(errs))
shutil.rmtree(tmp, ignore_errors=True)
t.done()
