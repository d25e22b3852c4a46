;;;; sess.lisp — bindings to c-core/sess: blocking-style session I/O for conversational
;;;; protocols (one thread per connection), with timeouts, bandwidth limits and STARTTLS.
;;;;
;;;; Outcomes, decided once for every reading function:
;;;;  - the peer closing, and a timeout, end a conversation: they SIGNAL session-eof and
;;;;    session-timeout (both session-error), which the session server turns into a close;
;;;;    session-read-line also takes EOF-ERROR-P/EOF-VALUE like CL:READ-LINE;
;;;;  - a line too long or breaking the line policy is something the server ANSWERS and goes on
;;;;    from (500 Line too long): session-read-line RETURNS :too-long or :bad for them;
;;;;  - system and TLS failures signal unix-error / tls-error.

(in-package :crow.unix)

(ffi:clines "#include <errno.h>" "#include <string.h>" "#include <sys/uio.h>"
            "#include \"frame.h\"" "#include \"sess.h\"" "#include \"tls.h\"")

(define-c-constants
  (+sess-ok+ "CROW_SESS_OK") (+sess-eof+ "CROW_SESS_EOF") (+sess-timeout+ "CROW_SESS_TIMEOUT")
  (+sess-too-long+ "CROW_SESS_TOO_LONG") (+sess-bad+ "CROW_SESS_BAD")
  (+frame-line-lf-ok+ "CROW_FRAME_LINE_LF_OK") (+frame-line-cr-data+ "CROW_FRAME_LINE_CR_DATA")
  (+frame-smtp-reject-bare+ "CROW_FRAME_SMTP_REJECT_BARE")
  (+frame-f-bare-cr+ "CROW_FRAME_F_BARE_CR") (+frame-f-bare-lf+ "CROW_FRAME_F_BARE_LF")
  (+frame-f-smuggle+ "CROW_FRAME_F_SMUGGLE") (+frame-f-too-big+ "CROW_FRAME_F_TOO_BIG")
  (+frame-f-lf+ "CROW_FRAME_F_LF"))

(define-condition session-error (crow-error)
  ((session :initarg :session :reader session-error-session))
  (:documentation "Root of the conditions that end a session's conversation."))

(define-condition session-eof (session-error) ()
  (:report "The peer closed the session.")
  (:documentation "The peer closed the connection before the unit being read was complete."))

