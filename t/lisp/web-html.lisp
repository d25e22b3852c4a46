;;;; web-html.lisp — crow.web templates: output against hand-written HTML, both modes, control
;;;; forms, escaping of text and attributes, and the shape of the compiled code (constant
;;;; octet chunks merged, a loop compiling to a few writes).

(defpackage :crow.test.web
  (:use :cl :fiveam :crow.unix :crow.web))

(in-package :crow.test.web)

(def-suite web-html :in crow.test:crow)
(in-suite web-html)

(defun u (&rest codes) (coerce (mapcar #'code-char codes) 'string))

(test element-text-and-attribute-escaping
  (let ((name "O'Neil \"Q\" <&>"))
    (is (string= "<p class=\"a&amp;b\" title=\"O&#39;Neil &quot;Q&quot; &lt;&amp;&gt;\">x&lt;y O&#39;Neil &quot;Q&quot; &lt;&amp;&gt;</p>"
                 (html-string () (:p :class "a&b" :title name "x<y " name))))
    (is (string= "<div></div><br><img src=\"a.png\" alt=\"\">"
                 (html-string () (:div) (:br) (:img :src "a.png" :alt ""))))
    (is (string= "<span>42-7</span>" (html-string () (:span 42 (- 7)))))
    (is (string= "<b>ok</b>" (html-string () (:b nil "ok" nil))) "NIL writes nothing")))

(test utf8-constant-and-dynamic
  (let ((s (u #xe9 #x20ac #x1f426)))
    (is (equalp (utf8-encode (concatenate 'string "<i>" s "</i><i>" s "</i>"))
                (html-octets () (:i "é€🐦") (:i s))))
    (is (equalp (utf8-encode (concatenate 'string "<i>caf" (string (code-char #xe9)) "</i>"))
                (html-octets () (:i (coerce (list #\c #\a #\f (code-char #xe9)) 'base-string))))
        "base-strings are Latin-1")))

(test modes
  (is (string= (format nil "<!DOCTYPE html>~%<html lang=\"en\"><br><input type=\"checkbox\" checked></html>")
               (html-string () (:doctype) (:html :lang "en" (:br) (:input :type "checkbox" :checked t)))))
  (is (string= (format nil "<?xml version=\"1.0\" encoding=\"UTF-8\"?>~%<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">~%<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><br /><input type=\"checkbox\" checked=\"checked\" /></html>")
               (html-string (:mode :xhtml) (:doctype) (:html :lang "en" (:br) (:input :type "checkbox" :checked t))))))

(test dynamic-boolean-and-nil-attributes
  (flet ((box (on) (html-string () (:input :type "checkbox" :checked on :title (and on "yes")))))
    (is (string= "<input type=\"checkbox\" checked title=\"yes\">" (box t)))
    (is (string= "<input type=\"checkbox\" title=\"\">" (box nil)))))

(test control-forms
  (let ((xs '("a" "<b>" "c")))
    (is (string= "<ul><li>1. a</li><li>2. &lt;b&gt;</li><li>3. c</li></ul>"
                 (html-string () (:ul (:loop for x in xs for i from 1 do (:li i ". " x))))))
    (is (string= "<ol><li>a</li><li>&lt;b&gt;</li><li>c</li></ol>"
                 (html-string () (:ol (:dolist (x xs) (:li x))))))
    (is (string= "yes|no|3|big|"
                 (html-string () (:if t "yes" "no") "|" (:if nil "yes" "no") "|"
                   (:when (= 1 1) (length xs)) (:unless t "never") "|"
                   (:cond ((> (length xs) 2) "big") (t "small")) "|")))
    (is (string= "<p>AB</p>" (html-string () (:p (:let ((a "A")) (:let* ((b (concatenate 'string a "B"))) b))))))
    (is (string= "<p><em>raw</em>&amp;</p>" (html-string () (:p (:raw "<em>raw</em>") "&"))))
    (is (string= "<a href=\"/x?a=1&b=2\">l</a>" (html-string () (:a :href (:raw "/x?a=1&b=2") "l"))))
    (is (string= "<!-- note  x -->" (html-string () (:comment "note -- x"))))))

(define-template row-template (name n)
  (:tr (:td name) (:td n)))

(test define-template-and-call
  (is (string= "<table><tr><td>a&amp;b</td><td>1</td></tr><tr><td>c</td><td>2</td></tr></table>"
               (html-string () (:table (:call row-template "a&b" 1) (:call row-template "c" 2))))))

(test integers-and-growth
  (is (string= (format nil "~d ~d 0" most-positive-fixnum most-negative-fixnum)
               (html-string () most-positive-fixnum " " most-negative-fixnum " " 0)))
  (is (string= (format nil "~d" (expt 10 30)) (html-string () (expt 10 30))) "bignum")
  (let ((o (html-octets (:size 16) (:loop for i below 10000 do (:p i)))))
    (is (= (loop for i below 10000 sum (+ 7 (length (princ-to-string i)))) (length o)))))

(defun count-writes (form)
  "Returns the number of html-out-write-* calls in FORM, and the list of constant chunks."
  (let ((n 0) (chunks '()))
    (labels ((walk (f)
               (when (consp f)
                 (when (member (car f) '(crow.web::%write-constant html-out-write-octets html-out-write-text html-out-write-raw))
                   (incf n)
                   (when (typep (third f) '(simple-array (unsigned-byte 8) (*)))
                     (push (utf8-decode (third f)) chunks)))
                 (loop for x on f while (consp x) do (walk (car x))))))
      (walk form))
    (values n (nreverse chunks))))

(defparameter *page-20*
  '(with-html-output (o)
    (:doctype)
    (:html (:head (:title "T"))
     (:body (:h1 "Rows") (:table :class "t" (:loop for r in rows do (:tr (:td r) (:td "x"))))
      (:p "end")))))

(test compiled-shape
  ;; Without fusion: a 20-row page is 5 writes in the code, 3 of them in the loop body, every
  ;; constant a literal octet vector made at expansion time, adjacent constants merged.
  (let ((exp (let ((*html-fuse* nil)) (macroexpand-1 *page-20*))))
    (multiple-value-bind (n chunks) (count-writes exp)
      (is (= 5 n) "writes in the expansion: ~d" n)
      (is (equal (list (format nil "<!DOCTYPE html>~%<html><head><title>T</title></head><body><h1>Rows</h1><table class=\"t\">")
                       "<tr><td>" "</td><td>x</td></tr>" "</table><p>end</p></body></html>")
                 chunks)))
    (let ((loop-form (find 'loop (rest exp) :key (lambda (f) (and (consp f) (car f))))))
      (is (not (null loop-form)))
      (is (= 3 (count-writes loop-form))))))

(defun count-c-blocks (form)
  (let ((n 0))
    (labels ((walk (f)
               (when (consp f)
                 (when (eq (car f) 'ffi:c-inline) (incf n))
                 (loop for x on f while (consp x) do (walk (car x))))))
      (walk form))
    n))

(test compiled-shape-fused
  ;; With fusion (the default): three writes at the top (constant, loop, constant) and the
  ;; loop body is one C block holding the row's constants and its dynamic value.
  (let* ((exp (macroexpand-1 *page-20*))
         (top (butlast (rest exp)))
         (loop-form (find 'loop top :key (lambda (f) (and (consp f) (car f))))))
    (is (= 3 (length top)) "top-level forms: ~s" (mapcar #'car top))
    (is (eq 'crow.web::%write-constant (car (first top))))
    (is (eq 'crow.web::%write-constant (car (third top))))
    (is (= 1 (count-c-blocks loop-form)) "one C block per row")
    (is (search "crow_web_text(o, #1)" (format nil "~s" loop-form)))
    (is (search "\\074tr\\076\\074td\\076" (format nil "~a" loop-form)) "the row's constant is in the C block")))

(defun fused-page (name n rows)
  (html-string ()
    (:doctype)
    (:html (:head (:title "tpl " name))
     (:body (:h1 "Hello, " name "!")
      (:table (:loop for (i label) in rows do (:tr (:td i) (:td (* i n)) (:td label) (:td name))))))))

(test fused-equals-interpreted
  ;; FiveAM evaluates test bodies with ECL's bytecode interpreter (per-piece writes); the
  ;; compiled function above runs the fused C blocks.  Both must give the same bytes.
  (let ((rows (loop for i from 1 to 20 collect (list i (format nil "row ~d <~a> & \"q\"" i (u #xe9))))))
    (dolist (name (list "plain" "a&b<c>'\"" (u #x20ac #x1f426 60) (coerce "x&y" 'base-string) ""))
      (is (string= (fused-page name -3 rows)
                   (eval `(let ((name ,name) (n -3) (rows ',rows))
                            (html-string ()
                              (:doctype)
                              (:html (:head (:title "tpl " name))
                               (:body (:h1 "Hello, " name "!")
                                (:table (:loop for (i label) in rows
                                               do (:tr (:td i) (:td (* i n)) (:td label) (:td name))))))))))))
    (is (search "<td>-60</td><td>row 20 &lt;" (fused-page "x" -3 rows)))))

(defun fused-values (v) (html-string () (:p "a" v "b")))
(defun fused-small-buffer ()
  (let ((o (make-html-out 1)))
    (with-html-output (o) (:p "abcdef" (make-string 100 :initial-element #\&)))
    (html-out-fill o)))

(test fused-fallbacks
  ;; Values the C block does not take (bignums, characters, symbols) and a buffer that must
  ;; grow go through the per-piece path and give the same bytes.
  (dolist (v (list (expt 10 25) #\< :kw 2.5d0 "ok" 7 most-negative-fixnum))
    (is (string= (format nil "<p>a~ab</p>" (html-escape (princ-to-string v)))
                 (fused-values v))))
  (is (= (+ 3 6 500 4) (fused-small-buffer))))
