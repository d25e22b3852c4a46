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
  (draining nil)
  (stopping nil))

(defstruct (event-worker (:constructor %make-event-worker (index ev listener)))
  index ev listener thread (units 0) (errors 0) (open 0) (unlistened nil))

(defun call-handler (handler ev unit kind)
  "Calls HANDLER; a symbol is looked up on every call, so a handler redefined from SLIME
answers the very next unit."
  (if (symbolp handler)
      (funcall (symbol-function handler) ev unit kind)
      (funcall handler ev unit kind)))

(defun event-worker-loop (server worker handler)
  (let ((ev (event-worker-ev worker))
        (unit (make-ev-unit))
        (handlers (event-server-handlers server)))
    (unwind-protect
         (loop until (event-server-stopping server)
               do (when (and (event-server-draining server) (not (event-worker-unlistened worker)))
                    (ev-unlisten ev)
                    (setf (event-worker-unlistened worker) t))
                  (let ((kind (ev-next ev unit 500)))
                    (setf (event-worker-open worker) (getf (ev-stats ev) :open))
                    (when kind
                      (incf (event-worker-units worker))
                      (handler-case
                          (let ((li (ev-unit-listener unit)))
                            (call-handler (or (and (< -1 li (length handlers)) (svref handlers li))
                                              handler)
                                          ev unit kind))
                        (error (e)
                          (incf (event-worker-errors worker))
                          (log-warn "worker ~d: handler: ~a" (event-worker-index worker) e)
                          (ev-close ev (ev-unit-conn unit)))))))
      (ev-unit-free unit))))

(defun start-event-workers (handler &key (host "127.0.0.1") (port 0) (workers 1) (mode :http)
                                         listeners ev-options)
  "Starts WORKERS threads, each with its own C event loop, framing input in MODE (:http, :line
or :raw).  Without LISTENERS each worker opens its own SO_REUSEPORT listener on HOST:PORT
\(port 0: the first worker picks a free port, the others share it).  With LISTENERS (listener
structs from open-listeners, or descriptors; stream listeners only) every worker accepts from
each of them with EPOLLEXCLUSIVE, framing a listener's connections in its listener-framing;
they stay open when the workers stop.  For every unit, the listener's listener-handler when
set, else HANDLER (a function designator of EV UNIT KIND; a symbol is looked up per call), is
called in the worker's thread and must finish the unit (ev-reply, ev-sendfile, ev-done or
ev-close).  EV-OPTIONS are make-ev-loop's keywords.  Returns the event-server; see
drain-event-workers and stop-event-workers.  Signals unix-error if a listener cannot be
opened or added."
  (let* ((shared (loop for l in listeners
                       collect (if (listener-p l) l (%make-listener :fd l :framing mode))))
         (server (%make-event-server :host host :mode mode :listeners shared
                                     :handlers (map 'simple-vector #'listener-handler shared))))
    (handler-bind ((error (lambda (e) (declare (ignore e)) (stop-event-workers server))))
      (dotimes (i workers)
        (if shared
            (let* ((ev (apply #'make-ev-loop ev-options))
                   (w (%make-event-worker i ev nil)))
              (push w (event-server-workers server))
              (dolist (l shared)
                (ev-listen ev (listener-fd l) (listener-framing l) :exclusive t)))
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
