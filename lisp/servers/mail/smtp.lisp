;;;; smtp.lisp — mmsmtpd's conversation (RFC 5321, 5322; PIPELINING 2920, SIZE 1870,
;;;; 8BITMIME 6152, SMTPUTF8 6531, ENHANCEDSTATUSCODES 2034/3463, STARTTLS 3207): a
;;;; non-relaying server that accepts mail only for the store's domains.  One thread runs one
;;;; session (crow.server's session threads); every reply is one write.  The checks, each a
;;;; config key: early talker, unauthorised pipelining, bare CR/LF (every SMTP smuggling
;;;; variant: c-core/frame flags them, the message is refused), HELO syntax and impersonation,
;;;; recipients, size, line and header lengths, hop count, per-address message rate,
;;;; greylisting, header filter rules and the users' envelope filters.

(in-package :crow.mail)

(defstruct (smtp (:constructor make-smtp (session config)))
  session config
  helo (esmtp nil) (pipelining nil)
  (sender nil)                          ; NIL: no MAIL yet; "" the null sender
  (smtputf8 nil)
  (recipients '())                      ; list of rcpt structs, in order
  (errors 0) (info nil))

(defstruct (rcpt (:constructor make-rcpt (address domain mailboxes discard)))
  address domain mailboxes discard)

(defun %cfg (s key)
  "Returns config KEY for session S from the settings read once per serving process."
  (declare (ignore s))
  (settings-value key))

(defun reply (s code text &rest args)
  "Writes one reply line CODE TEXT (a format control with ARGS)."
  (session-write (smtp-session s)
                 (format nil "~d ~?~c~c" code text args #\Return #\Newline)))

(defun reply-lines (s code lines)
  "Writes the multi-line reply CODE with LINES, in one write."
  (session-write (smtp-session s)
                 (with-output-to-string (o)
                   (loop for (l . more) on lines
                         do (format o "~d~:[ ~;-~]~a~c~c" code more l #\Return #\Newline)))))

(defun reject (s reason code text &rest args)
  "Writes the refusal CODE TEXT (with ARGS), then counts mmsmtpd|rejected|REASON."
  (apply #'reply s code text args)
  (count-event (format nil "mmsmtpd|rejected|~a" reason)))

(defun reset-transaction (s)
  (setf (smtp-sender s) nil (smtp-recipients s) '() (smtp-smtputf8 s) nil))

;;; Parsing

(defun %strip-keyword (arg keyword)
  "Returns ARG after KEYWORD (\"FROM:\", case-insensitive) and spaces, or NIL."
  (let ((k (length keyword)))
    (when (and (>= (length arg) k) (string-equal keyword arg :end2 k))
      (string-left-trim " " (subseq arg k)))))

(defun parse-path (text)
  "Parses `<path> params` of MAIL FROM / RCPT TO (after the colon).  Returns (values ADDRESS
PARAMS) — ADDRESS \"\" for <> — or (values :bad) for a syntax error, (values :source-route),
(values :quoted) for a quoted local part.  Can't fail."
  (let ((text (string-left-trim " " text)))
    (if (and (plusp (length text)) (char= (char text 0) #\<))
        (let ((close (position #\> text)))
          (if (null close)
              :bad
              (let ((addr (subseq text 1 close))
                    (params (string-trim " " (subseq text (1+ close)))))
                (cond ((and (plusp (length addr)) (char= (char addr 0) #\@)) :source-route)
                      ((and (plusp (length addr)) (char= (char addr 0) #\")) :quoted)
                      ((find-if (lambda (c) (or (char= c #\Space) (char= c #\<) (char< c #\Space)))
                                addr)
                       :bad)
                      (t (values addr params))))))
        :bad)))

(defun split-address (address)
  "Returns (values LOCAL DOMAIN) of ADDRESS split at its last @ (DOMAIN downcased, a final dot
dropped), or NIL when it has no @ or an empty part."
  (let ((at (position #\@ address :from-end t)))
    (when (and at (plusp at) (< at (1- (length address))))
      (values (subseq address 0 at)
              (string-right-trim "." (string-downcase (subseq address (1+ at))))))))

(defun parse-params (params)
  "Returns the ESMTP PARAMS as an alist of (KEYWORD-STRING-UPCASED . VALUE-or-NIL)."
  (loop for word in (split-words params)
        collect (let ((eq (position #\= word)))
                  (if eq
                      (cons (string-upcase (subseq word 0 eq)) (subseq word (1+ eq)))
                      (cons (string-upcase word) nil)))))

(defun split-words (s)
  (loop with start = 0 and out = '()
        for i from 0 to (length s)
        do (when (or (= i (length s)) (char= (char s i) #\Space))
             (when (> i start) (push (subseq s start i) out))
             (setf start (1+ i)))
        finally (return (nreverse out))))

(defun domain-syntax-p (name)
  "True for a dot-separated domain of letters, digits, hyphens (and UTF-8 bytes, SMTPUTF8), or
an address literal [1.2.3.4] / [IPv6:...]."
  (let ((n (length name)))
    (cond ((zerop n) nil)
          ((char= (char name 0) #\[) (and (> n 2) (char= (char name (1- n)) #\])
                                          (every (lambda (c) (or (alphanumericp c) (find c ".:")))
                                                 (subseq name 1 (1- n)))))
          (t (every (lambda (label)
                      (and (plusp (length label)) (<= (length label) 63)
                           (char/= (char label 0) #\-)
                           (every (lambda (c) (or (alphanumericp c) (char= c #\-) (char= c #\_)
                                                  (> (char-code c) 127)))
                                  label)))
                    (split-sequence-dots (string-right-trim "." name)))))))

(defun split-sequence-dots (s)
  (loop with start = 0 for i from 0 to (length s)
        when (or (= i (length s)) (char= (char s i) #\.))
          collect (prog1 (subseq s start i) (setf start (1+ i)))))

(defun %bytes->string (s)
  "A command line arrives one character per byte: returns it decoded as UTF-8."
  (if (every (lambda (c) (< (char-code c) 128)) s)
      s
      (utf8-decode (map 'octets #'char-code s))))

;;; The session

(defparameter +sync-verbs+ '("EHLO" "HELO" "DATA" "VRFY" "EXPN" "QUIT" "NOOP" "STARTTLS" "AUTH"))

(defun serve-smtp (session)
  "Serves one SMTP connection SESSION until QUIT, a fatal error, or the peer goes."
  (let* ((config *config*)
         (s (make-smtp session config)))
    (when (early-talker-p s)
      (ignore-errors (reply s 554 "5.5.0 ~a: you talked before my greeting" (%cfg s :hostname)))
      (count-event "mmsmtpd|rejected|early-talker")
      (log-info "smtp ~a: early talker refused" (session-peer session))
      (return-from serve-smtp))
    (reply s 220 "~a ESMTP mmsmtpd" (%cfg s :hostname))
    (loop
      (let ((line (session-read-line session)))
        (cond ((eq line :too-long) (reply s 500 "5.5.2 Line too long") (incf (smtp-errors s)))
              ((eq line :bad)
               (reply s 500 "5.5.2 Bare CR or LF in a command is not allowed")
               (incf (smtp-errors s)))
              (t (when (eq (smtp-command s line) :quit) (return)))))
      (when (>= (smtp-errors s) 10)
        (reject s "errors" 421 "4.7.0 ~a Too many errors, closing" (%cfg s :hostname))
        (return)))))

(defun early-talker-p (s)
  "Waits greet-pause; returns true when the client sent something before the banner."
  (let ((pause (%cfg s :greet-pause))
        (session (smtp-session s)))
    (when (and (plusp pause) (%cfg s :reject-early-talker))
      (session-set-timeouts session :idle (/ pause 1000.0))
      (unwind-protect
           (handler-case (plusp (session-read-some session (make-octets 512)))
             (session-timeout () nil))
        (session-set-timeouts session :idle (/ (%cfg s :timeout) 1000.0)
                                      :write 60)))))

(defun smtp-command (s line)
  "Runs one command LINE.  Returns :quit to end the session."
  (let* ((sp (position #\Space line))
         (verb (string-upcase (subseq line 0 sp)))
         (arg (if sp (string-trim " " (subseq line (1+ sp))) ""))
         (session (smtp-session s)))
    (when (and (%cfg s :reject-unauth-pipelining)
               (plusp (session-buffered session))
               (or (not (smtp-pipelining s))
                   (member verb +sync-verbs+ :test #'string=))
               (not (string= verb "QUIT")))
      (reject s "pipelining" 554 "5.5.0 Unauthorised pipelining (~a), closing" verb)
      (log-info "smtp ~a: unauthorised pipelining at ~a" (session-peer session) verb)
      (return-from smtp-command :quit))
    (cond
      ((string= verb "EHLO") (cmd-helo s arg t))
      ((string= verb "HELO") (cmd-helo s arg nil))
      ((string= verb "MAIL") (cmd-mail s arg))
      ((string= verb "RCPT") (cmd-rcpt s arg))
      ((string= verb "DATA") (cmd-data s arg))
      ((string= verb "RSET") (reset-transaction s) (reply s 250 "2.0.0 Ok"))
      ((string= verb "NOOP") (reply s 250 "2.0.0 Ok"))
      ((string= verb "QUIT") (reply s 221 "2.0.0 ~a closing" (%cfg s :hostname)) :quit)
      ((string= verb "VRFY") (reply s 252 "2.5.2 Cannot VRFY a user, but will take a message"))
      ((string= verb "HELP")
       (reply s 214 "2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP~:[~; STARTTLS~]"
              (and *tls* (not (session-tls-p session)))))
      ((string= verb "STARTTLS") (cmd-starttls s arg))
      ((member verb '("EXPN" "TURN" "ETRN" "AUTH" "BDAT") :test #'string=)
       (reply s 502 "5.5.1 ~a not implemented" verb))
      (t (incf (smtp-errors s)) (reply s 500 "5.5.2 Command unrecognized")))))

(defun %own-address-literal-p (s name)
  "True when NAME is an address literal of the server's own address that is not also the
client's (a client on the same host, e.g. Python's smtplib on loopback, truthfully says
[127.0.0.1])."
  (let ((host (ignore-errors (local-address (session-fd (smtp-session s)))))
        (peer (session-peer (smtp-session s))))
    (flet ((names-p (addr)
             (let ((lit (string-trim "[]" name)))
               (or (string-equal lit addr)
                   (and (> (length lit) 5) (string-equal "IPv6:" lit :end2 5)
                        (string-equal (subseq lit 5) addr))))))
      (and host (names-p host) (not (and peer (names-p peer)))))))

(defun cmd-helo (s arg esmtp)
  (let ((name (first (split-words arg)))
        (host (%cfg s :hostname)))
    (cond ((null name) (reply s 501 "5.5.4 ~:[HELO~;EHLO~] needs a domain" esmtp))
          ((and (%cfg s :check-helo-syntax) (not (domain-syntax-p name)))
           (incf (smtp-errors s))
           (reply s 501 "5.5.4 Invalid domain name in ~:[HELO~;EHLO~]" esmtp))
          ((and (%cfg s :reject-helo-impersonation)
                (or (string-equal (string-right-trim "." name) host)
                    (and (char= (char name 0) #\[) (%own-address-literal-p s name))))
           (incf (smtp-errors s))
           (reject s "helo-impersonation" 550 "5.7.1 You are not ~a" name))
          (t
           (reset-transaction s)
           (setf (smtp-helo s) name (smtp-esmtp s) esmtp (smtp-pipelining s) esmtp)
           (if esmtp
               (reply-lines s 250 (append (list (format nil "~a hello ~a" host name)
                                                "PIPELINING"
                                                (format nil "SIZE ~d" (%cfg s :max-message-size))
                                                "8BITMIME" "SMTPUTF8" "ENHANCEDSTATUSCODES")
                                          (and *tls* (not (session-tls-p (smtp-session s)))
                                               (list "STARTTLS"))
                                          (list "HELP")))
               (reply s 250 "~a hello ~a" host name))))))

(defun cmd-starttls (s arg)
  (let ((session (smtp-session s)))
    (cond ((or (null *tls*) (session-tls-p session))
           (reply s 502 "5.5.1 STARTTLS not available"))
          ((plusp (length arg)) (reply s 501 "5.5.4 STARTTLS takes no argument"))
          (t (reply s 220 "2.0.0 Ready to start TLS")
             (let ((dropped (session-starttls session *tls*)))
               (when (plusp dropped)
                 (log-info "smtp ~a: ~d plaintext byte~:p after STARTTLS discarded"
                           (session-peer session) dropped)))
             ;; RFC 3207 4.2: forget everything learnt before TLS.
             (reset-transaction s)
             (setf (smtp-helo s) nil (smtp-esmtp s) nil (smtp-pipelining s) nil)))))

(defun cmd-mail (s arg)
  (let ((rest (%strip-keyword arg "FROM:")))
    (cond ((and (%cfg s :helo-required) (null (smtp-helo s)))
           (reply s 503 "5.5.1 Say HELO or EHLO first"))
          ((smtp-sender s) (reply s 503 "5.5.1 Sender already given"))
          ((null rest) (reply s 501 "5.5.4 Syntax: MAIL FROM:<address>"))
          (t
           (multiple-value-bind (addr params) (parse-path rest)
             (if (not (stringp addr))
                 (reply s 501 "5.1.7 Bad sender address syntax")
                 (let ((ps (parse-params params))
                       (max (%cfg s :max-message-size))
                       (rate (%cfg s :message-rate-per-address)))
                   (block check
                     (dolist (p ps)
                       (let ((k (car p)) (v (cdr p)))
                         (cond ((string= k "SIZE")
                                (let ((n (and v (every #'digit-char-p v) (plusp (length v))
                                              (parse-integer v))))
                                  (cond ((null n) (return-from check (reply s 501 "5.5.4 Bad SIZE")))
                                        ((> n max)
                                         (return-from check
                                           (reject s "size" 552 "5.3.4 Message size exceeds fixed limit of ~d" max))))))
                               ((string= k "BODY")
                                (unless (member v '("7BIT" "8BITMIME") :test #'string-equal)
                                  (return-from check (reply s 501 "5.5.4 Bad BODY value"))))
                               ((string= k "SMTPUTF8") (setf (smtp-smtputf8 s) t))
                               (t (return-from check
                                    (reply s 555 "5.5.4 Unsupported parameter ~a" k))))))
                     (when (and rate (not (rate-allow-p (or (session-peer (smtp-session s)) "") rate)))
                       (return-from check
                         (reject s "rate" 452 "4.7.1 Too many messages from your address, try later")))
                     (setf (smtp-sender s) (%bytes->string addr))
                     (reply s 250 "2.1.0 Ok")))))))))

(defun cmd-rcpt (s arg)
  (let ((rest (%strip-keyword arg "TO:")))
    (cond ((null (smtp-sender s)) (reply s 503 "5.5.1 Need MAIL first"))
          ((null rest) (reply s 501 "5.5.4 Syntax: RCPT TO:<address>"))
          ((>= (length (smtp-recipients s)) (%cfg s :max-recipients))
           (reply s 452 "4.5.3 Too many recipients"))
          (t
           (multiple-value-bind (addr) (parse-path rest)
             (case addr
               ((:source-route :quoted)
                (reject s "relaying" 550 "5.7.1 Relaying denied (~(~a~) not accepted)" addr))
               (:bad (reply s 501 "5.1.3 Bad recipient address syntax"))
               (t (%rcpt-to s (%bytes->string addr)))))))))

(defun %rcpt-to (s addr)
  (multiple-value-bind (local domain) (split-address addr)
    (cond ((or (null local) (zerop (length addr)))
           (reply s 501 "5.1.3 Bad recipient address syntax"))
          ((or (find #\% local) (find #\! local) (find #\@ local) (find #\" local)
               (char= (char domain 0) #\[))
           (reject s "relaying" 550 "5.7.1 Relaying denied"))
          (t
           (handler-case
               (with-store-connection (c)
                 (let ((boxes (resolve-address-cached c domain local (%cfg s :recipient-cache))))
                   (cond
                     ((null boxes)
                      (if (local-domain-p c domain)
                          (reject s "unknown-user" 550 "5.1.1 <~a>: user unknown" addr)
                          (reject s "relaying" 550 "5.7.1 <~a>: relaying denied" addr)))
                     ((some (lambda (b)
                              (or (and (getf b :max-messages)
                                       (>= (getf b :used-messages) (getf b :max-messages)))
                                  (and (getf b :max-bytes)
                                       (>= (getf b :used-bytes) (getf b :max-bytes)))))
                            boxes)
                      (reject s "mailbox-full" 552 "5.2.2 <~a>: mailbox full" addr))
                     ((and (%cfg s :greylist)
                           (not (greylist-pass-p c (or (session-peer (smtp-session s)) "")
                                                 (smtp-sender s) (string-downcase addr)
                                                 (%cfg s :greylist-delay))))
                      (reject s "greylisted" 451 "4.7.1 <~a>: greylisted, try again later" addr))
                     (t
                      (let ((verdict (if (and (%cfg s :envelope-filters)
                                              (some (lambda (b) (getf b :filters)) boxes))
                                         (envelope-verdict c (getf (first boxes) :user)
                                                           (smtp-sender s) addr)
                                         :accept)))
                        (if (eq verdict :reject)
                            (reject s "envelope-filter" 550 "5.7.1 <~a>: refused by the recipient's filter" addr)
                            (progn
                              (setf (smtp-recipients s)
                                    (append (smtp-recipients s)
                                            (list (make-rcpt addr domain
                                                             (mapcar (lambda (b) (getf b :mailbox)) boxes)
                                                             (eq verdict :discard)))))
                              (reply s 250 "2.1.5 Ok"))))))))
             (pq-error (e)
               (log-warn "smtp: rcpt ~a: ~a" addr e)
               (reply s 451 "4.3.0 Temporary failure, try again later")))))))

(defun received-header (s)
  (let ((session (smtp-session s)))
    (format nil "Received: from ~a (~a)~c~c	by ~a (mmsmtpd) with ~:[SMTP~;E~:[~;UTF8~]SMTP~:[~;S~]~]~@[~c~c	for <~a>~]; ~a~c~c"
            (or (smtp-helo s) "unknown") (let ((h (session-peer session))) (if h (format nil "[~a]" h) "unknown"))
            #\Return #\Newline
            (%cfg s :hostname) (smtp-esmtp s) (smtp-smtputf8 s) (session-tls-p session)
            (and (= 1 (length (smtp-recipients s))) #\Return)
            (and (= 1 (length (smtp-recipients s))) #\Newline)
            (and (= 1 (length (smtp-recipients s))) (rcpt-address (first (smtp-recipients s))))
            (format-rfc5322-date) #\Return #\Newline)))

(defun cmd-data (s arg)
  (declare (ignore arg))
  (cond ((null (smtp-sender s)) (reply s 503 "5.5.1 Need MAIL first"))
        ((null (smtp-recipients s)) (reply s 554 "5.5.1 No valid recipients"))
        (t
         (reply s 354 "End data with <CR><LF>.<CR><LF>")
         (multiple-value-bind (data flags)
             (session-read-data (smtp-session s) :max-size (%cfg s :max-message-size))
           (let ((verdict (check-message s data flags)))
             (if verdict
                 (apply #'reject s verdict)
                 (store-message s data)))
           (reset-transaction s)))))

(defun check-message (s data flags)
  "Returns NIL when the message DATA may be stored, else the refusal (REASON CODE TEXT ARGS...)
for reject."
  (let ((info (maildata-scan data)))
    (cond ((member :too-big flags)
           (list "size" 552 "5.3.4 Message size exceeds fixed limit of ~d" (%cfg s :max-message-size)))
          ((and (%cfg s :reject-bare-line-ends)
                (or (member :smuggle flags) (member :bare-cr flags) (member :bare-lf flags)))
           (log-info "smtp ~a: message with ~{~(~a~)~^, ~} refused" (session-peer (smtp-session s))
                     (intersection '(:smuggle :bare-cr :bare-lf) flags))
           (list "bare-line-end" 554 "5.6.0 Bare CR or LF in the message (SMTP smuggling?) refused"))
          ((member :nul (getf info :flags))
           (list "nul" 554 "5.6.0 NUL byte in the message refused"))
          ((> (getf info :max-line) (%cfg s :max-line-length))
           (list "line-length" 554 "5.6.0 Message line longer than ~d octets" (%cfg s :max-line-length)))
          ((> (getf info :max-field) (%cfg s :max-header-length))
           (list "header-length" 554 "5.6.0 Header field longer than ~d octets" (%cfg s :max-header-length)))
          ((>= (getf info :received) (%cfg s :max-hops))
           (list "hops" 554 "5.4.6 Too many hops (~d Received: fields)" (getf info :received)))
          (t (setf (smtp-info s) info) nil))))

(defun store-message (s data)
  (let* ((info (smtp-info s))
         (action nil) (tag nil))
    (when (%cfg s :header-filters)
      (handler-case
          (let ((filters (with-store-connection (c) (header-filters c (%cfg s :filter-cache)))))
            (when filters
              (multiple-value-setq (action tag)
                (header-verdict filters (parse-header-fields data (getf info :header-len))
                                (remove-duplicates (mapcar #'rcpt-domain (smtp-recipients s))
                                                   :test #'string=)))))
        (pq-error (e)
          (log-warn "smtp: header filters: ~a" e)
          (return-from store-message (reply s 451 "4.3.0 Temporary failure, try again later")))))
    (case action
      (:reject (reject s "header-filter" 550 "5.7.1 Message refused by a header filter"))
      (:discard (reply s 250 "2.0.0 Ok (discarded)"))
      (t
       (let* ((boxes (loop for r in (smtp-recipients s)
                           unless (rcpt-discard r) append (rcpt-mailboxes r)))
              (parts (append (list (coerce (received-header s) 'simple-base-string))
                             (and (eq action :tag)
                                  (list (format nil "X-Crow-Tag: ~a~c~c" tag #\Return #\Newline)))
                             (list data)))
              (parts (mapcar (lambda (p) (if (stringp p) (%wire p) p)) parts))
              (size (reduce #'+ parts :key #'length)))
         (if (null boxes)
             (reply s 250 "2.0.0 Ok (discarded)")
             (handler-case
                 (let ((uidl (deliver *store* parts size boxes (smtp-sender s)
                                      (null (intersection '(:dot-line :no-crlf) (getf info :flags))))))
                   (reply s 250 "2.0.0 Ok: queued as ~a" uidl)
                   (count-delivery s size))
               ((or unix-error pq-error) (e)
                 (log-warn "smtp: store: ~a" e)
                 (reply s 451 "4.3.0 Temporary failure storing the message, try again later")))))))))

(defun count-delivery (s size)
  "Counts a stored message of SIZE bytes: mmsmtpd|messages|DOMAIN and mmsmtpd|bytes|DOMAIN once
for each recipient domain (discarded recipients excepted)."
  (dolist (domain (remove-duplicates (loop for r in (smtp-recipients s)
                                           unless (rcpt-discard r)
                                             collect (string-downcase (rcpt-domain r)))
                                     :test #'string=))
    (count-event (format nil "mmsmtpd|messages|~a" domain))
    (count-event (format nil "mmsmtpd|bytes|~a" domain) size)))

(defun %wire (string)
  "STRING as bytes for the wire or a file: a simple base-string when it is ASCII (C writes its
bytes directly), else its UTF-8 octets."
  (if (every (lambda (c) (< (char-code c) 128)) string)
      (coerce string 'simple-base-string)
      (utf8-encode string)))
