;;;; store.lisp — what mmstatd keeps on disk: recovery logs (log.NNNNNNNN) and the snapshot
;;;; (snapshot), recovery at start, --check and --repair, snapshots and rotation.
;;;;
;;;; The logs hold the persistent operations and the deletes only (volatile operations never
;;;; reach the disk: c-core/statlog.c), one frame per transaction that has any.
;;;; The snapshot holds every persistent entry and a meta entry naming the log and offset it
;;;; covers up to; it is written to snapshot.tmp, fsynced and renamed over the old one, and
;;;; only then are older logs deleted.  Recovery loads the snapshot, then replays every log
;;;; from that point, frame by frame (one frame = one transaction, applied whole).  A frame cut
;;;; short at the end of a log is a torn tail (the crash came mid-write): it is dropped and
;;;; logged.  A damaged frame followed by a valid one is damage in the middle: the server
;;;; refuses to start and names the offset; --repair truncates there.

(in-package :crow.mmstatd)

(define-condition recovery-error (crow-error)
  ((message :initarg :message :reader recovery-error-message))
  (:report (lambda (c s) (write-string (recovery-error-message c) s))))

(defun %fail (fmt &rest args)
  (error 'recovery-error :message (apply #'format nil fmt args)))

(defun log-path (dir n) (format nil "~a/log.~8,'0d" (string-right-trim "/" dir) n))
(defun snapshot-path (dir) (format nil "~a/snapshot" (string-right-trim "/" dir)))

