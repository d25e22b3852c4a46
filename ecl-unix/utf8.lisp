;;;; utf8.lisp — bindings to c-core/utf8: decode octets to a Lisp string, encode a string to
;;;; octets, validate and count, all in C (Lisp strings are UCS-4: the codec writes straight
;;;; into the string's storage).

(in-package :crow.unix)

(ffi:clines "#include <errno.h>" "#include <string.h>" "#include \"utf8.h\"")

(define-condition utf8-error (crow-error)
  ((offset :initarg :offset :reader utf8-error-offset))
  (:report (lambda (c s)
             (format s "ill-formed UTF-8 at byte offset ~d" (utf8-error-offset c))))
  (:documentation "Strict decoding met an ill-formed sequence at byte OFFSET (relative to the
start of the input given)."))

(defun utf8-decode (octets &key (start 0) end (errors :replace))
  "Returns OCTETS[START,END) decoded from UTF-8 as a fresh string.  ERRORS :replace turns
each maximal ill-formed subpart into U+FFFD (CPython's 'replace'); :error signals utf8-error
with the offset of the first ill-formed sequence (relative to START)."
  (check-type octets octets)
  (let* ((end (check-bounds octets start end))
         (n (- end start))
         (mode (ecase errors (:replace 1) (:error 0)))
         (out (make-string n)))
    (multiple-value-bind (count err)
        (ffi:c-inline (octets start n out mode) (:object :fixnum :fixnum :object :int)
                      (values :fixnum :fixnum)
          "{ size_t off = 0;
             size_t k = crow_utf8_decode(#0->vector.self.b8 + #1, (size_t)#2,
                                         (uint32_t *)#3->string.self, &off, #4);
             @(return 0) = (cl_fixnum)k; @(return 1) = (cl_fixnum)off; }")
      (when (and (eq errors :error) (< err n))
        (error 'utf8-error :offset err))
      (if (= count n) out (subseq out 0 count)))))

(defun utf8-encode (string &key (start 0) end)
  "Returns STRING[START,END) encoded as UTF-8 in a fresh octet vector.  Characters that are
surrogates (which ECL allows in strings) become U+FFFD.  Can't fail otherwise."
  (let* ((s (if (typep string 'simple-string) string (coerce string 'simple-string)))
         (end (check-bounds s start end))
         (n (- end start)))
    (if (typep s 'simple-base-string)
        ;; 8-bit characters: widen to UCS-4 first, in C.
        (let ((out (make-octets (* 2 n))))
          (let ((k (ffi:c-inline (s start n out) (:object :fixnum :fixnum :object) :fixnum
                     "{ const unsigned char *p = (const unsigned char *)#0->base_string.self + #1;
                        uint8_t *o = #3->vector.self.b8; size_t i, k = 0;
                        for (i = 0; i < (size_t)#2; i++) {
                          if (p[i] < 0x80) o[k++] = p[i];
                          else { o[k++] = 0xC0 | (p[i] >> 6); o[k++] = 0x80 | (p[i] & 0x3F); } }
                        @(return) = (cl_fixnum)k; }")))
            (if (= k (length out)) out (subseq out 0 k))))
        (let ((out (make-octets (* 4 n))))
          (let ((k (ffi:c-inline (s start n out) (:object :fixnum :fixnum :object) :fixnum
                     "{ size_t k = crow_utf8_encode((const uint32_t *)#0->string.self + #1, (size_t)#2,
                                                   #3->vector.self.b8, NULL, 1);
                        @(return) = (cl_fixnum)k; }")))
            (if (= k (length out)) out (subseq out 0 k)))))))

(defun utf8-validate (octets &key (start 0) end)
  "Returns T when OCTETS[START,END) is well-formed UTF-8; otherwise (values NIL OFFSET) with
the offset (relative to START) of the first ill-formed sequence.  Can't fail."
  (check-type octets octets)
  (let ((end (check-bounds octets start end)))
    (multiple-value-bind (r off)
        (ffi:c-inline (octets start end) (:object :fixnum :fixnum) (values :int :fixnum)
          "{ size_t off = 0; int r = crow_utf8_validate(#0->vector.self.b8 + #1, (size_t)(#2 - #1), &off);
             @(return 0) = r; @(return 1) = (cl_fixnum)off; }")
      (if (zerop r) t (values nil off)))))

(defun utf8-length (octets &key (start 0) end)
  "Returns the number of characters utf8-decode (:replace) would produce.  Can't fail."
  (check-type octets octets)
  (let ((end (check-bounds octets start end)))
    (ffi:c-inline (octets start end) (:object :fixnum :fixnum) :fixnum
      "(cl_fixnum)crow_utf8_count(#0->vector.self.b8 + #1, (size_t)(#2 - #1))" :one-liner t)))
