;;;; privsep.lisp — privilege separation, as OpenBSD's daemons do it: a small parent (root or
;;;; not) holds the listeners and forks the serving child, which chroots and drops to the
;;;; configured user before it serves; SIGHUP replaces the child gracefully, SIGTERM drains.
;;;;
;;;; The parent stays single-threaded and simple: it forks before any thread of ours exists
;;;; (ECL's own signal thread is not copied into the child), and its only work is signals,
;;;; reaping and re-reading the config.  Each child has a socketpair to the parent: the child
;;;; writes one byte when it serves (so a generation that fails to start is noticed and the
;;;; old one kept), and the parent closes its end to tell the child to stop accepting and
;;;; finish its connections — a child whose parent died sees the same EOF and stops too.
;;;; Every child is reaped (SIGCHLD is watched); one that lingers past the shutdown deadline
;;;; is killed.

(in-package :crow.server)

(defstruct (child (:constructor %make-child))
  pid control generation (state :starting) (started (monotonic-ns)) (stop-deadline nil))

(defvar *children* '() "The parent's children (child structs), newest first.")
(defvar *swank-pending* nil "True when the serving child is to start swank once it serves.")
(defvar *ready-timeout-ms* 300000
  "How long the parent waits for a new child to say it serves (swank may compile first).")

(defun %wait-readable (fd timeout-ms)
  "True when FD becomes readable (or hangs up) within TIMEOUT-MS."
  (let ((ep (epoll-create)) (events (make-epoll-events 1)))
    (unwind-protect
         (progn (epoll-add ep fd +epollin+)
                (plusp (epoll-wait ep events timeout-ms)))
      (close-fd ep))))

(defun daemonize ()
  "Detaches from the terminal: forks (the parent exits 0 at once), starts a new session, and
points stdin and stdout (and stderr unless logging goes there) at /dev/null.  Returns NIL.
Signals unix-error."
  (unless (zerop (fork)) (exit-process 0))
  (setsid)
  (let ((null (open-fd "/dev/null" :direction :io :if-exists :keep :if-does-not-exist :error)))
    (dup2 null 0)
    (dup2 null 1)
    (unless (eq *log-target* :stderr) (dup2 null 2))
    (when (> null 2) (close-fd null)))
  nil)

;;; The child side

(defun drop-privileges (config)
  "In a serving child: enters CONFIG's chroot and becomes its user and group (setgroups,
setresgid, setresuid), then makes sure root cannot be regained.  Not running as root, a
configured user other than the current one or a chroot cannot be honoured: each is logged and
skipped (a wholly unprivileged server).  Returns NIL.  Signals simple-crow-error when a user
was configured and the process is still root, or a lookup or call fails."
  (let ((user (config-value config :user))
        (group (ignore-errors (config-value config :group)))
        (root (ignore-errors (config-value config :chroot))))
    (flet ((fail (fmt &rest args)
             (error 'simple-crow-error :format-control fmt :format-arguments args)))
      (cond
        ((zerop (geteuid))
         (multiple-value-bind (uname uid gid) (and user (getpwnam user))
           (when (and user (null uname)) (fail "no such user ~s" user))
           (when group
             (let ((g (nth-value 1 (getgrnam group))))
               (unless g (fail "no such group ~s" group))
               (setf gid g)))
           (when root
             (chroot root)
             (chdir "/"))
           (when user
             (setgroups (list gid))
             (setresgid gid gid gid)
             (setresuid uid uid uid)
             (when (or (zerop (geteuid)) (zerop (getuid))
                       (ignore-errors (setresuid 0 0 0) t))
               (fail "still root after dropping to user ~s: refusing to serve" user)))
           (unless user
             (log-warn "no user configured: serving as root~@[ (chrooted to ~a)~]" root))))
        (t
         (when (and user (not (eql (nth-value 1 (getpwnam user)) (geteuid))))
           (log-warn "not root: serving as uid ~d, not as user ~a" (geteuid) user))
         (when root
           (log-warn "not root: cannot chroot to ~a, serving unconfined" root)))))
    nil))

(defun wait-for-stop (context &key (timeout-ms nil))
  "Called by a server's serve function once it serves: tells the parent so (the first time),
then waits until the parent says stop (SIGHUP replaced this process, or SIGTERM), or this
process gets SIGTERM or SIGINT, or TIMEOUT-MS (NIL: no limit) passed.  Returns :stop, or NIL on
timeout.  Signals unix-error."
  (let ((control (context-control context)))
    (unless (eq (context-stop-reason context) :ready)
      (when control (ignore-errors (write-all control (make-octets 1 :initial-element 82))))
      (setf (context-stop-reason context) :ready)
      (when *swank-pending* (start-swank-if-asked)))
    (let ((ep (epoll-create)) (events (make-epoll-events 4))
          (deadline (and timeout-ms (+ (monotonic-ns) (* timeout-ms 1000000)))))
      (unwind-protect
           (progn
             (epoll-add ep (signal-fd) +epollin+)
             (when control (epoll-add ep control +epollin+))
             (loop
               (let ((n (epoll-wait ep events (if deadline
                                                  (max 0 (floor (- deadline (monotonic-ns)) 1000000))
                                                  1000))))
                 (when (some (lambda (s) (member s '(:term :int))) (read-signals))
                   (setf (context-stop-reason context) :signal)
                   (return :stop))
                 (when (and (plusp n) control
                            (loop for i below n thereis (= (epoll-event-data events i) control)))
                   (setf (context-stop-reason context) :parent)
                   (return :stop))
                 (when (and deadline (>= (monotonic-ns) deadline))
                   (return nil)))))
        (close-fd ep)))))

(defun %child-main (spec config state listeners options generation control)
  "The serving child: own signal pipe, swank, privilege drop, then SPEC's serve.  Returns the
exit status."
  (reset-signal-pipe)
  (watch-signals '(:term :int))
  (ignore-signal-hup)
  (handler-case
      (progn
        ;; Swank must be loaded before a chroot or a drop (it reads its fasl cache); without
        ;; either, it is loaded once the process serves, so a first compile delays no client.
        (if (and (zerop (geteuid))
                 (or (config-value config :user) (ignore-errors (config-value config :chroot))))
            (start-swank-if-asked)
            (setf *swank-pending* t))
        ;; Statistics: the shared mmstat handle is opened here, before the chroot (its
        ;; datagram socket is connected at open and keeps working inside).
        (%setup-stats config)
        (let ((chrooted (and (zerop (geteuid)) (ignore-errors (config-value config :chroot)))))
          (drop-privileges config)
          ;; No C compiler inside a chroot: code compiled from SLIME there goes to bytecodes.
          (when (and *swank-port* chrooted)
            (ext:install-bytecodes-compiler)))
        (let ((status (funcall (server-spec-serve spec)
                               (make-server-context :spec spec :config config
                                                    :listeners listeners :options options
                                                    :state state :generation generation
                                                    :control control))))
          (if (integerp status) status 0)))
    (error (e)
      (log-warn "serving process ~d: ~a" (getpid) e)
      1)))

(defun %setup-stats (config)
  "Opens the process's shared mmstat handle (crow.unix:mmstat-setup) on CONFIG's stat-dir when
it has one, so mmstat-count works from any thread.  Logs when no mmstatd answers (the counts
are then dropped).  Can't fail."
  (let ((dir (ignore-errors (config-value config :stat-dir))))
    (when dir
      (if (mmstat-setup (namestring dir))
          (log-info "statistics to mmstatd in ~a" dir)
          (log-warn "stat-dir ~a: no mmstatd answers there; events are not counted" dir)))))

(defun start-swank-if-asked ()
  "Starts swank on --swank's port (once).  Logs a failure.  Can't fail."
  (setf *swank-pending* nil)
  (when *swank-port*
    (handler-case
        (if (find-package "CROW.SH")
            (funcall (intern "START-SWANK" "CROW.SH") *swank-port*)
            (log-warn "--swank: this program was built without crow/sh"))
      (error (e) (log-warn "swank: ~a" e)))))

(defun ignore-signal-hup ()
  "A child leaves SIGHUP to the parent."
  (ffi:c-inline () () :void "signal(SIGHUP, SIG_IGN)" :one-liner t))

;;; The parent side

(defun start-child (spec config state listeners options generation &optional others)
  "Forks a serving child for GENERATION over LISTENERS; in the child the listeners of OTHERS
\(the previous generation's) not in LISTENERS are closed, so a dropped address really closes
when the old child ends.  Returns its child struct.  Signals unix-error when it cannot fork."
  (multiple-value-bind (mine theirs) (socket-pair)
    (let ((pid (handler-bind ((error (lambda (e) (declare (ignore e))
                                       (%close mine) (%close theirs))))
                 (fork))))
      (cond ((zerop pid)
             (%close mine)
             ;; Other children's control sockets must not stay open here: the parent's
             ;; close is their stop signal.
             (dolist (c *children*) (when (child-control c) (ignore-errors (%close (child-control c)))))
             (setf *children* '())
             (dolist (l others)
               (unless (or (member l listeners) (null (listener-fd l)))
                 (ignore-errors (%close (listener-fd l)))))
             (let ((status (%child-main spec config state listeners options generation theirs)))
               (ignore-errors (finish-output *standard-output*))
               (ignore-errors (finish-output *error-output*))
               (exit-process status)))
            (t
             (%close theirs)
             (let ((c (%make-child :pid pid :control mine :generation generation)))
               (push c *children*)
               c))))))

(defvar *pending-signals* '()
  "Signals the parent read while waiting for a child, for its main loop to handle.")

(defun %await-ready (child timeout-ms)
  "Waits for CHILD's ready byte.  Returns T, or NIL when it died, timed out, or SIGTERM/SIGINT
arrived meanwhile (signals read meanwhile are kept in *pending-signals*)."
  (let ((buf (make-octets 1))
        (ep (epoll-create)) (events (make-epoll-events 2))
        (deadline (+ (monotonic-ns) (* timeout-ms 1000000))))
    (unwind-protect
         (progn
           (epoll-add ep (child-control child) +epollin+)
           (when (>= (signal-fd) 0) (epoll-add ep (signal-fd) +epollin+))
           (loop
             (when (> (monotonic-ns) deadline) (return nil))
             (epoll-wait ep events 1000)
             (let ((sigs (read-signals)))
               (setf *pending-signals* (append *pending-signals* sigs))
               (when (intersection sigs '(:term :int)) (return nil)))
             (when (%wait-readable (child-control child) 0)
               (return (and (handler-case (plusp (read-fd (child-control child) buf))
                              (unix-error () nil))
                            (progn (setf (child-state child) :serving) t))))))
      (close-fd ep))))

(defun tell-child-stop (child deadline-ms)
  "Closes CHILD's control socket (its stop signal) and sets its kill deadline.  Can't fail."
  (when (child-control child)
    (ignore-errors (%close (child-control child)))
    (setf (child-control child) nil))
  (unless (eq (child-state child) :stopping)
    (setf (child-state child) :stopping
          (child-stop-deadline child) (+ (monotonic-ns) (* deadline-ms 1000000)))))

(defun reap-children ()
  "Reaps every child that has ended; logs each.  Returns the list of child structs reaped."
  (let ((reaped '()))
    (loop
      (multiple-value-bind (pid how code)
          (handler-case (waitpid -1 :nohang t) (unix-error () nil))
        (unless pid (return))
        (let ((c (find pid *children* :key #'child-pid)))
          (when c
            (setf *children* (remove c *children*))
            (when (child-control c) (ignore-errors (%close (child-control c))))
            (push c reaped)
            (if (and (eq how :exited) (zerop code) (eq (child-state c) :stopping))
                (log-info "serving process ~d (generation ~d) finished" pid (child-generation c))
                (log-warn "serving process ~d (generation ~d) ~(~a~) ~d" pid
                          (child-generation c) how code))))))
    reaped))

(defun kill-overdue-children ()
  "Kills (SIGKILL) stopping children past their deadline.  Can't fail."
  (dolist (c *children*)
    (when (and (child-stop-deadline c) (> (monotonic-ns) (child-stop-deadline c)))
      (log-warn "serving process ~d did not finish in time: killed" (child-pid c))
      (setf (child-stop-deadline c) nil)
      (ignore-errors (kill (child-pid c) :kill)))))

(defun %write-pidfile (config)
  (let ((path (ignore-errors (config-value config :pidfile))))
    (when path
      (let ((fd (open-fd path :direction :output :if-exists :truncate :mode #o644)))
        (unwind-protect (write-all fd (map 'octets #'char-code (format nil "~d~%" (getpid))))
          (close-fd fd)))
      path)))

(defun spec-open-listeners (spec config state reuse)
  "Opens the listeners SPEC's server needs for CONFIG, keeping those of REUSE still named.
Returns (values LISTENERS UNUSED).  Signals config-error."
  (if (server-spec-open-listeners spec)
      (funcall (server-spec-open-listeners spec) config state reuse)
      (open-listeners config :keys (server-spec-listen-keys spec)
                             :default (server-spec-default-listen spec)
                             :framing (server-spec-framing spec) :reuse reuse)))

(defun run-privsep (spec config state options)
  "The parent: opens the listeners CONFIG names, writes the pidfile, forks the first serving
child and waits for it to serve, then handles signals until SIGTERM/SIGINT (drain and exit 0)
— SIGHUP re-reads the config (on error logs `file:line: message` and keeps the running
child), keeps unchanged listeners, opens new ones, starts a new child and tells the old one to
finish.  Returns the exit status (1 when the first child cannot start)."
  (let ((listeners (handler-case (spec-open-listeners spec config state nil)
                     (config-error (e)
                       (log-warn "~a" e)
                       (return-from run-privsep 1))))
        (generation 1)
        (pidfile nil)
        (current nil)
        (sigfd (watch-signals '(:term :int :hup :chld))))
    (unwind-protect
         (progn
           (setf pidfile (%write-pidfile config))
           (dolist (l listeners) (log-info "listening on ~a" (listener-description l)))
           (setf current (start-child spec config state listeners options generation))
           (unless (%await-ready current *ready-timeout-ms*)
             (tell-child-stop current 1000)
             (cond ((intersection *pending-signals* '(:term :int))
                    (log-info "stopped while starting")
                    (return-from run-privsep 0))
                   (t (log-warn "the serving process did not start")
                      (return-from run-privsep 1))))
           (log-info "serving (process ~d)" (child-pid current))
           (let ((ep (epoll-create)) (events (make-epoll-events 4)) (stop nil)
                 (last-restart 0))
             (epoll-add ep sigfd +epollin+)
             (loop
               (epoll-wait ep events (if stop 50 1000))
               (dolist (s (prog1 (append *pending-signals* (read-signals))
                            (setf *pending-signals* '())))
                 (case s
                   ((:term :int)
                    (unless stop
                      (log-info "~(~a~): stopping" s)
                      (setf stop t)
                      (dolist (c *children*) (tell-child-stop c (+ (shutdown-timeout config) 5000)))))
                   (:hup
                    (unless stop
                      (log-info "hup: re-reading the configuration")
                      (handler-case
                          (let* ((new-config (load-server-config spec options))
                                 (new-state (configure-server spec new-config)))
                            (multiple-value-bind (new-listeners unused)
                                (handler-bind ((error (lambda (e) (declare (ignore e))
                                                        (release-state spec new-state))))
                                  (spec-open-listeners spec new-config new-state listeners))
                              (let ((child (start-child spec new-config new-state new-listeners
                                                        options (1+ generation) listeners)))
                                (cond ((%await-ready child *ready-timeout-ms*)
                                       (dolist (c *children*)
                                         (unless (eq c child)
                                           (tell-child-stop c (+ (shutdown-timeout config) 5000))))
                                       (dolist (l unused) (close-listener l :unlink t))
                                       (release-state spec state)
                                       (setf config new-config state new-state current child
                                             listeners new-listeners generation (1+ generation))
                                       (dolist (l listeners)
                                         (unless (member l unused)
                                           (log-debug "listening on ~a" (listener-description l))))
                                       (log-info "generation ~d serving (process ~d)"
                                                 generation (child-pid child)))
                                      (t
                                       (log-warn "the new serving process did not start: keeping generation ~d"
                                                 generation)
                                       (tell-child-stop child 1000)
                                       (release-state spec new-state)
                                       (dolist (l new-listeners)
                                         (unless (member l listeners) (close-listener l))))))))
                        (config-error (e) (log-warn "~a (keeping the running configuration)" e))
                        (crow-error (e) (log-warn "reload: ~a (keeping the running configuration)" e)))))))
               (reap-children)
               (kill-overdue-children)
               (when (and stop (null *children*)) (return 0))
               ;; A serving child that died unasked is replaced (at most once a second).
               (when (and (not stop) (not (member current *children*))
                          (> (- (monotonic-ns) last-restart) 1000000000))
                 (setf last-restart (monotonic-ns))
                 (log-warn "restarting the serving process")
                 (handler-case
                     (let ((child (start-child spec config state listeners options generation)))
                       (setf current child)
                       (if (%await-ready child *ready-timeout-ms*)
                           (log-info "serving (process ~d)" (child-pid child))
                           (tell-child-stop child 1000)))
                   (crow-error (e) (log-warn "restart: ~a" e)))))))
      ;; Whatever ends the parent: no child is left behind, nothing stays bound.
      (dolist (c *children*) (tell-child-stop c 0))
      (loop repeat 100 while *children*
            do (reap-children) (kill-overdue-children) (when *children* (sleep 0.05)))
      (dolist (l listeners) (close-listener l :unlink t))
      (release-state spec state)
      (when pidfile (ignore-errors (unlink pidfile))))))
