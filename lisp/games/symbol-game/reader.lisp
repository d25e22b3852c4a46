;;;; reader.lisp — the restricted command reader: a line of plain words, read by the Lisp
;;;; reader as symbols into a scratch package that is deleted before the words are used.
;;;;
;;;; The line is checked before the reader sees it: only ASCII letters, digits, - ? ! and
;;;; blanks pass, so no package marker, #, quote, backslash or bar ever reaches READ (nothing
;;;; can name another package, evaluate, or make a structure).  READ runs with standard
;;;; syntax, *read-eval* NIL, the game's own readtable and a fresh package SYMBOL-GAME.INPUT
;;;; that uses no package; deleting it afterwards leaves the words as homeless symbols, so
;;;; whatever the player types interns nothing anywhere.  Words are matched to verbs and
;;;; things by name (find-symbol), never by interning.

(in-package :crow.symbol-game)

(defparameter +max-line+ 200 "Longest command line read, in characters.")
(defparameter +max-words+ 8 "Most words in a command.")

(defvar *command-readtable*
  (let ((rt (copy-readtable nil)))
    (setf (readtable-case rt) :upcase)
    rt)
  "The readtable commands are read with (a copy of the standard one, upcasing).")

(defun blank-p (c) (member c '(#\Space #\Tab #\Return #\Newline)))

(defun word-char-p (c)
  (or (char<= #\a c #\z) (char<= #\A c #\Z) (char<= #\0 c #\9) (find c "-?!")))

(defun describe-char (c)
  (if (and (graphic-char-p c) (< (char-code c) 128))
      (format nil "~s" (string c))
      (format nil "character code ~d" (char-code c))))

(defun read-command (line)
  "Reads LINE (a string) as a list of words: symbols (no home package) and numbers.  Signals
game-error with the reply if the line is too long, has too many words, or holds anything but
letters, digits, - ? ! and blanks.  Interns nothing in any remaining package."
  (when (> (length line) +max-line+)
    (refuse "That is too long for me (more than ~d characters)." +max-line+))
  (let ((bad (find-if-not (lambda (c) (or (word-char-p c) (blank-p c))) line)))
    (when bad
      (refuse "I only understand plain words (letters, digits and -); ~a is not part of one."
              (describe-char bad))))
  (let ((name (game-package-name "INPUT")))
    (when (find-package name) (delete-package name))
    (let ((scratch (make-package name :use '())))
      (unwind-protect
           (with-standard-io-syntax
             (let ((*readtable* *command-readtable*)
                   (*package* scratch)
                   (*read-eval* nil))
               (with-input-from-string (in line)
                 (loop with eof = in
                       for n from 1
                       for w = (handler-case (read in nil eof)
                                 (error () (refuse "I can't read that as words.")))
                       until (eq w eof)
                       when (> n +max-words+)
                         do (refuse "That is too many words for me (at most ~d)." +max-words+)
                       collect w))))
        (delete-package scratch)))))

(defun word-name (word)
  "Returns the name a read word stands for: a symbol's name, a number's printed form."
  (if (symbolp word) (symbol-name word) (princ-to-string word)))
