;;;; unix-socket.lisp — socket pair echo over IPv4, IPv6 and AF_UNIX; UDP; options;
;;;; credentials; non-blocking connect; epoll readiness; eventfd.

(in-package :crow.test)

(def-suite unix-socket :in crow)
(in-suite unix-socket)

(defun echo-once (server client)
  "CLIENT sends a message, SERVER echoes it, CLIENT reads it back.  Returns the echo."
  (let ((msg (octets-of "ping over crow.unix"))
        (buf (make-octets 64)))
    (write-all client msg)
    (let ((n (read-fd server buf)))
      (write-all server buf :end n))
    (let ((n (read-fd client buf)))
      (octets-to-string buf :end n))))

(defun check-tcp-echo (host)
  (let* ((l (tcp-listen host 0))
         (port (nth-value 1 (local-address l))))
    (unwind-protect
         (let* ((c (tcp-connect host port))
                (s (accept-connection l)))
           (unwind-protect
                (progn
                  (is (plusp port) "bound to a free port")
                  (is (equal "ping over crow.unix" (echo-once s c)) "echo over ~a" host)
                  (multiple-value-bind (h p) (peer-address s)
                    (is (equal host h) "peer address printed as ~a: ~a" host h)
                    (is (= p (nth-value 1 (local-address c))) "peer port is the client's port"))
                  (is (equal host (local-address s))))
             (close-fd c) (close-fd s)))
      (close-fd l))))

(test tcp-echo-ipv4 (check-tcp-echo "127.0.0.1"))
(test tcp-echo-ipv6 (check-tcp-echo "::1"))

