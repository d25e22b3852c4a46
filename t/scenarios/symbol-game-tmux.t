#!/usr/bin/env python3
# symbol-game-tmux.t — build/bin/symbol-game on a terminal: a tmux session (private server on
# a socket in a temporary directory, killed at the end) types the commands with send-keys and
# reads the screen with capture-pane, every wait bounded; a wrong command, the play-through to
# the win, and Ctrl-D (EOF on a terminal) ending the game cleanly.
# timeout: 120
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, Tap
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


def pane_status(session):
    return tmux("display-message", "-p", "-t", session, "#{pane_dead} #{pane_dead_status}").strip()


try:
    if not shutil.which("tmux"):
        t.ok(False, "tmux is installed (tools/deps/game.list)")
        t.done()
    tmux("new-session", "-d", "-s", "game", "-x", "120", "-y", "50", "-c", tmp, game)
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
    ok, s = wait_for("game", lambda s: WIN in s)
    t.ok(ok, "the win message is on the screen", s[-300:])
    ok, _ = wait_for("game", lambda s: pane_status("game") == "1 0")
    t.ok(ok, "the game exits with status 0 after the win", pane_status("game"))

    # Ctrl-D at the prompt: EOF on a terminal ends the game with Goodbye, status 0.
    tmux("new-session", "-d", "-s", "eof", "-x", "100", "-y", "30", "-c", tmp, game)
    tmux("set-option", "-t", "eof", "remain-on-exit", "on")
    ok, s = wait_for("eof", lambda s: s.rstrip().endswith(">"))
    t.ok(ok, "a second game waits at its prompt", s[-300:])
    tmux("send-keys", "-t", "eof", "C-d")
    ok, s = wait_for("eof", lambda s: "Goodbye." in s)
    t.ok(ok, "Ctrl-D: Goodbye.", s[-300:])
    ok, _ = wait_for("eof", lambda s: pane_status("eof") == "1 0")
    t.ok(ok, "Ctrl-D: the game exits with status 0", pane_status("eof"))
finally:
    subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True, timeout=20, env=env)
    shutil.rmtree(tmp, ignore_errors=True)
t.done()
