;;;; html.lisp — compile-time HTML templates: s-expressions expanded by the macro into
;;;; constant UTF-8 octet chunks interleaved with the dynamic parts, written into one buffer.
;;;;
;;;; A template is compiled when the macro expands.  Every piece whose bytes are known then
;;;; (tags, attributes with constant values, literal text, already escaped) becomes part of a
;;;; constant octet vector; adjacent constants merge, so a page with a loop becomes a handful of
;;;; copies into the buffer plus one escape-and-encode call (in C) per dynamic value.
;;;;
;;;; Forms inside a template:
;;;;   "text" 42 #\c            constant text, escaped at compile time
;;;;   (:tag :attr v ... body)  an element; attribute values escaped, NIL omits the attribute,
;;;;                            T writes a boolean attribute
;;;;   (:if test then [else])  (:when test body...)  (:unless test body...)
;;;;   (:cond (test body...)...)  (:let bindings body...)  (:let* ...)
;;;;   (:loop for x in xs ... do body...)   (:dolist (x xs) body...)
;;;;   (:raw expr)              EXPR's value written as it is (string as UTF-8, or octets)
;;;;   (:call fn args...)       calls (FN OUT ARGS...): a template defined by define-template
;;;;   (:lisp forms...)         evaluated for effect   (:progn body...)
;;;;   (:doctype)  (:comment "text")
;;;;   any other form           evaluated; its value written escaped (NIL writes nothing)

(in-package :crow.web)

(ffi:clines "#include <string.h>")

;;; ------------------------------------------------------------------ the output buffer

(defstruct (html-out (:constructor %make-html-out (octets)))
  "A growing octet buffer a template writes into."
  (octets (make-octets 0) :type octets)
  (fill 0 :type fixnum))

(defun make-html-out (&optional (size 4096))
  "Returns an empty output buffer with room for SIZE octets.  Can't fail."
  (%make-html-out (make-octets size)))

(defun %grow (out need)
  (declare (type html-out out) (fixnum need))
  (let* ((old (html-out-octets out))
         (new (make-octets (max need (* 2 (length old))))))
    (ffi:c-inline (new old (html-out-fill out)) (:object :object :fixnum) :void
      "memcpy(#0->vector.self.b8, #1->vector.self.b8, (size_t)#2)" :one-liner t)
    (setf (html-out-octets out) new)))

(declaim (inline %ensure))
(defun %ensure (out n)
  (declare (type html-out out) (fixnum n))
  (let ((need (+ (html-out-fill out) n)))
    (when (> need (length (html-out-octets out)))
      (%grow out need))))

(defun html-out-write-octets (out octets &optional (start 0) end)
  "Copies OCTETS[START,END) into OUT.  Can't fail."
  (declare (type html-out out) (type octets octets) (fixnum start) (optimize (speed 3) (safety 1)))
  (let* ((end (or end (length octets)))
         (n (- end start)))
    (declare (fixnum end n))
    (%ensure out n)
    (let ((fill (html-out-fill out)))
      (ffi:c-inline ((html-out-octets out) fill octets start n)
                    (:object :fixnum :object :fixnum :fixnum) :void
        "memcpy(#0->vector.self.b8 + #1, #2->vector.self.b8 + #3, (size_t)#4)" :one-liner t)
      (setf (html-out-fill out) (+ fill n)))
    out))

