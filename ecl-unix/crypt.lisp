;;;; crypt.lisp — password hashes through c-core/pwhash (libxcrypt's crypt(3)): yescrypt or
;;;; SHA-512 crypt hashes for accounts files, and constant-time checks against them.

(in-package :crow.unix)

(ffi:clines "#include <errno.h>" "#include \"pwhash.h\"")

(defun crypt-hash (password &key (method :yescrypt))
  "Returns a new crypt(3) hash of PASSWORD (a string, hashed as UTF-8) as a base-string:
\"$y$...\" for METHOD :yescrypt, \"$6$...\" for :sha512, with a fresh random salt and the
library's default cost.  Signals crow-error for an unknown METHOD or a NUL in PASSWORD,
unix-error (EINVAL, ENOMEM) if libcrypt fails."
  (let ((m (ecase method (:yescrypt 0) (:sha512 1)))
        (pw (string-to-c password))
        (out (make-octets 384)))
    (let ((n (check-syscall ("crypt_rn")
               (ffi:c-inline (pw m out) (:object :int :object) (values :int :int)
                 "{ int r = crow_pwhash_new((const char *)#0->vector.self.b8, #1,
                                            (char *)#2->vector.self.b8, 384);
                    @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))))
      (map-into (make-string n :element-type 'base-char) #'code-char (subseq out 0 n)))))

(defun crypt-verify (password hash)
  "Returns T when PASSWORD (a string, as UTF-8) matches HASH (a crypt(3) hash string of any
method libcrypt knows), NIL when it does not or when HASH is not a usable hash (empty, locked
\"!...\", \"*\", unknown method).  The final comparison takes time independent of where the
hashes differ.  Signals unix-error ENOMEM only if memory runs out."
  (when (or (find (code-char 0) password) (find (code-char 0) hash))
    (return-from crypt-verify nil))
  (let ((pw (string-to-c password))
        (h (string-to-c hash)))
    (multiple-value-bind (r e)
        (ffi:c-inline (pw h) (:object :object) (values :int :int)
          "{ int r = crow_pwhash_verify((const char *)#0->vector.self.b8,
                                       (const char *)#1->vector.self.b8);
             @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")
      (cond ((= r 1) t)
            ((and (minusp r) (= e +enomem+)) (unix-error e "crypt_rn"))
            (t nil)))))
