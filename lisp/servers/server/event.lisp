;;;; event.lisp — the event-worker concurrency model: N Lisp threads, each running its own C
;;;; epoll loop (c-core/evloop) over its own SO_REUSEPORT listener, or over listeners opened
;;;; beforehand (by a privileged parent) and shared with EPOLLEXCLUSIVE, handing whole protocol
;;;; units to a Lisp handler that replies with one writev.

(in-package :crow.server)

(defstruct (event-server (:constructor %make-event-server))
  "A running set of event workers."
  (workers '())                         ; list of event-worker
  host port mode
  (listeners '())                       ; shared listener structs (not owned: never closed here)
  (handlers #())                        ; listener index -> handler (NIL: the default one)
  (on-error nil)                        ; function of EV UNIT KIND CONDITION, or NIL
  (draining nil)
  (stopping nil))

(defstruct (event-worker (:constructor %make-event-worker (index ev listener)))
  index ev listener thread (units 0) (errors 0) (open 0) (unlistened nil))

(declaim (inline call-handler))         ; once per unit, in event-worker-loop
(defun call-handler (handler ev unit kind)
  "Calls HANDLER; a symbol is looked up on every call, so a handler redefined from SLIME
answers the very next unit."
  (if (symbolp handler)
      ;; (bound first: ECL compiles a c-inline form directly inside FUNCALL as an error call)
      (let ((f (fast-symbol-function handler)))
        (fast-funcall f ev unit kind))
      (funcall handler ev unit kind)))

(defun %handler-failed (server worker ev unit kind e)
  "A handler signalled E for UNIT: the server's on-error function answers (say, a 500), or
the connection is closed."
  (incf (event-worker-errors worker))
  (let ((on-error (event-server-on-error server)))
    (handler-case
        (if on-error
            (funcall on-error ev unit kind e)
            (progn (log-warn "worker ~d: handler: ~a" (event-worker-index worker) e)
                   (ev-close ev (ev-unit-conn unit))))
      (error (e2)
        (log-warn "worker ~d: handler: ~a; then: ~a" (event-worker-index worker) e e2)
        (ev-close ev (ev-unit-conn unit))))))

(defun event-worker-loop (server worker handler)
  ;; The handler-case is set up once per error, not once per unit (per unit, its closure,
  ;; handler cluster and catch frame were a measurable part of a small request's cost).
  ;; The stop and drain flags are looked at only when ev-next returns NIL: whoever sets them
  ;; wakes the loop (ev-wake), so ev-next returns NIL promptly even under load, and a unit
  ;; costs no struct reads through symbols.
  (let ((ev (event-worker-ev worker))
        (unit (make-ev-unit))
        (handlers (event-server-handlers server)) ; (checked once here, not per unit)
        (kind nil)
        (draining nil)
        (units (event-worker-units worker)))
    (declare (fixnum units) (simple-vector handlers))
    (flet ((idle ()
             ;; returns true when the worker must stop
             (setf (event-worker-units worker) units)
             (when (event-server-stopping server) (return-from idle t))
             (when (and (event-server-draining server) (not draining))
               (ev-unlisten ev)
               (setf (event-worker-unlistened worker) t draining t))
             ;; ev-stats conses a plist: only when idle, or per unit while draining
             (setf (event-worker-open worker) (getf (ev-stats ev) :open))
             nil))
      (unwind-protect
           (loop until (idle)
                 do (handler-case
                        (loop
                          (setf kind nil)
                          (let ((k (ev-next ev unit 500)))
                            (cond (k
                                   (setf units (locally (declare (optimize (safety 0)))
                                                 (the fixnum (1+ units))))
                                   (when draining
                                     (setf (event-worker-open worker) (getf (ev-stats ev) :open)))
                                   (setf kind k)
                                   (let ((li (ev-unit-listener unit)))
                                     (call-handler (or (and (< -1 li (length handlers))
                                                            (locally (declare (optimize (safety 1)))
                                                              (svref handlers li)))
                                                       handler)
                                                   ev unit k)))
                                  ((idle) (return)))))
                      (error (e)
                        ;; KIND is set only while a handler runs: ev-next's own failure ends
                        ;; the worker, as it always did
                        (unless kind (error e))
                        (%handler-failed server worker ev unit kind e))))
        (setf (event-worker-units worker) units)
        (ev-unit-free unit)))))

(defun start-event-workers (handler &key (host "127.0.0.1") (port 0) (workers 1) (mode :http)
                                         listeners ev-options tls-context on-error)
  "Starts WORKERS threads, each with its own C event loop, framing input in MODE (:http, :line
or :raw).  Without LISTENERS each worker opens its own SO_REUSEPORT listener on HOST:PORT
\(port 0: the first worker picks a free port, the others share it).  With LISTENERS (listener
structs from open-listeners, or descriptors; stream listeners only) every worker accepts from
each of them with EPOLLEXCLUSIVE, framing a listener's connections in its listener-framing;
they stay open when the workers stop.  For every unit, the listener's listener-handler when
set, else HANDLER (a function designator of EV UNIT KIND; a symbol is looked up per call), is
called in the worker's thread and must finish the unit (ev-reply, ev-sendfile, ev-done or
ev-close).  When a handler signals an error, ON-ERROR (a function of EV UNIT KIND CONDITION,
e.g. to answer 500) is called, or else the unit's connection is closed.  EV-OPTIONS are
make-ev-loop's keywords.  Listeners whose listener-tls is set
speak TLS with TLS-CONTEXT (a server tls-context; required then).  Returns the event-server; see
drain-event-workers and stop-event-workers.  Signals unix-error if a listener cannot be
opened or added."
  (let* ((shared (loop for l in listeners
                       collect (if (listener-p l) l (%make-listener :fd l :framing mode))))
         (server (%make-event-server :host host :mode mode :listeners shared :on-error on-error
                                     :handlers (map 'simple-vector #'listener-handler shared))))
    (handler-bind ((error (lambda (e) (declare (ignore e)) (stop-event-workers server))))
      (dotimes (i workers)
        (if shared
            (let* ((ev (apply #'make-ev-loop ev-options))
                   (w (%make-event-worker i ev nil)))
              (push w (event-server-workers server))
              (dolist (l shared)
                (ev-listen ev (listener-fd l) (listener-framing l) :exclusive t
                           :tls-context (and (listener-tls l)
                                             (or tls-context
                                                 (error 'simple-crow-error :format-control
                                                        "~a needs a TLS context"
                                                        :format-arguments
                                                        (list (listener-description l))))))))
            (let* ((fd (ev-tcp-listener host port :reuseport t))
                   (ev (apply #'make-ev-loop ev-options))
                   (w (%make-event-worker i ev fd)))
              (when (zerop port)
                (setf port (nth-value 1 (local-address fd))))
              (push w (event-server-workers server))
              (ev-listen ev fd mode))))
      (setf (event-server-port server) (if shared
                                           (and shared (listener-port (first shared)))
                                           port)
            (event-server-workers server) (nreverse (event-server-workers server)))
      (dolist (w (event-server-workers server))
        (let ((w w))
          (setf (event-worker-thread w)
                (mp:process-run-function (format nil "crow-worker-~d" (event-worker-index w))
                                         (lambda () (event-worker-loop server w handler)))))))
    server))

(defun drain-event-workers (server timeout-ms)
  "Makes SERVER's workers stop accepting (each drops its listeners) and waits until their open
connections are finished, or TIMEOUT-MS passed.  Returns the number of connections still
open (0 when drained).  Can't fail."
  (setf (event-server-draining server) t)
  (dolist (w (event-server-workers server))
    (when (event-worker-ev w) (ev-wake (event-worker-ev w))))
  (let ((deadline (+ (monotonic-ns) (* timeout-ms 1000000))))
    (loop
      (sleep 0.05)
      (let ((open (loop for w in (event-server-workers server)
                        sum (if (event-worker-unlistened w) (event-worker-open w) 1))))
        (when (or (zerop open) (> (monotonic-ns) deadline))
          (return (loop for w in (event-server-workers server) sum (event-worker-open w))))))))

(defun stop-event-workers (server)
  "Stops SERVER's workers: each finishes the unit in hand, then its loop, connections and
listener are closed and its thread joined.  Returns the total units handled."
  (setf (event-server-stopping server) t)
  (dolist (w (event-server-workers server))
    (when (event-worker-ev w) (ev-wake (event-worker-ev w))))
  (let ((units 0))
    (dolist (w (event-server-workers server))
      (when (event-worker-thread w)
        (mp:process-join (event-worker-thread w)))
      (ev-destroy (event-worker-ev w))
      (when (event-worker-listener w)
        (%close (event-worker-listener w))
        (setf (event-worker-listener w) nil))
      (incf units (event-worker-units w)))
    units))

(defun event-server-stats (server)
  "Returns a list of per-worker stats plists (units handled, errors, and the C loop's
counters)."
  (loop for w in (event-server-workers server)
        collect (list* :worker (event-worker-index w) :units (event-worker-units w)
                       :errors (event-worker-errors w)
                       (and (ev-pointer (event-worker-ev w)) (ev-stats (event-worker-ev w))))))

(defun %key-value (config key)
  "KEY's value in CONFIG, or NIL when CONFIG's table lacks KEY."
  (ignore-errors (config-value config key)))

(defun config-admit (config)
  "Returns a new admission table (make-admit) for CONFIG's max-connections, max-per-address
and rate-per-address, shared by every loop of a server (destroy it with admit-destroy after
the loops).  Signals unix-error (ENOMEM)."
  (let ((rate (%key-value config :rate-per-address)))
    (make-admit :max-connections (or (%key-value config :max-connections) 0)
                :max-per-address (or (%key-value config :max-per-address) 0)
                :rate-count (if rate (car rate) 0)
                :rate-period-ms (if rate (cdr rate) 0))))

(defun config-ev-options (config &key admit refusal)
  "Returns make-ev-loop keywords from CONFIG's common keys: max-connections, timeout (idle),
bandwidth-in/-out, with ADMIT (see config-admit) and the REFUSAL reply (octets or a string,
written to a refused connection).  Can't fail."
  (append (list :max-connections (or (%key-value config :max-connections) 1024)
                :bandwidth-in (or (%key-value config :bandwidth-in) 0)
                :bandwidth-out (or (%key-value config :bandwidth-out) 0))
          (let ((idle (%key-value config :timeout))) (and idle (list :idle-ms idle)))
          (and admit (list :admit admit))
          (and refusal (list :refusal refusal))))
