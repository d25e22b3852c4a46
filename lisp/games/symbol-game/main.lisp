;;;; main.lisp — the ECL executable's entry point (build/bin/symbol-game); the game itself is
;;;; portable and lives in the other files.

(in-package :crow.symbol-game)

(defun main ()
  "symbol-game's entry point: runs run-cli on the command-line arguments.  Returns the exit
status (130 on an interrupt)."
  (crow.unix:ignore-sigpipe)
  (handler-case (run-cli (rest (ext:command-args)))
    (ext:interactive-interrupt ()
      (fresh-line)
      130)))
