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
