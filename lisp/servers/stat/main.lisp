;;;; main.lisp — mmstatd's configuration keys, command line and life cycle.
;;;;
;;;; mmstatd is one process (no privilege-separated parent: the serving process owns the
;;;; recovery log, and two processes must never append to it, as a graceful SIGHUP
;;;; replacement would).  Started as root with `user` set, it makes its directories, opens the
;;;; sockets and the log, gives data-dir and stat-dir to that user and drops to it before its
;;;; threads start.  SIGHUP re-reads the configuration and applies the sync policy and
;;;; rotation limits; SIGTERM logs what is queued, syncs, snapshots and exits.

(in-package :crow.mmstatd)

(defparameter +version+ "0.1.0")
(defvar *mmstatd-options* nil "The command-line options (a plist), for SIGHUP.")

(defun %sync-message (words)
  (unless (%parse-sync words)
    (format nil "expected always, never or every DURATION, got ~{~a~^ ~}" words)))

(defun %parse-sync (words)
  "Returns (values POLICY EVERY-MS) for the words of a sync value, or NIL."
  (cond ((equal words '("always")) (values :always 0))
        ((equal words '("never")) (values :never 0))
        ((and (= (length words) 2) (string= (first words) "every")
              (parse-duration (second words)) (plusp (parse-duration (second words))))
         (values :every (parse-duration (second words))))))

(define-config-keys *mmstatd-keys*
  (stat-dir :path :default "/run/mmstatd"
            :doc "Directory of the sockets clients use: logger.sock (transactions) and librarian.sock (reports); created when missing.")
  (pidfile :path :exists :parent :doc "File the process id is written to.")
  (user :user :doc "User mmstatd runs as once its sockets and log are open (started as root); data-dir and stat-dir are given to it.")
  (group :group :doc "Group it runs as (default: the user's).")
  (log :enum :values '(:syslog :stderr) :default "syslog" :doc "Where log lines go.")
  (data-dir :path :default "/var/lib/mmstatd"
            :doc "Directory of the recovery logs and the snapshot (created when missing).")
  (sync :list :default "every 1s" :validator #'%sync-message :meta "always|every DURATION|never"
        :doc "When the log is fsynced: each batch of transactions (group commit) before they are acknowledged, at most every DURATION, or never (the kernel's choice).")
  (snapshot-interval :duration :min 1000 :default "1h"
                     :doc "A snapshot is written and the log rotated this often (when anything was logged).")
  (log-size :size :min 4096 :default "64M"
            :doc "A snapshot is written and the log rotated when the log grows beyond this."))

(defparameter +summary+
  "mmstatd: the counter database server.  Clients (libmmstat, mmstat, apache-mmstat, crow's
servers) send transactions to the logger socket and ask for reports on the librarian socket,
both in stat-dir (default /run/mmstatd).
  --check            inspect the snapshot and recovery logs, change nothing: exit 0 when they
                     are whole (or end in a torn tail), 1 when damaged
  --repair           truncate the log at the first damaged transaction (deleting later logs)")

(defun %spec ()
  (make-server-spec :name "mmstatd" :version +version+ :keys *mmstatd-keys* :summary +summary+
                    :options '(("-s" :stat-dir "DIR" "sockets in DIR (replaces stat-dir)" :stat-dir)
                               ("-D" :data-dir "DIR" "data in DIR (replaces data-dir)" :data-dir)
                               ("--check" :check-log nil "inspect the logs, change nothing (exit 0/1)")
                               ("--repair" :repair nil "truncate a damaged log at the damage"))))

(defun %stat-dir (config)
  (config-value config :stat-dir))

(defun %usage (stream)
  (format stream "usage: mmstatd [-f CONFIG] [-n] [--foreground] [--swank PORT] [-d] [-s DIR] [-D DIR] [--check | --repair]
       mmstatd --help | --version
~a

Options:
  -f CONFIG          read the configuration from CONFIG
  -n                 check the configuration and exit 0/1
  --foreground       stay attached to the terminal and log to stderr
  --swank PORT       start swank on 127.0.0.1:PORT (for SLIME)
  -d                 log debugging lines too
  -s DIR             sockets in DIR (replaces stat-dir)
  -D DIR             data in DIR (replaces data-dir)

Signals: SIGHUP re-reads the configuration (sync, snapshot-interval, log-size apply at once);
SIGTERM and SIGINT log what is queued, sync, write a snapshot and exit.

Configuration keys:~%" +summary+)
  (describe-config-keys *mmstatd-keys* stream))

(defun %ensure-directory (path)
  (unless (file-exists-p path)
    (handler-case (mkdir path #o755)
      (eexist () nil))))

(defun %apply-config (st config)
  (multiple-value-bind (policy every) (%parse-sync (config-value config :sync))
    (setf (state-policy st) policy (state-every-ms st) every
          (state-snapshot-ms st) (config-value config :snapshot-interval)
          (state-log-size st) (config-value config :log-size))
    (when (state-lg st) (statlog-set-policy (state-lg st) policy every))))

(defun check-logs (config repair)
  "--check and --repair: prints what recovery finds.  Returns the exit status."
  (let ((dir (config-value config :data-dir)))
    (when (and repair (file-exists-p dir) (not (lock-file (format nil "~a/lock" dir))))
      (format t "mmstatd: ~a is in use by a running mmstatd: stop it before --repair~%" dir)
      (return-from check-logs 1))
    (handler-case
        (multiple-value-bind (log offset next status)
            (recover dir nil :mode (if repair :repair :check)
                             :report (lambda (fmt &rest args)
                                       (format t "~?~%" fmt args)))
          (format t "mmstatd: ~a: ~(~a~); next transaction ~d appends to ~a at offset ~d~%"
                  dir (if (and repair (not (eq status :ok))) "repaired" status) next
                  (log-path dir log) offset)
          (if (and (eq status :damaged) (not repair)) 1 0))
      (error (e)
        (format t "mmstatd: ~a~%" e)
        1))))

(defun %give-directories (config dirs)
  "Started as root with a user configured: gives DIRS and the files directly in them to that
user (and group), so the process can still snapshot and rotate once it has dropped to it.
Symbolic links are given, not followed.  Signals crow-error for an unknown user or group."
  (let ((user (config-value config :user))
        (group (config-value config :group)))
    (when (and user (zerop (geteuid)))
      (multiple-value-bind (name uid gid) (getpwnam user)
        (unless name (error 'simple-crow-error :format-control "no such user ~s" :format-arguments (list user)))
        (when group
          (setf gid (or (nth-value 1 (getgrnam group))
                        (error 'simple-crow-error :format-control "no such group ~s"
                                                  :format-arguments (list group)))))
        (dolist (dir dirs)
          (lchown dir uid gid)
          (dolist (f (read-directory dir))
            (lchown (format nil "~a/~a" dir f) uid gid)))))))

(defun %write-pidfile (config)
  (let ((path (ignore-errors (config-value config :pidfile))))
    (when path
      (with-fd (fd (open-fd path :direction :output :if-exists :truncate :mode #o644))
        (write-all fd (map 'octets #'char-code (format nil "~d~%" (getpid)))))
      path)))

(defun serve (config)
  "Recovers, opens the sockets, runs the logger and librarian threads until SIGTERM/SIGINT.
Returns the exit status."
  (let* ((st (make-state :config config :stat-dir (%stat-dir config)
                         :data-dir (config-value config :data-dir)))
         (sigfd (watch-signals '(:term :int :hup)))
         pidfile)
    (%apply-config st config)
    (%ensure-directory (state-data-dir st))
    (%ensure-directory (state-stat-dir st))
    ;; one mmstatd per data directory: a second one would append to the same log
    (unless (lock-file (format nil "~a/lock" (state-data-dir st)))
      (log-warn "~a is in use by another mmstatd" (state-data-dir st))
      (return-from serve 1))
    (multiple-value-bind (log offset next)
        (handler-case (recover (state-data-dir st) *db*)
          (error (e) (log-warn "~a" e) (return-from serve 1)))
      (let ((dropped (drop-volatile *db*)))
        (log-info "recovered ~d keys (~d volatile dropped); appending to ~a at offset ~d"
                  (hash-table-count *db*) dropped (log-path (state-data-dir st) log) offset))
      (let* ((path (log-path (state-data-dir st) log))
             (fd (open-fd path :direction :output :if-exists :append :mode #o600)))
        (setf (state-log-number st) log (state-log-fd st) fd)
        (let ((sock (format nil "~a/logger.sock" (state-stat-dir st)))
              (lib (format nil "~a/librarian.sock" (state-stat-dir st))))
          (setf (state-dgram-fd st) (unix-listen sock :type :datagram)
                (state-lib-fd st) (unix-listen lib :type :stream))
          (chmod sock #o666)
          (chmod lib #o666)
          (setf (state-lg st) (make-statlog (state-dgram-fd st) fd offset next))
          (statlog-set-policy (state-lg st) (state-policy st) (state-every-ms st))
          (setf (state-last-snapshot st) (%now-ms))
          (log-info "serving on ~a (sync ~(~a~)~@[ ~dms~])" (state-stat-dir st) (state-policy st)
                    (and (eq (state-policy st) :every) (state-every-ms st)))
          (setf pidfile (%write-pidfile config))
          (unwind-protect
               (progn
                 ;; swank before the drop (it reads its fasl cache); threads after it
                 (when *swank-port*
                   (funcall (intern "START-SWANK" "CROW.SH") *swank-port*))
                 (handler-case
                     (progn (%give-directories config (list (state-data-dir st) (state-stat-dir st)))
                            (drop-privileges config))
                   (error (e) (log-warn "~a" e) (return-from serve 1)))
                 (setf (state-logger st) (mp:process-run-function "mmstatd logger"
                                                                  (lambda () (logger-loop st)))
                       (state-librarian st) (mp:process-run-function "mmstatd librarian"
                                                                     (lambda () (librarian-loop st))))
                 (let ((ep (epoll-create)) (events (make-epoll-events 2)))
                   (epoll-add ep sigfd +epollin+)
                   (loop
                     (epoll-wait ep events 1000)
                     (let ((sigs (read-signals)))
                       (when (intersection sigs '(:term :int)) (return))
                       (when (member :hup sigs)
                         (handler-case
                             (let ((new (load-server-config (%spec) *mmstatd-options*)))
                               (%apply-config st new)
                               (log-info "configuration re-read (sync ~(~a~))" (state-policy st)))
                           (config-error (e) (log-warn "~a (keeping the running configuration)" e)))))))
                 (log-info "stopping")
                 (setf (state-stop st) t)
                 (mp:process-join (state-logger st))
                 (mp:process-join (state-librarian st))
                 0)
            (ignore-errors (close-fd (state-dgram-fd st)))
            (ignore-errors (close-fd (state-lib-fd st)))
            (ignore-errors (unlink sock))
            (ignore-errors (unlink lib))
            (when pidfile (ignore-errors (unlink pidfile)))))))))

(defun main ()
  "mmstatd's entry point.  Returns the exit status."
  (let* ((spec (%spec))
         (options (handler-case (parse-command-line spec (rest (ext:command-args)))
                    (crow-error (e)
                      (format *error-output* "mmstatd: ~a~%" e)
                      (return-from main 2)))))
    (setf *mmstatd-options* options *foreground* (getf options :foreground)
          *swank-port* (getf options :swank) *debug* (getf options :debug)
          *program* "mmstatd")
    (cond ((getf options :help)
           (%usage *standard-output*)
           (return-from main 0))
          ((getf options :version)
           (format t "mmstatd ~a~%" +version+) (return-from main 0)))
    (let ((config (handler-case (load-server-config spec options :check (getf options :check))
                    (config-error (e)
                      (format *error-output* "~a~%" e)
                      (return-from main 1)))))
      (cond ((getf options :check)
             (format t "mmstatd: configuration ok~%") 0)
            ((or (getf options :check-log) (getf options :repair))
             (check-logs config (getf options :repair)))
            (t
             (open-log "mmstatd" (if (and *foreground*
                                          (not (nth-value 1 (config-value config :log))))
                                     :stderr
                                     (config-value config :log)))
             (ignore-sigpipe)
             (unless *foreground* (daemonize))
             (serve config))))))
