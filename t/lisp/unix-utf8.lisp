;;;; unix-utf8.lisp — the utf8 bindings: decode/encode/validate/length through the C codec.

(in-package :crow.test)

(def-suite unix-utf8 :in crow)
(in-suite unix-utf8)

(defun bytes (&rest b) (coerce b 'octets))

(test worked-example
  ;; Unicode's maximal-subpart example: 61 F1 80 80 E1 80 C2 62.
  (is (equal (coerce (list #\a (code-char #xfffd) (code-char #xfffd) (code-char #xfffd) #\b) 'string)
             (utf8-decode (bytes #x61 #xf1 #x80 #x80 #xe1 #x80 #xc2 #x62))))
  (let ((c (handler-case (utf8-decode (bytes #x61 #xf1 #x80 #x80 #xe1) :errors :error)
             (utf8-error (e) e))))
    (is (typep c 'utf8-error))
    (is (= 1 (utf8-error-offset c))))
  (is (equal '(nil 1) (multiple-value-list (utf8-validate (bytes #x61 #xc0 #x80)))) "overlong")
  (is (equal '(nil 0) (multiple-value-list (utf8-validate (bytes #xed #xa0 #x80)))) "surrogate")
  (is (eq t (utf8-validate (bytes #xf4 #x8f #xbf #xbf))) "U+10FFFF is valid")
  (is (equal '(nil 0) (multiple-value-list (utf8-validate (bytes #xf4 #x90 #x80 #x80)))) "above U+10FFFF"))

(test round-trip-every-code-point
  (let* ((chars (loop for c from 0 below #x110000
                      unless (<= #xd800 c #xdfff) collect (code-char c)))
         (s (coerce chars 'string))
         (u (utf8-encode s)))
    (is (= (length u) (+ #x80 (* 2 (- #x800 #x80)) (* 3 (- #x10000 #x800 #x800))
                         (* 4 (- #x110000 #x10000)))))
    (is (eq t (utf8-validate u)))
    (is (= (length s) (utf8-length u)))
    (is (string= s (utf8-decode u :errors :error)))))

(test encode-forms
  (is (equalp (bytes #x68 #xc3 #xa9 #xe2 #x82 #xac #xf0 #x9f #x90 #xa6)
              (utf8-encode (coerce (list #\h (code-char #xe9) (code-char #x20ac) (code-char #x1f426)) 'string))))
  (is (equalp (bytes #x61 #xc3 #xa9) (utf8-encode (coerce (list #\a (code-char #xe9)) 'base-string)))
      "base-strings are Latin-1")
  (is (equalp (bytes #x62 #x63) (utf8-encode "abcd" :start 1 :end 3)))
  (is (string= "bc" (utf8-decode (utf8-encode "abcd") :start 1 :end 3))))

(test kuhn-stress-test
  ;; Markus Kuhn's "UTF-8 decoder capability and stress test" (CC BY 4.0), read in place.
  (let* ((path (format nil "~a/data/UTF-8-test.txt" (or (ext:getenv "CROW_SHARED") "../shared")))
         (data (read-file-octets path))
         (s (utf8-decode data)))
    (is (= 23331 (length data)))
    (is (= (utf8-length data) (length s)))
    ;; The copy in ../shared has its malformed sections already replaced by U+FFFD, so it is
    ;; valid; strict decoding must then agree with replacing decoding.
    (multiple-value-bind (valid offset) (utf8-validate data)
      (if valid
          (is (string= s (utf8-decode data :errors :error)))
          (is (< offset (length data)))))
    (is (search "UTF-8 decoder capability and stress test" s))
    (is (find (code-char #xfffd) s))
    ;; Re-encoding the replaced text gives valid UTF-8 that decodes to the same string.
    (is (string= s (utf8-decode (utf8-encode s) :errors :error)))))
