;;;; server-listen.lisp — crow.server's listeners (TCP v4/v6, AF_UNIX, UDP, reuse on reload,
;;;; errors as file:line) and the command line / config overrides of run-server.

(in-package :crow.test)

(def-suite server-listen :in crow)
(in-suite server-listen)

(defun listen-conf (text &optional (dir "/tmp/"))
  (config-from-string text *common-keys* :name "l.conf" :directory dir))

(defun round-trip (fd host port)
  "Connects to HOST:PORT, accepts on listener FD, sends 3 bytes across.  Returns them."
  (let ((c (tcp-connect host port)) (a nil) (buf (make-octets 3)))
    (unwind-protect
         (progn
           (loop repeat 100 until (setf a (accept-connection fd)) do (sleep 0.01))
           (write-all c (octets-of "abc"))
           (read-fd a buf)
           (octets-to-string buf))
      (%close c) (when a (%close a)))))

(test tcp-listeners
  (let ((ls (open-listeners (listen-conf "listen 127.0.0.1:0
listen [::1]:0
"))))
    (unwind-protect
         (destructuring-bind (v4 v6) ls
           (is (eq :stream (listener-kind v4)))
           (is (eq :inet (listener-family v4)))
           (is (eq :inet6 (listener-family v6)))
           (is (plusp (listener-port v4)))
           (is (plusp (listener-port v6)))
           (is (string= (format nil "tcp 127.0.0.1:~d" (listener-port v4)) (listener-description v4)))
           (is (string= (format nil "tcp [::1]:~d" (listener-port v6)) (listener-description v6)))
           (is (string= "abc" (round-trip (listener-fd v4) "127.0.0.1" (listener-port v4))))
           (is (string= "abc" (round-trip (listener-fd v6) "::1" (listener-port v6)))))
      (mapc #'close-listener ls))))

(test unix-listener
  (with-temp-dir (dir)
    (let* ((path (concatenate 'string dir "s.sock"))
           (stale (unix-listen path)))
      (%close stale)                    ; a socket file nobody listens on any more
      (let ((l (first (open-listeners (listen-conf (format nil "listen unix:~a~%" path))))))
        (unwind-protect
             (progn
               (is (eq :unix (listener-family l)))
               (is (= #o666 (logand #o777 (stat-mode (stat path)))))
               (is (string= (format nil "unix ~a" path) (listener-description l)))
               (let ((c (unix-connect path))) (%close c))
               ;; A live socket is not taken over: an error naming the config line.
               (let ((e (handler-case
                            (progn (open-listeners (listen-conf (format nil "# x~%listen unix:~a~%" path))) nil)
                          (config-error (e) e))))
                 (is (not (null e)))
                 (is (eql 2 (config-error-line e)))
                 (is (search "Address already in use" (config-error-message e)))))
          (close-listener l :unlink t))
        (is (not (file-exists-p path)))))))

(test udp-listener
  (let ((l (first (open-listeners (listen-conf "listen-udp 127.0.0.1:0")))))
    (unwind-protect
         (let ((c (udp-socket "127.0.0.1" 0)) (buf (make-octets 16)))
           (unwind-protect
                (progn
                  (is (eq :datagram (listener-kind l)))
                  (is (search "udp 127.0.0.1:" (listener-description l)))
                  (send-to c (octets-of "dgram") "127.0.0.1" (listener-port l))
                  (sleep 0.05)
                  (is (= 5 (recv-from (listener-fd l) buf))))
             (%close c)))
      (close-listener l))))

(test listen-errors-carry-file-line
  (let* ((busy (tcp-listen "127.0.0.1" 0))
         (port (nth-value 1 (local-address busy))))
    (unwind-protect
         (let ((e (handler-case
                      (progn (open-listeners (listen-conf (format nil "listen 127.0.0.1:0~%~%listen 127.0.0.1:~d~%" port)))
                             nil)
                    (config-error (e) e))))
           (is (not (null e)))
           (is (equal (format nil "l.conf:3: listen 127.0.0.1:~d: bind \"127.0.0.1:~d\": Address already in use (errno 98)"
                              port port)
                      (princ-to-string e))))
      (%close busy))))

(test reuse-on-reload
  (let* ((first (open-listeners (listen-conf "listen 127.0.0.1:0")))
         (port (listener-port (first first))))
    (multiple-value-bind (second unused)
        (open-listeners (listen-conf (format nil "listen 127.0.0.1:~d~%listen 127.0.0.1:0~%" port))
                        :reuse first)
      (unwind-protect
           (progn
             (is (eq (first first) (first second)) "an address still named keeps its listener")
             (is (= 2 (length second)))
             (is (null unused)))
        (mapc #'close-listener second)))
    (let ((again (open-listeners (listen-conf "listen 127.0.0.1:0"))))
      (multiple-value-bind (third unused) (open-listeners (listen-conf "listen 127.0.0.1:0") :reuse again)
        (unwind-protect
             (is (equal again unused) "an address no longer named is handed back")
          (mapc #'close-listener third) (mapc #'close-listener again))))))

(test listen-default
  (let ((specs (listen-specs (listen-conf "") :default "127.0.0.1:8080")))
    (is (= 1 (length specs)))
    (is (string= "127.0.0.1:8080" (address-string (first (first specs))))))
  (is (= 1 (length (listen-specs (listen-conf "listen [::1]:9") :default "127.0.0.1:8080")))))

;;; The command line

(defparameter *t-spec*
  (make-server-spec :name "crow-t" :version "9" :keys *common-keys*
                    :options '(("-l" :listen "HOST:PORT" "where" :listen)
                               ("-t" :workers "N" "threads" :workers)
                               ("-x" :extra nil "a flag"))))

(test command-line
  (let ((o (parse-command-line *t-spec* '("-f" "a.conf" "-n" "--foreground" "--swank" "4005"
                                          "-l" "127.0.0.1:1" "-l" "[::1]:2" "-x" "-d"))))
    (is (equal "a.conf" (getf o :config)))
    (is (eq t (getf o :check)))
    (is (eq t (getf o :foreground)))
    (is (eql 4005 (getf o :swank)))
    (is (equal '("127.0.0.1:1" "[::1]:2") (getf o :listen)))
    (is (eq t (getf o :extra)))
    (is (eq t (getf o :debug))))
  (flet ((msg (args)
           (handler-case (progn (parse-command-line *t-spec* args) nil)
             (crow-error (e) (princ-to-string e)))))
    (is (equal "unknown option -q (try --help)" (msg '("-q"))))
    (is (equal "-f needs a value" (msg '("-f"))))
    (is (equal "--swank needs a port, got \"x\"" (msg '("--swank" "x"))))
    (is (equal "--swank needs a port, got \"70000\"" (msg '("--swank" "70000"))))))

(test command-line-overrides-config
  (with-temp-dir (dir)
    (let ((path (concatenate 'string dir "c.conf")))
      (with-open-file (o path :direction :output)
        (format o "listen 127.0.0.1:1~%workers 3~%"))
      (let ((c (load-server-config *t-spec* (list :config path :listen '("[::1]:5" "127.0.0.1:6")))))
        (is (equal '("[::1]:5" "127.0.0.1:6") (mapcar #'address-string (config-value c :listen))))
        (is (= 3 (config-value c :workers))))
      (let ((c (load-server-config *t-spec* (list :workers '("7")))))
        (is (= 7 (config-value c :workers)))
        (is (null (config-value c :listen))))
      (let ((e (handler-case (progn (load-server-config *t-spec* (list :workers '("zero"))) nil)
                 (config-error (e) e))))
        (is (search "command line:1: " (princ-to-string e)))))))

(test shutdown-timeout-default
  (is (= 10000 (shutdown-timeout (listen-conf ""))))
  (is (= 2500 (shutdown-timeout (listen-conf "shutdown-timeout 2500ms")))))
