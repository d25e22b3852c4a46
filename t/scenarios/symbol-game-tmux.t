#!/usr/bin/env python3
# symbol-game-tmux.t — build/bin/symbol-game on a terminal: a tmux session (private server on
# a socket in a temporary directory, killed at the end) types the commands with send-keys and
# reads the screen with capture-pane, every wait bounded; a wrong command, the play-through to
# the win, Ctrl-D (EOF on a terminal) ending the game cleanly, and live development: with
# --swank, a swank client redefines a thing and adds a verb with the game's macros, and the
# very next command typed sees them.
# timeout: 120
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, ROOT, Tap, free_port, swank_eval, wait_port
from symbol_game import WALK, WIN

t = Tap()
game = os.path.join(BIN, "symbol-game")
tmp = tempfile.mkdtemp(prefix="crow-sg-tmux-")
sock = os.path.join(tmp, "tmux.sock")
env = {k: v for k, v in os.environ.items() if k != "TMUX"}
env["TERM"] = "xterm"


def tmux(*args, check=True):
    p = subprocess.run(["tmux", "-S", sock, "-f", "/dev/null"] + list(args), capture_output=True,
                       text=True, timeout=20, env=env)
    if check and p.returncode != 0:
        raise RuntimeError("tmux %s: %s" % (" ".join(args), p.stderr))
    return p.stdout


def screen(session):
    return tmux("capture-pane", "-p", "-J", "-S", "-2000", "-t", session)


def wait_for(session, pred, timeout=15.0):
    """Polls the screen until PRED(screen) holds (True) or TIMEOUT seconds pass (False)."""
    deadline = time.time() + timeout
    s = ""
    while time.time() < deadline:
        s = screen(session)
        if pred(s):
            return True, s
        time.sleep(0.05)
    return False, s


def after_last(s, marker):
    i = s.rfind(marker)
    return s[i + len(marker):] if i >= 0 else None


def command(session, cmd, want):
    """Types CMD and Enter; waits until WANT shows after the echoed '> CMD' line."""
    tmux("send-keys", "-t", session, "-l", cmd)
    tmux("send-keys", "-t", session, "Enter")
    return wait_for(session, lambda s: want in (after_last(s, "> " + cmd + "\n") or ""))


# The game runs under sh, which prints its exit status on the screen: tmux's own
# #{pane_dead_status} was sometimes still empty after the pane died (tmux 3.3a, loaded machine).
def shown(*argv):
    return ["sh", "-c", '"$@"; echo "[exit status $?]"', "sh"] + list(argv)


def exited(session):
    """Waits until the game in SESSION has ended; returns (ended with status 0, what sh printed)."""
    ok, s = wait_for(session, lambda s: "[exit status" in s)
    i = s.rfind("[exit status")
    return ok and s[i:].startswith("[exit status 0]"), s[i:].strip()[:40]


try:
    if not shutil.which("tmux"):
        t.ok(False, "tmux is installed (tools/deps/game.list)")
        t.done()
    tmux("new-session", "-d", "-s", "game", "-x", "120", "-y", "50", "-c", tmp, *shown(game))
    tmux("set-option", "-t", "game", "remain-on-exit", "on")
    ok, s = wait_for("game", lambda s: "You see: SIGN." in s and s.rstrip().endswith(">"))
    t.ok(ok, "the game shows the GATE and a prompt on the terminal", s[-500:])
    ok, s = command("game", "frob", "I don't know the word FROB.")
    t.ok(ok, "a wrong command gets a clear reply on screen", s[-300:])
    ok, s = command("game", "cl-user::x", "I only understand plain words")
    t.ok(ok, "a package-qualified word is refused", s[-300:])
    fails = []
    for cmd, want in WALK:
        ok, s = command("game", cmd, want)
        if not ok:
            fails.append((cmd, want, s[-400:]))
            break
    t.ok(not fails, "the %d commands of the play-through, each reply read off the screen" % len(WALK), fails)
    s = screen("game")
    t.ok("> take lamp\nTaken: LAMP" in s and "> frob\nI don't know" in s,
         "each reply starts on the line under the typed command", s[:800])
    ok, s = wait_for("game", lambda s: WIN in s)
    t.ok(ok, "the win message is on the screen", s[-300:])
    ok, st = exited("game")
    t.ok(ok, "the game exits with status 0 after the win", st)

    # Ctrl-D at the prompt: EOF on a terminal ends the game with Goodbye, status 0.
    tmux("new-session", "-d", "-s", "eof", "-x", "100", "-y", "30", "-c", tmp, *shown(game))
    tmux("set-option", "-t", "eof", "remain-on-exit", "on")
    ok, s = wait_for("eof", lambda s: s.rstrip().endswith(">"))
    t.ok(ok, "a second game waits at its prompt", s[-300:])
    tmux("send-keys", "-t", "eof", "C-d")
    ok, s = wait_for("eof", lambda s: "Goodbye." in s)
    t.ok(ok, "Ctrl-D: Goodbye.", s[-300:])
    ok, st = exited("eof")
    t.ok(ok, "Ctrl-D: the game exits with status 0", st)

    # Live: --swank, then defthing and defverb from a swank client while the game waits.
    port = free_port()
    cache = os.environ.get("CROW_CACHE") or os.path.join(ROOT, "build", "swank-cache")
    tmux("new-session", "-d", "-s", "live", "-x", "100", "-y", "40", "-c", tmp,
         *shown("env", "CROW_CACHE=" + cache, game, "--swank", str(port)))
    tmux("set-option", "-t", "live", "remain-on-exit", "on")
    up = wait_port("127.0.0.1", port, 90)
    t.ok(up, "--swank: swank listens on 127.0.0.1:%d" % port, screen("live")[-300:])
    ok, s = wait_for("live", lambda s: "You see: SIGN." in s and s.rstrip().endswith(">"))
    t.ok(ok, "the game runs alongside swank", s[-300:])
    if up:
        rep = swank_eval(port, '(defthing sign "A sign repainted from SLIME." :text "IT WORKS LIVE.")',
                         "CROW.SYMBOL-GAME")
        t.ok(rep is not None and ":ok" in rep, "swank: defthing redefines the SIGN", rep)
        ok, s = command("live", "read sign", "IT WORKS LIVE.")
        t.ok(ok, "the next READ SIGN shows the new text", s[-300:])
        rep = swank_eval(port, '(defverb (dance jig) () "Dance a jig."'
                         ' (reply "You dance a jig at the ~a." (place-name (current-place))))',
                         "CROW.SYMBOL-GAME")
        t.ok(rep is not None and ":ok" in rep, "swank: defverb adds a verb", rep)
        ok, s = command("live", "jig", "You dance a jig at the GATE.")
        t.ok(ok, "the new verb (by its alias) works at once", s[-300:])
        ok, s = command("live", "help", "DANCE             Dance a jig. (JIG)")
        t.ok(ok, "HELP lists it", s[-600:])
    ok, s = command("live", "quit", "Goodbye.")
    ok2, st = exited("live")
    t.ok(ok and ok2, "QUIT ends the game (and swank with it), status 0", st)
finally:
    subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True, timeout=20, env=env)
    shutil.rmtree(tmp, ignore_errors=True)
t.done()
