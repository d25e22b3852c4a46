;;;; statlog.lisp — bindings to c-core/statlog for mmstatd: the logger pump, walking logged
;;;; operations, checking log frames in mapped files, writing snapshots, shell patterns.

(in-package :crow.unix)

(ffi:clines "#include <errno.h>" "#include <stdint.h>" "#include <stdlib.h>"
            "#include <string.h>" "#include <fcntl.h>" "#include <unistd.h>"
            "#include <fnmatch.h>" "#include <sys/file.h>" "#include <sys/mman.h>" "#include <sys/stat.h>"
            "#include \"statlog.h\"" "#include \"mmstat_wire.h\"")

(defstruct (statlog (:constructor %make-statlog (pointer)))
  "mmstatd's logger state (struct crow_statlog)."
  pointer)

(defun make-statlog (dgram-fd log-fd offset next-txn)
  "Returns a logger reading transactions from DGRAM-FD and appending them to LOG-FD, whose end
is at OFFSET, numbering them from NEXT-TXN.  Signals unix-error (ENOMEM)."
  (multiple-value-bind (p errno)
      (ffi:c-inline (dgram-fd log-fd offset next-txn) (:int :int :uint64-t :uint64-t)
                    (values :pointer-void :int)
        "{ struct crow_statlog *l = crow_statlog_new(#0, #1, #2, #3);
           @(return 0) = l; @(return 1) = l ? 0 : errno; }")
    (when (ffi:null-pointer-p p) (unix-error errno "crow_statlog_new"))
    (%make-statlog p)))

(defun statlog-free (lg)
  "Frees LG (not its descriptors).  Harmless twice.  Can't fail."
  (let ((p (statlog-pointer lg)))
    (when p
      (setf (statlog-pointer lg) nil)
      (ffi:c-inline (p) (:pointer-void) :void "crow_statlog_free(#0)" :one-liner t))))

(defun statlog-set-policy (lg policy every-ms)
  "Sets LG's sync POLICY: :never, :every (EVERY-MS) or :always.  Can't fail."
  (let ((n (ecase policy (:never 0) (:every 1) (:always 2))))
    (ffi:c-inline ((statlog-pointer lg) n every-ms) (:pointer-void :int :int) :void
      "crow_statlog_set_policy(#0, (enum crow_statlog_policy)#1, #2)" :one-liner t)))

(defun statlog-set-log (lg fd offset)
  "Makes LG append to FD, whose end is at OFFSET.  Can't fail."
  (ffi:c-inline ((statlog-pointer lg) fd offset) (:pointer-void :int :uint64-t) :void
    "crow_statlog_set_log(#0, #1, #2)" :one-liner t))

(defun statlog-pump (lg timeout-ms)
  "Waits up to TIMEOUT-MS for transactions, logs every one queued in one write and syncs as
the policy says.  Returns how many were logged (walk them with statlog-iter-start-batch, then
statlog-ack).  Signals unix-error when the write, the sync or recv failed."
  (multiple-value-bind (n errno)
      (ffi:c-inline ((statlog-pointer lg) timeout-ms) (:pointer-void :int) (values :int :int)
        "{ int n = crow_statlog_pump(#0, #1); @(return 0) = n; @(return 1) = n < 0 ? errno : 0; }")
    (when (minusp n) (unix-error errno "mmstatd logger (write/fdatasync/recv)"))
    n))

(defun statlog-ack (lg)
  "Sends the acknowledgements of the last batch.  Returns how many.  Can't fail."
  (ffi:c-inline ((statlog-pointer lg)) (:pointer-void) :int "crow_statlog_ack(#0)" :one-liner t))

(defun statlog-sync (lg)
  "fdatasyncs LG's log if it was written since the last sync.  Returns NIL.  Signals
unix-error."
  (multiple-value-bind (r errno)
      (ffi:c-inline ((statlog-pointer lg)) (:pointer-void) (values :int :int)
        "{ int r = crow_statlog_sync(#0); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")
    (when (minusp r) (unix-error errno "fdatasync"))
    nil))

(defun statlog-offset (lg)
  "Returns the end offset of LG's log.  Can't fail."
  (ffi:c-inline ((statlog-pointer lg)) (:pointer-void) :uint64-t "crow_statlog_offset(#0)"
                :one-liner t))

(defun statlog-next-txn (lg)
  "Returns the number the next logged transaction gets.  Can't fail."
  (ffi:c-inline ((statlog-pointer lg)) (:pointer-void) :uint64-t "crow_statlog_next_txn(#0)"
                :one-liner t))