(defun log-numbers (dir)
  "Returns the numbers of the logs in DIR, ascending.  Signals unix-error."
  (sort (loop for name in (read-directory dir)
              when (and (= (length name) 12) (string= "log." name :end2 4)
                        (every #'digit-char-p (subseq name 4)))
                collect (parse-integer name :start 4))
        #'<))

(defun fsync-directory (dir)
  (with-fd (fd (open-fd dir :direction :input))
    (fsync fd)))

(defun load-snapshot (dir db it key-buffer)
  "Loads DIR's snapshot into DB.  Returns (LOG OFFSET NEXT-TXN) from its meta entry, or NIL
when there is no snapshot.  Signals recovery-error when it is damaged."
  (let ((path (snapshot-path dir)))
    (unless (file-exists-p path) (return-from load-snapshot nil))
    (multiple-value-bind (p len) (map-file path)
      (unwind-protect
           (let ((off 0) (meta nil))
             (loop while (< off len)
                   do (let ((n (statlog-frame-check p len off)))
                        (unless (plusp n)
                          (%fail "~a: damaged at offset ~d (a snapshot is written whole and fsynced before it replaces the old one: the disk or a person changed it)" path off))
                        (statlog-iter-start it p off (+ off n))
                        (let ((m (apply-ops db it key-buffer))) (when m (setf meta m)))
                        (incf off n)))
             (unless meta (%fail "~a: no meta entry" path))
             meta)
        (unmap-file p len)))))

(defstruct (scan (:conc-name scan-))
  "What replaying one log found: END (offset after the last whole transaction), LENGTH of the
file, TRANSACTIONS replayed, NEXT-TXN, STATUS (:ok, :torn or :damaged) and for damage the
offset of the next valid frame (RESUME)."
  (end 0) (length 0) (transactions 0) (next-txn 0) (status :ok) resume)

(defun scan-log (path start db it key-buffer next-txn)
  "Replays the log at PATH from offset START into DB (DB NIL: only checks).  Returns a scan.
Signals unix-error."
  (multiple-value-bind (p len) (map-file path)
    (unwind-protect
         (let ((scan (make-scan :end start :length len :next-txn next-txn))
               (off start))
           (loop while (< off len)
                 do (let ((n (statlog-frame-check p len off)))
                      (cond ((plusp n)
                             (statlog-iter-start it p off (+ off n))
                             (if db
                                 (apply-ops db it key-buffer)
                                 (loop until (zerop (statlog-iter-next it))))
                             (when (plusp (statlog-iter-txn it))
                               (setf (scan-next-txn scan)
                                     (max (scan-next-txn scan) (1+ (statlog-iter-txn it)))))
                             (incf (scan-transactions scan))
                             (incf off n)
                             (setf (scan-end scan) off))
                            (t
                             (let ((next (statlog-frame-find p len (1+ off))))
                               (if (minusp next)
                                   (setf (scan-status scan) :torn)
                                   (setf (scan-status scan) :damaged (scan-resume scan) next)))
                             (return)))))
           scan)
      (unmap-file p len))))

(defun recover (dir db &key (mode :serve) (report (lambda (fmt &rest args)
                                                      (apply #'log-info fmt args))))
  "Loads DIR's snapshot and replays its logs into DB (NIL with MODE :check only reads).  MODE
:serve truncates a torn tail and refuses damage; :check changes nothing; :repair truncates at
the first bad transaction and deletes the logs after it.  REPORT is called with format
arguments for each finding.  Returns (values LOG OFFSET NEXT-TXN STATUS): the log to append
to, its end, the next transaction number, and :ok, :torn or :damaged.  Signals
recovery-error (damage, in :serve mode) or unix-error."
  (let* ((it (make-statlog-iter))
         (kb (make-key-buffer))
         (status :ok))
    (unwind-protect
         (destructuring-bind (&optional (slog nil) (soff 0) (snext 1))
             (load-snapshot dir (or db (make-hash-table :test 'equal)) it kb)
           (when slog
             (funcall report "snapshot: covers log ~d up to offset ~d" slog soff))
           (let* ((logs (remove-if (lambda (n) (and slog (< n slog))) (log-numbers dir)))
                  (next snext)
                  (last-log (or (car (last logs)) slog 1))
                  (last-end (if (and slog (not (member slog logs))) soff 0)))
             (when (and slog (plusp soff) (not (member slog logs)))
               (%fail "~a: the snapshot covers it up to offset ~d but it is missing"
                      (log-path dir slog) soff))
             (loop for (n . later) on logs
                   do (let* ((path (log-path dir n))
                             (start (if (eql n slog) soff 0))
                             (scan (scan-log path start db it kb next)))
                        (setf next (scan-next-txn scan) last-log n last-end (scan-end scan))
                        (funcall report "~a: ~d transactions replayed from offset ~d"
                                 path (scan-transactions scan) start)
                        (when (< (scan-length scan) start)
                          (%fail "~a: shorter (~d bytes) than the snapshot says (~d)"
                                 path (scan-length scan) start))
                        (ecase (scan-status scan)
                          (:ok)
                          (:torn
                           (setf status (if (eq status :damaged) status :torn))
                           (funcall report "~a: torn tail: ~d bytes after offset ~d are not a whole transaction~a"
                                    path (- (scan-length scan) (scan-end scan)) (scan-end scan)
                                    (if (eq mode :check) "" ", dropped"))
                           (unless (eq mode :check) (truncate-file path (scan-end scan))))
                          (:damaged
                           (setf status :damaged)
                           (let ((msg (format nil "~a: damaged transaction at offset ~d (whole ones follow at offset ~d)"
                                              path (scan-end scan) (scan-resume scan))))
                             (ecase mode
                               (:serve (%fail "~a; run mmstatd --repair to truncate the log there" msg))
                               (:check (funcall report "~a" msg))
                               (:repair
                                (funcall report "~a: truncated to ~d bytes" msg (scan-end scan))
                                (truncate-file path (scan-end scan))
                                (dolist (m later)
                                  (funcall report "~a: deleted (after the damage)" (log-path dir m))
                                  (unlink (log-path dir m)))
                                (return))))))))
             (values last-log last-end next status)))
      (free-statlog-iter it))))

(defun write-snapshot (dir db log offset next-txn)
  "Writes every persistent entry of DB as DIR's snapshot covering LOG up to OFFSET, atomically
\(temporary file, fsync, rename, directory fsync).  Returns the number of entries.  Signals
unix-error."
  (let* ((tmp (format nil "~a.tmp" (snapshot-path dir)))
         (count 0))
    (with-fd (fd (open-fd tmp :direction :output :if-exists :truncate :mode #o600))
      (let ((sw (statlog-snapshot-open fd (unix-time))))
        (handler-bind ((error (lambda (e) (declare (ignore e))
                                (ignore-errors (statlog-snapshot-finish sw)))))
          (statlog-snapshot-add sw :meta 0 "log" log offset next-txn nil)
          (maphash (lambda (k e)
                     (when (entry-persistent e)
                       (incf count)
                       (let ((v (entry-value e)))
                         (statlog-snapshot-add sw :restore (if (stringp v) 3 1) k
                                               (if (stringp v) 0 v)
                                               (entry-created e) (entry-modified e)
                                               (if (stringp v) v nil)))))
                   db))
        (statlog-snapshot-finish sw)))
    (rename tmp (snapshot-path dir))
    (fsync-directory dir)
    count))

(defun delete-logs-before (dir n)
  "Deletes DIR's logs numbered below N.  Returns how many.  Logs failures."
  (let ((k 0))
    (dolist (m (log-numbers dir) k)
      (when (< m n)
        (handler-case (progn (unlink (log-path dir m)) (incf k))
          (unix-error (e) (log-warn "deleting ~a: ~a" (log-path dir m) e)))))))
