;;;; ftpdata.lisp — bindings to c-core/ftpdata: FTP data connections (files and listings sent
;;;; and received with ASCII conversion, throttling, TLS, the control connection watched).
;;;;
;;;; A transfer's outcome is something the server answers (226, 426, 451, 552), not an
;;;; exception: the transfer functions RETURN a status keyword (:ok :timeout :control :limit
;;;; :net :file), the byte count and the errno.

(in-package :crow.unix)

(ffi:clines "#include <errno.h>" "#include <stdint.h>" "#include \"ftpdata.h\"" "#include \"tls.h\"")

(define-c-constants
  (+ftpdata-ok+ "CROW_FTPDATA_OK") (+ftpdata-timeout+ "CROW_FTPDATA_TIMEOUT")
  (+ftpdata-control+ "CROW_FTPDATA_CONTROL") (+ftpdata-limit+ "CROW_FTPDATA_LIMIT")
  (+ftpdata-net+ "CROW_FTPDATA_NET") (+ftpdata-file+ "CROW_FTPDATA_FILE"))

(defun %ftpdata-status (st)
  (cond ((= st +ftpdata-ok+) :ok) ((= st +ftpdata-timeout+) :timeout)
        ((= st +ftpdata-control+) :control) ((= st +ftpdata-limit+) :limit)
        ((= st +ftpdata-file+) :file) (t :net)))

(defstruct (ftpdata (:constructor %make-ftpdata (pointer fd)))
  "An FTP data connection (struct crow_ftpdata); it owns its descriptor FD."
  pointer fd)

(defstruct (ftpdata-share (:constructor %make-ftpdata-share (pointer)))
  "A bandwidth bucket shared by the data connections of one user (struct crow_ftpdata_share)."
  pointer)

(defun make-ftpdata-share (rate)
  "Returns a bucket of RATE bytes/s (0: unlimited) that data connections in any thread may
share.  Signals unix-error (EINVAL: absurd rate; ENOMEM)."
  (multiple-value-bind (p e)
      (ffi:c-inline (rate) (:uint64-t) (values :pointer-void :int)
        "{ struct crow_ftpdata_share *s = crow_ftpdata_share_new(#0);
           @(return 0) = s; @(return 1) = s ? 0 : errno; }")
    (when (ffi:null-pointer-p p) (unix-error e "crow_ftpdata_share_new"))
    (%make-ftpdata-share p)))

(defun free-ftpdata-share (share)
  "Frees SHARE (no data connection may use it any more).  Idempotent.  Can't fail."
  (let ((p (ftpdata-share-pointer share)))
    (when p
      (setf (ftpdata-share-pointer share) nil)
      (ffi:c-inline (p) (:pointer-void) :void
        "crow_ftpdata_share_free((struct crow_ftpdata_share *)#0)" :one-liner t)))
  nil)

(defun make-ftpdata (fd control-fd &key timeout)
  "Returns a data connection over connected descriptor FD, which it owns from now on (closed by
ftpdata-close, or now if this fails), watching CONTROL-FD (NIL: none) so a command sent
during a transfer stops it; TIMEOUT seconds (NIL: none) bound each wait.  Signals unix-error
(ENOMEM)."
  (let ((ms (if (and timeout (plusp timeout)) (max 1 (min 2000000000 (round (* 1000 timeout)))) 0))
        (c (or control-fd -1)))
    (multiple-value-bind (p e)
        (ffi:c-inline (fd c ms) (:int :int :int) (values :pointer-void :int)
          "{ struct crow_ftpdata *d = crow_ftpdata_new(#0, #1, #2);
             @(return 0) = d; @(return 1) = d ? 0 : errno; }")
      (when (ffi:null-pointer-p p) (unix-error e "crow_ftpdata_new"))
      (%make-ftpdata p fd))))

(defun %fd-ptr (d)
  (or (ftpdata-pointer d)
      (error 'simple-crow-error :format-control "data connection is closed" :format-arguments '())))

