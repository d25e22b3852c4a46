;;;; commands.lisp — the game's verbs, each defined with defverb.

(in-package :crow.symbol-game)

(defparameter +default-save+ "symbol-game.sav" "SAVE and LOAD's file when none is given.")

(defun names (things) (mapcar #'symbol-name things))

(defun describe-place (&optional (place (current-place)))
  "Prints PLACE's name, description (or darkness), exits and, when lit, the things there."
  (reply "== ~a ==" (place-name place))
  (if (lit-p place)
      (reply "~a" (place-description place))
      (reply "It is pitch dark.  You are likely to be collected by a garbage collector."))
  (reply "Exits: ~:[none~;~:*~(~{~a~^, ~}~)~]." (mapcar #'first (place-exits place)))
  (when (lit-p place)
    (let ((things (place-contents place)))
      (when things (reply "You see: ~{~a~^, ~}." (names things))))))

(defverb (look l) ()
    "Describe the place you are in."
  (describe-place))

;;; ------------------------------------------------------------------ moving

(defparameter +directions+
  '(("NORTH" "N") ("SOUTH" "S") ("EAST" "E") ("WEST" "W") ("UP" "U") ("DOWN" "D")))

(defun go-direction (direction)
  "Walks DIRECTION (a canonical direction name) from the current place, if its exit is open:
enters the place, describes it, runs its on-enter form."
  (let ((exit (find direction (place-exits (current-place)) :key #'first :test #'string=)))
    (unless exit
      (refuse "You can't go ~(~a~) from here." direction))
    (destructuring-bind (d target guard refusal) exit
      (declare (ignore d))
      (when (and guard (not (funcall guard)))
        (refuse "~a" (or refusal "Something stops you.")))
      (let ((place (find-place target)))
        (enter-place place)
        (describe-place place)
        (when (place-on-enter place)
          (funcall (place-on-enter place)))))))

(defverb go (direction)
    "Walk: GO NORTH, or NORTH, or N (S, E, W, U, D too)."
  (let ((d (find-if (lambda (d) (member (word-name direction) d :test #'string=)) +directions+)))
    (unless d
      (refuse "~a is not a direction (north, south, east, west, up, down)."
              (word-name direction)))
    (go-direction (first d))))

;; The directions are verbs of their own, without a HELP line (GO's covers them).
(defverb (north n) () nil (go-direction "NORTH"))
(defverb (south s) () nil (go-direction "SOUTH"))
(defverb (east e) () nil (go-direction "EAST"))
(defverb (west w) () nil (go-direction "WEST"))
(defverb (up u) () nil (go-direction "UP"))
(defverb (down d) () nil (go-direction "DOWN"))

;;; ------------------------------------------------------------------ things

(defverb (take get) (thing)
    "Take a thing: its symbol is imported into INVENTORY."
  (let ((s (visible-thing thing)))
    (when (carried-p s)
      (refuse "You already carry the ~a." (symbol-name s)))
    (unless (get s :portable)
      (refuse "The ~a will not move." (symbol-name s)))
    (move-thing s (inventory-package))
    (reply "Taken: ~a is now a symbol of ~a." (symbol-name s) (package-name (inventory-package)))))

(defverb drop (thing)
    "Put a thing down: its symbol goes to this place."
  (let ((s (visible-thing thing)))
    (unless (carried-p s)
      (refuse "You don't carry the ~a." (symbol-name s)))
    (move-thing s (place-package (current-place)))
    (reply "Dropped: ~a is now a symbol of ~a." (symbol-name s) (package-name (symbol-package s)))))

(defverb (inventory i inv) ()
    "List what you carry: the symbols in INVENTORY."
  (let ((things (inventory)))
    (if things
        (reply "You carry: ~{~a~^, ~}." (names things))
        (reply "You carry nothing."))))

(defverb (examine x) (thing)
    "Look closely at a thing and at its symbol."
  (let ((s (visible-thing thing)))
    (reply "~a~:[~; It is lit.~]" (get s :description) (and (get s :light) (flag-p (get s :light))))
    (reply "(Symbol ~a: home package ~a, ~(~a~) in your inventory.)"
           (symbol-name s) (package-name (symbol-package s))
           (nth-value 1 (find-symbol (symbol-name s) (inventory-package))))))

(defverb read (thing)
    "Read what is written on a thing."
  (let ((s (visible-thing thing)))
    (reply "~a" (or (get s :text)
                    (refuse "There is nothing written on the ~a." (symbol-name s))))))

(defverb light (thing)
    "Light a thing that gives light."
  (let* ((s (visible-thing thing))
         (flag (get s :light)))
    (unless flag
      (refuse "You can't light the ~a." (symbol-name s)))
    (when (flag-p flag)
      (refuse "The ~a is already lit." (symbol-name s)))
    (set-flag flag)
    (refresh-light)
    (reply "The ~a is lit." (symbol-name s))
    (when (place-dark (current-place))
      (describe-place))))

(defverb (join combine tie) (thing other)
    "Join two things you carry into the thing A-B."
  (let ((a (visible-thing thing))
        (b (visible-thing other)))
    (when (eq a b)
      (refuse "You can't join the ~a to itself." (symbol-name a)))
    (dolist (s (list a b))
      (unless (carried-p s)
        (refuse "You need to carry the ~a first." (symbol-name s))))
    ;; The result is found by making its name from the two names, in either order.
    (let ((made (or (thing-symbol (format nil "~a-~a" (symbol-name a) (symbol-name b)))
                    (thing-symbol (format nil "~a-~a" (symbol-name b) (symbol-name a))))))
      (unless made
        (refuse "The ~a and the ~a do not go together." (symbol-name a) (symbol-name b)))
      (move-thing a nil)
      (move-thing b nil)
      (move-thing made (inventory-package))
      (reply "~a" (or (get made :join-text) "You join them."))
      (reply "You now carry the ~a (the ~a and the ~a are gone: no package holds them)."
             (symbol-name made) (symbol-name a) (symbol-name b)))))

(defverb say (word)
    "Say a word aloud."
  (let ((entry (assoc (word-name word) (place-words (current-place)) :test #'string=)))
    (if entry
        (funcall (cdr entry))
        (reply "You say ~a.  Nothing happens." (word-name word)))))

(defverb packages ()
    "Show your INVENTORY package and what it uses."
  (let* ((inv (inventory-package))
         (used (first (package-use-list inv)))
         (inherited '()))
    (do-symbols (s inv)
      (when (eq (nth-value 1 (find-symbol (symbol-name s) inv)) :inherited)
        (push (symbol-name s) inherited)))
    (reply "~a holds ~:[nothing~;~:*~{~a~^, ~}~]." (package-name inv) (names (inventory)))
    (reply "It uses ~a, which exports ~:[nothing~;~:*~{~a~^, ~}~]~:[ (it is dark there)~;~]."
           (package-name used) (sort inherited #'string<) (lit-p))))

;;; ------------------------------------------------------------------ the game itself

(defverb (help ?) ()
    "List the commands."
  (reply "~a" *goal*)
  (reply "Commands (type them in any case; words are read as symbols):")
  (dolist (v *verb-order*)
    (let ((s (find-symbol v (verbs-package))))
      (when (get s 'help)
        (reply "  ~17a ~a~@[ (~{~a~^ ~})~]" (get s 'usage) (get s 'help) (get s 'aliases))))))

(defverb (quit exit q) ()
    "Leave the game (it is not saved)."
  (setf (game-over *game*) t)
  (reply "Goodbye."))

(defverb save (&line file)
    "Save the game (default file symbol-game.sav)."
  (let ((file (or file +default-save+)))
    (save-game file)
    (reply "Saved to ~a." file)))

(defverb (load restore) (&line file)
    "Load a saved game (default symbol-game.sav)."
  (let ((file (or file +default-save+)))
    (load-game file)
    (reply "Loaded ~a." file)
    (describe-place)))
