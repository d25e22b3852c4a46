;;;; package.lisp — crow.echo: the echo service on crow.unix (make run's first program).

(defpackage :crow.echo
  (:use :cl :crow.unix)
  (:export #:main #:serve))
