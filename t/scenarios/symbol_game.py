"""symbol_game.py — the Symbol Game's play-through and helpers, shared by the symbol-game*.t
scenario tests."""
import subprocess

# (command, a piece of the reply that must appear), in order, from the GATE to the win.  The
# replies are written from the game's design (keep.lisp), not copied from a run.
WALK = [
    ("north", "== HALL =="),
    ("take lamp", "Taken: LAMP is now a symbol of SYMBOL-GAME.INVENTORY."),
    ("light lamp", "The LAMP is lit."),
    ("down", "== CELLAR =="),
    ("take hook", "Taken: HOOK"),
    ("up", "== HALL =="),
    ("west", "== KITCHEN =="),
    ("take rope", "Taken: ROPE"),
    ("join rope hook", "You now carry the ROPE-HOOK"),
    ("east", "== HALL =="),
    ("north", "The oak door is sealed."),
    ("east", "== LIBRARY =="),
    ("read scroll", "LAMBDA MADE FUNCTIONS"),
    ("west", "== HALL =="),
    ("say lambda", "The oak door swings open"),
    ("north", "== THRONE-ROOM =="),
    ("up", "== BEAM =="),
    ("take crown", "Taken: CROWN"),
    ("down", "== THRONE-ROOM =="),
    ("south", "== HALL =="),
    ("south", "You step out through the gate with the CROWN held high."),
]
# 21 commands, one refused (the sealed door): 20 moves.
WIN = "*** You have won the Symbol Game in 20 moves. ***"

# Wrong input and the clear reply each gets.
WRONG = [
    ("frob", "I don't know the word FROB.  Type HELP for the commands."),
    ("take", "TAKE what?  (TAKE thing)"),
    ("take a b", "Too many words: TAKE thing"),
    ("cl-user::x", 'I only understand plain words (letters, digits and -); ":" is not part of one.'),
    ("#.(quit)", 'I only understand plain words (letters, digits and -); "#" is not part of one.'),
    ("take lamp", "You see no LAMP here."),
    ("go sideways", "SIDEWAYS is not a direction"),
    ("west", "You can't go west from here."),
    ("take sign", "The SIGN will not move."),
    ("sign", "What do you want to do with the SIGN?"),
    ("42", "I don't know the word 42."),
    ("help", "Your goal: find the CROWN"),
    ("load /nonexistent/dir/x.sav", "Cannot load /nonexistent/dir/x.sav"),
]


def run(argv, lines, timeout=60, cwd=None, env=None):
    """Runs ARGV with LINES (strings) on stdin, then EOF.  Returns (status, stdout, stderr)."""
    data = "".join(l + "\n" for l in lines).encode()
    p = subprocess.run(argv, input=data, capture_output=True, timeout=timeout, cwd=cwd, env=env)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def replies(out):
    """Splits a game's stdout into [banner, reply to command 1, reply to command 2, ...]: each
    prompt is '> ' at the start of a line, the reply starting on the next line."""
    return [s.strip("\n") for s in out.split("> \n")]


def check_script(t, out, script, what):
    """One check per command of SCRIPT: its reply holds the expected piece."""
    reps = replies(out)
    for i, (cmd, want) in enumerate(script):
        got = reps[i + 1] if i + 1 < len(reps) else None
        t.ok(got is not None and want in got, "%s: %r replies %r" % (what, cmd, want), got)
    return reps
