;;;; package.lisp — the Symbol Game's package: a text adventure built out of the package
;;;; system (places are packages, things are symbols, the inventory is a package).

(defpackage :crow.symbol-game
  (:use :cl)
  (:nicknames :symbol-game)
  (:export #:*game*
           #:carried-p
           #:current-place
           #:defplace
           #:defthing
           #:defverb
           #:flag-p
           #:game-error
           #:game-error-text
           #:here-p
           #:inventory-package
           #:load-game
           #:main
           #:new-game
           #:perform
           #:place-package
           #:play
           #:read-command
           #:run-cli
           #:save-game
           #:thing-location
           #:thing-symbol
           #:verbs-package
           #:won-p))
