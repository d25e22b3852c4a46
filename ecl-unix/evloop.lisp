;;;; evloop.lisp — bindings to c-core/evloop: a per-thread epoll loop in C that hands whole
;;;; protocol units (lines, HTTP requests, raw reads) to Lisp and writes replies with writev.

(in-package :crow.unix)

(ffi:clines "#include <errno.h>" "#include <stdlib.h>" "#include <string.h>" "#include <strings.h>"
            "#include <sys/uio.h>" "#include \"evloop.h\"")

(define-c-constants
  (+ev-raw+ "CROW_EV_RAW") (+ev-line+ "CROW_EV_LINE") (+ev-http+ "CROW_EV_HTTP")
  (+ev-close-after+ "CROW_EV_CLOSE_AFTER") (+ev-more+ "CROW_EV_MORE")
  (+ev-exclusive+ "CROW_EV_EXCLUSIVE") (+ev-reuseport+ "CROW_EV_REUSEPORT"))

(defparameter *ev-kinds*
  #(nil :data :line :request :too-long :bad :too-large :open :closed :head)
  "crow_ev_unit.kind number -> keyword.")

(defstruct (ev (:constructor %make-ev (pointer)))
  "A C event loop (struct crow_ev); one per worker thread."
  pointer)

(defstruct (ev-unit (:constructor %make-ev-unit (pointer)))
  "A reusable C struct crow_ev_unit that ev-next fills; DATA is the handler's own, for state
it keeps per worker (crow.http keeps its request object there)."
  pointer (data nil))

