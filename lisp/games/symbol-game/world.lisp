;;;; world.lisp — places are packages, things are symbols: defplace, defthing and the moves
;;;; that carry a thing's symbol from one package to another.
;;;;
;;;; A thing is one symbol for the life of the image, made by defthing with make-symbol.
;;;; Where the thing is, is the symbol's home package: import into a package gives a homeless
;;;; symbol that package as its home, unintern from its home package leaves it homeless
;;;; (CLHS import, unintern).  So (symbol-package thing) answers "where is it?": a place's
;;;; package, SYMBOL-GAME.INVENTORY when carried, NIL when it is nowhere (not made yet).
;;;;
;;;; The inventory package uses the package of the place the player is in, and only it:
;;;; carried things are present in it, the things around are inherited, and find-symbol in
;;;; the inventory is exactly "what can the player see and touch".  A place exports its
;;;; symbols only while it is lit, so in the dark nothing there is accessible.

(in-package :crow.symbol-game)

(defstruct place
  "A place: its name (a string), its package, description, whether it is dark, its exits
((DIRECTION TARGET GUARD REFUSAL) with a guard function or NIL), the names of the things it
starts with, a function run when the player enters (or NIL) and words that do something when
said there ((WORD . FUNCTION))."
  name package description dark exits things on-enter words)

