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

(ffi:clines "#include <string.h>" "#include \"html.h\"")

;;; ------------------------------------------------------------------ the output buffer

(deftype %buffer () '(simple-array (unsigned-byte 8) (*)))

(defstruct (html-out (:constructor %make-html-out (octets)))
  "A growing octet buffer a template writes into."
  (octets (%alloc 0) :type %buffer)
  (fill 0 :type fixnum))

;;; The hot path is written for ECL: safety 0 and C tag tests instead of TYPEP, since a run-time
;;; check against a deftype'd array type costs microseconds there, and buffers are allocated
;;; without clearing (every byte up to FILL is written before it is read).

(declaim (inline %alloc))
(defun %alloc (n)
  (ffi:c-inline (n) (:fixnum) :object "ecl_alloc_simple_vector((cl_index)#0, ecl_aet_b8)"
                :one-liner t))

(defun make-html-out (&optional (size 4096))
  "Returns an empty output buffer with room for SIZE octets.  Can't fail."
  (%make-html-out (%alloc size)))

(defun %grow (out need)
  (declare (type html-out out) (fixnum need) (optimize (speed 3) (safety 0)))
  (let* ((old (html-out-octets out))
         (new (%alloc (max need (* 2 (length old))))))
    (ffi:c-inline (new old (html-out-fill out)) (:object :object :fixnum) :void
      "memcpy(#0->vector.self.b8, #1->vector.self.b8, (size_t)#2)" :one-liner t)
    (setf (html-out-octets out) new)))

(declaim (inline %ensure))
(defun %ensure (out n)
  (declare (type html-out out) (fixnum n) (optimize (speed 3) (safety 0)))
  (let ((need (+ (html-out-fill out) n)))
    (declare (fixnum need))
    (when (> need (length (html-out-octets out)))
      (%grow out need))))

(defun %write-constant (out octets)
  "Copies the whole octet vector OCTETS (a template's constant chunk) into OUT."
  (declare (optimize (speed 3) (safety 0)))
  ;; Slots by position: 0 = octets, 1 = fill (the defstruct above).  One C block: room check,
  ;; copy, new fill; only growing goes back to Lisp.
  (loop until (ffi:c-inline (out octets) (:object :object) :bool
                "{ cl_object b = #0->instance.slots[0];
                   cl_index f = ecl_fixnum(#0->instance.slots[1]), n = #1->vector.fillp;
                   if (f + n <= b->vector.dim) {
                     memcpy(b->vector.self.b8 + f, #1->vector.self.b8, n);
                     #0->instance.slots[1] = ecl_make_fixnum(f + n);
                     @(return) = 1;
                   } else @(return) = 0; }")
        do (%grow out (+ (html-out-fill out) (length octets))))
  out)

(defun %octets-p (x)
  (ffi:c-inline (x) (:object) :bool
    "ECL_VECTORP(#0) && #0->vector.elttype == ecl_aet_b8" :one-liner t))

(defun html-out-write-octets (out octets &optional (start 0) end)
  "Copies OCTETS[START,END) (a simple octet vector) into OUT.  Can't fail."
  (unless (%octets-p octets) (error 'type-error :datum octets :expected-type 'octets))
  (let* ((end (crow.unix::check-bounds octets start end))
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
  (declare (optimize (speed 3) (safety 0)))
  ;; One C block for the common kinds (strings: escape and encode; fixnums: digits), which
  ;; answers 1 when done, 0 when the buffer needs room first, 2 for kinds left to Lisp.
  (loop
    (case (ffi:c-inline (out value) (:object :object) :int
            "{ cl_object b = #0->instance.slots[0], v = #1;
               cl_index f = ecl_fixnum(#0->instance.slots[1]), room = b->vector.dim - f;
               uint8_t *o = b->vector.self.b8 + f;
               int r = 2;
               if (Null(v)) r = 1;
               else if (ECL_FIXNUMP(v) && v != ecl_make_fixnum(MOST_NEGATIVE_FIXNUM)) {
                 if (room < 24) r = 0;
                 else {
                   cl_fixnum x = ecl_fixnum(v); char tmp[24]; int k = 0; size_t m;
                   m = x < 0 ? (size_t)(-x) : (size_t)x;
                   do { tmp[k++] = (char)('0' + m % 10); m /= 10; } while (m);
                   if (x < 0) *o++ = '-', f++;
                   while (k) *o++ = (uint8_t)tmp[--k], f++;
                   #0->instance.slots[1] = ecl_make_fixnum(f);
                   r = 1;
                 }
               } else if (!ECL_IMMEDIATE(v) && ecl_t_of(v) == t_base_string) {
                 if (room < CROW_HTML_ESCAPE_MAX * v->base_string.fillp) r = 0;
                 else {
                   f += crow_html_escape_latin1((const uint8_t *)v->base_string.self, v->base_string.fillp, o);
                   #0->instance.slots[1] = ecl_make_fixnum(f); r = 1;
                 }
               } else if (!ECL_IMMEDIATE(v) && ecl_t_of(v) == t_string) {
                 if (room < CROW_HTML_ESCAPE_MAX * v->string.fillp) r = 0;
                 else {
                   f += crow_html_escape_utf32((const uint32_t *)v->string.self, v->string.fillp, o);
                   #0->instance.slots[1] = ecl_make_fixnum(f); r = 1;
                 }
               }
               @(return) = r; }")
      (1 (return out))
      (0 (%grow out (+ (html-out-fill out)
                       (if (stringp value) (* +html-escape-max+ (length value)) 24))))
      (t (return (html-out-write-text out (if (characterp value)
                                              (string value)
                                              (princ-to-string value))))))))

(defun html-out-write-raw (out value)
  "Writes VALUE into OUT as it is: octets copied, a string encoded as UTF-8, NIL nothing,
anything else as PRINC would print it.  Can't fail."
  (cond ((null value))
        ((%octets-p value) (html-out-write-octets out value))
        ((stringp value) (html-out-write-octets out (utf8-encode value)))
        (t (html-out-write-raw out (princ-to-string value))))
  out)

(defun html-out-result (out)
  "Returns the bytes written into OUT as a fresh octet vector.  Can't fail."
  (subseq (html-out-octets out) 0 (html-out-fill out)))

(defun html-out-take (out)
  "Returns the bytes written into OUT as an octet vector without copying: the buffer itself,
cut to its fill (its unused tail stays allocated until the vector is collected).  OUT is
left empty.  Can't fail."
  (declare (type html-out out))
  (let ((v (html-out-octets out)))
    (ffi:c-inline (v (html-out-fill out)) (:object :fixnum) :void
      "#0->vector.dim = #0->vector.fillp = (cl_index)#1;" :one-liner nil)
    (setf (html-out-octets out) (%alloc 0) (html-out-fill out) 0)
    v))

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

(defvar *html-fuse* t
  "When true (the default), each straight run of constants and dynamic text in a template
compiles into one inline C block (room check, copies, escapes) instead of a call per piece.
Code the ECL bytecode interpreter evaluates (C-x C-e in SLIME, EVAL) gets the per-piece
writes instead, chosen when the segment's macro expands.")

(defun %text-item-p (i)
  (and (consp i) (eq (car i) 'html-out-write-text)))

(defun %c-string (octets)
  "Returns OCTETS as a C string literal (octal escapes for all but letters, digits, space:
c-inline gives # and @ meanings of its own)."
  (with-output-to-string (s)
    (write-char #\" s)
    (loop for b across octets
          do (if (or (<= 48 b 57) (<= 65 b 90) (<= 97 b 122) (= b 32))
                 (write-char (code-char b) s)
                 (format s "\\~3,'0o" b)))
    (write-char #\" s)))

(defun %fused-segment (run)
  "Returns the form writing RUN (constant strings and html-out-write-text items, at least
one of each kind or two texts) with one C block, falling back to the per-item writes when a
value is of another kind or the buffer needs room."
  (let* ((vars (loop for i in run when (%text-item-p i) collect (gensym "V")))
         (consts (loop for i in run when (stringp i) sum (length (utf8-encode i))))
         (code (with-output-to-string (c)
                 (format c "{ cl_object b = #0->instance.slots[0]; uint8_t *o;~%")
                 (format c "  size_t need = ~d; int ok = 1;~%" consts)
                 (loop for k from 1 to (length vars)
                       do (format c "  need += crow_web_need(#~d, &ok);~%" k))
                 (format c "  if (!ok || ecl_fixnum(#0->instance.slots[1]) + need > b->vector.dim) { @(return) = 0; } else {~%")
                 (format c "  o = b->vector.self.b8 + ecl_fixnum(#0->instance.slots[1]);~%")
                 (let ((k 0))
                   (dolist (i run)
                     (if (stringp i)
                         (let ((o (utf8-encode i)))
                           (format c "  memcpy(o, ~a, ~d); o += ~d;~%" (%c-string o) (length o) (length o)))
                         (format c "  o = crow_web_text(o, #~d);~%" (incf k)))))
                 (format c "  #0->instance.slots[1] = ecl_make_fixnum(o - b->vector.self.b8); @(return) = 1; } }"))))
    `(%segment
      (let ,(loop for v in vars for i in (remove-if-not #'%text-item-p run) collect (list v (third i)))
        (unless (ffi:c-inline (,*out* ,@vars) (:object ,@(mapcar (constantly :object) vars)) :bool
                              ,code)
          ,@(let ((vs vars))
              (loop for i in run
                    collect (if (stringp i)
                                `(%write-constant ,*out* ,(utf8-encode i))
                                `(html-out-write-text ,*out* ,(pop vs)))))))
      (progn ,@(loop for i in run
                     collect (if (stringp i) `(%write-constant ,*out* ,(utf8-encode i)) i))))))

(defmacro %segment (fused plain)
  "Expands into FUSED (which holds inline C) under ECL's native compiler, else into PLAIN:
the bytecode interpreter (C-x C-e, EVAL, FiveAM bodies) cannot run inline C."
  (let ((in-use (find-symbol "*COMPILER-IN-USE*" "C")))
    (if (and in-use (boundp in-use) (symbol-value in-use)) fused plain)))

(defun emit-items (items)
  "Returns the Lisp forms writing ITEMS: each constant as one literal UTF-8 octet vector, and
with *html-fuse* each run of constants and dynamic text as one C block."
  (let ((items (remove "" items :test #'equal))
        (out '()))
    (loop while items
          do (let ((run (loop with texts = 0
                              while (and items (or (stringp (first items))
                                                   ;; c-inline numbers arguments #0-#9: the
                                                   ;; buffer, then at most 9 values a block
                                                   (and (%text-item-p (first items))
                                                        (< texts 9)
                                                        (incf texts))))
                              collect (pop items))))
               (cond ((and *html-fuse* run (find-if #'%text-item-p run))
                      (push (%fused-segment run) out))
                     (run (dolist (i run)
                            (push (if (stringp i) `(%write-constant ,*out* ,(utf8-encode i)) i) out))))
               (when items
                 (unless (or (stringp (first items)) (%text-item-p (first items)))
                   (push (pop items) out)))))
    (nreverse out)))

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

(defmacro html-octets ((&key (mode *html-mode*) (size 1024)) &body template)
  "Returns TEMPLATE's output as a fresh octet vector (UTF-8).  Each use remembers the largest
page it made, so the next buffer is allocated at that size and does not grow."
  (let ((out (gensym "OUT")) (cell (gensym "CELL")))
    `(let* ((,cell (load-time-value (list ,size)))
            (,out (make-html-out (car ,cell))))
       ,@(compile-template out template :mode mode)
       (when (> (html-out-fill ,out) (the fixnum (car ,cell)))
         (setf (car ,cell) (html-out-fill ,out)))
       (html-out-take ,out))))

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
