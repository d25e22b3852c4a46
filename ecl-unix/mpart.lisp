;;;; mpart.lisp — bindings to c-core/mpart: a streaming multipart/form-data scanner (file parts
;;;; to temporary files as the body arrives), fed from Lisp octets or, through the event
;;;; loop's body sink, straight from the socket.

(in-package :crow.unix)

(ffi:clines "#include <errno.h>" "#include <string.h>" "#include \"evloop.h\"" "#include \"mpart.h\"")

(define-c-constants (+ebadmsg+ "EBADMSG"))

(defstruct (multipart (:constructor %make-multipart (pointer)))
  "A C multipart scanner (struct crow_mpart).  Free it with multipart-free, or hand it to the
event loop with ev-continue-multipart."
  pointer)

(defun make-multipart (boundary &key (directory "/tmp/") (prefix "crow-upload-")
                                     (max-file-size 0) (max-files 16) (max-parts 1000)
                                     (max-memory (* 1024 1024)) (max-part-head 8192))
  "Returns a scanner for one multipart/form-data body with BOUNDARY (a string of 1 to 70
characters): file parts (a filename parameter) go to fresh files DIRECTORY/PREFIXxxxxxx (mode
600), at most MAX-FILES of at most MAX-FILE-SIZE octets each (0: no limit), among at most
MAX-PARTS parts; the other parts' contents and every part's head stay in memory, at most
MAX-MEMORY octets, MAX-PART-HEAD per head.  Signals unix-error (EINVAL for a bad boundary)."
  (let ((b (utf8-encode boundary))
        (d (string-to-c directory))
        (p (string-to-c prefix))
        (limits (vector max-file-size max-files max-parts max-memory max-part-head)))
    (multiple-value-bind (ptr errno)
        (ffi:c-inline (b d p limits) (:object :object :object :object) (values :pointer-void :int)
          "{ struct crow_mpart_config c; cl_object *v = #3->vector.self.t;
             crow_mpart_config_init(&c);
             c.boundary = (const char *)#0->vector.self.b8; c.boundary_len = #0->vector.fillp;
             c.dir = (const char *)#1->vector.self.b8; c.prefix = (const char *)#2->vector.self.b8;
             c.max_file = ecl_to_uint64_t(v[0]); c.max_files = ecl_to_uint(v[1]);
             c.max_parts = ecl_to_uint(v[2]); c.max_memory = ecl_to_size(v[3]);
             c.max_part_head = ecl_to_size(v[4]);
             struct crow_mpart *m = crow_mpart_new(&c);
             @(return 0) = m; @(return 1) = m ? 0 : errno; }")
      (when (ffi:null-pointer-p ptr) (unix-error errno "crow_mpart_new" boundary))
      (%make-multipart ptr))))

