;;;; params.lisp — http-let: binds query, body, cookie and header values of a crow.http request
;;;; by name, with coercion and defaults.  The query and the body are each parsed once per
;;;; request, on first need, and cached in the request's plist; only bound names are decoded.

(in-package :crow.web)

;;; The query fast path.  A GET value bound by http-let as :string or :integer is found by one
;;; scan of the raw query string in C, comparing each field name (percent-decoded only when it
;;; holds an escape) with the bound name's UTF-8 bytes: no field list, no name strings, and an
;;; :integer made from the digits in place.  Anything unusual (a query that is not a
;;; simple-base-string, a name over 256 bytes, an integer spelt with escapes or too long for a
;;; fixnum) takes the general path below, which gives the same answers.

(ffi:clines "#include <string.h>" "#include \"html.h\"
/* Finds the first field NAME (NAME_N bytes, decoded form) among the first 1000 non-empty
 * fields of the query Q[0,N).  Returns 1 with its raw value at Q[*VS,*VE) (empty when the
 * field has no `=`), or 0. */
static int crow_web_qfind(const uint8_t *q, size_t n, const uint8_t *name, size_t name_n,
                          size_t *vs, size_t *ve)
{
    uint8_t tmp[3 * 256];
    size_t i = 0, count = 0;
    while (i < n && count < 1000) {
        const uint8_t *amp = memchr(q + i, '&', n - i);
        size_t stop = amp ? (size_t)(amp - q) : n;
        if (stop > i) {
            const uint8_t *eqp = memchr(q + i, '=', stop - i);
            size_t eq = eqp ? (size_t)(eqp - q) : stop, kn = eq - i;
            int match;
            count++;
            if (kn == name_n && !memchr(q + i, '%', kn) && !memchr(q + i, '+', kn))
                match = !memcmp(q + i, name, kn);
            else if (kn > name_n && kn <= 3 * name_n && memchr(q + i, '%', kn))
                match = crow_html_form_decode(q + i, kn, tmp, 1) == name_n && !memcmp(tmp, name, name_n);
            else if (kn == name_n)
                match = crow_html_form_decode(q + i, kn, tmp, 1) == name_n && !memcmp(tmp, name, name_n);
            else
                match = 0;
            if (match) {
                *vs = eq < stop ? eq + 1 : stop;
                *ve = stop;
                return 1;
            }
        }
        i = stop + 1;
    }
    return 0;
}")

(defun %query-scan (q name-octets)
  "Returns (values FOUND START END) for the first field named NAME-OCTETS (its UTF-8 bytes,
at most 256) in the query Q, a simple-base-string: FOUND 0 when absent."
  (declare (optimize (speed 3) (safety 0)))
  (ffi:c-inline (q name-octets) (:object :object) (values :int :fixnum :fixnum)
    "{ size_t vs = 0, ve = 0;
       int r = crow_web_qfind((const uint8_t *)#0->base_string.self, #0->base_string.fillp,
                              #1->vector.self.b8, #1->vector.fillp, &vs, &ve);
       @(return 0) = r; @(return 1) = (cl_fixnum)vs; @(return 2) = (cl_fixnum)ve; }"))

(declaim (inline %fast-query))
(defun %fast-query (req name-octets)
  "Returns REQ's query string when the fast path can search it for NAME-OCTETS, else NIL."
  (let ((q (request-query-string req)))
    (and q
         (ffi:c-inline (q name-octets) (:object :object) :bool
           "!ECL_IMMEDIATE(#0) && ecl_t_of(#0) == t_base_string && #1->vector.fillp <= 256"
           :one-liner t)
         q)))

(defun %get-string (req name name-octets default)
  "http-let's :string from :get: the first query value NAME, decoded, or DEFAULT."
  (declare (optimize (speed 3) (safety 0)))
  (let ((q (%fast-query req name-octets)))
    (if q
        (multiple-value-bind (found start end) (%query-scan q name-octets)
          (declare (fixnum found start end))
          (if (zerop found) default (crow.unix::%form-decode q start end t)))
        (http-param req name :from :get :type :string :default default))))

(defun %get-integer (req name name-octets default)
  "http-let's :integer from :get: the first query value NAME as a decimal integer, or
DEFAULT when absent or not one."
  (declare (optimize (speed 3) (safety 0)))
  (let ((q (%fast-query req name-octets)))
    (if q
        (multiple-value-bind (found start end) (%query-scan q name-octets)
          (declare (fixnum found start end))
          (if (zerop found)
              default
              ;; Digits in place: an optional `-`, 1 to 18 digits, nothing else (a raw `+` is a
              ;; space, `%` an escape: those go through decoding, as does a longer number).
              (multiple-value-bind (kind value)
                  (ffi:c-inline (q start end) (:object :fixnum :fixnum) (values :int :fixnum)
                    "{ const char *p = (const char *)#0->base_string.self + #1, *e = (const char *)#0->base_string.self + #2;
                       int neg = 0, kind = 1; cl_fixnum v = 0;
                       if (p < e && *p == '-') { neg = 1; p++; }
                       if (p == e || e - p > 18) kind = 2;
                       for (; kind == 1 && p < e; p++) {
                         if (*p >= '0' && *p <= '9') v = v * 10 + (*p - '0');
                         else kind = (*p == '%' || *p == '+') ? 2 : 0;
                       }
                       @(return 0) = kind; @(return 1) = neg ? -v : v; }")
                (declare (fixnum kind value))
                (case kind
                  (1 value)
                  (0 default)
                  (t (or (%parse-integer (crow.unix::%form-decode q start end t)) default))))))
        (http-param req name :from :get :type :integer :default default))))

(defun %cached (req key parse)
  (let* ((plist (request-plist req))
         (v (getf plist key :none)))
    (if (eq v :none)
        (let ((new (funcall parse)))
          (setf (request-plist req) (list* key new (request-plist req)))
          new)
        v)))

(defun request-query-fields (req)
  "Returns REQ's query fields (form-fields, or NIL without a query), parsed once."
  (%cached req :web-get
           (lambda ()
             (let ((q (request-query-string req)))
               (and q (plusp (length q))
                    (parse-urlencoded (if (typep q 'simple-base-string) q (coerce q 'simple-base-string))))))))

(defun request-body-fields (req)
  "Returns REQ's body fields: an application/x-www-form-urlencoded or multipart/form-data body
parsed once (uploads into temporary files, deleted when the outermost http-let ends), or NIL
for other bodies.  Signals form-error (400 malformed, 413 over a limit)."
  (%cached req :web-post
           (lambda ()
             (let ((body (request-body req))
                   (type (request-content-type req))
                   (mp (request-multipart req)))
               (cond
                 (mp (multipart-form-fields mp)) ; streamed to files as it came (crow.http)
                 ((and body type)
                  (let ((main (header-main-value type)))
                    (cond ((string= main "application/x-www-form-urlencoded")
                           (parse-urlencoded body))
                          ((string= main "multipart/form-data")
                           (let ((b (header-parameter type "boundary")))
                             (unless (and b (< 0 (length b) 71))
                               (form-fail 400 "multipart: missing or bad boundary"))
                             (parse-multipart body b)))))))))))

(defun request-cookies (req)
  "Returns REQ's cookies as an alist ((NAME . VALUE) ...), parsed once."
  (%cached req :web-cookies
           (lambda ()
             (loop for (name . value) in (request-headers req)
                   when (string-equal name "cookie") append (parse-cookies value)))))

(defun request-cookie (req name)
  "Returns the value of REQ's cookie NAME, or NIL."
  (cdr (assoc name (request-cookies req) :test #'string=)))

(defun %raw-values (req name from)
  "Returns the list of raw values (strings or uploads) of NAME in REQ from source FROM."
  (ecase from
    (:get (form-values (request-query-fields req) name))
    (:post (form-values (request-body-fields req) name))
    (:param (or (form-values (request-body-fields req) name)
                (form-values (request-query-fields req) name)))
    (:cookie (loop for (k . v) in (request-cookies req) when (string= k name) collect v))
    (:header (loop for (k . v) in (request-headers req) when (string-equal k name) collect v))))

(defun http-param (req name &key (from :param) (type :string) default)
  "Returns the value of NAME in REQ (FROM :get, :post, :param = body then query, :cookie or
:header), converted by coerce-param to TYPE; (:list TYPE) or :list returns every value in
order.  DEFAULT is returned when the name is absent or (except for :boolean) its value does
not convert.  Signals form-error when the body is malformed or over a limit."
  (let ((raw (%raw-values req name from)))
    (cond ((or (eq type :list) (and (consp type) (eq (first type) :list)))
           (let ((elt (if (consp type) (second type) :string)))
             (or (loop for v in raw for c = (coerce-param v elt) when c collect c) default)))
          ((null raw) default)
          ((eq type :boolean) (coerce-param (first raw) :boolean))
          (t (let ((c (coerce-param (first raw) type)))
               (if (null c) default c))))))

(defun %parse-spec (spec)
  "Returns (values VAR NAME FROM TYPE DEFAULT) of an http-let binding SPEC."
  (if (symbolp spec)
      (values spec (string-downcase spec) :param :string nil)
      (destructuring-bind (var &rest rest) spec
        (let ((type :string) (default nil) (keys '()))
          (when (and rest (not (member (first rest) '(:name :from :default))))
            (setf type (pop rest)))
          (when (and rest (not (member (first rest) '(:name :from :default))))
            (setf default (pop rest)))
          (setf keys rest)
          (values var (or (getf keys :name) (string-downcase var)) (getf keys :from :param)
                  type (getf keys :default default))))))

(defun delete-request-uploads (req)
  "Deletes the temporary files of REQ's uploads.  Returns NIL."
  (let ((f (getf (request-plist req) :web-post)))
    (when (form-fields-p f) (delete-uploads f))))

(defmacro http-let ((req &rest specs) &body body)
  "Binds each variable of SPECS to a value of the request REQ and runs BODY.  A SPEC is VAR
(a string from the body or the query named VAR in lowercase) or
  (VAR [TYPE [DEFAULT]] &key NAME FROM DEFAULT)
with TYPE :string, :integer, :float, :boolean, :upload, :octets, :list, (:list TYPE) or a
function of the string, FROM :param (body, then query), :get, :post, :cookie or :header.
Only the names bound are looked up; query and body are parsed once per request, on first
need.  A malformed body or one over a limit answers 400/413 (and BODY does not run).  Upload
files are deleted when the outermost http-let of the request exits."
  (let ((r (gensym "REQ")) (owner (gensym "OWNER")))
    `(let* ((,r ,req)
            (,owner (not (getf (request-plist ,r) :web-let))))
       (when ,owner (setf (request-plist ,r) (list* :web-let t (request-plist ,r))))
       (unwind-protect
            (handler-case
                (let* ,(loop for s in specs
                             collect (multiple-value-bind (var name from type default) (%parse-spec s)
                                       (if (and (eq from :get) (member type '(:string :integer))
                                                (<= (length (utf8-encode name)) 256))
                                           `(,var (,(if (eq type :string) '%get-string '%get-integer)
                                                   ,r ,name ,(utf8-encode name) ,default))
                                           `(,var (http-param ,r ,name :from ,from :type ',type
                                                                   :default ,default)))))
                  ,@body)
              (form-error (e)
                (log-warn "crow.web: ~a ~a: ~a" (request-method ,r) (request-path ,r) e)
                (respond-error ,r (form-error-status e))
                nil))
         (when ,owner (delete-request-uploads ,r))))))

(defmacro with-http-let ((req &rest specs) &body body)
  "The same as http-let."
  `(http-let (,req ,@specs) ,@body))
