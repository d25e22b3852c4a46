;;;; session.lisp — the session-thread concurrency model: an accept loop over the listeners and
;;;; a bounded pool of threads, each serving one connection at a time with crow.unix's
;;;; blocking-style session I/O (read a line, write a reply, STARTTLS, ...).
;;;;
;;;; For conversational protocols (FTP, SMTP, POP3, IRC): a handler is plain sequential code
;;;; (lambda (session) ...), called in its own thread.  The acceptor never blocks on a client:
;;;; listeners and accepted sockets are non-blocking, refusals are one best-effort write, and
;;;; the TLS handshake of a listen-tls connection runs in the session's thread.  Threads are
;;;; reused: a thread that finished a session takes the next queued connection, and idle ones
;;;; beyond SPARE-THREADS end once no connection came for LINGER seconds, so bursts do not pay
;;;; for thread creation each time and a quiet server holds few threads.  (A new ECL thread
;;;; costs ~1 MiB of collected heap, its Lisp stacks and method caches, and every garbage
;;;; collection during a burst scans every thread: creating 300 threads for 300 FTP logins cost
;;;; more than the logins.)  A queued connection wakes one idle thread, not all.  At most
;;;; MAX-SESSIONS connections are queued or served; beyond that, and when the admission table
;;;; (crow.unix's admit) refuses, the server writes its refusal reply and closes.  Stopping
;;;; closes the accept side, lets the sessions finish until a deadline, then wakes every
;;;; session still waiting for its peer (session-abort: shutdown(2), seen as end of file) and
;;;; joins every thread.
;;;;
;;;; Thread count: ECL 21.2.1 (Debian) fails to create a process's ~255th Lisp thread with
;;;; STORAGE-EXHAUSTED although a thread costs ~250 KiB: its extend_process_vector() passes the
;;;; old fill pointer as make-vector's ADJUSTABLE argument and NIL as the fill pointer, so the
;;;; grown process table looks full and is grown again, 1.5x each turn, until the 4 GB heap
;;;; limit.  start-session-server first gives ECL a process table for every thread it may
;;;; start (crow.unix:reserve-lisp-threads), so 1,000+ concurrent sessions run in one process
;;;; (t/scenarios/session-many.t).

(in-package :crow.server)

(defvar *session-thread-limit* 4000
  "The most session threads one process runs (MAX-SESSIONS is capped to it).  An idle
session costs about 250 KiB (its thread's Lisp stacks and the C buffers) and a GC stops every
thread, so a few thousand per process is a sensible ceiling.  (ECL 21.2's own limit of ~255
threads per process is a bug in growing its process table, worked around by
crow.unix:reserve-lisp-threads, which start-session-server calls.)")

(defvar *session-server* nil
  "The session-server whose handler is running, bound in each session thread.")

(defstruct (session-server (:constructor %make-session-server))
  "A running session-thread server (see start-session-server)."
  handler listeners (own-fds '()) epoll wake acceptor
  (lock (mp:make-lock :name "crow session server"))
  (cv (mp:make-condition-variable))
  (queue '()) (queue-tail '())          ; connections accepted, not yet taken by a thread
  (sessions '())                        ; sessions being served (for session-abort)
  (active 0) (threads '()) (idle 0)     ; idle: threads waiting for a connection
  (finishing 0)                         ; threads between a session's end and their next wait
  (max-sessions 100) (spare-threads 2)
  (linger 5) (last-enqueue 0)           ; seconds; internal real time of the last connection
  (retire 0)                            ; idle threads asked to end (see %retire-idle)
  options tls-context greeting refusal admit own-admit
  (stopping nil)
  (accepted 0) (refused 0) (errors 0) (served 0))

(defstruct (%pending (:constructor %make-pending (fd tls ticket)))
  fd tls ticket)

(defun %listener-fd (l) (if (integerp l) l (listener-fd l)))
(defun %listener-tls-p (l) (and (listener-p l) (listener-tls l)))

(defun session-server-port (server)
  "Returns the TCP port of SERVER's first listener (NIL for AF_UNIX).  Can't fail."
  (let ((l (first (session-server-listeners server))))
    (when l
      (nth-value 1 (ignore-errors (local-address (%listener-fd l)))))))

(defun session-server-stats (server)
  "Returns SERVER's counters as a plist: :active (connections queued or served), :accepted,
:refused, :errors (handlers that signalled an unexpected error), :served, :threads, :idle.
Can't fail."
  (mp:with-lock ((session-server-lock server))
    (list :active (session-server-active server) :accepted (session-server-accepted server)
          :refused (session-server-refused server) :errors (session-server-errors server)
          :served (session-server-served server)
          :threads (length (session-server-threads server)) :idle (session-server-idle server))))

(defun %octets-or-string (x)
  (etypecase x
    (null nil)
    (octets x)
    (string (if (every (lambda (c) (< (char-code c) 128)) x)
                (coerce x 'simple-base-string)
                (utf8-encode x)))))

(defun %refuse (server fd reason)
  "Writes SERVER's refusal reply for REASON (:full, :per-address, :rate, :nomem, :stopping)
to the new connection FD, best effort (one non-blocking write), and closes it."
  (let* ((r (session-server-refusal server))
         (reply (%octets-or-string (if (functionp r) (ignore-errors (funcall r reason)) r))))
    (when reply
      (ignore-errors
       (let ((v (if (stringp reply) (map 'octets #'char-code reply) reply)))
         (write-fd fd v)))))
  (%close fd)
  (mp:with-lock ((session-server-lock server))
    (incf (session-server-refused server)))
  (log-debug "session refused: ~(~a~)" reason))

(defun %call-handler (handler session)
  "Calls HANDLER; a symbol is looked up on every call, so a handler redefined from SLIME
serves the very next session."
  (if (symbolp handler)
      (funcall (symbol-function handler) session)
      (funcall handler session)))

(defun %serve (server pending)
  "Serves one accepted connection in the current thread, whatever happens."
  (let* ((fd (%pending-fd pending))
         (opts (session-server-options server))
         (session nil))
    (unwind-protect
         (handler-case
             (progn
               ;; Replies are one writev each, and a TLS handshake is several small writes
               ;; in a row: Nagle would hold them for the peer's delayed ACK (40 ms).
               (ignore-errors (set-socket-option fd :tcp-nodelay t))   ; not on AF_UNIX
               (setf session (apply #'make-session fd opts))
               (mp:with-lock ((session-server-lock server))
                 (push session (session-server-sessions server))
                 ;; Stopping while this one was queued: serve it, but not beyond the deadline.
                 (when (eq (session-server-stopping server) :abort)
                   (session-abort session)))
               (when (%pending-tls pending)
                 (session-starttls session (session-server-tls-context server)))
               (let ((g (session-server-greeting server)))
                 (when g
                   (session-write session (if (functionp g) (funcall g session) g))))
               (let ((*session-server* server))
                 (%call-handler (session-server-handler server) session)))
           (session-error (e)
             (log-debug "session ~a: ~a" (and session (session-peer session)) e))
           (unix-error (e)
             (log-debug "session ~a: ~a" (and session (session-peer session)) e))
           (serious-condition (e)
             ;; Not only errors: nothing may reach the debugger of a server thread.
             (mp:with-lock ((session-server-lock server))
               (incf (session-server-errors server)))
             (log-warn "session ~a: handler: ~a" (and session (session-peer session)) e)))
      (mp:with-lock ((session-server-lock server))
        (when session
          (setf (session-server-sessions server)
                (delete session (session-server-sessions server))))
        (decf (session-server-active server))
        (incf (session-server-served server))
        ;; Counted as available from now on (%enqueue): this thread takes the next queued
        ;; connection in a moment, so none is started for a connection arriving meanwhile.
        (incf (session-server-finishing server)))
      (when session
        (session-close session :abort (eq (session-server-stopping server) :abort)))
      (when (%pending-ticket pending)
        (ignore-errors (admit-leave (session-server-admit server) (%pending-ticket pending)))))))

(defun %next-pending (server)
  "Waits for a queued connection.  Returns it, or NIL when this thread should end: stopping
and nothing queued, or asked to retire (%retire-idle: ECL 21 has no timed condition waits,
so the acceptor's clock ends idle threads).  Called with the lock held."
  (loop
    (let ((p (pop (session-server-queue server))))
      (when p
        (unless (session-server-queue server) (setf (session-server-queue-tail server) nil))
        (return p)))
    (when (session-server-stopping server)
      (return nil))
    (when (plusp (session-server-retire server))
      (decf (session-server-retire server))
      (return nil))
    (incf (session-server-idle server))
    (unwind-protect
         (mp:condition-variable-wait (session-server-cv server) (session-server-lock server))
      (decf (session-server-idle server)))))

(defun %worker (server)
  (let ((me mp:*current-process*)
        (finishing nil))                ; %serve counted this thread as finishing
    (unwind-protect
         (loop for p = (mp:with-lock ((session-server-lock server))
                         (when finishing
                           (decf (session-server-finishing server))
                           (setf finishing nil))
                         (%next-pending server))
               while p
               do (setf finishing t)    ; %serve's cleanup counts it, whatever happens
                  (%serve server p))
      (mp:with-lock ((session-server-lock server))
        (when finishing (decf (session-server-finishing server)))
        (setf (session-server-threads server) (delete me (session-server-threads server)))))))

(defun %enqueue (server pending)
  "Queues PENDING and makes sure a thread will take it.  Returns true, or NIL when no thread
could be started for it (PENDING is not queued then).  Called with the lock held."
  (let ((cell (list pending)))
    (if (session-server-queue server)
        (setf (cdr (session-server-queue-tail server)) cell)
        (setf (session-server-queue server) cell))
    (setf (session-server-queue-tail server) cell))
  (setf (session-server-last-enqueue server) (get-internal-real-time)
        (session-server-retire server) 0)
  ;; Signal, not broadcast: only idle workers wait on the condition variable (the stopper
  ;; polls), and waking every idle thread for each connection costs O(idle) per accept.
  (if (>= (+ (session-server-idle server) (session-server-finishing server))
          (length (session-server-queue server)))
      (progn (mp:condition-variable-signal (session-server-cv server)) t)
      ;; A thread that cannot be made (out of memory, RLIMIT_NPROC: STORAGE-EXHAUSTED is not
      ;; an error): the connection is taken back and refused, and the server goes on.
      (let ((th (handler-case (mp:process-run-function "crow-session"
                                                       (lambda () (%worker server)))
                  (serious-condition (e)
                    (log-warn "session: cannot start a thread: ~a" e)
                    nil))))
        (cond (th (push th (session-server-threads server)) t)
              (t (setf (session-server-queue server)
                       (butlast (session-server-queue server))
                       (session-server-queue-tail server)
                       (last (session-server-queue server)))
                 nil)))))

(defun %admit-new (server fd tls)
  "Admission for a new connection FD: the admit table, then MAX-SESSIONS.  Queues it or
refuses it."
  (let ((ticket nil) (admit (session-server-admit server)))
    (when admit
      (multiple-value-bind (verdict tk) (handler-case (admit-enter admit fd)
                                          (unix-error () (values :gone nil)))
        (case verdict
          (:ok (setf ticket tk))
          (:gone (%close fd) (return-from %admit-new nil))
          (t (return-from %admit-new (%refuse server fd verdict))))))
    (let ((full (mp:with-lock ((session-server-lock server))
                  (cond ((>= (session-server-active server) (session-server-max-sessions server))
                         t)
                        ((%enqueue server (%make-pending fd tls ticket))
                         (incf (session-server-active server))
                         (incf (session-server-accepted server))
                         nil)
                        (t t)))))
      (when full
        (when ticket (ignore-errors (admit-leave admit ticket)))
        (%refuse server fd :full)))))

(defun %retire-idle (server)
  "Asks the idle threads beyond SPARE-THREADS to end once no connection was queued for LINGER
seconds.  Called by the acceptor at least once a second.  Can't fail."
  (mp:with-lock ((session-server-lock server))
    (let ((extra (- (session-server-idle server) (session-server-spare-threads server)
                    (session-server-retire server))))
      (when (and (plusp extra)
                 (> (- (get-internal-real-time) (session-server-last-enqueue server))
                    (* (session-server-linger server) internal-time-units-per-second)))
        (incf (session-server-retire server) extra)
        (mp:condition-variable-broadcast (session-server-cv server))))))

(defun %accept-loop (server)
  (let* ((ep (session-server-epoll server))
         (events (make-epoll-events 16))
         (by-fd (loop for l in (session-server-listeners server)
                      collect (cons (%listener-fd l) (%listener-tls-p l)))))
    (loop until (session-server-stopping server)
          do (let ((n (handler-case (epoll-wait ep events 1000)
                        (unix-error (e) (log-warn "session accept: ~a" e) (sleep 0.1) 0))))
               (%retire-idle server)
               (dotimes (i n)
                 (let* ((fd (epoll-event-data events i))
                        (entry (assoc fd by-fd)))
                   (when entry
                     (loop repeat 64
                           for c = (handler-case (accept-connection fd :nonblocking t)
                                     (unix-error (e)
                                       ;; EMFILE and friends: back off, the listener stays.
                                       (log-warn "session accept: ~a" e)
                                       (sleep 0.05)
                                       nil))
                           while c
                           do (handler-case
                                  (if (session-server-stopping server)
                                      (%refuse server c :stopping)
                                      (%admit-new server c (cdr entry)))
                                (serious-condition (e)
                                  ;; The acceptor must survive anything one connection causes
                                  ;; (C is not closed here: it may be closed or queued already).
                                  (log-warn "session accept: ~a" e)))))))))))

(defun start-session-server (handler &key listeners (host "127.0.0.1") (port 0)
                                          (max-sessions 100) (spare-threads 2) (linger 5)
                                          (idle-timeout 300) (write-timeout 60)
                                          bandwidth-in bandwidth-out (max-line 1024)
                                          (bare-lf t) tls-context greeting refusal admit)
  "Starts serving connections, one thread each, and returns the session-server.

HANDLER (a function designator; a symbol is looked up per session) is called with a crow.unix
session in the connection's own thread, *session-server* bound; it talks with session-read-line,
session-write, session-starttls ... and returns when done.  The session is closed afterwards
however the handler ends; session-eof, session-timeout and unix-error end it quietly, other
errors are logged (and counted).

LISTENERS: crow.server listener structs (listen-tls ones get a TLS handshake first, with
TLS-CONTEXT) or plain listening descriptors; without any, a TCP listener is opened on
HOST:PORT (port 0 picks one: see session-server-port) and closed at stop.  At most
MAX-SESSIONS connections (at most *session-thread-limit*) are queued or served at once;
beyond that the REFUSAL reply (a
string, octets, or a function of the reason :full :per-address :rate :stopping returning
one) is written and the connection closed.  ADMIT (a crow.unix admit table, or a plist of
make-admit's options) adds per-address and rate limits, refused the same way.  GREETING (a
string, or a function of the session returning one) is written before HANDLER is called.
IDLE-TIMEOUT and WRITE-TIMEOUT are seconds, BANDWIDTH-IN/-OUT bytes per second per session,
MAX-LINE and BARE-LF the line policy.  SPARE-THREADS idle threads are kept for the next
connections, and those a burst started until no connection came for LINGER seconds.  Signals
unix-error when a listener cannot be opened."
  (when (> max-sessions *session-thread-limit*)
    (log-warn "max-sessions ~d is over the ~d threads a process can hold: ~:*~d used"
              max-sessions *session-thread-limit*)
    (setf max-sessions *session-thread-limit*))
  ;; Room for the session threads and the others (acceptor, event workers, swank, ...).
  (reserve-lisp-threads (+ max-sessions 256))
  (dolist (l listeners)
    (when (and (listener-p l) (eq (listener-kind l) :datagram))
      (error 'simple-crow-error :format-control "start-session-server: ~a is not a stream listener"
                                :format-arguments (list (listener-description l)))))
  (when (and (some #'%listener-tls-p listeners) (null tls-context))
    (error 'simple-crow-error :format-control "start-session-server: a listen-tls listener needs :tls-context"
                              :format-arguments '()))
  (let ((server (%make-session-server
                 :handler handler :max-sessions max-sessions :spare-threads spare-threads
                 :linger linger
                 :tls-context tls-context :greeting (%octets-or-string* greeting)
                 :refusal refusal
                 :options (list :idle-timeout idle-timeout :write-timeout write-timeout
                                :bandwidth-in bandwidth-in :bandwidth-out bandwidth-out
                                :max-line max-line :bare-lf bare-lf))))
    (handler-bind ((error (lambda (e) (declare (ignore e)) (%release server))))
      (when (consp admit)
        (setf (session-server-admit server) (apply #'make-admit admit)
              (session-server-own-admit server) t))
      (when (typep admit 'admit)
        (setf (session-server-admit server) admit))
      (let ((ls (or listeners
                    (let ((fd (tcp-listen host port :nonblocking t)))
                      (push fd (session-server-own-fds server))
                      (list fd)))))
        (setf (session-server-listeners server) ls)
        (setf (session-server-epoll server) (epoll-create)
              (session-server-wake server) (eventfd-create :nonblocking t))
        (epoll-add (session-server-epoll server) (session-server-wake server) +epollin+)
        (dolist (l ls)
          (set-nonblocking (%listener-fd l))
          (epoll-add (session-server-epoll server) (%listener-fd l) +epollin+))
        (setf (session-server-acceptor server)
              (mp:process-run-function "crow-session-accept"
                                       (lambda () (%accept-loop server))))))
    server))

(defun %octets-or-string* (g)
  (if (functionp g) g (%octets-or-string g)))

(defun %release (server)
  "Closes what SERVER opened itself: its listeners, epoll, eventfd and admit table."
  (dolist (fd (session-server-own-fds server)) (ignore-errors (%close fd)))
  (setf (session-server-own-fds server) '())
  (when (session-server-epoll server)
    (ignore-errors (%close (session-server-epoll server)))
    (setf (session-server-epoll server) nil))
  (when (session-server-wake server)
    (ignore-errors (%close (session-server-wake server)))
    (setf (session-server-wake server) nil))
  (when (and (session-server-own-admit server) (session-server-admit server))
    (admit-destroy (session-server-admit server))
    (setf (session-server-admit server) nil)))

(defun %wait-idle (server deadline)
  "Waits until no connection is queued or served, or DEADLINE (internal real time) passes.
Returns true when idle.  (Polls: ECL 21 has no timed condition waits.)"
  (loop
    (when (zerop (mp:with-lock ((session-server-lock server)) (session-server-active server)))
      (return t))
    (when (>= (get-internal-real-time) deadline) (return nil))
    (sleep 0.02)))

(defun stop-session-server (server &key (timeout 10))
  "Stops SERVER: stops accepting (listeners it did not open stay open), lets the sessions in
progress finish for TIMEOUT seconds, then ends the waits of those still running (they see end
of file) and joins every thread.  Returns the number of sessions that had to be cut short.
Call it from outside SERVER's session threads (a handler that wants the server to stop tells
the thread that started it).  Can't fail."
  (when (session-server-stopping server)
    (return-from stop-session-server 0))
  (setf (session-server-stopping server) t)
  (when (session-server-wake server)
    (ignore-errors (eventfd-write (session-server-wake server))))
  (when (session-server-acceptor server)
    (mp:process-join (session-server-acceptor server))
    (setf (session-server-acceptor server) nil))
  (let ((cut 0))
    (mp:with-lock ((session-server-lock server))
      (mp:condition-variable-broadcast (session-server-cv server)))
    (unless (%wait-idle server (+ (get-internal-real-time)
                                  (round (* timeout internal-time-units-per-second))))
      (mp:with-lock ((session-server-lock server))
        (setf cut (session-server-active server)
              (session-server-stopping server) :abort)
        (dolist (s (session-server-sessions server)) (session-abort s)))
      (%wait-idle server (+ (get-internal-real-time) (* 5 internal-time-units-per-second))))
    (loop for threads = (mp:with-lock ((session-server-lock server))
                          (mp:condition-variable-broadcast (session-server-cv server))
                          (copy-list (session-server-threads server)))
          while threads
          do (dolist (th threads) (mp:process-join th)))
    (%release server)
    (when (plusp cut) (log-warn "stop: ~d session~:p cut short after ~a s" cut timeout))
    cut))