(test unix-stream-echo-and-credentials
  (with-temp-dir (d)
    (let* ((path (concatenate 'string d "sock"))
           (l (unix-listen path)))
      (unwind-protect
           (let* ((c (unix-connect path))
                  (s (accept-connection l)))
             (unwind-protect
                  (progn
                    (is (equal "ping over crow.unix" (echo-once s c)))
                    (multiple-value-bind (pid uid gid) (peer-credentials s)
                      (is (= pid (getpid)) "SO_PEERCRED pid")
                      (is (= uid (geteuid)) "SO_PEERCRED uid")
                      (is (= gid (getegid)) "SO_PEERCRED gid"))
                    (is (equal path (local-address l)))
                    (is (null (nth-value 1 (local-address l))) "AF_UNIX has no port"))
               (close-fd c) (close-fd s)))
        (close-fd l))
      (is (eq :socket (stat-type (lstat path))))
      ;; A stale socket file is replaced by the next listener.
      (close-fd (unix-listen path)))))

(test socket-pair-and-shutdown
  (multiple-value-bind (a b) (socket-pair)
    (unwind-protect
         (progn
           (is (equal "ping over crow.unix" (echo-once a b)))
           (shutdown-socket b :write)
           (is (= 0 (read-fd a (make-octets 8))) "EOF after shutdown"))
      (close-fd a) (close-fd b))))

(defun check-udp (host)
  (let* ((a (udp-socket host 0))
         (b (udp-socket host 0))
         (pb (nth-value 1 (local-address b)))
         (buf (make-octets 100)))
    (unwind-protect
         (progn
           (is (= 5 (send-to a (octets-of "hello") host pb)))
           (multiple-value-bind (n from port) (recv-from b buf)
             (is (= 5 n))
             (is (equal "hello" (octets-to-string buf :end n)))
             (is (equal host from))
             (is (= port (nth-value 1 (local-address a))))))
      (close-fd a) (close-fd b))))

(test udp-ipv4 (check-udp "127.0.0.1"))
(test udp-ipv6 (check-udp "::1"))

(test unix-datagram
  (with-temp-dir (d)
    (let* ((path (concatenate 'string d "dgram"))
           (s (unix-listen path :type :datagram))
           (c (make-socket :unix :datagram))
           (buf (make-octets 32)))
      (unwind-protect
           (progn
             (is (= 3 (send-to c (octets-of "abc") path nil)))
             (is (= 3 (recv-from s buf)))
             (is (equal "abc" (octets-to-string buf :end 3))))
        (close-fd s) (close-fd c)))))

(test socket-options
  (let ((fd (make-socket :inet6 :stream)))
    (unwind-protect
         (progn
           (is (= fd (set-socket-option fd :reuseaddr t)))
           (is (= fd (set-socket-option fd :reuseport t)))
           (is (= fd (set-socket-option fd :ipv6-v6only t)))
           (is (= fd (set-socket-option fd :tcp-nodelay t)))
           (signals crow-error (set-socket-option fd :no-such-option t)))
      (close-fd fd)))
  ;; Two SO_REUSEPORT listeners may share a port.
  (let* ((a (tcp-listen "127.0.0.1" 0 :reuseport t))
         (port (nth-value 1 (local-address a))))
    (unwind-protect
         (progn
           (close-fd (tcp-listen "127.0.0.1" port :reuseport t))
           (signals eaddrinuse (tcp-listen "127.0.0.1" port)))
      (close-fd a))))

(test connection-refused
  (let* ((l (tcp-listen "127.0.0.1" 0))
         (port (nth-value 1 (local-address l))))
    (close-fd l)
    (signals econnrefused (tcp-connect "127.0.0.1" port))
    ;; Non-blocking: in progress, then the error arrives through connect-finish.
    (let ((fd (make-socket :inet :stream :nonblocking t))
          (ep (epoll-create))
          (events (make-epoll-events 4)))
      (unwind-protect
           (let ((r (connect-address fd "127.0.0.1" port)))
             (is (member r '(t :in-progress)))
             (when (eq r :in-progress)
               (epoll-add ep fd +epollout+)
               (is (= 1 (epoll-wait ep events 5000)) "writable once the connect fails"))
             (signals econnrefused (connect-finish fd)))
        (close-fd fd) (close-fd ep)))))

(test nonblocking-connect-and-accept
  (let* ((l (tcp-listen "127.0.0.1" 0 :nonblocking t))
         (port (nth-value 1 (local-address l)))
         (ep (epoll-create))
         (events (make-epoll-events 8)))
    (unwind-protect
         (progn
           (is (null (accept-connection l)) "nothing pending: NIL, not an error")
           (epoll-add ep l +epollin+ 7)
           (is (= 0 (epoll-wait ep events 50)) "listener not readable before a connect")
           (let ((c (make-socket :inet :stream :nonblocking t)))
             (unwind-protect
                  (progn
                    (is (member (connect-address c "127.0.0.1" port) '(t :in-progress)))
                    (is (= 1 (epoll-wait ep events 5000)) "listener readable after a connect")
                    (is (= 7 (epoll-event-data events 0)) "event carries the data given")
                    (is (logtest +epollin+ (epoll-event-events events 0)))
                    (let ((s (accept-connection l)))
                      (is (integerp s))
                      (epoll-add ep c +epollout+)
                      (is (<= 1 (epoll-wait ep events 5000)))
                      (is (eq t (connect-finish c)))
                      (epoll-del ep c)
                      (epoll-add ep s +epollin+)
                      (is (= 0 (epoll-wait ep events 0)) "no data yet")
                      (write-all c (octets-of "x"))
                      (is (= 1 (epoll-wait ep events 5000)))
                      (is (= s (epoll-event-data events 0)))
                      (epoll-mod ep s +epollout+)
                      (close-fd s)))
               (close-fd c))))
      (close-fd l) (close-fd ep))))

(test eventfd-readiness
  (let ((e (eventfd-create :nonblocking t))
        (ep (epoll-create))
        (events (make-epoll-events 2)))
    (unwind-protect
         (progn
           (epoll-add ep e +epollin+)
           (is (= 0 (epoll-wait ep events 0)))
           (is (= 0 (eventfd-read e)) "empty non-blocking eventfd reads 0")
           (eventfd-write e 3)
           (eventfd-write e 4)
           (is (= 1 (epoll-wait ep events 1000)))
           (is (= 7 (eventfd-read e)) "counts add up")
           (is (= 0 (epoll-wait ep events 0)) "read resets it"))
      (close-fd e) (close-fd ep))))