(defun %mp (mp)
  (or (multipart-pointer mp) (error 'simple-crow-error :format-control "multipart: already freed"
                                                       :format-arguments '())))

(defun multipart-feed (mp octets &key (start 0) end)
  "Scans OCTETS[START,END) as the next bytes of MP's body.  Returns T.  Signals unix-error:
EFBIG, EMLINK, E2BIG (a limit), EINVAL (after multipart-finish), or a file error (ENOSPC...);
once failed, MP fails the same way ever after."
  (let* ((end (or end (length octets)))
         (p (%mp mp)))
    (check-type octets octets)
    (assert (<= 0 start end (length octets)))
    (multiple-value-bind (r errno)
        (ffi:c-inline (p octets start end) (:pointer-void :object :fixnum :fixnum) (values :int :int)
          "{ int r = crow_mpart_feed((struct crow_mpart *)#0, #1->vector.self.b8 + #2, (size_t)(#3 - #2));
             @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")
      (when (minusp r) (unix-error errno "crow_mpart_feed"))
      t)))

(defun multipart-finish (mp)
  "Says MP's body has ended.  Returns T when its close delimiter was seen; signals unix-error
\(EBADMSG when it was not, or the scanner's earlier error)."
  (let ((p (%mp mp)))
    (multiple-value-bind (r errno)
        (ffi:c-inline (p) (:pointer-void) (values :int :int)
          "{ int r = crow_mpart_finish((struct crow_mpart *)#0); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")
      (when (minusp r) (unix-error errno "crow_mpart_finish"))
      t)))

(defun multipart-error (mp)
  "Returns MP's sticky errno, or 0.  Can't fail."
  (ffi:c-inline ((%mp mp)) (:pointer-void) :int "crow_mpart_error((struct crow_mpart *)#0)"
                :one-liner t))

(defun multipart-memory (mp)
  "Returns a copy of MP's memory buffer (part heads and non-file contents) as octets."
  (ffi:c-inline ((%mp mp)) (:pointer-void) :object
    "{ size_t n; const uint8_t *b = crow_mpart_memory((struct crow_mpart *)#0, &n);
       cl_object v = ecl_alloc_simple_vector(n, ecl_aet_b8); memcpy(v->vector.self.b8, b, n);
       @(return) = v; }"))

(defun multipart-parts (mp)
  "Returns MP's parts in order, each a list (HEAD-START HEAD-END DATA-START SIZE PATH): the
head and (for a memory part) the contents are offsets into multipart-memory; PATH is the
temporary file of a file part (a string), or NIL."
  (let ((p (%mp mp)))
    (loop for i from 0 below (ffi:c-inline (p) (:pointer-void) :fixnum
                               "(cl_fixnum)crow_mpart_count((struct crow_mpart *)#0)" :one-liner t)
          collect (multiple-value-bind (hs hl ds size path)
                      (ffi:c-inline (p i) (:pointer-void :fixnum)
                                    (values :fixnum :fixnum :fixnum :int64-t :object)
                        "{ struct crow_mpart_part q; crow_mpart_get((struct crow_mpart *)#0, (size_t)#1, &q);
                           cl_object s = ECL_NIL;
                           if (q.path) { size_t n = strlen(q.path); s = ecl_alloc_simple_vector(n, ecl_aet_b8);
                                         memcpy(s->vector.self.b8, q.path, n); }
                           @(return 0) = (cl_fixnum)q.head_off; @(return 1) = (cl_fixnum)q.head_len;
                           @(return 2) = (cl_fixnum)q.data_off; @(return 3) = (int64_t)q.size;
                           @(return 4) = s; }")
                    (list hs (+ hs hl) ds size (and path (octets-to-string path)))))))

(defun multipart-free (mp &key unlink)
  "Frees MP's C scanner (closing what it has open); with UNLINK its temporary files are removed,
else they are the caller's.  Returns NIL.  Can't fail (a freed MP is ignored)."
  (let ((p (multipart-pointer mp)))
    (when p
      (setf (multipart-pointer mp) nil)
      (ffi:c-inline (p (if unlink 1 0)) (:pointer-void :int) :void
        "crow_mpart_free((struct crow_mpart *)#0, #1)" :one-liner t))
    nil))

(defun ev-continue-multipart (ev conn max-body mp)
  "As ev-continue, but CONN's body goes to the scanner MP while it arrives (the loop keeps the
head and at most 64 KiB of it; the head deadline then bounds each pause, not the whole body).
MP then belongs to the loop — its Lisp object is emptied — and comes back through
ev-unit-multipart with the :request unit, or is freed (its files removed) if the connection
goes or the body is refused (:too-large, :bad).  Returns T, or NIL for a stale connection
\(MP freed then).  Signals unix-error (EINVAL: not a :head unit; MP freed)."
  (let ((p (ev-pointer ev)) (m (%mp mp)))
    (multiple-value-bind (r errno)
        (ffi:c-inline (p conn max-body m) (:pointer-void :uint64-t :int64-t :pointer-void) (values :int :int)
          "{ struct crow_mpart *m = (struct crow_mpart *)#3;
             int r = crow_ev_continue_sink((struct crow_ev *)#0, #1, (size_t)#2, crow_mpart_sink(m));
             @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")
      (cond ((zerop r) (setf (multipart-pointer mp) nil) t)
            (t (multipart-free mp :unlink t)
               (if (= errno +ebadf+) nil (unix-error errno "crow_ev_continue_sink")))))))

(defun-inline ev-unit-sink-p (unit)
  "True when a :request unit's body went to a sink (ev-continue-multipart).  Can't fail."
  (ffi:c-inline ((%unit-ptr unit)) (:pointer-void) :bool
    "((struct crow_ev_unit *)#0)->http.sink != NULL" :one-liner t))

(defun ev-unit-multipart (unit)
  "Returns the scanner a :request unit's body went to (ev-continue-multipart; it is the
caller's again: free it with multipart-free) and the errno that stopped it (0 when the whole
body was scanned and its close delimiter seen; EBADMSG, EFBIG, EMLINK, E2BIG, ENOSPC...), or
NIL when the body did not go to one."
  (multiple-value-bind (p errno)
      (ffi:c-inline ((ev-unit-pointer unit)) (:pointer-void) (values :pointer-void :int)
        "{ const struct crow_ev_http *h = &((struct crow_ev_unit *)#0)->http;
           @(return 0) = h->sink ? h->sink->arg : NULL; @(return 1) = h->sink ? h->sink_errno : 0; }")
    (if (ffi:null-pointer-p p) (values nil 0) (values (%make-multipart p) errno))))
