;;;; db.lisp — the in-memory database: keys to entries, and applying logged operations.

(in-package :crow.mmstatd)

(defstruct (entry (:constructor make-entry (value created modified persistent)))
  "One key's state: VALUE (an integer, or a base-string for a text entry), CREATED and
MODIFIED (Unix seconds), PERSISTENT (kept in snapshots and across restarts)."
  value created modified persistent)

(defvar *db* (make-hash-table :test 'equal :size 4096)
  "Key (a simple base-string of the key's bytes) -> entry.")

(defvar *db-lock* (mp:make-lock :name "mmstatd db")
  "Held by the logger while it applies a batch and by the librarian while it reads.")

(defun make-key-buffer ()
  "Returns a base-string with a fill pointer that holds any key (keys are looked up in it
without consing; one is copied only when it is inserted)."
  (make-array 256 :element-type 'base-char :fill-pointer 0))

(declaim (inline wrap64))
(defun wrap64 (n)
  "N wrapped to a signed 64-bit integer, as C's arithmetic would."
  (if (typep n '(signed-byte 64))
      n
      (- (ldb (byte 64 0) (+ n (expt 2 63))) (expt 2 63))))

(defun matching-keys (db pattern)
  "Returns the keys of DB matching the shell PATTERN.  Can't fail."
  (let ((out '()))
    (maphash (lambda (k e) (declare (ignore e)) (when (glob-match-p pattern k) (push k out))) db)
    out))

(defun %set (db key value time persistent)
  (let ((e (gethash key db)))
    (if e
        (setf (entry-value e) value (entry-modified e) time)
        (setf (gethash (coerce key 'simple-base-string) db)
              (make-entry value time time persistent)))))

(defun apply-op (db type key value text time persistent &optional (pattern (glob-pattern-p key)))
  "Applies one operation (TYPE 1 update, 2 reset, 3 delete, 4 text) on KEY (a key buffer or
string; a shell pattern, PATTERN true, acts on the existing keys it matches) at TIME.  Returns
NIL.  Can't fail.
An update, reset or text acts only on keys of its own kind (PERSISTENT or volatile), since
only persistent operations are logged (c-core/statlog.c) and replay must rebuild what memory
held: a pattern skips the keys of the other kind; on one key, a volatile operation leaves a
persistent entry alone, and a persistent one replaces a volatile entry (as replay, which never
sees that entry, creates the key afresh).  A delete, always logged, removes keys of both kinds."
  (declare (fixnum type))
  (if pattern
      (let ((keys (matching-keys db key)))
        (dolist (k keys)
          (case type
            (3 (remhash k db))
            (t (when (eq (not (entry-persistent (gethash k db))) (not persistent))
                 (apply-op db type k value text time persistent nil))))))
      (let ((e (gethash key db)))
        (when (and e (not (eq (not (entry-persistent e)) (not persistent))) (/= type 3))
          (unless persistent (return-from apply-op nil))
          (remhash key db)
          (setf e nil))
        (case type
          (1 (if (and e (integerp (entry-value e)))
                 (setf (entry-value e) (wrap64 (+ (entry-value e) value))
                       (entry-modified e) time)
                 (%set db key value time persistent)))
          (2 (%set db key value time persistent))
          (3 (remhash key db))
          (4 (%set db key text time persistent)))))
  nil)

(defun apply-ops (db it key-buffer)
  "Applies every operation IT walks to DB; a restore (snapshot) entry is inserted whole and
a meta entry returned.  Returns the meta entry's (LOG OFFSET NEXT-TXN) when one was seen,
else NIL.  Can't fail."
  (let ((meta nil))
    (loop
      (multiple-value-bind (type flags value time pattern) (statlog-iter-fetch it key-buffer)
        (declare (fixnum type flags))
        (case type
          (0 (return))
          ((1 2 3) (apply-op db type key-buffer value nil time (logtest 1 flags) pattern))
          (4 (apply-op db 4 key-buffer 0 (statlog-iter-text it) time (logtest 1 flags) pattern))
          (5 (multiple-value-bind (created modified) (statlog-iter-times it)
               (setf (gethash (coerce key-buffer 'simple-base-string) db)
                     (make-entry (if (logtest 2 flags) (statlog-iter-text it) value)
                                 created modified (logtest 1 flags)))))
          (6 (multiple-value-bind (offset next) (statlog-iter-times it)
               (setf meta (list value offset next)))))))
    meta))

(defun drop-volatile (db)
  "Removes every volatile entry (after recovery: volatile keys do not survive a restart).
Returns how many.  Can't fail."
  (let ((gone '()))
    (maphash (lambda (k e) (unless (entry-persistent e) (push k gone))) db)
    (dolist (k gone) (remhash k db))
    (length gone)))
