;;;; request.lisp — the request object handlers see: a thin struct over the C loop's unit;
;;;; headers, body and peer are read from the unit's offsets only when asked for.

(in-package :crow.http)

;;; The hot path: checked arguments, but inlined structure access.
(declaim (optimize (speed 3) (safety 1) (debug 0)))

(defstruct (request (:constructor %make-request)
                    (:constructor %new-request (ev unit conn method target version keep-alive
                                                head-length body-length host)))
  "One HTTP request, valid during the handler call only (its bytes live in the C loop's
buffer until the response finishes the unit)."
  ev unit (conn 0)
  (method :get) (target "") (path "/") (query-string nil)
  (version 11) (keep-alive t) (head-length 0) (body-length 0)
  (host nil) (vhost nil) (%peer nil) (%headers :unread) (%body :unread)
  (plist '())
  (out-headers '())                     ; (name . value) queued by add-response-header
  (responded nil)                       ; T once the final bytes went out
  (status 0) (sent 0)                   ; for the access log
  (close nil)                           ; close after the response whatever the client said
  (%parts nil)                          ; the worker's reused 4-piece response vector
  (%one nil))                           ; the worker's reused one-chunk body list

(define-slot-readers request %rq ev unit conn method target path query-string version
  keep-alive head-length body-length host vhost %peer %headers %body plist out-headers
  responded status sent close %parts %one)

(let ((r (%make-request :ev 'ev :unit 'unit :conn 3 :method :m :target "t" :path "p"
                        :query-string "q" :version 10 :keep-alive :k :head-length 7
                        :body-length 8 :host "h" :vhost :v :%peer "pe" :plist '(:p)
                        :out-headers '(:o) :responded :r :status 204 :sent 9 :close :c
                        :%parts :pa :%one :on)))
  (unless (check-%rq-readers r)
    (error "crow.http: the request slot readers do not match the struct")))

(defun-inline worker-request (ev unit conn method target version keep-alive head-length
                              body-length host)
  "Returns the calling worker's request object, reset for a new request.  It is kept in the
worker's UNIT (ev-unit-data): a request is valid during the handler call only, so one per
worker serves all its requests."
  (let ((req (ev-unit-data unit)))
    (if (ffi:c-inline (req (load-time-value (find-class 'request) t)) (:object :object) :bool
                      "ECL_INSTANCEP(#0) && (#0)->instance.clas == #1" :one-liner t :side-effects nil)
        (progn
          (setf (%rq-ev req) ev (%rq-conn req) conn (%rq-method req) method
                (%rq-target req) target (%rq-path req) "/" (%rq-query-string req) nil
                (%rq-version req) version (%rq-keep-alive req) keep-alive
                (%rq-head-length req) head-length (%rq-body-length req) body-length
                (%rq-host req) host (%rq-vhost req) nil (%rq-%peer req) nil
                (%rq-%headers req) :unread (%rq-%body req) :unread (%rq-plist req) '()
                (%rq-out-headers req) '() (%rq-responded req) nil (%rq-status req) 0
                (%rq-sent req) 0 (%rq-close req) nil)
          req)
        (setf (ev-unit-data unit)
              (%new-request ev unit conn method target version keep-alive head-length
                            body-length host)))))

(defun find-worker-request (unit)
  "Returns the request object of the worker whose unit buffer is UNIT, or NIL."
  (let ((r (ev-unit-data unit)))
    (and (request-p r) r)))

(defun request-header (req name)
  "Returns the value of REQ's first header field NAME (a string, case-insensitive) as a
string, or NIL."
  (ev-unit-header (request-unit req) name))

(defun request-headers (req)
  "Returns REQ's header fields as an alist ((\"name\" . \"value\") ...) in the order received."
  (let ((h (request-%headers req)))
    (if (eq h :unread)
        (setf (request-%headers req) (ev-unit-headers (request-unit req)))
        h)))

(defun request-content-type (req)
  "Returns REQ's Content-Type value or NIL."
  (request-header req "content-type"))

(defun request-body (req)
  "Returns REQ's body (de-chunked) as an octet vector, or NIL when it has none."
  (let ((b (request-%body req)))
    (if (eq b :unread)
        (setf (request-%body req)
              (let ((n (request-body-length req)) (h (request-head-length req)))
                (and (plusp n) (values (ev-unit-octets (request-unit req) nil h (+ h n))))))
        b)))

(defun request-raw-head (req)
  "Returns the request head (request line, fields, blank line) as received, as octets."
  (values (ev-unit-octets (request-unit req) nil 0 (request-head-length req))))

(defun request-peer (req)
  "Returns the client's address as \"1.2.3.4:5\" or \"[::1]:5\"."
  (or (request-%peer req)
      (setf (request-%peer req) (ev-unit-peer (request-unit req)))))

(defun request-peer-host (req)
  "Returns the client's address without the port (for the access log)."
  (let* ((p (request-peer req))
         (c (position #\: p :from-end t)))
    (cond ((null c) p)
          ((char= (char p 0) #\[) (subseq p 1 (max 1 (1- c))))
          (t (subseq p 0 c)))))

;;; Targets

(defun %hex (ch)
  (digit-char-p ch 16))

(defun percent-decode (string start end &key path)
  "Returns STRING[START,END) percent-decoded and UTF-8 decoded, or NIL when it is malformed:
a bad %-escape, invalid UTF-8, a NUL byte, or (with PATH) an encoded slash `%2F`, which
would let one segment pose as two."
  (if (and (null (position #\% string :start start :end end))
           (loop for i from start below end always (< 0 (char-code (char string i)) 128)))
      (if (and (= start 0) (= end (length string))) string (subseq string start end))
      (let ((out (make-array (- end start) :element-type '(unsigned-byte 8) :fill-pointer 0))
            (i start))
        (loop while (< i end)
              do (let ((c (char string i)))
                   (cond ((char= c #\%)
                          (let ((hi (and (< (+ i 2) end) (%hex (char string (+ i 1)))))
                                (lo (and (< (+ i 2) end) (%hex (char string (+ i 2))))))
                            (unless (and hi lo) (return-from percent-decode nil))
                            (let ((b (+ (* hi 16) lo)))
                              (when (or (zerop b) (and path (= b 47)))
                                (return-from percent-decode nil))
                              (vector-push b out))
                            (incf i 3)))
                         ((or (zerop (char-code c)) (> (char-code c) 255))
                          (return-from percent-decode nil))
                         (t (vector-push (char-code c) out) (incf i)))))
        (let ((octets (coerce out 'octets)))
          (handler-case (utf8-decode octets :errors :error)
            (error () nil))))))

(defun split-target (target)
  "Returns (values PATH QUERY AUTHORITY) of a request TARGET: origin-form /p?q, absolute-form
http://host/p?q (AUTHORITY then the host), or asterisk-form *.  PATH is NIL when the target
is malformed (bad escapes, NUL, encoded slash, not starting with /)."
  (let* ((n (length target))
         (q (position #\? target))
         (pend (or q n))
         (query (and q (subseq target (1+ q))))
         (start 0) (authority nil))
    (when (and (> n 7) (or (string-equal "http://" target :end2 7)
                           (and (> n 8) (string-equal "https://" target :end2 8))))
      (let* ((a (+ (position #\/ target) 2))
             (slash (or (position #\/ target :start a :end pend) pend)))
        (setf authority (subseq target a slash) start slash)
        (when (= start pend)
          (return-from split-target (values "/" query authority)))))
    (cond ((string= target "*") (values "*" nil nil))
          ((or (>= start pend) (char/= (char target start) #\/)) (values nil query authority))
          (t (values (percent-decode target start pend :path t) query authority)))))

(defun path-segments-safe-p (path)
  "Returns true when no segment of PATH (decoded) is `.` or `..`, so it cannot climb out of a
root however the file system resolves it."
  (let ((start 0) (n (length path)))
    (loop
      (let* ((slash (position #\/ path :start start))
             (end (or slash n))
             (len (- end start)))
        (when (or (and (= len 1) (char= (char path start) #\.))
                  (and (= len 2) (char= (char path start) #\.) (char= (char path (1+ start)) #\.)))
          (return nil))
        (unless slash (return t))
        (setf start (1+ slash))))))

(declaim (optimize (speed 3) (safety 2) (debug 0)))
