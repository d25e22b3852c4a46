;;;; main.lisp — mmftpd's configuration, its serving child (session threads) and its main;
;;;; mmftpasswd, the accounts-file tool.

(in-package :crow.ftp)

(defvar *version* "0.1.0")

(define-config-keys *ftp-keys* (:include *common-keys*)
  (accounts :path :exists :file :doc "The accounts file (see mmftpasswd).")
  (passive-ports :string :default "0"
                 :doc "Ports for PASV/EPSV as LOW-HIGH (0: any the kernel picks).")
  (passive-address :string :doc "IPv4 address announced in PASV replies (behind NAT).")
  (welcome :path :exists :file :doc "Text sent before the 220 greeting.")
  (motd :path :exists :file :doc "Text sent with the 230 reply after login.")
  (login-delay :duration :min 0 :default "1s"
               :doc "Delay after a bad password, times the failures so far.")
  (login-failures :integer :min 1 :default "3" :doc "Bad passwords before the connection is closed.")
  (transfer-timeout :duration :min 1 :default "5m"
                    :doc "A data connection making no progress this long is aborted.")
  (umask :string :default "022" :doc "The umask for created files and directories (octal).")
  (fsync :boolean :default "no" :doc "Whether STOR fsyncs the file before answering 226.")
  (auth-cache :integer :min 0 :default "0"
              :doc "Users whose verified password is remembered (keyed MAC, no password kept); 0: off.")
  (auth-cache-ttl :duration :min 1 :default "1h" :doc "How long a remembered password is trusted.")
  (thread-linger :duration :min 0 :default "60s"
                 :doc "How long threads a burst started (beyond workers) wait for more connections.")
  (require-tls :boolean :default "no"
               :doc "Refuse USER before AUTH TLS and data connections without PROT P."))

