;;;; ffi.lisp — shared helpers for the bindings: octet vectors, C strings, constants.

(in-package :crow.unix)

(deftype octets (&optional (n '*)) `(simple-array (unsigned-byte 8) (,n)))

(declaim (inline make-octets))
(defun make-octets (n &key (initial-element 0))
  "Returns a fresh simple octet vector of length N.  The GC never moves it, so C may read and
write it during a call."
  (make-array n :element-type '(unsigned-byte 8) :initial-element initial-element))

(defun %utf8-encode (s)
  "Returns S encoded as UTF-8 (lone surrogates become U+FFFD).  For short strings (paths,
names); bulk text goes through the C core's codec."
  (let ((out (make-array (length s) :element-type '(unsigned-byte 8) :adjustable t :fill-pointer 0)))
    (loop for ch across s
          for c = (char-code ch)
          do (when (<= #xd800 c #xdfff) (setf c #xfffd))
             (cond ((< c #x80) (vector-push-extend c out))
                   ((< c #x800) (vector-push-extend (logior #xc0 (ash c -6)) out)
                    (vector-push-extend (logior #x80 (logand c #x3f)) out))
                   ((< c #x10000) (vector-push-extend (logior #xe0 (ash c -12)) out)
                    (vector-push-extend (logior #x80 (logand (ash c -6) #x3f)) out)
                    (vector-push-extend (logior #x80 (logand c #x3f)) out))
                   (t (vector-push-extend (logior #xf0 (ash c -18)) out)
                      (vector-push-extend (logior #x80 (logand (ash c -12) #x3f)) out)
                      (vector-push-extend (logior #x80 (logand (ash c -6) #x3f)) out)
                      (vector-push-extend (logior #x80 (logand c #x3f)) out))))
    out))

(defun %utf8-decode (v start end)
  "Returns the UTF-8 bytes V[START,END) as a string; an invalid byte becomes U+FFFD."
  (let ((out (make-array (- end start) :element-type 'character :fill-pointer 0))
        (i start))
    (flet ((cont (k) (and (< k end) (= (logand (aref v k) #xc0) #x80))))
      (loop while (< i end)
            do (let* ((b (aref v i))
                      (n (cond ((< b #x80) 1) ((<= #xc2 b #xdf) 2) ((<= #xe0 b #xef) 3)
                               ((<= #xf0 b #xf4) 4) (t 0)))
                      (c (and (plusp n) (loop for k from 1 below n always (cont (+ i k)))
                              (let ((x (if (= n 1) b (logand b (ash #x7f (- n))))))
                                (loop for k from 1 below n
                                      do (setf x (logior (ash x 6) (logand (aref v (+ i k)) #x3f))))
                                x))))
                 (if (and c (not (<= #xd800 c #xdfff)) (<= c #x10ffff)
                          (>= c (svref #(0 0 #x80 #x800 #x10000) n)))
                     (progn (vector-push (code-char c) out) (incf i n))
                     (progn (vector-push (code-char #xfffd) out) (incf i))))))
    (coerce out 'simple-string)))

(defun string-to-c (string)
  "Returns STRING encoded as UTF-8 in a fresh octet vector with a terminating NUL, ready for
C.  Signals crow-error if STRING contains a NUL character (it would truncate the path)."
  (let* ((s (string string))
         (utf8 (%utf8-encode s))
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
  (%utf8-decode octets start (or end (length octets))))

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
