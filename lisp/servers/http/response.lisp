;;;; response.lisp — answers: the head built from cached pieces and written with the body in
;;;; one writev; error pages, redirects, chunked (streamed) responses.

(in-package :crow.http)

(declaim (optimize (speed 3) (safety 1) (debug 0)))

(defparameter +crlf+ (crlf ""))
(defparameter +ct+ (base (format nil "~c~cContent-Type: " #\Return #\Linefeed)))
(defparameter +cl+ (base (format nil "~c~cContent-Length: " #\Return #\Linefeed)))
(defparameter +te-chunked+ (base (format nil "~c~cTransfer-Encoding: chunked" #\Return #\Linefeed)))
(defparameter +conn-close+ (crlf "Connection: close"))
(defparameter +conn-keep+ (crlf "Connection: keep-alive"))
(defparameter +empty+ (base ""))
(defparameter +last-chunk+ (crlf "0" ""))

(defvar *small-digits* (make-array 4096 :initial-element nil)
  "Decimal strings of 0..4095, made on first use (response lengths are mostly small).")

(defun digits (n)
  "Returns the decimal digits of the non-negative integer N as a simple-base-string."
  (if (and (typep n 'fixnum) (< (the fixnum n) 4096))
      (or (svref *small-digits* n)
          (setf (svref *small-digits* n) (%digits n)))
      (%digits n)))

(defun %digits (n)
  (if (typep n 'fixnum)
      (let ((n n))
        (declare (fixnum n))
        (if (zerop n)
            (base "0")
            (let* ((len (loop for k of-type fixnum = n then (truncate k 10) while (plusp k) count t))
                   (s (make-string len :element-type 'base-char)))
              (declare (fixnum len))
              (loop for i of-type fixnum downfrom (1- len) to 0
                    do (multiple-value-bind (q r) (truncate n 10)
                         (declare (fixnum q r))
                         (setf (schar s i) (code-char (+ 48 r)) n q)))
              s)))
      (base (princ-to-string n))))

(defvar *date* (cons -1 "")
  "(UNIX-SECOND . IMF-fixdate) of the last Date header made: one string per second, not per
response.")

(ffi:clines "#include <time.h>")

;; The per-response functions below are inlined into this file's callers (send-response and
;; %respond): each Lisp function entry costs ECL a look-up of the thread's environment
;; (pthread_getspecific), a measurable part of a small response.
(declaim (inline http-date %tail %simple-head send-response))

(defun http-date (ev)
  "Returns the Date header value for now (from the C loop's cached date)."
  (let ((now (ffi:c-inline () () :fixnum
               "{ struct timespec t; clock_gettime(CLOCK_REALTIME_COARSE, &t); @(return) = (cl_fixnum)t.tv_sec; }"))
        (d *date*))
    (if (eql now (car d))
        (cdr d)
        (let ((s (ev-date ev)))
          (setf *date* (cons now s))
          s))))

(defmacro %simple-base-string-p (x)
  "True when X is a simple-base-string (tested in place: ECL calls generic code for typep)."
  `(ffi:c-inline (,x) (:object) :bool
                 "ECL_BASE_STRING_P(#0) && !ECL_ADJUSTABLE_ARRAY_P(#0) && !ECL_ARRAY_HAS_FILL_POINTER_P(#0) && (Null((#0)->base_string.displaced) || Null(ECL_CONS_CAR((#0)->base_string.displaced)))"
                 :one-liner t :side-effects nil))

(defun bytes-of (x)
  "Returns X (octets, a string) as something ev-reply writes: octets or a simple-base-string;
a string with characters beyond ASCII is encoded as UTF-8."
  ;; ECL calls the generic typep for simple-base-string and byte arrays: test with the
  ;; predicates it compiles to direct C calls instead (this runs a few times per response).
  (cond ((%simple-base-string-p x) x)   ; the usual case, tested in place
        ((si:base-string-p x) (coerce x 'simple-base-string))
        ((and (vectorp x) (eq (array-element-type x) 'ext:byte8))
         (if (adjustable-array-p x) (coerce x '(simple-array (unsigned-byte 8) (*))) x))
        ((stringp x)
         (if (loop for i of-type fixnum from 0 below (length x)
                   always (< (char-code (char x i)) 128))
             (coerce x 'simple-base-string)
             (utf8-encode x)))
        ((null x) +empty+)
        (t (bytes-of (princ-to-string x)))))

(defun header-bytes (name value)
  "Returns one header line \"Name: value\\r\\n\"."
  (bytes-of (concatenate 'string (string name) ": " (if (stringp value) value (princ-to-string value))
                         (load-time-value (coerce '(#\Return #\Linefeed) 'string)))))

(defun add-response-header (req name value)
  "Queues the header NAME: VALUE for REQ's response (after those already queued).  Returns
VALUE."
  (setf (request-out-headers req) (nconc (%rq-out-headers req) (list (cons name value))))
  value)

(defun default-content-type (req)
  (let ((v (%rq-vhost req)))
    (if v (vhost-html-type v) "text/html; charset=utf-8")))

(declaim (inline %close-p %finish))
(defun %close-p (req status)
  (declare (fixnum status))
  (or (not (%rq-keep-alive req)) (%rq-close req) (= status 400)))

(defvar *tail-cache* (vector nil -1 nil "")
  "#(CONTENT-TYPE LENGTH CONNECTION-LINE TAIL) of the last plain response head: a handler
answering the same kind of response again and again gets its head tail ready-made.")
(declaim (simple-vector *tail-cache*))  ; (read without a check; a local declaration costs a call)

(defun %tail (content-type length conn)
  "Returns the head's bytes after the Date value for a response with only Content-Type
CONTENT-TYPE (a base-string), Content-Length LENGTH and CONN's connection line."
  (let ((c *tail-cache*))
    (if (and (eq (svref c 0) content-type) (eql (svref c 1) length) (eq (svref c 2) conn))
        (svref c 3)
        (let ((tail (concatenate 'simple-base-string +ct+ content-type +cl+ (digits length)
                                 +crlf+ conn +crlf+)))
          (setf *tail-cache* (vector content-type length conn tail))
          tail))))

(defun %simple-head (req status content-type length close body)
  "Returns the response's pieces as %head does when it has one BODY chunk (a list of one),
a LENGTH, a base-string CONTENT-TYPE and no other header, else NIL."
  (when (and length body (null (cdr body)) (null (%rq-out-headers req))
             (ffi:c-inline (content-type) (:object) :bool "ECL_BASE_STRING_P(#0)"
                           :one-liner t :side-effects nil))
    (let ((conn (cond (close +conn-close+)
                      ((eql (%rq-version req) 10) +conn-keep+)
                      (t +empty+)))
          ;; the request's own 4-piece vector (the C loop copies what it queues, so the
          ;; vector is free again once ev-reply returns)
          (v (or (%rq-%parts req) (setf (%rq-%parts req) (make-array 4)))))
      (setf (svref v 0) (status-line* status)
            (svref v 1) (http-date (%rq-ev req))
            (svref v 2) (%tail content-type length conn)
            (svref v 3) (car body))
      v)))

(defun %head (req status content-type length headers close chunked body)
  "Returns the simple-vector of pieces of a response: the head (blank line included), then
the byte chunks BODY."
  (when (and length content-type (not chunked) (null headers) (null (%rq-out-headers req))
             (ffi:c-inline (content-type) (:object) :bool "ECL_BASE_STRING_P(#0)"
                           :one-liner t :side-effects nil))
    (let ((v (%simple-head req status content-type length close body)))
      (when v (return-from %head v)))
    (let* ((conn (cond (close +conn-close+)
                       ((eql (%rq-version req) 10) +conn-keep+)
                       (t +empty+)))
           (v (make-array (+ 3 (length body))))
           (i 3))
      (declare (fixnum i) (simple-vector v))
      (setf (svref v 0) (status-line* status)
            (svref v 1) (http-date (%rq-ev req))
            (svref v 2) (%tail content-type length conn))
      (dolist (b body) (setf (svref v i) b) (incf i))
      (return-from %head v)))
  (let* ((extra (%rq-out-headers req))
         (n (+ 5 (if content-type 2 0) (cond (chunked 1) (length 2) (t 0))
               (length extra) (length headers) (length body)))
         (v (make-array n))
         (i 0))
    (declare (fixnum i n) (simple-vector v))
    (macrolet ((put (x) `(progn (setf (svref v i) ,x) (incf i))))
      (put (status-line status))
      (put (http-date (%rq-ev req)))
      (when content-type (put +ct+) (put (bytes-of content-type)))
      (cond (chunked (put +te-chunked+))
            (length (put +cl+) (put (digits length))))
      (put +crlf+)
      (dolist (h extra) (put (header-bytes (car h) (cdr h))))
      ;; a header is (name . value), or ready-made bytes of whole lines
      (dolist (h headers) (put (if (consp h) (header-bytes (car h) (cdr h)) h)))
      (put (cond (close +conn-close+)
                 ((eql (%rq-version req) 10) +conn-keep+)
                 (t +empty+)))
      (put +crlf+)
      (dolist (b body) (put b)))
    (unless (= i n) (error "crow.http: response head has ~d pieces, not ~d" i n))
    v))

(defun %finish (req status sent close)
  (setf (%rq-responded req) t (%rq-status req) status (%rq-sent req) sent)
  close)

(defun send-response (req status content-type chunks headers)
  "Writes REQ's whole response — head and the byte CHUNKS (octets or base-strings) — with one
writev and finishes the unit.  HEAD requests and 204/304 get no body.  Returns T, or NIL
when the client has gone."
  (declare (fixnum status))
  (when (%rq-responded req)
    (error "crow.http: ~a ~a answered twice" (%rq-method req) (%rq-target req)))
  (let* ((length (if (and chunks (null (cdr chunks)))
                     (length (the vector (car chunks)))
                     (loop for c in chunks sum (length c))))
         (close (%close-p req status))
         (nobody (or (eq (%rq-method req) :head) (= status 204) (= status 304)))
         (length* (if (or (= status 204) (= status 304)) nil length))
         (body (if nobody nil chunks))
         (parts (or (and content-type (null headers) (not nobody)
                         (%simple-head req status content-type length* close body))
                    (%head req status content-type length* headers close nil body))))
    (%finish req status (if nobody 0 length) close)
    (ev-reply* (%rq-ev req) (%rq-conn req) parts close nil)))

(defun %respond (req body status content-type headers)
  "respond with positional arguments (respond's calls with plain keyword arguments compile to
this: no keyword parsing per response)."
  (if (listp body)
      (send-response req status (or content-type (default-content-type req))
                     (mapcar #'bytes-of body) headers)
      ;; one chunk: in the worker's own one-element list (nothing keeps the list)
      (let ((one (or (%rq-%one req) (setf (request-%one req) (list nil)))))
        (setf (car one) (if (%simple-base-string-p body) body (bytes-of body)))
        (let ((r (send-response req status (or content-type (default-content-type req)) one
                                headers)))
          (setf (car one) nil)
          r))))

(defun respond (req body &key (status 200) content-type headers)
  "Answers REQ with BODY (octets, a string — encoded as UTF-8 — or a list of those, all
written with the head in one writev), STATUS, CONTENT-TYPE (default: the vhost's HTML type)
and HEADERS, an alist of (name . value).  Returns T, or NIL when the client has gone.
Signals an error when REQ was already answered."
  (%respond req body status content-type headers))

(define-compiler-macro respond (&whole form req body &rest keys)
  ;; Only known keys, each once, whose forms can be evaluated in any order (constants and
  ;; variables): then the call becomes %respond's positional one, entered at its C function
  ;; (still looked up through the symbol per call).
  (if (and (evenp (length keys))
           (loop for (k v) on keys by #'cddr
                 always (and (member k '(:status :content-type :headers))
                             (= 1 (count k keys))
                             (or (constantp v) (symbolp v)))))
      (let ((f (gensym "RESPOND")))
        `(let ((,f (fast-symbol-function '%respond)))
           (fast-funcall ,f ,req ,body ,(getf keys :status 200) ,(getf keys :content-type)
                         ,(getf keys :headers))))
      form))

(defun respond-error (req status &key headers)
  "Answers REQ with the server's small error page for STATUS (and HEADERS).  Returns T or NIL
as respond does."
  (send-response req status "text/html; charset=utf-8" (list (error-page status)) headers))

(defun respond-redirect (req location &key (status 302))
  "Answers REQ with a redirect to LOCATION (STATUS 301, 302, 303, 307 or 308).  Returns T or
NIL as respond does."
  (send-response req status "text/html; charset=utf-8" (list (error-page status))
                 (list (cons "Location" location))))

;;; Streaming

(defstruct (chunk-stream (:constructor %make-chunk-stream (req framed silent)))
  req framed silent (sent 0))

(defun send-chunk (stream data)
  "Writes DATA (octets or a string) as one chunk of STREAM's response.  Returns T, or NIL when
the client has gone.  Empty DATA writes nothing."
  (let* ((b (bytes-of data)) (n (length b)) (req (chunk-stream-req stream)))
    (cond ((or (zerop n) (chunk-stream-silent stream)) t)
          (t (incf (chunk-stream-sent stream) n)
             (ev-reply (%rq-ev req) (%rq-conn req)
                       (if (chunk-stream-framed stream)
                           (vector (base (format nil "~x~c~c" n #\Return #\Linefeed)) b +crlf+)
                           (vector b))
                       :more t)))))

(defun call-with-chunked-response (req fn &key (status 200) content-type headers)
  "Sends REQ's head (Transfer-Encoding: chunked to HTTP/1.1 clients; HTTP/1.0 ones get the
bytes unframed and a close), calls FN with the stream, then ends the response.  If FN exits
abnormally the connection is closed (the client sees a truncated response).  Returns FN's
values."
  (let* ((head-only (eq (%rq-method req) :head))
         (framed (= (%rq-version req) 11))
         (close (or (not framed) (%close-p req status)))
         (stream (%make-chunk-stream req framed head-only))
         (ev (%rq-ev req)) (conn (%rq-conn req))
         (ok nil))
    (when (%rq-responded req) (error "crow.http: ~a answered twice" (%rq-target req)))
    (setf (request-responded req) t (%rq-status req) status)
    (ev-reply ev conn (%head req status (or content-type (default-content-type req)) nil
                             headers close framed nil)
              :more (not head-only) :close (and head-only close))
    (unwind-protect
         (multiple-value-prog1 (funcall fn stream) (setf ok t))
      (setf (request-sent req) (chunk-stream-sent stream))
      (unless head-only
        (if ok
            (ev-reply ev conn (if framed (vector +last-chunk+) (vector +empty+)) :close close)
            (ev-close ev conn))))))

(defmacro with-chunked-response ((var req &key (status 200) content-type headers) &body body)
  "Runs BODY with VAR bound to a stream whose send-chunk calls write REQ's response body as
it is produced; the response ends when BODY returns."
  `(call-with-chunked-response ,req (lambda (,var) ,@body) :status ,status
                                                          :content-type ,content-type
                                                          :headers ,headers))

(declaim (optimize (speed 3) (safety 2) (debug 0)))
