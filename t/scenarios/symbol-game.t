#!/usr/bin/env python3
# symbol-game.t — build/bin/symbol-game (ECL) over stdin: the play-through to the win, clear
# replies to wrong input, EOF, --help/--version, save then load in a new process (LOAD and
# --load), bad save files refused with file:line errors.
# timeout: 120
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import BIN, Tap
from symbol_game import WALK, WIN, WRONG, check_script, replies, run

t = Tap()
game = os.path.join(BIN, "symbol-game")
tmp = tempfile.mkdtemp(prefix="crow-symbol-game-")
try:
    rc, out, err = run([game, "--help"], [])
    t.ok(rc == 0 and out.startswith("usage: symbol-game"), "--help prints usage, status 0", out + err)
    rc, out, err = run([game, "--version"], [])
    t.ok(rc == 0 and out.startswith("symbol-game 0.1.0 (ECL "), "--version names the game and ECL", out + err)
    rc, out, err = run([game, "--bogus"], [])
    t.ok(rc == 2 and "unknown argument --bogus" in err, "an unknown argument: status 2", out + err)

    # The whole game, scripted, to the win.
    rc, out, err = run([game], [c for c, _ in WALK] + ["look"], cwd=tmp)
    t.ok(out.startswith("THE SYMBOL GAME 0.1.0.  Type HELP for the commands.\n== GATE =="),
         "the game opens at the GATE", out[:300])
    check_script(t, out, WALK, "play-through")
    t.ok(out.rstrip("\n").endswith(WIN), "the game ends with the win message", out[-400:])
    t.ok("Goodbye." not in out, "it ends at the win: the line after it is never read", out[-300:])
    t.eq((rc, err), (0, ""), "status 0, nothing on stderr")

    # Wrong input gets clear replies, and the game goes on; EOF ends it.
    rc, out, err = run([game], [c for c, _ in WRONG] + ["", "look"], cwd=tmp)
    reps = check_script(t, out, WRONG, "wrong input")
    t.eq(reps[len(WRONG) + 1], "", "an empty line gets no reply")
    t.ok(reps[len(WRONG) + 2].startswith("== GATE =="), "the game goes on after the errors", reps[-2:])
    t.eq(reps[-1], "Goodbye.", "EOF on stdin: Goodbye.")
    t.eq((rc, err), (0, ""), "EOF: status 0, nothing on stderr")
    rc, out, err = run([game], [])
    t.ok(rc == 0 and out.endswith("> \nGoodbye.\n"), "empty stdin: Goodbye, status 0", out)
    rc, out, err = run([game], ["quit", "look"])
    t.ok(rc == 0 and out.endswith("> \nGoodbye.\n") and out.count("== GATE ==") == 1,
         "QUIT ends the game", out)

    # Save half-way, EOF; a new process loads it and finishes: same moves as in one go.
    save = os.path.join(tmp, "half way.sav")
    half = [c for c, _ in WALK[:11]]
    rc, out, err = run([game], half + ["save " + save], cwd=tmp)
    t.ok(rc == 0 and ("Saved to %s." % save) in replies(out)[-2], "SAVE FILE (a name with a space)", out[-300:])
    with open(save) as f:
        text = f.read()
    t.ok('(place "HALL")' in text and '(thing "ROPE-HOOK" "INVENTORY")' in text
         and '(thing "ROPE")\n' in text and '(moves 10)' in text,
         "the save file is readable: place, things, moves", text)
    rc, out, err = run([game], ["load " + save, "inventory"] + [c for c, _ in WALK[11:]], cwd=tmp)
    reps = replies(out)
    t.ok(("Loaded %s." % save) in reps[1] and "== HALL ==" in reps[1], "LOAD FILE in a new process", reps[1:2])
    t.ok("You carry: LAMP, ROPE-HOOK." in reps[2], "the inventory came back", reps[2:3])
    check_script(t, "> \n".join(reps[2:]), WALK[11:], "after LOAD")
    # the 10 saved moves, INVENTORY and the 10 after: 21
    t.ok(out.rstrip("\n").endswith(WIN.replace(" 20 ", " 21 ")), "the loaded game goes on counting moves", out[-300:])
    rc, out, err = run([game, "--load", save], [c for c, _ in WALK[11:]], cwd=tmp)
    t.ok(rc == 0 and out.startswith("THE SYMBOL GAME") and "== HALL ==" in replies(out)[0]
         and out.rstrip("\n").endswith(WIN), "--load FILE starts from the save and wins", out[-300:] + err)
    # default file name in the current directory
    rc, out, err = run([game], ["n", "save"], cwd=tmp)
    t.ok(os.path.exists(os.path.join(tmp, "symbol-game.sav")) and "Saved to symbol-game.sav." in out,
         "SAVE with no file writes ./symbol-game.sav", out[-200:])
    rc, out, err = run([game], ["load"], cwd=tmp)
    t.ok("Loaded symbol-game.sav." in out and "== HALL ==" in replies(out)[1], "LOAD with no file reads it", out[-300:])

    # SAVE replaces an earlier save, never another file; clear replies for bad places.
    precious = os.path.join(tmp, "notes.txt")
    with open(precious, "w") as f:
        f.write("precious\n")
    os.mkdir(os.path.join(tmp, "adir"))
    rc, out, err = run([game], ["save notes.txt", "save adir", "save nodir/x.sav", "load nodir/x.sav",
                                "save a*b"], cwd=tmp)
    reps = replies(out)
    t.ok("Cannot save to notes.txt: it exists and is not a Symbol Game save file (left alone)." in reps[1],
         "SAVE refuses to replace a file that is not a save file", reps[1:2])
    with open(precious) as f:
        t.eq(f.read(), "precious\n", "and the file is untouched")
    t.ok("Cannot save to adir: it is a directory." in reps[2], "SAVE to a directory: a clear reply", reps[2:3])
    t.ok("Cannot save to nodir/x.sav: no such directory." in reps[3], "SAVE into a missing directory", reps[3:4])
    t.ok("Cannot load nodir/x.sav: no such file." in reps[4], "LOAD of a missing file", reps[4:5])
    t.ok("a file name with *, ?, [ or \\ is not supported" in reps[5], "a wildcard file name is refused", reps[5:6])

    # Bad save files: refused with file:line, the game unchanged.
    bad = os.path.join(tmp, "bad.sav")
    cases = [
        ('(symbol-game-save 1)\n(place cl-user::x)\n', '%s:2: ":" is not allowed in a save file' % bad),
        ('(symbol-game-save 1)\n(moves 1)\n(place "MOON")\n', '%s:3: unknown place "MOON"' % bad),
        ('(symbol-game-save 1)\n(place "GATE")\n(moves 0)\n', "the file does not say where SIGN is"),
        ('#.(run-program "/bin/touch" (list "/tmp/x"))\n', '%s:1: "#" is not allowed in a save file' % bad),
        ('(symbol-game-save 7)\n', "%s:1: save file version 7, this game reads version 1" % bad),
    ]
    for text, want in cases:
        with open(bad, "w") as f:
            f.write(text)
        rc, out, err = run([game], ["north", "load " + bad, "look"], cwd=tmp)
        reps = replies(out)
        t.ok(len(reps) > 3 and want in reps[2] and "The game goes on unchanged." in reps[2]
             and reps[3].startswith("== HALL =="), "LOAD refuses: " + want.replace(tmp, "DIR"), out[-500:])
    rc, out, err = run([game, "--load", bad], ["look"])
    t.ok(rc == 1 and "symbol-game: Cannot load: %s:1: save file version 7" % bad in err and out == "",
         "--load with a bad file: the reason on stderr, status 1", out + err)

    # Input that is not UTF-8 text does not crash the game.
    import subprocess
    p = subprocess.run([game], input=b"take \xff\xfe lamp\nlook\n", capture_output=True, timeout=60)
    o = p.stdout.decode("utf-8", "replace")
    t.ok(p.returncode == 0 and p.stderr == b"" and "character code 65533 is not part of one" in o
         and "== GATE ==" in replies(o)[2], "bytes that are not UTF-8: a clear reply, the game goes on", o[-300:] + p.stderr.decode("utf-8", "replace"))
finally:
    shutil.rmtree(tmp, ignore_errors=True)
t.done()
