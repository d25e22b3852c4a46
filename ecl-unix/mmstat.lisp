;;;; mmstat.lisp — the mmstat client (c-core/mmstat, libmmstat) for Lisp: any crow server counts
;;;; events in mmstatd through these (package crow.unix).

(in-package :crow.unix)

(ffi:clines "#include <errno.h>" "#include <stdint.h>" "#include \"mmstat.h\"")

(defstruct (mmstat (:constructor %make-mmstat (pointer dir)))
  "A handle on one mmstatd (an mmstat_t).  Not thread-safe: one per thread."
  pointer dir)

(defun %mmstat-pointer (handle)
  (or (mmstat-pointer handle)
      (error 'simple-crow-error :format-control "mmstat handle ~s is closed"
                                :format-arguments (list handle))))

(defun mmstat-open (&optional dir)
  "Returns a handle on the mmstatd whose sockets are in DIR (NIL: $MMSTAT_DIR, else
/run/mmstatd), in autoflush mode.  Close it with mmstat-close (or use with-mmstat).  Signals
unix-error (ENOENT or ECONNREFUSED when no server is there)."
  (let ((c (if dir (string-to-c (namestring dir)) nil)))
    (multiple-value-bind (p errno)
        (ffi:c-inline (c) (:object) (values :pointer-void :int)
          "{ const char *d = #0 == ECL_NIL ? NULL : (const char *)#0->vector.self.b8;
             mmstat_t *m = mmstat_open(d);
             @(return 0) = m; @(return 1) = m ? 0 : errno; }")
      (when (ffi:null-pointer-p p) (unix-error errno "mmstat_open" dir))
      (%make-mmstat p dir))))

(defun mmstat-close (handle)
  "Flushes and frees HANDLE.  Harmless twice.  Can't fail."
  (let ((p (mmstat-pointer handle)))
    (when p
      (setf (mmstat-pointer handle) nil)
      (ffi:c-inline (p) (:pointer-void) :void "mmstat_close((mmstat_t *)#0)" :one-liner t))))

(defmacro with-mmstat ((var &optional dir) &body body)
  "Runs BODY with VAR bound to (mmstat-open DIR), closed on any exit."
  `(let ((,var (mmstat-open ,dir)))
     (unwind-protect (progn ,@body) (mmstat-close ,var))))

(defmacro %mmstat-call (name handle c-call)
  "Calls C-CALL (C text, #0 the mmstat_t) and signals unix-error naming NAME on -1."
  `(multiple-value-bind (r errno)
       (ffi:c-inline ((%mmstat-pointer ,handle)) (:pointer-void) (values :int :int)
         ,(format nil "{ mmstat_t *m = (mmstat_t *)#0; int r = ~a;
             @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }" c-call))
     (when (minusp r) (unix-error errno ,name))
     r))

(defun mmstat-begin (handle)
  "Starts a transaction on HANDLE.  Returns 0.  Signals unix-error (EALREADY: one is open)."
  (%mmstat-call "mmstat_begin" handle "mmstat_begin(m)"))

(defun mmstat-commit (handle)
  "Sends HANDLE's open transaction as one datagram.  Returns 0.  Signals unix-error (EINVAL:
none open; EAGAIN: non-blocking and the server's queue is full; ECONNREFUSED: no server)."
  (%mmstat-call "mmstat_commit" handle "mmstat_commit(m)"))

(defun mmstat-commit-sync (handle)
  "As mmstat-commit, then waits until the server says the transaction is logged (under its
sync policy) and applied; outside a transaction, a barrier for what HANDLE sent.  Returns 0.
Signals unix-error (as mmstat-commit; ETIMEDOUT)."
  (%mmstat-call "mmstat_commit_sync" handle "mmstat_commit_sync(m)"))

(defun mmstat-rollback (handle)
  "Discards HANDLE's open transaction.  Returns 0.  Signals unix-error (EINVAL: none open)."
  (%mmstat-call "mmstat_rollback" handle "mmstat_rollback(m)"))

