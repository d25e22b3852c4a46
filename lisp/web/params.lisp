;;;; params.lisp — http-let: binds query, body, cookie and header values of a crow.http request
;;;; by name, with coercion and defaults.  The query and the body are each parsed once per
;;;; request, on first need, and cached in the request's plist; only bound names are decoded.

(in-package :crow.web)

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
                   (type (request-content-type req)))
               (when (and body type)
                 (let ((main (header-main-value type)))
                   (cond ((string= main "application/x-www-form-urlencoded")
                          (parse-urlencoded body))
                         ((string= main "multipart/form-data")
                          (let ((b (header-parameter type "boundary")))
                            (unless (and b (< 0 (length b) 71))
                              (form-fail 400 "multipart: missing or bad boundary"))
                            (parse-multipart body b))))))))))

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
                                       `(,var (http-param ,r ,name :from ,from :type ',type
                                                               :default ,default))))
                  ,@body)
              (form-error (e)
                (log-warn "crow.web: ~a ~a: ~a" (request-method ,r) (request-path ,r) e)
                (respond-error ,r (form-error-status e))
                nil))
         (when ,owner (delete-request-uploads ,r))))))

(defmacro with-http-let ((req &rest specs) &body body)
  "The same as http-let."
  `(http-let (,req ,@specs) ,@body))
