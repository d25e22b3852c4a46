;;;; socket.lisp — sockets: TCP/UDP over IPv4 and IPv6, AF_UNIX stream and datagram,
;;;; bind/listen/accept4/connect (non-blocking too), options, addresses, credentials, and
;;;; descriptor passing over AF_UNIX (SCM_RIGHTS).

(in-package :crow.unix)

(ffi:clines "#include <sys/socket.h>" "#include <sys/un.h>" "#include <netinet/in.h>"
            "#include <netinet/tcp.h>" "#include <arpa/inet.h>" "#include <netdb.h>"
            "#include <string.h>" "#include <errno.h>" "#include <unistd.h>" "#include <poll.h>"
            "
/* Fills *SS from HOST (an IPv4/IPv6 literal, optionally in brackets, or a name) and PORT;
 * PORT < 0 means HOST is an AF_UNIX path.  Returns 0, or -1 with errno (EINVAL for a bad
 * address, ENAMETOOLONG for a long path) and, for a name lookup failure, *GAI set. */
static int crow_sockaddr_fill(const char *host, int port, struct sockaddr_storage *ss,
                              socklen_t *len, int *gai)
{
    memset(ss, 0, sizeof *ss);
    *gai = 0;
    if (port < 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        size_t n = strlen(host);
        if (n >= sizeof un->sun_path) { errno = ENAMETOOLONG; return -1; }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, host, n + 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        return 0;
    }
    char buf[256];
    size_t n = strlen(host);
    if (n >= sizeof buf) { errno = EINVAL; return -1; }
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        memcpy(buf, host + 1, n - 2); buf[n - 2] = 0;
    } else memcpy(buf, host, n + 1);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, buf, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET; in4->sin_port = htons((uint16_t)port);
        *len = sizeof *in4; return 0;
    }
    if (inet_pton(AF_INET6, buf, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6; in6->sin6_port = htons((uint16_t)port);
        *len = sizeof *in6; return 0;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    int r = getaddrinfo(buf, NULL, &hints, &res);
    if (r != 0 || !res) { *gai = r ? r : EAI_NONAME; errno = EINVAL; return -1; }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    if (ss->ss_family == AF_INET) in4->sin_port = htons((uint16_t)port);
    else if (ss->ss_family == AF_INET6) in6->sin6_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
}

/* Returns a Lisp string for the address in *SS and stores the port (-1 for AF_UNIX). */
static cl_object crow_sockaddr_string(const struct sockaddr_storage *ss, socklen_t len, int *port)
{
    char buf[INET6_ADDRSTRLEN + 1];
    *port = -1;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in4->sin_addr, buf, sizeof buf);
        *port = ntohs(in4->sin_port);
        return ecl_make_simple_base_string(buf, -1);
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
        *port = ntohs(in6->sin6_port);
        return ecl_make_simple_base_string(buf, -1);
    }
    if (ss->ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)ss;
        if (len <= offsetof(struct sockaddr_un, sun_path) || !un->sun_path[0])
            return ecl_make_simple_base_string(\"\", 0);
        return ecl_make_simple_base_string(un->sun_path, -1);
    }
    return ECL_NIL;
}
")

(define-keyword-map socket-family "Returns the AF_ constant for a family keyword."
  (:inet "AF_INET") (:inet6 "AF_INET6") (:unix "AF_UNIX"))

(define-keyword-map socket-type "Returns the SOCK_ constant for a socket type keyword."
  (:stream "SOCK_STREAM") (:datagram "SOCK_DGRAM") (:seqpacket "SOCK_SEQPACKET"))