(defun statlog-stats (lg)
  "Returns LG's counters as a plist (:datagrams :transactions :ops :malformed :barriers :bytes
:syncs :acks :acks-lost).  Can't fail."
  (let ((v (make-array 9)))
    (ffi:c-inline ((statlog-pointer lg) v) (:pointer-void :object) :void
      "{ struct crow_statlog_stats s; cl_object *o = #1->vector.self.t;
         crow_statlog_get_stats(#0, &s);
         o[0] = ecl_make_uint64_t(s.datagrams); o[1] = ecl_make_uint64_t(s.transactions);
         o[2] = ecl_make_uint64_t(s.ops); o[3] = ecl_make_uint64_t(s.malformed);
         o[4] = ecl_make_uint64_t(s.barriers); o[5] = ecl_make_uint64_t(s.bytes);
         o[6] = ecl_make_uint64_t(s.syncs); o[7] = ecl_make_uint64_t(s.acks);
         o[8] = ecl_make_uint64_t(s.acks_lost); }")
    (loop for k in '(:datagrams :transactions :ops :malformed :barriers :bytes :syncs :acks
                     :acks-lost)
          for x across v append (list k x))))

;;; Mapped files (recovery reads logs and snapshots in place).

(defun map-file (path)
  "Maps PATH read-only.  Returns (values POINTER LENGTH); POINTER is NIL for an empty file.
Unmap with unmap-file.  Signals unix-error (ENOENT...)."
  (let ((c (string-to-c path)))
    (multiple-value-bind (p len errno)
        (ffi:c-inline (c) (:object) (values :pointer-void :int64-t :int)
          "{ int fd = open((const char *)#0->vector.self.b8, O_RDONLY | O_CLOEXEC);
             struct stat st; void *p = NULL; int64_t len = -1; int e = 0;
             if (fd < 0) e = errno;
             else if (fstat(fd, &st) < 0) e = errno;
             else if (st.st_size == 0) len = 0;
             else { p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
                    if (p == MAP_FAILED) { e = errno; p = NULL; } else len = st.st_size; }
             if (fd >= 0) close(fd);
             @(return 0) = p; @(return 1) = len; @(return 2) = e; }")
      (when (minusp len) (unix-error errno "mmap" path))
      (values (if (zerop len) nil p) len))))

(defun unmap-file (pointer length)
  "Unmaps what map-file returned.  Can't fail."
  (when (and pointer (plusp length))
    (ffi:c-inline (pointer length) (:pointer-void :int64-t) :void
      "munmap(#0, (size_t)#1)" :one-liner t)))

(defun statlog-frame-check (pointer length offset)
  "Checks the log frame at OFFSET of the LENGTH bytes at POINTER.  Returns its size when valid,
0 when it runs past LENGTH (torn), -1 when damaged.  Can't fail."
  (if (null pointer)
      0
      (ffi:c-inline (pointer length offset) (:pointer-void :int64-t :int64-t) :int64-t
        "crow_statlog_frame_check(#0, (size_t)#1, (size_t)#2)" :one-liner t)))

(defun statlog-frame-find (pointer length from)
  "Returns the offset of the first valid frame at or after FROM, or -1.  Can't fail."
  (if (null pointer)
      -1
      (ffi:c-inline (pointer length from) (:pointer-void :int64-t :int64-t) :int64-t
        "crow_statlog_frame_find(#0, (size_t)#1, (size_t)#2)" :one-liner t)))

;;; Walking operations.

(defun make-statlog-iter ()
  "Returns a fresh operation iterator (C memory: free it with free-statlog-iter).  Signals
unix-error (ENOMEM)."
  (let ((p (ffi:c-inline () () :pointer-void
             "calloc(1, sizeof(struct crow_statlog_iter))" :one-liner t)))
    (when (ffi:null-pointer-p p) (unix-error +enomem+ "calloc"))
    p))

(defun free-statlog-iter (it)
  "Frees IT.  Can't fail."
  (ffi:c-inline (it) (:pointer-void) :void "free(#0)" :one-liner t))

(defun statlog-iter-start (it pointer start end)
  "Points IT at the checked frames in [START,END) of the bytes at POINTER.  Can't fail."
  (ffi:c-inline (it pointer start end) (:pointer-void :pointer-void :int64-t :int64-t) :void
    "crow_statlog_iter_init(#0, (const unsigned char *)#1 + #2, (size_t)(#3 - #2))"
    :one-liner t))

