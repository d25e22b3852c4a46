;;;; event.lisp — the event-worker concurrency model: N Lisp threads, each running its own C
;;;; epoll loop (c-core/evloop) over its own SO_REUSEPORT listener, handing whole protocol units
;;;; to a Lisp handler that replies with one writev.

(in-package :crow.server)

(defstruct (event-server (:constructor %make-event-server))
  "A running set of event workers."
  (workers '())                         ; list of event-worker
  host port mode
  (stopping nil))

(defstruct (event-worker (:constructor %make-event-worker (index ev listener)))
  index ev listener thread (units 0) (errors 0))

(defun call-handler (handler ev unit kind)
  "Calls HANDLER; a symbol is looked up on every call, so a handler redefined from SLIME
answers the very next unit."
  (if (symbolp handler)
      (funcall (symbol-function handler) ev unit kind)
      (funcall handler ev unit kind)))

(defun event-worker-loop (server worker handler)
  (let ((ev (event-worker-ev worker))
        (unit (make-ev-unit)))
    (unwind-protect
         (loop until (event-server-stopping server)
               do (let ((kind (ev-next ev unit 500)))
                    (when kind
                      (incf (event-worker-units worker))
                      (handler-case (call-handler handler ev unit kind)
                        (error (e)
                          (incf (event-worker-errors worker))
                          (log-warn "worker ~d: handler: ~a" (event-worker-index worker) e)
                          (ev-close ev (ev-unit-conn unit)))))))
      (ev-unit-free unit))))

(defun start-event-workers (handler &key (host "127.0.0.1") (port 0) (workers 1) (mode :http)
                                         ev-options)
  "Starts WORKERS threads, each with its own C event loop and its own SO_REUSEPORT listener on
HOST:PORT (port 0: the first worker picks a free port, the others share it), framing input in
MODE (:http, :line or :raw).  For every unit, HANDLER (a function designator of EV UNIT KIND;
a symbol is looked up per call) is called in the worker's thread and must finish the unit
(ev-reply, ev-sendfile, ev-done or ev-close).  EV-OPTIONS are make-ev-loop's keywords.
Returns the event-server; see stop-event-workers.  Signals unix-error if a listener cannot
be opened."
  (let ((server (%make-event-server :host host :mode mode)))
    (handler-bind ((error (lambda (e) (declare (ignore e)) (stop-event-workers server))))
      (dotimes (i workers)
        (let* ((fd (ev-tcp-listener host port :reuseport t))
               (ev (apply #'make-ev-loop ev-options))
               (w (%make-event-worker i ev fd)))
          (when (zerop port)
            (setf port (nth-value 1 (local-address fd))))
          (ev-listen ev fd mode)
          (push w (event-server-workers server))))
      (setf (event-server-port server) port
            (event-server-workers server) (nreverse (event-server-workers server)))
      (dolist (w (event-server-workers server))
        (let ((w w))
          (setf (event-worker-thread w)
                (mp:process-run-function (format nil "crow-worker-~d" (event-worker-index w))
                                         (lambda () (event-worker-loop server w handler)))))))
    server))

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
