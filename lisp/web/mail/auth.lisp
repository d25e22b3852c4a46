;;;; auth.lisp — who is asking: the app's own signed session (cookie crow-mail, Path /mail),
;;;; CSRF tokens tied to it, logging in against users.password_hash (crypt(3)) and out.
;;;;
;;;; The CSRF token of a session is HMAC-SHA-256(session key, "csrf:" id): nothing to store,
;;;; it changes with the session (a login starts a new one), and a page of another site can
;;;; neither read it nor compute it.  Every POST carries it in the field `csrf`; a request
;;;; without a session or with a wrong token is refused with 403 before any change.

(in-package :crow.mailweb)

(defstruct (ctx (:constructor make-ctx (req session)))
  "The request being answered: REQ, its SESSION (a crow.web web-session or NIL), and the
page's ERRORS (an alist FIELD -> message), VALUES (the submitted form, FIELD -> string) and
LABELS (FIELD -> its label, for the error summary)."
  req session (errors '()) (values '()) (labels '()))

(defvar *ctx* nil "The ctx of the request this thread answers.")

(defun %session-path () *mount*)

(defun current-session (req &key create)
  "Returns REQ's mail-app session (creating one, with its cookie, when CREATE), or NIL."
  (let ((*session-cookie* *cookie*))
    (if create
        (ensure-session req :path (%session-path))
        (or (getf (request-plist req) :web-session) (find-session req)))))

(defun %csrf-key ()
  (or *session-secret* (error "crow.mailweb: no session key yet")))

(defun csrf-token (session)
  "Returns SESSION's CSRF token (64 hex digits).  Can't fail once a session exists."
  (octets-to-hex (hmac-sha256 (%csrf-key) (concatenate 'string "csrf:" (web-session-id session)))))

(defun csrf-valid-p (session token)
  "True when TOKEN (a string or NIL) is SESSION's CSRF token; compared in constant time."
  (and session (stringp token) (= (length token) 64)
       (every (lambda (c) (< (char-code c) 128)) token)
       (constant-time-equal (map 'octets #'char-code token)
                            (map 'octets #'char-code (csrf-token session)))))

(defun ctx-csrf ()
  "The CSRF token for forms on the page being made (a session is made if there is none)."
  (csrf-token (or (ctx-session *ctx*)
                  (setf (ctx-session *ctx*) (current-session (ctx-req *ctx*) :create t)))))

(defun session-user (&optional (ctx *ctx*))
  "Returns the logged-in user of CTX's session as a plist (:id :name :domain :admin), or NIL."
  (let ((s (ctx-session ctx)))
    (and s (session-value s :user))))

(defun user-login (user)
  "Returns USER's address, name@domain."
  (format nil "~a@~a" (getf user :name) (getf user :domain)))

(defun admin-p (&optional (ctx *ctx*))
  (getf (session-user ctx) :admin))

;;; Logging in

(defparameter +dummy-hash+
  "$6$crowmailwebdumm$cpAno9MahDvx9O0NChffnztUs43c8JC8uJ.qnMZn.9rxqPPplSbwS.QkHb/S7J5p2AqoyZ.slxJ8ioo4GCw2g/"
  "Checked when the user is unknown, so an unknown name costs the time a wrong password does.")

(defun split-login (login)
  "Returns (values NAME DOMAIN-OR-NIL) of LOGIN, name or name@domain, lowercased."
  (let* ((l (string-downcase login))
         (at (position #\@ l :from-end t)))
    (if at (values (subseq l 0 at) (subseq l (1+ at))) (values l nil))))

(defun authenticate (login password)
  "Returns (values USER NIL) for the active user LOGIN (name@domain, or a name only one domain
has) whose password hash matches PASSWORD, else (values NIL MESSAGE).  Signals db-error."
  (multiple-value-bind (name domain) (split-login login)
    (let* ((rows (query "SELECT u.id, u.name, d.name, u.password_hash, u.is_admin
                           FROM users u JOIN domains d ON d.id = u.domain_id
                          WHERE u.active AND u.name = $1 AND ($2::text IS NULL OR d.name = $2)
                          ORDER BY u.id LIMIT 2"
                        name domain))
           (row (and (= (length rows) 1) (first rows))))
      (cond ((and (> (length rows) 1) (null domain))
             (values nil "Several domains have a user of that name: log in as name@domain."))
            ((crypt-verify password (if row (fourth row) +dummy-hash+))
             (if row
                 (values (list :id (parse-integer (first row)) :name (second row) :domain (third row)
                               :admin (db-true-p (fifth row)))
                         nil)
                 (values nil "Unknown user or wrong password.")))
            (t (values nil "Unknown user or wrong password."))))))

(defun start-user-session (req user)
  "Replaces REQ's session by a new one (a login never keeps a session id an attacker may have
planted) holding USER.  Returns the new session."
  (let ((*session-cookie* *cookie*))
    (let ((old (current-session req)))
      (when old (end-session req :path (%session-path))))
    (setf (getf (request-plist req) :web-session) nil)
    (let ((s (ensure-session req :path (%session-path))))
      (setf (session-value s :user) user)
      s)))

(defun end-user-session (req)
  "Logs REQ's session out.  Returns NIL."
  (let ((*session-cookie* *cookie*))
    (end-session req :path (%session-path))))

;;; Failed logins per client address: guessing passwords costs a window of waiting.  Kept in
;;; this process (like the sessions); an answer of 429 does not sleep in the worker thread.

(defvar *failures* (make-hash-table :test 'equal) "Address -> (COUNT . WINDOW-START).")
(defvar *failures-lock* (mp:make-lock :name "crow.mailweb login failures"))

(defun client-address (req)
  "REQ's client address without the port."
  (let* ((peer (request-peer req))
         (colon (position #\: peer :from-end t)))
    (if colon (subseq peer 0 colon) peer)))

(defun login-blocked-p (address)
  "True when ADDRESS used up its failed logins for the current window."
  (let ((now (unix-time)))
    (mp:with-lock (*failures-lock*)
      (let ((f (gethash address *failures*)))
        (cond ((null f) nil)
              ((> now (+ (cdr f) *login-failure-window*)) (remhash address *failures*) nil)
              (t (>= (car f) *login-failures-allowed*)))))))

(defun note-login-failure (address)
  "Counts a failed login from ADDRESS.  Returns the count in the current window."
  (let ((now (unix-time)))
    (mp:with-lock (*failures-lock*)
      (when (> (hash-table-count *failures*) 10000)      ; bounded: forget the oldest windows
        (let ((old '()))
          (maphash (lambda (k v) (when (> now (+ (cdr v) *login-failure-window*)) (push k old))) *failures*)
          (dolist (k old) (remhash k *failures*))))
      (let ((f (gethash address *failures*)))
        (if (or (null f) (> now (+ (cdr f) *login-failure-window*)))
            (progn (setf (gethash address *failures*) (cons 1 now)) 1)
            (incf (car f)))))))
