;;;; upload.lisp — multipart/form-data bodies streamed to temporary files while they arrive: the
;;;; head decides (vhost, Content-Type, limits), c-core/mpart moves the bytes from the event
;;;; loop straight into the files, and the files go when the request ends, whatever happens.

(in-package :crow.http)

(defvar *upload-directory* "/tmp/"
  "Where uploaded files are stored while their request lasts (a directory; inside the chroot
when the server runs in one).")
(defvar *max-upload-size* nil
  "The largest file part accepted, in octets (413 beyond), or NIL for no limit but the vhost's
post-max.")
(defvar *max-uploads* 16 "The most file parts one request may carry (413 beyond).")
(defvar *max-form-memory* (* 4 1024 1024)
  "Octets of a multipart body kept in memory (the part heads and the non-file fields; 413
beyond).")
(defvar *stream-uploads-over* 65536
  "A body longer than this (or chunked) comes to handle-head first, so a multipart one is
streamed to files instead of being held in memory.")

(defvar *max-post*) ; server.lisp: the largest post-max over the vhosts

(defvar *multipart* nil
  "While a request whose multipart body was streamed is handled: its scanner (crow.unix
multipart, finished), else NIL.")

(defun header-main-value (value)
  "Returns the part of a header VALUE before the first `;`, trimmed and lowercased."
  (string-downcase (string-trim " 	" (subseq value 0 (or (position #\; value) (length value))))))

(defun header-parameter (value name)
  "Returns parameter NAME (lowercase string) of a header VALUE such as
`form-data; name=\"a\"; filename=\"b.txt\"` (quoted or token form, backslash escapes undone),
or NIL.  Can't fail."
  (let ((i (position #\; value)) (n (length value)))
    (loop while (and i (< i n))
          do (let* ((k0 (position-if-not (lambda (c) (member c '(#\; #\Space #\Tab))) value :start i))
                    (eqp (and k0 (position #\= value :start k0))))
               (unless eqp (return nil))
               (let ((key (string-downcase (string-trim " 	" (subseq value k0 eqp))))
                     (v0 (1+ eqp)))
                 (multiple-value-bind (val next)
                     (if (and (< v0 n) (char= (char value v0) #\"))
                         (let ((out (make-string-output-stream)) (j (1+ v0)))
                           (loop while (and (< j n) (char/= (char value j) #\"))
                                 do (when (and (char= (char value j) #\\) (< (1+ j) n)) (incf j))
                                    (write-char (char value j) out) (incf j))
                           (values (get-output-stream-string out) (position #\; value :start (min n j))))
                         (let ((e (or (position #\; value :start v0) n)))
                           (values (string-trim " 	" (subseq value v0 e)) e)))
                   (when (string= key name) (return val))
                   (setf i next)))))))

(defun multipart-boundary (content-type)
  "Returns the boundary of a multipart/form-data CONTENT-TYPE value when it has a usable one
\(1 to 70 characters), else NIL."
  (and content-type
       (string= (header-main-value content-type) "multipart/form-data")
       (let ((b (header-parameter content-type "boundary")))
         (and b (< 0 (length b) 71) (every (lambda (c) (< 32 (char-code c) 127)) b) b))))

(defun make-upload-scanner (boundary &optional (limit *max-post*))
  "Returns a crow.unix multipart scanner for a body with BOUNDARY under the upload limits
\(*upload-directory*, *max-upload-size* or else LIMIT, *max-uploads*, *max-form-memory*)."
  (make-multipart boundary :directory *upload-directory*
                           :prefix (format nil "crow-upload-~d-" (getpid))
                           :max-file-size (or *max-upload-size* limit 0)
                           :max-files *max-uploads*
                           :max-memory *max-form-memory*))

(defun request-multipart (req)
  "Returns the finished multipart scanner of REQ's body when it was streamed to temporary files
while it arrived (its files are removed when the request ends), else NIL (the body, if any, is
in request-body)."
  (declare (ignore req))
  *multipart*)

(defun upload-error-status (errno)
  "The status answering a multipart body the scanner stopped with ERRNO."
  (cond ((member errno (list +efbig+ +emlink+ +e2big+)) 413)
        ((= errno +ebadmsg+) 400)
        (t 500)))

(defun refuse-request (ev unit status)
  "Answers the request whose head UNIT holds (a :head unit, a :request unit whose body went to
a scanner, or a :too-large / :bad unit refusing a body) with STATUS and a close, as a request
refused by handle-request is answered: with its request object, so the access log gets its
line like any other request's."
  (multiple-value-bind (mcode version keep chunked clen hlen blen toff tlen hoff hlen2)
      (ev-unit-request unit)
    (declare (ignore chunked clen) (fixnum mcode))
    (let ((req (worker-request ev unit (ev-unit-conn unit)
                               (if (>= mcode 0) (svref *http-methods* mcode) :other)
                               (ev-unit-string unit toff tlen) version keep hlen blen
                               (and (>= hoff 0) (ev-unit-string unit hoff hlen2)))))
      (setf (%rq-close req) t)
      (respond-error req status)
      (%request-done req))))

(defun stream-upload-p (unit vhost)
  "Returns the boundary when the body announced by the :head UNIT is to be streamed to files:
multipart/form-data for a vhost with handlers."
  (and vhost (not (eq (vhost-mode vhost) :static))
       (multipart-boundary (ev-unit-header-base unit (load-time-value (base "content-type"))))))

(defun handle-upload (ev unit)
  "A :request unit whose multipart body went to a scanner: an answer for a body the scanner
refused, else the request as usual with request-multipart giving the scanner; its files are
removed when the request is done."
  (multiple-value-bind (mp errno) (ev-unit-multipart unit)
    (unwind-protect
         (if (zerop errno)
             (let ((*multipart* mp)) (handle-request ev unit))
             (let ((status (upload-error-status errno)))
               (log-warn "upload from ~a refused (~d): ~a" (ev-unit-peer unit) status
                         (strerror errno))
               (refuse-request ev unit status)))
      (multipart-free mp :unlink t))))
