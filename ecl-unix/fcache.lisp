;;;; fcache.lisp — bindings to c-core/fcache: whole-file answers Lisp has decided, replayed by
;;;; a worker's C event loop for the same plain GET/HEAD requests without calling Lisp.

(in-package :crow.unix)

(ffi:clines "#include <errno.h>" "#include <string.h>" "#include \"evloop.h\""
            "#include \"fcache.h\"")

(defun ev-fcache-attach (ev &key prefix close-line keep-line end defer (max-headers 64)
                              (max-entries 4096) (max-bytes (* 64 1024 1024)) (max-fds 256))
  "Gives EV (an event loop) a new file-answer table as its C answerer, replacing any other,
with the response pieces PREFIX (status line to the Date value), CLOSE-LINE, KEEP-LINE and END
\(base-strings, see fcache.h), DEFER (a list of header names sending a request to Lisp) and
its bounds (MAX-FDS: descriptor entries, i.e. files beyond the in-memory size, each a
dup'ed descriptor).  Must be called in EV's worker thread.  Returns T.  Signals unix-error (ENOMEM)."
  (let ((defer (coerce (format nil "~{~a~^~%~}" defer) 'simple-base-string))
        (strings (vector (coerce prefix 'simple-base-string)
                         (coerce close-line 'simple-base-string)
                         (coerce keep-line 'simple-base-string)
                         (coerce end 'simple-base-string)))
        (p (%ev-ptr ev)))
    (let ((errno (ffi:c-inline (p strings defer max-headers max-entries max-bytes max-fds)
                               (:pointer-void :object :object :int :fixnum :fixnum :fixnum) :int
                   "{ cl_object *v = #1->vector.self.t; struct crow_fcache_config c;
                      c.prefix = (const char *)v[0]->base_string.self;
                      c.close_line = (const char *)v[1]->base_string.self;
                      c.keep_line = (const char *)v[2]->base_string.self;
                      c.end = (const char *)v[3]->base_string.self;
                      c.defer = (const char *)#2->base_string.self;
                      c.max_headers = (unsigned)#3; c.max_entries = (size_t)#4; c.max_bytes = (size_t)#5;
                      c.max_fds = (size_t)#6;
                      struct crow_fcache *fc = crow_fcache_new(&c);
                      if (fc) crow_fcache_attach(fc, (struct crow_ev *)#0);
                      @(return) = fc ? 0 : errno; }")))
      (unless (zerop errno) (unix-error errno "crow_fcache_new"))
      t)))

(declaim (inline ev-fcache-p))
(defun ev-fcache-p (ev)
  "True when EV has a file-answer table (ev-fcache-attach).  Can't fail."
  (ffi:c-inline ((%ev-ptr ev)) (:pointer-void) :bool
    "crow_ev_answerer_arg((struct crow_ev *)#0) != NULL" :one-liner t))

(defun ev-fcache-put (ev unit path fd size ino mtime head data)
  "Records in EV's file-answer table that requests with the same Host and path as the
:request UNIT are answered with the whole file: HEAD (a base-string: the head after the Date
value, up to the connection line), then DATA (octets: the whole file) or, when DATA is NIL,
SIZE bytes of descriptor FD (duplicated).  PATH (a string, or NIL for bytes that never
change) is re-stat'ed once a second and the entry dropped when INO, SIZE or MTIME moved.
Returns T, or NIL and the errno when the request does not qualify (EINVAL), a decision it
rests on has changed meanwhile (ESTALE) or the table has no room, or when EV has no table.
Can't fail otherwise."
  (let ((p (%ev-ptr ev)) (u (%unit-ptr unit))
        (path (if path (string-to-c path) nil))
        (head (coerce head 'simple-base-string)))
    (let ((errno (ffi:c-inline (p u path (or fd -1) size ino mtime head data)
                               (:pointer-void :pointer-void :object :int :uint64-t :uint64-t
                                :int64-t :object :object) :int
                   "{ struct crow_fcache *fc = crow_ev_answerer_arg((struct crow_ev *)#0);
                      struct crow_fcache_file f; int r;
                      f.path = #2 == ECL_NIL ? NULL : (const char *)#2->vector.self.b8;
                      f.fd = #3; f.size = #4; f.ino = #5; f.mtime = #6;
                      f.head = (const char *)#7->base_string.self; f.head_len = #7->base_string.fillp;
                      f.data = #8 == ECL_NIL ? NULL : (const void *)#8->vector.self.b8;
                      if (f.data && (uint64_t)#8->vector.fillp != f.size) { r = -1; errno = EINVAL; }
                      else if (!fc) { r = -1; errno = ENOENT; }
                      else r = crow_fcache_put(fc, (const struct crow_ev_unit *)#1, &f);
                      @(return) = r < 0 ? errno : 0; }")))
      (if (zerop errno) t (values nil errno)))))

(defun fcache-invalidate ()
  "Empties every worker's file-answer table at its next use (call it after a change to what
file answers rest on: routes, vhosts, media types).  Any thread.  Returns T."
  (ffi:c-inline () () :void "crow_fcache_invalidate()" :one-liner t)
  t)

(defun ev-fcache-stats (ev)
  "Returns EV's file-answer table counters as a plist (:entries :bytes :fds :hits :misses), or
NIL when EV has none."
  (when (ev-fcache-p ev)
    (multiple-value-bind (e b h m f)
        (ffi:c-inline ((%ev-ptr ev)) (:pointer-void)
                      (values :uint64-t :uint64-t :uint64-t :uint64-t :uint64-t)
          "{ struct crow_fcache_stats s; crow_fcache_stats(crow_ev_answerer_arg((struct crow_ev *)#0), &s);
             @(return 0) = s.entries; @(return 1) = s.bytes; @(return 2) = s.hits; @(return 3) = s.misses;
             @(return 4) = s.fds; }")
      (list :entries e :bytes b :fds f :hits h :misses m))))
