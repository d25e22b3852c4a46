;;;; main.lisp — the ECL executable's entry point (build/bin/symbol-game): --swank, then the
;;;; portable command line; the game itself is portable and lives in the other files.

(in-package :crow.symbol-game)

(defun main ()
  "symbol-game's entry point: with --swank PORT starts a swank server (crow.sh:start-swank) so
SLIME can redefine places, things and verbs while the game is played, then runs run-cli on the
other arguments.  Returns the exit status (2 for a bad --swank, 130 on an interrupt)."
  (crow.unix:ignore-sigpipe)
  (let* ((args (rest (ext:command-args)))
         (at (position "--swank" args :test #'string=)))
    (when at
      (let ((port (nth (1+ at) args)))
        (unless (and port (plusp (length port)) (every #'digit-char-p port))
          (format *error-output* "symbol-game: --swank needs a port number~%")
          (return-from main 2))
        (crow.sh:load-swank)
        ;; swank's log lines (a client disconnecting) would land in the middle of the screen
        (setf (symbol-value (find-symbol "*LOG-OUTPUT*" "SWANK")) (make-broadcast-stream))
        (crow.sh:start-swank (parse-integer port))
        (setf args (append (subseq args 0 at) (nthcdr (+ at 2) args)))))
    (handler-case (run-cli args)
      (ext:interactive-interrupt ()
        (fresh-line)
        130))))
