;;;; html.lisp — bindings to c-core/html: HTML escaping straight into an octet buffer (UTF-8),
;;;; form (percent) decoding through the UTF-8 codec, and a byte search for multipart bodies.

(in-package :crow.unix)

(ffi:clines "#include <string.h>" "#include \"html.h\"" "#include \"utf8.h\"")

(defconstant +html-escape-max+ 6
  "Worst-case output bytes per input character of html-escape-into.")

(defun html-escape-into (string out pos)
  "Escapes STRING (a string; & < > \" ' become entities) as UTF-8 into the octet vector OUT
at POS, which must have room for (* +html-escape-max+ (length STRING)) bytes there.  Returns
the position after the last byte written.  Can't fail (unchecked: callers size OUT)."
  (declare (optimize (speed 3) (safety 0)))
  (ffi:c-inline (string out pos) (:object :object :fixnum) :fixnum
    "(cl_fixnum)(#2 + (ecl_t_of(#0) == t_base_string
        ? crow_html_escape_latin1((const uint8_t *)#0->base_string.self, #0->base_string.fillp, #1->vector.self.b8 + #2)
        : crow_html_escape_utf32((const uint32_t *)#0->string.self, #0->string.fillp, #1->vector.self.b8 + #2)))"
    :one-liner t))

(defun html-escape-octets-into (octets start end out pos)
  "Escapes the UTF-8 bytes OCTETS[START,END) into OUT at POS (room for 6 * (END - START)
bytes).  Returns the position after the last byte written.  Can't fail (unchecked)."
  (declare (type octets octets out) (fixnum start end pos))
  (ffi:c-inline (octets start end out pos) (:object :fixnum :fixnum :object :fixnum) :fixnum
    "(cl_fixnum)(#4 + crow_html_escape_utf8(#0->vector.self.b8 + #1, (size_t)(#2 - #1),
                                             #3->vector.self.b8 + #4))" :one-liner t))

(defun html-escape (string)
  "Returns STRING escaped for HTML as a fresh string.  Can't fail."
  (let* ((s (if (stringp string) string (string string)))
         (out (make-octets (* +html-escape-max+ (length s))))
         (n (html-escape-into s out 0)))
    (utf8-decode out :end n)))

(defun form-decode (source &key (start 0) end (plus t))
  "Returns SOURCE[START,END) (a simple-base-string or octet vector of
application/x-www-form-urlencoded text) decoded: `+` as space when PLUS, `%XX` as the byte
XX (a malformed escape is kept as it is), then UTF-8 decoded by the C codec (ill-formed
sequences become U+FFFD).  The result is a base-string when it is all ASCII.  Signals
type-error for another SOURCE or bad bounds."
  (let ((end (check-bounds source start end)))
    (unless (ffi:c-inline (source) (:object) :bool
              "(ECL_VECTORP(#0) && #0->vector.elttype == ecl_aet_b8) || ecl_t_of(#0) == t_base_string"
              :one-liner t)
      (error 'type-error :datum source :expected-type '(or simple-base-string octets)))
    (%form-decode source start end plus)))

(defun %form-decode (source start end plus)
  "form-decode without checks: SOURCE a simple-base-string or octet vector, 0 <= START <= END
<= its length (the caller's promise)."
  (declare (optimize (speed 3) (safety 0)) (fixnum start end))
  ;; One C block: percent-decode into a scratch buffer, then make the string (8-bit when
  ;; ASCII, else UCS-4 through the codec).  Query values are short: the scratch is on the
  ;; stack up to 1 KiB.
  (ffi:c-inline (source start end (if plus 1 0)) (:object :fixnum :fixnum :int) :object
        "{ const uint8_t *in = ecl_t_of(#0) == t_base_string ? (const uint8_t *)#0->base_string.self
                                                          : #0->vector.self.b8;
         size_t n = (size_t)(#2 - #1), k, i, count;
         uint8_t stackbuf[1024], *tmp = n <= sizeof stackbuf ? stackbuf : (uint8_t *)ecl_alloc_atomic(n);
         int ascii = 1;
         cl_object s;
         k = crow_html_form_decode(in + #1, n, tmp, #3);
         for (i = 0; i < k; i++) if (tmp[i] >= 0x80) { ascii = 0; break; }
         if (ascii) {
           s = ecl_alloc_simple_base_string(k);
           memcpy(s->base_string.self, tmp, k);
         } else {
           count = crow_utf8_count(tmp, k);
           s = ecl_alloc_simple_extended_string(count);
           crow_utf8_decode(tmp, k, (uint32_t *)s->string.self, NULL, CROW_UTF8_REPLACE);
         }
         @(return) = s; }"))

(defun octets-search (needle hay &key (start 0) end)
  "Returns the index of the first occurrence of the octets NEEDLE in HAY[START,END), or NIL
(also for an empty NEEDLE).  Can't fail."
  (check-type needle octets)
  (check-type hay octets)
  (let* ((end (check-bounds hay start end))
         (r (ffi:c-inline (hay end start needle (length needle))
                          (:object :fixnum :fixnum :object :fixnum) :long
              "crow_html_find(#0->vector.self.b8, (size_t)#1, (size_t)#2, #3->vector.self.b8, (size_t)#4)"
              :one-liner t)))
    (and (>= r 0) r)))

(defun %byte-escape (source mode)
  "SOURCE (a base-string of bytes or octets) through crow_html_percent_encode with set MODE (0
path, 1 cookie) or crow_html_log_quote (MODE 2), as a base-string: SOURCE itself when it is a
base-string needing nothing; NIL when MODE < 2 and SOURCE is a base-string holding a byte of
128 or more (its UTF-8 form must be encoded instead)."
  (declare (optimize (speed 3) (safety 0)) (fixnum mode))
  (ffi:c-inline (source mode) (:object :int) :object
    "{ cl_object src = #0; int mode = #1; const uint8_t *in; size_t n, i, m;
       int base = ecl_t_of(src) == t_base_string;
       if (base) { in = (const uint8_t *)src->base_string.self; n = src->base_string.fillp; }
       else { in = src->vector.self.b8; n = src->vector.fillp; }
       if (base && mode < 2)
         for (i = 0; i < n; i++) if (in[i] >= 0x80) { @(return) = ECL_NIL; goto out; }
       {
         size_t room = (mode == 2 ? 4 : 3) * n;
         uint8_t stackbuf[2048], *tmp = room <= sizeof stackbuf ? stackbuf : (uint8_t *)ecl_alloc_atomic(room);
         m = mode == 2 ? crow_html_log_quote(in, n, tmp) : crow_html_percent_encode(in, n, tmp, mode);
         if (m == n && base) { @(return) = src; }
         else { cl_object s = ecl_alloc_simple_base_string(m); memcpy(s->base_string.self, tmp, m); @(return) = s; }
       }
       out: ; }"))

(defun percent-encode (source &key (set :path))
  "Returns SOURCE — a string (as its UTF-8 bytes) or octets — with every byte outside SET
written as %XX (upper-case hex), by c-core/html in one pass: SET :path keeps the RFC 3986
unreserved characters and /, :cookie the RFC 6265 cookie-octets except %.  The result is a
simple-base-string (SOURCE itself when it is a base-string needing nothing).  Signals
type-error for another SOURCE."
  (let ((mode (ecase set (:path 0) (:cookie 1))))
    (cond ((typep source '(or base-string octets))
           (or (%byte-escape source mode) (%byte-escape (utf8-encode source) mode)))
          ((stringp source) (%byte-escape (utf8-encode source) mode))
          (t (error 'type-error :datum source :expected-type '(or string octets))))))

(defun log-quote (string)
  "Returns STRING quoted for a double-quoted access-log field by c-core/html: \" and \\ get a
backslash before them, characters below U+0020 become \\xhh; a base-string is taken as its
bytes (and returned itself when nothing needs quoting).  Signals type-error for a non-string."
  (if (typep string 'base-string)
      (%byte-escape string 2)
      (let ((q (%byte-escape (utf8-encode (the string string)) 2)))
        (utf8-decode (map 'octets #'char-code q)))))
