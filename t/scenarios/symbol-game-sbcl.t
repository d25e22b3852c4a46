#!/usr/bin/env python3
# symbol-game-sbcl.t — the same Symbol Game source in SBCL: the scripted play-through under
# `sbcl --script script.lisp`, clear replies to wrong input, a game saved by SBCL finished by
# the ECL executable, and symbol-game.asd loading through SBCL's ASDF.
# timeout: 180
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, ROOT, Tap
from symbol_game import WALK, WIN, WRONG, check_script, replies, run

t = Tap()
sbcl = shutil.which("sbcl")
src = os.path.join(ROOT, "lisp", "games", "symbol-game")
script = [sbcl, "--script", os.path.join(src, "script.lisp")]
tmp = tempfile.mkdtemp(prefix="crow-symbol-game-sbcl-")
env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "cache"), HOME=tmp)
try:
    if not sbcl:
        t.ok(False, "sbcl is installed (tools/deps/game.list)")
        t.done()
    rc, out, err = run(script + ["--version"], [], env=env)
    t.ok(rc == 0 and out.startswith("symbol-game 0.1.0 (SBCL "), "--version under SBCL", out + err)
    rc, out, err = run(script, [c for c, _ in WALK], cwd=tmp, env=env)
    t.ok(out.startswith("THE SYMBOL GAME 0.1.0."), "SBCL: the game opens", out[:200] + err)
    check_script(t, out, WALK, "SBCL play-through")
    t.ok(out.rstrip("\n").endswith(WIN), "SBCL: the win message", out[-300:])
    t.eq((rc, err), (0, ""), "SBCL: status 0, nothing on stderr")
    rc, out, err = run(script, [c for c, _ in WRONG], cwd=tmp, env=env)
    check_script(t, out, WRONG, "SBCL wrong input")
    t.ok(rc == 0 and replies(out)[-1] == "Goodbye.", "SBCL: EOF ends the game, status 0", out[-200:] + err)

    # Saved by SBCL, finished by ECL.
    save = os.path.join(tmp, "sbcl.sav")
    rc, out, err = run(script, [c for c, _ in WALK[:15]] + ["save " + save], cwd=tmp, env=env)
    t.ok(rc == 0 and os.path.exists(save), "SBCL saves", out[-200:] + err)
    rc, out, err = run([os.path.join(BIN, "symbol-game"), "--load", save],
                       [c for c, _ in WALK[15:]], cwd=tmp)
    t.ok(rc == 0 and out.rstrip("\n").endswith(WIN), "the ECL executable loads SBCL's save and wins",
         out[-300:] + err)

    # The .asd through SBCL's ASDF (compiled files under the temporary XDG_CACHE_HOME).
    evals = ['(require :asdf)',
             '(push #p"%s/" asdf:*central-registry*)' % src,
             '(asdf:load-system "symbol-game")',
             '(with-input-from-string (in (format nil "n~%take lamp~%i~%"))'
             ' (symbol-game:play :in in :prompt nil))']
    argv = [sbcl, "--noinform", "--non-interactive", "--no-userinit", "--no-sysinit"]
    for e in evals:
        argv += ["--eval", e]
    p = subprocess.run(argv, capture_output=True, timeout=120, env=env)
    o = p.stdout.decode("utf-8", "replace")
    t.ok(p.returncode == 0 and "You carry: LAMP." in o and "Goodbye." in o,
         "symbol-game.asd loads in SBCL's ASDF and plays", o[-400:] + p.stderr.decode()[-400:])
finally:
    shutil.rmtree(tmp, ignore_errors=True)
t.done()
