;;;; fd.lisp — descriptors: open/close/read/write into octet vectors, pread/pwrite, writev,
;;;; sendfile, fcntl flags, pipes.

(in-package :crow.unix)

(ffi:clines "#include <fcntl.h>" "#include <unistd.h>" "#include <errno.h>"
            "#include <sys/uio.h>" "#include <sys/sendfile.h>" "#include <limits.h>"
            "#include \"fdio.h\"" "#include \"crow.h\"")

(define-c-constants
  (+o-rdonly+ "O_RDONLY") (+o-wronly+ "O_WRONLY") (+o-rdwr+ "O_RDWR") (+o-creat+ "O_CREAT")
  (+o-excl+ "O_EXCL") (+o-trunc+ "O_TRUNC") (+o-append+ "O_APPEND")
  (+o-cloexec+ "O_CLOEXEC") (+o-nonblock+ "O_NONBLOCK") (+o-directory+ "O_DIRECTORY")
  (+o-nofollow+ "O_NOFOLLOW"))

(defun core-version ()
  "Returns libcrowcore's version string.  Can't fail."
  (ffi:c-inline () () :object "ecl_make_simple_base_string(crow_version(), -1)" :one-liner t))

;;; Raw layer: (values result errno), errno read in the same C block.

(defun %open (path flags mode)
  (let ((c (string-to-c path)))
    (ffi:c-inline (c flags mode) (:object :int :int) (values :int :int)
      "{ int r; do r = open((char *)#0->vector.self.b8, #1, (mode_t)#2); while (r < 0 && errno == EINTR);
         @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")))

(defun %close (fd)
  (ffi:c-inline (fd) (:int) (values :int :int)
    ;; Linux closes the descriptor even when close() reports EINTR: never retry.
    "{ int r = close(#0); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))

(defun %read (fd buffer start end)
  (declare (type octets buffer) (fixnum start end))
  (ffi:c-inline (fd buffer start end) (:int :object :fixnum :fixnum) (values :long :int)
    "{ ssize_t r; do r = read(#0, #1->vector.self.b8 + #2, (size_t)(#3 - #2)); while (r < 0 && errno == EINTR);
       @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))

(defun %write (fd buffer start end)
  (declare (type octets buffer) (fixnum start end))
  (ffi:c-inline (fd buffer start end) (:int :object :fixnum :fixnum) (values :long :int)
    "{ ssize_t r; do r = write(#0, #1->vector.self.b8 + #2, (size_t)(#3 - #2)); while (r < 0 && errno == EINTR);
       @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))

(defun %pread (fd buffer start end offset)
  (declare (type octets buffer) (fixnum start end))
  (ffi:c-inline (fd buffer start end offset) (:int :object :fixnum :fixnum :int64-t) (values :long :int)
    "{ ssize_t r; do r = pread(#0, #1->vector.self.b8 + #2, (size_t)(#3 - #2), (off_t)#4); while (r < 0 && errno == EINTR);
       @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))

(defun %pwrite (fd buffer start end offset)
  (declare (type octets buffer) (fixnum start end))
  (ffi:c-inline (fd buffer start end offset) (:int :object :fixnum :fixnum :int64-t) (values :long :int)
    "{ ssize_t r; do r = pwrite(#0, #1->vector.self.b8 + #2, (size_t)(#3 - #2), (off_t)#4); while (r < 0 && errno == EINTR);
       @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))

(defun %writev (fd vectors)
  "VECTORS is a simple-vector of octet vectors.  Writes them all (crow_fd_writev_all)."
  (declare (simple-vector vectors))
  (ffi:c-inline (fd vectors) (:int :object) (values :long :int)
    "{ cl_index n = #1->vector.dim, i; struct iovec stackv[64], *iov = stackv;
       if (n > 64) iov = (struct iovec *)ecl_alloc_atomic(n * sizeof *iov);
       for (i = 0; i < n; i++) { cl_object v = #1->vector.self.t[i];
         iov[i].iov_base = v->vector.self.b8; iov[i].iov_len = v->vector.fillp; }
       ssize_t r = crow_fd_writev_all(#0, iov, (int)n, NULL);
       @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))

;;; Public layer.

(defun open-fd (path &key (direction :input) (if-exists :append) (if-does-not-exist nil idne-p)
                       (mode #o644) (cloexec t) nonblocking)
  "Opens PATH and returns the descriptor.  DIRECTION is :input, :output or :io; for output,
IF-EXISTS is :append, :truncate, :error (O_EXCL) or :keep (write in place), and
IF-DOES-NOT-EXIST :create (default for output) or :error.  Signals unix-error (ENOENT,
EACCES, ...) with the path."
  (let* ((create (if idne-p (eq if-does-not-exist :create) (not (eq direction :input))))
         (flags (logior (ecase direction (:input +o-rdonly+) (:output +o-wronly+) (:io +o-rdwr+))
                        (if cloexec +o-cloexec+ 0)
                        (if nonblocking +o-nonblock+ 0)
                        (if create +o-creat+ 0)
                        (if (eq direction :input)
                            0
                            (ecase if-exists
                              (:append +o-append+) (:truncate +o-trunc+) (:keep 0)
                              (:error (if create +o-excl+ 0)))))))
    (check-syscall ("open" path) (%open path flags mode))))

(defun close-fd (fd)
  "Closes FD.  Signals unix-error (EBADF, EIO...)."
  (check-syscall ("close") (%close fd))
  nil)

(defmacro with-fd ((var form) &body body)
  "Binds VAR to the descriptor FORM returns, runs BODY, and closes it however BODY exits."
  `(let ((,var ,form))
     (unwind-protect (progn ,@body)
       (when ,var (%close ,var)))))

(defun read-fd (fd buffer &key (start 0) end)
  "Reads into BUFFER[START,END) once.  Returns the count (0 at end of file).  Signals
unix-error (EAGAIN on an empty non-blocking descriptor)."
  (check-type buffer octets)
  (let ((end (check-bounds buffer start end)))
    (check-syscall ("read") (%read fd buffer start end))))

(defun write-fd (fd buffer &key (start 0) end)
  "Writes BUFFER[START,END) once; returns the count written (may be short).  Signals
unix-error."
  (check-type buffer octets)
  (let ((end (check-bounds buffer start end)))
    (check-syscall ("write") (%write fd buffer start end))))

(defun write-all (fd buffer &key (start 0) end)
  "Writes all of BUFFER[START,END), retrying short writes in C.  Returns the count.  Signals
unix-error."
  (check-type buffer octets)
  (let ((end (check-bounds buffer start end)))
    (check-syscall ("write")
      (ffi:c-inline (fd buffer start end) (:int :object :fixnum :fixnum) (values :long :int)
        "{ ssize_t r = crow_fd_write_all(#0, #1->vector.self.b8 + #2, (size_t)(#3 - #2), NULL);
           @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))))

(defun pread-fd (fd buffer offset &key (start 0) end)
  "Reads into BUFFER[START,END) from file OFFSET without moving the file position.  Returns
the count.  Signals unix-error."
  (check-type buffer octets)
  (let ((end (check-bounds buffer start end)))
    (check-syscall ("pread") (%pread fd buffer start end offset))))

(defun pwrite-fd (fd buffer offset &key (start 0) end)
  "Writes BUFFER[START,END) at file OFFSET.  Returns the count.  Signals unix-error."
  (check-type buffer octets)
  (let ((end (check-bounds buffer start end)))
    (check-syscall ("pwrite") (%pwrite fd buffer start end offset))))

(defun writev-fd (fd &rest vectors)
  "Writes every octet vector in VECTORS, in order, with as few writev(2) calls as possible.
Returns the total written.  Signals unix-error."
  (let ((v (coerce vectors 'simple-vector)))
    (loop for x across v do (check-type x octets))
    (check-syscall ("writev") (%writev fd v))))

(defun sendfile (out-fd in-fd offset count)
  "Copies COUNT bytes of IN-FD starting at OFFSET to OUT-FD in the kernel.  Returns the bytes
sent (fewer only at end of file).  Signals unix-error."
  (check-syscall ("sendfile")
    (ffi:c-inline (out-fd in-fd offset count) (:int :int :int64-t :int64-t) (values :long :int)
      "{ off_t off = (off_t)#2; ssize_t r = crow_fd_sendfile_all(#0, #1, &off, (size_t)#3);
         @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")))

(defun fsync (fd)
  "Flushes FD's data and metadata to disk.  Signals unix-error."
  (check-syscall ("fsync")
    (ffi:c-inline (fd) (:int) (values :int :int)
      "{ int r; do r = fsync(#0); while (r < 0 && errno == EINTR); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))
  nil)

(defun fdatasync (fd)
  "Flushes FD's data to disk.  Signals unix-error."
  (check-syscall ("fdatasync")
    (ffi:c-inline (fd) (:int) (values :int :int)
      "{ int r; do r = fdatasync(#0); while (r < 0 && errno == EINTR); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))
  nil)

(defun %fcntl-flag (fd getcmd setcmd flag on)
  (ffi:c-inline (fd getcmd setcmd flag on) (:int :int :int :int :bool) (values :int :int)
    "{ int f = fcntl(#0, #1); int r = f;
       if (f >= 0) { int nf = #4 ? (f | #3) : (f & ~#3); r = nf == f ? 0 : fcntl(#0, #2, nf); }
       @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))

(defun set-nonblocking (fd &optional (on t))
  "Sets or clears O_NONBLOCK on FD.  Signals unix-error."
  (check-syscall ("fcntl")
    (%fcntl-flag fd (ffi:c-inline () () :int "F_GETFL" :one-liner t)
                 (ffi:c-inline () () :int "F_SETFL" :one-liner t) +o-nonblock+ on))
  fd)

(defun set-cloexec (fd &optional (on t))
  "Sets or clears FD_CLOEXEC on FD.  Signals unix-error."
  (check-syscall ("fcntl")
    (%fcntl-flag fd (ffi:c-inline () () :int "F_GETFD" :one-liner t)
                 (ffi:c-inline () () :int "F_SETFD" :one-liner t)
                 (ffi:c-inline () () :int "FD_CLOEXEC" :one-liner t) on))
  fd)

(defun pipe (&key (cloexec t) nonblocking)
  "Returns (values READ-FD WRITE-FD) of a new pipe.  Signals unix-error."
  (let ((flags (logior (if cloexec +o-cloexec+ 0) (if nonblocking +o-nonblock+ 0))))
    (multiple-value-bind (r w e)
        (ffi:c-inline (flags) (:int) (values :int :int :int)
          "{ int p[2]; int r = pipe2(p, #0);
             @(return 0) = r < 0 ? -1 : p[0]; @(return 1) = r < 0 ? -1 : p[1]; @(return 2) = r < 0 ? errno : 0; }")
      (when (minusp r) (unix-error e "pipe2"))
      (values r w))))

(defun dup2 (old new)
  "Makes NEW a copy of descriptor OLD.  Returns NEW.  Signals unix-error."
  (check-syscall ("dup2")
    (ffi:c-inline (old new) (:int :int) (values :int :int)
      "{ int r; do r = dup2(#0, #1); while (r < 0 && errno == EINTR); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")))
