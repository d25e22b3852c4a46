;;;; package.lisp — crow.spawn: mmspawnd, an inetd-like server, one instance per service.

(defpackage :crow.spawn
  (:use :cl :crow.unix :crow.server)
  (:export
   #:*spawn-keys* #:admission-enter #:admission-leave #:check-target #:main #:make-plan
   #:plan #:serve))
