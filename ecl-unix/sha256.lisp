;;;; sha256.lisp — bindings to c-core/sha256: SHA-256 digests (one shot, incremental, files),
;;;; HMAC-SHA-256 and a constant-time comparison, for uploads and signed cookies.

(in-package :crow.unix)

(ffi:clines "#include \"sha256.h\"")

(defun %bytes (x)
  (etypecase x
    (octets x)
    (string (utf8-encode x))))

(defun sha256 (data &key (start 0) end)
  "Returns the SHA-256 digest (32 octets) of DATA[START,END); DATA an octet vector or a string
(hashed as UTF-8).  Can't fail."
  (let* ((v (%bytes data))
         (end (check-bounds v start end))
         (out (make-octets 32)))
    (ffi:c-inline (v start end out) (:object :fixnum :fixnum :object) :void
      "crow_sha256(#0->vector.self.b8 + #1, (size_t)(#2 - #1), #3->vector.self.b8)" :one-liner t)
    out))

(defun hmac-sha256 (key data)
  "Returns HMAC-SHA-256 (32 octets) of DATA under KEY; each an octet vector or a string (as
UTF-8).  Can't fail."
  (let ((k (%bytes key)) (m (%bytes data)) (out (make-octets 32)))
    (ffi:c-inline (k (length k) m (length m) out) (:object :fixnum :object :fixnum :object) :void
      "crow_sha256_hmac(#0->vector.self.b8, (size_t)#1, #2->vector.self.b8, (size_t)#3,
                        #4->vector.self.b8)" :one-liner t)
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
lengths (for signature checks).  Can't fail."
  (check-type a octets)
  (check-type b octets)
  (and (= (length a) (length b))
       (zerop (ffi:c-inline (a b (length a)) (:object :object :fixnum) :int
                "crow_sha256_memcmp(#0->vector.self.b8, #1->vector.self.b8, (size_t)#2)"
                :one-liner t))))

(defun sha256-file (path)
  "Returns the SHA-256 digest (32 octets) of the file at PATH, read in 64 KiB blocks.  Signals
unix-error if it cannot be opened or read."
  (let ((ctx (make-octets (ffi:c-inline () () :fixnum "(cl_fixnum)sizeof(struct crow_sha256)"
                                        :one-liner t)))
        (buf (make-octets 65536))
        (out (make-octets 32)))
    (ffi:c-inline (ctx) (:object) :void
      "crow_sha256_init((struct crow_sha256 *)#0->vector.self.b8)" :one-liner t)
    (with-fd (fd (open-fd path))
      (loop for n = (read-fd fd buf) until (zerop n)
            do (ffi:c-inline (ctx buf n) (:object :object :fixnum) :void
                 "crow_sha256_update((struct crow_sha256 *)#0->vector.self.b8, #1->vector.self.b8, (size_t)#2)"
                 :one-liner t)))
    (ffi:c-inline (ctx out) (:object :object) :void
      "crow_sha256_final((struct crow_sha256 *)#0->vector.self.b8, #1->vector.self.b8)" :one-liner t)
    out))
