;;;; session.lisp — server-side sessions: data kept in this process, found through a cookie
;;;; holding the session id and its HMAC-SHA-256 signature, expiring after idle time.

(in-package :crow.web)

(defvar *session-cookie* "crow-session" "The name of the session cookie.")
(defvar *session-lifetime* 1800 "Seconds a session lives after its last use.")
(defvar *session-secret* nil
  "The HMAC key that signs session cookies (octets); random per process unless set.")

(defvar *sessions* (make-hash-table :test 'equal) "Session id -> session.")
(defvar *sessions-lock* (mp:make-lock :name "crow.web sessions"))
(defvar *session-sweep* 0 "Unix time of the last sweep of expired sessions.")

(defstruct (web-session (:constructor %make-session (id expires)))
  "One session: ID (32 hex digits), EXPIRES (Unix time), DATA (a plist, session-value).
(Named web-session: crow.unix's session is a connection.)"
  (id "" :type string) (expires 0 :type integer) (data '() :type list))

(defun random-octets (n)
  "Returns N octets from /dev/urandom.  Signals unix-error if it cannot be read."
  (let ((v (make-octets n)))
    (with-fd (fd (open-fd "/dev/urandom"))
      (loop with got = 0 while (< got n)
            do (incf got (read-fd fd v :start got))))
    v))

(defun %secret ()
  (or *session-secret* (setf *session-secret* (random-octets 32))))

(defun %sign (id)
  (octets-to-hex (hmac-sha256 (%secret) id)))

(defun session-cookie-value (session)
  "Returns the cookie value for SESSION: ID.SIGNATURE (hex HMAC-SHA-256 of the id)."
  (concatenate 'string (web-session-id session) "." (%sign (web-session-id session))))

(defun %verify (value)
  "Returns the id in cookie VALUE when its signature is right, else NIL."
  (let ((dot (and value (position #\. value))))
    (when (and dot (= dot 32) (= (length value) (+ 33 64)))
      (let ((id (subseq value 0 dot)))
        (and (constant-time-equal (map 'octets #'char-code (subseq value (1+ dot)))
                                  (map 'octets #'char-code (%sign id)))
             id)))))

(defun %sweep (now)
  (when (> now (+ *session-sweep* 60))
    (setf *session-sweep* now)
    (let ((dead '()))
      (maphash (lambda (id s) (when (< (web-session-expires s) now) (push id dead))) *sessions*)
      (dolist (id dead) (remhash id *sessions*)))))

(defun find-session (req)
  "Returns REQ's live session (its cookie signed and unexpired), extending its life, or NIL."
  (let ((id (%verify (request-cookie req *session-cookie*)))
        (now (unix-time)))
    (when id
      (mp:with-lock (*sessions-lock*)
        (let ((s (gethash id *sessions*)))
          (cond ((null s) nil)
                ((< (web-session-expires s) now) (remhash id *sessions*) nil)
                (t (setf (web-session-expires s) (+ now *session-lifetime*)) s)))))))

(defun ensure-session (req &key (path "/"))
  "Returns REQ's session, creating one (and queueing its Set-Cookie: HttpOnly, SameSite=Lax,
Max-Age the lifetime) when there is none.  Signals unix-error if /dev/urandom fails."
  (or (getf (request-plist req) :web-session)
      (let ((s (or (find-session req)
                   (let* ((now (unix-time))
                          (s (%make-session (octets-to-hex (random-octets 16))
                                            (+ now *session-lifetime*))))
                     (mp:with-lock (*sessions-lock*)
                       (%sweep now)
                       (setf (gethash (web-session-id s) *sessions*) s))
                     (set-cookie req *session-cookie* (session-cookie-value s)
                                 :path path :http-only t :same-site :lax
                                 :max-age *session-lifetime*)
                     s))))
        (setf (request-plist req) (list* :web-session s (request-plist req)))
        s)))

(defun session-value (session key &optional default)
  "Returns the value stored under KEY in SESSION, or DEFAULT."
  (getf (web-session-data session) key default))

(defun (setf session-value) (value session key &optional default)
  (declare (ignore default))
  (setf (getf (web-session-data session) key) value))

(defun end-session (req &key (path "/"))
  "Forgets REQ's session and queues a cookie removing it (PATH as given to ensure-session).
Returns NIL."
  (let ((s (find-session req)))
    (when s
      (mp:with-lock (*sessions-lock*) (remhash (web-session-id s) *sessions*))))
  (setf (getf (request-plist req) :web-session) nil)
  (delete-cookie req *session-cookie* :path path))
