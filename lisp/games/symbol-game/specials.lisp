;;;; specials.lisp — the Symbol Game's global state, names and conditions.

(in-package :crow.symbol-game)

(defvar *version* "0.1.0")

(defparameter +package-prefix+ "SYMBOL-GAME."
  "Every package the game makes is named with this prefix: SYMBOL-GAME.HALL for the place
HALL, SYMBOL-GAME.INVENTORY, SYMBOL-GAME.VERBS and SYMBOL-GAME.INPUT (the reader's scratch).")

(defvar *places* (make-hash-table :test 'equal)
  "Place name (a string) -> place, filled by defplace.")
(defvar *place-order* '()
  "Place names in definition order; the first one defined is where a new game starts.")
(defvar *things* (make-hash-table :test 'equal)
  "Thing name (a string) -> the thing's symbol, made once by defthing.  The symbol moves
between packages; its home package is where the thing is (NIL: nowhere yet).")
(defvar *thing-order* '() "Thing names in definition order.")

(defparameter +flags+ '(:lamp-lit :door-open)
  "The flags a game can set (saved by name; a save file may name no others).")

(defstruct game
  "One game's state besides the packages: the place the player is in, flags, moves taken,
and whether it ended."
  (place nil)
  (flags '())
  (moves 0)
  (won nil)
  (over nil))

(defvar *game* nil "The game being played (a game struct), set by new-game.")
(defvar *goal* "" "One line saying what the game is about (HELP prints it).")
(defvar *out* nil "Where the game's replies go (NIL: *standard-output*).")
(defvar *echoed* nil
  "True while the first reply to a line typed on a terminal is pending: the terminal echoed
the line's newline, so the reply starts where the cursor is, though the output stream's
column still counts the prompt.")

(define-condition game-error (error)
  ((text :initarg :text :reader game-error-text))
  (:report (lambda (c s) (write-string (game-error-text c) s)))
  (:documentation "A command that cannot be done, or a save file that cannot be loaded: the
text is the reply, and nothing in the game changed."))

(defun refuse (control &rest args)
  "Signals game-error with the reply formatted from CONTROL and ARGS.  Does not return."
  (error 'game-error :text (apply #'format nil control args)))

(defun reply (control &rest args)
  "Prints a reply line (or lines) to *out*.  Returns NIL."
  (let ((out (or *out* *standard-output*)))
    (if *echoed*
        (setf *echoed* nil)
        (fresh-line out))
    (apply #'format out control args)
    (terpri out))
  nil)
