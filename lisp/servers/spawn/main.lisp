;;;; main.lisp — mmspawnd's command line: options, start-up order, exit statuses.

(in-package :crow.spawn)

(defvar *version* "0.1.0")

(defun usage (s)
  (format s "usage: mmspawnd -f CONFIG [-n] [--foreground] [--swank PORT]
       mmspawnd --help | --version
An inetd-like server for one service: runs the config's `program' per connection (or, for a
udp service, per burst of datagrams) with the connection as stdin and stdout, from a pool of
pre-forked children already chrooted, unprivileged and limited.  -n checks the configuration
\(and the program's ownership and mode) and exits 0 or 1.  Runs in the foreground; SIGTERM or
SIGINT stop it.

Configuration keys:~%")
  (describe-config-keys *spawn-keys* s))

(defun %parse-options (args)
  "Returns a plist (:config :check :swank) or an exit status."
  (let ((config nil) (check nil) (swank nil))
    (loop while args
          do (let ((a (pop args)))
               (flet ((need () (or (pop args)
                                   (progn (format *error-output* "mmspawnd: ~a needs a value~%" a)
                                          (return-from %parse-options 2)))))
                 (cond ((member a '("-h" "--help") :test #'string=)
                        (usage *standard-output*) (return-from %parse-options 0))
                       ((string= a "--version")
                        (format t "mmspawnd ~a~%" *version*) (return-from %parse-options 0))
                       ((string= a "-f") (setf config (need)))
                       ((string= a "-n") (setf check t))
                       ((string= a "--foreground"))
                       ((string= a "--swank")
                        (let ((v (need)))
                          (setf swank (parse-integer v :junk-allowed t))
                          (unless (and swank (< 0 swank 65536))
                            (format *error-output* "mmspawnd: bad --swank port ~s~%" v)
                            (return-from %parse-options 2))))
                       (t (format *error-output* "mmspawnd: unknown option ~a~%" a)
                          (usage *error-output*) (return-from %parse-options 2))))))
    (unless config
      (format *error-output* "mmspawnd: -f CONFIG is required~%")
      (return-from %parse-options 2))
    (list :config config :check check :swank swank)))

(defun %open-stderr (plan)
  "Returns the descriptor the children's stderr becomes (NIL: /dev/null)."
  (let ((s (plan-stderr plan)))
    (cond ((string= s "null") nil)
          ((string= s "log") (if (eq (plan-log-target plan) :stderr) 2 nil))
          (t (handler-case (open-fd s :direction :output :if-exists :append :mode #o640)
               (unix-error (e) (%refuse (plan-config plan) :stderr "~a" e)))))))

(defun main ()
  "mmspawnd's entry point.  Returns the exit status: 0, 1 for a configuration or start-up
failure, 2 for a usage error."
  (let ((opts (%parse-options (rest (ext:command-args)))))
    (when (integerp opts) (return-from main opts))
    (handler-case
        (let* ((config (read-config (getf opts :config) *spawn-keys* :check (getf opts :check)))
               (plan (make-plan config)))
          (when (getf opts :check)
            (format t "mmspawnd: configuration ok~%")
            (return-from main 0))
          (open-log "mmspawnd" (plan-log-target plan))
          (ignore-sigpipe)
          (let* ((listeners (open-listeners plan))
                 (devnull (open-fd "/dev/null" :direction :io))
                 (errfd (%open-stderr plan)))
            (dolist (l listeners)
              (multiple-value-bind (h p) (local-address (first l))
                (log-info "listening on ~:[~a~;[~a]~]~@[:~d~] (~(~a~)) for ~a" (find #\: h) h p
                          (second l) (plan-program plan))))
            (when (getf opts :swank) (crow.sh:start-swank (getf opts :swank)))
            (let ((spawner (start-spawner plan :devnull devnull :errfd errfd)))
              (drop-privileges plan)
              (serve plan listeners :devnull devnull :errfd errfd :spawner spawner))))
      (config-error (e)
        (format *error-output* "~a~%" e)
        1)
      (error (e)
        (format *error-output* "mmspawnd: ~a~%" e)
        1))))
