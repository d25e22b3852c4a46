;;;; server-session.lisp — crow.server's session threads in process (clients are crow.unix
;;;; sessions too): greeting and handler, refusals beyond max-sessions, thread reuse, drain
;;;; and cut-off at stop; and HTTPS through event workers on a listen-tls listener.

(in-package :crow.test)

(def-suite server-session :in crow)
(in-suite server-session)

(defun crlf (&rest strings)
  (format nil "~{~a~c~c~}" (loop for s in strings append (list s #\Return #\Linefeed))))

(defun echo-handler (session)
  (loop for line = (session-read-line session)
        do (cond ((equal line "QUIT") (session-write session (crlf "BYE")) (return))
                 ((equal line "WAIT") (session-read-line session))   ; until the peer or stop
                 (t (session-write session "ECHO " line (crlf ""))))))

(defun client (port)
  (make-session (tcp-connect "127.0.0.1" port) :idle-timeout 5 :write-timeout 5))

(test session-server-serves-and-refuses
  (let ((server (start-session-server 'echo-handler :max-sessions 2 :idle-timeout 5
                                                    :greeting (crlf "HELLO")
                                                    :refusal (lambda (reason)
                                                               (crlf (format nil "BUSY ~(~a~)" reason))))))
    (unwind-protect
         (let ((port (session-server-port server)))
           (is (plusp port))
           (let ((a (client port)) (b (client port)))
             (unwind-protect
                  (progn
                    (is (equal "HELLO" (session-read-line a)))
                    (is (equal "HELLO" (session-read-line b)))
                    (session-write a (crlf "one"))
                    (is (equal "ECHO one" (session-read-line a)))
                    (with-session (c (tcp-connect "127.0.0.1" port) :idle-timeout 5)
                      (is (equal "BUSY full" (session-read-line c)) "third session refused")
                      (signals session-eof (session-read-line c)))
                    (session-write b (crlf "QUIT"))
                    (is (equal "BYE" (session-read-line b))))
               (session-close a) (session-close b)))
           ;; Sequential sessions reuse threads: never more than max-sessions threads.
           (dotimes (i 10)
             (with-session (c (tcp-connect "127.0.0.1" port) :idle-timeout 5)
               (session-read-line c)
               (session-write c (crlf "QUIT"))
               (session-read-line c)))
           (sleep 0.2)
           (let ((st (session-server-stats server)))
             (is (= 12 (getf st :served)) "served: ~a" st)
             (is (= 1 (getf st :refused)))
             (is (zerop (getf st :active)))
             (is (<= (getf st :threads) 2) "threads: ~a" st)
             (is (zerop (getf st :errors)))))
      (is (zerop (stop-session-server server))))))

(test session-server-burst-threads-linger-then-retire
  ;; A burst of 6 concurrent sessions starts 6 threads; a second burst within LINGER reuses
  ;; them (no new thread); once no connection came for LINGER seconds, the idle ones beyond
  ;; SPARE-THREADS end.
  (let ((server (start-session-server 'echo-handler :max-sessions 20 :spare-threads 1 :linger 1
                                                    :idle-timeout 5 :greeting (crlf "HELLO"))))
    (unwind-protect
         (let ((port (session-server-port server)))
           (flet ((burst ()
                    (let ((cs (loop repeat 6 collect (client port))))
                      (unwind-protect
                           (dolist (c cs) (is (equal "HELLO" (session-read-line c))))
                        (dolist (c cs)
                          (ignore-errors (session-write c (crlf "QUIT")) (session-read-line c))
                          (session-close c))))
                    ;; bounded wait for the 6 sessions to end in their threads
                    (loop repeat 100
                          until (zerop (getf (session-server-stats server) :active))
                          do (sleep 0.02))))
             (burst)
             (let ((st (session-server-stats server)))
               (is (= 6 (getf st :threads)) "after the first burst, its threads wait: ~a" st))
             (burst)
             (let ((st (session-server-stats server)))
               (is (= 6 (getf st :threads)) "the second burst reused them: ~a" st)
               (is (= 12 (getf st :served)) "served: ~a" st))
             ;; linger 1 s, the acceptor looks at least once a second: gone within 4 s
             (is (loop repeat 80
                       thereis (<= (getf (session-server-stats server) :threads) 1)
                       do (sleep 0.05))
                 "idle threads beyond spare-threads retired: ~a" (session-server-stats server))
             (burst)
             (is (= 18 (getf (session-server-stats server) :served)) "served again after retiring")))
      (is (zerop (stop-session-server server))))))

(test session-server-stop-cuts-stuck-sessions
  (let* ((server (start-session-server 'echo-handler :idle-timeout 60))
         (port (session-server-port server))
         (c (client port)))
    (unwind-protect
         (progn
           (session-write c (crlf "ping" "WAIT"))
           (is (equal "ECHO ping" (session-read-line c)) "served before the stop")
           (sleep 0.1)
           (let ((t0 (monotonic-seconds)))
             (is (= 1 (stop-session-server server :timeout 0.3)) "one session cut short")
             (is (< (- (monotonic-seconds) t0) 5) "stop is bounded"))
           (is (eq :gone (session-read-line c :eof-error-p nil :eof-value :gone)))
           (signals unix-error (tcp-connect "127.0.0.1" port)))
      (session-close c))))

(test https-through-event-workers
  (let* ((d (test-cert-dir))
         (sctx (make-tls-server-context (concatenate 'string d "cert.pem")
                                        (concatenate 'string d "key.pem")))
         (cctx (make-tls-client-context :ca-file (concatenate 'string d "cert.pem")))
         (listeners (open-listeners (config-from-string "listen-tls 127.0.0.1:0" *common-keys*)
                                    :framing :http))
         (server (start-event-workers
                  (lambda (ev unit kind)
                    (declare (ignore kind))
                    (ev-reply ev (ev-unit-conn unit)
                              (vector (coerce (crlf "HTTP/1.1 200 OK" "Content-Length: 6"
                                                    "Connection: close" "")
                                              'base-string)
                                      (coerce "secure" 'base-string))
                              :close t))
                  :listeners listeners :tls-context sctx)))
    (unwind-protect
         (with-session (c (tcp-connect "127.0.0.1" (listener-port (first listeners)))
                          :idle-timeout 5 :write-timeout 5)
           (session-starttls c cctx :host "localhost")
           (is (equal "TLSv1.3" (session-tls-version c)))
           (session-write c (crlf "GET / HTTP/1.1" "Host: localhost" ""))
           (is (equal "HTTP/1.1 200 OK" (session-read-line c)))
           (loop for l = (session-read-line c) until (equal l ""))
           (is (equalp (octets-of "secure") (session-read-exact c 6))))
      (stop-event-workers server)
      (dolist (l listeners) (close-listener l))
      (free-tls-context sctx)
      (free-tls-context cctx))))
