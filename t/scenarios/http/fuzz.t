#!/usr/bin/env python3
# fuzz.t — a bounded live fuzz of crow-httpd: requests mutated at random (byte flips,
# insertions, deletions, duplicated and truncated parts, CRLF games) are thrown at it, and
# after each one a well-formed request must still be answered.  Seeded, so a failure can be
# replayed (CROW_FUZZ_SEED, CROW_FUZZ_COUNT).
# timeout: 400
import os
import random
import shutil
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpd import Server, Tap, exchange, make_root  # noqa: E402

SEEDS = [
    b"GET /hello HTTP/1.1\r\nHost: a.test\r\n\r\n",
    b"GET /a.txt HTTP/1.1\r\nHost: a.test\r\nRange: bytes=0-3,5-\r\nIf-None-Match: \"x\"\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: x\r\n\r\n",
    b"GET /stream?n=3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"HEAD /sub/ HTTP/1.1\r\nHost: b.test:80\r\nExpect: 100-continue\r\n\r\n",
    b"GET http://a.test/%7Euser/a%20b?x=%zz HTTP/1.1\r\nHost: a.test\r\n\r\n",
]
TOKENS = [b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b"%", b"%00", b"%2e%2e/", b"../", b"\x00", b"\xff",
          b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n", b"Host: x\r\n", b"0\r\n\r\n",
          b"HTTP/1.1", b"HTTP/9.9", b"ffffffffffffffff", b"-1", b"\r\n\r\n", b"a" * 300]


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = rng.choice(TOKENS)
        elif op == 2 and data:
            del data[pos:pos + rng.randint(1, 8)]
        elif op == 3:
            a = rng.randrange(len(data) + 1)
            data[pos:pos] = data[a:a + rng.randint(1, 40)]
        elif op == 4:
            data = data[:pos]
        elif op == 5:
            data += rng.choice(SEEDS)
        else:
            data[pos:pos] = bytes([rng.randrange(256)]) * rng.randint(1, 20)
    return bytes(data)


t = Tap()
seed = int(os.environ.get("CROW_FUZZ_SEED", "20261130"))
count = int(os.environ.get("CROW_FUZZ_COUNT", "400"))
rng = random.Random(seed)
d = make_root()
srv = Server(os.path.join(d, "root"), reqto="1s", kato="1s", listing="yes")
try:
    t.ok(srv.up, "crow-httpd listens")
    good = b"GET /hello HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    failures = []
    deadline = time.time() + 240
    done = 0
    for i in range(count):
        if time.time() > deadline:
            break
        req = mutate(rng, rng.choice(SEEDS))
        try:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=0.3)
            s.sendall(req)
            try:
                while s.recv(65536):
                    pass
            except (socket.timeout, ConnectionResetError):
                pass
            s.close()
        except OSError:
            pass
        out, _ = exchange(srv.port, good, timeout=5)
        done += 1
        if not out.startswith(b"HTTP/1.1 200 OK") or not out.endswith(b"hello\n"):
            failures.append((i, req, out[:200]))
            if srv.proc.poll() is not None or len(failures) > 3:
                break
    t.ok(done >= min(count, 100), "%d mutated requests sent (seed %d)" % (done, seed))
    t.eq(failures, [], "a well-formed request is answered after every mutated one")
    t.ok(srv.proc.poll() is None, "the server is still running")
finally:
    status, log = srv.stop()
    shutil.rmtree(d, ignore_errors=True)
t.eq(status, 0, "crow-httpd stops with status 0")
t.done()
