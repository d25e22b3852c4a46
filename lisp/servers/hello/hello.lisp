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

(defun serve (context)
  "Serves HTTP on the context's listeners with the configured number of event workers until
told to stop, then drains.  Returns 0."
  (let* ((config (context-config context))
         (nworkers (config-value config :workers))
         (server (start-event-workers 'handle :listeners (context-listeners context)
                                              :workers nworkers :mode :http
                                              :ev-options '(:max-connections 10000))))
    (log-info "serving http on ~{~a~^, ~} with ~d worker~:p"
              (mapcar #'listener-description (context-listeners context)) nworkers)
    (wait-for-stop context)
    (drain-event-workers server (shutdown-timeout config))
    (log-info "stopped after ~d requests" (stop-event-workers server))
    0))

(define-server "crow-hello"
  :version *version*
  :keys-table *hello-keys*
  :summary "An HTTP/1.1 hello-world on crow.server's event workers: each worker thread runs a C
epoll loop over the shared listeners and calls the Lisp handler CROW.HELLO:HANDLE once per
request.  Default: 127.0.0.1:8080, 1 worker."
  :options '(("-l" :listen "HOST:PORT" "listen there (replaces the config's listen keys)" :listen)
             ("-t" :workers "WORKERS" "worker threads (replaces the config's workers)" :workers))
  :default-listen "127.0.0.1:8080"
  :framing :http
  :serve 'serve)