(defun ftpdata-set-limits (d &key (in 0) (out 0) share-in share-out)
  "Limits D to IN / OUT bytes/s (0 or NIL: unlimited) and to the shared buckets SHARE-IN /
SHARE-OUT (ftpdata-share or NIL).  Returns D.  Signals unix-error (EINVAL)."
  (let ((p (%fd-ptr d)) (in (or in 0)) (out (or out 0))
        (si (if share-in (ftpdata-share-pointer share-in) (ffi:make-null-pointer :void)))
        (so (if share-out (ftpdata-share-pointer share-out) (ffi:make-null-pointer :void))))
    (check-syscall ("crow_ftpdata_set_limits")
      (ffi:c-inline (p in out si so) (:pointer-void :uint64-t :uint64-t :pointer-void :pointer-void)
                    (values :int :int)
        "{ int r = crow_ftpdata_set_limits((struct crow_ftpdata *)#0, #1, #2,
                    (struct crow_ftpdata_share *)#3, (struct crow_ftpdata_share *)#4);
           @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")))
  d)

(defun ftpdata-starttls (d context)
  "Runs the server side of a TLS handshake on D with CONTEXT (PROT P).  Returns (values STATUS
ERRNO REASON): :ok, :timeout or :net (REASON OpenSSL's, for the log)."
  (let ((p (%fd-ptr d))
        (ctx (or (tls-context-pointer context)
                 (error 'simple-crow-error :format-control "TLS context is freed" :format-arguments '()))))
    (multiple-value-bind (st e reason)
        (ffi:c-inline (p ctx) (:pointer-void :pointer-void) (values :int :int :object)
          "{ int st = crow_ftpdata_starttls((struct crow_ftpdata *)#0, (struct crow_tls_ctx *)#1);
             int e = st ? errno : 0;
             @(return 0) = st; @(return 1) = e;
             @(return 2) = ecl_make_simple_base_string(crow_ftpdata_tls_error((struct crow_ftpdata *)#0), -1); }")
      (values (%ftpdata-status st) e reason))))

(defun ftpdata-send (d octets &key ascii (start 0) end)
  "Sends OCTETS[START,END) on D (ASCII: LF as CRLF).  Returns (values STATUS SENT ERRNO), STATUS
one of :ok :timeout :control :net."
  (check-type octets octets)
  (let ((end (check-bounds octets start end)) (p (%fd-ptr d)))
    (multiple-value-bind (st n e)
        (ffi:c-inline (p octets start end ascii) (:pointer-void :object :fixnum :fixnum :bool)
                      (values :int :uint64-t :int)
          "{ uint64_t sent = 0;
             int st = crow_ftpdata_send((struct crow_ftpdata *)#0, #1->vector.self.b8 + #2,
                                        (size_t)(#3 - #2), #4, &sent);
             @(return 0) = st; @(return 1) = sent; @(return 2) = st ? errno : 0; }")
      (values (%ftpdata-status st) n e))))

(defun ftpdata-send-file (d file-fd offset &key ascii)
  "Sends file FILE-FD from OFFSET to its end on D (sendfile for binary on a plain connection;
ASCII: LF as CRLF).  Returns (values STATUS SENT ERRNO), STATUS one of :ok :timeout :control
:net :file."
  (let ((p (%fd-ptr d)))
    (multiple-value-bind (st n e)
        (ffi:c-inline (p file-fd offset ascii) (:pointer-void :int :uint64-t :bool)
                      (values :int :uint64-t :int)
          "{ uint64_t sent = 0;
             int st = crow_ftpdata_send_file((struct crow_ftpdata *)#0, #1, #2, #3, &sent);
             @(return 0) = st; @(return 1) = sent; @(return 2) = st ? errno : 0; }")
      (values (%ftpdata-status st) n e))))

(defun ftpdata-recv-file (d file-fd &key ascii limit fsync)
  "Receives from D until its end of file into FILE-FD (ASCII: CRLF stored as LF), writing at
most LIMIT bytes (NIL: no limit), fsync'ing the file at the end when FSYNC.  Returns (values
STATUS WRITTEN ERRNO), STATUS one of :ok :timeout :control :limit :net :file."
  (let ((p (%fd-ptr d))
        (lim (if limit (max 0 (min limit (1- (ash 1 64)))) (1- (ash 1 64)))))
    (multiple-value-bind (st n e)
        (ffi:c-inline (p file-fd ascii lim fsync) (:pointer-void :int :bool :uint64-t :bool)
                      (values :int :uint64-t :int)
          "{ uint64_t got = 0;
             int st = crow_ftpdata_recv_file((struct crow_ftpdata *)#0, #1, #2, #3, #4, &got);
             @(return 0) = st; @(return 1) = got; @(return 2) = st ? errno : 0; }")
      (values (%ftpdata-status st) n e))))

(defun ftpdata-close (d &key abort)
  "Ends D: TLS close_notify unless ABORT (which resets the connection), then closes its
descriptor.  Idempotent.  Returns NIL.  Can't fail."
  (let ((p (ftpdata-pointer d)))
    (when p
      (setf (ftpdata-pointer d) nil)
      (ffi:c-inline (p abort) (:pointer-void :bool) :void
        "crow_ftpdata_close((struct crow_ftpdata *)#0, #1)" :one-liner t)))
  nil)

;;; Descriptor helpers the FTP server needs beyond fd.lisp and socket.lisp.

(ffi:clines "#include <fcntl.h>" "#include <poll.h>" "#include <sys/stat.h>" "#include <sys/socket.h>" "#include <unistd.h>")

(defun set-oobinline (fd)
  "Keeps urgent (out-of-band) bytes inline on socket FD (SO_OOBINLINE): an FTP client's
ABOR sent with MSG_OOB then reads as a normal command line.  Returns FD.  Signals unix-error."
  (check-syscall ("setsockopt" "SO_OOBINLINE")
    (ffi:c-inline (fd) (:int) (values :int :int)
      "{ int v = 1; int r = setsockopt(#0, SOL_SOCKET, SO_OOBINLINE, &v, sizeof v);
         @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))
  fd)

(defun wait-readable (fd timeout-ms)
  "Waits until FD is readable (or hung up) or TIMEOUT-MS pass (NIL: no limit).  Returns true
when readable, NIL on timeout.  Signals unix-error."
  (let ((ms (if timeout-ms (max 0 (min timeout-ms 2000000000)) -1)))
    (multiple-value-bind (r e)
        (ffi:c-inline (fd ms) (:int :int) (values :int :int)
          "{ struct pollfd p = { .fd = #0, .events = POLLIN }; int r;
             do r = poll(&p, 1, #1); while (r < 0 && errno == EINTR);
             @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")
      (when (minusp r) (unix-error e "poll"))
      (plusp r))))

(defun wait-writable (fd timeout-ms)
  "Waits until FD is writable (a non-blocking connect finished) or TIMEOUT-MS pass.  Returns
true when writable, NIL on timeout.  Signals unix-error."
  (let ((ms (max 0 (min timeout-ms 2000000000))))
    (multiple-value-bind (r e)
        (ffi:c-inline (fd ms) (:int :int) (values :int :int)
          "{ struct pollfd p = { .fd = #0, .events = POLLOUT }; int r;
             do r = poll(&p, 1, #1); while (r < 0 && errno == EINTR);
             @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")
      (when (minusp r) (unix-error e "poll"))
      (plusp r))))

(defun open-file-nofollow (path how &key (mode #o644) (offset 0))
  "Opens PATH without following a symbolic link in its last component (O_NOFOLLOW), for HOW
:read, :write (create or truncate), :create-new (O_EXCL), :append (create or append) or :at
\(create or keep, positioned at OFFSET).  Returns the descriptor.  Signals unix-error (ELOOP
for a symlink, ENOENT, EACCES, EISDIR...) with the path."
  (let ((c (string-to-c path))
        (h (ecase how (:read 0) (:write 1) (:create-new 2) (:append 3) (:at 4))))
    (check-syscall ("open" path)
      (ffi:c-inline (c h mode offset) (:object :int :int :int64-t) (values :int :int)
        "{ static const int fl[] = { O_RDONLY, O_WRONLY|O_CREAT|O_TRUNC, O_WRONLY|O_CREAT|O_EXCL,
                                     O_WRONLY|O_CREAT|O_APPEND, O_WRONLY|O_CREAT };
           int fd = open((char *)#0->vector.self.b8, fl[#1] | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, (mode_t)#2);
           int e = errno;
           if (fd >= 0 && #1 == 0) {
             struct stat st;
             if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) { close(fd); fd = -1; e = S_ISDIR(st.st_mode) ? EISDIR : EINVAL; } }
           if (fd >= 0 && #1 == 4 && lseek(fd, (off_t)#3, SEEK_SET) < 0) { e = errno; close(fd); fd = -1; }
           @(return 0) = fd; @(return 1) = fd < 0 ? e : 0; }"))))

(defun ftp-telnet-strip (octets)
  "Returns a fresh octet vector of the control line OCTETS without its Telnet commands (IAC IP,
IAC DM before ABOR; IAC IAC is one 255 byte), stripped in C (crow_ftp_telnet_strip).  Can't fail."
  (let* ((v (copy-seq (coerce octets 'octets)))
         (n (ffi:c-inline (v (length v)) (:object :fixnum) :fixnum
              "crow_ftp_telnet_strip(#0->vector.self.b8, (size_t)#1)" :one-liner t)))
    (subseq v 0 n)))
