;;;; client.lisp — one IRC connection per network, in its own thread: registration (CAP LS 302,
;;;; SASL PLAIN, alternate nicks), channel state (who is where, for quits and nick changes),
;;;; PING/PONG, CTCP replies, paced sending, and reconnecting with exponential backoff.
;;;;
;;;; The thread owns its session and does everything in turns: read a line (waiting at most
;;;; +tick+ seconds), handle it, send what the pacing allows.  One owner means a TLS
;;;; connection is never read and written from two threads at once.

(in-package :crow.irc)

(defconstant +tick+ 0.2 "Seconds each read waits before the loop looks at its queue and clock.")
(defconstant +max-queued-replies+ 10 "CTCP replies queued beyond this are dropped (floods).")

(defstruct (channel (:constructor make-channel (name)))
  "A joined channel: NAME as the server spells it, MEMBERS folded nick -> nick."
  name (members (make-hash-table :test 'equal)))

(defstruct (network (:constructor %make-network))
  "A network irclog logs: its NAME and CONFIG block, the shared WRITER and RULES, the SESSION
while connected, our NICK, CHANNELS (folded name -> channel), the send QUEUE with its token
bucket, capability negotiation and reconnect state."
  name config writer rules options session nick (nick-try 0) registered
  (channels (make-hash-table :test 'equal))
  (queue '()) (tokens 0) (refilled 0) (last-input 0) (ping-sent nil)
  (offered '()) (cap-ended nil) (failures 0) thread tls-context)

(defun network-option (net key)
  "Returns the top-level option KEY (a plist of irclog-wide settings)."
  (getf (network-options net) key))

(defun nv (net key)
  "Returns network NET's config value KEY."
  (config-value (network-config net) key))

;;; Sending

(defun %clean-line (line)
  "LINE without CR, LF and NUL, at most 510 bytes of UTF-8 (cut on a character boundary)."
  (let* ((s (remove-if (lambda (c) (member c '(#\Return #\Newline #\Nul))) line))
         (bytes (utf8-encode s)))
    (if (<= (length bytes) 510)
        s
        (let ((end 510))
          (loop while (and (> end 0) (= (logand (aref bytes end) #xC0) #x80)) do (decf end))
          (utf8-decode bytes :end end)))))

(defun %prefix-p (prefix s)
  (and (>= (length s) (length prefix)) (string= prefix s :end2 (length prefix))))

(defun send-now (net fmt &rest args)
  "Writes one line to NET's server at once (PONG, QUIT).  Signals session errors."
  (let ((line (%clean-line (apply #'format nil fmt args))))
    (log-debug "~a >> ~a" (network-name net)
               (if (or (%prefix-p "PASS " line) (%prefix-p "AUTHENTICATE " line))
                   (concatenate 'string (subseq line 0 (position #\Space line)) " (not logged)")
                   line))
    (session-write (network-session net) line (coerce '(#\Return #\Newline) 'base-string))))

(defun send (net fmt &rest args)
  "Queues one line for NET; the queue is drained as the token bucket allows.  Returns NIL."
  (setf (network-queue net)
        (nconc (network-queue net) (list (%clean-line (apply #'format nil fmt args)))))
  nil)

(defun %refill (net)
  "Adds the tokens earned since the last refill (one per flood-interval, at most flood-burst)."
  (let ((now (monotonic-seconds))
        (interval (/ (network-option net :flood-interval) 1000)))
    (setf (network-tokens net) (min (network-option net :flood-burst)
                                    (+ (network-tokens net)
                                       (/ (- now (network-refilled net)) interval)))
          (network-refilled net) now)))

(defun flush-queue (net)
  "Sends queued lines while tokens last.  Signals session errors."
  (%refill net)
  (loop while (and (network-queue net) (>= (network-tokens net) 1))
        do (decf (network-tokens net))
           (let ((line (pop (network-queue net))))
             (log-debug "~a >> ~a" (network-name net) line)
             (session-write (network-session net) line (coerce '(#\Return #\Newline) 'base-string)))))

;;; Logging entries

(defun emit (net kind &rest keys &key channel &allow-other-keys)
  "Logs one entry of KIND in CHANNEL and records its events.  Failures are logged."
  (declare (ignore channel))
  (let ((entry (apply #'make-entry :kind kind keys)))
    (handler-case
        (let ((line (write-entry (network-writer net) (network-name net) entry)))
          (when line (record-events (network-rules net) (network-name net) entry line)))
      (error (e) (log-warn "~a: logging ~a: ~a" (network-name net) (entry-channel entry) e)))))

(defun %text (net text)
  (declare (ignore net))
  (or text ""))

;;; Channel state

(defun find-channel (net name)
  (gethash (irc-downcase name) (network-channels net)))

(defun %me-p (net nick)
  (and nick (network-nick net) (string= (irc-downcase nick) (irc-downcase (network-nick net)))))

(defun channels-of (net nick)
  "The channels NICK is in, as channel structs."
  (let ((k (irc-downcase nick)) (out '()))
    (maphash (lambda (name ch) (declare (ignore name))
               (when (gethash k (channel-members ch)) (push ch out)))
             (network-channels net))
    (sort out #'string< :key #'channel-name)))

(defun channel-specs (net)
  "NET's configured channels as (NAME [KEY]) lists, a bare name given a #."
  (mapcar (lambda (s)
            (cons (if (channel-name-p (first s)) (first s) (concatenate 'string "#" (first s)))
                  (rest s)))
          (nv net :channel)))

(defun join-channels (net)
  "Queues a JOIN for every configured channel (with keys: keyed channels first, as JOIN wants)."
  (let ((specs (channel-specs net)))
    (dolist (s (sort (copy-list specs) #'> :key #'length))
      (if (second s)
          (send net "JOIN ~a ~a" (first s) (second s))
          (send net "JOIN ~a" (first s))))))

(defun %channel-key (net name)
  (second (find (irc-downcase name) (channel-specs net) :key (lambda (s) (irc-downcase (first s)))
                                                     :test #'string=)))

;;; Registration

(defun %nick-candidates (net)
  (let ((nick (nv net :nick)))
    (append (list nick) (nv net :alt-nick)
            (loop for i from 1 to 5 collect (concatenate 'string nick (make-string i :initial-element #\_))))))

(defun register (net)
  "Queues the registration: CAP LS 302, PASS, NICK, USER."
  (setf (network-nick-try net) 0
        (network-nick net) (nv net :nick))
  (send-now net "CAP LS 302")
  (let ((pass (nv net :password))) (when pass (send-now net "PASS ~a" pass)))
  (send-now net "NICK ~a" (network-nick net))
  (send-now net "USER ~a 0 * :~a" (nv net :username) (nv net :realname)))

(defun %cap-end (net)
  (unless (network-cap-ended net)
    (setf (network-cap-ended net) t)
    (send-now net "CAP END")))

(defun %sasl-p (net) (and (nv net :sasl-user) (nv net :sasl-password)))

(defun handle-cap (net params)
  (let ((sub (string-upcase (or (second params) ""))))
    (cond ((string= sub "LS")
           (let* ((more (and (cddr params) (string= (third params) "*")))
                  (list (car (last params))))
             (setf (network-offered net)
                   (append (network-offered net)
                           (mapcar (lambda (c) (subseq c 0 (position #\= c)))
                                   (split-words list))))
             (unless more
               (let ((want (remove-if-not (lambda (c) (member c (network-offered net) :test #'string=))
                                          (append '("server-time" "message-tags")
                                                  (and (%sasl-p net) '("sasl"))))))
                 (if want
                     (send-now net "CAP REQ :~{~a~^ ~}" want)
                     (%cap-end net))))))
          ((string= sub "ACK")
           (let ((acked (split-words (car (last params)))))
             (log-info "~a: capabilities ~{~a~^ ~}" (network-name net) acked)
             (if (and (member "sasl" acked :test #'string=) (%sasl-p net))
                 (send-now net "AUTHENTICATE PLAIN")
                 (%cap-end net))))
          ((string= sub "NAK") (%cap-end net)))))

(defun split-words (text)
  (loop for start = 0 then (1+ end)
        for end = (position #\Space text :start start)
        for w = (subseq text start end)
        when (plusp (length w)) collect w
        while end))

(defun handle-authenticate (net params)
  (when (and (equal (first params) "+") (%sasl-p net))
    (let* ((user (nv net :sasl-user))
           (blob (utf8-encode (format nil "~a~c~a~c~a" user #\Nul user #\Nul (nv net :sasl-password)))))
      (send-now net "AUTHENTICATE ~a" (base64-encode blob)))))

;;; Handling what the server says

(defun handle-privmsg (net m notice)
  (destructuring-bind (&optional target (text "") &rest rest) (message-params m)
    (declare (ignore rest))
    (let ((nick (message-nick m)) (stamp (message-time m)) (channel (channel-name-p target)))
      (if (and (> (length text) 1) (char= (char text 0) (code-char 1)))
          (let* ((body (string-right-trim (list (code-char 1)) (subseq text 1)))
                 (space (position #\Space body))
                 (verb (string-upcase (subseq body 0 space)))
                 (arg (if space (subseq body (1+ space)) "")))
            (cond (notice)                      ; CTCP replies are not answered or logged
                  ((string= verb "ACTION")
                   (when channel
                     (emit net :action :stamp stamp :nick nick :channel target :text (%text net arg))))
                  (t
                   (when channel
                     (emit net :ctcp :stamp stamp :nick nick :channel target :text (%text net body)))
                   (when (< (length (network-queue net)) +max-queued-replies+)
                     (cond ((string= verb "VERSION")
                            (send net "NOTICE ~a :~cVERSION ~a ~a~c" nick (code-char 1)
                                  (network-option net :ctcp-version) *version* (code-char 1)))
                           ((string= verb "PING")
                            (send net "NOTICE ~a :~cPING ~a~c" nick (code-char 1) arg (code-char 1))))))))
          (when channel
            (emit net (if notice :notice :message) :stamp stamp :nick nick :channel target
                                                   :text (%text net text)))))))

(defun handle-message (net m)
  "Acts on one parsed message M from NET's server."
  (let ((cmd (message-command m)) (params (message-params m)) (nick (message-nick m)))
    (macrolet ((with-channel ((var name) &body body)
                 `(let ((,var (find-channel net ,name))) (when ,var ,@body))))
      (cond
        ((string= cmd "PING") (send-now net "PONG :~a" (or (car (last params)) "")))
        ((string= cmd "PONG") (setf (network-ping-sent net) nil))
        ((string= cmd "CAP") (handle-cap net params))
        ((string= cmd "AUTHENTICATE") (handle-authenticate net params))
        ((string= cmd "903") (log-info "~a: SASL login ok" (network-name net)) (%cap-end net))
        ((member cmd '("902" "904" "905" "906" "908") :test #'string=)
         (log-warn "~a: SASL failed: ~a" (network-name net) (car (last params))) (%cap-end net))
        ((string= cmd "001")
         (setf (network-registered net) t (network-nick net) (first params) (network-failures net) 0)
         (%cap-end net)
         (log-info "~a: registered as ~a" (network-name net) (network-nick net))
         (join-channels net))
        ((and (member cmd '("432" "433" "436" "437") :test #'string=) (not (network-registered net)))
         (let ((candidates (%nick-candidates net)))
           (incf (network-nick-try net))
           (if (< (network-nick-try net) (length candidates))
               (progn (setf (network-nick net) (nth (network-nick-try net) candidates))
                      (log-info "~a: nick taken, trying ~a" (network-name net) (network-nick net))
                      (send-now net "NICK ~a" (network-nick net)))
               (error 'simple-crow-error :format-control "every nick is taken"))))
        ((string= cmd "JOIN")
         (let ((name (first params)))
           (when (%me-p net nick)
             (setf (gethash (irc-downcase name) (network-channels net)) (make-channel name)))
           (with-channel (ch name)
             (setf (gethash (irc-downcase nick) (channel-members ch)) nick)
             (emit net :join :stamp (message-time m) :nick nick :userhost (message-host m)
                             :channel (channel-name ch)))))
        ((string= cmd "PART")
         (with-channel (ch (first params))
           (emit net :part :stamp (message-time m) :nick nick :userhost (message-host m)
                           :channel (channel-name ch) :text (%text net (second params)))
           (remhash (irc-downcase nick) (channel-members ch))
           (when (%me-p net nick) (remhash (irc-downcase (first params)) (network-channels net)))))
        ((string= cmd "QUIT")
         (dolist (ch (channels-of net nick))
           (emit net :quit :stamp (message-time m) :nick nick :userhost (message-host m)
                           :channel (channel-name ch) :text (%text net (first params)))
           (remhash (irc-downcase nick) (channel-members ch))))
        ((string= cmd "NICK")
         (let ((new (first params)))
           (dolist (ch (channels-of net nick))
             (emit net :nick :stamp (message-time m) :nick nick :target new :channel (channel-name ch))
             (remhash (irc-downcase nick) (channel-members ch))
             (setf (gethash (irc-downcase new) (channel-members ch)) new))
           (when (%me-p net nick) (setf (network-nick net) new))))
        ((string= cmd "KICK")
         (destructuring-bind (name victim &optional reason) params
           (with-channel (ch name)
             (emit net :kick :stamp (message-time m) :nick nick :target victim
                             :channel (channel-name ch) :text (%text net reason))
             (remhash (irc-downcase victim) (channel-members ch))
             (when (%me-p net victim)
               (remhash (irc-downcase name) (network-channels net))
               (let ((key (%channel-key net name)))
                 (if key (send net "JOIN ~a ~a" name key) (send net "JOIN ~a" name)))))))
        ((string= cmd "TOPIC")
         (with-channel (ch (first params))
           (emit net :topic :stamp (message-time m) :nick nick :channel (channel-name ch)
                            :text (%text net (second params)))))
        ((string= cmd "332")
         (with-channel (ch (second params))
           (emit net :topic-is :stamp (message-time m) :channel (channel-name ch)
                               :text (%text net (third params)))))
        ((string= cmd "MODE")
         (with-channel (ch (first params))
           (emit net :mode :stamp (message-time m) :nick nick :channel (channel-name ch)
                           :text (format nil "~{~a~^ ~}" (rest params)))))
        ((string= cmd "353")
         (with-channel (ch (third params))
           (dolist (n (split-words (fourth params)))
             (let ((bare (string-left-trim "@+%~&!" n)))
               (when (plusp (length bare))
                 (setf (gethash (irc-downcase bare) (channel-members ch)) bare))))))
        ((string= cmd "PRIVMSG") (handle-privmsg net m nil))
        ((string= cmd "NOTICE") (handle-privmsg net m t))
        ((string= cmd "ERROR") (log-warn "~a: server says: ~a" (network-name net) (first params)))
        ((member cmd '("471" "473" "474" "475") :test #'string=)
         (log-warn "~a: cannot join ~a: ~a" (network-name net) (second params) (car (last params))))))))

;;; The connection loop

(defun %open-connection (address)
  "Returns a socket connected to ADDRESS.  A host name may resolve to IPv6 first (the socket
layer takes the first address): then an IPv6 socket is tried.  Signals unix-error."
  (let ((host (address-host address)) (port (address-port address)))
    (if (eq (address-family address) :name)
        (handler-case (tcp-connect host port)
          (unix-error (e)
            (let ((fd (make-socket :inet6 :stream)))
              (handler-case (progn (connect-address fd host port)
                                   (set-socket-option fd :tcp-nodelay t)
                                   fd)
                (error () (%close fd) (error e))))))
        (tcp-connect host port))))

(defun %connect (net)
  "Connects NET (TLS when configured) and registers.  Signals unix-error, tls-error."
  (let* ((address (nv net :server))
         (host (address-host address))
         ;; The TLS handshake gets 30 s per wait; the conversation then reads in ticks.
         (session (make-session (%open-connection address) :max-line 16384 :idle-timeout 30
                                                        :write-timeout 30)))
    (setf (network-session net) session)
    (when (nv net :tls)
      (unless (network-tls-context net)
        (setf (network-tls-context net) (make-tls-client-context :ca-file (nv net :tls-ca))))
      (session-starttls session (network-tls-context net) :host host))
    (session-set-timeouts session :idle +tick+ :write 30)
    (setf (network-registered net) nil (network-cap-ended net) nil (network-offered net) '()
          (network-queue net) '() (network-ping-sent net) nil
          (network-tokens net) (network-option net :flood-burst)
          (network-refilled net) (monotonic-seconds)
          (network-last-input net) (monotonic-seconds))
    (clrhash (network-channels net))
    (log-info "~a: connected to ~a~@[ (~a)~]" (network-name net) (address-string address)
              (session-tls-version session))
    (register net)))

(defun %disconnect (net)
  (let ((s (network-session net)))
    (when s
      (setf (network-session net) nil)
      (session-close s :abort t))))

(defun serve-connection (net)
  "Talks with NET's server until it goes away or irclog stops.  Signals on failure."
  (%connect net)
  (let ((ping-ms (network-option net :ping-interval)))
    (loop
      (when *stop*
        (ignore-errors (send-now net "QUIT :irclog stopping"))
        (return))
      (flush-queue net)
      (let ((line (handler-case (session-read-line (network-session net) :as :octets)
                    (session-timeout () nil))))
        (cond ((typep line 'octets)
               (setf (network-last-input net) (monotonic-seconds) (network-ping-sent net) nil)
               (let* ((text (decode-line (if (network-option net :strip-colours)
                                             (irc-strip-formatting line)
                                             line)))
                      (m (parse-message text)))
                 (log-debug "~a << ~a" (network-name net) text)
                 (when m
                   ;; A message we cannot make sense of is logged and skipped; failures of
                   ;; the connection itself (crow errors) end it.
                   (handler-case (handle-message net m)
                     (crow-error (e) (error e))
                     (error (e)
                       (log-warn "~a: skipped ~a message: ~a" (network-name net)
                                 (message-command m) e))))))
              (line (log-warn "~a: line ~(~a~), skipped" (network-name net) line))
              (t (let ((quiet (* 1000 (- (monotonic-seconds) (network-last-input net)))))
                   (cond ((and (network-ping-sent net) (> quiet (* 2 ping-ms)))
                          (error "no reply from the server for ~ds" (round quiet 1000)))
                         ((and (not (network-ping-sent net)) (> quiet ping-ms))
                          (setf (network-ping-sent net) t)
                          (send-now net "PING :irclog"))))))))))

(defun %sleep-unless-stopped (seconds)
  (loop with end = (+ (monotonic-seconds) seconds)
        until (or *stop* (>= (monotonic-seconds) end))
        do (sleep (min 0.1 (max 0 (- end (monotonic-seconds)))))))

(defun run-network (net)
  "The thread of network NET: connects, serves, and reconnects with exponential backoff
\(reconnect-min doubling up to reconnect-max, reset once registered) until *stop*."
  (loop until *stop*
        do (handler-case (serve-connection net)
             (session-eof ()
               (unless *stop*
                 (log-warn "~a: the server closed the connection" (network-name net))))
             (error (e)
               (unless *stop*
                 (log-warn "~a: ~a" (network-name net) e))))
           (%disconnect net)
           (unless *stop*
             (let ((wait (min (network-option net :reconnect-max)
                              (* (network-option net :reconnect-min)
                                 (expt 2 (min 20 (network-failures net)))))))
               (incf (network-failures net))
               (log-info "~a: reconnecting in ~,1fs" (network-name net) (/ wait 1000))
               (%sleep-unless-stopped (/ wait 1000))))))
