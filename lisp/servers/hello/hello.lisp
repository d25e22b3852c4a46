;;;; hello.lisp — crow-hello: answers every HTTP request with a small text body, from Lisp
;;;; handlers called by C event loops (one per worker thread), one writev per response.

(in-package :crow.hello)

(defvar *version* "0.1.0")

(defparameter *body* (coerce (format nil "Hello from crow!~%") 'base-string)
  "The response body.  Redefine it (or handle) from SLIME: the next request sees it.")

(defun crlf-lines (&rest lines)
  (coerce (format nil "~{~a~c~c~}" (loop for l in lines append (list l #\Return #\Linefeed)))
          'base-string))

(defparameter +date-prefix+ (coerce (format nil "HTTP/1.1 200 OK~c~cServer: Crow/~a~c~cDate: "
                                            #\Return #\Linefeed *version* #\Return #\Linefeed)
                                    'base-string))

(defun error-reply (ev unit status reason)
  (ev-reply ev (ev-unit-conn unit)
            (vector (crlf-lines (format nil "HTTP/1.1 ~d ~a" status reason)
                                (format nil "Server: Crow/~a" *version*)
                                "Content-Type: text/plain" "Content-Length: 0"
                                "Connection: close" ""))
            :close t))

(defparameter +head+ (coerce "HEAD" 'simple-base-string))
(defvar *cached-body* nil)
(defvar *head-keep* "")
(defvar *head-close* "")

(defun response-heads (body)
  "Returns the header tails (after Date) for BODY, keep-alive and close, computed once per
body object: the hot path formats nothing."
  (unless (eq body *cached-body*)
    (flet ((tail (close)
             (coerce (format nil "~c~cContent-Type: text/plain~c~cContent-Length: ~d~c~c~a~c~c"
                             #\Return #\Linefeed #\Return #\Linefeed (length body) #\Return #\Linefeed
                             (if close (format nil "Connection: close~c~c" #\Return #\Linefeed) "")
                             #\Return #\Linefeed)
                     'base-string)))
      (setf *head-keep* (tail nil) *head-close* (tail t) *cached-body* body)))
  (values *head-keep* *head-close*))

(defun handle (ev unit kind)
  "The request handler: 200 with *body* for every request (no body for HEAD); 431/400/413 for
framing errors."
  (case kind
    (:request
     (let ((keep (ev-unit-keep-alive unit))
           (body *body*))
       (multiple-value-bind (head-keep head-close) (response-heads body)
         (ev-reply ev (ev-unit-conn unit)
                   (vector +date-prefix+ (ev-date ev) (if keep head-keep head-close)
                           (if (ev-unit-method-p unit +head+) "" body))
                   :close (not keep)))))
    (:too-long (error-reply ev unit 431 "Request Header Fields Too Large"))
    (:bad (error-reply ev unit 400 "Bad Request"))
    (:too-large (error-reply ev unit 413 "Content Too Large"))
    (t (ev-done ev (ev-unit-conn unit)))))

(define-config-keys *hello-keys* (:include *common-keys*))

(defun usage (s)
  (format s "usage: crow-hello [-f CONFIG] [-n] [-l HOST:PORT] [-t WORKERS] [--foreground]
                  [--swank PORT]
       crow-hello --help | --version
An HTTP/1.1 hello-world on crow.server's event workers: each worker thread runs a C epoll
loop over its own SO_REUSEPORT listener and calls the Lisp handler CROW.HELLO:HANDLE once per
request.  Defaults: 127.0.0.1:8080, 1 worker.  SIGTERM/SIGINT stop it.

Configuration keys:~%")
  (describe-config-keys *hello-keys* s))

(defun main ()
  "crow-hello's entry point.  Returns the exit status."
  (let ((args (rest (ext:command-args))) config check listen workers swank)
    (flet ((need (opt) (or (second args)
                           (progn (format *error-output* "crow-hello: ~a needs a value~%" opt)
                                  (return-from main 2)))))
      (loop while args
            do (let ((a (first args)))
                 (cond ((member a '("-h" "--help") :test #'string=)
                        (usage *standard-output*) (return-from main 0))
                       ((string= a "--version")
                        (format t "crow-hello ~a~%" *version*) (return-from main 0))
                       ((string= a "-f") (setf config (need a) args (cddr args)))
                       ((string= a "-l") (setf listen (need a) args (cddr args)))
                       ((string= a "-t") (setf workers (parse-integer (need a)) args (cddr args)))
                       ((string= a "--swank") (setf swank (parse-integer (need a)) args (cddr args)))
                       ((string= a "-n") (setf check t args (cdr args)))
                       ((string= a "--foreground") (setf args (cdr args)))
                       (t (format *error-output* "crow-hello: unknown option ~a~%" a)
                          (return-from main 2))))))
    (open-log "crow-hello" :stderr)
    (handler-case
        (let* ((cfg (config-from-string (if listen (format nil "listen ~a~%" listen) "")
                                        *hello-keys* :name "command line"))
               (cfg (if config (read-config config *hello-keys* :check check) cfg))
               (addr (or (first (config-value cfg :listen))
                         (first (config-value (config-from-string "listen 127.0.0.1:8080"
                                                                  *hello-keys*) :listen))))
               (nworkers (or workers (config-value cfg :workers) 1)))
          (when check
            (format t "crow-hello: configuration ok~%")
            (return-from main 0))
          (ignore-sigpipe)
          (let ((sigfd (watch-signals '(:term :int :hup)))
                (server (start-event-workers 'handle :host (address-host addr)
                                                     :port (address-port addr)
                                                     :workers nworkers :mode :http
                                                     :ev-options '(:max-connections 10000))))
            (when swank (crow.sh:start-swank swank))
            (log-info "listening on http://~a:~d/ with ~d worker~:p"
                      (address-host addr) (event-server-port server) nworkers)
            (let ((ep (epoll-create)) (events (make-epoll-events 1)))
              (epoll-add ep sigfd +epollin+)
              (loop (epoll-wait ep events 1000)
                    (let ((sigs (read-signals)))
                      (when sigs
                        (log-info "~(~{~a~^ ~}~): stopping" sigs)
                        (return))))
              (close-fd ep))
            (log-info "stopped after ~d requests" (stop-event-workers server))
            0))
      (unix-error (e) (log-warn "~a" e) 1)
      (config-error (e) (format *error-output* "~a~%" e) 1))))