(defun mmstat-flush (handle)
  "Sends the single operations batched mode holds.  Returns 0.  Signals unix-error."
  (%mmstat-call "mmstat_flush" handle "mmstat_flush(m)"))

(defun mmstat-autoflush (handle on)
  "Autoflush mode when ON (each operation outside a transaction sent at once), batched mode
otherwise.  Returns 0.  Signals unix-error (flushing)."
  (if on
      (%mmstat-call "mmstat_autoflush" handle "mmstat_autoflush(m, 1)")
      (%mmstat-call "mmstat_autoflush" handle "mmstat_autoflush(m, 0)")))

(defun mmstat-nonblocking (handle on)
  "When ON, sends fail with EAGAIN instead of waiting for a full server queue.  Returns 0."
  (if on
      (%mmstat-call "mmstat_nonblocking" handle "mmstat_nonblocking(m, 1)")
      (%mmstat-call "mmstat_nonblocking" handle "mmstat_nonblocking(m, 0)")))

(defun mmstat-send-timeout (handle msec)
  "Blocking sends wait at most MSEC ms for room in the server's queue, then fail with EAGAIN
\(0: no limit).  Returns 0.  Signals unix-error."
  (check-type msec (integer 0 #.(1- (expt 2 31))))
  (multiple-value-bind (r errno)
      (ffi:c-inline ((%mmstat-pointer handle) msec) (:pointer-void :int) (values :int :int)
        "{ int r = mmstat_send_timeout((mmstat_t *)#0, #1); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")
    (when (minusp r) (unix-error errno "mmstat_send_timeout"))
    r))

(defun %mmstat-op (handle name type key value text persistent)
  (let ((k (string-to-c key))
        (tx (if text (string-to-c text) nil))
        (p (%mmstat-pointer handle)))
    (check-type value (signed-byte 64))
    (multiple-value-bind (r errno)
        (ffi:c-inline (p type k value tx (if persistent 1 0))
                      (:pointer-void :int :object :int64-t :object :int) (values :int :int)
          "{ mmstat_t *m = (mmstat_t *)#0; const char *k = (const char *)#2->vector.self.b8;
             int r;
             switch (#1) {
             case 1: r = mmstat_update(m, k, #3, #5); break;
             case 2: r = mmstat_reset(m, k, #3, #5); break;
             case 3: r = mmstat_delete(m, k); break;
             default: r = mmstat_set_text(m, k, (const char *)#4->vector.self.b8, #5); }
             @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")
      (when (minusp r) (unix-error errno name key))
      r)))

(defun mmstat-update (handle key delta &key persistent)
  "Adds DELTA to counter KEY (created at DELTA; a pattern updates the existing keys it
matches); PERSISTENT keys survive restarts.  Returns 0.  Signals unix-error (EINVAL: bad
key; EMSGSIZE: the transaction is full; as mmstat-commit when sent at once)."
  (%mmstat-op handle "mmstat_update" 1 key delta nil persistent))

(defun mmstat-reset (handle key value &key persistent)
  "Sets counter KEY (or the keys a pattern matches) to VALUE.  Returns 0.  Signals as
mmstat-update."
  (%mmstat-op handle "mmstat_reset" 2 key value nil persistent))

(defun mmstat-delete (handle key-or-pattern)
  "Deletes KEY-OR-PATTERN.  Returns 0.  Signals as mmstat-update."
  (%mmstat-op handle "mmstat_delete" 3 key-or-pattern 0 nil nil))

(defun mmstat-set-text (handle key text &key persistent)
  "Sets KEY to the text TEXT (up to 1024 printable bytes).  Returns 0.  Signals as
mmstat-update."
  (%mmstat-op handle "mmstat_set_text" 4 key 0 text persistent))

(defmacro with-mmstat-transaction ((handle) &body body)
  "Runs BODY inside a transaction on HANDLE: committed when BODY returns, rolled back when
it exits non-locally."
  (let ((h (gensym "H")) (done (gensym "DONE")))
    `(let ((,h ,handle) (,done nil))
       (mmstat-begin ,h)
       (unwind-protect (multiple-value-prog1 (progn ,@body)
                         (setf ,done t)
                         (mmstat-commit ,h))
         (unless ,done (ignore-errors (mmstat-rollback ,h)))))))

(defun mmstat-report (handle &optional (pattern "*"))
  "Returns the entries whose key matches PATTERN, sorted by key, each a list (KEY VALUE
CREATED MODIFIED PERSISTENT): VALUE an integer or, for a text entry, a string; the times in
Unix seconds.  Every transaction sent before (by any client) is included.  Signals unix-error
\(ECONNREFUSED, ETIMEDOUT, EPROTO)."
  (let ((c (string-to-c pattern))
        (p (%mmstat-pointer handle)))
    (multiple-value-bind (r errno)
        (ffi:c-inline (p c) (:pointer-void :object) (values :pointer-void :int)
          "{ mmstat_report_t *r = mmstat_report((mmstat_t *)#0, (const char *)#1->vector.self.b8);
             @(return 0) = r; @(return 1) = r ? 0 : errno; }")
      (when (ffi:null-pointer-p r) (unix-error errno "mmstat_report" pattern))
      (unwind-protect
           (loop for e = (ffi:c-inline (r) (:pointer-void) :object
                           "{ struct mmstat_entry e;
                              if (!mmstat_report_next((mmstat_report_t *)#0, &e)) @(return) = ECL_NIL;
                              else {
                                cl_object k = ecl_make_simple_base_string(e.key, -1);
                                cl_object v = e.text ? ecl_make_simple_base_string(e.text, -1)
                                                     : ecl_make_int64_t(e.value);
                                @(return) = cl_list(5, k, v, ecl_make_int64_t(e.created),
                                                    ecl_make_int64_t(e.modified),
                                                    e.persistent ? ECL_T : ECL_NIL); } }")
                 while e
                 collect (list* (octets-to-string (map 'octets #'char-code (first e)))
                                (if (stringp (second e))
                                    (octets-to-string (map 'octets #'char-code (second e)))
                                    (second e))
                                (cddr e)))
        (ffi:c-inline (r) (:pointer-void) :void "mmstat_report_close((mmstat_report_t *)#0)"
                      :one-liner t)))))

(defun mmstat-rotate (handle)
  "Asks the server to write a snapshot and start a new recovery log; returns 0 once done.
Signals unix-error (EIO: the server could not)."
  (%mmstat-call "mmstat_rotate" handle "mmstat_rotate(m)"))

;;; One shared handle per process, for servers counting events from any thread: opened once
;;; (before a chroot: the socket is connected at open) from the config's stat-dir, used under
;;; a lock; a send waits at most 20 ms for room, so a busy or absent mmstatd never holds a
;;; server up for long.

(defvar *mmstat-shared* nil "The process's shared handle (mmstat-setup), or NIL.")
(defvar *mmstat-shared-lock* (mp:make-lock :name "mmstat shared handle"))

(defun mmstat-setup (dir)
  "Opens the process's shared handle on the mmstatd in DIR (closing any previous one); DIR
NIL closes it.  Returns T when open, NIL when DIR is NIL or no mmstatd answers there (the
counts are then dropped).  Can't fail."
  (mp:with-lock (*mmstat-shared-lock*)
    (when *mmstat-shared* (mmstat-close *mmstat-shared*) (setf *mmstat-shared* nil))
    (when dir
      (handler-case
          (let ((h (mmstat-open dir)))
            (mmstat-send-timeout h 20)
            (setf *mmstat-shared* h)
            t)
        (crow-error () nil)))))

(defun mmstat-count (key &optional (delta 1) &key persistent)
  "Adds DELTA to counter KEY through the shared handle (mmstat-setup), one transaction, without
waiting for an acknowledgement.  Returns T when sent, NIL when there is no handle, mmstatd's
queue stayed full for 20 ms or it is gone (statistics never fail a server).  Can't fail."
  (let ((h *mmstat-shared*))
    (and h
         (mp:with-lock (*mmstat-shared-lock*)
           (handler-case (progn (mmstat-update (or *mmstat-shared* h) key delta :persistent persistent) t)
             (crow-error () nil))))))
