;;;; tpl-hunchentoot.lisp — the /tpl benchmark's peer: Hunchentoot on SBCL with cl-who serving
;;;; the same page as crow.site:tpl (lisp/web/site/bench.lisp): two query parameters, a
;;;; 20-row loop, every value escaped.  sbcl --script bench/tpl-hunchentoot.lisp PORT
(require :asdf)
(let ((*error-output* (make-broadcast-stream)) (*standard-output* (make-broadcast-stream)))
  (asdf:load-system :hunchentoot)
  (asdf:load-system :cl-who))

(defpackage :tpl-peer (:use :cl :cl-who))
(in-package :tpl-peer)

(setf (html-mode) :html5
      *attribute-quote-char* #\"
      hunchentoot:*hunchentoot-default-external-format* (flex:make-external-format :utf-8)
      hunchentoot:*default-content-type* "text/html; charset=utf-8")

(defparameter *rows*
  (loop for i from 1 to 20
        collect (list i (format nil "row ~d <~a> & \"q\"" i (if (evenp i) "even" "odd")))))

(hunchentoot:define-easy-handler (tpl :uri "/tpl") ()
  (let* ((name (or (hunchentoot:get-parameter "name") "world"))
         (n (or (ignore-errors (parse-integer (hunchentoot:get-parameter "n"))) 1)))
    (with-html-output-to-string (s nil :prologue t)
      (:html
       (:head (:meta :charset "utf-8") (:title "tpl " (esc name)))
       (:body
        (:h1 "Hello, " (esc name) "!")
        (:table :class "rows"
                (loop for (i label) in *rows*
                      do (htm (:tr (:td (str i)) (:td (str (* i n))) (:td (esc label))
                                   (:td (esc name)))))))))))

(let ((port (parse-integer (second sb-ext:*posix-argv*))))
  (hunchentoot:start (make-instance 'hunchentoot:easy-acceptor
                                    :address "127.0.0.1" :port port
                                    :access-log-destination nil :message-log-destination nil))
  (format t "tpl-hunchentoot: listening on 127.0.0.1:~d~%" port)
  (finish-output)
  (loop (sleep 3600)))
