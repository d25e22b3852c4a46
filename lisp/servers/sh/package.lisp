;;;; package.lisp — crow.sh: the crow-sh script runner and REPL, and the swank starter.

(defpackage :crow.sh
  (:use :cl)
  (:export #:*args* #:*posix-argv* #:*script* #:exit #:load-swank #:main #:start-swank))

(defpackage :crow-sh-user
  (:use :cl :crow.unix :crow.sh)
  (:documentation "The package scripts and the crow-sh REPL start in."))