(defun address-family (host port)
  (cond ((null port) :unix)
        ((find #\: host) :inet6)
        ((every (lambda (c) (or (digit-char-p c) (char= c #\.))) host) :inet)
        (t (multiple-value-bind (h p) (values host port)
             (declare (ignore h p))
             :inet))))

(defun make-socket (family type &key (cloexec t) nonblocking)
  "Returns a new socket descriptor.  FAMILY is :inet, :inet6 or :unix, TYPE :stream or
:datagram.  Signals unix-error."
  (let ((f (socket-family family))
        (ty (logior (socket-type type)
                    (if cloexec (ffi:c-inline () () :int "SOCK_CLOEXEC" :one-liner t) 0)
                    (if nonblocking (ffi:c-inline () () :int "SOCK_NONBLOCK" :one-liner t) 0))))
    (check-syscall ("socket")
      (ffi:c-inline (f ty) (:int :int) (values :int :int)
        "{ int r = socket(#0, #1, 0); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))))

(defun %sockaddr-call (which fd host port)
  "WHICH 0 = bind, 1 = connect.  Returns (values r errno gai)."
  (let ((c (string-to-c host))
        (p (or port -1)))
    (ffi:c-inline (which fd c p) (:int :int :object :int) (values :int :int :int)
      "{ struct sockaddr_storage ss; socklen_t len; int gai, r;
         r = crow_sockaddr_fill((char *)#2->vector.self.b8, #3, &ss, &len, &gai);
         if (r == 0) {
           if (#0 == 0) r = bind(#1, (struct sockaddr *)&ss, len);
           else { r = connect(#1, (struct sockaddr *)&ss, len);
                  /* An interrupted connect goes on in the background: wait for it. */
                  if (r < 0 && errno == EINTR) {
                    struct pollfd p = { #1, POLLOUT, 0 }; int e = 0; socklen_t el = sizeof e;
                    while (poll(&p, 1, -1) < 0 && errno == EINTR) ;
                    getsockopt(#1, SOL_SOCKET, SO_ERROR, &e, &el);
                    r = e ? -1 : 0; errno = e; } } }
         @(return 0) = r; @(return 1) = r < 0 ? errno : 0; @(return 2) = gai; }")))

(defun %check-address-call (syscall fd host port which)
  (multiple-value-bind (r errno gai) (%sockaddr-call which fd host port)
    (cond ((zerop gai) (values r errno))
          (t (error 'simple-crow-error :format-control "~a ~a: ~a"
                    :format-arguments (list syscall host
                                            (ffi:c-inline (gai) (:int) :cstring
                                              "(char *)gai_strerror(#0)" :one-liner t)))))))

(defun bind-address (fd host &optional port)
  "Binds FD to HOST:PORT (HOST an IPv4/IPv6 literal, brackets allowed, or a name), or to the
AF_UNIX path HOST when PORT is NIL.  Signals unix-error (EADDRINUSE, EACCES...)."
  (check-syscall ("bind" (if port (format nil "~a:~a" host port) host))
    (%check-address-call "bind" fd host port 0))
  fd)

(defun connect-address (fd host &optional port)
  "Connects FD to HOST:PORT (or the AF_UNIX path HOST).  Returns T when connected, or
:IN-PROGRESS on a non-blocking socket still connecting (wait for writability, then call
connect-finish).  Signals unix-error (ECONNREFUSED, ENOENT...)."
  (multiple-value-bind (r errno) (%check-address-call "connect" fd host port 1)
    (cond ((zerop r) t)
          ((= errno +einprogress+) :in-progress)
          (t (unix-error errno "connect" (if port (format nil "~a:~a" host port) host))))))

(defun socket-error-code (fd)
  "Returns the pending SO_ERROR of FD (0 when none).  Signals unix-error."
  (check-syscall ("getsockopt")
    (ffi:c-inline (fd) (:int) (values :int :int)
      "{ int e = 0; socklen_t l = sizeof e; int r = getsockopt(#0, SOL_SOCKET, SO_ERROR, &e, &l);
         @(return 0) = r < 0 ? -1 : e; @(return 1) = r < 0 ? errno : 0; }")))

(defun connect-finish (fd)
  "Completes a non-blocking connect once FD is writable.  Returns T, or signals the
connect's unix-error (ECONNREFUSED...)."
  (let ((e (socket-error-code fd)))
    (if (zerop e) t (unix-error e "connect"))))

(defun listen-socket (fd &optional (backlog 511))
  "Marks FD as listening with BACKLOG.  Returns FD.  Signals unix-error."
  (check-syscall ("listen")
    (ffi:c-inline (fd backlog) (:int :int) (values :int :int)
      "{ int r = listen(#0, #1); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))
  fd)

(defun %accept (fd flags)
  (ffi:c-inline (fd flags) (:int :int) (values :int :int)
    "{ int r; do r = accept4(#0, NULL, NULL, #1); while (r < 0 && errno == EINTR);
       @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))

(defun accept-connection (fd &key (cloexec t) nonblocking)
  "Accepts a connection on listening FD.  Returns the new descriptor, or NIL when FD is
non-blocking and none is pending.  Signals unix-error (EMFILE...)."
  (let ((flags (logior (if cloexec (ffi:c-inline () () :int "SOCK_CLOEXEC" :one-liner t) 0)
                       (if nonblocking (ffi:c-inline () () :int "SOCK_NONBLOCK" :one-liner t) 0))))
    (multiple-value-bind (r errno) (%accept fd flags)
      (cond ((>= r 0) r)
            ((= errno +eagain+) nil)
            (t (unix-error errno "accept4"))))))

(define-keyword-map socket-option-code
    "Returns (level . optname) packed as level*65536+optname for a socket option keyword."
  (:reuseaddr "SOL_SOCKET*65536+SO_REUSEADDR") (:reuseport "SOL_SOCKET*65536+SO_REUSEPORT")
  (:keepalive "SOL_SOCKET*65536+SO_KEEPALIVE") (:rcvbuf "SOL_SOCKET*65536+SO_RCVBUF")
  (:sndbuf "SOL_SOCKET*65536+SO_SNDBUF") (:broadcast "SOL_SOCKET*65536+SO_BROADCAST")
  (:tcp-nodelay "IPPROTO_TCP*65536+TCP_NODELAY") (:tcp-cork "IPPROTO_TCP*65536+TCP_CORK")
  (:ipv6-v6only "IPPROTO_IPV6*65536+IPV6_V6ONLY"))

(defun set-socket-option (fd option value)
  "Sets OPTION (:reuseaddr :reuseport :keepalive :rcvbuf :sndbuf :broadcast :tcp-nodelay
:tcp-cork :ipv6-v6only) to VALUE (a boolean or an integer).  Returns FD.  Signals unix-error."
  (let ((code (socket-option-code option))
        (v (cond ((eq value t) 1) ((null value) 0) (t value))))
    (check-syscall ("setsockopt" option)
      (ffi:c-inline (fd code v) (:int :int :int) (values :int :int)
        "{ int v = #2; int r = setsockopt(#0, #1 >> 16, #1 & 0xffff, &v, sizeof v);
           @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))
    fd))

(defun %name (fd peer)
  (ffi:c-inline (fd peer) (:int :bool) (values :object :int :int)
    "{ struct sockaddr_storage ss; socklen_t len = sizeof ss; int port = -1;
       int r = #1 ? getpeername(#0, (struct sockaddr *)&ss, &len) : getsockname(#0, (struct sockaddr *)&ss, &len);
       @(return 0) = r < 0 ? ECL_NIL : crow_sockaddr_string(&ss, len, &port);
       @(return 1) = port; @(return 2) = r < 0 ? errno : 0; }"))

(defun peer-address (fd)
  "Returns (values HOST PORT) of FD's peer as a printable address (\"127.0.0.1\", \"::1\"), or
(values PATH NIL) for AF_UNIX.  Signals unix-error (ENOTCONN...)."
  (multiple-value-bind (host port errno) (%name fd t)
    (unless host (unix-error errno "getpeername"))
    (values host (if (minusp port) nil port))))

(defun local-address (fd)
  "Returns (values HOST PORT) FD is bound to (PORT NIL for AF_UNIX).  Signals unix-error."
  (multiple-value-bind (host port errno) (%name fd nil)
    (unless host (unix-error errno "getsockname"))
    (values host (if (minusp port) nil port))))

(defun peer-credentials (fd)
  "Returns (values PID UID GID) of the process at the other end of AF_UNIX socket FD
(SO_PEERCRED).  Signals unix-error."
  (multiple-value-bind (pid uid gid errno)
      (ffi:c-inline (fd) (:int) (values :int :int :int :int)
        "{ struct ucred c; socklen_t l = sizeof c; int r = getsockopt(#0, SOL_SOCKET, SO_PEERCRED, &c, &l);
           @(return 0) = r < 0 ? -1 : c.pid; @(return 1) = c.uid; @(return 2) = c.gid; @(return 3) = r < 0 ? errno : 0; }")
    (when (minusp pid) (unix-error errno "getsockopt" "SO_PEERCRED"))
    (values pid uid gid)))

(defun shutdown-socket (fd how)
  "Shuts down :read, :write or :both directions of FD.  Signals unix-error."
  (let ((h (ecase how
             (:read (ffi:c-inline () () :int "SHUT_RD" :one-liner t))
             (:write (ffi:c-inline () () :int "SHUT_WR" :one-liner t))
             (:both (ffi:c-inline () () :int "SHUT_RDWR" :one-liner t)))))
    (check-syscall ("shutdown")
      (ffi:c-inline (fd h) (:int :int) (values :int :int)
        "{ int r = shutdown(#0, #1); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))
    nil))

(defun socket-pair (&key (type :stream) (cloexec t))
  "Returns (values FD1 FD2), a connected AF_UNIX pair.  Signals unix-error."
  (let ((ty (logior (socket-type type)
                    (if cloexec (ffi:c-inline () () :int "SOCK_CLOEXEC" :one-liner t) 0))))
    (multiple-value-bind (a b e)
        (ffi:c-inline (ty) (:int) (values :int :int :int)
          "{ int sv[2]; int r = socketpair(AF_UNIX, #0, 0, sv);
             @(return 0) = r < 0 ? -1 : sv[0]; @(return 1) = r < 0 ? -1 : sv[1]; @(return 2) = r < 0 ? errno : 0; }")
      (when (minusp a) (unix-error e "socketpair"))
      (values a b))))

(defun send-to (fd buffer host port &key (start 0) end)
  "Sends BUFFER[START,END) as one datagram to HOST:PORT (or the AF_UNIX path HOST when PORT is
NIL).  Returns the count sent.  Signals unix-error."
  (check-type buffer octets)
  (let ((end (check-bounds buffer start end))
        (c (string-to-c host))
        (p (or port -1)))
    (check-syscall ("sendto" host)
      (ffi:c-inline (fd buffer start end c p) (:int :object :fixnum :fixnum :object :int) (values :long :int)
        "{ struct sockaddr_storage ss; socklen_t len; int gai; ssize_t r;
           r = crow_sockaddr_fill((char *)#4->vector.self.b8, #5, &ss, &len, &gai);
           if (r == 0) do r = sendto(#0, #1->vector.self.b8 + #2, (size_t)(#3 - #2), 0, (struct sockaddr *)&ss, len);
                       while (r < 0 && errno == EINTR);
           @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))))

(defun recv-from (fd buffer &key (start 0) end)
  "Receives one datagram into BUFFER[START,END).  Returns (values COUNT HOST PORT) of the
sender.  Signals unix-error (EAGAIN on an empty non-blocking socket)."
  (check-type buffer octets)
  (let ((end (check-bounds buffer start end)))
    (multiple-value-bind (n host port errno)
        (ffi:c-inline (fd buffer start end) (:int :object :fixnum :fixnum) (values :long :object :int :int)
          "{ struct sockaddr_storage ss; socklen_t len = sizeof ss; ssize_t r; int port = -1;
             do r = recvfrom(#0, #1->vector.self.b8 + #2, (size_t)(#3 - #2), 0, (struct sockaddr *)&ss, &len);
             while (r < 0 && errno == EINTR);
             @(return 0) = r; @(return 1) = r < 0 ? ECL_NIL : crow_sockaddr_string(&ss, len, &port);
             @(return 2) = port; @(return 3) = r < 0 ? errno : 0; }")
      (when (minusp n) (unix-error errno "recvfrom"))
      (values n host (if (minusp port) nil port)))))

;;; Conveniences used by servers and tests.

(defun tcp-listen (host port &key (backlog 511) reuseport nonblocking (v6only t))
  "Returns a listening TCP socket bound to HOST:PORT (port 0 picks a free one; see
local-address).  IPv6 listeners are V6ONLY unless V6ONLY is NIL.  Signals unix-error."
  (let* ((family (address-family host port))
         (fd (make-socket family :stream :nonblocking nonblocking)))
    (handler-bind ((error (lambda (e) (declare (ignore e)) (%close fd))))
      (set-socket-option fd :reuseaddr t)
      (when reuseport (set-socket-option fd :reuseport t))
      (when (eq family :inet6) (set-socket-option fd :ipv6-v6only v6only))
      (bind-address fd host port)
      (listen-socket fd backlog))))

(defun tcp-connect (host port &key nonblocking (nodelay t))
  "Returns a TCP socket connected to HOST:PORT (still connecting when NONBLOCKING; see
connect-address).  Signals unix-error (ECONNREFUSED...)."
  (let ((fd (make-socket (address-family host port) :stream :nonblocking nonblocking)))
    (handler-bind ((error (lambda (e) (declare (ignore e)) (%close fd))))
      (connect-address fd host port)
      (when nodelay (set-socket-option fd :tcp-nodelay t))
      fd)))

(defun unix-listen (path &key (type :stream) (backlog 511) (remove-stale t))
  "Returns an AF_UNIX socket bound to PATH (listening when TYPE is :stream).  With
REMOVE-STALE, an existing socket file at PATH is removed first.  Signals unix-error."
  (when (and remove-stale (file-exists-p path)
             (eq (stat-type (lstat path)) :socket))
    (unlink path))
  (let ((fd (make-socket :unix type)))
    (handler-bind ((error (lambda (e) (declare (ignore e)) (%close fd))))
      (bind-address fd path)
      (if (eq type :stream) (listen-socket fd backlog) fd))))

(defun unix-connect (path &key (type :stream))
  "Returns an AF_UNIX socket connected to PATH.  Signals unix-error (ENOENT, ECONNREFUSED)."
  (let ((fd (make-socket :unix type)))
    (handler-bind ((error (lambda (e) (declare (ignore e)) (%close fd))))
      (connect-address fd path)
      fd)))

(defun udp-socket (host port)
  "Returns a UDP socket bound to HOST:PORT (port 0 picks one).  Signals unix-error."
  (let ((fd (make-socket (address-family host port) :datagram)))
    (handler-bind ((error (lambda (e) (declare (ignore e)) (%close fd))))
      (bind-address fd host port))))
;;; Descriptor passing (SCM_RIGHTS): a descriptor travels with a message of at least one byte.

(defun send-fd (socket fd data &key (start 0) end)
  "Sends descriptor FD over the connected AF_UNIX SOCKET together with DATA[START,END) (octets,
at least one byte) in one message (MSG_NOSIGNAL: a closed peer gives EPIPE, not SIGPIPE).
Returns the count of data bytes sent.  Signals unix-error (EPIPE, ECONNREFUSED, EAGAIN...)."
  (check-type data octets)
  (let ((end (check-bounds data start end)))
    (when (= start end)
      (error 'simple-crow-error :format-control "send-fd: DATA must not be empty"
                                :format-arguments '()))
    (check-syscall ("sendmsg")
      (ffi:c-inline (socket fd data start end) (:int :int :object :fixnum :fixnum) (values :long :int)
        "{ struct msghdr m; struct iovec v; ssize_t r;
           union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
           memset(&m, 0, sizeof m); memset(&u, 0, sizeof u);
           v.iov_base = #2->vector.self.b8 + #3; v.iov_len = (size_t)(#4 - #3);
           m.msg_iov = &v; m.msg_iovlen = 1;
           m.msg_control = u.buf; m.msg_controllen = sizeof u.buf;
           struct cmsghdr *c = CMSG_FIRSTHDR(&m);
           c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
           { int fdv = #1; memcpy(CMSG_DATA(c), &fdv, sizeof(int)); }
           do r = sendmsg(#0, &m, MSG_NOSIGNAL); while (r < 0 && errno == EINTR);
           @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))))

(defun receive-fd (socket buffer &key (start 0) end)
  "Receives one message from the AF_UNIX SOCKET into BUFFER[START,END) with the descriptor it
carries (made close-on-exec).  Returns (values FD COUNT): FD is NIL when the message carried
none, COUNT 0 with FD NIL at end of stream.  Descriptors beyond the first in one message are
closed.  Signals unix-error (EAGAIN on an empty non-blocking socket...)."
  (check-type buffer octets)
  (let ((end (check-bounds buffer start end)))
    (multiple-value-bind (n fd errno)
        (ffi:c-inline (socket buffer start end) (:int :object :fixnum :fixnum) (values :long :int :int)
          "{ struct msghdr m; struct iovec v; ssize_t r; int fd = -1;
             union { char buf[CMSG_SPACE(4 * sizeof(int))]; struct cmsghdr align; } u;
             memset(&m, 0, sizeof m);
             v.iov_base = #1->vector.self.b8 + #2; v.iov_len = (size_t)(#3 - #2);
             m.msg_iov = &v; m.msg_iovlen = 1;
             m.msg_control = u.buf; m.msg_controllen = sizeof u.buf;
             do r = recvmsg(#0, &m, MSG_CMSG_CLOEXEC); while (r < 0 && errno == EINTR);
             if (r >= 0) {
               struct cmsghdr *c;
               for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
                 if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                   size_t k, nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                   for (k = 0; k < nfd; k++) { int x; memcpy(&x, CMSG_DATA(c) + k * sizeof(int), sizeof x);
                     if (fd < 0) fd = x; else close(x); } } }
             @(return 0) = r; @(return 1) = fd; @(return 2) = r < 0 ? errno : 0; }")
      (when (minusp n) (unix-error errno "recvmsg"))
      (values (if (minusp fd) nil fd) n))))
