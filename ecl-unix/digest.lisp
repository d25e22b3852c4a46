;;;; digest.lisp — bindings to c-core/digest (OpenSSL's libcrypto): SHA-256 digests (one shot,
;;;; files), HMAC-SHA-256 and a constant-time comparison, for uploads and signed cookies.

(in-package :crow.unix)

(ffi:clines "#include <errno.h>" "#include \"digest.h\"")

(defun %bytes (x)
  (etypecase x
    (octets x)
    (string (utf8-encode x))))

(defun sha256 (data &key (start 0) end)
  "Returns the SHA-256 digest (32 octets) of DATA[START,END); DATA an octet vector or a string
(hashed as UTF-8).  Signals unix-error (EPROTO, ENOMEM) only if libcrypto fails."
  (let* ((v (%bytes data))
         (end (check-bounds v start end))
         (out (make-octets 32)))
    (check-syscall ("crow_digest_sha256")
      (ffi:c-inline (v start end out) (:object :fixnum :fixnum :object) (values :int :int)
        "{ int r = crow_digest_sha256(#0->vector.self.b8 + #1, (size_t)(#2 - #1), #3->vector.self.b8);
           @(return 0) = r; @(return 1) = r ? errno : 0; }"))
    out))

(defun hmac-sha256 (key data)
  "Returns HMAC-SHA-256 (32 octets) of DATA under KEY; each an octet vector or a string (as
UTF-8).  Signals unix-error (EPROTO) only if libcrypto fails."
  (let ((k (%bytes key)) (m (%bytes data)) (out (make-octets 32)))
    (check-syscall ("crow_hmac_sha256")
      (ffi:c-inline (k (length k) m (length m) out) (:object :fixnum :object :fixnum :object)
                    (values :int :int)
        "{ int r = crow_hmac_sha256(#0->vector.self.b8, (size_t)#1, #2->vector.self.b8, (size_t)#3,
                                    #4->vector.self.b8);
           @(return 0) = r; @(return 1) = r ? errno : 0; }"))
    out))

(defun octets-to-hex (octets)
  "Returns OCTETS as a lowercase hexadecimal base-string.  Can't fail."
  (let ((s (make-string (* 2 (length octets)) :element-type 'base-char))
        (digits "0123456789abcdef"))
    (loop for b across octets for i from 0 by 2
          do (setf (schar s i) (schar digits (ash b -4))
                   (schar s (1+ i)) (schar digits (logand b 15))))
    s))

(defun constant-time-equal (a b)
  "Returns T when the octet vectors A and B are equal, in time that depends only on their
lengths (CRYPTO_memcmp; for signature checks).  Can't fail."
  (check-type a octets)
  (check-type b octets)
  (and (= (length a) (length b))
       (zerop (ffi:c-inline (a b (length a)) (:object :object :fixnum) :int
                "crow_digest_memcmp(#0->vector.self.b8, #1->vector.self.b8, (size_t)#2)"
                :one-liner t))))

(defun sha256-file (path)
  "Returns the SHA-256 digest (32 octets) of the file at PATH, read in 64 KiB blocks.  Signals
unix-error if it cannot be opened or read (or, EPROTO/ENOMEM, if libcrypto fails)."
  (let ((buf (make-octets 65536))
        (out (make-octets 32))
        (ctx (multiple-value-bind (d e)
                 (ffi:c-inline () () (values :pointer-void :int)
                   "{ struct crow_digest *d = crow_digest_sha256_new();
                      @(return 0) = d; @(return 1) = d ? 0 : errno; }")
               (if (ffi:null-pointer-p d) (unix-error e "crow_digest_sha256_new") d))))
    (unwind-protect
         (progn
           (with-fd (fd (open-fd path))
             (loop for n = (read-fd fd buf) until (zerop n)
                   do (check-syscall ("crow_digest_update")
                        (ffi:c-inline (ctx buf n) (:pointer-void :object :fixnum) (values :int :int)
                          "{ int r = crow_digest_update((struct crow_digest *)#0, #1->vector.self.b8, (size_t)#2);
                             @(return 0) = r; @(return 1) = r ? errno : 0; }"))))
           (check-syscall ("crow_digest_final")
             (ffi:c-inline (ctx out) (:pointer-void :object) (values :int :int)
               "{ int r = crow_digest_final((struct crow_digest *)#0, #1->vector.self.b8);
                  @(return 0) = r; @(return 1) = r ? errno : 0; }")))
      (ffi:c-inline (ctx) (:pointer-void) :void "crow_digest_free((struct crow_digest *)#0)"
                    :one-liner t))
    out))
