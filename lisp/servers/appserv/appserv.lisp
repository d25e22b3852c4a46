;;;; appserv.lisp — crow-appserv: services whose protocol is a Lisp handler file named in the
;;;; config, loaded (by ECL's interpreter, no C compiler needed) when the config is read and
;;;; again on SIGHUP, served over TCP (IPv4/IPv6), AF_UNIX and UDP in the event or process
;;;; model.
;;;;
;;;; A handler file runs in a fresh package APPSERV.<SERVICE> using :cl and :crow.appserv, and
;;;; defines some of ON-OPEN, ON-LINE, ON-DATA, ON-DATAGRAM, ON-TOO-LONG and ON-CLOSE (looked up
;;;; per call, so a redefinition from SLIME answers the next unit).  Each gets the connection
;;;; (ON-LINE and ON-DATA also the line as a base-string of its bytes / the octets) and returns
;;;; the reply: NIL, a string, octets, or a list of them, written with one writev; close-after
;;;; closes the connection once the reply is out.  The handlers are loaded in the parent, so
;;;; a serving process forked after a reload has the new code and fresh state.

(in-package :crow.appserv)

(defvar *version* "0.1.0")

(define-config-keys *service-keys*
  (listen :address :repeatable t
          :doc "Stream listener: HOST:PORT, [IPV6]:PORT or unix:PATH.")
  (listen-udp :address :repeatable t :doc "UDP socket: HOST:PORT or [IPV6]:PORT.")
  (listen-tls :address :repeatable t
              :doc "TLS listener (model session): the handshake runs in the connection's thread.")
  (tls-cert :path :exists :file :doc "TLS certificate chain (PEM; default: the top-level key).")
  (tls-key :path :exists :file :doc "TLS private key (PEM; default: the top-level key).")
  (handler :path :required t :exists :file :doc "The Lisp handler file.")
  (model :enum :values '(:event :process :session) :default "event"
         :doc "event: worker threads over C event loops; session: a thread per connection; process: a pre-forked process pool.")
  (framing :enum :values '(:line :raw) :default "line"
           :doc "line: ON-LINE gets each line; raw: ON-DATA gets each read.")
  (workers :integer :min 1 :max 256 :default "1" :doc "Event worker threads.")
  (processes :integer :min 1 :max 1024 :default "2" :doc "Process model: minimum processes.")
  (max-processes :integer :min 1 :max 1024 :default "8" :doc "Process model: maximum processes.")
  (spare-processes :integer :min 0 :max 1024 :default "1" :doc "Process model: idle processes kept.")
  (max-requests :integer :min 1 :default "1000"
                :doc "Process model: connections a process serves before it is replaced.")
  (task-processes :integer :min 0 :max 256 :default "0"
                  :doc "Processes kept for call-in-process (tasks handed off by handlers).")
  (max-heap :size :min 1048576 :default "512M"
            :doc "Process model: resident size past which a process is replaced.")
  (max-line :size :min 16 :max 1048576 :default "8K" :doc "Longest line (framing line).")
  (max-connections :integer :min 1 :default "1024" :doc "Connections served at once.")
  (max-per-address :integer :min 1
                   :doc "Connections at once from one address (default: the top-level key).")
  (rate-per-address :rate
                    :doc "New connections per address and period, as 10/1s (default: the top-level key).")
  (bandwidth-in :size :min 1 :doc "Bytes/s read per connection (event and session models).")
  (bandwidth-out :size :min 1 :doc "Bytes/s written per connection (event and session models).")
  (refusal :string :default "-ERR busy, try later"
           :doc "The line written to a connection refused by a limit (CR LF appended).")
  (timeout :duration :min 1 :default "5m" :doc "Idle time after which a connection is closed."))

(define-config-keys *appserv-keys*
  (:include *common-keys*)
  (service :block :keys *service-keys*
           :doc "A service: `service NAME { listen ...; handler FILE; ... }`."))

;;; Services

(defstruct (service (:constructor %make-service))
  "A configured service: NAME, its sub-CONFIG, the handler PACKAGE, MODEL and FRAMING, and in
the serving process its task POOL."
  name config package model framing pool tls)

(defun service-option (service key)
  "Returns the value of KEY in SERVICE's config block, or when the block does not set it and
the top-level table has KEY, the top level's.  Signals an error for a key of neither."
  (let ((sub (service-config service)))
    (multiple-value-bind (v set) (config-value sub key)
      (if (or set (null (config-parent sub)))
          v
          (or (ignore-errors (config-value (config-parent sub) key)) v)))))

(defun %package-name (name)
  (format nil "APPSERV.~:@(~a~)" name))

(defun load-handler (name path)
  "Loads the handler file PATH for service NAME into a fresh package.  Returns the package.
Signals an error (the load's) when the file cannot be read or evaluated."
  (let ((old (find-package (%package-name name))))
    (when old (delete-package old)))
  (let ((pkg (make-package (%package-name name) :use '(:cl :crow.appserv))))
    (handler-bind ((warning #'muffle-warning))
      (let ((*package* pkg))
        (load path :verbose nil :print nil)))
    pkg))

(defun %service-tls (name sub)
  "Returns the TLS server context for a service with listen-tls, made now (in the parent,
before any chroot), or NIL.  Signals config-error."
  (when (config-value sub :listen-tls)
    (multiple-value-bind (file line) (config-source sub :listen-tls)
      (flet ((fail (fmt &rest args)
               (error 'config-error :file file :line line
                                    :message (format nil "service ~a: ~?" name fmt args))))
        (unless (eq (config-value sub :model) :session)
          (fail "listen-tls needs model session"))
        (let ((cert (or (config-value sub :tls-cert) (config-value (config-parent sub) :tls-cert)))
              (key (or (config-value sub :tls-key) (config-value (config-parent sub) :tls-key))))
          (unless (and cert key) (fail "listen-tls needs tls-cert and tls-key"))
          (handler-case (make-tls-server-context cert key)
            (crow-error (e) (fail "~a" e))))))))

(defun configure (config)
  "Loads every service's handler and makes its TLS context.  Returns the list of services.
Signals config-error naming the handler line for a handler that fails to load, the listen-tls
line for a TLS set-up that fails, or the block for a service without listeners."
  (let ((done '()))
    (handler-bind ((error (lambda (e) (declare (ignore e)) (release done))))
      (loop for (name . sub) in (config-blocks config :service)
            do (let ((path (config-value sub :handler)))
                 (multiple-value-bind (file line) (config-source sub :handler)
                   (unless (or (config-value sub :listen) (config-value sub :listen-udp)
                               (config-value sub :listen-tls))
                     (multiple-value-bind (bfile bline) (config-source sub)
                       (error 'config-error :file bfile :line bline
                                            :message (format nil "service ~a: no listen, listen-tls or listen-udp" name))))
                   (let ((service (%make-service
                                   :name name :config sub
                                   :package (handler-case (load-handler name path)
                                              (error (e)
                                                (error 'config-error :file file :line line
                                                                     :message (format nil "handler ~a: ~a" path e))))
                                   :model (config-value sub :model)
                                   :framing (config-value sub :framing))))
                     (push service done)
                     (setf (service-tls service) (%service-tls name sub))))))
      (nreverse done))))

(defun release (services)
  "Frees what configure made for SERVICES (TLS contexts).  Can't fail."
  (dolist (s services)
    (when (service-tls s)
      (free-tls-context (service-tls s))
      (setf (service-tls s) nil))))

(defun open-service-listeners (config services reuse)
  "Opens the listeners of every service block (reusing those of REUSE still named), each
tagged with its service name in listener-data.  Returns (values LISTENERS UNUSED).  Signals
config-error (closing what it opened)."
  (declare (ignore services))
  (let ((all '()))
    (handler-bind ((error (lambda (e) (declare (ignore e))
                            (dolist (l all) (unless (member l reuse) (close-listener l))))))
      (loop for (name . sub) in (config-blocks config :service)
            do (let ((ls (open-listeners sub :keys '(:listen :listen-tls :listen-udp)
                                             :framing (config-value sub :framing)
                                             :reuse (set-difference reuse all))))
                 (dolist (l ls)
                   (setf (listener-data l) name
                         (listener-framing l) (config-value sub :framing)))
                 (setf all (append all ls)))))
    (values all (remove-if (lambda (l) (member l all)) reuse))))

;;; Connections and replies

(defstruct (conn (:constructor %make-conn))
  "A connection (or, for UDP, one datagram's sender) as a handler sees it: PEER (\"1.2.3.4:5\",
\"[::1]:5\" or \"unix\"), SERVICE, DATA (the handler's own per-connection state), and whether to
CLOSE after the reply."
  peer service data close id)

(defun close-after (conn)
  "Makes CONN close once the current reply is written.  Returns NIL."
  (setf (conn-close conn) t)
  nil)

(defun crlf ()
  "Returns CR LF as a base-string."
  (coerce (format nil "~c~c" #\Return #\Linefeed) 'base-string))

(defun line (fmt &rest args)
  "Returns FMT formatted with ARGS, CR LF appended: one protocol line."
  (concatenate 'string (apply #'format nil fmt args) (crlf)))

(defun %part (x)
  "Returns X as a base-string or octets for writev."
  (etypecase x
    (base-string x)
    (string (if (every (lambda (c) (< (char-code c) 128)) x)
                (coerce x 'base-string)
                (utf8-encode x)))
    (octets x)
    (vector (coerce x 'octets))))

(defun reply-parts (reply)
  "Returns REPLY (NIL, a string, octets, or a list of them) as a simple-vector of parts."
  (cond ((null reply) #())
        ((and (listp reply)) (map 'simple-vector #'%part reply))
        (t (vector (%part reply)))))

(defun reply-octets (reply)
  "Returns REPLY as one octet vector."
  (let ((parts (map 'list (lambda (p) (if (stringp p) (map 'octets #'char-code p) p))
                    (reply-parts reply))))
    (apply #'concatenate 'octets parts)))

(defun call-handler-fn (service name &rest args)
  "Calls the handler function NAME of SERVICE's package with ARGS when it is defined.  Returns
its value, or (values NIL :undefined)."
  (let ((sym (find-symbol name (service-package service))))
    (if (and sym (fboundp sym))
        (apply (symbol-function sym) args)
        (values nil :undefined))))

(defun call-in-process (conn function &rest args)
  "Runs (apply FUNCTION ARGS) in a process of the service's task pool (its `task-processes`)
and returns the values: for code that is not thread-safe, needs a large stack, or may leak.
FUNCTION is a symbol; ARGS and the values must print readably.  Signals simple-crow-error when
the service has no task pool or the task failed there."
  (let ((pool (service-pool (conn-service conn))))
    (unless pool
      (error 'simple-crow-error :format-control "service ~a has no task-processes"
                                :format-arguments (list (service-name (conn-service conn)))))
    (apply #'pool-call pool function args)))

;;; The event model

(defvar *tables* (make-hash-table :test 'eq :synchronized t)
  "ev -> its conn-table; each is touched by its ev's worker only.")

(defstruct (conn-table (:constructor %make-conn-table))
  "A worker's connections: conn id -> conn.  ECL 21's hash tables keep a tombstone per
remhash until they grow, and a lookup of an absent key (every new connection's) probes
through them: after some 100,000 short connections that was a third of the worker's CPU.
So the map is rebuilt once removals outnumber its live entries."
  (map (make-hash-table :test 'eql)) (removed 0))

(defun %table (ev)
  (or (gethash ev *tables*)
      (setf (gethash ev *tables*) (%make-conn-table))))

(defun %forget-conn (tb id)
  "Removes connection ID from TB, rebuilding the map when tombstones pile up."
  (let ((map (conn-table-map tb)))
    (remhash id map)
    (when (> (incf (conn-table-removed tb)) (+ 256 (* 2 (hash-table-count map))))
      (let ((fresh (make-hash-table :test 'eql :size (max 64 (* 2 (hash-table-count map))))))
        (maphash (lambda (k v) (setf (gethash k fresh) v)) map)
        (setf (conn-table-map tb) fresh
              (conn-table-removed tb) 0)))))

(defun event-unit (service ev unit kind)
  "Serves one unit of SERVICE's event model."
  (let* ((tb (%table ev))
         (table (conn-table-map tb))
         (id (ev-unit-conn unit))
         (c (or (gethash id table)
                (setf (gethash id table)
                      (%make-conn :peer (ev-unit-peer unit) :service service :id id)))))
    (flet ((answer (reply)
             (if (or reply (conn-close c))
                 (ev-reply ev id (reply-parts reply) :close (conn-close c))
                 (ev-done ev id))))
      (case kind
        (:open (answer (call-handler-fn service "ON-OPEN" c)))
        (:closed (%forget-conn tb id)
         (ignore-errors (call-handler-fn service "ON-CLOSE" c)))
        (:line (answer (call-handler-fn service "ON-LINE" c (ev-unit-line unit))))
        (:data (answer (call-handler-fn service "ON-DATA" c (ev-unit-octets unit))))
        (:too-long
         (multiple-value-bind (reply undefined) (call-handler-fn service "ON-TOO-LONG" c)
           (if undefined
               (progn (close-after c) (answer (line "ERR line too long")))
               (answer reply))))
        (t (ev-close ev id))))))

(defun start-event-service (service listeners)
  "Starts SERVICE's event workers over its stream LISTENERS, every worker's loop entering one
admission table (max-connections for the whole service, per-address and rate limits).
Returns (values EVENT-SERVER ADMIT); destroy ADMIT after stopping the workers."
  (let* ((s service)
         (admit (apply #'make-admit :max-connections (service-option s :max-connections)
                       (admission-options s))))
    (dolist (l listeners)
      (setf (listener-handler l) (lambda (ev unit kind) (event-unit s ev unit kind))))
    (handler-bind ((error (lambda (e) (declare (ignore e)) (admit-destroy admit))))
      (values
       (start-event-workers nil :listeners listeners :workers (service-option service :workers)
                                :mode (service-framing service)
                                :ev-options (list :notify-open t :notify-close t
                                                  :max-connections (service-option service :max-connections)
                                                  :max-line (service-option service :max-line)
                                                  :idle-ms (service-option service :timeout)
                                                  :admit admit
                                                  :refusal (line "~a" (service-option s :refusal))
                                                  :bandwidth-in (or (service-option s :bandwidth-in) 0)
                                                  :bandwidth-out (or (service-option s :bandwidth-out) 0)))
       admit))))

;;; The process model: one connection at a time, in a pooled process

(defun %wait-input (fd timeout-ms)
  (let ((ep (epoll-create)) (events (make-epoll-events 1)))
    (unwind-protect (progn (epoll-add ep fd +epollin+) (plusp (epoll-wait ep events timeout-ms)))
      (close-fd ep))))

(defun process-connection (service fd)
  "Serves connection FD for SERVICE in this (pool) process until either side closes or it
idles out.  Returns NIL."
  (let* ((peer (handler-case (multiple-value-bind (h p) (peer-address fd)
                               (if p (if (find #\: h) (format nil "[~a]:~d" h p) (format nil "~a:~d" h p)) "unix"))
                 (unix-error () "unknown")))
         (c (%make-conn :peer peer :service service))
         (max-line (service-option service :max-line))
         (timeout (service-option service :timeout))
         (buf (make-octets 65536)) (pending (make-octets 0)))
    (flet ((send (reply)
             (when reply (write-all fd (reply-octets reply)))
             (conn-close c)))
      (unwind-protect
           (block serve
             (when (send (call-handler-fn service "ON-OPEN" c)) (return-from serve))
             (loop
               (unless (%wait-input fd timeout) (return-from serve))
               (let ((n (handler-case (read-fd fd buf) (unix-error () 0))))
                 (when (zerop n) (return-from serve))
                 (if (eq (service-framing service) :raw)
                     (when (send (call-handler-fn service "ON-DATA" c (subseq buf 0 n)))
                       (return-from serve))
                     (progn
                       (setf pending (concatenate 'octets pending (subseq buf 0 n)))
                       (loop for lf = (position 10 pending)
                             while lf
                             do (let* ((end (if (and (plusp lf) (= (aref pending (1- lf)) 13)) (1- lf) lf))
                                       (text (map 'base-string #'code-char (subseq pending 0 end))))
                                  (setf pending (subseq pending (1+ lf)))
                                  (when (send (call-handler-fn service "ON-LINE" c text))
                                    (return-from serve))))
                       (when (> (length pending) max-line)
                         (multiple-value-bind (reply undefined) (call-handler-fn service "ON-TOO-LONG" c)
                           (send (if undefined (line "ERR line too long") reply))
                           (return-from serve))))))))
        (ignore-errors (call-handler-fn service "ON-CLOSE" c))))
    nil))

;;; The session model: a thread per connection, blocking-style reads over C buffers

(defun session-connection (service session)
  "Serves SESSION for SERVICE in its own thread.  Returns NIL."
  (let* ((peer (multiple-value-bind (h p) (session-peer session)
                 (cond ((null p) "unix") ((find #\: h) (format nil "[~a]:~d" h p))
                       (t (format nil "~a:~d" h p)))))
         (c (%make-conn :peer peer :service service))
         (raw (eq (service-framing service) :raw))
         (buf (and raw (make-octets 65536))))
    (flet ((send (reply)
             (when reply (apply #'session-write session (coerce (reply-parts reply) 'list)))
             (conn-close c)))
      (unwind-protect
           (block serve
             (when (send (call-handler-fn service "ON-OPEN" c)) (return-from serve))
             (loop
               (if raw
                   (let ((n (session-read-some session buf)))
                     (when (zerop n) (return-from serve))
                     (when (send (call-handler-fn service "ON-DATA" c (subseq buf 0 n)))
                       (return-from serve)))
                   (let ((l (session-read-line session :eof-error-p nil :eof-value :eof)))
                     (case l
                       (:eof (return-from serve))
                       ((:too-long :bad)
                        (multiple-value-bind (reply undefined) (call-handler-fn service "ON-TOO-LONG" c)
                          (send (if undefined (line "ERR line too long") reply))
                          (return-from serve)))
                       (t (when (send (call-handler-fn service "ON-LINE" c l))
                            (return-from serve))))))))
        (ignore-errors (call-handler-fn service "ON-CLOSE" c))))
    nil))

(defun admission-options (service)
  "Returns make-admit's options from SERVICE's limits, or NIL when it sets none."
  (let ((per (service-option service :max-per-address))
        (rate (service-option service :rate-per-address)))
    (when (or per rate)
      (append (and per (list :max-per-address per))
              (and rate (list :rate-count (car rate) :rate-period-ms (cdr rate)))))))

(defun start-session-service (service listeners)
  "Starts SERVICE's session threads over its stream LISTENERS.  Returns the session-server."
  (let ((s service))
    (start-session-server (lambda (session) (session-connection s session))
                          :listeners listeners
                          :max-sessions (service-option s :max-connections)
                          :spare-threads (service-option s :workers)
                          :idle-timeout (max 1 (ceiling (service-option s :timeout) 1000))
                          :max-line (service-option s :max-line)
                          :bandwidth-in (service-option s :bandwidth-in)
                          :bandwidth-out (service-option s :bandwidth-out)
                          :refusal (line "~a" (service-option s :refusal))
                          :tls-context (service-tls s)
                          :admit (admission-options s))))

;;; UDP: one thread per socket

(defstruct (udp-worker (:constructor %make-udp-worker (service listener))) service listener thread (stop nil) (count 0))

(defun udp-loop (w)
  (let* ((fd (listener-fd (udp-worker-listener w)))
         (service (udp-worker-service w))
         (buf (make-octets 65536))
         (ep (epoll-create)) (events (make-epoll-events 1)))
    (unwind-protect
         (progn
           (epoll-add ep fd +epollin+)
           (loop until (udp-worker-stop w)
                 do (when (plusp (epoll-wait ep events 500))
                      (loop
                        (multiple-value-bind (n host port)
                            (handler-case (recv-from fd buf) (unix-error () nil))
                          (unless n (return))
                          (incf (udp-worker-count w))
                          (handler-case
                              (let* ((c (%make-conn :peer (if (find #\: host) (format nil "[~a]:~d" host port)
                                                              (format nil "~a:~d" host port))
                                                    :service service))
                                     (data (subseq buf 0 n))
                                     (reply (multiple-value-bind (r undefined)
                                                (call-handler-fn service "ON-DATAGRAM" c data)
                                              (if undefined (call-handler-fn service "ON-DATA" c data) r))))
                                (when reply
                                  (let ((out (reply-octets reply)))
                                    (send-to fd out host port))))
                            (error (e) (log-warn "~a: udp: ~a" (service-name service) e))))))))
      (close-fd ep))))

(defun start-udp-worker (service listener)
  (let ((w (%make-udp-worker service listener)))
    (setf (udp-worker-thread w)
          (mp:process-run-function (format nil "crow-udp-~a" (service-name service))
                                   (lambda () (udp-loop w))))
    w))

;;; Serving

(defun serve (context)
  "The serving process: process pools first (forked before any thread), then event workers
and UDP threads; on stop, drains within shutdown-timeout.  Returns 0."
  (let* ((services (context-state context))
         (config (context-config context))
         (listeners (context-listeners context))
         (pools '()) (events '()) (sessions '()) (udps '()) (admits '()))
    (flet ((mine (s kind)
             (remove-if-not (lambda (l) (and (equal (listener-data l) (service-name s))
                                             (eq (listener-kind l) kind)))
                            listeners)))
      (dolist (s services)
        (let ((n (service-option s :task-processes)))
          (when (plusp n)
            (setf (service-pool s)
                  (start-process-pool nil :min n :max n :spare 0
                                          :max-requests (service-option s :max-requests)
                                          :max-heap (service-option s :max-heap)))
            (push (service-pool s) pools)))
        (when (eq (service-model s) :process)
          (let ((s s))
            (dolist (l (mine s :stream))
              (push (start-process-pool (lambda (fd) (process-connection s fd))
                                        :listener l
                                        :min (service-option s :processes)
                                        :max (service-option s :max-processes)
                                        :spare (service-option s :spare-processes)
                                        :max-requests (service-option s :max-requests)
                                        :max-heap (service-option s :max-heap))
                    pools)))))
      (dolist (s services)
        (when (and (eq (service-model s) :event) (mine s :stream))
          (multiple-value-bind (e a) (start-event-service s (mine s :stream))
            (push e events)
            (push a admits)))
        (when (and (eq (service-model s) :session) (mine s :stream))
          (push (start-session-service s (mine s :stream)) sessions))
        (dolist (l (mine s :datagram))
          (push (start-udp-worker s l) udps)))
      (dolist (s services)
        (log-info "service ~a (~(~a~), ~(~a~)): ~{~a~^, ~}" (service-name s) (service-model s)
                  (service-framing s)
                  (mapcar #'listener-description (append (mine s :stream) (mine s :datagram)))))
      (loop until (wait-for-stop context :timeout-ms 200)
            do (dolist (p pools)
                 (handler-case (pool-tick p)
                   (error (e) (log-warn "process pool: ~a" e)))))
      (let ((ms (shutdown-timeout config)))
        (dolist (w udps) (setf (udp-worker-stop w) t))
        (let ((left (loop for e in events sum (drain-event-workers e ms))))
          (when (plusp left) (log-warn "~d connection~:p still open at the deadline" left)))
        (let ((cut (loop for ss in sessions sum (stop-session-server ss :timeout (ceiling ms 1000)))))
          (when (plusp cut) (log-warn "~d session~:p cut short at the deadline" cut)))
        (dolist (p pools) (stop-process-pool p ms))
        (dolist (w udps) (mp:process-join (udp-worker-thread w)))
        (let ((units (loop for e in events sum (stop-event-workers e))))
          (mapc #'admit-destroy admits)
          (log-info "stopped after ~d units, ~d datagrams" units
                    (loop for w in udps sum (udp-worker-count w)))))
      0)))

(define-server "crow-appserv"
  :version *version*
  :keys-table *appserv-keys*
  :summary "Serves TCP (IPv4, IPv6), AF_UNIX and UDP services whose protocol handlers are Lisp
files named in the configuration (`service NAME { listen ADDR; handler FILE; model
event|process; framing line|raw }`), loaded at start and again on SIGHUP."
  :listen-keys '()
  :configure 'configure
  :release 'release
  :open-listeners (lambda (config services reuse) (open-service-listeners config services reuse))
  :serve 'serve)
