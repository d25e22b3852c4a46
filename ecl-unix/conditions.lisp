;;;; conditions.lisp — crow-error, unix-error and one subclass per common errno.

(in-package :crow.unix)

(ffi:clines "#include <errno.h>" "#include <string.h>")

(define-condition crow-error (error) ()
  (:documentation "Root of every condition crow signals."))

(defun strerror (errno)
  "Returns the C library's message for ERRNO as a string.  Can't fail."
  (check-type errno (signed-byte 32))
  (ffi:c-inline (errno) (:int) :object
    "{ char buf[256]; const char *m = strerror_r(#0, buf, sizeof buf);
       @(return) = ecl_make_simple_base_string(m, -1); }"))

(define-condition unix-error (crow-error)
  ((errno :initarg :errno :reader unix-error-errno)
   (syscall :initarg :syscall :reader unix-error-syscall)
   (detail :initarg :detail :initform nil :reader unix-error-detail))
  (:report (lambda (c s)
             (format s "~a~@[ ~s~]: ~a (errno ~d)"
                     (unix-error-syscall c) (unix-error-detail c)
                     (strerror (unix-error-errno c)) (unix-error-errno c))))
  (:documentation "A system call failed.  ERRNO is the C errno, SYSCALL its name, DETAIL the
path or address involved (or NIL)."))

(defvar *errno-classes* (make-hash-table)
  "errno number -> the unix-error subclass signalled for it.")

(defmacro define-errno-conditions (&rest names)
  "Defines, for each errno NAME (a symbol like ENOENT), a condition class NAME under
unix-error, registered under the number the C headers give it."
  `(progn
     (export ',names)
     (export ',(loop for n in names collect (intern (format nil "+~a+" n))))
     ,@(loop for name in names
             collect `(define-condition ,name (unix-error) ()
                        (:documentation ,(format nil "errno ~a" name)))
             collect `(setf (gethash (ffi:c-inline () () :int ,(symbol-name name) :one-liner t)
                                     *errno-classes*)
                            ',name))
     ,@(loop for name in names
             collect `(defparameter ,(intern (format nil "+~a+" name))
                        (ffi:c-inline () () :int ,(symbol-name name) :one-liner t)))))

;;; The one table: every errno that gets a class (and a +ENAME+ constant) of its own.
(define-errno-conditions
  eperm enoent esrch eintr eio enxio e2big enoexec ebadf echild eagain enomem eacces efault
  ebusy eexist exdev enodev enotdir eisdir einval enfile emfile enotty efbig enospc espipe
  erofs emlink epipe erange enametoolong enosys enotempty eloop enotsock
  edestaddrreq emsgsize eprototype enoprotoopt eprotonosupport eopnotsupp eafnosupport
  eaddrinuse eaddrnotavail enetdown enetunreach econnaborted econnreset enobufs eisconn
  enotconn etimedout econnrefused ehostunreach ealready einprogress edquot ecanceled)

(defun unix-error (errno syscall &optional detail)
  "Signals the unix-error subclass registered for ERRNO (or unix-error itself).  Does not
return."
  (error (gethash errno *errno-classes* 'unix-error)
         :errno errno :syscall syscall :detail detail))

(defmacro check-syscall ((syscall &optional detail) form)
  "Evaluates FORM, a raw call returning (values RESULT ERRNO); signals unix-error when
RESULT is negative (or NIL), otherwise returns RESULT."
  (let ((r (gensym "R")) (e (gensym "E")))
    `(multiple-value-bind (,r ,e) ,form
       (if (or (null ,r) (and (integerp ,r) (minusp ,r)))
           (unix-error ,e ,syscall ,detail)
           ,r))))