(defun game-package-name (name)
  (concatenate 'string +package-prefix+ name))

(defun ensure-game-package (name)
  "Returns the game's package for NAME (SYMBOL-GAME.NAME), making it, using no package, if
needed.  Can't fail."
  (or (find-package (game-package-name name))
      (make-package (game-package-name name) :use '())))

(defun inventory-package ()
  "Returns the player's inventory package, SYMBOL-GAME.INVENTORY."
  (ensure-game-package "INVENTORY"))

(defparameter +reserved-names+ '("INVENTORY" "VERBS" "INPUT")
  "Package names the game keeps for itself: no place may take them.")

;;; ------------------------------------------------------------------ definitions

(defun define-place (name description &key dark exits things on-enter words)
  "Defines (or redefines, keeping its package and what is in it) the place NAME (a string).
Returns NAME.  Signals an error for a reserved name."
  (when (member name +reserved-names+ :test #'string=)
    (error "defplace: ~a is a name the game keeps for itself" name))
  (let ((p (or (gethash name *places*) (make-place :name name))))
    (setf (place-package p) (ensure-game-package name)
          (place-description p) description
          (place-dark p) dark
          (place-exits p) exits
          (place-things p) things
          (place-on-enter p) on-enter
          (place-words p) words
          (gethash name *places*) p)
    (unless (member name *place-order* :test #'string=)
      (setf *place-order* (append *place-order* (list name))))
    name))

(eval-when (:compile-toplevel :load-toplevel :execute)
  (defun %exit-form (spec)
    ;; (DIRECTION TARGET [:if FORM :else "refusal"]) -> a form making the exit's list
    (destructuring-bind (direction target &key (if nil guarded) else) spec
      `(list ,(symbol-name direction) ,(symbol-name target)
             ,(when guarded `(lambda () ,if))
             ,else)))
  (defun %word-form (spec)
    ;; (WORD FORM...) -> (cons "WORD" (lambda () FORM...))
    `(cons ,(symbol-name (first spec)) (lambda () ,@(rest spec)))))

(defmacro defplace (name description &key dark things exits on-enter say)
  "Defines the place NAME: a package SYMBOL-GAME.NAME that holds the symbols of the things in
it.  THINGS names the things it starts with.  Each exit is (DIRECTION PLACE) or (DIRECTION
PLACE :if FORM :else \"why not\"): the way is open when FORM is true.  ON-ENTER is a form run
each time the player arrives; SAY is a list of (WORD FORM...) run when the player says WORD
here.  Returns the name as a string."
  `(define-place ,(symbol-name name) ,description
                 :dark ,dark
                 :things ',(mapcar #'symbol-name things)
                 :exits (list ,@(mapcar #'%exit-form exits))
                 :on-enter ,(when on-enter `(lambda () ,on-enter))
                 :words (list ,@(mapcar #'%word-form say))))

(defun define-thing (name description properties)
  "Defines (or redefines) the thing NAME (a string): its symbol is made once and keeps its
place; its property list becomes (:description DESCRIPTION . PROPERTIES).  Returns the symbol."
  (let ((sym (or (gethash name *things*)
                 (setf (gethash name *things*) (make-symbol name)))))
    (setf (symbol-plist sym) (list* :description description (copy-list properties)))
    (unless (member name *thing-order* :test #'string=)
      (setf *thing-order* (append *thing-order* (list name))))
    sym))

(defmacro defthing (name description &rest properties)
  "Defines the thing NAME, a symbol whose home package is where the thing is.  PROPERTIES (a
literal plist) go on the symbol's plist: :portable T (it can be taken), :text \"...\" (READ
shows it), :light FLAG (it gives light while FLAG is set), :join-text \"...\" (what JOIN
says when it makes this thing: JOIN A B makes the thing named A-B or B-A).  Returns the
symbol."
  `(define-thing ,(symbol-name name) ,description ',properties))

(defun check-world ()
  "Signals an error naming the first inconsistency of the defined world (an exit to an unknown
place, a place holding an unknown thing or a thing two places hold); returns T when there is
none."
  (unless *place-order* (error "symbol-game: no place is defined"))
  (let ((held (make-hash-table :test 'equal)))
    (dolist (pn *place-order*)
      (let ((p (gethash pn *places*)))
        (dolist (e (place-exits p))
          (unless (gethash (second e) *places*)
            (error "symbol-game: ~a's exit ~a leads to unknown place ~a" pn (first e) (second e))))
        (dolist (tn (place-things p))
          (unless (gethash tn *things*)
            (error "symbol-game: ~a holds unknown thing ~a" pn tn))
          (when (gethash tn held)
            (error "symbol-game: both ~a and ~a hold ~a" (gethash tn held) pn tn))
          (setf (gethash tn held) pn)))))
  t)

;;; ------------------------------------------------------------------ lookups

(defun thing-symbol (designator)
  "Returns the symbol of the thing named by DESIGNATOR (a string or a symbol, by name), or
NIL if there is no such thing."
  (gethash (string designator) *things*))

(defun thing (designator)
  "Like thing-symbol, but signals an error when there is no such thing."
  (or (thing-symbol designator) (error "symbol-game: no thing named ~a" designator)))

(defun current-place ()
  "Returns the place the player is in."
  (game-place *game*))

(defun find-place (name)
  "Returns the place named NAME (a string or symbol), or NIL."
  (gethash (string name) *places*))

(defun thing-location (thing)
  "Returns where THING (a designator) is: :inventory, a place, or NIL (nowhere)."
  (let ((pkg (symbol-package (thing thing))))
    (cond ((null pkg) nil)
          ((eq pkg (inventory-package)) :inventory)
          (t (find pkg (mapcar #'find-place *place-order*) :key #'place-package)))))

(defun carried-p (thing)
  "True when the player carries THING (a designator)."
  (eq (symbol-package (thing thing)) (inventory-package)))

(defun here-p (thing)
  "True when THING (a designator) lies in the player's place (seen or not)."
  (eq (symbol-package (thing thing)) (place-package (current-place))))

(defun flag-p (flag)
  "True when FLAG (a keyword of +flags+) is set in the current game."
  (member flag (game-flags *game*)))

(defun set-flag (flag)
  (unless (member flag +flags+) (error "symbol-game: unknown flag ~s" flag))
  (pushnew flag (game-flags *game*)))

(defun lit-p (&optional (place (current-place)))
  "True when PLACE is not dark, or a thing giving light (its :light flag set) is carried or
lies there."
  (or (not (place-dark place))
      (loop for tn in *thing-order*
            for s = (gethash tn *things*)
            thereis (and (get s :light) (flag-p (get s :light))
                         (member (symbol-package s)
                                 (list (inventory-package) (place-package place)))))))

(defun place-contents (place)
  "Returns the things in PLACE, in definition order."
  (loop for tn in *thing-order*
        for s = (gethash tn *things*)
        when (eq (symbol-package s) (place-package place)) collect s))

(defun inventory ()
  "Returns the carried things, in definition order."
  (loop for tn in *thing-order*
        for s = (gethash tn *things*)
        when (eq (symbol-package s) (inventory-package)) collect s))

;;; ------------------------------------------------------------------ moves

(defun move-thing (thing package)
  "Moves THING's symbol into PACKAGE (NIL: nowhere): unintern from its home package, then
import, which makes PACKAGE its home.  Exports it when PACKAGE is the lit current place.
Returns THING."
  (let ((from (symbol-package thing)))
    (when from (unintern thing from))
    (when package
      (import thing package)
      (refresh-light))
    thing))

(defun refresh-light ()
  "Exports every symbol of the current place's package when the place is lit, unexports them
when dark, so the inventory (which uses that package) sees exactly what the player can."
  (when (and *game* (game-place *game*))
    (let* ((pkg (place-package (current-place)))
           (syms (let ((l '())) (do-symbols (s pkg) (when (eq (symbol-package s) pkg) (push s l))) l)))
      (if (lit-p)
          (export syms pkg)
          (let ((ext (remove-if-not (lambda (s) (eq (nth-value 1 (find-symbol (symbol-name s) pkg))
                                                    :external))
                                    syms)))
            (unexport ext pkg))))))

(defun enter-place (place)
  "Makes PLACE the player's: the inventory stops using the old place's package and uses
PLACE's.  Returns PLACE."
  (let ((inv (inventory-package)))
    (dolist (p (package-use-list inv)) (unuse-package p inv))
    (setf (game-place *game*) place)
    (refresh-light)
    (use-package (place-package place) inv)
    place))

(defun visible-thing (word)
  "Returns the thing the player names with WORD (a symbol or number read from the command) if
it is carried or lies here in the light; otherwise signals game-error with the reply."
  (let ((name (princ-to-string (if (symbolp word) (symbol-name word) word))))
    (multiple-value-bind (sym status) (find-symbol name (inventory-package))
      (cond ((and status (eq sym (thing-symbol name))) sym)
            ((and (thing-symbol name) (here-p name) (not (lit-p)))
             (refuse "It is too dark here to find any ~a." name))
            (t (refuse "You see no ~a here." name))))))

(defun won-p ()
  "True when the current game has been won."
  (and *game* (game-won *game*) t))

(defun win (text)
  "Ends the game won, after printing TEXT (perform then prints the number of moves)."
  (setf (game-won *game*) t (game-over *game*) t)
  (reply "~a" text))

(defun new-game ()
  "Starts a new game in the first defined place, every thing back where defplace put it (or
nowhere).  Returns the game.  Signals an error if the world is inconsistent (check-world)."
  (check-world)
  (let ((inv (inventory-package)))
    (dolist (p (package-use-list inv)) (unuse-package p inv)))
  (setf *game* (make-game))
  (dolist (tn *thing-order*) (move-thing (gethash tn *things*) nil))
  (dolist (pn *place-order*)
    (let ((p (gethash pn *places*)))
      (dolist (tn (place-things p))
        (move-thing (gethash tn *things*) (place-package p)))))
  (enter-place (gethash (first *place-order*) *places*))
  *game*)
