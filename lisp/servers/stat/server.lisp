;;;; server.lisp — mmstatd's two threads: the logger (receives transactions, logs them with
;;;; group commit, applies each batch, acknowledges, rotates) and the librarian (accepts on
;;;; the stream socket; each connection's reports, rotation and statistics requests are
;;;; answered in a short-lived thread of its own).
;;;;
;;;; Threads, not processes: the librarian reads the very database the logger keeps, under one
;;;; lock taken once per batch, so nothing is re-read from the log and an acknowledged
;;;; transaction is already visible to the next report.  A crash of either thread ends the
;;;; process, and recovery from the log is the same as after a kill -9.

(in-package :crow.mmstatd)

(defstruct (state (:conc-name state-))
  "The running server."
  config stat-dir data-dir lg dgram-fd lib-fd log-number log-fd
  (policy :every) (every-ms 1000) (snapshot-ms 3600000) (log-size (* 64 1024 1024))
  (last-snapshot 0) (rotate-requested nil) (rotations 0) (rotate-error nil)
  (stop nil) logger librarian)

(defun %now-ms () (floor (monotonic-ns) 1000000))

(defun rotate (st)
  "Starts log N+1, syncs the old one, snapshots the database as covering the new log from 0,
and deletes the older logs.  Runs in the logger thread.  Returns NIL.  Signals unix-error."
  (let* ((lg (state-lg st))
         (n (1+ (state-log-number st)))
         (dir (state-data-dir st))
         (fd (open-fd (log-path dir n) :direction :output :if-exists :error :mode #o600))
         (old (state-log-fd st)))
    (statlog-sync lg)
    (statlog-set-log lg fd 0)
    (setf (state-log-number st) n (state-log-fd st) fd)
    (ignore-errors (close-fd old))
    (let ((count (write-snapshot dir *db* n 0 (statlog-next-txn lg))))
      (delete-logs-before dir n)
      (setf (state-last-snapshot st) (%now-ms))
      (log-info "snapshot of ~d persistent keys written; now logging to ~a" count (log-path dir n)))
    nil))

(defun %rotation-due-p (st)
  (let ((lg (state-lg st)))
    (and (plusp (statlog-offset lg))
         (or (>= (statlog-offset lg) (state-log-size st))
             (>= (- (%now-ms) (state-last-snapshot st)) (state-snapshot-ms st))))))

(defun logger-loop (st)
  "The logger thread's body.  Ends the process (status 1) when the log cannot be written."
  (let ((it (make-statlog-iter))
        (kb (make-key-buffer))
        (lg (state-lg st)))
    (handler-case
        (loop until (state-stop st)
              do (let ((n (statlog-pump lg 200)))
                   (when (plusp n)
                     (statlog-iter-start-batch it lg)
                     (mp:with-lock (*db-lock*) (apply-ops *db* it kb)))
                   (statlog-ack lg)
                   (when (state-rotate-requested st)
                     (setf (state-rotate-error st)
                           (handler-case (progn (rotate st) nil)
                             (error (e) (log-warn "rotation: ~a" e) (princ-to-string e))))
                     (setf (state-rotate-requested st) nil)
                     (incf (state-rotations st)))
                   (when (%rotation-due-p st)
                     (handler-case (rotate st)
                       (error (e) (log-warn "rotation: ~a" e)
                         (setf (state-last-snapshot st) (%now-ms)))))))
      (error (e)
        (log-warn "logger: ~a; stopping (the log is recovered at the next start)" e)
        (exit-process 1)))
    ;; stopping: what is queued is logged and applied, then the log is synced and snapshotted
    (handler-case
        (progn
          (loop while (plusp (statlog-pump lg 0))
                do (statlog-iter-start-batch it lg)
                   (mp:with-lock (*db-lock*) (apply-ops *db* it kb))
                   (statlog-ack lg))
          (statlog-sync lg)
          (when (plusp (statlog-offset lg)) (rotate st)))
      (error (e) (log-warn "stopping: ~a" e)))
    (free-statlog-iter it)))

;;; The librarian.

(defun %wait-readable (ep events timeout-ms)
  (plusp (epoll-wait ep events timeout-ms)))

(defun %read-request (fd deadline)
  "Returns the first line read from FD as a base-string without its newline, or NIL (EOF,
overlong, or DEADLINE passed)."
  (let ((buf (make-octets 1024)) (n 0)
        (ep (epoll-create)) (events (make-epoll-events 1)))
    (unwind-protect
         (progn
           (epoll-add ep fd +epollin+)
           (loop
             (let ((nl (position 10 buf :end n)))
               (when nl
                 (return (coerce (map 'string #'code-char (subseq buf 0 nl)) 'simple-base-string))))
             (when (or (>= n (length buf)) (>= (%now-ms) deadline)) (return nil))
             (when (%wait-readable ep events (max 1 (- deadline (%now-ms))))
               (let ((k (handler-case (read-fd fd buf :start n) (unix-error () 0))))
                 (when (zerop k) (return nil))
                 (incf n k)))))
      (close-fd ep))))

(defun %send (fd string)
  (write-all fd (map 'octets #'char-code string)))

(defvar *barrier* nil "This connection thread's mmstat handle, for barriers.")

(defun barrier (st)
  "Waits until every transaction queued before now is applied (an empty transaction through
the logger, acknowledged after the batch before it).  Returns NIL.  Signals unix-error."
  (handler-case
      (progn
        (unless *barrier* (setf *barrier* (mmstat-open (state-stat-dir st))))
        (mmstat-commit-sync *barrier*))
    (unix-error (e)
      (when *barrier* (mmstat-close *barrier*) (setf *barrier* nil))
      (error e)))
  nil)

(defun report-text (pattern)
  "Returns the report lines for PATTERN (`p|v TAB created TAB modified TAB value|=text TAB
key`, sorted by key) and the closing `.` line.  Can't fail."
  (let ((rows '()))
    (mp:with-lock (*db-lock*)
      (if (glob-pattern-p pattern)
          (maphash (lambda (k e) (when (glob-match-p pattern k) (push (cons k (copy-entry e)) rows)))
                   *db*)
          (let ((e (gethash pattern *db*)))
            (when e (push (cons pattern (copy-entry e)) rows)))))
    (setf rows (sort rows #'string< :key #'car))
    (with-output-to-string (s)
      (loop for (k . e) in rows
            do (format s "~a	~d	~d	~:[~d~;=~a~]	~a~%"
                       (if (entry-persistent e) "p" "v") (entry-created e) (entry-modified e)
                       (stringp (entry-value e)) (entry-value e) k))
      (format s ".~%"))))

(defun serve-request (st line)
  "Returns the answer to one request LINE."
  (let* ((sp (position #\Space line))
         (verb (string-upcase (subseq line 0 sp)))
         (arg (if sp (subseq line (1+ sp)) "")))
    (cond
      ((string= verb "REPORT")
       (barrier st)
       (report-text (coerce (if (string= arg "") "*" arg) 'simple-base-string)))
      ((string= verb "ROTATE")
       (let ((before (state-rotations st))
             (deadline (+ (%now-ms) 60000)))
         (setf (state-rotate-requested st) t)
         (barrier st)
         (loop while (and (= before (state-rotations st)) (< (%now-ms) deadline))
               do (sleep 0.005))
         (cond ((= before (state-rotations st)) (format nil "-ERR rotation timed out~%"))
               ((state-rotate-error st) (format nil "-ERR ~a~%" (state-rotate-error st)))
               (t (format nil "+OK log ~d~%" (state-log-number st))))))
      ((string= verb "STATS")
       (barrier st)
       (with-output-to-string (s)
         (loop for (k v) on (statlog-stats (state-lg st)) by #'cddr
               do (format s "~(~a~) ~d~%" k v))
         (format s "keys ~d~%log ~d~%offset ~d~%.~%"
                 (mp:with-lock (*db-lock*) (hash-table-count *db*))
                 (state-log-number st) (statlog-offset (state-lg st)))))
      ((string= verb "PING") (format nil "+OK~%"))
      (t (format nil "-ERR unknown request ~s~%" verb)))))

(defparameter *max-librarian-threads* 32
  "Connections the librarian serves at once (one thread each); beyond, a connection gets
`-ERR busy` and is closed.")

(defun serve-connection (st c)
  "Answers the requests on connection C until EOF or 10 s of silence, then closes it."
  (let ((*barrier* nil))
    (unwind-protect
         (handler-case
             (loop for line = (%read-request c (+ (%now-ms) 10000))
                   while line
                   do (%send c (serve-request st line)))
           (error (e)
             (ignore-errors (%send c (format nil "-ERR ~a~%" e)))
             (log-debug "librarian: ~a" e)))
      (when *barrier* (mmstat-close *barrier*))
      (%close c))))

(defun librarian-loop (st)
  "The librarian thread's body: accepts connections and serves each in a thread of its own
\(so a slow or silent client delays no one), at most *max-librarian-threads* at once."
  (let ((ep (epoll-create)) (events (make-epoll-events 1)) (fd (state-lib-fd st))
        (active 0) (lock (mp:make-lock :name "mmstatd librarian")))
    (epoll-add ep fd +epollin+)
    (loop until (state-stop st)
          do (when (%wait-readable ep events 200)
               (let ((c (handler-case (accept-connection fd :nonblocking nil)
                          (unix-error (e) (log-warn "librarian: accept: ~a" e) nil))))
                 (when c
                   (if (>= (mp:with-lock (lock) active) *max-librarian-threads*)
                       (progn (ignore-errors (%send c (format nil "-ERR busy~%"))) (%close c))
                       (progn
                         (mp:with-lock (lock) (incf active))
                         (handler-case
                             (mp:process-run-function
                              "mmstatd librarian connection"
                              (lambda ()
                                (unwind-protect (serve-connection st c)
                                  (mp:with-lock (lock) (decf active)))))
                           (error (e)
                             (mp:with-lock (lock) (decf active))
                             (log-warn "librarian: no thread: ~a" e)
                             (%close c)))))))))
    (close-fd ep)))
