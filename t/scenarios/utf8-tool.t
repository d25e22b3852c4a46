#!/usr/bin/env python3
"""utf8-tool.t — build/bin/crow-utf8 against CPython's UTF-8 codec: Markus Kuhn's stress test,
2,000 random and mutated inputs, every code point through -e, a large input through a pipe,
options and exit statuses.  Expected output is computed here by CPython, never stored."""
import os
import random
import resource
import subprocess
import sys

ROOT = os.environ.get("CROW_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SHARED = os.environ.get("CROW_SHARED", os.path.join(ROOT, "..", "shared"))
TOOL = os.path.join(ROOT, "build", "bin", "crow-utf8")
KUHN = os.path.join(SHARED, "data", "UTF-8-test.txt")
n = 0


def ok(cond, what):
    global n
    n += 1
    print("%sok %d - %s" % ("" if cond else "not ", n, what))
    sys.stdout.flush()
    return cond


def run(args, data, impl=None):
    env = dict(os.environ)
    env.pop("CROW_UTF8_IMPL", None)
    if impl:
        env["CROW_UTF8_IMPL"] = impl
    p = subprocess.run([TOOL] + args, input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=60)
    return p.returncode, p.stdout, p.stderr


def first_error(data):
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError as e:
        return e.start


if not os.access(TOOL, os.X_OK):
    ok(False, "crow-utf8 is built (run make tools)")
    print("1..%d" % n)
    sys.exit(1)

_, ver, _ = run(["--version"], b"")
impls = ["scalar", "sse2", "avx2"]
print("# crow-utf8 --version: %s" % ver.decode().strip())

# -- Markus Kuhn's decoder stress test, read in place.
print("# UTF-8-test.txt: \"UTF-8 decoder capability and stress test\" by Markus Kuhn,")
print("# https://www.cl.cam.ac.uk/~mgk25/ucs/examples/UTF-8-test.txt, CC BY 4.0")
with open(KUHN, "rb") as f:
    kuhn = f.read()
want = kuhn.decode("utf-8", "replace")
for impl in impls:
    rc, out, err = run(["-d"], kuhn, impl)
    got = out.decode("utf-32-le", "strict") if len(out) % 4 == 0 else None
    if not ok(rc == 0 and got == want,
              "Kuhn stress test: -d (CROW_UTF8_IMPL=%s) == bytes.decode('utf-8','replace')" % impl):
        if got is not None:
            for i, (a, b) in enumerate(zip(got, want)):
                if a != b:
                    print("#   first difference at code point %d: got U+%04X want U+%04X" % (i, ord(a), ord(b)))
                    break
            print("#   got %d code points, want %d" % (len(got), len(want)))
fe = first_error(kuhn)
if fe is None:
    # The original file holds raw ill-formed bytes in its sections 3-5; a copy that went
    # through a replacing decoder holds U+FFFD there instead and tests much less.
    print("# NOTE: this copy of UTF-8-test.txt is well-formed UTF-8 (%d U+FFFD in it): its"
          % want.count("\ufffd"))
    print("# malformed-sequence sections were already replaced; the random tests cover them")
rc, out, _ = run(["-v"], kuhn)
ok((rc, out.strip()) == ((0, b"") if fe is None else (1, str(fe).encode())),
   "Kuhn stress test: -v agrees with CPython (first error: %s)" % fe)
rc, out, _ = run(["-c"], kuhn)
ok(rc == 0 and out.strip() == str(len(want)).encode(), "Kuhn stress test: -c counts %d code points" % len(want))
# line by line: each line of the test file on its own (most lines hold one case)
bad = []
for lineno, line in enumerate(kuhn.split(b"\n"), 1):
    rc, out, _ = run(["-d"], line)
    if rc != 0 or out != line.decode("utf-8", "replace").encode("utf-32-le"):
        bad.append(lineno)
ok(not bad, "Kuhn stress test: each of its %d lines alone decodes as CPython%s"
   % (kuhn.count(b"\n") + 1, (" (lines %s differ)" % bad[:10]) if bad else ""))

# -- 2,000 random and mutated inputs (seeded), spread over the implementations.
rnd = random.Random(20261124)
special = [0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0x9F, 0xA0, 0x8F, 0x90]


def sample():
    kind = rnd.random()
    if kind < 0.4:  # valid text of every class, then mutated
        chars = []
        for _ in range(rnd.randrange(0, 120)):
            c = rnd.choice([rnd.randrange(0x20, 0x7F), rnd.randrange(0x80, 0x800),
                            rnd.randrange(0x800, 0xD800), rnd.randrange(0xE000, 0x10000),
                            rnd.randrange(0x10000, 0x110000)])
            chars.append(chr(c))
        b = bytearray("".join(chars).encode("utf-8"))
        for _ in range(rnd.randrange(0, 4)):
            if not b:
                break
            op, i = rnd.random(), rnd.randrange(len(b))
            if op < 0.4:
                b[i] = rnd.choice(special) if rnd.random() < 0.7 else rnd.randrange(256)
            elif op < 0.7:
                del b[i]
            else:
                b.insert(i, rnd.choice(special))
        return bytes(b)
    if kind < 0.5:  # long mostly-ASCII text with a few errors, for the SIMD blocks
        b = bytearray(b"x" * rnd.randrange(32, 3000))
        for _ in range(rnd.randrange(0, 4)):
            i = rnd.randrange(len(b))
            b[i:i + 1] = bytes([rnd.choice(special)] + [rnd.randrange(0x80, 0xC0)] * rnd.randrange(0, 3))
        return bytes(b)
    weights = rnd.random()
    return bytes(rnd.randrange(0x80) if rnd.random() < weights else
                 (rnd.choice(special) if rnd.random() < 0.5 else rnd.randrange(0x80, 0x100))
                 for _ in range(rnd.randrange(0, 200)))


fails = {i: [] for i in impls}
counts = {i: 0 for i in impls}
for case in range(2000):
    data = sample()
    impl = impls[case % 3]
    counts[impl] += 1
    rc, out, _ = run(["-d"], data, impl)
    if rc != 0 or out != data.decode("utf-8", "replace").encode("utf-32-le"):
        fails[impl].append(data)
        continue
    if case % 5 == 0:
        fe = first_error(data)
        rc, out, _ = run(["-v"], data, impl)
        if (rc, out.strip()) != ((0, b"") if fe is None else (1, str(fe).encode())):
            fails[impl].append(data)
for impl in impls:
    if not ok(not fails[impl], "%d random/mutated inputs: -d and -v agree with CPython (CROW_UTF8_IMPL=%s)"
              % (counts[impl], impl)):
        print("#   first failing input: %r" % fails[impl][0][:80])

# -- encode: every scalar value, and errors.
allcp = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
rc, out, _ = run(["-e"], allcp.encode("utf-32-le"))
ok(rc == 0 and out == allcp.encode("utf-8"), "-e: every scalar value encodes as CPython's encoder")
rc, out, _ = run(["-d"], allcp.encode("utf-8"))
ok(rc == 0 and out == allcp.encode("utf-32-le"), "-d: every scalar value decodes back (4.3 MB through the pipe)")
units = (0x41).to_bytes(4, "little") + (0xD800).to_bytes(4, "little") + (0x110000).to_bytes(4, "little") + b"\x42\x00"
rc, out, _ = run(["-e"], units)
ok(rc == 0 and out == b"A\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
   "-e: a surrogate, a value above U+10FFFF and a cut last unit become U+FFFD")
rc, out, err = run(["-e", "-s"], units)
ok(rc == 1 and out == b"A" and err.startswith(b"crow-utf8: ") and b"offset 4" in err,
   "-e -s: stops at the surrogate, exit 1, offset 4 on stderr")

# -- large input through a pipe in bounded memory
big = ("Grüße, мир, 世界, 😀! plain ascii line of text\n" * 400000).encode("utf-8")
big = big[:len(big) // 2] + b"\xed\xa0\x80" + big[len(big) // 2:]
LIMIT = 64 << 20  # address space: far less than the 4x-sized output, so no whole-buffering


def limit():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


proc = subprocess.Popen([TOOL, "-d"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=limit)
out, _ = proc.communicate(big, timeout=120)
ok(proc.returncode == 0 and out == big.decode("utf-8", "replace").encode("utf-32-le"),
   "-d: %d MB through a pipe equals CPython, under a %d MiB address-space limit"
   % (len(big) >> 20, LIMIT >> 20))
rc, out, _ = run(["-c"], big)
ok(rc == 0 and out.strip() == str(len(big.decode("utf-8", "replace"))).encode(), "-c on the large input")
rc, out, _ = run(["-v"], big)
ok(rc == 1 and out.strip() == str(first_error(big)).encode(), "-v on the large input finds the surrogate")

# -- files and options
tmp = os.path.join("/tmp", "crow-utf8-t.%d" % os.getpid())
try:
    with open(tmp, "wb") as f:
        f.write("héllo".encode())
    rc, out, _ = run(["-c", tmp, tmp], b"")
    ok(rc == 0 and out == ("5 %s\n5 %s\n" % (tmp, tmp)).encode(), "-c with two files prints a count per file")
    rc, out, _ = run(["-c", "-"], "añb".encode())
    ok(rc == 0 and out == b"3\n", "- reads standard input")
finally:
    os.unlink(tmp)
rc, out, err = run(["-v", "/nonexistent/file"], b"")
ok(rc == 2 and err.startswith(b"crow-utf8: /nonexistent/file: "), "missing file: exit 2, 'crow-utf8: what: why'")
for args, what in ((["-q"], "unknown option"), ([], "no operation"), (["-d", "-e"], "two operations"),
                   (["-v", "-s"], "-s with -v"), (["--frob"], "unknown long option")):
    rc, out, err = run(args, b"")
    ok(rc == 2 and err.startswith(b"crow-utf8: "), "usage error (%s): exit 2, message on stderr" % what)
rc, out, _ = run(["--help"], b"")
ok(rc == 0 and b"usage: crow-utf8" in out and b"-v" in out, "--help prints usage, exit 0")
rc, out, _ = run(["-v"], b"")
ok(rc == 0 and out == b"", "-v on empty input: valid")

print("1..%d" % n)
