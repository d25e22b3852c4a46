;;;; ircfmt.lisp — bindings to c-core/ircfmt: mIRC formatting codes removed from IRC text
;;;; (octets, before decoding), for irclog.

(in-package :crow.unix)

(ffi:clines "#include <string.h>" "#include \"ircfmt.h\"")

(defun irc-strip-formatting (octets &key (start 0) end)
  "Returns OCTETS[START,END) without mIRC colour and formatting codes (^C colours with
backgrounds, ^D hex colours, ^B ^] ^_ ^^ ^Q ^V ^O), as a fresh octet vector; UTF-8 stays
UTF-8.  OCTETS itself is returned when it has no code at all.  Signals type-error for
another OCTETS or bad bounds."
  (check-type octets octets)
  (let* ((end (check-bounds octets start end))
         (n (- end start)))
    (if (and (= start 0) (= end (length octets))
             (ffi:c-inline (octets n) (:object :fixnum) :bool
               "{ const uint8_t *p = #0->vector.self.b8; cl_fixnum i; int none = 1;
                  for (i = 0; i < #1 && none; i++)
                    switch (p[i]) { case 2: case 3: case 4: case 15: case 17: case 22:
                                    case 29: case 30: case 31: none = 0; }
                  @(return) = none; }"))
        octets
        (let* ((out (make-octets n))
               (k (ffi:c-inline (octets start n out) (:object :fixnum :fixnum :object) :fixnum
                    "(cl_fixnum)crow_ircfmt_strip(#0->vector.self.b8 + #1, (size_t)#2, #3->vector.self.b8)"
                    :one-liner t)))
          (if (= k n) out (subseq out 0 k))))))
