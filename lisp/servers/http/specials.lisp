;;;; specials.lisp — crow.http's constants and global state: version, status reasons, the
;;;; error pages and the hot-path byte strings built once.

(in-package :crow.http)

(defvar *version* "0.1.0" "crow-httpd's version, sent in Server: Crow/VERSION.")

(defmacro crlf (&rest parts)
  "A base-string of PARTS (strings) each followed by CRLF, built at load time."
  `(load-time-value
    (coerce (format nil "~{~a~c~c~}"
                    (loop for p in (list ,@parts) append (list p #\Return #\Linefeed)))
            'simple-base-string)
    t))

(defun base (string)
  "Returns STRING as a simple-base-string (STRING itself when it is one).  Signals an error
for characters beyond Latin-1."
  (if (typep string 'simple-base-string) string (coerce string 'simple-base-string)))

(defparameter +reasons+
  '((100 . "Continue") (200 . "OK") (201 . "Created") (202 . "Accepted")
    (204 . "No Content") (206 . "Partial Content") (301 . "Moved Permanently")
    (302 . "Found") (303 . "See Other") (304 . "Not Modified") (307 . "Temporary Redirect")
    (308 . "Permanent Redirect") (400 . "Bad Request") (401 . "Unauthorized")
    (403 . "Forbidden") (404 . "Not Found") (405 . "Method Not Allowed")
    (408 . "Request Timeout") (411 . "Length Required") (413 . "Content Too Large")
    (414 . "URI Too Long") (415 . "Unsupported Media Type") (416 . "Range Not Satisfiable")
    (417 . "Expectation Failed") (431 . "Request Header Fields Too Large")
    (500 . "Internal Server Error") (501 . "Not Implemented") (503 . "Service Unavailable")
    (505 . "HTTP Version Not Supported"))
  "Status code -> reason phrase (RFC 9110 section 15).")

(defun status-reason (status)
  "Returns the reason phrase of STATUS (\"Unknown\" for a code not in the table)."
  (or (cdr (assoc status +reasons+)) "Unknown"))

(defvar *status-lines* (make-array 600 :initial-element nil)
  "Status -> \"HTTP/1.1 NNN Reason\\r\\nServer: Crow/V\\r\\nDate: \", built on first use.")
(defvar *status-lock* (mp:make-lock :name "crow.http status lines"))

(defun status-line (status)
  "Returns the response's first bytes up to the Date value for STATUS (100-599, cached)."
  (declare (type (integer 100 599) status))
  (or (svref *status-lines* status)
      (setf (svref *status-lines* status)
            (base (format nil "HTTP/1.1 ~d ~a~c~cServer: Crow/~a~c~cDate: " status
                          (status-reason status) #\Return #\Linefeed *version*
                          #\Return #\Linefeed)))))

(defun-inline status-line* (status)
  "status-line open-coded for the per-response path: a cached line is read in place."
  (if (and (typep status 'fixnum) (<= 100 (the fixnum status) 599))
      (or (svref *status-lines* (the fixnum status)) (status-line status))
      (status-line status)))

(defvar *error-pages* (make-hash-table))

(defun error-page (status)
  "Returns the small HTML body of the error page for STATUS (cached)."
  (or (gethash status *error-pages*)
      (mp:with-lock (*status-lock*)
        (setf (gethash status *error-pages*)
              (base (format nil "<!DOCTYPE html>~%<html><head><title>~d ~a</title></head>~
<body><h1>~d ~a</h1><hr>Crow/~a</body></html>~%"
                            status (status-reason status) status (status-reason status)
                            *version*))))))

(defvar *requests* 0 "Requests answered (approximate across threads; for the benchmark).")

(defvar *start-time* 0 "Unix time the server started.")

(declaim (type fixnum *requests*))

(defmacro %instance-ref (x i)
  "Slot I of the structure instance X, read in place: si:instance-ref compiles to a call of
ecl_instance_ref, and the per-request path reads and resets a few dozen slots.  Checked as
that function checks (an instance, I within its length); anything else goes to it, which
signals the error."
  (check-type i (integer 0 1000))
  `(ffi:c-inline (,x) (:object) :object
                 ,(format nil "((ECL_INSTANCEP(#0) && (#0)->instance.length > ~d) ? (#0)->instance.slots[~d] : ecl_instance_ref(#0, ~d))" i i i)
                 :one-liner t :side-effects nil))

(defmacro %instance-set (x i value)
  "Sets slot I of the structure instance X to VALUE in place (see %instance-ref); returns
VALUE."
  (check-type i (integer 0 1000))
  `(ffi:c-inline (,x ,value) (:object :object) :object
                 ,(format nil "((ECL_INSTANCEP(#0) && (#0)->instance.length > ~d) ? ((#0)->instance.slots[~d] = (#1)) : ecl_instance_set(#0, ~d, #1))" i i i)
                 :one-liner t))

(defmacro define-slot-readers (struct prefix &rest slots)
  "Defines readers PREFIX-SLOT (and their SETF) for the named SLOTS of STRUCT (given in
defstruct order, all of them), read in place with %instance-ref and no type check: ECL compiles
defstruct readers as full calls, which the per-request path cannot afford.  They are macros,
not inline functions: ECL inlines a function only into files compiled in the same image
after its definition, so an incremental build (a later file recompiled, this one loaded from
its fasl) silently made every use a full call through the symbol.  For crow.http's own hot
code, on objects known to be of STRUCT; a load-time check compares them with slot-value."
  (declare (ignore struct))
  (let ((names (loop for s in slots collect (intern (format nil "~a-~a" prefix s)))))
    `(progn
       ,@(loop for name in names for i from 0
               collect `(defmacro ,name (x) `(%instance-ref ,x ,,i))
               collect `(defsetf ,name (x) (value) `(%instance-set ,x ,,i ,value)))
       (defun ,(intern (format nil "CHECK-~a-READERS" prefix)) (x)
         (and ,@(loop for s in slots for name in names
                      collect `(eq (,name x) (slot-value x ',s))))))))
