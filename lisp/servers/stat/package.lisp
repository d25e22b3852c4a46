;;;; package.lisp — crow.mmstatd: mmstatd, the counter database server.

(defpackage :crow.mmstatd
  (:use :cl :crow.unix :crow.server)
  (:export #:*mmstatd-keys* #:main))
