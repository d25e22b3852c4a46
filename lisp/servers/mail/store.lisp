;;;; store.lisp — the mail store: PostgreSQL rows (through crow.unix's libpq binding) for the
;;;; metadata, files under the spool directory for the messages.
;;;;
;;;; Layout: SPOOL/tmp/ holds messages being written; SPOOL/msg/XX/UIDL (XX two hex digits, 256
;;;; directories) the delivered ones, one hard link per recipient mailbox.  Delivery order
;;;; (deliver): write + fsync the temporary file, link it under every final name, fsync the
;;;; directories (c-core/maildata), then one INSERT of every row (atomic, committed with
;;;; PostgreSQL's fsync), and only then may the caller answer 250.  Deletion (POP3 UPDATE):
;;;; DELETE the rows, commit, then unlink.  A crash therefore leaves at worst files without
;;;; rows, which recover-store removes at start-up (and rows without files, which it removes
;;;; too, though the order above never makes them).

(in-package :crow.mail)

(defstruct (store (:constructor %make-store))
  "An open mail store: CONNINFO, SPOOL directory (with a trailing /), FSYNC flag, and a pool of
idle database connections."
  conninfo spool (fsync t) (max-idle 32)
  (lock (mp:make-lock :name "crow.mail store"))
  (idle '())
  (counter 0))

(defun %dir (path)
  (let ((s (namestring path)))
    (if (and (plusp (length s)) (char= (char s (1- (length s))) #\/)) s (concatenate 'string s "/"))))

(defun open-store (conninfo spool &key (fsync t) (max-idle 32))
  "Returns a store over the database CONNINFO and the directory SPOOL (its tmp/ and msg/XX/
directories are made when missing), after checking the database answers.  Signals pq-error
or unix-error."
  (let ((s (%make-store :conninfo conninfo :spool (%dir spool) :fsync fsync :max-idle max-idle)))
    (dolist (d (cons "tmp" (cons "msg" (loop for i below 256 collect (format nil "msg/~(~2,'0x~)" i)))))
      (let ((p (concatenate 'string (store-spool s) d)))
        (handler-case (mkdir p #o700)
          (eexist () nil))))
    (release-connection s (acquire-connection s))
    s))

(defun close-store (store)
  "Closes STORE's idle connections.  Returns NIL.  Can't fail."
  (let ((conns (mp:with-lock ((store-lock store))
                 (shiftf (store-idle store) '()))))
    (mapc #'pq-finish conns))
  nil)

(defun acquire-connection (store)
  "Returns a database connection for this thread's exclusive use: an idle one (reset if the
server went away), or a new one.  Signals pq-error."
  (let ((c (mp:with-lock ((store-lock store)) (pop (store-idle store)))))
    (cond ((null c) (pq-connect (store-conninfo store)))
          ((pq-connection-ok-p c) c)
          (t (handler-case (pq-reset c)
               (pq-error (e) (pq-finish c) (error e)))))))

(defun release-connection (store conn &key broken)
  "Gives CONN back to STORE's pool (closes it when BROKEN, or beyond the idle limit).  Can't
fail."
  (if (or broken (not (pq-connection-ok-p conn)))
      (pq-finish conn)
      (let ((keep (mp:with-lock ((store-lock store))
                    (when (< (length (store-idle store)) (store-max-idle store))
                      (push conn (store-idle store))
                      t))))
        (unless keep (pq-finish conn)))))

(defun call-with-store-connection (store fn)
  (let ((c (acquire-connection store)) (ok nil))
    (unwind-protect (multiple-value-prog1 (funcall fn c) (setf ok t))
      (release-connection store c :broken (not ok)))))

(defmacro with-store-connection ((var &optional (store '*store*)) &body body)
  "Runs BODY with VAR bound to a pooled connection of STORE.  A connection left by a non-local
exit is closed, not pooled (it may be mid-transaction)."
  `(call-with-store-connection ,store (lambda (,var) ,@body)))

;;; Names

(defvar *uidl-random* (make-random-state t))

(defun new-uidl (store)
  "Returns a fresh unique id for a message: seconds, process id, a per-process counter and 16
random bits, in hex (stable for the message's life, RFC 1939 7).  Can't fail."
  (multiple-value-bind (n r)
      (mp:with-lock ((store-lock store))
        (values (incf (store-counter store)) (random #x10000 *uidl-random*)))
    (format nil "~(~x.~x.~x~4,'0x~)" (unix-time) (getpid) n r)))

(defun message-file (uidl)
  "Returns the spool-relative file of message UIDL.  Can't fail."
  (format nil "msg/~(~2,'0x~)/~a" (logand (sxhash uidl) 255) uidl))

(defun spool-path (store relative)
  (concatenate 'string (store-spool store) relative))

;;; Addresses

(defun resolve-address (conn domain local)
  "Returns the mailboxes the address LOCAL@DOMAIN delivers to, as a list of plists (:mailbox
:user :max-bytes :max-messages :used-bytes :used-messages :filters :address), NIL when
unknown.  Signals pq-error."
  (loop for row in (pq-exec conn "SELECT * FROM mail_resolve($1, $2)" domain local)
        collect (flet ((int (i) (let ((v (svref row i))) (and v (parse-integer v)))))
                  (list :mailbox (int 0) :user (int 1) :max-bytes (int 2) :max-messages (int 3)
                        :used-bytes (int 4) :used-messages (int 5)
                        :filters (equal (svref row 6) "t") :address (svref row 7)))))

;;; A cache of resolutions (like Postfix's address resolver caches), kept correct by the
;;; database: sql/mail/004's triggers NOTIFY mail_changed on any change to domains, users,
;;; mailboxes, aliases or filters, and a watcher thread (start-cache-watcher) holding a LISTEN
;;; connection drops every cache when one arrives.  While the watcher is not connected the
;;; caches are bypassed.  Only mailboxes without limits are cached, so a full mailbox is never
;;; accepted from the cache.

(defvar *resolve-cache* (make-hash-table :test 'equal))
(defvar *resolve-lock* (mp:make-lock :name "crow.mail resolve cache"))
(defvar *cache-valid* nil "True while the watcher's LISTEN connection is up.")
(defvar *cache-hooks* '() "Functions called (no arguments) when the caches must be dropped.")

(defun drop-caches ()
  "Empties the resolution cache and runs *cache-hooks*.  Can't fail."
  (mp:with-lock (*resolve-lock*) (clrhash *resolve-cache*))
  (dolist (h *cache-hooks*) (ignore-errors (funcall h))))

(defun resolve-address-cached (conn domain local ttl-ms)
  "resolve-address through the cache (entries live TTL-MS; 0, or no watcher: no cache).
Signals pq-error."
  (if (or (<= ttl-ms 0) (not *cache-valid*))
      (resolve-address conn domain local)
      (let* ((key (concatenate 'string (string-downcase local) "@" domain))
             (now (get-internal-real-time))
             (hit (mp:with-lock (*resolve-lock*) (gethash key *resolve-cache*))))
        (if (and hit (< (- now (car hit)) (* ttl-ms (/ internal-time-units-per-second 1000))))
            (cdr hit)
            (let ((boxes (resolve-address conn domain local)))
              (when (and boxes (every (lambda (b) (and (null (getf b :max-bytes))
                                                       (null (getf b :max-messages))))
                                      boxes))
                (mp:with-lock (*resolve-lock*)
                  (when (> (hash-table-count *resolve-cache*) 10000) (clrhash *resolve-cache*))
                  (setf (gethash key *resolve-cache*) (cons now boxes))))
              boxes)))))

(defstruct (watcher (:constructor %make-watcher)) thread (stop nil))

(defun %watch (store w)
  (let ((events (make-epoll-events 4)))
    (loop until (watcher-stop w)
          do (handler-case
                 (with-pq-connection (c (store-conninfo store))
                   (pq-exec c "LISTEN mail_changed")
                   (drop-caches)
                   (setf *cache-valid* t)
                   (log-info "store: caches on, dropped on NOTIFY mail_changed")
                   (let ((ep (epoll-create)))
                     (unwind-protect
                          (progn
                            (epoll-add ep (pq-socket c) +epollin+)
                            (loop until (watcher-stop w)
                                  do (epoll-wait ep events 500)
                                     (when (pq-notifications c) (drop-caches))
                                     (unless (pq-connection-ok-p c)
                                       (error 'pq-error :message "LISTEN connection lost"))))
                       (setf *cache-valid* nil)
                       (close-fd ep))))
               (error (e)
                 (setf *cache-valid* nil)
                 (drop-caches)
                 (log-warn "store: cache watcher: ~a (caches off, retrying)" e)
                 (loop repeat 20 until (watcher-stop w) do (sleep 0.1)))))
    (setf *cache-valid* nil)))

(defun start-cache-watcher (store)
  "Starts the thread that keeps the caches honest (see above).  Returns the watcher."
  (let ((w (%make-watcher)))
    (setf (watcher-thread w) (mp:process-run-function "crow.mail cache watcher"
                                                      (lambda () (%watch store w))))
    w))

(defun stop-cache-watcher (w)
  "Stops W's thread (within a second).  Returns NIL."
  (setf (watcher-stop w) t)
  (mp:process-join (watcher-thread w))
  nil)

(defun local-domain-p (conn domain)
  "Returns true when DOMAIN is one of the store's domains.  Signals pq-error."
  (and (pq-value conn "SELECT 1 FROM domains WHERE name = lower($1)" domain) t))

;;; Delivery

(defun deliver (store parts size mailboxes sender &optional plain)
  "Stores one message (PARTS: octet vectors and base-strings, SIZE bytes in all) in every
mailbox id of MAILBOXES (a non-empty list; duplicates are delivered once) for envelope
SENDER; PLAIN says no line of it starts with \".\" and it ends with CRLF (POP3 may send the
file as it is).  Returns the UIDL of the first copy once the files are durable and the rows
committed.  Signals unix-error (the files) or pq-error (the rows); nothing is left behind
then, and nothing may be acknowledged."
  (let* ((boxes (remove-duplicates mailboxes))
         (base (new-uidl store))
         (uidls (loop for i from 0 below (length boxes)
                      collect (if (zerop i) base (format nil "~a-~d" base i))))
         (files (mapcar #'message-file uidls))
         (finals (mapcar (lambda (f) (spool-path store f)) files))
         (tmp (spool-path store (concatenate 'string "tmp/" base))))
    (maildata-store tmp finals parts :nosync (not (store-fsync store)))
    (handler-bind ((error (lambda (e)
                            (declare (ignore e))
                            (dolist (f finals) (ignore-errors (unlink f))))))
      (with-store-connection (c store)
        (let ((sql (with-output-to-string (s)
                     (write-string "INSERT INTO messages (mailbox_id, size, file, uidl, sender, plain) VALUES " s)
                     (loop for i from 0 below (length boxes)
                           do (format s "~:[, ~;~](~{$~d~^, ~})" (zerop i)
                                      (loop for k from 1 to 6 collect (+ k (* i 6)))))))
              (params (loop for b in boxes for f in files for u in uidls
                            append (list b size f u sender (if plain "t" "f")))))
          (apply #'pq-exec c sql params))))
    base))

(defun mailbox-messages (conn mailbox)
  "Returns the messages of MAILBOX as a list of (id size uidl file plain), oldest first.
Signals pq-error."
  (loop for row in (pq-exec conn "SELECT id, size, uidl, file, plain FROM messages
                                  WHERE mailbox_id = $1 ORDER BY id"
                            mailbox)
        collect (list (parse-integer (svref row 0)) (parse-integer (svref row 1))
                      (svref row 2) (svref row 3) (equal (svref row 4) "t"))))

(defun delete-messages (store conn ids)
  "Deletes the messages IDS (committed), then unlinks their files.  Returns the count deleted.
Signals pq-error (nothing deleted then)."
  (if (null ids)
      0
      (let ((rows (pq-exec conn (format nil "DELETE FROM messages WHERE id = ANY($1::bigint[]) RETURNING file")
                           (format nil "{~{~d~^,~}}" ids))))
        (dolist (r rows)
          (handler-case (unlink (spool-path store (svref r 0)))
            (unix-error (e) (log-warn "store: ~a" e))))
        (length rows))))

;;; Recovery

(defun recover-store (store)
  "Start-up recovery (run before serving, by the one mmsmtpd of a store): removes every file in
tmp/ (never acknowledged), every message file without a row (its transaction never
committed), and every row without a file.  Returns (values FILES-REMOVED ROWS-REMOVED).
Signals pq-error or unix-error."
  (let ((files-removed 0) (rows-removed 0)
        (known (make-hash-table :test 'equal)))
    (dolist (name (read-directory (spool-path store "tmp")))
      (ignore-errors (unlink (spool-path store (concatenate 'string "tmp/" name))))
      (incf files-removed))
    (with-store-connection (c store)
      (dolist (r (pq-exec c "SELECT id, file FROM messages"))
        (setf (gethash (svref r 1) known) (svref r 0)))
      (let ((seen (make-hash-table :test 'equal)) (orphans '()) (total 0))
        (dotimes (i 256)
          (let ((dir (format nil "msg/~(~2,'0x~)" i)))
            (dolist (name (handler-case (read-directory (spool-path store dir))
                            (enoent () '())))
              (let ((f (concatenate 'string dir "/" name)))
                (incf total)
                (if (gethash f known)
                    (setf (gethash f seen) t)
                    (push f orphans))))))
        ;; A crash leaves a few files without rows (at most one per session in flight); most
        ;; of the spool without rows means the wrong database: keep the files then.
        (if (and (> (length orphans) 100) (> (* 2 (length orphans)) total))
            (log-warn "store recovery: ~d of ~d files under ~a have no row: wrong database? files kept"
                      (length orphans) total (store-spool store))
            (dolist (f orphans)
              (ignore-errors (unlink (spool-path store f)))
              (incf files-removed)))
        (let ((gone (loop for f being the hash-keys of known using (hash-value id)
                          unless (gethash f seen) collect id)))
          ;; Rows lose their files only by a crash between DELETE and unlink's opposite
          ;; order, which never happens: many missing files mean a wrong spool directory or
          ;; a lost disk, and deleting the rows would make that permanent.
          (when (and gone (> (* 2 (length gone)) (hash-table-count known)))
            (log-warn "store recovery: ~d of ~d messages have no file under ~a: wrong spool? rows kept"
                      (length gone) (hash-table-count known) (store-spool store))
            (setf gone '()))
          (when gone
            (setf rows-removed
                  (or (nth-value 1 (pq-exec c "DELETE FROM messages WHERE id = ANY($1::bigint[])"
                                            (format nil "{~{~a~^,~}}" gone)))
                      0))))))
    (when (or (plusp files-removed) (plusp rows-removed))
      (log-info "store recovery: removed ~d orphan file~:p and ~d orphan row~:p"
                files-removed rows-removed))
    (values files-removed rows-removed)))