(defmacro %ev-ptr (ev)
  "EV's C pointer, read in place: a defstruct reader is a full call through its symbol from
any other file, and si:instance-ref a call of ecl_instance_ref, several times per request.  Memory-safe for any argument: anything but an instance with a slot goes
to ecl_instance_ref, which signals the error, and the c-inline's :pointer-void conversion
checks for a foreign pointer.  (Not si:structure-ref with a quoted name: ECL 21 lost the quote when it
inlined such a form from another file's inline function, and the read crashed.)"
  `(ffi:c-inline (,ev) (:object) :object
                 "((ECL_INSTANCEP(#0) && (#0)->instance.length > 0) ? (#0)->instance.slots[0] : ecl_instance_ref(#0, 0))"
                 :one-liner t :side-effects nil))

(defmacro %unit-ptr (unit)
  "UNIT's C pointer, as %ev-ptr."
  `(%ev-ptr ,unit))

(define-compiler-macro ev-unit-data (&whole form unit)
  ;; read in place, as %ev-ptr (the reader is a full call: once per request in crow.http)
  (declare (ignore form))
  `(ffi:c-inline (,unit) (:object) :object
                 "((ECL_INSTANCEP(#0) && (#0)->instance.length > 1) ? (#0)->instance.slots[1] : ecl_instance_ref(#0, 1))"
                 :one-liner t :side-effects nil))

(defun ev-mode-number (mode)
  (ecase mode (:raw +ev-raw+) (:line +ev-line+) (:http +ev-http+)))

(defun %ev-octets (x)
  "X as octets: a string's character codes (for a refusal reply written as text)."
  (if (stringp x) (map 'octets #'char-code x) x))

(defun make-ev-loop (&key (max-connections 1024) refusal timeout-reply (idle-ms 60000)
                       (head-ms 30000) (write-ms 60000) (read-size 4096) (max-line 8192)
                       (max-head 8192) (max-body (* 1024 1024)) (max-raw 65536)
                       notify-open notify-close (nodelay t) admit (bandwidth-in 0)
                       (bandwidth-out 0) timeout-started-only head-first
                       (head-first-over 0) (linger-ms 5000) (linger-max (* 64 1024 1024))
                       (busy-poll-us 0))
  "Returns a new event loop.  REFUSAL (octets or a base-string) is written to connections
refused beyond MAX-CONNECTIONS or by ADMIT; TIMEOUT-REPLY before a timed-out connection closes.
ADMIT (see make-admit) is an admission table the loop's connections enter at accept and leave
when they close; several loops may share it, and it must outlive them; its per-address
bandwidth totals apply to the loop's connections.  With TIMEOUT-STARTED-ONLY the timeout
reply goes only to a connection on which a unit had begun (an idle one closes silently).
With HEAD-FIRST an HTTP head announcing a body (Expect: 100-continue, chunked, or a
Content-Length above HEAD-FIRST-OVER) comes first as a :head unit: answer it with
ev-continue (and a per-request body limit) or with a closing reply.  BANDWIDTH-IN/-OUT limit each connection's
reads/writes to that many bytes/s (0 = unlimited).  An HTTP connection closing while its client
may still be sending lingers (its input read and dropped until the client's end of file) for at
most LINGER-MS milliseconds (0: it closes at once) and LINGER-MAX bytes.  After a busy stretch
the loop polls for new events for up to BUSY-POLL-US microseconds before it sleeps (0: off; see
busy_poll_us in c-core/evloop.h).  Signals unix-error."
  (let ((refusal (%ev-octets (or refusal (make-octets 0))))
        (tmo (%ev-octets (or timeout-reply (make-octets 0))))
        (ap (if admit (%admit-live admit) (ffi:make-null-pointer :void)))
        (sizes (vector max-connections idle-ms head-ms write-ms read-size max-line max-head
                       max-body max-raw (if notify-open 1 0) (if notify-close 1 0)
                       (if nodelay 1 0) bandwidth-in bandwidth-out
                       (if timeout-started-only 1 0) (if head-first 1 0) head-first-over
                       linger-ms linger-max busy-poll-us)))
    (check-type refusal octets)
    (check-type tmo octets)
    (check-type bandwidth-in (integer 0 #.(expt 2 62)))
    (check-type bandwidth-out (integer 0 #.(expt 2 62)))
    (check-type linger-ms (integer 0 #.(1- (expt 2 32))))
    (check-type linger-max (integer 0 #.(expt 2 62)))
    (check-type busy-poll-us (integer 0 1000000))
    (multiple-value-bind (p errno)
        (ffi:c-inline (refusal tmo sizes ap) (:object :object :object :pointer-void)
                      (values :pointer-void :int)
          "{ struct crow_ev_config c; cl_object *v = #2->vector.self.t;
             crow_ev_config_init(&c);
             c.max_connections = ecl_to_size(v[0]); c.idle_ms = ecl_to_uint(v[1]);
             c.head_ms = ecl_to_uint(v[2]); c.write_ms = ecl_to_uint(v[3]);
             c.read_size = ecl_to_size(v[4]); c.max_line = ecl_to_size(v[5]);
             c.max_head = ecl_to_size(v[6]); c.max_body = ecl_to_size(v[7]);
             c.max_raw = ecl_to_size(v[8]); c.notify_open = ecl_to_int(v[9]);
             c.notify_close = ecl_to_int(v[10]); c.nodelay = ecl_to_int(v[11]);
             c.bandwidth_in = ecl_to_uint64_t(v[12]); c.bandwidth_out = ecl_to_uint64_t(v[13]);
             c.timeout_started_only = ecl_to_int(v[14]);
             c.head_first = ecl_to_int(v[15]); c.head_first_over = ecl_to_size(v[16]);
             c.linger_ms = ecl_to_uint(v[17]); c.linger_max = ecl_to_size(v[18]);
             c.busy_poll_us = ecl_to_uint(v[19]);
             c.admit = (struct crow_admit *)#3;
             c.refusal = (const char *)#0->vector.self.b8; c.refusal_len = #0->vector.fillp;
             c.timeout_reply = (const char *)#1->vector.self.b8; c.timeout_reply_len = #1->vector.fillp;
             struct crow_ev *ev = crow_ev_new(&c);
             @(return 0) = ev; @(return 1) = ev ? 0 : errno; }")
      (when (ffi:null-pointer-p p) (unix-error errno "crow_ev_new"))
      (%make-ev p))))

(defun ev-destroy (ev)
  "Closes every connection of EV and frees it (listeners stay open).  Can't fail."
  (let ((p (%ev-ptr ev)))
    (when p
      (setf (ev-pointer ev) nil)
      (ffi:c-inline (p) (:pointer-void) :void "crow_ev_destroy((struct crow_ev *)#0)" :one-liner t))))

(defun ev-tcp-listener (host port &key reuseport (backlog 511))
  "Returns a non-blocking TCP listener on HOST:PORT (numeric address), with SO_REUSEPORT when
REUSEPORT.  Signals unix-error."
  (let ((h (string-to-c host))
        (flags (if reuseport +ev-reuseport+ 0)))
    (check-syscall ("listen" (format nil "~a:~a" host port))
      (ffi:c-inline (h port flags backlog) (:object :int :int :int) (values :int :int)
        "{ int r = crow_ev_tcp_listener((char *)#0->vector.self.b8, #1, #2, #3);
           @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))))

(defun ev-listen (ev fd mode &key exclusive tls-context)
  "Makes EV accept connections from listener FD, framed in MODE (:raw, :line or :http); with
TLS-CONTEXT (a server tls-context, which must outlive EV) they speak TLS (listen-tls), units
and replies staying plaintext.  Returns the listener's index.  Signals unix-error."
  (let ((p (%ev-ptr ev)) (m (ev-mode-number mode)) (f (if exclusive +ev-exclusive+ 0))
        (ctx (if tls-context (tls-context-pointer tls-context) (ffi:make-null-pointer :void))))
    (check-syscall ("crow_ev_listen")
      (ffi:c-inline (p fd m f ctx) (:pointer-void :int :int :int :pointer-void) (values :int :int)
        "{ int r = #4 ? crow_ev_listen_tls((struct crow_ev *)#0, #1, #2, #3, (struct crow_tls_ctx *)#4)
                      : crow_ev_listen((struct crow_ev *)#0, #1, #2, #3);
           @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))))

(defun make-ev-unit ()
  "Returns a unit buffer for ev-next (C memory; free it with ev-unit-free).  Signals
unix-error (ENOMEM)."
  (multiple-value-bind (p errno)
      (ffi:c-inline () () (values :pointer-void :int)
        "{ void *u = calloc(1, sizeof(struct crow_ev_unit)); @(return 0) = u; @(return 1) = u ? 0 : errno; }")
    (when (ffi:null-pointer-p p) (unix-error errno "calloc"))
    (%make-ev-unit p)))

(defun ev-unit-free (unit)
  "Frees UNIT's C memory.  Can't fail."
  (let ((p (%unit-ptr unit)))
    (when p
      (setf (ev-unit-pointer unit) nil)
      (ffi:c-inline (p) (:pointer-void) :void "free(#0)" :one-liner t))))

(defun-inline ev-next (ev unit timeout-ms)
  "Runs EV's loop until a unit is ready (returns its kind: :data :line :request :too-long :bad
:too-large :open :closed), or until TIMEOUT-MS passed or ev-wake was called (returns NIL).
Signals unix-error."
  (declare (fixnum timeout-ms))
  (let ((p (%ev-ptr ev)) (u (%unit-ptr unit)))
    (declare (optimize (safety 1)))     ; *ev-kinds* read in place (no unbound check)
    (multiple-value-bind (r kind errno)
        (ffi:c-inline (p u timeout-ms) (:pointer-void :pointer-void :int) (values :int :int :int)
          "{ struct crow_ev_unit *u = (struct crow_ev_unit *)#1;
             int r = crow_ev_next((struct crow_ev *)#0, u, #2);
             @(return 0) = r; @(return 1) = r > 0 ? u->kind : 0; @(return 2) = r < 0 ? errno : 0; }")
      (cond ((plusp r) (svref *ev-kinds* kind))
            ((zerop r) nil)
            (t (unix-error errno "crow_ev_next"))))))

(defun-inline ev-unit-conn (unit)
  "Returns the connection id of the unit last handed out in UNIT."
  (ffi:c-inline ((%unit-ptr unit)) (:pointer-void) :uint64-t
    "((struct crow_ev_unit *)#0)->conn" :one-liner t))

(defun ev-unit-length (unit)
  "Returns the byte length of the unit's data."
  (ffi:c-inline ((%unit-ptr unit)) (:pointer-void) :fixnum
    "(cl_fixnum)((struct crow_ev_unit *)#0)->len" :one-liner t))

(defun ev-unit-octets (unit &optional buffer (start 0) end)
  "Returns the unit's bytes [START,END) copied into BUFFER (grown when too small, or fresh)
and the count: (values BUFFER COUNT)."
  (let* ((len (ev-unit-length unit))
         (end (min len (or end len)))
         (n (max 0 (- end start)))
         (buf (if (and buffer (>= (length buffer) n)) buffer (make-octets n))))
    (ffi:c-inline ((%unit-ptr unit) buf start n) (:pointer-void :object :fixnum :fixnum) :void
      "memcpy(#1->vector.self.b8, ((struct crow_ev_unit *)#0)->data + #2, (size_t)#3)" :one-liner t)
    (values buf n)))

(defun %unit-base-string (unit off len)
  (ffi:c-inline ((%unit-ptr unit) off len) (:pointer-void :fixnum :fixnum) :object
    "ecl_make_simple_base_string(((struct crow_ev_unit *)#0)->data + #1, #2)" :one-liner t))

(defun ev-unit-line (unit)
  "Returns a :line unit's text (terminator excluded) as a base-string of its bytes."
  (%unit-base-string unit 0 (ev-unit-length unit)))

(defun ev-unit-peer (unit)
  "Returns the unit's peer address as \"1.2.3.4:5\", \"[::1]:5\" or \"unix\"."
  (ffi:c-inline ((%unit-ptr unit)) (:pointer-void) :object
    "{ const char *p = ((struct crow_ev_unit *)#0)->peer; @(return) = ecl_make_simple_base_string(p ? p : \"\", -1); }"))

(defun ev-unit-method (unit)
  "Returns a :request unit's method as a base-string (\"GET\")."
  (multiple-value-bind (off len)
      (ffi:c-inline ((%unit-ptr unit)) (:pointer-void) (values :fixnum :fixnum)
        "{ struct crow_ev_unit *u = (struct crow_ev_unit *)#0; @(return 0) = u->http.method_off; @(return 1) = u->http.method_len; }")
    (%unit-base-string unit off len)))

(defun ev-unit-target (unit)
  "Returns a :request unit's request target as a base-string (\"/index.html?q=1\")."
  (multiple-value-bind (off len)
      (ffi:c-inline ((%unit-ptr unit)) (:pointer-void) (values :fixnum :fixnum)
        "{ struct crow_ev_unit *u = (struct crow_ev_unit *)#0; @(return 0) = u->http.target_off; @(return 1) = u->http.target_len; }")
    (%unit-base-string unit off len)))

(defun ev-unit-http (unit)
  "Returns a :request unit's facts: (values VERSION KEEP-ALIVE CHUNKED CONTENT-LENGTH
HEAD-LENGTH BODY-LENGTH HEADER-COUNT); VERSION 10 or 11, CONTENT-LENGTH -1 when absent."
  (ffi:c-inline ((%unit-ptr unit)) (:pointer-void)
                (values :int :bool :bool :int64-t :fixnum :fixnum :fixnum)
    "{ struct crow_ev_http *h = &((struct crow_ev_unit *)#0)->http;
       @(return 0) = h->version; @(return 1) = h->keep_alive; @(return 2) = h->chunked;
       @(return 3) = h->content_length; @(return 4) = h->head_len; @(return 5) = h->body_len;
       @(return 6) = h->nheaders; }"))

(defun ev-unit-header (unit name)
  "Returns the value of a :request unit's first header NAME (matched without regard to ASCII
case) as a base-string, or NIL."
  (let ((n (string-to-c name)))
    (multiple-value-bind (off len)
        (ffi:c-inline ((%unit-ptr unit) n) (:pointer-void :object) (values :fixnum :fixnum)
          "{ struct crow_ev_unit *u = (struct crow_ev_unit *)#0; const char *nm = (const char *)#1->vector.self.b8;
             size_t nl = strlen(nm); uint32_t i; cl_fixnum off = -1, len = 0;
             for (i = 0; i < u->http.nheaders; i++) { const struct crow_ev_header *h = &u->http.headers[i];
               if (h->name_len == nl && !strncasecmp(u->data + h->name_off, nm, nl)) { off = h->value_off; len = h->value_len; break; } }
             @(return 0) = off; @(return 1) = len; }")
      (and (>= off 0) (%unit-base-string unit off len)))))

(defun ev-unit-headers (unit)
  "Returns a :request unit's header fields as a list of (NAME . VALUE) base-strings, in order."
  (let ((n (nth-value 6 (ev-unit-http unit))))
    (loop for i below n
          collect (multiple-value-bind (no nl vo vl)
                      (ffi:c-inline ((%unit-ptr unit) i) (:pointer-void :fixnum)
                                    (values :fixnum :fixnum :fixnum :fixnum)
                        "{ const struct crow_ev_header *h = &((struct crow_ev_unit *)#0)->http.headers[#1];
                           @(return 0) = h->name_off; @(return 1) = h->name_len; @(return 2) = h->value_off; @(return 3) = h->value_len; }")
                    (cons (%unit-base-string unit no nl) (%unit-base-string unit vo vl))))))

(defun-inline ev-reply* (ev conn parts close more)
  "ev-reply with positional arguments (no keyword parsing on a per-response path): writes
PARTS with one writev; returns T, or NIL when the connection has gone; signals unix-error."
  ;; PARTS is checked in C (a declaration costs a call of cl_simple_vector_p), and the flags
  ;; made there (the constants are specials)
  (let ((p (%ev-ptr ev)))
    (multiple-value-bind (r errno)
        (ffi:c-inline (p conn parts close more) (:pointer-void :uint64-t :object :object :object)
                      (values :int :int)
          "{ cl_index n, i; struct iovec stackv[16], *iov = stackv;
             int flags = (Null(#3) ? 0 : CROW_EV_CLOSE_AFTER) | (Null(#4) ? 0 : CROW_EV_MORE);
             if (!(ECL_VECTORP(#2) && (#2)->vector.elttype == ecl_aet_object
                   && !ECL_ARRAY_HAS_FILL_POINTER_P(#2)))
               FEwrong_type_argument(ecl_read_from_cstring(\"SIMPLE-VECTOR\"), #2);
             n = #2->vector.dim;
             if (n > 16) iov = (struct iovec *)ecl_alloc_atomic(n * sizeof *iov);
             for (i = 0; i < n; i++) { cl_object x = #2->vector.self.t[i];
               if (ECL_BASE_STRING_P(x)) { iov[i].iov_base = x->base_string.self; iov[i].iov_len = x->base_string.fillp; }
               else { iov[i].iov_base = x->vector.self.b8; iov[i].iov_len = x->vector.fillp; } }
             int r = crow_ev_reply((struct crow_ev *)#0, #1, iov, (int)n, flags);
             @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")
      (cond ((zerop r) t)
            ((or (= errno +ebadf+) (= errno +epipe+) (= errno +econnreset+)) nil)
            (t (unix-error errno "crow_ev_reply"))))))

(defun ev-reply (ev conn parts &key close more)
  "Writes PARTS (a simple-vector of base-strings and octet vectors) to connection CONN with one
writev, queueing what the socket does not take.  CLOSE closes after the write; MORE keeps the
unit open for further replies.  Returns T, or NIL when the connection has gone (closed by the
peer or stale).  Signals unix-error for other failures."
  (ev-reply* ev conn parts close more))

(defun ev-sendfile (ev conn fd offset length &key close more)
  "Queues LENGTH bytes of file FD from OFFSET to CONN (sent with sendfile).  Returns T, or NIL
when the connection has gone.  Signals unix-error."
  (let ((p (%ev-ptr ev))
        (flags (logior (if close +ev-close-after+ 0) (if more +ev-more+ 0))))
    (multiple-value-bind (r errno)
        (ffi:c-inline (p conn fd offset length flags) (:pointer-void :uint64-t :int :int64-t :int64-t :int)
                      (values :int :int)
          "{ int r = crow_ev_sendfile((struct crow_ev *)#0, #1, #2, (off_t)#3, (size_t)#4, #5);
             @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")
      (cond ((zerop r) t)
            ((member errno (list +ebadf+ +epipe+ +econnreset+)) nil)
            (t (unix-error errno "crow_ev_sendfile"))))))

(defun ev-done (ev conn &key close)
  "Finishes CONN's unit without output.  Returns T, or NIL for a stale connection."
  (let ((p (%ev-ptr ev)) (f (if close +ev-close-after+ 0)))
    (zerop (ffi:c-inline (p conn f) (:pointer-void :uint64-t :int) :int
             "crow_ev_done((struct crow_ev *)#0, #1, #2)" :one-liner t))))

(defun ev-continue (ev conn max-body)
  "Lets the body of CONN's :head unit come, at most MAX-BODY bytes (a larger one gives a
:too-large unit); the client gets its 100 Continue if it asked, then the :request unit
follows.  Returns T, or NIL for a stale connection.  Signals unix-error (EINVAL: the unit is
not a :head unit)."
  (let ((p (%ev-ptr ev)))
    (multiple-value-bind (r errno)
        (ffi:c-inline (p conn max-body) (:pointer-void :uint64-t :int64-t) (values :int :int)
          "{ int r = crow_ev_continue((struct crow_ev *)#0, #1, (size_t)#2);
             @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")
      (cond ((zerop r) t)
            ((= errno +ebadf+) nil)
            (t (unix-error errno "crow_ev_continue"))))))

(defun ev-close (ev conn)
  "Closes CONN now.  Returns T, or NIL for a stale connection."
  (let ((p (%ev-ptr ev)))
    (zerop (ffi:c-inline (p conn) (:pointer-void :uint64-t) :int
             "crow_ev_close((struct crow_ev *)#0, #1)" :one-liner t))))

(defun ev-wake (ev)
  "Makes EV's ev-next return NIL promptly; callable from any thread.  Returns T."
  (let ((p (%ev-ptr ev)))
    (when p (ffi:c-inline (p) (:pointer-void) :int "crow_ev_wake((struct crow_ev *)#0)" :one-liner t))
    t))

(defun ev-date (ev)
  "Returns the current IMF-fixdate (refreshed at most once a second) as a base-string."
  (ffi:c-inline ((%ev-ptr ev)) (:pointer-void) :object
    "ecl_make_simple_base_string(crow_ev_date((struct crow_ev *)#0), 29)" :one-liner t))

(defun ev-stats (ev)
  "Returns EV's counters as a plist (:accepted :open :closed :refused :timeouts :units
:bytes-in :bytes-out)."
  (multiple-value-bind (a o c r tm u bi bo)
      (ffi:c-inline ((%ev-ptr ev)) (:pointer-void)
                    (values :uint64-t :uint64-t :uint64-t :uint64-t :uint64-t :uint64-t :uint64-t :uint64-t)
        "{ struct crow_ev_stats s; crow_ev_stats((struct crow_ev *)#0, &s);
           @(return 0) = s.accepted; @(return 1) = s.open; @(return 2) = s.closed; @(return 3) = s.refused;
           @(return 4) = s.timeouts; @(return 5) = s.units; @(return 6) = s.bytes_in; @(return 7) = s.bytes_out; }")
    (list :accepted a :open o :closed c :refused r :timeouts tm :units u :bytes-in bi :bytes-out bo)))

(declaim (inline ev-unit-keep-alive))
(defun ev-unit-keep-alive (unit)
  "Returns true when a :request unit's version and Connection header allow keep-alive."
  (ffi:c-inline ((%unit-ptr unit)) (:pointer-void) :bool
    "((struct crow_ev_unit *)#0)->http.keep_alive" :one-liner t))

(defun ev-unit-method-p (unit method)
  "Returns true when a :request unit's method is METHOD (a base-string, compared exactly in C,
without allocating)."
  (unless (typep method 'simple-base-string)
    (setf method (coerce method 'simple-base-string)))
  (ffi:c-inline ((%unit-ptr unit) method) (:pointer-void :object) :bool
    "{ struct crow_ev_unit *u = (struct crow_ev_unit *)#0;
       @(return) = u->http.method_len == #1->base_string.fillp
                   && !memcmp(u->data + u->http.method_off, #1->base_string.self, u->http.method_len); }"))

(defun ev-unlisten (ev)
  "Makes EV stop accepting (every listener dropped; the descriptors stay open) while it goes
on serving its open connections.  Returns T.  Can't fail."
  (let ((p (%ev-ptr ev)))
    (when p (ffi:c-inline (p) (:pointer-void) :void "crow_ev_unlisten((struct crow_ev *)#0)" :one-liner t))
    t))

(defun-inline ev-unit-listener (unit)
  "Returns the index (in ev-listen order) of the listener that accepted the unit's
connection, or -1 for an adopted descriptor."
  (ffi:c-inline ((%unit-ptr unit)) (:pointer-void) :int
    "((struct crow_ev_unit *)#0)->listener" :one-liner t))
