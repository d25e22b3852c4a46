;;;; symbol-game.asd — the Symbol Game as a plain ASDF system for any Common Lisp (SBCL:
;;;; put this directory in ASDF's source registry, then (asdf:load-system "symbol-game") and
;;;; (symbol-game:play)).  crow.asd's crow/symbol-game lists the same files plus main.lisp,
;;;; ECL's entry point; script.lisp loads them in this order without ASDF.

(defsystem "symbol-game"
  :description "The Symbol Game: a text adventure where places are packages and things are
symbols (from crow, portable Common Lisp)."
  :version "0.1.0"
  :license "BSD-2-Clause"
  :serial t
  :components ((:file "package")
               (:file "specials")
               (:file "world")
               (:file "reader")
               (:file "verbs")
               (:file "save")
               (:file "commands")
               (:file "keep")
               (:file "play")))
