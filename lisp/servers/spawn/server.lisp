;;;; server.lisp — mmspawnd's parent: listeners, the pool of pre-forked children, admission,
;;;; hand-off, reaping.
;;;;
;;;; Design.  The parent binds every listener, opens what the children need (/dev/null, the
;;;; stderr file, syslog), starts the spawner, then enters the chroot and drops to the
;;;; service user and group itself (setgroups, setresgid, setresuid), so that it never serves
;;;; as root.  Children are cloned by the spawner (crow-spawner, a small static program, see
;;;; crow.unix:make-spawner and c-core/spawn), which entered the same chroot and took the same
;;;; ids at its start; the clones are this process's children (CLONE_PARENT), so SIGCHLD and
;;;; waitpid here see them.  Forking them from this Lisp image instead would cost hundreds of
;;;; microseconds each (page tables, then copy-on-write faults on every page Lisp writes);
;;;; that is kept as the fallback (spawn-waiting) when the spawner is gone.  A child, entirely
;;;; in C, applies the configured rlimits, umask and working directory, keeps no descriptor
;;;; but its control socket, and waits.
;;;; The parent accepts each connection itself, decides admission (c-core/admit, see
;;;; admit.lisp: per-address counts and rates need one place that sees every connection),
;;;; writes the refusal line or passes the descriptor with its UCSPI environment to an idle
;;;; child over the child's AF_UNIX SOCK_SEQPACKET control socket (SCM_RIGHTS), and closes its
;;;; own copy; the child dup2s it to 0 and 1 and execs the target.  Hand-off was chosen over
;;;; children accepting on the shared listener because admission, logging and the
;;;; environment (peer and local addresses) are then decided by the parent alone, and an idle
;;;; child holds no listener a target could inherit or steal connections from.  When no child
;;;; is idle, an admitted connection waits in a queue until the spawner delivers one.
;;;; The pool keeps SPARE idle children, more (up to MAX-SPARE) while connections arrive
;;;; faster, and lets the surplus go (closing a child's control socket makes it exit 0).
;;;; SIGCHLD arrives through crow.unix's signal pipe; every exit is reaped with waitpid and
;;;; logged with the connection it served.  A UDP service is inetd's `wait': the child gets
;;;; the socket itself as stdin and stdout, and the parent stops watching the socket until
;;;; that child has exited.

(in-package :crow.spawn)

(defstruct (server (:constructor %make-server))
  plan epfd sigfd
  (listeners '())                       ; list of (fd kind), kind :tcp :tcp6 :unix :udp
  (idle '())                            ; (pid . control), oldest last
  (busy (make-hash-table))              ; pid -> job
  admission devnull errfd
  (spawner nil) (pending 0)             ; the spawner's socket, children asked for
  (queue '())                           ; admitted connections waiting for a child
  (served 0) (refused 0) (direct 0) (handoffs 0) (window-start 0) (recent 0)
  (target 0) (last-shrink 0) (pause-until 0)
  (respawn-at nil)                      ; when to start a new spawner after losing one
  (udp-quick (make-hash-table))         ; UDP listener fd -> (quick-exits-in-a-row . pause-ms)
  (udp-paused '())                      ; (fd . resume-at-ms) of UDP listeners backing off
  (stopping nil))

(defstruct (job (:constructor make-job (kind address port start listener ticket)))
  kind address port start listener ticket)

(defun %ms () (floor (monotonic-ns) 1000000))

;;; Listeners and privileges

(defun listener-key (plan address)
  "The identity of a listener across configurations: the protocol and the address."
  (format nil "~(~a~) ~a" (plan-protocol plan) (address-string address)))

(defun open-listeners (plan &key reuse)
  "Binds every listen address of PLAN, taking over those of REUSE (listeners of a previous
plan, as returned here) with the same key.  Returns a list of (FD KIND KEY), KIND :tcp :tcp6
:unix :udp.  Signals config-error at the listen line when an address cannot be bound (what
it opened itself is closed again)."
  (let ((config (plan-config plan)) (out '()) (opened '()))
    (handler-bind ((error (lambda (e) (declare (ignore e))
                            (dolist (fd opened) (%close fd)))))
      (dolist (a (plan-listen plan) (nreverse out))
        (let* ((key (listener-key plan a))
               (old (find key reuse :key #'third :test #'string=)))
          (if old
              (push old out)
              (let ((fd (handler-case
                            (ecase (plan-protocol plan)
                              (:tcp (if (eq (address-family a) :unix)
                                        (unix-listen (address-path a))
                                        (tcp-listen (address-host a) (address-port a))))
                              (:udp (udp-socket (address-host a) (address-port a))))
                          (error (e)
                            (%refuse config :listen "~a: ~a" (address-string a) e)))))
                (push fd opened)
                (when (eq (plan-protocol plan) :tcp) (set-nonblocking fd))
                (push (list fd (cond ((eq (plan-protocol plan) :udp) :udp)
                                     ((eq (address-family a) :unix) :unix)
                                     ((find #\: (local-address fd)) :tcp6)
                                     (t :tcp))
                            key)
                      out))))))))

(defun drop-privileges (plan)
  "Enters PLAN's chroot and becomes its user and group (when root).  Raises first the hard
rlimits the children will ask for above ours (only root can).  Returns NIL.  Signals
unix-error, or an error when root could be regained."
  (when (zerop (geteuid))
    (loop for (r nil hard) in (plan-rlimits plan)
          do (multiple-value-bind (soft max) (getrlimit r)
               (when (and (not (eq max :infinity)) (> hard max))
                 (setrlimit r soft hard)))))
  (when (plan-chroot plan)
    (chroot (plan-chroot plan))
    (chdir "/"))
  (when (and (plan-uid plan) (zerop (geteuid)))
    (setgroups (plan-groups plan))
    (setresgid (plan-gid plan) (plan-gid plan) (plan-gid plan))
    (setresuid (plan-uid plan) (plan-uid plan) (plan-uid plan))
    (when (or (zerop (geteuid)) (ignore-errors (setresuid 0 0 0) t))
      (error "could not drop root privileges")))
  nil)

;;; The pool

(defun %spawn-child (srv &key wait-ready)
  "Forks one waiting child from this process (the first one, and whenever the spawner cannot
keep up or is gone).  Returns its pid."
  (let ((p (server-plan srv)))
    (multiple-value-bind (pid control)
        (spawn-waiting (plan-program p) (plan-argv p)
                       :env (plan-env p) :devnull (server-devnull srv)
                       :stderr (server-errfd srv) :rlimits (plan-rlimits p)
                       :umask (plan-umask p) :directory (plan-cwd p) :wait-ready wait-ready)
      (push (cons pid control) (server-idle srv))
      pid)))

(defun start-spawner (plan &key devnull errfd)
  "Starts the spawner that clones the pool's children (see crow.unix:make-spawner), before
privileges are dropped: it enters PLAN's chroot and takes its ids itself.  Returns its
socket, or NIL (children are then forked by mmspawnd itself) when it cannot be started."
  (handler-case
      (multiple-value-bind (pid socket)
          (make-spawner (plan-program plan) (plan-argv plan)
                        :env (plan-env plan) :devnull devnull :stderr errfd
                        :rlimits (plan-rlimits plan) :umask (plan-umask plan)
                        :directory (plan-cwd plan) :helper (plan-spawner plan)
                        :chroot (plan-chroot plan)
                        :uid (and (zerop (geteuid)) (plan-uid plan))
                        :gid (and (zerop (geteuid)) (plan-gid plan))
                        :groups (and (zerop (geteuid)) (plan-groups plan)))
        (log-debug "spawner ~d (~:[builtin~;~:*~a~])" pid (plan-spawner plan))
        socket)
    (unix-error (e) (log-warn "spawner: ~a; forking children directly" e) nil)))

(defun %spawner-gone (srv why)
  (log-warn "spawner: ~a; forking children directly until a new one runs" why)
  (ignore-errors (epoll-del (server-epfd srv) (server-spawner srv)))
  (%close (server-spawner srv))
  (setf (server-spawner srv) nil (server-pending srv) 0
        (server-respawn-at srv) (+ (%ms) 1000))
  (loop while (server-queue srv) do (apply #'%dispatch srv (pop (server-queue srv)))))

(defun %restart-spawner (srv)
  "Starts a new spawner (at most once a second) after the first has gone.  This process is
already chrooted and unprivileged, so the new one inherits that; crow-spawner is used only
outside a chroot (its path would not resolve inside), the builtin one otherwise."
  (let ((plan (server-plan srv)))
    (setf (server-respawn-at srv) (+ (%ms) 1000))
    (flet ((start (helper)
             (multiple-value-bind (pid socket)
                 (make-spawner (plan-program plan) (plan-argv plan)
                               :env (plan-env plan) :devnull (server-devnull srv)
                               :stderr (server-errfd srv) :rlimits (plan-rlimits plan)
                               :umask (plan-umask plan) :directory (plan-cwd plan)
                               :helper helper)
               (setf (server-spawner srv) socket (server-pending srv) 0
                     (server-respawn-at srv) nil)
               (epoll-add (server-epfd srv) socket +epollin+)
               (log-info "spawner restarted (pid ~d~@[, ~a~])" pid helper))))
      (let ((helper (and (null (plan-chroot plan)) (plan-spawner plan))))
        (handler-case (start helper)
          (unix-error (e)
            ;; Unprivileged now, this process may not reach crow-spawner's path (a checkout
            ;; under a 0700 home): the builtin spawner needs no exec.
            (log-warn "spawner: ~a~:[~;; starting the builtin one~]" e helper)
            (when helper
              (handler-case (start nil)
                (unix-error (e) (log-warn "spawner: ~a" e))))))))))

(defun receive-children (srv)
  "Adds the children the spawner has made to the idle pool.  Returns NIL."
  (loop while (server-spawner srv)
        do (multiple-value-bind (pid control)
               (handler-case (spawner-receive (server-spawner srv))
                 (unix-error (e)
                   (log-warn "spawner could not make a child: ~a" e)
                   (setf (server-pause-until srv) (+ (%ms) 1000))
                   (decf (server-pending srv))
                   :failed))
             (cond ((null pid) (return))
                   ((eq pid :closed) (%spawner-gone srv "it has exited"))
                   ((eq pid :failed))
                   (t (decf (server-pending srv))
                      (push (cons pid control) (server-idle srv))))))
  (%drain-queue srv))

(defun %take-child (srv)
  "Returns (PID . CONTROL) of the oldest idle child, forking one when none is idle, or NIL."
  (let ((idle (server-idle srv)))
    (cond ((null idle)
           (incf (server-direct srv))
           (handler-case (progn (%spawn-child srv) (pop (server-idle srv)))
             (unix-error (e) (log-warn "fork: ~a" e) nil)))
          ((null (rest idle)) (setf (server-idle srv) '()) (first idle))
          (t (let ((tail (last idle 2)))
               (prog1 (second tail) (setf (cdr tail) nil)))))))

(defun %hand (srv fd env)
  "Passes FD with ENV to an idle child.  Returns the child's pid, or NIL."
  (loop repeat 4
        for child = (%take-child srv)
        while child
        do (handler-case (progn (hand-off (cdr child) fd env)
                                (incf (server-handoffs srv))
                                (return (car child)))
             (unix-error (e)
               (log-debug "child ~d gone before hand-off: ~a" (car child) e)))))

(defun maintain-pool (srv &key urgent)
  "Keeps between SPARE and MAX-SPARE children idle or on their way: more while connections
arrive faster than SPARE per second; the surplus is let go once a second when they stop.
Returns NIL."
  (let* ((p (server-plan srv)) (now (%ms)))
    (when (and (server-respawn-at srv) (>= now (server-respawn-at srv)))
      (%restart-spawner srv))
    (when (>= (- now (server-window-start srv)) 1000)
      (setf (server-recent srv) (server-handoffs srv)
            (server-handoffs srv) 0
            (server-window-start srv) now
            (server-target srv) (max (plan-spare p)
                                     (min (plan-max-spare p) (floor (server-recent srv) 4)))))
    (let* ((target (max (plan-spare p) (server-target srv)))
           (have (+ (length (server-idle srv)) (server-pending srv)))
           (room (- (+ (plan-max-connections p) (plan-max-spare p))
                    have (hash-table-count (server-busy srv))))
           (need (min (- target have) room)))
      (when (and urgent (<= need 0) (zerop (server-pending srv)))
        (setf need 1))
      (when (and (plusp need) (>= now (server-pause-until srv)))
        (if (server-spawner srv)
            (handler-case (progn (spawner-request (server-spawner srv) need)
                                 (incf (server-pending srv) need))
              (eagain () nil)
              (unix-error (e) (%spawner-gone srv e)))
            (loop repeat need
                  do (handler-case (%spawn-child srv)
                       (unix-error (e)
                         (log-warn "fork: ~a" e)
                         (setf (server-pause-until srv) (+ now 1000))
                         (return))))))
      (when (and (> (length (server-idle srv)) target)
                 (>= (- now (server-last-shrink srv)) 1000))
        (setf (server-last-shrink srv) now)
        (loop repeat (- (length (server-idle srv)) target)
              do (let ((child (%take-child srv)))
                   (when child (%close (cdr child))))))))
  nil)

;;; Connections

(defun %env (kind rhost rport lhost lport)
  (flet ((kv (k v) (concatenate 'string k "=" (if (stringp v) v (princ-to-string v)))))
    (ecase kind
      (:tcp (list "PROTO=TCP" (kv "TCPREMOTEIP" rhost) (kv "TCPREMOTEPORT" rport)
                  (kv "TCPLOCALIP" lhost) (kv "TCPLOCALPORT" lport)))
      (:tcp6 (list "PROTO=TCP6" (kv "TCPREMOTEIP" rhost) (kv "TCPREMOTEPORT" rport)
                   (kv "TCPLOCALIP" lhost) (kv "TCPLOCALPORT" lport)
                   (kv "TCP6REMOTEIP" rhost) (kv "TCP6REMOTEPORT" rport)
                   (kv "TCP6LOCALIP" lhost) (kv "TCP6LOCALPORT" lport)))
      (:unix (list "PROTO=UNIX" (kv "UNIXLOCALPATH" lhost)))
      (:udp (list "PROTO=UDP" (kv "UDPLOCALIP" lhost) (kv "UDPLOCALPORT" lport))))))

(defun %refuse-connection (srv fd address port why)
  (let ((line (map 'octets #'char-code
                   (format nil "~a~c~c" (plan-refusal (server-plan srv)) #\Return #\Linefeed))))
    (ignore-errors (set-nonblocking fd))
    (%write fd line 0 (length line))
    ;; Discard what the client already sent: closing with unread input would send a reset,
    ;; which can make the client lose the refusal line.
    (ignore-errors (shutdown-socket fd :write))
    (let ((sink (make-octets 4096)))
      (loop repeat 4 while (plusp (%read fd sink 0 4096))))
    (incf (server-refused srv))
    (when (plan-log-connections (server-plan srv))
      (log-info "refused ~a port ~a: ~(~a~)" address port why))))

(defun %dispatch (srv fd kind rhost rport lhost lport ticket)
  "Hands the admitted connection FD to a child, or refuses it when none can be had.  Closes
our copy of FD."
  (unwind-protect
       (let ((pid (%hand srv fd (%env kind rhost rport lhost lport))))
         (cond (pid
                (incf (server-served srv))
                (setf (gethash pid (server-busy srv)) (make-job kind rhost rport (%ms) nil ticket))
                (when (plan-log-connections (server-plan srv))
                  (log-info "~a port ~d: pid ~d" rhost rport pid)))
               (t (admission-leave (server-admission srv) ticket)
                  (%refuse-connection srv fd rhost rport :no-child))))
    (%close fd)))

(defun serve-connection (srv fd kind)
  "Admits or refuses the accepted connection FD.  An admitted one is handed to an idle child
at once, or, when none is idle but the spawner is making some, queued until one arrives
\(forking from this process is the last resort: see the design note)."
  (multiple-value-bind (rhost rport)
      (if (eq kind :unix) (values "unix" 0) (handler-case (peer-address fd)
                                             (unix-error () (%close fd)
                                               (return-from serve-connection))))
    (multiple-value-bind (lhost lport) (local-address fd)
      (multiple-value-bind (why ticket)
          (handler-case (admission-enter (server-admission srv) fd)
            (unix-error () (%close fd) (return-from serve-connection)))
        (cond (why (unwind-protect (%refuse-connection srv fd rhost rport why) (%close fd)))
              ((and (null (server-idle srv)) (server-spawner srv)
                    (< (length (server-queue srv)) 4096))
               (when (zerop (server-pending srv)) (maintain-pool srv :urgent t))
               (setf (server-queue srv)
                     (nconc (server-queue srv)
                            (list (list fd kind rhost rport lhost lport ticket)))))
              (t (%dispatch srv fd kind rhost rport lhost lport ticket)))))))

(defun %drain-queue (srv)
  "Hands queued connections to the children now idle.  Returns NIL."
  (loop while (and (server-queue srv) (server-idle srv))
        do (apply #'%dispatch srv (pop (server-queue srv)))))

(defun %accept-some (srv lfd kind)
  (loop repeat 64
        for fd = (handler-case (accept-connection lfd)
                   (unix-error (e) (log-warn "accept: ~a" e) nil))
        while fd do (serve-connection srv fd kind)))

(defun %udp-ready (srv lfd)
  "Hands the UDP socket LFD to a child and stops watching it until the child exits."
  (multiple-value-bind (lhost lport) (local-address lfd)
    (let ((pid (%hand srv lfd (%env :udp nil nil lhost lport))))
      (when pid
        (epoll-del (server-epfd srv) lfd)
        (incf (server-served srv))
        (setf (gethash pid (server-busy srv)) (make-job :udp lhost lport (%ms) lfd nil))
        (when (plan-log-connections (server-plan srv))
          (log-info "udp ~a port ~d: pid ~d" lhost lport pid))))))

;;; Children's exits

(defun %udp-rearm (srv job)
  "Watches the UDP socket of JOB's finished program again, unless programs keep ending within
a second (udp-respawn-limit in a row, as one that exits without reading its datagram would,
respawned in a loop): then the service pauses, 1 s the first time, doubling up to 60 s while
it goes on, and says so in the log."
  (let* ((lfd (job-listener job))
         (now (%ms))
         (state (or (gethash lfd (server-udp-quick srv))
                    (setf (gethash lfd (server-udp-quick srv)) (cons 0 0)))))
    (if (< (- now (job-start job)) 1000)
        (incf (car state))
        (setf (car state) 0 (cdr state) 0))
    (cond ((>= (car state) (plan-udp-respawn-limit (server-plan srv)))
           (setf (cdr state) (min 60000 (max 1000 (* 2 (cdr state))))
                 (car state) 0)
           (log-warn "udp ~a port ~d: ~d programs in a row ended within a second: pausing ~d s"
                     (job-address job) (job-port job)
                     (plan-udp-respawn-limit (server-plan srv)) (floor (cdr state) 1000))
           (push (cons lfd (+ now (cdr state))) (server-udp-paused srv)))
          (t (epoll-add (server-epfd srv) lfd +epollin+)))))

(defun %udp-resume (srv)
  "Watches again the UDP sockets whose pause is over.  Returns NIL."
  (when (server-udp-paused srv)
    (let ((now (%ms)))
      (setf (server-udp-paused srv)
            (remove-if (lambda (p)
                         (when (>= now (cdr p))
                           (unless (server-stopping srv)
                             (epoll-add (server-epfd srv) (car p) +epollin+))
                           t))
                       (server-udp-paused srv)))))
  nil)

(defun reap (srv)
  "Reaps every exited child: ends its job (admission, a UDP socket watched again) and logs
its status.  Returns NIL."
  (loop
    (multiple-value-bind (pid how code)
        (handler-case (waitpid -1 :nohang t) (echild () nil))
      (unless pid (return))
      (let ((job (gethash pid (server-busy srv)))
            (idle (assoc pid (server-idle srv))))
        (cond (job
               (remhash pid (server-busy srv))
               (case (job-kind job)
                 (:udp (unless (server-stopping srv) (%udp-rearm srv job)))
                 (t (admission-leave (server-admission srv) (job-ticket job))))
               (when (plan-log-connections (server-plan srv))
                 (log-info "pid ~d (~a port ~a): ~(~a~) ~d after ~,3fs" pid (job-address job)
                           (job-port job) how code (/ (- (%ms) (job-start job)) 1000.0))))
              (idle
               (setf (server-idle srv) (remove idle (server-idle srv)))
               (%close (cdr idle))
               (log-warn "idle child ~d ~(~a~) ~d before any connection~:[~; (set-up failed?)~]"
                         pid how code (eql code 127))
               (setf (server-pause-until srv) (+ (%ms) 1000)))))))
  nil)

(defun %handle-signals (srv)
  (dolist (s (read-signals))
    (case s
      (:chld (reap srv))
      ((:term :int)
       (unless (server-stopping srv)
         (log-info "~(~a~): stopping" s))
       (setf (server-stopping srv) t))
      (:hup (log-debug "hup: the supervising parent re-reads the configuration")))))

(defun serve (plan listeners &key devnull errfd spawner ready (drain-seconds 30))
  "Runs mmspawnd's loop for PLAN over LISTENERS ((FD KIND ...) ...) until SIGTERM or SIGINT.
DEVNULL and ERRFD are the children's /dev/null and stderr descriptors, SPAWNER the socket of
the spawner (see start-spawner) or NIL.  READY, a function, is called once the first child is
set up.  Stopping closes the listeners and waits up to DRAIN-SECONDS for the programs still
serving a connection (reaping them).  Returns 0.  Signals unix-error when the first child
cannot be set up."
  (let* ((srv (%make-server :plan plan :epfd (epoll-create) :listeners listeners
                            :devnull devnull :errfd errfd :spawner spawner
                            :admission (make-admission
                                        :max (plan-max-connections plan)
                                        :per-address (plan-max-per-address plan)
                                        :rate (plan-rate plan))
                            :target (plan-spare plan) :window-start (%ms)))
         (epfd (server-epfd srv))
         (events (make-epoll-events 64)))
    (setf (server-sigfd srv) (watch-signals '(:chld :term :int :hup)))
    (epoll-add epfd (server-sigfd srv) +epollin+)
    (dolist (l listeners) (epoll-add epfd (first l) +epollin+))
    ;; The first child is waited for: a set-up that fails (rlimits, cwd) stops the start.
    (%spawn-child srv :wait-ready t)
    (when ready (funcall ready))
    (when spawner (epoll-add epfd spawner +epollin+))
    (unwind-protect
         (loop until (server-stopping srv)
               do (maintain-pool srv)
                  (%udp-resume srv)
                  (let ((n (epoll-wait epfd events 1000)))
                    (dotimes (i n)
                      (let* ((fd (epoll-event-data events i))
                             (l (assoc fd listeners)))
                        (cond ((= fd (server-sigfd srv)) (%handle-signals srv))
                              ((eql fd (server-spawner srv)) (receive-children srv))
                              ((null l))
                              ((eq (second l) :udp) (%udp-ready srv fd))
                              (t (%accept-some srv fd (second l))))))))
      (dolist (l listeners) (%close (first l)))
      ;; Connections admitted and waiting for a child are served, not dropped (a reload
      ;; under load must lose none): the idle children and, past them, forked ones.
      (loop while (server-queue srv)
            do (ignore-errors (apply #'%dispatch srv (pop (server-queue srv)))))
      (dolist (c (server-idle srv)) (%close (cdr c)))
      (setf (server-idle srv) '())
      (when (server-spawner srv) (%close (server-spawner srv)))
      ;; Programs still serving a connection finish it (reaped here) until the deadline;
      ;; those still running then are left to init.
      (when (plusp (hash-table-count (server-busy srv)))
        (log-info "stopping: waiting for ~d connection~:p to finish"
                  (hash-table-count (server-busy srv))))
      (loop repeat (* 20 drain-seconds)
            while (plusp (hash-table-count (server-busy srv)))
            do (reap srv) (sleep 0.05))
      (reap srv)
      (admit-destroy (server-admission srv))
      (setf (server-busy srv) (make-hash-table))
      (log-info "stopped: ~d served, ~d refused; ~d children forked on demand (pool empty)"
                (server-served srv) (server-refused srv) (server-direct srv)))
    0))