(define-condition session-timeout (session-error)
  ((direction :initarg :direction :initform :read :reader session-timeout-direction))
  (:report (lambda (c s)
             (format s "Session ~(~a~) timeout." (session-timeout-direction c))))
  (:documentation "No input for the idle timeout (DIRECTION :read), or no output taken for the
write timeout (:write)."))

(defstruct (session (:constructor %make-session (pointer fd host port)))
  "A connection served by one thread (struct crow_sess over FD).  HOST and PORT are the peer's
(PORT NIL for AF_UNIX).  DATA is free for the handler."
  pointer fd host port (data nil))

(defun %sess (session)
  (or (session-pointer session)
      (error 'simple-crow-error :format-control "session ~a is closed"
                                :format-arguments (list (session-fd session)))))

(defun %sess-fail (session status errno what)
  "Signals the condition for a failed STATUS.  Does not return."
  (cond ((= status +sess-eof+) (error 'session-eof :session session))
        ((= status +sess-timeout+)
         (error 'session-timeout :session session
                                 :direction (if (member what '("write" "writev" "sendfile")
                                                        :test #'string=)
                                                :write :read)))
        ((= errno +eproto+) (tls-error errno (format nil "session ~a" what)
                                       (session-tls-error session)))
        (t (unix-error errno (format nil "session ~a" what)))))

(defun %ms (seconds)
  (if (and seconds (plusp seconds)) (max 1 (min (round (* seconds 1000)) 2000000000)) 0))

(defun session-set-timeouts (session &key idle write)
  "Sets SESSION's idle timeout (no input for IDLE seconds) and write-stall timeout (no output
taken for WRITE seconds); NIL or 0 means none.  Returns SESSION.  Can't fail."
  (let ((p (%sess session)) (i (%ms idle)) (w (%ms write)))
    (ffi:c-inline (p i w) (:pointer-void :int :int) :void
      "crow_sess_set_timeouts((struct crow_sess *)#0, #1, #2)" :one-liner t))
  session)

(defun session-set-bandwidth (session &key (in 0) (out 0))
  "Limits SESSION to IN and OUT bytes per second (0 or NIL: unlimited); a transfer is never
faster than its limit.  Returns SESSION.  Signals unix-error (EINVAL for an absurd rate)."
  (let ((p (%sess session)) (in (or in 0)) (out (or out 0)))
    (check-syscall ("session bandwidth")
      (ffi:c-inline (p in out) (:pointer-void :uint64-t :uint64-t) (values :int :int)
        "{ int r = crow_sess_set_bandwidth((struct crow_sess *)#0, #1, #2);
           @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")))
  session)

(defun session-set-line-policy (session &key (max-line 1024) (bare-lf t) bare-cr)
  "Sets how session-read-line frames lines: at most MAX-LINE bytes (1 to 1 MiB, terminator not
counted), ending in CRLF, or in a bare LF too when BARE-LF; a bare CR is data when BARE-CR,
else :bad.  Returns SESSION.  Signals unix-error (EINVAL)."
  (let ((p (%sess session))
        (opts (logior (if bare-lf +frame-line-lf-ok+ 0) (if bare-cr +frame-line-cr-data+ 0))))
    (check-syscall ("session line policy" max-line)
      (ffi:c-inline (p max-line opts) (:pointer-void :fixnum :int) (values :int :int)
        "{ int r = crow_sess_set_line((struct crow_sess *)#0, (size_t)#1, (unsigned)#2);
           @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")))
  session)

(defun make-session (fd &key tls-context idle-timeout write-timeout bandwidth-in bandwidth-out
                          (max-line 1024) (bare-lf t) bare-cr (buffer-size 0) (peer t))
  "Returns a session over connected descriptor FD (made non-blocking; the session owns it from
now on: session-close closes it).  IDLE-TIMEOUT and WRITE-TIMEOUT are seconds (NIL: none);
BANDWIDTH-IN/-OUT bytes per second; MAX-LINE, BARE-LF and BARE-CR as for
session-set-line-policy.  With TLS-CONTEXT (a server context: implicit TLS, as on port 465 or
993) the handshake runs now.  PEER NIL skips looking up the peer's address.  Signals
unix-error, tls-error, session-eof or session-timeout (the handshake); FD is closed then."
  (multiple-value-bind (p errno)
      (ffi:c-inline (fd buffer-size) (:int :fixnum) (values :pointer-void :int)
        "{ struct crow_sess *s = crow_sess_new(#0, (size_t)#1);
           @(return 0) = s; @(return 1) = s ? 0 : errno; }")
    (when (ffi:null-pointer-p p)
      (%close fd)
      (unix-error errno "crow_sess_new"))
    (let ((s (%make-session p fd nil nil))
          (ok nil))
      (unwind-protect
           (progn
             (when peer
               (multiple-value-bind (h port) (ignore-errors (peer-address fd))
                 (setf (session-host s) h (session-port s) port)))
             (session-set-timeouts s :idle idle-timeout :write write-timeout)
             (when (or bandwidth-in bandwidth-out)
               (session-set-bandwidth s :in bandwidth-in :out bandwidth-out))
             (unless (and (= max-line 1024) bare-lf (not bare-cr))
               (session-set-line-policy s :max-line max-line :bare-lf bare-lf :bare-cr bare-cr))
             (when tls-context
               (session-starttls s tls-context))
             (setf ok t)
             s)
        (unless ok (session-close s :abort t))))))

(defun session-close (session &key abort)
  "Ends SESSION: sends TLS close_notify (unless ABORT), frees the C session and closes the
descriptor.  Idempotent.  Returns NIL.  Can't fail."
  (let ((p (session-pointer session)))
    (when p
      (setf (session-pointer session) nil)
      (ffi:c-inline (p abort) (:pointer-void :bool) :void
        "{ if (!#1) crow_sess_shutdown((struct crow_sess *)#0);
           crow_sess_free((struct crow_sess *)#0); }")
      (%close (session-fd session))))
  nil)

(defmacro with-session ((var fd &rest options) &body body)
  "Binds VAR to (make-session FD OPTIONS...), runs BODY, and closes the session however BODY
exits."
  `(let ((,var (make-session ,fd ,@options)))
     (unwind-protect (progn ,@body)
       (session-close ,var))))

(defun session-abort (session)
  "Wakes every wait of SESSION at once (shutdown(2) of both directions), from any thread: its
thread then sees end of file.  For a server stopping.  Returns NIL.  Can't fail."
  (let ((fd (session-fd session)))
    (when (session-pointer session)
      (ffi:c-inline (fd) (:int) :void "shutdown(#0, SHUT_RDWR)" :one-liner t)))
  nil)

(defun session-peer (session)
  "Returns (values HOST PORT) of SESSION's peer (PORT NIL for AF_UNIX; HOST NIL if unknown)."
  (values (session-host session) (session-port session)))

(defun session-read-line (session &key (as :string) (eof-error-p t) eof-value)
  "Reads the next line of SESSION without its terminator, as a base-string (AS :string, one
character per byte) or an octet vector (AS :octets).  Returns :too-long for a line over the
maximum and :bad for one breaking the line policy (bare CR or LF): answer it and read on, the
rest of that line is skipped.  At end of file signals session-eof, or returns EOF-VALUE when
EOF-ERROR-P is NIL.  Signals session-timeout, unix-error, tls-error."
  (let ((p (%sess session)) (octets (eq as :octets)))
    (multiple-value-bind (st line errno)
        (ffi:c-inline (p octets) (:pointer-void :bool) (values :int :object :int)
          "{ const unsigned char *l = NULL; size_t n = 0; cl_object r = ECL_NIL;
             int st = crow_sess_read_line((struct crow_sess *)#0, &l, &n, NULL);
             int e = errno;
             if (st == CROW_SESS_OK) {
               if (#1) { r = ecl_alloc_simple_vector(n, ecl_aet_b8); memcpy(r->vector.self.b8, l, n); }
               else { r = ecl_alloc_simple_base_string(n); memcpy(r->base_string.self, l, n); } }
             @(return 0) = st; @(return 1) = r; @(return 2) = st == CROW_SESS_OK ? 0 : e; }")
      (cond ((= st +sess-ok+) line)
            ((= st +sess-too-long+) :too-long)
            ((= st +sess-bad+) :bad)
            ((and (= st +sess-eof+) (not eof-error-p)) eof-value)
            (t (%sess-fail session st errno "read"))))))

(defun session-read-exact (session n &key buffer (start 0))
  "Reads exactly N bytes of SESSION into BUFFER at START (a fresh octet vector of N when
BUFFER is NIL).  Returns the buffer.  Signals session-eof (the peer closed first),
session-timeout, unix-error, tls-error."
  (let* ((buffer (or buffer (make-octets n)))
         (p (%sess session)))
    (check-type buffer octets)
    (check-bounds buffer start (+ start n))
    (multiple-value-bind (st errno)
        (ffi:c-inline (p buffer start n) (:pointer-void :object :fixnum :fixnum) (values :int :int)
          "{ size_t got; int st = crow_sess_read_exact((struct crow_sess *)#0, #1->vector.self.b8 + #2, (size_t)#3, &got);
             @(return 0) = st; @(return 1) = st ? errno : 0; }")
      (if (= st +sess-ok+) buffer (%sess-fail session st errno "read")))))

(defun session-read-some (session buffer &key (start 0) end)
  "Reads between 1 and END - START bytes of SESSION into BUFFER (raw streams).  Returns the
count, or 0 at end of file.  Signals session-timeout, unix-error, tls-error."
  (check-type buffer octets)
  (let ((end (check-bounds buffer start end))
        (p (%sess session)))
    (multiple-value-bind (st n errno)
        (ffi:c-inline (p buffer start end) (:pointer-void :object :fixnum :fixnum) (values :int :fixnum :int)
          "{ size_t got = 0; int st = crow_sess_read_some((struct crow_sess *)#0, #1->vector.self.b8 + #2, (size_t)(#3 - #2), &got);
             @(return 0) = st; @(return 1) = (cl_fixnum)got; @(return 2) = st ? errno : 0; }")
      (cond ((= st +sess-ok+) n)
            ((= st +sess-eof+) 0)
            (t (%sess-fail session st errno "read"))))))

(defun %frame-flags (flags)
  (loop for (bit kw) in (list (list +frame-f-bare-cr+ :bare-cr) (list +frame-f-bare-lf+ :bare-lf)
                              (list +frame-f-smuggle+ :smuggle) (list +frame-f-too-big+ :too-big))
        when (logtest bit flags) collect kw))

(defun session-read-data (session &key (max-size (* 10 1024 1024)) reject-bare)
  "Reads an SMTP message from SESSION (after the 354 reply) up to CRLF.CRLF, dot-unstuffed.
Returns (values OCTETS FLAGS): the message (its last CRLF included), and a list of :bare-cr
:bare-lf (bare line ends seen), :smuggle (an end-of-data look-alike such as LF.LF) and
:too-big (the message was over MAX-SIZE bytes: OCTETS holds only its first MAX-SIZE; answer
552 and go on).  With REJECT-BARE a bare CR or LF returns (values NIL '(:bad)) at once: the
stream cannot be resynchronised, close.  Signals session-eof, session-timeout, unix-error,
tls-error."
  (let ((p (%sess session)) (opts (if reject-bare +frame-smtp-reject-bare+ 0)))
    (multiple-value-bind (st data flags errno)
        (ffi:c-inline (p max-size opts) (:pointer-void :uint64-t :int) (values :int :object :int :int)
          "{ const unsigned char *d = NULL; size_t n = 0; unsigned fl = 0; cl_object r = ECL_NIL;
             int st = crow_sess_read_data((struct crow_sess *)#0, #1, (unsigned)#2, &d, &n, &fl);
             int e = errno;
             if (st == CROW_SESS_OK || st == CROW_SESS_TOO_LONG) {
               r = ecl_alloc_simple_vector(n, ecl_aet_b8); if (n) memcpy(r->vector.self.b8, d, n); }
             @(return 0) = st; @(return 1) = r; @(return 2) = (int)fl; @(return 3) = e; }")
      (cond ((or (= st +sess-ok+) (= st +sess-too-long+))
             (values data (%frame-flags (if (= st +sess-too-long+)
                                            (logior flags +frame-f-too-big+)
                                            flags))))
            ((= st +sess-bad+) (values nil (list :bad)))
            (t (%sess-fail session st errno "read"))))))

(defun %write-parts (items)
  "Returns ITEMS as a simple-vector of simple base-strings and octet vectors (other strings
UTF-8 encoded)."
  (let ((v (make-array (length items))))
    (loop for x in items for i from 0
          do (setf (svref v i)
                   (etypecase x
                     (octets x)
                     (simple-base-string x)
                     (base-string (coerce x 'simple-base-string))
                     (string (utf8-encode x))
                     ((array (unsigned-byte 8) (*)) (coerce x 'octets)))))
    v))

(defun session-write (session &rest items)
  "Writes ITEMS (octet vectors and strings: base-strings as they are, other strings as UTF-8)
to SESSION in order, with one writev when the peer takes it all.  Returns NIL.  Signals
session-timeout (write stall), unix-error (EPIPE, ECONNRESET), tls-error."
  (let ((parts (%write-parts items))
        (p (%sess session)))
    (multiple-value-bind (st errno)
        (ffi:c-inline (p parts) (:pointer-void :object) (values :int :int)
          "{ cl_index n = #1->vector.dim, i; struct iovec stackv[16], *iov = stackv;
             if (n > 16) iov = (struct iovec *)ecl_alloc_atomic(n * sizeof *iov);
             for (i = 0; i < n; i++) { cl_object x = #1->vector.self.t[i];
               if (ECL_BASE_STRING_P(x)) { iov[i].iov_base = x->base_string.self; iov[i].iov_len = x->base_string.fillp; }
               else { iov[i].iov_base = x->vector.self.b8; iov[i].iov_len = x->vector.fillp; } }
             int st = crow_sess_writev((struct crow_sess *)#0, iov, (int)n);
             @(return 0) = st; @(return 1) = st ? errno : 0; }")
      (if (= st +sess-ok+) nil (%sess-fail session st errno "writev")))))

(defun session-sendfile (session fd offset count)
  "Sends COUNT bytes of file FD from OFFSET to SESSION (sendfile, or read + TLS write under
TLS).  Returns the bytes sent, fewer than COUNT only when the file ended.  Signals
session-timeout, unix-error, tls-error."
  (let ((p (%sess session)))
    (multiple-value-bind (st n errno)
        (ffi:c-inline (p fd offset count) (:pointer-void :int :int64-t :int64-t) (values :int :int64-t :int)
          "{ size_t sent = 0; int st = crow_sess_sendfile((struct crow_sess *)#0, #1, (off_t)#2, (size_t)#3, &sent);
             @(return 0) = st; @(return 1) = (int64_t)sent; @(return 2) = st ? errno : 0; }")
      (if (= st +sess-ok+) n (%sess-fail session st errno "sendfile")))))

(defun session-starttls (session context &key host)
  "Upgrades SESSION to TLS with CONTEXT (a server context for FTP AUTH TLS, SMTP STARTTLS,
POP3 STLS, after the go-ahead reply; a client context with HOST for the client side).  Bytes
the peer sent in plaintext after the upgrade command are discarded, never read as if they came
through TLS.  Returns the count discarded (for the log).  Signals tls-error (the session must
be closed then), session-eof, session-timeout, unix-error (EALREADY if already TLS)."
  (let ((p (%sess session))
        (ctx (or (tls-context-pointer context)
                 (error 'simple-crow-error :format-control "TLS context is freed")))
        (h (and host (string-to-c host))))
    (multiple-value-bind (st n errno)
        (ffi:c-inline (p ctx h) (:pointer-void :pointer-void :object) (values :int :fixnum :int)
          "{ size_t d = 0; int st = crow_sess_starttls((struct crow_sess *)#0, (struct crow_tls_ctx *)#1,
                                        #2 == ECL_NIL ? NULL : (char *)#2->vector.self.b8, &d);
             @(return 0) = st; @(return 1) = (cl_fixnum)d; @(return 2) = st ? errno : 0; }")
      (if (= st +sess-ok+) n (%sess-fail session st errno "starttls")))))

(defun session-tls-p (session)
  "Returns true when SESSION runs over TLS.  Can't fail."
  (let ((p (session-pointer session)))
    (and p (ffi:c-inline (p) (:pointer-void) :bool "crow_sess_tls((struct crow_sess *)#0) != NULL"
                         :one-liner t))))

(defun session-tls-version (session)
  "Returns the negotiated TLS version (\"TLSv1.3\") or NIL when plain.  Can't fail."
  (when (session-tls-p session)
    (let ((p (session-pointer session)))
      (ffi:c-inline (p) (:pointer-void) :object
        "ecl_make_simple_base_string(crow_tls_version(crow_sess_tls((struct crow_sess *)#0)), -1)"
        :one-liner t))))

(defun session-tls-error (session)
  "Returns the reason for SESSION's last TLS failure (\"\" when none).  Can't fail."
  (let ((p (session-pointer session)))
    (if p
        (ffi:c-inline (p) (:pointer-void) :object
          "ecl_make_simple_base_string(crow_sess_tls_error((struct crow_sess *)#0), -1)" :one-liner t)
        "")))

(defun session-buffered (session)
  "Returns the bytes received but not yet read.  Can't fail."
  (let ((p (%sess session)))
    (ffi:c-inline (p) (:pointer-void) :fixnum "(cl_fixnum)crow_sess_buffered((struct crow_sess *)#0)"
                  :one-liner t)))

(defun session-counts (session)
  "Returns (values BYTES-IN BYTES-OUT) so far (plaintext).  Can't fail."
  (let ((p (%sess session)))
    (ffi:c-inline (p) (:pointer-void) (values :uint64-t :uint64-t)
      "{ uint64_t i, o; crow_sess_counts((struct crow_sess *)#0, &i, &o); @(return 0) = i; @(return 1) = o; }")))
