;;;; ffi.lisp — shared helpers for the bindings: octet vectors, C strings, constants.

(in-package :crow.unix)

(deftype octets (&optional (n '*)) `(simple-array (unsigned-byte 8) (,n)))

(declaim (inline make-octets))
(defun make-octets (n &key (initial-element 0))
  "Returns a fresh simple octet vector of length N.  The GC never moves it, so C may read and
write it during a call."
  (make-array n :element-type '(unsigned-byte 8) :initial-element initial-element))

(defun string-to-c (string)
  "Returns STRING encoded as UTF-8 in a fresh octet vector with a terminating NUL, ready for
C.  Signals crow-error if STRING contains a NUL character (it would truncate the path)."
  (let* ((s (string string))
         (utf8 (utf8-encode s))
         (n (length utf8))
         (v (make-octets (1+ n))))
    (when (find 0 utf8)
      (error 'simple-crow-error
             :format-control "string contains a NUL byte: ~s" :format-arguments (list s)))
    (replace v utf8)
    v))

(defun octets-to-string (octets &key (start 0) end)
  "Returns the UTF-8 bytes of OCTETS between START and END decoded as a string (invalid
sequences become U+FFFD)."
  (utf8-decode octets :start start :end end))

(define-condition simple-crow-error (crow-error simple-condition) ()
  (:report (lambda (c s)
             (apply #'format s (simple-condition-format-control c)
                    (simple-condition-format-arguments c)))))

(defun check-bounds (vector start end)
  "Returns END (defaulted to the length of VECTOR) after checking 0 <= START <= END <= length;
signals a type-error otherwise."
  (let* ((len (length vector))
         (end (or end len)))
    (unless (and (typep start 'fixnum) (typep end 'fixnum) (<= 0 start end len))
      (error 'type-error :datum (list start end) :expected-type `(integer 0 ,len)))
    end))

;;; Open-coded functions

(defmacro fast-funcall (function &rest args)
  "Calls the function object FUNCTION with ARGS (at most 6) and returns its first value: a
compiled function of exactly that many required arguments is entered at its C function
directly; any other goes through funcall.  (ECL's funcall goes through
ecl_function_dispatch and a varargs trampoline that looks up the thread's environment again:
a measurable part of a small request, on a path that calls a handler per request.)"
  (assert (<= (length args) 6) () "fast-funcall: at most 6 arguments")
  (let ((f (gensym "F")) (vars (loop for nil in args collect (gensym "A")))
        (n (length args)))
    `(let ((,f ,function) ,@(mapcar #'list vars args))
       (if (ffi:c-inline (,f) (:object) :bool
                         ,(format nil "!ECL_IMMEDIATE(#0) && (#0)->d.t == t_cfunfixed && (#0)->cfunfixed.narg == ~d" n)
                         :one-liner t :side-effects nil)
           (ffi:c-inline (,f ,@vars) (:object ,@(mapcar (constantly :object) vars)) :object
                         ,(format nil "(#0)->cfunfixed.entry_fixed(~{#~d~^, ~})"
                                  (loop for i from 1 to n collect i))
                         :one-liner t)
           (funcall ,f ,@vars)))))

(defmacro fast-symbol-function (symbol)
  "Returns SYMBOL's global function as symbol-function does, read in place when SYMBOL names
an ordinary function (cl_symbol_function costs a call and a look-up of the thread's
environment, on a path that calls a handler per request); anything else goes to
symbol-function, which signals the usual errors.  Bind the result to a variable before
FUNCALL: ECL 21 compiles a c-inline form written directly as FUNCALL's first argument into an
error call."
  `(ffi:c-inline (,symbol) (:object) :object
                 "((!Null(#0) && ECL_SYMBOLP(#0) && !((#0)->symbol.stype & (ecl_stp_macro | ecl_stp_special_form)) && !Null(ECL_SYM_FUN(#0))) ? ECL_SYM_FUN(#0) : cl_symbol_function(#0))"
                 :one-liner t :side-effects nil))

(defmacro defun-inline (name lambda-list &body body)
  "Defines the function NAME (for the REPL, funcall and interpreted code) and a compiler
macro that open-codes every compiled call of it: the caller gets BODY in place, as a LET of
the arguments, with no call through the symbol and no ecl_process_env.  ECL's own inlining
of a function declaimed inline reaches only files compiled in the same image after the
definition, so an incremental build (the defining file loaded from its fasl) silently turns
every call into a full one; a compiler macro is part of the fasl.  LAMBDA-LIST may hold
required and &optional parameters.  For small functions on per-request paths; redefining
NAME at run time does not reach code compiled before."
  (let* ((doc (and (stringp (first body)) (rest body) (list (first body))))
         (forms (if doc (rest body) body))
         (decls (loop while (and (consp (first forms)) (eq (first (first forms)) 'declare))
                      collect (pop forms))))
    `(progn
       (defun ,name ,lambda-list ,@doc ,@decls (block ,name ,@forms))
       (define-compiler-macro ,name (&rest args)
         (list* (list 'lambda ',lambda-list ,@(mapcar (lambda (d) `',d) decls)
                      (list* 'block ',name ',forms))
                args))
       ',name)))

(defmacro define-c-constants (&body specs)
  "Each spec is (LISP-NAME \"C_NAME\"): defines LISP-NAME as a global holding the value the C
headers give C_NAME (read through inline C when the file is loaded)."
  `(progn
     ,@(loop for (name cname) in specs
             collect `(defparameter ,name (ffi:c-inline () () :int ,cname :one-liner t)))))

(defmacro define-keyword-map (name doc &body specs)
  "Defines function NAME mapping a keyword to the C constant named beside it.  Signals
crow-error for an unknown keyword."
  (let ((table (intern (format nil "*~a-TABLE*" name))))
    `(progn
       (defparameter ,table
         (list ,@(loop for (kw cname) in specs
                       collect `(cons ,kw (ffi:c-inline () () :int ,cname :one-liner t)))))
       (defun ,name (keyword)
         ,doc
         (or (cdr (assoc keyword ,table))
             (error 'simple-crow-error :format-control "~s: unknown ~a (known: ~{~s~^ ~})"
                    :format-arguments (list keyword ',name (mapcar #'car ,table))))))))
