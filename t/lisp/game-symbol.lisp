;;;; game-symbol.lisp — the Symbol Game's mechanics: symbols moving between packages, the
;;;; inventory's use-list, darkness as unexported symbols, the restricted reader, the
;;;; defplace/defthing/defverb macros, save and load.

(in-package :crow.test)

(def-suite game-symbol :in crow)
(in-suite game-symbol)

(defun sg-run (&rest lines)
  "Performs LINES in the current game; returns everything the game replied, as one string."
  (with-output-to-string (out)
    (let ((symbol-game::*out* out))
      (dolist (l lines) (symbol-game:perform l)))))

(defun sg-pkg (name) (find-package (concatenate 'string "SYMBOL-GAME." name)))

(defun sg-status (name)
  "The accessibility of the thing NAME in the inventory package (:internal, :inherited, NIL)."
  (nth-value 1 (find-symbol name (symbol-game:inventory-package))))

(test game-things-are-symbols-in-place-packages
  (symbol-game:new-game)
  (let ((lamp (symbol-game:thing-symbol "LAMP"))
        (rope-hook (symbol-game:thing-symbol "ROPE-HOOK")))
    (is (eq (sg-pkg "HALL") (symbol-package lamp)) "the LAMP's home is the HALL's package")
    (is (eq lamp (find-symbol "LAMP" (sg-pkg "HALL"))))
    (is (null (symbol-package rope-hook)) "a thing not made yet has no home package")
    (is (equal "A brass lamp, its wick trimmed." (get lamp :description)))
    (is (eq :lamp-lit (get lamp :light)))
    ;; redefining a thing keeps its symbol (and where it is), changes its plist
    (let ((old (get lamp :description)))
      (unwind-protect
           (progn (eval '(symbol-game:defthing lamp "A new lamp." :portable t :light :lamp-lit))
                  (is (eq lamp (symbol-game:thing-symbol "LAMP")))
                  (is (equal "A new lamp." (get lamp :description)))
                  (is (eq (sg-pkg "HALL") (symbol-package lamp))))
        (eval `(symbol-game:defthing lamp ,old :portable t :light :lamp-lit))))))

(test game-inventory-uses-the-current-place
  (symbol-game:new-game)
  (let ((inv (symbol-game:inventory-package)))
    (is (equal (list (sg-pkg "GATE")) (package-use-list inv)))
    (is (eq :inherited (sg-status "SIGN")) "things here are inherited")
    (is (null (sg-status "LAMP")) "things elsewhere are not accessible")
    (sg-run "north")
    (is (equal (list (sg-pkg "HALL")) (package-use-list inv)) "moving changes the use-list")
    (is (eq :inherited (sg-status "LAMP")))
    (is (null (sg-status "SIGN")))
    (let ((out (sg-run "take lamp")))
      (is (search "Taken: LAMP" out) "~a" out))
    (is (eq inv (symbol-package (symbol-game:thing-symbol "LAMP"))) "taken: imported, home INVENTORY")
    (is (eq :internal (sg-status "LAMP")))
    (is (null (find-symbol "LAMP" (sg-pkg "HALL"))) "and uninterned from the HALL")
    (sg-run "south")
    (is (eq :internal (sg-status "LAMP")) "carried things go along")
    (sg-run "drop lamp")
    (is (eq (sg-pkg "GATE") (symbol-package (symbol-game:thing-symbol "LAMP"))))
    (is (eq :inherited (sg-status "LAMP")))))

(test game-darkness-is-unexported-symbols
  (symbol-game:new-game)
  (sg-run "north" "take lamp" "drop lamp" "down")
  (let ((hook (symbol-game:thing-symbol "HOOK")))
    (is (eq (sg-pkg "CELLAR") (symbol-package hook)))
    (is (eq :internal (nth-value 1 (find-symbol "HOOK" (sg-pkg "CELLAR")))) "dark: not exported")
    (is (null (sg-status "HOOK")) "so the inventory cannot see it")
    (let ((out (sg-run "take hook")))
      (is (search "too dark" out) "~a" out))
    (is (eq (sg-pkg "CELLAR") (symbol-package hook)))
    (sg-run "up" "take lamp" "light lamp" "down")
    (is (eq :external (nth-value 1 (find-symbol "HOOK" (sg-pkg "CELLAR")))) "lit: exported")
    (is (eq :inherited (sg-status "HOOK")))
    (sg-run "take hook")
    (is (eq :internal (sg-status "HOOK")))))

(test game-join-makes-the-joined-name
  (symbol-game:new-game)
  (let ((out (sg-run "n" "take lamp" "light lamp" "d" "take hook" "u" "w" "take rope"
                     "join hook rope")))
    (is (search "You now carry the ROPE-HOOK" out) "~a" out))
  (is (symbol-game:carried-p "ROPE-HOOK"))
  (is (null (symbol-package (symbol-game:thing-symbol "ROPE"))) "the parts have no home")
  (is (null (symbol-package (symbol-game:thing-symbol "HOOK"))))
  (is (search "do not go together" (sg-run "join lamp rope-hook"))))

(defun symbols-named (name)
  "The packages in which a symbol NAME is present."
  (loop for p in (list-all-packages)
        when (multiple-value-bind (s st) (find-symbol name p)
               (and st (eq (symbol-package s) p)))
          collect p))

(test game-reader-reads-plain-words
  (let ((words (symbol-game:read-command "Take  the-LAMP 42 zzqx-never-seen?")))
    (is (equal '("TAKE" "THE-LAMP") (mapcar #'symbol-name (subseq words 0 2))))
    (is (eql 42 (third words)))
    (is (every (lambda (w) (or (numberp w) (null (symbol-package w)))) words)
        "the words are homeless symbols")
    (is (null (symbols-named "ZZQX-NEVER-SEEN?")) "nothing interned anywhere"))
  (is (null (find-package "SYMBOL-GAME.INPUT")) "the scratch package is deleted")
  (is (equal '() (symbol-game:read-command "   "))))

(test game-reader-refuses-everything-else
  (dolist (bad '("cl-user::zzqx-evil" "keyword:zzqx" "#.(error \"x\")" "'quote" "(a b)"
                 "|zzqx bar|" "a\\b" "café" "take lamp;" "x,y" "\"string\""))
    (let ((e (handler-case (progn (symbol-game:read-command bad) nil)
               (symbol-game:game-error (e) (symbol-game:game-error-text e)))))
      (is (and e (search "plain words" e)) "~s gets ~s" bad e)))
  (is (null (symbols-named "ZZQX-EVIL")))
  (is (null (symbols-named "ZZQX")))
  (signals symbol-game:game-error (symbol-game:read-command (make-string 201 :initial-element #\a)))
  (signals symbol-game:game-error (symbol-game:read-command "a b c d e f g h i"))
  (signals symbol-game:game-error (symbol-game:read-command "1e99999")))

(test game-defverb-macro
  (let ((verbs (symbol-game:verbs-package)))
    (dolist (n '("TAKE" "GET" "INVENTORY" "I" "N" "HELP" "?"))
      (is (eq :external (nth-value 1 (find-symbol n verbs))) "verb ~a is exported" n))
    (is (eq (get (find-symbol "GET" verbs) 'symbol-game::function)
            (get (find-symbol "TAKE" verbs) 'symbol-game::function)) "an alias shares the function")
    (is (equal "TAKE thing" (get (find-symbol "TAKE" verbs) 'symbol-game::usage))))
  (symbol-game:new-game)
  (is (search "TAKE what?" (sg-run "take")))
  (is (search "Too many words: TAKE thing" (sg-run "take a b")))
  (is (search "I don't know the word FROB" (sg-run "frob")))
  (is (search "What do you want to do with the SIGN?" (sg-run "sign")))
  (is (search "You see no LAMP here" (sg-run "take lamp")))
  (is (search "The SIGN will not move" (sg-run "take sign")))
  (is (search "You can't go west" (sg-run "west")))
  (is (search "not a direction" (sg-run "go sideways")))
  (is (zerop (symbol-game::game-moves symbol-game:*game*)) "refused commands are not moves"))

(test game-defplace-macro
  (let ((form (macroexpand-1 '(symbol-game:defplace zzqx-room "A room."
                               :things (lamp)
                               :exits ((north hall :if (symbol-game:flag-p :door-open) :else "No."))
                               :say ((xyzzy (print 1)))))))
    (is (eq 'symbol-game::define-place (first form)))
    (is (equal "ZZQX-ROOM" (second form)))
    (is (equal ''("LAMP") (getf (cdddr form) :things)))
    (is (equal '(list (list "NORTH" "HALL" (lambda () (symbol-game:flag-p :door-open)) "No."))
               (getf (cdddr form) :exits))
        "a guarded exit becomes a closure over its :if form")
    (is (equal '(list (cons "XYZZY" (lambda () (print 1)))) (getf (cdddr form) :words))))
  ;; a place with an exit to nowhere makes check-world (and new-game) fail
  (unwind-protect
       (progn
         (eval '(symbol-game:defplace zzqx-room "A room." :exits ((north zzqx-nowhere))))
         (signals error (symbol-game::check-world)))
    (remhash "ZZQX-ROOM" symbol-game::*places*)
    (setf symbol-game::*place-order* (remove "ZZQX-ROOM" symbol-game::*place-order* :test #'string=))
    (when (sg-pkg "ZZQX-ROOM") (delete-package (sg-pkg "ZZQX-ROOM"))))
  (is (symbol-game::check-world))
  (signals error (eval '(symbol-game:defplace inventory "No."))))

(test game-save-and-load
  (with-temp-dir (dir)
    (let ((file (concatenate 'string dir "game.sav")))
      (symbol-game:new-game)
      (sg-run "n" "take lamp" "light lamp" "e" "take scroll")
      (is (search "Saved to" (sg-run (format nil "save ~a" file))))
      (let ((text (with-open-file (in file) (let ((s (make-string (file-length in))))
                                              (subseq s 0 (read-sequence s in))))))
        (is (search "(place \"LIBRARY\")" text) "~a" text)
        (is (search "(thing \"LAMP\" \"INVENTORY\")" text))
        (is (search "(thing \"ROPE-HOOK\")" text))
        (is (search "(flag \"LAMP-LIT\")" text)))
      (let ((other (concatenate 'string dir "other.txt")))
        (with-open-file (out other :direction :output) (write-line "keep me" out))
        (is (search "is not a Symbol Game save file" (sg-run (format nil "save ~a" other))))
        (is (equal "keep me" (with-open-file (in other) (read-line in))) "SAVE left it alone"))
      (symbol-game:new-game)
      (is (search "Loaded" (sg-run (format nil "load ~a" file))))
      (is (equal "LIBRARY" (symbol-game::place-name (symbol-game:current-place))))
      (is (symbol-game:carried-p "SCROLL"))
      (is (symbol-game:flag-p :lamp-lit))
      (is (= 5 (symbol-game::game-moves symbol-game:*game*)))
      (is (equal (list (sg-pkg "LIBRARY")) (package-use-list (symbol-game:inventory-package)))))))

(test game-load-refuses-bad-files
  (with-temp-dir (dir)
    (let ((file (concatenate 'string dir "bad.sav")))
      (flet ((try (text)
               (with-open-file (out file :direction :output :if-exists :supersede)
                 (write-string text out))
               (symbol-game:new-game)
               (sg-run "n")
               (prog1 (sg-run (format nil "load ~a" file))
                 (is (equal "HALL" (symbol-game::place-name (symbol-game:current-place)))
                     "a failed load leaves the game as it was"))))
        (let ((head (format nil "(symbol-game-save 1)~%")))
          (is (search "bad.sav:2: \":\" is not allowed" (try (format nil "~a(place cl-user::x)~%" head))))
          (is (search "bad.sav:1: \"#\" is not allowed" (try "#.(error \"boom\")")))
          (is (search "bad.sav:1: not a Symbol Game save file" (try "(hello)")))
          (is (search "bad.sav:1: save file version 2" (try "(symbol-game-save 2)")))
          (is (search "bad.sav:3: unknown place \"MOON\""
                      (try (format nil "~a(moves 3)~%(place \"MOON\")~%" head))))
          (is (search "bad.sav:2: a list is not closed" (try (format nil "~a(place \"GATE\"~%" head))))
          (is (search "does not say where SIGN is"
                      (try (format nil "~a(place \"GATE\")~%(moves 0)~%" head))))
          (is (search "bad.sav:2: unknown entry EVAL" (try (format nil "~a(eval 1)~%" head))))
          (is (search "Cannot load" (try ""))))
        (is (search "Cannot load" (sg-run (format nil "load ~anope.sav" dir))))))
    (is (null (symbols-named "EVAL-ZZQX")))))

(test game-play-through
  (symbol-game:new-game)
  (let ((out (sg-run "n" "take lamp" "light lamp" "d" "take hook" "u" "w" "take rope"
                     "join rope hook" "e" "e" "read scroll" "w" "say lambda" "n" "u"
                     "take crown" "d" "s" "s")))
    (is (symbol-game:won-p) "~a" out)
    (is (search "*** You have won the Symbol Game in 20 moves. ***" out) "~a" out)))
