;;;; bench.lisp — /tpl, the template benchmark's page (bench/tpl.bench): http-let of two query
;;;; parameters, a 20-row loop, every value escaped.  Hunchentoot + cl-who serve the same page
;;;; from bench/tpl-hunchentoot.lisp; the bench compares one page from each before timing.

(in-package :crow.site)

(defparameter *tpl-rows*
  (loop for i from 1 to 20
        collect (list i (format nil "row ~d <~a> & \"q\"" i (if (evenp i) "even" "odd"))))
  "(I LABEL) for the 20 rows.")

(define-handler tpl (req)
  (http-let (req (name :string "world" :from :get) (n :integer 1 :from :get))
    (respond-html (req)
      (:doctype)
      (:html
        (:head (:meta :charset "utf-8") (:title "tpl " name))
        (:body
          (:h1 "Hello, " name "!")
          (:table :class "rows"
            (:loop for (i label) in *tpl-rows*
                   do (:tr (:td i) (:td (* i n)) (:td label) (:td name)))))))))
