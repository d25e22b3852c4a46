;;;; verbs.lisp — the commands: defverb makes each verb an exported symbol of
;;;; SYMBOL-GAME.VERBS whose plist holds its function and help; perform reads a line and
;;;; calls the verb its first word names.

(in-package :crow.symbol-game)

(defun verbs-package ()
  "Returns the package SYMBOL-GAME.VERBS, whose external symbols are the verbs."
  (ensure-game-package "VERBS"))

(defparameter +free-verbs+ '("HELP" "SAVE" "LOAD" "QUIT")
  "Verbs that do not count as moves.")

(defvar *verb-order* '() "Canonical verb names in definition order (for HELP).")

(defun define-verb (names function help usage &optional line)
  "Makes each of NAMES (strings; the first is the verb, the others its aliases) an external
symbol of SYMBOL-GAME.VERBS carrying FUNCTION, HELP, USAGE and LINE (true: FUNCTION takes the
rest of the line as typed) on its plist.  Returns the verb's symbol."
  (let ((pkg (verbs-package)))
    (dolist (n names)
      (let ((s (intern n pkg)))
        (export s pkg)
        (setf (get s 'function) function
              (get s 'help) help
              (get s 'usage) usage
              (get s 'line) line
              (get s 'verb) (first names)
              (get s 'aliases) (rest names))))
    (unless (member (first names) *verb-order* :test #'string=)
      (setf *verb-order* (append *verb-order* (list (first names)))))
    (find-symbol (first names) pkg)))

(defmacro defverb (names lambda-list help &body body)
  "Defines a verb.  NAMES is a symbol or a list (the verb, then aliases).  LAMBDA-LIST is
required parameters then &optional ones, each bound to a word as read (a symbol or number);
or (&line VAR), VAR bound to the rest of the line as typed (NIL if empty), unread.  Too few or
too many words get a reply naming the verb's usage; BODY runs only with the right count."
  (let* ((names (if (listp names) names (list names)))
         (verb (symbol-name (first names)))
         (line-var (when (and (symbolp (first lambda-list)) (string= (first lambda-list) "&LINE"))
                     (second lambda-list)))
         (req (unless line-var (loop for p in lambda-list until (eq p '&optional) collect p)))
         (opt (unless line-var (rest (member '&optional lambda-list))))
         (usage (format nil "~a~{ ~(~a~)~}~{ [~(~a~)]~}~@[ [~(~a~)]~]" verb req opt line-var))
         (words (gensym "WORDS")))
    `(define-verb ',(mapcar #'symbol-name names)
                  (lambda (,words)
                    ,@(if line-var
                          `((let ((,line-var ,words)) ,@body))
                          `((when (< (length ,words) ,(length req))
                              (refuse "~a what?  (~a)" ,verb ,usage))
                            (when (> (length ,words) ,(+ (length req) (length opt)))
                              (refuse "Too many words: ~a" ,usage))
                            (destructuring-bind (&optional ,@req ,@opt) ,words
                              ,@body))))
                  ,help ,usage ,(and line-var t))))

(defun find-verb (word)
  "Returns the verb symbol WORD names (by name, an external symbol of SYMBOL-GAME.VERBS), or
NIL."
  (multiple-value-bind (s status) (find-symbol (word-name word) (verbs-package))
    (when (and (eq status :external) (get s 'function)) s)))

(defun perform (line)
  "Performs the command LINE (a string), replying on *out*.  Returns :quit when the player
quits, :won when the game was won, NIL otherwise.  A command that cannot be done gets a reply
and changes nothing.  Starts a new game if none is being played."
  (unless *game* (new-game))
  (let* ((line (string-trim '(#\Space #\Tab #\Return #\Newline) line))
         (split (position-if #'blank-p line))
         (head (subseq line 0 split))
         (tail (if split (string-trim '(#\Space #\Tab #\Return #\Newline) (subseq line split)) "")))
    (when (zerop (length line))
      (return-from perform nil))
    (handler-case
        ;; The verb is read alone: a verb taking the line as typed (SAVE FILE) gets the tail
        ;; unread, every other verb gets it read as words.
        (let* ((word (first (read-command head)))
               (verb (find-verb word)))
          (unless verb
            (if (and (symbolp word) (thing-symbol word)
                     (nth-value 1 (find-symbol (symbol-name word) (inventory-package))))
                (refuse "What do you want to do with the ~a?  (HELP lists the verbs.)"
                        (word-name word))
                (refuse "I don't know the word ~a.  Type HELP for the commands." (word-name word))))
          (funcall (get verb 'function)
                   (cond ((not (get verb 'line)) (read-command tail))
                         ((plusp (length tail)) tail)))
          (unless (member (get verb 'verb) +free-verbs+ :test #'string=)
            (incf (game-moves *game*)))
          (refresh-light)
          (when (game-won *game*)
            (reply "*** You have won the Symbol Game in ~d moves. ***" (game-moves *game*))))
      (game-error (e) (reply "~a" (game-error-text e)))))
  (cond ((game-won *game*) :won)
        ((game-over *game*) :quit)))
