;;;; unix-admit.lisp — crow.unix's admission control over real loopback connections: per
;;;; address (127.0.0.1 refused while 127.0.0.2 is served), global, rate, AF_UNIX, tickets.

(in-package :crow.test)

(def-suite unix-admit :in crow)
(in-suite unix-admit)

(defun connect-from (source port)
  "Returns a TCP socket bound to SOURCE (an IPv4 loopback address) connected to 127.0.0.1:PORT."
  (let ((fd (make-socket :inet :stream)))
    (handler-bind ((error (lambda (e) (declare (ignore e)) (close-fd fd))))
      (bind-address fd source 0)
      (connect-address fd "127.0.0.1" port)
      fd)))

(defmacro with-listener ((fd port) &body body)
  `(let* ((,fd (tcp-listen "127.0.0.1" 0))
          (,port (nth-value 1 (local-address ,fd))))
     (unwind-protect (progn ,@body) (close-fd ,fd))))

(defun admit-from (admit listener port source)
  "Connects from SOURCE, accepts, and asks ADMIT.  Returns (values RESULT TICKET CLIENT SERVER)."
  (let* ((c (connect-from source port))
         (s (accept-connection listener)))
    (multiple-value-bind (r ticket) (admit-enter admit s)
      (values r ticket c s))))

(test admit-per-address
  (with-admit (a :max-per-address 2 :max-connections 100)
    (with-listener (l port)
      (let ((fds '()) (tickets '()))
        (unwind-protect
             (flet ((try (source)
                      (multiple-value-bind (r tk c s) (admit-from a l port source)
                        (push c fds) (push s fds)
                        (when tk (push tk tickets))
                        r)))
               (is (eq :ok (try "127.0.0.1")))
               (is (eq :ok (try "127.0.0.1")))
               (is (eq :per-address (try "127.0.0.1")) "the third from 127.0.0.1 is refused")
               (is (eq :ok (try "127.0.0.2")) "127.0.0.2 is served meanwhile")
               (let ((st (admit-stats a)))
                 (is (= 3 (getf st :active)))
                 (is (= 1 (getf st :refused-per-address))))
               (is (eq t (admit-leave a (car (last tickets)))) "a ticket lets one out")
               (is (null (admit-leave a (car (last tickets)))) "a ticket given back twice is ignored")
               (is (eq :ok (try "127.0.0.1")) "then 127.0.0.1 gets in again"))
          (dolist (tk tickets) (admit-leave a tk))
          (mapc #'close-fd fds))
        (is (= 0 (getf (admit-stats a) :active)) "all tickets given back")))))

(test admit-leave-by-fd-and-global
  (with-admit (a :max-connections 2)
    (with-listener (l port)
      (multiple-value-bind (r1 t1 c1 s1) (admit-from a l port "127.0.0.1")
        (declare (ignore t1))
        (multiple-value-bind (r2 t2 c2 s2) (admit-from a l port "127.0.0.3")
          (multiple-value-bind (r3 t3 c3 s3) (admit-from a l port "127.0.0.4")
            (unwind-protect
                 (progn
                   (is (equal '(:ok :ok :full) (list r1 r2 r3)))
                   (is (null t3) "no ticket for a refusal")
                   (is (eq t (admit-leave a s1)) "leave by descriptor (getpeername)")
                   (is (null (admit-leave a s1)) "nothing more from that source to let out")
                   (admit-leave a t2)
                   (is (= 0 (getf (admit-stats a) :active))))
              (mapc #'close-fd (list c1 s1 c2 s2 c3 s3)))))))))

(test admit-rate
  (with-admit (a :rate-count 2 :rate-period-ms 60000)
    (with-listener (l port)
      (let ((fds '()) (results '()))
        (unwind-protect
             (dotimes (i 4)
               (multiple-value-bind (r tk c s) (admit-from a l port "127.0.0.5")
                 (push c fds) (push s fds) (push r results)
                 (when tk (admit-leave a tk))))
          (mapc #'close-fd fds))
        (is (equal '(:ok :ok :rate :rate) (reverse results))
            "2 per minute: the third and fourth are refused even after the first left")
        (is (= 2 (getf (admit-stats a) :refused-rate)))))))

(test admit-unix-exempt
  (with-temp-dir (d)
    (with-admit (a :max-per-address 1 :rate-count 1 :rate-period-ms 60000)
      (let* ((path (concatenate 'string d "s"))
             (l (unix-listen path))
             (fds '()) (results '()))
        (unwind-protect
             (dotimes (i 3)
               (let* ((c (unix-connect path)) (s (accept-connection l)))
                 (push c fds) (push s fds)
                 (push (admit-enter a s) results)))
          (mapc #'close-fd fds)
          (close-fd l))
        (is (equal '(:ok :ok :ok) results) "AF_UNIX peers are exempt from per-address limits")
        (is (= 3 (getf (admit-stats a) :active)) "but counted")))))

(test admit-errors
  (signals unix-error (make-admit :rate-count 3))
  (with-admit (a)
    (multiple-value-bind (x y) (socket-pair)
      (close-fd y)
      (unwind-protect (is (eq :ok (admit-enter a x)) "a socketpair counts as local")
        (close-fd x)))
    (let ((fd (make-socket :inet :stream)))
      (unwind-protect (signals unix-error (admit-enter a fd) "not connected: ENOTCONN")
        (close-fd fd))))
  (let ((a (make-admit)))
    (admit-destroy a)
    (admit-destroy a)
    (signals crow-error (admit-stats a))))

;;; The event loop with an admission table and throttling, driven from this one thread.

(defun drain-nonblocking (fd buffer)
  "Reads what FD has now into BUFFER (from the start).  Returns the count, 0 at EOF, NIL when
nothing is there yet."
  (multiple-value-bind (n errno) (%read fd buffer 0 (length buffer))
    (declare (ignore errno))
    (if (minusp n) nil n)))

(test ev-loop-admit-refusal
  (with-admit (a :max-per-address 1)
    (let* ((refusal "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
           (ev (make-ev-loop :admit a :refusal refusal))
           (unit (make-ev-unit))
           (l (ev-tcp-listener "127.0.0.1" 0))
           (port (nth-value 1 (local-address l)))
           (buf (make-octets 256))
           c1 c2)
      (unwind-protect
           (progn
             (ev-listen ev l :line)
             (setf c1 (tcp-connect "127.0.0.1" port))
             (write-all c1 (octets-of (format nil "hi~%")))
             (is (eq :line (ev-next ev unit 2000)) "the first connection is served")
             (ev-reply ev (ev-unit-conn unit) (vector (coerce (format nil "hi~%") 'base-string)))
             (is (equal (format nil "hi~%") (octets-to-string buf :end (read-fd c1 buf))))
             (setf c2 (tcp-connect "127.0.0.1" port))
             (ev-next ev unit 300)
             (let ((n (read-fd c2 buf)))
               (is (equal refusal (octets-to-string buf :end n)) "the second gets the 503"))
             (is (= 0 (read-fd c2 buf)) "and the close")
             (let ((st (admit-stats a)))
               (is (= 1 (getf st :active)))
               (is (= 1 (getf st :refused-per-address))))
             (close-fd c1) (setf c1 nil)
             (loop repeat 20 until (zerop (getf (admit-stats a) :active))
                   do (ev-next ev unit 50))
             (is (= 0 (getf (admit-stats a) :active)) "the closed connection left the table"))
        (when c1 (close-fd c1))
        (when c2 (close-fd c2))
        (ev-destroy ev)
        (ev-unit-free unit)
        (close-fd l)))))

(test ev-loop-bandwidth-out
  (let* ((ev (make-ev-loop :bandwidth-out 100000))
         (unit (make-ev-unit))
         (l (ev-tcp-listener "127.0.0.1" 0))
         (port (nth-value 1 (local-address l)))
         (payload (make-octets 200000 :initial-element 120))
         (buf (make-octets 65536))
         (c nil))
    (unwind-protect
         (progn
           (ev-listen ev l :line)
           (setf c (tcp-connect "127.0.0.1" port))
           (write-all c (octets-of (format nil "go~%")))
           (is (eq :line (ev-next ev unit 2000)))
           (set-nonblocking c)
           (let ((t0 (monotonic-ns)) (got 0))
             (ev-reply ev (ev-unit-conn unit) (vector payload))
             (loop while (and (< got 200000) (< (- (monotonic-ns) t0) 10000000000))
                   do (ev-next ev unit 20)
                      (loop for n = (drain-nonblocking c buf)
                            while (and n (plusp n)) do (incf got n)))
             (let ((ms (floor (- (monotonic-ns) t0) 1000000)))
               (is (= 200000 got) "all 200000 bytes came")
               (is (>= ms 1700) "200000 bytes at 100000 B/s took ~a ms (>= 1700)" ms))))
      (when c (close-fd c))
      (ev-destroy ev)
      (ev-unit-free unit)
      (close-fd l))))
