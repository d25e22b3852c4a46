;;;; package.lisp — crow.appserv: crow-appserv, protocol handlers written as Lisp files named in
;;;; the config, served over crow.server's concurrency models.  The exports below are also the
;;;; API a handler file sees (its package uses :cl and :crow.appserv).

(defpackage :crow.appserv
  (:use :cl :crow.unix :crow.server)
  (:export
   ;; the handler API
   #:close-after #:conn #:conn-data #:conn-peer #:conn-service #:crlf #:line #:log-info
   #:log-warn #:pool-call #:service-name #:service-option
   ;; the program
   #:main))
