;;;; echo.lisp — crow-echo: an RFC 862 echo service, one epoll loop on crow.unix.
;;;;
;;;; The stand-in `make run` starts until crow-httpd exists.  Each connection's bytes are
;;;; written back as they arrive; when the peer reads slower than it writes, reading from it
;;;; stops until its pending bytes are flushed (EPOLLOUT), so memory per connection stays
;;;; bounded by one buffer.

(in-package :crow.echo)

(defvar *version* "0.1.0")
(defconstant +buffer-size+ 16384)

(defstruct (conn (:constructor make-conn (fd)))
  fd
  (buffer (make-octets +buffer-size+))
  (start 0) (end 0))                    ; pending output is buffer[start,end)

(defun log-line (fmt &rest args)
  "Writes one log line to stderr.  A closed stderr (the log reader went away) must not stop
the service, so write errors are ignored."
  (ignore-errors
   (format *error-output* "~&crow-echo: ~?~%" fmt args)
   (finish-output *error-output*)))

(defun parse-listen (spec)
  "Returns (values HOST PORT) from \"HOST:PORT\" or \"[V6]:PORT\"; signals an error otherwise."
  (let ((colon (position #\: spec :from-end t)))
    (unless (and colon (< (1+ colon) (length spec))
                 (every #'digit-char-p (subseq spec (1+ colon))))
      (error "bad listen address ~s (want HOST:PORT)" spec))
    (let ((host (subseq spec 0 colon))
          (port (parse-integer spec :start (1+ colon))))
      (unless (< 0 port 65536) (error "bad port in ~s" spec))
      (values (string-trim "[]" host) port))))

(defun read-config (path)
  "Returns the list of listen specs in config file PATH (lines `listen HOST:PORT`, # comments).
Errors are `file:line: message`."
  (with-open-file (in path)
    (loop for line = (read-line in nil) for n from 1
          while line
          for text = (string-trim " 	" (subseq line 0 (or (position #\# line) (length line))))
          unless (string= text "")
            collect (let* ((sp (position #\Space text))
                           (key (subseq text 0 sp))
                           (val (and sp (string-trim " 	" (subseq text sp)))))
                      (cond ((and (string= key "listen") val)
                             (handler-case (progn (parse-listen val) val)
                               (error (e) (error "~a:~d: ~a" path n e))))
                            ((string= key "listen")
                             (error "~a:~d: listen needs HOST:PORT" path n))
                            (t (error "~a:~d: unknown key ~s" path n key)))))))

(defun close-conn (epfd conns c)
  (ignore-errors (epoll-del epfd (conn-fd c)))
  (%close (conn-fd c))
  (remhash (conn-fd c) conns))

(defun flush (epfd c)
  "Writes pending output.  Returns :done, :blocked (now waiting for EPOLLOUT) or :closed."
  (loop while (< (conn-start c) (conn-end c))
        do (multiple-value-bind (n errno)
               (%write (conn-fd c) (conn-buffer c) (conn-start c) (conn-end c))
             (cond ((plusp n) (incf (conn-start c) n))
                   ((= errno +eagain+)
                    (epoll-mod epfd (conn-fd c) +epollout+)
                    (return-from flush :blocked))
                   (t (return-from flush :closed)))))
  (setf (conn-start c) 0 (conn-end c) 0)
  :done)

(defun serve (listeners &key (stop-signals '(:term :int :hup)))
  "Runs the echo loop over the listening descriptors LISTENERS until one of STOP-SIGNALS
arrives.  Returns 0."
  (let ((epfd (epoll-create))
        (events (make-epoll-events 64))
        (conns (make-hash-table))
        (sigfd (watch-signals stop-signals)))
    (dolist (l listeners) (set-nonblocking l) (epoll-add epfd l +epollin+))
    (epoll-add epfd sigfd +epollin+)
    (unwind-protect
         (loop
           (let ((n (epoll-wait epfd events 1000)))
             (dotimes (i n)
               (let ((fd (epoll-event-data events i))
                     (ev (epoll-event-events events i)))
                 (cond
                   ((= fd sigfd)
                    (let ((sigs (read-signals)))
                      (when sigs
                        (log-line "~(~{~a~^ ~}~): stopping" sigs)
                        (return-from serve 0))))
                   ((member fd listeners)
                    (loop for c = (handler-case (accept-connection fd :nonblocking t)
                                    (unix-error (e) (log-line "accept: ~a" e) nil))
                          while c
                          do (setf (gethash c conns) (make-conn c))
                             (epoll-add epfd c +epollin+)))
                   (t
                    (let ((c (gethash fd conns)))
                      (when c
                        (if (logtest ev +epollout+)
                            (case (flush epfd c)
                              (:done (epoll-mod epfd fd +epollin+))
                              (:closed (close-conn epfd conns c)))
                            (multiple-value-bind (got errno)
                                (%read fd (conn-buffer c) 0 +buffer-size+)
                              (cond ((plusp got)
                                     (setf (conn-start c) 0 (conn-end c) got)
                                     (when (eq (flush epfd c) :closed)
                                       (close-conn epfd conns c)))
                                    ((and (minusp got) (= errno +eagain+)))
                                    (t (close-conn epfd conns c)))))))))))))
      (maphash (lambda (fd c) (declare (ignore c)) (%close fd)) conns)
      (%close epfd))))

(defun usage (s)
  (format s "usage: crow-echo [-f CONFIG] [-n] [-l HOST:PORT]... [--foreground] [--swank PORT]
       crow-echo --help | --version
An RFC 862 echo service.  Listens on 127.0.0.1:7007 unless -l or the config's `listen HOST:PORT`
lines say otherwise (IPv6 as [::1]:PORT).  -n checks the configuration and exits.
Runs in the foreground (no daemon mode); SIGTERM, SIGINT or SIGHUP stop it.~%"))

(defun main ()
  "crow-echo's entry point.  Returns the exit status."
  (let ((args (rest (ext:command-args))) (config nil) (check nil) (listen '()) (swank nil))
    (flet ((need (opt) (or (second args)
                           (progn (format *error-output* "crow-echo: ~a needs a value~%" opt)
                                  (return-from main 2)))))
      (loop while args
            do (let ((a (first args)))
                 (cond ((member a '("-h" "--help") :test #'string=)
                        (usage *standard-output*) (return-from main 0))
                       ((string= a "--version")
                        (format t "crow-echo ~a~%" *version*) (return-from main 0))
                       ((string= a "-f") (setf config (need a) args (cddr args)))
                       ((string= a "-l") (push (need a) listen) (setf args (cddr args)))
                       ((string= a "--swank")
                        (setf swank (parse-integer (need a) :junk-allowed t) args (cddr args)))
                       ((string= a "-n") (setf check t args (cdr args)))
                       ((string= a "--foreground") (setf args (cdr args)))
                       (t (format *error-output* "crow-echo: unknown option ~a~%" a)
                          (usage *error-output*) (return-from main 2))))))
    (handler-case
        (let* ((specs (or (reverse listen) (and config (read-config config)) '("127.0.0.1:7007")))
               (addrs (mapcar (lambda (s) (multiple-value-list (parse-listen s))) specs)))
          (when check
            (format t "crow-echo: configuration ok~%")
            (return-from main 0))
          (ignore-sigpipe)
          (let ((fds (mapcar (lambda (a) (tcp-listen (first a) (second a))) addrs)))
            (when swank (crow.sh:start-swank swank))
            (dolist (fd fds)
              (multiple-value-bind (h p) (local-address fd)
                (log-line "listening on ~:[~a~;[~a]~]:~d" (find #\: h) h p)))
            (serve fds)))
      (error (e)
        (format *error-output* "crow-echo: ~a~%" e)
        1))))
