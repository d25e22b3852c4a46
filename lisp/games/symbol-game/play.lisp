;;;; play.lisp — the game loop over a pair of streams, and the command line (run-cli), in
;;;; portable Common Lisp: the ECL executable and an SBCL script both call run-cli.

(in-package :crow.symbol-game)

(defun usage (stream)
  (format stream "usage: symbol-game [--load FILE] [--swank PORT]
       symbol-game --help | --version

The Symbol Game: a small text adventure in which places are packages, things are symbols, and
your inventory is a package.  Commands are read from standard input, one per line; HELP lists
them.  --load FILE starts from a game saved with SAVE.  End of input ends the game.
--swank PORT (build/bin/symbol-game) starts a swank server on 127.0.0.1:PORT first, for SLIME
to redefine places, things and verbs while you play.~%"))

(defun replace-undecodable (e)
  "Lets reading go on past bytes that are not UTF-8, read as U+FFFD (which the command reader
then refuses with a clear reply), through the restart the Lisp offers: ECL's USE-VALUE takes a
character code, SBCL's INPUT-REPLACEMENT a string.  Declines (returns) for other errors."
  (when (string= (symbol-name (type-of e)) "STREAM-DECODING-ERROR")
    (dolist (r (compute-restarts e))
      (let ((name (and (restart-name r) (symbol-name (restart-name r)))))
        (cond ((equal name "INPUT-REPLACEMENT") (invoke-restart r (string (code-char #xFFFD))))
              ((equal name "USE-VALUE") (invoke-restart r #xFFFD)))))))

(defun play (&key (in *standard-input*) (out *standard-output*) load (prompt t))
  "Plays a game reading commands from IN and replying on OUT until the player quits or wins
or IN ends.  LOAD: a save file to start from.  Returns 0, or 1 if LOAD cannot be loaded (the
reason printed on *error-output*)."
  (let ((*out* out))
    (new-game)
    (when load
      (handler-case (load-game load)
        (game-error (e)
          (format *error-output* "symbol-game: ~a~%" (game-error-text e))
          (return-from play 1))))
    (reply "THE SYMBOL GAME ~a.  Type HELP for the commands." *version*)
    (describe-place)
    (let ((silent nil))                 ; the last line typed on a terminal got no reply
      (loop
        (when prompt
          (unless silent (fresh-line out))
          (write-string "> " out))
        (finish-output out)
        (let ((line (handler-case (handler-bind ((error #'replace-undecodable))
                                    (read-line in nil nil))
                      (error ()
                        ;; input no restart could read past: say so and end, rather than loop
                        (reply "That input is not text I can read.  Goodbye.")
                        (return 0)))))
          (unless line
            (reply "Goodbye.")
            (finish-output out)
            (return 0))
          (let ((*echoed* (interactive-stream-p in)))
            (when (member (perform line) '(:quit :won))
              (finish-output out)
              (return 0))
            (setf silent *echoed*)))))))

(defun run-cli (args)
  "The symbol-game command line: ARGS are the arguments after the program name.  Returns the
exit status: 0, 1 when --load fails, 2 for a usage error."
  (let ((load nil))
    (loop while args
          do (let ((a (pop args)))
               (cond ((member a '("-h" "--help") :test #'string=)
                      (usage *standard-output*)
                      (return-from run-cli 0))
                     ((string= a "--version")
                      (format t "symbol-game ~a (~a ~a)~%" *version*
                              (lisp-implementation-type) (lisp-implementation-version))
                      (return-from run-cli 0))
                     ((member a '("-l" "--load") :test #'string=)
                      (unless args
                        (format *error-output* "symbol-game: ~a needs a file~%" a)
                        (return-from run-cli 2))
                      (setf load (pop args)))
                     (t
                      (format *error-output* "symbol-game: unknown argument ~a~%" a)
                      (usage *error-output*)
                      (return-from run-cli 2)))))
    (play :load load)))
