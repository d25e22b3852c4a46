;;;; server.lisp — crow-httpd: the per-request decisions (HTTP/1.0 and 1.1 rules, vhost,
;;;; route or file, errors), the configuration and the program's entry point.

(in-package :crow.http)

(declaim (optimize (speed 3) (safety 1) (debug 0)))

(defvar *max-headers* 64 "Header fields allowed in a request head (431 beyond).")
(defvar *allow-static* "GET, HEAD, OPTIONS")
(defvar *max-post* (* 4 1024 1024) "The largest post-max over the vhosts (the C loop's limit).")

;;; Framing errors (the C loop could not make a request of the input: it closes after this)

(defun %request-line-shape (octets n)
  "Returns :version when OCTETS[0,N) starts with a well-formed request line whose version is
not HTTP/1.0 or 1.1 (answer 505), :unfinished when no line end occurs in it, else NIL."
  (let ((lf (position 10 octets :end n)))
    (if (null lf)
        :unfinished
        (let* ((line (map 'string #'code-char (subseq octets 0 (if (and (plusp lf) (= 13 (aref octets (1- lf)))) (1- lf) lf))))
               (sp1 (position #\Space line))
               (sp2 (and sp1 (position #\Space line :start (1+ sp1))))
               (v (and sp2 (subseq line (1+ sp2)))))
          (when (and sp1 sp2 (> sp1 0) (> sp2 (1+ sp1)) (= (length v) 8) (string= "HTTP/" v :end2 5)
                     (digit-char-p (char v 5)) (char= (char v 6) #\.) (digit-char-p (char v 7))
                     (not (member v '("HTTP/1.0" "HTTP/1.1") :test #'string=)))
            :version)))))

(defun raw-error (ev conn status)
  "Writes a small error response for STATUS and closes CONN after it."
  (let ((body (error-page status)))
    (ev-reply ev conn (vector (status-line status) (http-date ev) +ct+ (base "text/html; charset=utf-8")
                              +cl+ (digits (length body)) +crlf+ +conn-close+ +crlf+ body)
              :close t)))

(defun framing-error (ev unit kind)
  (case kind
    ;; a body refused after a well-formed head: answered (and logged) as a request
    ((:too-large :bad) (if (plusp (nth-value 4 (ev-unit-http unit)))
                           (refuse-request ev unit (if (eq kind :bad) 400 413))
                           (framing-error-head ev unit kind)))
    (t (framing-error-head ev unit kind))))

(defun framing-error-head (ev unit kind)
  (let ((conn (ev-unit-conn unit)))
    (case kind
      (:too-large (raw-error ev conn 413))
      (:too-long
       (multiple-value-bind (buf n) (ev-unit-octets unit)
         (raw-error ev conn (if (eq (%request-line-shape buf n) :unfinished) 414 431))))
      (:bad
       (multiple-value-bind (buf n) (ev-unit-octets unit)
         (raw-error ev conn (if (eq (%request-line-shape buf n) :version) 505 400))))
      (t (ev-done ev conn)))))

;;; Requests

(defmacro %fixnums ((&rest vars) &body body)
  "BODY with each of VARS rebound to its value as a fixnum, trusted (THE), unchecked."
  `(let ,(loop for v in vars collect `(,v (the fixnum ,v)))
     (declare (fixnum ,@vars))
     ,@body))

(defvar *last-strings* (vector nil nil)
  "#(TARGET HOST) of the last request: the next one with the same bytes gets these very strings
instead of fresh ones (request strings are shared between requests, so never modified).")
(declaim (simple-vector *last-strings*))

;; called once per request from handle-request only: compiled into it (no full calls)
(declaim (inline call-route dispatch))
(defun call-route (req route)
  (let ((methods (%rt-methods route)))
    (if (and methods (not (member (%rq-method req) methods)))
        (respond-error req 405 :headers (list (cons "Allow" (format nil "~{~a~^, ~}" methods))))
        (let ((sym (%rt-symbol route)))
          (let ((f (if (symbolp sym) (fast-symbol-function sym) sym)))
            (fast-funcall f req))
          (unless (%rq-responded req)
            (log-warn "~a ~a: handler ~s returned without answering" (%rq-method req)
                      (%rq-target req) sym)
            (respond-error req 500))))))

(defun dispatch (req vhost path)
  "Answers REQ for PATH in VHOST: a route, else a file (by the vhost's mode), else 404/405."
  (let* ((mode (%vh-mode vhost))
         (route (and (not (eq mode :static)) (find-route* vhost path))))
    (cond (route (call-route req route))
          ((eq mode :dynamic) (respond-error req 404))
          ((member (%rq-method req) '(:get :head)) (serve-static req vhost path))
          ((eq (%rq-method req) :options)
           (send-response req 204 nil '() (list (cons "Allow" *allow-static*))))
          (t (respond-error req 405 :headers (list (cons "Allow" *allow-static*)))))))

(declaim (inline %request-done))        ; once per request, in handle-request
(defun %request-done (req)
  (unless (%rq-responded req) (ev-done (%rq-ev req) (%rq-conn req) :close t))
  (when *access-log* (log-access req)))

(defun handle-request (ev unit)
  (multiple-value-bind (mcode version keep chunked clen hlen blen toff tlen hoff hlen2 hcount
                        clcount nheaders plen plain hname)
      (ev-unit-request unit)
    (declare (ignore chunked clen))
    ;; fixnums by the C block's types: rebound with THE (fixnum declarations on the
    ;; multiple-value-bind itself make a call of ecl_to_fixnum per value)
    (%fixnums (mcode version hlen blen toff tlen hoff hlen2 hcount clcount nheaders plen hname)
    (let* ((seen *last-strings*)
           (target (ev-unit-string-reusing unit toff tlen (svref seen 0)))
           (host (and (>= hoff 0) (ev-unit-string-reusing unit hoff hlen2 (svref seen 1))))
           (req (worker-request ev unit (ev-unit-conn unit)
                              (if (>= mcode 0) (svref *http-methods* mcode) :other)
                              target version keep hlen blen host)))
      (unless (and (eq target (svref seen 0)) (eq host (svref seen 1)))
        (setf *last-strings* (vector target host)))
      ;; No handler-case here: an error goes to crow.server's (set up once per worker, not
      ;; per request), which calls handle-error for this unit.
      (multiple-value-bind (path query authority)
          (if plain
              (if (= plen tlen)
                  (values target nil nil)
                  (values (subseq target 0 plen) (subseq target (1+ plen)) nil))
              (split-target target))
        (setf (%rq-query-string req) query)
        (when authority (setf (%rq-host req) authority))
        (let ((vhost (if (or authority (null host) (< hname 1))
                         (find-vhost (%rq-host req))
                         (find-vhost-name* host hname))))
          (setf (%rq-vhost req) vhost)
          (cond ((or (> hcount 1) (and (= version 11) (zerop hcount)) (> clcount 1))
                 (setf (%rq-close req) t)
                 (respond-error req 400))
                ((> nheaders (the fixnum *max-headers*))
                 (setf (%rq-close req) t)
                 (respond-error req 431))
                ((or (< mcode 0) (= mcode 7) (= mcode 8)) ; another token, TRACE, CONNECT
                 (respond-error req 501))
                ((or (null path) (and (not plain) (not (path-segments-safe-p path))))
                 (setf (%rq-close req) t)
                 (respond-error req 400))
                ((null vhost) (respond-error req 404))
                ((> blen (the fixnum (%vh-post-max vhost)))
                 (setf (%rq-close req) t)
                 (respond-error req 413))
                (t (setf (%rq-path req) path)
                   (dispatch req vhost path)))))
      (%request-done req)))))

(defun handle-error (ev unit kind e)
  "crow.server's on-error for the workers: a handler signalled E while answering UNIT.  A
request not yet answered gets a 500 (and the connection closes after it); one whose answer
had begun is cut off.  Either way it is logged (and access-logged)."
  (let ((req (and (eq kind :request) (find-worker-request unit))))
    (if (and req (eql (%rq-conn req) (ev-unit-conn unit)))
        (progn
          (log-warn "~a ~a: ~a" (%rq-method req) (%rq-target req) e)
          (if (%rq-responded req)
              (ev-close ev (%rq-conn req))
              (progn (setf (%rq-close req) t)
                     (ignore-errors (respond-error req 500))))
          (%request-done req))
        (progn (log-warn "~(~a~) unit: ~a" kind e)
               (ev-close ev (ev-unit-conn unit))))))

(defun handle-head (ev unit)
  "A head announcing a body the C loop has not read (Expect: 100-continue, chunked, or longer
than *stream-uploads-over*): the request's vhost decides its limit before any 100 Continue
goes out — ev-continue with its post-max (a multipart/form-data body to a vhost with handlers:
ev-continue-multipart, to temporary files as it arrives), or 413 and a close."
  (multiple-value-bind (mcode version keep chunked clen hlen blen toff tlen hoff hlen2 hcount)
      (ev-unit-request unit)
    (declare (ignore mcode version keep hlen blen toff tlen hcount))
    (let* ((conn (ev-unit-conn unit))
           (host (and (>= hoff 0) (ev-unit-string unit hoff hlen2)))
           (vhost (find-vhost host))
           (limit (if vhost (%vh-post-max vhost) (the fixnum *max-post*)))
           (boundary (stream-upload-p unit vhost)))
      (cond ((not (or chunked (<= clen limit))) (refuse-request ev unit 413))
            ;; multipart/form-data: to temporary files while it arrives (upload.lisp)
            (boundary (ev-continue-multipart ev conn limit (make-upload-scanner boundary limit)))
            (t (ev-continue ev conn limit))))))

(defun handle (ev unit kind)
  "The event workers' handler: one call per unit the C loop frames."
  (case kind
    (:request (if (ev-unit-sink-p unit) (handle-upload ev unit) (handle-request ev unit)))
    (:head (handle-head ev unit))
    (t (framing-error ev unit kind))))

(declaim (optimize (speed 3) (safety 2) (debug 0)))