(defun html-out-write-text (out value)
  "Writes VALUE escaped for HTML into OUT: a string (UTF-8), an integer (decimal), a
character, NIL (nothing), anything else as PRINC would print it.  Can't fail."
  (declare (type html-out out) (optimize (speed 3) (safety 1)))
  (typecase value
    (null)
    (simple-string
     (%ensure out (* +html-escape-max+ (length value)))
     (setf (html-out-fill out) (html-escape-into value (html-out-octets out) (html-out-fill out))))
    (fixnum (if (= value most-negative-fixnum)   ; its ABS is not a fixnum
                (html-out-write-text out (princ-to-string value))
                (%write-fixnum out value)))
    (string (html-out-write-text out (coerce value 'simple-string)))
    (character (html-out-write-text out (string value)))
    (t (html-out-write-text out (princ-to-string value))))
  out)

(defun %write-fixnum (out n)
  (declare (type html-out out) (fixnum n) (optimize (speed 3) (safety 0)))
  (%ensure out 21)
  (let* ((v (html-out-octets out))
         (fill (html-out-fill out))
         (neg (minusp n))
         (m (abs n))
         (digits (if (zerop m) 1 (loop for k fixnum = m then (floor k 10)
                                       while (plusp k) count t))))
    (declare (fixnum fill digits) (type (integer 0) m))
    (when neg (setf (aref v fill) 45) (incf fill))
    (loop for i fixnum from (+ fill digits -1) downto fill
          do (multiple-value-bind (q r) (floor m 10)
               (setf (aref v i) (+ 48 r) m q)))
    (setf (html-out-fill out) (+ fill digits))))

(defun html-out-write-raw (out value)
  "Writes VALUE into OUT as it is: octets copied, a string encoded as UTF-8, NIL nothing,
anything else as PRINC would print it.  Can't fail."
  (typecase value
    (null)
    (octets (html-out-write-octets out value))
    (string (html-out-write-octets out (utf8-encode value)))
    (t (html-out-write-raw out (princ-to-string value))))
  out)

(defun html-out-result (out)
  "Returns the bytes written into OUT as a fresh octet vector.  Can't fail."
  (subseq (html-out-octets out) 0 (html-out-fill out)))

;;; ------------------------------------------------------------------ the compiler

(defvar *html-mode* :html5
  "The output mode templates are compiled in when their macro names none: :html5 or :xhtml.
Read at macroexpansion time.")

(defparameter +void-elements+
  '("area" "base" "br" "col" "embed" "hr" "img" "input" "link" "meta" "param" "source"
    "track" "wbr"))

(defparameter +boolean-attributes+
  '("allowfullscreen" "async" "autofocus" "autoplay" "checked" "controls" "default" "defer"
    "disabled" "formnovalidate" "hidden" "ismap" "loop" "multiple" "muted" "nomodule"
    "novalidate" "open" "readonly" "required" "reversed" "selected")
  "Attributes whose dynamic value decides at run time whether they appear at all.")

(defparameter +special-forms+
  '(:if :when :unless :cond :let :let* :loop :dolist :raw :call :lisp :progn :doctype
    :comment))

(defun escape-constant (string)
  "Returns STRING escaped for HTML (at compile time; the run-time twin is in C)."
  (with-output-to-string (s)
    (loop for c across string
          do (case c
               (#\& (write-string "&amp;" s)) (#\< (write-string "&lt;" s))
               (#\> (write-string "&gt;" s)) (#\" (write-string "&quot;" s))
               (#\' (write-string "&#39;" s)) (t (write-char c s))))))

(defun constant-text-p (x)
  (or (stringp x) (numberp x) (characterp x)))

(defun constant-text (x)
  (escape-constant (if (stringp x) x (princ-to-string x))))

;;; The compiler turns template forms into a list of items: a string (constant bytes, already
;;; escaped, not yet encoded) or a Lisp form writing into the buffer named by *out*.

(defvar *out* nil "The variable naming the buffer while a template compiles.")
(defvar *mode* :html5 "The mode of the template being compiled.")

(defun compile-forms (forms)
  (loop for f in forms append (compile-form f)))

(defun compile-form (form)
  (cond ((null form) '())
        ((constant-text-p form) (list (constant-text form)))
        ((keywordp form) (compile-element form '()))
        ((symbolp form) (list `(html-out-write-text ,*out* ,form)))
        ((and (consp form) (member (car form) +special-forms+)) (compile-special form))
        ((and (consp form) (keywordp (car form))) (compile-element (car form) (cdr form)))
        (t (list `(html-out-write-text ,*out* ,form)))))

(defun body-form (forms)
  "Compiles FORMS into one Lisp form (a progn of merged writes)."
  (let ((writes (emit-items (merge-items (compile-forms forms)))))
    (if (rest writes) `(progn ,@writes) (or (first writes) nil))))

(defun compile-special (form)
  (destructuring-bind (op &rest args) form
    (ecase op
      (:if (destructuring-bind (test then &optional else) args
             (list `(if ,test ,(body-form (list then)) ,(body-form (list else))))))
      (:when (list `(when ,(first args) ,(body-form (rest args)))))
      (:unless (list `(unless ,(first args) ,(body-form (rest args)))))
      (:cond (list `(cond ,@(loop for (test . body) in args
                                  collect `(,test ,(body-form body))))))
      ((:let :let*) (list `(,(if (eq op :let) 'let 'let*) ,(first args)
                            ,(body-form (rest args)))))
      (:loop (let ((do (position-if (lambda (x) (and (symbolp x) (string= x "DO"))) args)))
               (unless do (error "crow.web: (:loop ...) needs DO before the template body: ~s" form))
               (list `(loop ,@(subseq args 0 do) do ,(body-form (nthcdr (1+ do) args))))))
      (:dolist (list `(dolist ,(first args) ,(body-form (rest args)))))
      (:raw (loop for x in args
                  append (if (constant-text-p x)
                             (list (if (stringp x) x (princ-to-string x)))
                             (list `(html-out-write-raw ,*out* ,x)))))
      (:call (list `(,(first args) ,*out* ,@(rest args))))
      (:lisp (list `(progn ,@args nil)))
      (:progn (compile-forms args))
      (:doctype (list (if (eq *mode* :xhtml)
                          (format nil "<?xml version=\"1.0\" encoding=\"UTF-8\"?>~%<!DOCTYPE html ~
PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">~%")
                          (format nil "<!DOCTYPE html>~%"))))
      (:comment (list (format nil "<!-- ~a -->" (remove #\- (first args))))))))

(defun split-attributes (args)
  "Returns (values ATTRIBUTE-PLIST BODY): leading keyword/value pairs, then the rest."
  (loop while (and (keywordp (first args)) (rest args))
        collect (pop args) into plist
        collect (pop args) into plist
        finally (return (values plist args))))

(defun compile-attribute (name value)
  (let ((name (string-downcase name)))
    (cond ((null value) '())
          ((eq value t) (list (if (eq *mode* :xhtml)
                                  (format nil " ~a=\"~a\"" name name)
                                  (format nil " ~a" name))))
          ((constant-text-p value) (list (format nil " ~a=\"~a\"" name (constant-text value))))
          ((and (consp value) (eq (car value) :raw))
           (list (format nil " ~a=\"" name) `(html-out-write-raw ,*out* ,(second value)) "\""))
          ((member name +boolean-attributes+ :test #'string=)
           (list `(when ,value ,(body-form (list (list :raw (if (eq *mode* :xhtml)
                                                                 (format nil " ~a=\"~a\"" name name)
                                                                 (format nil " ~a" name))))))))
          (t (list (format nil " ~a=\"" name) `(html-out-write-text ,*out* ,value) "\"")))))

(defun compile-element (tag args)
  (let ((name (string-downcase tag)))
    (multiple-value-bind (attrs body) (split-attributes args)
      (when (and (eq *mode* :xhtml) (string= name "html") (not (getf attrs :xmlns)))
        (setf attrs (list* :xmlns "http://www.w3.org/1999/xhtml" attrs)))
      (let ((void (and (null body) (member name +void-elements+ :test #'string=))))
        (append (list (format nil "<~a" name))
                (loop for (k v) on attrs by #'cddr append (compile-attribute k v))
                (list (if void (if (eq *mode* :xhtml) " />" ">") ">"))
                (unless void
                  (append (compile-forms body) (list (format nil "</~a>" name)))))))))

(defun merge-items (items)
  "Joins adjacent constant strings."
  (let ((out '()))
    (dolist (i items (nreverse out))
      (if (and (stringp i) (stringp (first out)))
          (setf (first out) (concatenate 'string (first out) i))
          (push i out)))))

(defun emit-items (items)
  "Returns the Lisp forms writing ITEMS: each constant as one literal UTF-8 octet vector."
  (loop for i in items
        unless (equal i "")
          collect (if (stringp i)
                      `(html-out-write-octets ,*out* ,(utf8-encode i))
                      i)))

(defun compile-template (out forms &key (mode *html-mode*))
  "Returns the Lisp forms that write template FORMS into the buffer variable OUT."
  (check-type mode (member :html5 :xhtml))
  (let ((*out* out) (*mode* mode))
    (emit-items (merge-items (compile-forms forms)))))

;;; ------------------------------------------------------------------ the public macros

(defmacro with-html-output ((out &key (mode *html-mode*)) &body template)
  "Writes TEMPLATE (compiled now, in MODE :html5 or :xhtml) into the html-out buffer that the
variable OUT holds.  Returns OUT."
  `(progn ,@(compile-template out template :mode mode) ,out))

(defmacro html-octets ((&key (mode *html-mode*) (size 4096)) &body template)
  "Returns TEMPLATE's output as a fresh octet vector (UTF-8)."
  (let ((out (gensym "OUT")))
    `(let ((,out (make-html-out ,size)))
       ,@(compile-template out template :mode mode)
       (html-out-result ,out))))

(defmacro html-string ((&key (mode *html-mode*)) &body template)
  "Returns TEMPLATE's output as a string (for tests and the REPL)."
  `(utf8-decode (html-octets (:mode ,mode) ,@template)))

(defmacro define-template (name (&rest lambda-list) &body template)
  "Defines function NAME taking an html-out buffer, then LAMBDA-LIST, that writes TEMPLATE
into the buffer (a leading (:mode M) picks the mode).  Call it from another template with
(:call NAME ARGS...).  Returns the buffer."
  (let ((out (gensym "OUT"))
        (mode *html-mode*))
    (when (and (consp (first template)) (eq (car (first template)) :mode))
      (setf mode (second (pop template))))
    `(defun ,name (,out ,@lambda-list)
       ,@(compile-template out template :mode mode)
       ,out)))
