#!/usr/bin/env python3
"""ftplogins.py — N concurrent FTP logins against HOST:PORT (asyncio, one thread): each
connection reads the 220 greeting, sends USER and PASS, and waits for 230.  Prints the wall
time until all N are logged in, then (with --hold FILE) writes "ready" to FILE and keeps the
sessions open until FILE is removed (so the caller can measure the server's memory), then QUITs.

With --window K, at most K connections are between connect() and their 220 greeting at once
(the USER/PASS exchanges still all overlap, and all N sessions end up logged in together).
Why: FTP is server-speaks-first, and a listener whose backlog overflows (vsftpd listens with a
hard-coded backlog of 32, pure-ftpd here 65) answers the excess SYNs with SYN cookies and then
drops their ACKs while its accept queue is full; such a connection is established for the
client and gone for the server, so the client waits for a 220 that never comes.  Without a
window, 300 connections at once therefore lose some sessions on those peers for good (the run
ends at the 60 s timeout); a window below every server's backlog makes the run measure how fast
each server accepts and logs in N sessions rather than the kernel's cookie path.

  ftplogins.py HOST PORT N USER PASS [--hold FILE] [--window K]
"""
import asyncio
import os
import sys
import time


async def reply(reader):
    """Reads one (possibly multi-line) reply; returns its code."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("closed")
    code = line[:3]
    if line[3:4] == b"-":
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("closed")
            if line[:3] == code and line[3:4] == b" ":
                break
    return int(code)


async def login(host, port, user, password, window):
    if window is None:
        reader, writer = await asyncio.open_connection(host, port, limit=65536)
        if await reply(reader) != 220:
            raise RuntimeError("no 220")
    else:
        async with window:
            reader, writer = await asyncio.open_connection(host, port, limit=65536)
            if await reply(reader) != 220:
                raise RuntimeError("no 220")
    writer.write(b"USER %s\r\n" % user.encode())
    c = await reply(reader)
    if c == 331:
        writer.write(b"PASS %s\r\n" % password.encode())
        c = await reply(reader)
    if c != 230:
        raise RuntimeError("PASS -> %d" % c)
    return reader, writer


async def main():
    host, port, n, user, password = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    opts = dict(zip(sys.argv[6::2], sys.argv[7::2]))
    hold = opts.get("--hold")
    window = asyncio.Semaphore(int(opts["--window"])) if int(opts.get("--window", 0)) > 0 else None
    t0 = time.time()
    results = await asyncio.gather(*(asyncio.wait_for(login(host, port, user, password, window), 60)
                                     for _ in range(n)),
                                   return_exceptions=True)
    wall = time.time() - t0
    ok = [r for r in results if not isinstance(r, BaseException)]
    errs = [r for r in results if isinstance(r, BaseException)]
    print("%.3f %d %d%s" % (wall, len(ok), len(errs), (" " + repr(errs[0])) if errs else ""))
    sys.stdout.flush()
    if hold:
        with open(hold, "w") as f:
            f.write("ready\n")
        deadline = time.time() + 60
        while os.path.exists(hold) and time.time() < deadline:
            await asyncio.sleep(0.05)
    for reader, writer in ok:
        try:
            writer.write(b"QUIT\r\n")
            writer.close()
        except Exception:
            pass


if __name__ == "__main__":
    asyncio.run(main())
