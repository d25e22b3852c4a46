;;;; evhttp.lisp — HTTP request facts out of a c-core/evloop :request unit in one call each,
;;;; for crow-httpd's hot path: no consing for headers nobody asks for.

(in-package :crow.unix)

(ffi:clines "#include <limits.h>" "#include <stdlib.h>" "#include <string.h>"
            "#include <strings.h>" "#include \"evloop.h\"")

(defparameter *http-methods*
  #(:get :head :post :put :delete :options :patch :trace :connect)
  "Method keywords, indexed by the code ev-unit-request returns (-1 for any other token).")

(defun-inline ev-unit-request (unit)
  "Returns a :request unit's facts in one call: (values METHOD-CODE VERSION KEEP-ALIVE
CHUNKED CONTENT-LENGTH HEAD-LENGTH BODY-LENGTH TARGET-OFFSET TARGET-LENGTH HOST-OFFSET
HOST-LENGTH HOST-COUNT CONTENT-LENGTH-COUNT HEADER-COUNT PATH-LENGTH PLAIN-PATH HOST-NAME-LENGTH).
METHOD-CODE indexes *http-methods* (-1: another method); HOST-OFFSET is -1 without a Host
field; the counts say how many Host and Content-Length fields the head has.  PATH-LENGTH is
the target's length up to a `?` (the query follows it); PLAIN-PATH is true when the target
starts with `/` and its path has no `%`, no byte outside printable ASCII and no `.` or `..`
segment, so it needs no decoding or further checks.  HOST-NAME-LENGTH is the Host value's
length without a `:port`.  Can't fail."
  (ffi:c-inline ((%unit-ptr unit)) (:pointer-void)
                (values :int :int :bool :bool :int64-t :fixnum :fixnum :fixnum :fixnum
                        :fixnum :fixnum :fixnum :fixnum :fixnum :fixnum :bool :fixnum)
    "{ const struct crow_ev_unit *u = (const struct crow_ev_unit *)#0;
       const struct crow_ev_http *h = &u->http;
       int code = -1; uint32_t i; cl_fixnum hoff = -1, hlen = 0, hc = 0, clc = 0;
       const char *mp = u->data + h->method_off;
       /* by length, then fixed-size compares (no strlen, no calls) */
       switch (h->method_len) {
       case 3: code = !memcmp(mp, \"GET\", 3) ? 0 : !memcmp(mp, \"PUT\", 3) ? 3 : -1; break;
       case 4: code = !memcmp(mp, \"HEAD\", 4) ? 1 : !memcmp(mp, \"POST\", 4) ? 2 : -1; break;
       case 5: code = !memcmp(mp, \"PATCH\", 5) ? 6 : !memcmp(mp, \"TRACE\", 5) ? 7 : -1; break;
       case 6: code = !memcmp(mp, \"DELETE\", 6) ? 4 : -1; break;
       case 7: code = !memcmp(mp, \"OPTIONS\", 7) ? 5 : !memcmp(mp, \"CONNECT\", 7) ? 8 : -1; break; }
       /* field names are tokens (the loop checked): setting bit 0x20 folds exactly the
          upper-case letters onto the lower-case ones and leaves '-' alone */
       for (i = 0; i < h->nheaders; i++) {
         const struct crow_ev_header *f = &h->headers[i];
         const char *nm = u->data + f->name_off;
         if (f->name_len == 4) {
           uint32_t w, k; memcpy(&w, nm, 4); memcpy(&k, \"host\", 4);
           if ((w | 0x20202020u) == k && !hc++) { hoff = f->value_off; hlen = f->value_len; } }
         else if (f->name_len == 14) {
           uint64_t a, b, ka, kb; memcpy(&a, nm, 8); memcpy(&b, nm + 6, 8);
           memcpy(&ka, \"content-\", 8); memcpy(&kb, \"t-length\", 8);
           if ((a | 0x2020202020202020ull) == ka && (b | 0x2020202020202020ull) == kb) clc++; } }
       const unsigned char *t = (const unsigned char *)u->data + h->target_off;
       uint32_t tl = h->target_len, pl = 0; int plain = tl > 0 && t[0] == '/';
       for (pl = 0; pl < tl && t[pl] != '?'; pl++) {
         unsigned char ch = t[pl];
         if (ch == '%' || ch < 0x21 || ch > 0x7e) plain = 0;
         else if (ch == '.' && pl > 0 && t[pl - 1] == '/') {
           uint32_t k = pl + 1;
           if (k < tl && t[k] == '.') k++;
           if (k == tl || t[k] == '/' || t[k] == '?') plain = 0; } }
       cl_fixnum hn = hlen;
       if (hoff >= 0) { const char *hv = u->data + hoff; cl_fixnum k = hlen;
         while (k > 0 && hv[k - 1] >= '0' && hv[k - 1] <= '9') k--;
         if (k > 0 && k < hlen && hv[k - 1] == ':' && hv[0] != '[') hn = k - 1;
         else if (k > 0 && k < hlen && hv[k - 1] == ':' && k > 1 && hv[k - 2] == ']') hn = k - 1; }
       @(return 0) = code; @(return 1) = h->version; @(return 2) = h->keep_alive;
       @(return 3) = h->chunked; @(return 4) = h->content_length; @(return 5) = h->head_len;
       @(return 6) = h->body_len; @(return 7) = h->target_off; @(return 8) = h->target_len;
       @(return 9) = hoff; @(return 10) = hlen; @(return 11) = hc; @(return 12) = clc;
       @(return 13) = h->nheaders; @(return 14) = pl; @(return 15) = plain; @(return 16) = hn; }"))

(defun ev-unit-string (unit offset length)
  "Returns LENGTH bytes of the unit's data from OFFSET as a fresh base-string (one character
per byte).  The caller keeps OFFSET and LENGTH within the unit.  Can't fail."
  (%unit-base-string unit offset length))

(defun-inline ev-unit-string-reusing (unit offset length old)
  "Returns OLD when it is a base-string of exactly the LENGTH bytes of the unit's data from
OFFSET, else those bytes as a fresh base-string (as ev-unit-string): a server that sees the
same target or Host again and again makes no string for it.  Can't fail."
  (declare (fixnum offset length))
  (ffi:c-inline ((%unit-ptr unit) offset length old) (:pointer-void :fixnum :fixnum :object)
                :object
    "{ const char *p = ((const struct crow_ev_unit *)#0)->data + #1; cl_fixnum n = #2; cl_object o = #3;
       @(return) = (ECL_BASE_STRING_P(o) && (cl_fixnum)o->base_string.fillp == n
                    && !memcmp(o->base_string.self, p, (size_t)n))
                   ? o : ecl_make_simple_base_string(p, n); }"))

(defun ev-unit-header-values (unit name)
  "Returns the values of every header field NAME (ASCII case ignored) of a :request unit, in
order, as base-strings.  Can't fail."
  (let ((n (string-to-c name)) (out '()) (i 0))
    (loop
      (multiple-value-bind (next off len)
          (ffi:c-inline ((%unit-ptr unit) n i) (:pointer-void :object :fixnum)
                        (values :fixnum :fixnum :fixnum)
            "{ const struct crow_ev_unit *u = (const struct crow_ev_unit *)#0;
               const char *nm = (const char *)#1->vector.self.b8; size_t nl = strlen(nm);
               uint32_t i; cl_fixnum nx = -1, off = 0, len = 0;
               for (i = (uint32_t)#2; i < u->http.nheaders; i++) {
                 const struct crow_ev_header *h = &u->http.headers[i];
                 if (h->name_len == nl && !strncasecmp(u->data + h->name_off, nm, nl)) {
                   nx = i + 1; off = h->value_off; len = h->value_len; break; } }
               @(return 0) = nx; @(return 1) = off; @(return 2) = len; }")
        (when (minusp next) (return (nreverse out)))
        (push (%unit-base-string unit off len) out)
        (setf i next)))))

(defun realpath (path)
  "Returns PATH with every symbolic link, `.` and `..` resolved (realpath(3)) as a string, or
NIL with the errno as second value when it cannot be resolved (ENOENT, EACCES, ELOOP...)."
  (let ((c (string-to-c path)))
    (multiple-value-bind (r errno)
        (ffi:c-inline (c) (:object) (values :object :int)
          "{ char *p = realpath((const char *)#0->vector.self.b8, NULL);
             if (p) { size_t n = strlen(p); cl_object v = ecl_alloc_simple_vector(n, ecl_aet_b8);
                      memcpy(v->vector.self.b8, p, n); free(p); @(return 0) = v; @(return 1) = 0; }
             else { @(return 0) = ECL_NIL; @(return 1) = errno; } }")
      (if r (values (octets-to-string r) 0) (values nil errno)))))

(defun ev-unit-header-base (unit name)
  "Like ev-unit-header, for a NAME that is already a simple-base-string (no conversion or
allocation for the name; ASCII case ignored).  Returns the value as a base-string, or NIL."
  (unless (si:base-string-p name) (setf name (coerce name 'simple-base-string)))
  (multiple-value-bind (off len)
      (ffi:c-inline ((%unit-ptr unit) name) (:pointer-void :object) (values :fixnum :fixnum)
        "{ const struct crow_ev_unit *u = (const struct crow_ev_unit *)#0;
           const char *nm = (const char *)#1->base_string.self; size_t nl = #1->base_string.fillp;
           uint32_t i; cl_fixnum off = -1, len = 0;
           for (i = 0; i < u->http.nheaders; i++) { const struct crow_ev_header *h = &u->http.headers[i];
             if (h->name_len == nl && !strncasecmp(u->data + h->name_off, nm, nl)) { off = h->value_off; len = h->value_len; break; } }
           @(return 0) = off; @(return 1) = len; }")
    (and (>= off 0) (%unit-base-string unit off len))))
