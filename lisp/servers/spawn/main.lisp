;;;; main.lisp — mmspawnd's command line: options, start-up order, exit statuses.

(in-package :crow.spawn)

(defvar *version* "0.1.0")

(defun usage (s)
  (format s "usage: mmspawnd -f CONFIG [-n] [--foreground] [--swank PORT]
       mmspawnd --help | --version
An inetd-like server for one service: runs the config's `program' per connection (or, for a
udp service, per burst of datagrams) with the connection as stdin and stdout, from a pool of
pre-forked children already chrooted, unprivileged and limited.  -n checks the configuration
\(and the program's ownership and mode) and exits 0 or 1.  Runs in the foreground; SIGHUP
re-reads the configuration (connections in progress finish under the old one); SIGTERM or
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

;;; The supervising parent.
;;;
;;; mmspawnd runs as two layers, like crow.server's privsep: a small parent that keeps its
;;; privileges, the config path and the listeners, and a serving process (a "generation")
;;; forked from it, which starts the spawner, enters the chroot, drops to the service user
;;; and runs the pool (serve).  The parent is single-threaded and does nothing but signals:
;;; SIGHUP re-reads the config; a config that does not read or check is logged as
;;; `file:line: message' and the running generation goes on.  A good one gets a new
;;; generation over the listeners it names (unchanged addresses are the same sockets, so no
;;; connection is refused meanwhile; new ones are bound by the privileged parent); once that
;;; one says it serves (a byte on its socket pair, after its first child is set up), the old
;;; one gets SIGTERM: it stops accepting, lets the programs still serving connections finish
;;; (reaping them), and exits; listeners no longer named are closed.  SIGTERM/SIGINT stop
;;; every generation the same way.  The parent forks before any thread exists (--swank runs
;;; in the first generation).

(defstruct (generation (:conc-name gen-))
  pid control listeners (number 1) (stopping nil))

(defvar *generations* '() "The parent's serving processes, newest first.")
(defvar *held-signals* '() "Signals read while waiting for a generation to start.")

(defun %start-generation (plan listeners opts number)
  "Forks the serving process for PLAN over LISTENERS.  Returns its generation struct."
  (multiple-value-bind (mine theirs) (socket-pair)
    (let ((pid (handler-bind ((error (lambda (e) (declare (ignore e))
                                       (%close mine) (%close theirs))))
                 (fork))))
      (cond
        ((zerop pid)
         (%close mine)
         (reset-signal-pipe)
         (dolist (g *generations*)
           (ignore-errors (%close (gen-control g)))
           (dolist (l (gen-listeners g))
             (unless (member (first l) listeners :key #'first)
               (ignore-errors (%close (first l))))))
         (setf *generations* '())
         (exit-process
          (handler-case
              (let ((devnull (open-fd "/dev/null" :direction :io))
                    (errfd (%open-stderr plan)))
                (when (and (getf opts :swank) (= number 1))
                  (crow.sh:start-swank (getf opts :swank)))
                (let ((spawner (start-spawner plan :devnull devnull :errfd errfd)))
                  (drop-privileges plan)
                  (serve plan listeners :devnull devnull :errfd errfd :spawner spawner
                                        :ready (lambda ()
                                                 (write-all theirs (make-octets 1 :initial-element 1))))))
            (config-error (e) (log-warn "~a" e) 1)
            (error (e) (log-warn "~a" e) 1))))
        (t
         (%close theirs)
         (let ((g (make-generation :pid pid :control mine :listeners listeners :number number)))
           (push g *generations*)
           g))))))

(defun %await-generation (g timeout-s)
  "Waits for G's ready byte.  Returns T, or NIL when it ended, timed out or SIGTERM/SIGINT
came (signals read meanwhile are kept in *held-signals*)."
  (let ((ep (epoll-create)) (events (make-epoll-events 2)) (buf (make-octets 1))
        (deadline (+ (monotonic-seconds) timeout-s)))
    (unwind-protect
         (progn
           (epoll-add ep (gen-control g) +epollin+)
           (epoll-add ep (signal-fd) +epollin+)
           (loop
             (when (> (monotonic-seconds) deadline) (return nil))
             (let ((n (epoll-wait ep events 1000)))
               (let ((sigs (read-signals)))
                 (setf *held-signals* (append *held-signals* sigs))
                 (when (intersection sigs '(:term :int)) (return nil)))
               (dotimes (i n)
                 (when (= (epoll-event-data events i) (gen-control g))
                   (return-from %await-generation
                     (handler-case (plusp (read-fd (gen-control g) buf))
                       (unix-error () nil))))))))
      (%close ep))))

(defun %stop-generation (g)
  (unless (gen-stopping g)
    (setf (gen-stopping g) (+ (monotonic-seconds) 40))
    (ignore-errors (kill (gen-pid g) :term))))

(defun %close-unused (listeners)
  "Closes the LISTENERS no generation holds any more."
  (dolist (l listeners)
    (unless (some (lambda (g) (member (first l) (gen-listeners g) :key #'first)) *generations*)
      (ignore-errors (%close (first l))))))

(defun %reap-generations ()
  "Reaps ended generations.  Returns the list of those reaped."
  (let ((out '()))
    (loop
      (multiple-value-bind (pid how code) (handler-case (waitpid -1 :nohang t) (unix-error () nil))
        (unless pid (return))
        (let ((g (find pid *generations* :key #'gen-pid)))
          (when g
            (setf *generations* (remove g *generations*))
            (ignore-errors (%close (gen-control g)))
            (%close-unused (gen-listeners g))
            (push g out)
            (if (and (gen-stopping g) (eq how :exited) (zerop code))
                (log-info "generation ~d (pid ~d) finished" (gen-number g) pid)
                (log-warn "generation ~d (pid ~d) ~(~a~) ~d" (gen-number g) pid how code))))))
    out))

(defun %reload (path opts current)
  "Re-reads PATH; on success starts the next generation and stops CURRENT.  Returns the
generation now serving."
  (log-info "hup: re-reading ~a" path)
  (handler-case
      (let* ((config (read-config path *spawn-keys*))
             (plan (make-plan config))
             (listeners (open-listeners plan :reuse (gen-listeners current)))
             (g (%start-generation plan listeners opts (1+ (gen-number current)))))
        (cond ((%await-generation g 60)
               (log-info "generation ~d (pid ~d) serves ~a; generation ~d finishes its connections"
                         (gen-number g) (gen-pid g) path (gen-number current))
               (%stop-generation current)
               g)
              (t
               (log-warn "hup: the new configuration did not start; the old one goes on")
               (%stop-generation g)
               current)))
    (config-error (e)
      (log-warn "~a (hup: the old configuration goes on)" e)
      current)
    (error (e)
      (log-warn "hup: ~a (the old configuration goes on)" e)
      current)))

(defun supervise (path opts plan)
  "The parent's loop: starts the first generation for PLAN, then handles SIGHUP (reload),
SIGCHLD and SIGTERM/SIGINT.  Returns the exit status."
  (watch-signals '(:chld :term :int :hup))
  (let* ((listeners (open-listeners plan))
         (current (%start-generation plan listeners opts 1))
         (ep (epoll-create)) (events (make-epoll-events 4))
         (stopping nil))
    (dolist (l listeners)
      (multiple-value-bind (h p) (local-address (first l))
        (log-info "listening on ~:[~a~;[~a]~]~@[:~d~] (~(~a~)) for ~a" (find #\: h) h p
                  (second l) (plan-program plan))))
    (unless (%await-generation current 300)
      (%stop-generation current)
      (loop repeat 100 while *generations* do (%reap-generations) (sleep 0.05))
      (return-from supervise (if (intersection *held-signals* '(:term :int)) 0 1)))
    (epoll-add ep (signal-fd) +epollin+)
    (loop
      (epoll-wait ep events 1000)
      (let ((sigs (append (shiftf *held-signals* '()) (read-signals))))
        (dolist (s sigs)
          (case s
            (:chld
             (dolist (g (%reap-generations))
               (when (and (eq g current) (not stopping))
                 (log-warn "the serving process ended; stopping")
                 (setf stopping :failed)
                 (mapc #'%stop-generation *generations*))))
            ((:term :int)
             (unless stopping
               (log-info "~(~a~): stopping" s)
               (setf stopping t)
               (mapc #'%stop-generation *generations*)))
            (:hup (unless stopping (setf current (%reload path opts current)))))))
      (%reap-generations)
      (dolist (g *generations*)
        (when (and (gen-stopping g) (> (monotonic-seconds) (gen-stopping g)))
          (log-warn "generation ~d (pid ~d) did not finish: killed" (gen-number g) (gen-pid g))
          (setf (gen-stopping g) (+ (monotonic-seconds) 3600))
          (ignore-errors (kill (gen-pid g) :kill))))
      (when (and stopping (null *generations*))
        (return (if (eq stopping :failed) 1 0))))))

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
          (supervise (getf opts :config) opts plan))
      (config-error (e)
        (format *error-output* "~a~%" e)
        1)
      (error (e)
        (format *error-output* "mmspawnd: ~a~%" e)
        1))))