(defun statlog-iter-start-batch (it lg)
  "Points IT at the frames LG's last pump logged.  Can't fail."
  (ffi:c-inline (it (statlog-pointer lg)) (:pointer-void :pointer-void) :void
    "{ const unsigned char *b; size_t n; crow_statlog_batch(#1, &b, &n);
       crow_statlog_iter_init(#0, b, n); }"))

(defun statlog-iter-next (it)
  "Loads the next operation.  Returns its type (1 update, 2 reset, 3 delete, 4 text, 5
restore, 6 meta) or 0 at the end.  Can't fail."
  (ffi:c-inline (it) (:pointer-void) :int
    "{ struct crow_statlog_iter *i = #0; @(return) = crow_statlog_iter_next(i) ? (int)i->type : 0; }"))

(defun statlog-iter-key-into (it buffer)
  "Copies the operation's key bytes into BUFFER (a base-string with a fill pointer and room
for 255 characters) and returns BUFFER.  Can't fail."
  (ffi:c-inline (it buffer) (:pointer-void :object) :object
    "{ struct crow_statlog_iter *i = #0; cl_object s = #1;
       memcpy(s->base_string.self, i->key, i->keylen); s->base_string.fillp = i->keylen;
       @(return) = s; }"))

(defun statlog-iter-value (it)
  "The operation's value (delta, value, or for meta the log number).  Can't fail."
  (ffi:c-inline (it) (:pointer-void) :int64-t "((struct crow_statlog_iter *)#0)->value"
                :one-liner t))

(defun statlog-iter-flags (it)
  "The operation's flags (1: persistent).  Can't fail."
  (ffi:c-inline (it) (:pointer-void) :int "(int)((struct crow_statlog_iter *)#0)->flags"
                :one-liner t))

(defun statlog-iter-time (it)
  "The time (Unix seconds) the operation's transaction was logged.  Can't fail."
  (ffi:c-inline (it) (:pointer-void) :int64-t "((struct crow_statlog_iter *)#0)->time"
                :one-liner t))

(defun statlog-iter-txn (it)
  "The number of the operation's transaction.  Can't fail."
  (ffi:c-inline (it) (:pointer-void) :uint64-t "((struct crow_statlog_iter *)#0)->txn"
                :one-liner t))

(defun statlog-iter-times (it)
  "The operation's created and modified times (restore, meta) as two values.  Can't fail."
  (ffi:c-inline (it) (:pointer-void) (values :int64-t :int64-t)
    "{ struct crow_statlog_iter *i = #0; @(return 0) = i->created; @(return 1) = i->modified; }"))

(defun statlog-iter-text (it)
  "The operation's text as a fresh base-string (bytes as characters).  Can't fail."
  (ffi:c-inline (it) (:pointer-void) :object
    "{ struct crow_statlog_iter *i = #0;
       cl_object s = ecl_alloc_simple_base_string(i->textlen);
       memcpy(s->base_string.self, i->text, i->textlen); @(return) = s; }"))

;;; Snapshots.

(defun statlog-snapshot-open (fd time)
  "Returns a snapshot writer appending to FD, frames stamped TIME.  Signals unix-error."
  (let ((p (ffi:c-inline (fd time) (:int :int64-t) :pointer-void
             "crow_statlog_snap_new(#0, #1)" :one-liner t)))
    (when (ffi:null-pointer-p p) (unix-error +enomem+ "crow_statlog_snap_new"))
    p))

(defun statlog-snapshot-add (sw type flags key value created modified text)
  "Adds one entry to SW: TYPE :restore or :meta, KEY and TEXT (or NIL) base-strings of bytes.
Returns NIL.  Signals unix-error (a write error, EINVAL)."
  (let ((n (ecase type (:restore 5) (:meta 6)))
        (key (coerce key 'simple-base-string))
        (text (and text (coerce text 'simple-base-string))))
    (multiple-value-bind (r errno)
        (ffi:c-inline (sw n flags key value created modified text)
                      (:pointer-void :int :int :object :int64-t :int64-t :int64-t :object)
                      (values :int :int)
          "{ cl_object k = #3, t = #7;
             int r = crow_statlog_snap_add(#0, (unsigned)#1, (unsigned)#2,
                        (const char *)k->base_string.self, k->base_string.fillp, #4, #5, #6,
                        t == ECL_NIL ? NULL : (const char *)t->base_string.self,
                        t == ECL_NIL ? 0 : t->base_string.fillp);
             @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")
      (when (minusp r) (unix-error errno "snapshot write"))
      nil)))

(defun statlog-snapshot-finish (sw)
  "Writes SW's last frame, fsyncs and frees it.  Returns NIL.  Signals unix-error."
  (multiple-value-bind (r errno)
      (ffi:c-inline (sw) (:pointer-void) (values :int :int)
        "{ int r = crow_statlog_snap_finish(#0); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")
    (when (minusp r) (unix-error errno "snapshot fsync"))
    nil))

(defun glob-match-p (pattern string)
  "True when base-string STRING matches the shell PATTERN (fnmatch(3), no flags).  Can't
fail."
  (let ((p (coerce pattern 'simple-base-string)))
    (ffi:c-inline (p string) (:object :object) :bool
      "{ cl_object s = #1; char buf[1024]; size_t n = s->base_string.fillp;
         if (n >= sizeof buf) n = sizeof buf - 1;
         memcpy(buf, s->base_string.self, n); buf[n] = 0;
         @(return) = fnmatch((const char *)#0->base_string.self, buf, 0) == 0; }")))

(defun glob-pattern-p (key)
  "True when KEY (a base-string) holds a shell pattern character (*, ? or [).  Can't fail."
  (if (typep key 'base-string)
      (ffi:c-inline (key) (:object) :bool
        "{ cl_object s = #0; const char *p = (const char *)s->base_string.self;
           size_t n = s->base_string.fillp;
           @(return) = memchr(p, '*', n) || memchr(p, '?', n) || memchr(p, '[', n); }")
      (and (find-if (lambda (c) (member c '(#\* #\? #\[))) key) t)))

(defun statlog-iter-fetch (it buffer)
  "Loads the next operation into IT and its key into BUFFER (as statlog-iter-key-into).
Returns (values TYPE FLAGS VALUE TIME PATTERN-P): TYPE 0 at the end; PATTERN-P true when the
key holds *, ? or [.  One call per operation for the apply loop.  Can't fail."
  (ffi:c-inline (it buffer) (:pointer-void :object) (values :int :int :int64-t :int64-t :bool)
    "{ struct crow_statlog_iter *i = #0; cl_object s = #1;
       if (!crow_statlog_iter_next(i)) {
         @(return 0) = 0; @(return 1) = 0; @(return 2) = 0; @(return 3) = 0; @(return 4) = 0;
       } else {
         memcpy(s->base_string.self, i->key, i->keylen); s->base_string.fillp = i->keylen;
         @(return 0) = (int)i->type; @(return 1) = (int)i->flags; @(return 2) = i->value;
         @(return 3) = i->time;
         @(return 4) = memchr(i->key, '*', i->keylen) || memchr(i->key, '?', i->keylen)
                       || memchr(i->key, '[', i->keylen);
       } }"))

(defun truncate-file (path length)
  "Truncates PATH to LENGTH bytes and fsyncs it.  Returns NIL.  Signals unix-error."
  (let ((c (string-to-c path)))
    (multiple-value-bind (r errno)
        (ffi:c-inline (c length) (:object :int64-t) (values :int :int)
          "{ int fd = open((const char *)#0->vector.self.b8, O_WRONLY | O_CLOEXEC), r = -1, e = 0;
             if (fd < 0) e = errno;
             else { r = ftruncate(fd, (off_t)#1); if (r == 0) r = fsync(fd); if (r < 0) e = errno;
                    close(fd); }
             @(return 0) = r; @(return 1) = e; }")
      (when (minusp r) (unix-error errno "truncate" path))
      nil)))

(defun lock-file (path)
  "Opens (creating) PATH and takes an exclusive flock(2) on it without waiting.  Returns the
descriptor (the lock lasts until it is closed or the process ends), or NIL when another
process holds the lock.  Signals unix-error."
  (let ((c (string-to-c path)))
    (multiple-value-bind (fd errno)
        (ffi:c-inline (c) (:object) (values :int :int)
          "{ int fd = open((const char *)#0->vector.self.b8, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
             int e = 0;
             if (fd < 0) e = errno;
             else { int r; do r = flock(fd, LOCK_EX | LOCK_NB); while (r < 0 && errno == EINTR);
                    if (r < 0) { e = errno; close(fd); fd = e == EWOULDBLOCK ? -2 : -1; } }
             @(return 0) = fd; @(return 1) = e; }")
      (cond ((>= fd 0) fd)
            ((= fd -2) nil)
            (t (unix-error errno "flock" path))))))