(defun %text-lines (path)
  (when path
    (let ((text (octets-to-string (read-file-octets path))))
      (remove "" (mapcar (lambda (l) (string-right-trim '(#\Return) l)) (%split text #\Newline))
              :test #'string= :count 1 :from-end t))))

(defun %ports (text)
  (if (string= text "0")
      (values 0 0)
      (let* ((dash (position #\- text))
             (lo (and dash (ignore-errors (parse-integer text :end dash))))
             (hi (and dash (ignore-errors (parse-integer text :start (1+ dash))))))
        (unless (and lo hi (<= 1024 lo hi 65535))
          (error "passive-ports: expected LOW-HIGH within 1024-65535, got ~s" text))
        (values lo hi))))

(defun chroot-relative (home root)
  "HOME as seen inside ROOT (both absolute, resolved).  Signals an error when outside."
  (cond ((string= home root) "")
        ((and (> (length home) (length root)) (string= root home :end2 (length root))
              (char= (char home (length root)) #\/))
         (subseq home (length root)))
        ((string= root "/") home)
        (t (error "home ~a is outside the chroot ~a" home root))))

(defun configure (config)
  "In the parent: reads the accounts, texts and TLS files CONFIG names.  Returns the ftp-state.
Signals an error (reported as a config error) for a bad accounts file or TLS file."
  (let* ((st (make-ftp-state))
         (path (config-value config :accounts))
         (root (let ((r (ignore-errors (config-value config :chroot))))
                 (and r (zerop (geteuid)) (realpath r)))))
    (unless path (error "no accounts file (key accounts)"))
    (dolist (a (read-accounts path))
      (let ((home (or (realpath (if (string= (account-home a) "") "/" (account-home a)))
                      (account-home a))))
        (setf (account-home a) (if root (chroot-relative home root) (if (string= home "/") "" home))))
      (setf (gethash (account-name a) (ftp-state-accounts st)) a))
    (multiple-value-bind (lo hi) (%ports (config-value config :passive-ports))
      (setf (ftp-state-pasv-low st) lo (ftp-state-pasv-high st) hi))
    (let ((w (%text-lines (config-value config :welcome))))
      (setf (ftp-state-greeting st)
            (with-output-to-string (s)
              (dolist (l w) (format s "220-~a~c~c" l #\Return #\Linefeed))
              (format s "220 mmftpd ~a ready.~c~c" *version* #\Return #\Linefeed))))
    (setf (ftp-state-motd st) (%text-lines (config-value config :motd)))
    (let ((cert (config-value config :tls-cert)) (key (config-value config :tls-key)))
      (when (or (config-value config :listen-tls) (config-value config :require-tls))
        (unless (and cert key) (error "listen-tls and require-tls need tls-cert and tls-key")))
      (when (and cert key)
        (setf (ftp-state-tls-context st) (make-tls-server-context cert key))))
    (let ((u (config-value config :umask)))
      (setf (ftp-state-umask st)
            (or (and (every (lambda (c) (digit-char-p c 8)) u) (plusp (length u)) (parse-integer u :radix 8))
                (error "umask: expected octal digits, got ~s" u))))
    (setf (ftp-state-pasv-address st) (config-value config :passive-address)
          (ftp-state-login-delay st) (config-value config :login-delay)
          (ftp-state-login-failures st) (config-value config :login-failures)
          (ftp-state-transfer-timeout st) (max 1 (ceiling (config-value config :transfer-timeout) 1000))
          (ftp-state-idle-timeout st) (max 1 (ceiling (config-value config :timeout) 1000))
          (ftp-state-fsync st) (config-value config :fsync)
          (ftp-state-require-tls st) (config-value config :require-tls)
          (ftp-state-bandwidth-in st) (or (config-value config :bandwidth-in) 0)
          (ftp-state-bandwidth-out st) (or (config-value config :bandwidth-out) 0)
          (ftp-state-auth-cache st) (let ((n (config-value config :auth-cache)))
                                      (and (plusp n)
                                           (make-auth-cache n (config-value config :auth-cache-ttl))))
          ;; checked for unknown users, so they take as long as known ones
          (ftp-state-dummy-hash st) (crypt-hash (format nil "~a" (random 1000000))))
    st))

(defun release (state)
  (when (ftp-state-tls-context state)
    (free-tls-context (ftp-state-tls-context state))))

(defun refusal (reason)
  (format nil "421 ~a~c~c"
          (case reason
            (:per-address "Too many connections from your address, try later.")
            (:rate "Connecting too fast, try later.")
            (:stopping "Server shutting down.")
            (t "Too many connections, try later."))
          #\Return #\Linefeed))

(defun serve (context)
  "In the serving child: serves FTP with one thread per control connection until told to
stop.  Returns 0."
  (let* ((config (context-config context))
         (st (context-state context))
         (admit (config-admit config)))
    (setf *state* st *random-state* (make-random-state t))
    (umask (ftp-state-umask st))
    ;; Session threads run shallow code (the whole of ftp.t passes with 64 frames, 256
    ;; bindings, 1,024 Lisp-stack words; a 1,500-deep home tree is counted in C-stack
    ;; recursion): a quarter of ECL's defaults, so a burst of logins allocates ~0.45 MB of
    ;; collected heap a thread instead of ~1.2 MB, with half the collections.
    (set-lisp-thread-stacks :binding 2048 :frame 512 :lisp 8192)
    ;; And a quarter of ECL's dispatch caches (1,024 entries each instead of 4,096: see
    ;; crow.unix:set-lisp-thread-caches): a new thread then costs ~160 KB instead of ~300 KB
    ;; resident and about a third less CPU to start (300 cold logins: 16 vs 22-24 ticks).
    (unless (nth-value 1 (set-lisp-thread-caches 1024))
      (log-warn "session threads: dispatch caches not capped (crow.unix loaded, not linked)"))
    ;; Growing the heap step by step through a burst of new session threads costs a
    ;; collection every few dozen threads, each scanning every thread (300 cold logins: 10
    ;; GCs, ~0.2-0.45 s).  256 MiB of address space from the start (not resident until used)
    ;; lets a 300-thread burst run with none; resident memory after it is ~4 MB higher.
    (grow-lisp-heap (* 256 1024 1024))
    (let ((server (start-session-server 'handle-session
                                        :listeners (context-listeners context)
                                        :max-sessions (config-value config :max-connections)
                                        :spare-threads (config-value config :workers)
                                        :linger (/ (config-value config :thread-linger) 1000)
                                        :idle-timeout (ftp-state-idle-timeout st)
                                        :write-timeout (ftp-state-transfer-timeout st)
                                        :max-line 1024
                                        :tls-context (ftp-state-tls-context st)
                                        :greeting (ftp-state-greeting st)
                                        :refusal #'refusal
                                        :admit admit)))
      (log-info "serving ftp on ~{~a~^, ~} (~d account~:p)"
                (mapcar #'listener-description (context-listeners context))
                (hash-table-count (ftp-state-accounts st)))
      (wait-for-stop context)
      (stop-session-server server :timeout (/ (shutdown-timeout config) 1000))
      (admit-destroy admit)
      0)))

(define-server "mmftpd"
  :version *version*
  :keys-table *ftp-keys*
  :summary "An FTP server (RFC 959, 2228, 2389, 2428, 2640, 3659, 4217) for virtual users from
one accounts file, each in a simulated chroot under its home, the whole server unprivileged and
optionally under chroot(2); per-address and per-user limits, throttling, FTPS (AUTH TLS).
Default: 127.0.0.1:2121."
  :options '(("-l" :listen "HOST:PORT" "listen there (replaces the config's listen keys)" :listen))
  :default-listen "127.0.0.1:2121"
  :framing :line
  :configure 'configure
  :release 'release
  :serve 'serve)

;;; mmftpasswd

(defun %passwd-usage (stream)
  (format stream "usage: mmftpasswd [-f ACCOUNTS] add|mod USER [options]
       mmftpasswd [-f ACCOUNTS] passwd USER [--stdin] [--sha512]
       mmftpasswd [-f ACCOUNTS] del USER
       mmftpasswd [-f ACCOUNTS] list
       mmftpasswd --help | --version
Edits mmftpd's accounts file (default ./ftp-accounts), replacing it atomically.
Options for add and mod:
  -d HOME        home directory (absolute; required for add)
  -p PERMS       permission letters: l list, r download, w upload, o overwrite, d delete,
                 n rename, m mkdir/rmdir, or `all' (default for add: lr)
  -q BYTES       quota in bytes (K/M/G; 0: none)      -Q FILES   quota in files (0: none)
  -i RATE        bandwidth in, bytes/s (0: none)      -o RATE    bandwidth out, bytes/s
  -m N           concurrent logins (0: no limit)
  --stdin        read the password from the first line of standard input (no prompt)
  --sha512       SHA-512 crypt instead of yescrypt
  --anonymous    (add) the anonymous read-only user: no password
The password is read from the terminal without echo (twice) unless --stdin is given.~%"))

(defun %read-password (stdin)
  (if stdin
      (let ((line (read-line *standard-input* nil nil)))
        (unless line (error "no password on standard input"))
        (string-right-trim '(#\Return) line))
      (flet ((ask (prompt)
               (format *error-output* "~a" prompt) (finish-output *error-output*)
               (let ((echo (terminal-echo 0 nil)))
                 (unwind-protect (read-line *standard-input* nil "")
                   (terminal-echo 0 echo)
                   (terpri *error-output*)))))
        (let ((a (ask "Password: ")) (b (ask "Again: ")))
          (unless (string= a b) (error "the passwords differ"))
          (when (string= a "") (error "empty password"))
          a))))

(defun passwd-main ()
  "mmftpasswd's entry point.  Returns the exit status."
  (let ((args (rest (ext:command-args)))
        (file "ftp-accounts") (opts '()) (flags '()) words)
    (handler-case
        (progn
          (loop while args
                do (let ((a (pop args)))
                     (cond ((member a '("-h" "--help") :test #'string=)
                            (%passwd-usage *standard-output*) (return-from passwd-main 0))
                           ((string= a "--version") (format t "mmftpasswd ~a~%" *version*)
                            (return-from passwd-main 0))
                           ((member a '("--stdin" "--sha512" "--anonymous") :test #'string=)
                            (push a flags))
                           ((member a '("-f" "-d" "-p" "-q" "-Q" "-i" "-o" "-m") :test #'string=)
                            (unless args (error "~a needs a value" a))
                            (if (string= a "-f") (setf file (pop args)) (push (cons a (pop args)) opts)))
                           ((and (> (length a) 1) (char= (char a 0) #\-)) (error "unknown option ~a" a))
                           (t (push a words)))))
          (setf words (nreverse words))
          (let* ((verb (first words)) (name (second words))
                 (accounts (read-accounts file))
                 (acct (and name (find name accounts :key #'account-name :test #'string=))))
            (flet ((opt (k) (cdr (assoc k opts :test #'string=)))
                   (flag (k) (member k flags :test #'string=))
                   (save () (write-accounts file accounts)))
              (flet ((apply-opts (a)
                       (let ((home (opt "-d")))
                         (when home
                           (unless (char= (char home 0) #\/) (error "-d: home must be absolute"))
                           (setf (account-home a) (string-right-trim "/" home))))
                       (let ((p (opt "-p")))
                         (when p
                           (multiple-value-bind (perms msg) (parse-perms p)
                             (when msg (error "-p: ~a" msg))
                             (setf (account-perms a) perms))))
                       (flet ((size (k) (let ((v (opt k)))
                                          (and v (or (parse-size v) (error "~a: bad size ~s" k v)))))
                              (num (k) (let ((v (opt k)))
                                         (and v (or (ignore-errors (parse-integer v))
                                                    (error "~a: bad number ~s" k v))))))
                         (let ((q (size "-q")) (bi (size "-i")) (bo (size "-o"))
                               (qf (num "-Q")) (ml (num "-m")))
                           (when q (setf (account-quota-bytes a) q))
                           (when bi (setf (account-bandwidth-in a) bi))
                           (when bo (setf (account-bandwidth-out a) bo))
                           (when qf (setf (account-quota-files a) qf))
                           (when ml (setf (account-max-logins a) ml)))))
                     (hash () (crypt-hash (%read-password (flag "--stdin"))
                                          :method (if (flag "--sha512") :sha512 :yescrypt))))
                (cond
                  ((string= verb "list")
                   (dolist (a accounts)
                     (format t "~a ~a ~a~%" (account-name a) (account-home a) (perms-string (account-perms a))))
                   0)
                  ((null name) (%passwd-usage *error-output*) 2)
                  ((or (find #\: name) (find #\Space name)) (error "bad user name ~s" name))
                  ((string= verb "add")
                   (when acct (error "user ~a exists (use mod or passwd)" name))
                   (unless (opt "-d") (error "add needs -d HOME"))
                   (let ((a (make-account :name name :perms '(:list :download))))
                     (apply-opts a)
                     (if (flag "--anonymous")
                         (progn (unless (string= name "anonymous") (error "--anonymous: the user must be named anonymous"))
                                (setf (account-hash a) "" (account-perms a)
                                      (intersection (account-perms a) '(:list :download))))
                         (setf (account-hash a) (hash)))
                     (setf accounts (append accounts (list a)))
                     (save) 0))
                  ((null acct) (error "no user ~a in ~a" name file))
                  ((string= verb "mod") (apply-opts acct) (save) 0)
                  ((string= verb "passwd") (setf (account-hash acct) (hash)) (save) 0)
                  ((string= verb "del") (setf accounts (remove acct accounts)) (save) 0)
                  (t (%passwd-usage *error-output*) 2))))))
      (error (e)
        (format *error-output* "mmftpasswd: ~a~%" e)
        1))))
