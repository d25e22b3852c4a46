;;;; package.lisp — crow.hello: an HTTP hello-world on crow.server's event workers, the
;;;; framework's proof and benchmark subject until crow-httpd exists.

(defpackage :crow.hello
  (:use :cl :crow.unix :crow.server)
  (:export #:handle #:main))
