;;;; pop3.lisp — mmpop3d's conversation (RFC 1939; CAPA, RESP-CODES 2449; STLS 2595): USER/PASS
;;;; against the store's crypt(3) hashes, one session per mailbox at a time (a PostgreSQL
;;;; advisory lock held by the session's connection, so it holds across processes), deletions
;;;; only in the UPDATE state (QUIT), RETR returning the stored bytes exactly (byte-stuffed by
;;;; c-core/maildata).

(in-package :crow.mail)

(defstruct (pop3 (:constructor make-pop3 (session config)))
  session config
  user                                  ; USER argument, waiting for PASS
  (failures 0)
  conn mailbox                          ; TRANSACTION state: the locked mailbox
  account                               ; its USER@DOMAIN (statistics keys)
  (messages #())                        ; vector of (id size uidl file), numbered from 1
  (deleted nil))                        ; bit vector

(defun %pcfg (p key) (declare (ignore p)) (settings-value key))

(defun pok (p fmt &rest args)
  (session-write (pop3-session p) (format nil "+OK ~?~c~c" fmt args #\Return #\Newline)))

(defun perr (p fmt &rest args)
  (session-write (pop3-session p) (format nil "-ERR ~?~c~c" fmt args #\Return #\Newline)))

(defun verify-password (password hash)
  "True when PASSWORD matches the crypt(3) HASH.  Can't fail."
  (and (plusp (length hash)) (crypt-verify password hash)))

(defun parse-login (p login)
  "Returns (values DOMAIN USER MAILBOX) of LOGIN: user[+mailbox][@domain]."
  (multiple-value-bind (local domain) (split-address login)
    (let* ((local (or local login))
           (domain (or domain (ignore-errors (%pcfg p :default-domain)) ""))
           (plus (position #\+ local)))
      (values domain (string-downcase (subseq local 0 plus))
              (if plus (subseq local (1+ plus)) "INBOX")))))

(defun pop3-login (p password)
  "Checks USER/PASS; on success locks the mailbox and loads its messages.  Returns true, or
NIL after answering -ERR."
  (multiple-value-bind (domain user box) (parse-login p (pop3-user p))
    (let ((conn (acquire-connection *store*)) (done nil))
      (unwind-protect
           (let ((row (first (pq-exec conn "SELECT u.password_hash, m.id FROM domains d
                 JOIN users u ON u.domain_id = d.id JOIN mailboxes m ON m.user_id = u.id
                 WHERE d.name = lower($1) AND u.name = $2 AND m.name = $3 AND u.active"
                                      domain user box))))
             (cond ((or (null row) (not (verify-password password (svref row 0))))
                    nil)
                   ((not (equal (pq-value conn "SELECT pg_try_advisory_lock(7401, $1::int)"
                                          (svref row 1))
                                "t"))
                    (perr p "[IN-USE] Mailbox locked by another session")
                    :locked)
                   (t
                    (let ((id (parse-integer (svref row 1))))
                      (setf (pop3-conn p) conn (pop3-mailbox p) id
                            (pop3-account p) (format nil "~a@~(~a~)" user domain)
                            (pop3-messages p) (coerce (mailbox-messages conn id) 'simple-vector)
                            (pop3-deleted p) (make-array (length (pop3-messages p))
                                                         :element-type 'bit :initial-element 0)
                            done t))
                    t)))
        (unless done (release-connection *store* conn))))))

(defun pop3-unlock (p)
  (let ((conn (pop3-conn p)))
    (when conn
      (setf (pop3-conn p) nil)
      (let ((ok (ignore-errors (pq-exec conn "SELECT pg_advisory_unlock(7401, $1::int)"
                                        (pop3-mailbox p))
                               t)))
        (release-connection *store* conn :broken (not ok))))))

(defun serve-pop3 (session)
  "Serves one POP3 connection SESSION (AUTHORIZATION, TRANSACTION, UPDATE states)."
  (let ((p (make-pop3 session *config*)))
    (unwind-protect
         (progn
           (pok p "~a POP3 mmpop3d ready" (%pcfg p :hostname))
           (loop
             (let ((line (session-read-line session)))
               (cond ((member line '(:too-long :bad)) (perr p "Bad command line"))
                     ((eq (pop3-command p line) :quit) (return))))))
      (pop3-unlock p))))

(defun %msg (p arg)
  "Returns the message numbered ARG (not deleted) as (values ENTRY INDEX), or NIL after -ERR."
  (let ((n (and (plusp (length arg)) (every #'digit-char-p arg) (< (length arg) 10)
                (parse-integer arg))))
    (cond ((or (null n) (< n 1) (> n (length (pop3-messages p))))
           (perr p "No such message") nil)
          ((= 1 (bit (pop3-deleted p) (1- n))) (perr p "Message ~d already deleted" n) nil)
          (t (values (svref (pop3-messages p) (1- n)) (1- n))))))

(defun %live (p)
  (loop for m across (pop3-messages p) for i from 0
        when (zerop (bit (pop3-deleted p) i)) collect (cons (1+ i) m)))

(defun pop3-command (p line)
  (let* ((words (split-words line))
         (verb (string-upcase (or (first words) "")))
         (args (rest words))
         (session (pop3-session p)))
    (flet ((arg (i) (or (nth i args) "")))
      (cond
        ((string= verb "QUIT")
         (if (pop3-conn p)
             (let ((ids (loop for m across (pop3-messages p) for i from 0
                              when (= 1 (bit (pop3-deleted p) i)) collect (first m))))
               (handler-case
                   (progn (delete-messages *store* (pop3-conn p) ids)
                          (pok p "~a signing off (~d deleted)" (%pcfg p :hostname) (length ids))
                          (when ids
                            (count-event (format nil "mmpop3d|deleted|~a" (pop3-account p))
                                         (length ids))))
                 (pq-error (e) (log-warn "pop3: update: ~a" e)
                   (perr p "Some deleted messages not removed"))))
             (pok p "~a signing off" (%pcfg p :hostname)))
         :quit)
        ((string= verb "CAPA")
         (session-write session
                        (format nil "+OK Capability list follows~c~c~{~a~c~c~}.~c~c"
                                #\Return #\Newline
                                (loop for c in (append (list "USER" "TOP" "UIDL" "RESP-CODES"
                                                             "PIPELINING"
                                                             "IMPLEMENTATION mmpop3d")
                                                       (and *tls* (not (session-tls-p session))
                                                            (list "STLS")))
                                      append (list c #\Return #\Newline))
                                #\Return #\Newline)))
        ((string= verb "NOOP") (pok p ""))
        ((null (pop3-conn p)) (pop3-authorization p verb args))
        ((string= verb "STAT")
         (let ((live (%live p)))
           (pok p "~d ~d" (length live) (reduce #'+ live :key #'third))))
        ((string= verb "LIST")
         (if args
             (let ((m (%msg p (arg 0)))) (when m (pok p "~a ~d" (arg 0) (second m))))
             (session-write session
                            (with-output-to-string (o)
                              (format o "+OK scan listing follows~c~c" #\Return #\Newline)
                              (loop for (n nil size) in (%live p)
                                    do (format o "~d ~d~c~c" n size #\Return #\Newline))
                              (format o ".~c~c" #\Return #\Newline)))))
        ((string= verb "UIDL")
         (if args
             (let ((m (%msg p (arg 0)))) (when m (pok p "~a ~a" (arg 0) (third m))))
             (session-write session
                            (with-output-to-string (o)
                              (format o "+OK unique-id listing follows~c~c" #\Return #\Newline)
                              (loop for (n nil nil uidl) in (%live p)
                                    do (format o "~d ~a~c~c" n uidl #\Return #\Newline))
                              (format o ".~c~c" #\Return #\Newline)))))
        ((or (string= verb "RETR") (string= verb "TOP"))
         (let ((m (%msg p (arg 0)))
               (lines (if (string= verb "TOP")
                          (let ((a (arg 1)))
                            (and (plusp (length a)) (every #'digit-char-p a) (< (length a) 10)
                                 (parse-integer a)))
                          -1)))
           (cond ((null m))
                 ((null lines) (perr p "Syntax: TOP msg n"))
                 ((and (eql lines -1) (fifth m))
                  (when (pop3-send-plain p m) (count-retrieved p (second m))))
                 (t (let ((data (handler-case (read-file-octets (spool-path *store* (fourth m)))
                                  (unix-error (e) (log-warn "pop3: ~a" e) nil))))
                      (if data
                          (progn
                            (session-write session
                                           (format nil "+OK ~d octets~c~c" (length data) #\Return #\Newline)
                                           (maildata-pop3 data lines))
                            (when (eql lines -1) (count-retrieved p (second m))))
                          (perr p "[SYS/TEMP] Message unreadable")))))))
        ((string= verb "DELE")
         (multiple-value-bind (m i) (%msg p (arg 0))
           (when m
             (setf (bit (pop3-deleted p) i) 1)
             (pok p "Message ~a deleted" (arg 0)))))
        ((string= verb "RSET")
         (fill (pop3-deleted p) 0)
         (pok p "~d messages" (length (pop3-messages p))))
        (t (perr p "Unknown command in TRANSACTION state"))))))

(defparameter +dot-crlf+ (coerce (format nil ".~c~c" #\Return #\Newline) 'simple-base-string))

(defun count-retrieved (p size)
  "Counts one message of SIZE bytes retrieved (RETR) by P's account."
  (count-event (format nil "mmpop3d|retrieved|~a" (pop3-account p)))
  (count-event (format nil "mmpop3d|retrieved-bytes|~a" (pop3-account p)) size))

(defun pop3-send-plain (p m)
  "RETR of a message stored plain (no line starts with \".\", ends with CRLF): the file goes
out as it is, by sendfile, between the +OK line and the terminating dot.  Returns true once
sent, NIL after -ERR."
  (let* ((session (pop3-session p))
         (fd (handler-case (open-fd (spool-path *store* (fourth m)))
               (unix-error (e) (log-warn "pop3: ~a" e) nil))))
    (if (null fd)
        (perr p "[SYS/TEMP] Message unreadable")
        (unwind-protect
             (let ((size (stat-size (fstat fd))))
               (session-write session (format nil "+OK ~d octets~c~c" size #\Return #\Newline))
               (let ((sent (session-sendfile session fd 0 size)))
                 (when (< sent size)
                   ;; the file shrank under us: the response cannot be completed honestly
                   (error 'simple-crow-error :format-control "pop3: ~a: short file"
                                             :format-arguments (list (fourth m)))))
               (session-write session +dot-crlf+)
               t)
          (close-fd fd)))))

(defun pop3-authorization (p verb args)
  (let ((session (pop3-session p)))
    (cond
      ((string= verb "STLS")
       (cond ((or (null *tls*) (session-tls-p session)) (perr p "STLS not available"))
             (t (pok p "Begin TLS negotiation")
                (let ((dropped (session-starttls session *tls*)))
                  (when (plusp dropped)
                    (log-info "pop3 ~a: ~d plaintext byte~:p after STLS discarded"
                              (session-peer session) dropped)))
                (setf (pop3-user p) nil))))
      ((and (member verb '("USER" "PASS") :test #'string=)
            (not (%pcfg p :plaintext-login)) (not (session-tls-p session)))
       (perr p "[AUTH] Plaintext login needs STLS first"))
      ((string= verb "USER")
       (if (= 1 (length args))
           (progn (setf (pop3-user p) (%bytes->string (first args))) (pok p "send PASS"))
           (perr p "Syntax: USER name")))
      ((string= verb "PASS")
       (if (null (pop3-user p))
           (perr p "USER first")
           ;; The password is the rest of the line (it may contain spaces).
           (let* ((password (%bytes->string (format nil "~{~a~^ ~}" args)))
                  (r (handler-case (pop3-login p password)
                       (pq-error (e) (log-warn "pop3: login: ~a" e)
                         (perr p "[SYS/TEMP] Temporary failure") :error))))
             (cond ((eq r t)
                    (pok p "~d messages" (length (pop3-messages p)))
                    (count-event (format nil "mmpop3d|logins|~a" (pop3-account p))))
                   ((member r '(:locked :error)) (setf (pop3-user p) nil))
                   (t (setf (pop3-user p) nil)
                      (incf (pop3-failures p))
                      (log-info "pop3 ~a: failed login" (session-peer session))
                      (sleep (/ (%pcfg p :login-delay) 1000.0))
                      (perr p "[AUTH] Invalid login")
                      (count-event (format nil "mmpop3d|failed-logins|~a"
                                           (or (session-peer session) "unknown")))
                      (when (>= (pop3-failures p) (%pcfg p :max-login-failures))
                        (return-from pop3-authorization :quit)))))))
      ((member verb '("STAT" "LIST" "RETR" "DELE" "TOP" "UIDL" "RSET") :test #'string=)
       (perr p "Not logged in"))
      (t (perr p "Unknown command")))))
