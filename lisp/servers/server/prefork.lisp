;;;; prefork.lisp — the process pool (the seed's mmserver2): pre-forked processes that accept
;;;; on a shared listener and serve one connection at a time, and can run tasks handed to them
;;;; by threads of the other models.
;;;;
;;;; The pool keeps between MIN and MAX processes with about SPARE of them idle; a process
;;;; retires after MAX-REQUESTS connections or tasks, or once its resident size passes MAX-HEAP
;;;; bytes (recovering from leaks in third-party code), and the pool forks a fresh one.  Start
;;;; the pool before any thread of yours: a forked process holds only the forking thread (later
;;;; refills fork from a threaded process, which ECL survives, but code that holds a lock in
;;;; another thread at that moment would find it held forever in the new process).
;;;;
;;;; Each member has two socketpairs to the manager: STATUS, on which it writes one byte when
;;;; it starts (I), takes work (B) and is idle again (I) — the manager closing its end tells it
;;;; to finish and exit; and TASK, on which a task arrives as a length-prefixed printed form
;;;; (FUNCTION-NAME . ARGS) and its result goes back the same way, printed readably.

(in-package :crow.server)

(defstruct (pool-member (:conc-name member-))
  pid status task (busy nil) (task-busy nil) (served 0))

(defstruct (process-pool (:conc-name pool-) (:constructor %make-process-pool))
  "A process pool; see start-process-pool."
  listener serve (min 1) (max 4) (spare 1) (max-requests 1000) max-heap
  (members '()) (lock (mp:make-lock :name "crow pool")) (stopping nil) (forked 0) (retired 0))

(defun resident-bytes ()
  "Returns this process's resident set size in bytes (from /proc/self/statm), or 0.  Can't
fail."
  (or (ignore-errors
       (with-open-file (in "/proc/self/statm")
         (let* ((line (read-line in))
                (sp (position #\Space line)))
           (* 4096 (parse-integer line :start (1+ sp) :junk-allowed t)))))
      0))

;;; Framed messages: 8 hex digits of length, then the printed form.

(defun send-message (fd string)
  "Writes STRING to FD as one framed message.  Signals unix-error."
  (let* ((body (map 'octets #'char-code string))
         (head (map 'octets #'char-code (format nil "~8,'0x" (length body)))))
    (write-all fd (concatenate 'octets head body))))

(defun %read-exactly (fd n)
  (let ((buf (make-octets n)) (got 0))
    (loop while (< got n)
          do (let ((k (read-fd fd buf :start got)))
               (when (zerop k) (return-from %read-exactly nil))
               (incf got k)))
    buf))

(defun receive-message (fd)
  "Reads one framed message from FD.  Returns it as a string, or NIL at end of file.  Signals
unix-error."
  (let ((head (%read-exactly fd 8)))
    (when head
      (let* ((n (parse-integer (map 'string #'code-char head) :radix 16))
             (body (%read-exactly fd n)))
        (and body (map 'string #'code-char body))))))

;;; The member side

(defun %member-task (fd)
  "Runs one task from FD and writes its result.  Returns NIL at end of file, else T."
  (let ((text (receive-message fd)))
    (when text
      (let ((reply (handler-case
                       (let* ((*read-eval* nil)
                              (form (let ((*package* (find-package :crow.server)))
                                      (read-from-string text)))
                              (values (multiple-value-list (apply (first form) (rest form)))))
                         (with-standard-io-syntax
                           (let ((*package* (find-package :crow.server)))
                             (prin1-to-string (list* :ok values)))))
                     (error (e)
                       (with-standard-io-syntax
                         (prin1-to-string (list :error (princ-to-string e))))))))
        (send-message fd reply)
        t))))

(defun %member-loop (pool status task)
  "A pool process: accepts and serves connections, runs tasks.  Returns when told to stop or
when it should be recycled."
  (let* ((listener (pool-listener pool))
         (lfd (and listener (listener-fd listener)))
         (ep (epoll-create))
         (events (make-epoll-events 4))
         (served 0)
         (tell (lambda (c) (ignore-errors (write-all status (make-octets 1 :initial-element (char-code c)))))))
    (when lfd (epoll-add ep lfd +epollin+))
    (epoll-add ep status +epollin+)
    (epoll-add ep task +epollin+)
    (funcall tell #\I)
    (loop
      (when (or (>= served (pool-max-requests pool))
                (and (pool-max-heap pool) (> (resident-bytes) (pool-max-heap pool))))
        (return :recycle))
      (let ((n (epoll-wait ep events 1000)))
        (dotimes (i n)
          (let ((fd (epoll-event-data events i)))
            (cond ((= fd status) (return-from %member-loop :stop))
                  ((= fd task)
                   (funcall tell #\B)
                   (unless (%member-task task) (return-from %member-loop :stop))
                   (incf served)
                   (funcall tell #\I))
                  ((eql fd lfd)
                   (let ((conn (handler-case (accept-connection lfd) (unix-error () nil))))
                     (when conn
                       (funcall tell #\B)
                       (unwind-protect
                            (handler-case (funcall (pool-serve pool) conn)
                              (error (e) (log-warn "pool process ~d: ~a" (getpid) e)))
                         (ignore-errors (%close conn)))
                       (incf served)
                       (funcall tell #\I)))))))))))

;;; The manager side

(defun %fork-member (pool)
  (multiple-value-bind (s-mine s-theirs) (socket-pair)
    (multiple-value-bind (t-mine t-theirs) (socket-pair)
      (let ((pid (fork)))
        (cond ((zerop pid)
               (%close s-mine) (%close t-mine)
               ;; The inherited signal pipe is the manager's: a member takes the default
               ;; actions (the manager stops it by closing its status socket).
               (reset-signal-pipe)
               (default-signal :term)
               (default-signal :int)
               (dolist (m (pool-members pool))
                 (ignore-errors (%close (member-status m)))
                 (ignore-errors (%close (member-task m))))
               (let ((why (ignore-errors (%member-loop pool s-theirs t-theirs))))
                 (declare (ignore why))
                 (ignore-errors (finish-output *error-output*))
                 (exit-process 0)))
              (t
               (%close s-theirs) (%close t-theirs)
               (set-nonblocking s-mine)
               (incf (pool-forked pool))
               ;; A new member counts as busy until its first I.
               (let ((m (make-pool-member :pid pid :status s-mine :task t-mine :busy t)))
                 (push m (pool-members pool))
                 m)))))))

(defun %retire (pool m)
  (ignore-errors (%close (member-status m)))
  (ignore-errors (%close (member-task m)))
  (setf (pool-members pool) (remove m (pool-members pool))))

(defun pool-tick (pool)
  "The pool manager's periodic work (call it every few hundred ms from the thread that
started the pool): reads members' states, reaps those that ended, and forks or retires
members to keep MIN..MAX processes with about SPARE idle.  Returns the number of members.
Signals unix-error when it cannot fork."
  (mp:with-lock ((pool-lock pool))
    (let ((buf (make-octets 64)))
      (dolist (m (pool-members pool))
        (loop
          (multiple-value-bind (n errno) (%read (member-status m) buf 0 64)
            (cond ((plusp n)
                   (let ((c (aref buf (1- n))))
                     (setf (member-busy m) (= c (char-code #\B)))))
                  ((and (minusp n) (= errno +eagain+)) (return))
                  (t (%retire pool m) (return)))))))
    ;; Reap ended members (recycled or retired).
    (loop for pid = (handler-case (waitpid -1 :nohang t) (unix-error () nil))
          while pid
          do (let ((m (find pid (pool-members pool) :key #'member-pid)))
               (when m (%retire pool m))
               (incf (pool-retired pool))))
    (unless (pool-stopping pool)
      (let* ((total (length (pool-members pool)))
             (idle (count-if-not (lambda (m) (or (member-busy m) (member-task-busy m)))
                                 (pool-members pool))))
        (cond ((or (< total (pool-min pool))
                   (and (< idle (pool-spare pool)) (< total (pool-max pool))))
               (%fork-member pool))
              ((and (> idle (1+ (pool-spare pool))) (> total (pool-min pool)))
               (let ((m (find-if-not (lambda (m) (or (member-busy m) (member-task-busy m)))
                                     (pool-members pool))))
                 (ignore-errors (%close (member-status m)))
                 (setf (member-status m) -1 (member-busy m) t))))))
    (length (pool-members pool))))

(defun start-process-pool (serve &key listener (min 1) (max 4) (spare 1) (max-requests 1000)
                                      max-heap)
  "Starts a pool of MIN processes (forked now: call this before starting threads).  Each
accepts connections on LISTENER (a listener, or NIL for a task-only pool) and calls SERVE with
the connected descriptor (closed after SERVE returns), and runs tasks sent with pool-call.
The pool grows to MAX processes to keep SPARE idle; a process is replaced after MAX-REQUESTS
connections and tasks, or when its resident size passes MAX-HEAP bytes.  Call pool-tick
periodically.  Returns the pool.  Signals unix-error."
  (let ((pool (%make-process-pool :listener listener :serve serve :min min :max (max min max)
                                  :spare spare :max-requests max-requests :max-heap max-heap)))
    (dotimes (i min) (%fork-member pool))
    pool))

(defun stop-process-pool (pool timeout-ms)
  "Tells every member to finish (a busy one completes its connection or task) and waits up to
TIMEOUT-MS for them, then kills those left.  Returns the number killed.  Can't fail."
  (setf (pool-stopping pool) t)
  (dolist (m (pool-members pool))
    (ignore-errors (%close (member-status m)))
    (setf (member-status m) -1))
  (let ((deadline (+ (monotonic-ns) (* timeout-ms 1000000))) (killed 0))
    (loop while (and (pool-members pool) (< (monotonic-ns) deadline))
          do (loop for pid = (handler-case (waitpid -1 :nohang t) (unix-error () nil))
                   while pid
                   do (let ((m (find pid (pool-members pool) :key #'member-pid)))
                        (when m
                          (ignore-errors (%close (member-task m)))
                          (setf (pool-members pool) (remove m (pool-members pool))))))
             (when (pool-members pool) (sleep 0.05)))
    (dolist (m (pool-members pool))
      (incf killed)
      (ignore-errors (kill (member-pid m) :kill))
      (ignore-errors (waitpid (member-pid m)))
      (ignore-errors (%close (member-task m))))
    (setf (pool-members pool) '())
    killed))

(defun pool-call (pool function &rest args)
  "Runs (apply FUNCTION ARGS) in an idle process of POOL and returns its values.  FUNCTION is
a symbol; ARGS and the values must print readably.  Callable from any thread; waits for an
idle member (up to 30 s).  Signals simple-crow-error when none is free or the task failed
there (with its message), unix-error on a broken connection."
  (let ((m nil) (deadline (+ (monotonic-ns) 30000000000)))
    (loop
      (mp:with-lock ((pool-lock pool))
        (setf m (find-if (lambda (m) (and (not (member-busy m)) (not (member-task-busy m))
                                          (plusp (member-status m))))
                         (pool-members pool)))
        (when m (setf (member-task-busy m) t)))
      (when m (return))
      (when (> (monotonic-ns) deadline)
        (error 'simple-crow-error :format-control "pool-call ~s: no idle pool process"
                                  :format-arguments (list function)))
      (sleep 0.01))
    (unwind-protect
         (let* ((text (with-standard-io-syntax
                        (let ((*package* (find-package :crow.server)))
                          (prin1-to-string (cons function args)))))
                (reply (progn (send-message (member-task m) text)
                              (receive-message (member-task m))))
                (form (and reply (let ((*read-eval* nil)
                                       (*package* (find-package :crow.server)))
                                   (read-from-string reply)))))
           (case (first form)
             (:ok (values-list (rest form)))
             (:error (error 'simple-crow-error :format-control "pool-call ~s: ~a"
                                               :format-arguments (list function (second form))))
             (t (error 'simple-crow-error :format-control "pool-call ~s: the pool process ended"
                                          :format-arguments (list function)))))
      (mp:with-lock ((pool-lock pool))
        (setf (member-task-busy m) nil)))))

(defun pool-stats (pool)
  "Returns a plist: :processes :busy :forked :retired.  Can't fail."
  (list :processes (length (pool-members pool))
        :busy (count-if #'member-busy (pool-members pool))
        :forked (pool-forked pool) :retired (pool-retired pool)))
