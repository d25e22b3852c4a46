;;;; main.lisp — crow-httpd's configuration keys, the built-in /hello handler, starting and
;;;; stopping the event workers, and the command line.

(in-package :crow.http)

(defun %route-check (words)
  (unless (and (<= 2 (length words) 4) (char= (char (first words) 0) #\/)
               (position #\: (second words)))
    "expected route /PATH PACKAGE:SYMBOL [exact] [METHOD,...]"))

(define-config-keys *vhost-keys*
  (alias :list :repeatable t :doc "Other names of this vhost (matched case-insensitively).")
  (charset :string :default "utf-8" :doc "Charset announced for text files and pages.")
  (default :boolean :default "no" :doc "Answer requests whose Host matches no vhost.")
  (index :list :default "index.html" :doc "Index file names tried for a directory.")
  (listing :boolean :default "no" :doc "List directories without an index file.")
  (mode :enum :values '(:static :static+dynamic :dynamic) :default "static+dynamic"
        :doc "Files only, routes then files, or routes only.")
  (post-max :size :default "4M" :doc "Largest request body (413 beyond).")
  (root :path :exists :directory :doc "Document root (files are served from it).")
  (route :list :repeatable t :validator #'%route-check
         :doc "route /PREFIX PACKAGE:SYMBOL [exact] [GET,POST,...]: a Lisp handler."))

(define-config-keys *httpd-keys*
  (:include *common-keys*)
  (access-log :string :doc "Access log (combined format): a file, syslog, or \"|command\".")
  (keepalive-timeout :duration :min 1 :default "60s"
                     :doc "Idle time allowed between requests on a connection.")
  (max-head :size :min 256 :max (* 1024 1024) :default "8K"
            :doc "Largest request head (431 beyond; 414 for a request line alone).")
  (max-headers :integer :min 1 :max 64 :default "64" :doc "Header fields allowed (431 beyond).")
  (mime-types :path :default "/etc/mime.types" :doc "Extension table (type ext ext ...).")
  (request-timeout :duration :min 1 :default "30s"
                   :doc "Time allowed for a request (head and body) to arrive (408).")
  (vhost :block :keys *vhost-keys* :doc "A virtual host: vhost NAME { ... }.")
  (write-timeout :duration :min 1 :default "60s"
                 :doc "Time queued output may make no progress before the connection closes."))

;;; The built-in handler

(defvar *hello-count* 0 "Requests /hello answered (the benchmark compares it with wrk's).")
(declaim (type fixnum *hello-count*))
(defparameter *hello-body* (base (format nil "hello~%")))

(define-handler hello (req)
  (mp:atomic-incf (symbol-value '*hello-count*))
  (respond req *hello-body* :content-type "text/plain"))

;;; Configuration

(defun resolve-handler (designator)
  "Returns the symbol PACKAGE:NAME names (interned, so the function may be defined later), or
NIL when the package does not exist."
  (let* ((colon (position #\: designator))
         (pkg (find-package (string-upcase (subseq designator 0 colon)))))
    (and pkg (intern (string-upcase (string-left-trim ":" (subseq designator colon))) pkg))))

(defun configure-vhosts (cfg &key root)
  "Builds the vhost table from CFG's vhost blocks (or one default vhost serving ROOT) and
installs it.  Returns the list of problems (strings); the table is installed only when
there are none."
  (multiple-value-bind (vhosts default problems) (%build-vhosts cfg root)
    (unless problems
      (setf *vhosts* vhosts *default-vhost* default))
    problems))

(defun %build-vhosts (cfg root)
  (let ((*vhosts* (make-hash-table :test 'equalp)) (*default-vhost* nil) (problems '()))
    (dolist (b (and cfg (config-blocks cfg :vhost)))
      (let* ((c (cdr b))
             (v (make-vhost :name (car b) :aliases (reduce #'append (config-value c :alias))
                            :root (config-value c :root) :charset (config-value c :charset)
                            :mode (config-value c :mode) :post-max (config-value c :post-max)
                            :listing (config-value c :listing) :index (config-value c :index)
                            :default (config-value c :default))))
        (when (and (vhost-root v) (null (vhost-real-root v)))
          (push (format nil "vhost ~a: root ~a cannot be resolved" (car b) (vhost-root v)) problems))
        (register-vhost v)
        (dolist (r (config-value c :route))
          (let ((sym (resolve-handler (second r)))
                (exact (member "exact" (cddr r) :test #'string-equal))
                (methods (let ((m (find-if (lambda (w) (string/= w "exact")) (cddr r))))
                           (and m (mapcar (lambda (x) (intern (string-upcase x) :keyword))
                                          (split-on #\, m))))))
            (if sym
                (add-route (car b) (first r) sym :methods methods :exact exact)
                (push (format nil "vhost ~a: route ~a: no package for ~a" (car b) (first r) (second r))
                      problems))))))
    (unless *default-vhost*
      (let ((v (register-vhost (make-vhost :name "default" :root root :listing t :default t))))
        (add-route nil "/hello" 'hello :exact t)
        (when (and root (null (vhost-real-root v)))
          (push (format nil "root ~a cannot be resolved" root) problems))))
    (values *vhosts* *default-vhost* (nreverse problems))))

(defun canned (status &optional (close t))
  "Returns the bytes of a whole small STATUS response without Date (for the C loop's refusal
and timeout replies)."
  (let ((body (error-page status)))
    (utf8-encode (format nil "HTTP/1.1 ~d ~a~c~cServer: Crow/~a~c~cContent-Type: text/html~c~cContent-Length: ~d~c~c~:[~;Connection: close~c~c~]~c~c~a"
                         status (status-reason status) #\Return #\Linefeed *version* #\Return #\Linefeed
                         #\Return #\Linefeed (length body) #\Return #\Linefeed close #\Return #\Linefeed
                         #\Return #\Linefeed body))))

(defun ev-options (cfg)
  "Returns make-ev-loop's keywords from CFG's limits and timeouts."
  (let ((post-max (max (* 4 1024 1024)
                       (loop for v being the hash-values of *vhosts* maximize (vhost-post-max v)))))
    (list :max-connections (config-value cfg :max-connections)
          :idle-ms (config-value cfg :keepalive-timeout)
          :head-ms (config-value cfg :request-timeout)
          :write-ms (config-value cfg :write-timeout)
          :max-head (config-value cfg :max-head)
          :max-body post-max
          :refusal (canned 503) :timeout-reply (canned 408))))

(defvar *servers* '() "The running event-servers (one per listen address).")

(defun start-httpd (cfg &key (workers 1) addresses)
  "Starts WORKERS event workers on each of ADDRESSES (address objects).  Returns the list of
event-servers."
  (setf *max-headers* (config-value cfg :max-headers)
        *start-time* (unix-time))
  (let ((opts (ev-options cfg)))
    (setf *servers*
          (loop for a in addresses
                collect (start-event-workers 'handle :host (address-host a) :port (address-port a)
                                                     :workers workers :mode :http
                                                     :ev-options opts)))))

(defun stop-httpd ()
  "Stops every server.  Returns the number of units handled."
  (prog1 (loop for s in *servers* sum (stop-event-workers s))
    (setf *servers* '())))

;;; The command line

(defun usage (s)
  (format s "usage: crow-httpd [-f CONFIG] [-n] [-l HOST:PORT] [-t WORKERS] [-r ROOT]
                  [--foreground] [--swank PORT] [--repl]
       crow-httpd --help | --version
An HTTP/1.1 server for files and Lisp handlers: each worker thread runs a C epoll loop that
frames requests and calls the Lisp handler CROW.HTTP:HANDLE once per request.  Without a
config: 127.0.0.1:8080, one worker, a default vhost with /hello (and ROOT's files with -r).
--repl gives an ECL REPL on the terminal while serving; --swank PORT starts swank on
127.0.0.1.  SIGTERM/SIGINT stop it; SIGHUP re-reads the vhosts and reopens the access log.

Configuration keys:~%")
  (describe-config-keys *httpd-keys* s))

(defun repl ()
  (let ((*package* (find-package :crow.http)))
    (format t "crow-httpd ~a on ECL ~a: serving; Ctrl-D stops.~%" *version*
            (lisp-implementation-version))
    (loop
      (format t "~&~a> " (package-name *package*))
      (finish-output)
      (let ((form (handler-case (read *standard-input* nil '%eof)
                    (error (e) (format t "~&read error: ~a~%" e) (clear-input) nil))))
        (when (eq form '%eof) (terpri) (return))
        (handler-case (format t "~{~s~^~%~}~%" (multiple-value-list (eval form)))
          (error (e) (format t "~&error: ~a~%" e)))))))

(defun wait-for-signals (sigfd reload)
  "Waits until SIGTERM or SIGINT; calls RELOAD on SIGHUP.  Returns the stopping signal."
  (let ((ep (epoll-create)) (events (make-epoll-events 1)))
    (epoll-add ep sigfd +epollin+)
    (unwind-protect
         (loop (epoll-wait ep events 1000)
               (dolist (s (read-signals))
                 (if (eq s :hup)
                     (funcall reload)
                     (return-from wait-for-signals s))))
      (close-fd ep))))

(defun main ()
  "crow-httpd's entry point.  Returns the exit status."
  (let ((args (rest (ext:command-args))) config check listen workers swank repl root)
    (flet ((need (opt) (or (second args)
                           (progn (format *error-output* "crow-httpd: ~a needs a value~%" opt)
                                  (return-from main 2)))))
      (loop while args
            do (let ((a (first args)))
                 (cond ((member a '("-h" "--help") :test #'string=)
                        (usage *standard-output*) (return-from main 0))
                       ((string= a "--version")
                        (format t "crow-httpd ~a~%" *version*) (return-from main 0))
                       ((string= a "-f") (setf config (need a) args (cddr args)))
                       ((string= a "-l") (push (need a) listen) (setf args (cddr args)))
                       ((string= a "-r") (setf root (need a) args (cddr args)))
                       ((string= a "-t") (setf workers (parse-integer (need a)) args (cddr args)))
                       ((string= a "--swank") (setf swank (parse-integer (need a)) args (cddr args)))
                       ((string= a "--repl") (setf repl t args (cdr args)))
                       ((string= a "-n") (setf check t args (cdr args)))
                       ((string= a "--foreground") (setf args (cdr args)))
                       (t (format *error-output* "crow-httpd: unknown option ~a~%" a)
                          (return-from main 2))))))
    (open-log "crow-httpd" :stderr)
    (handler-case
        (let* ((cfg (if config
                        (read-config config *httpd-keys* :check check)
                        (config-from-string "" *httpd-keys* :name "command line")))
               (addrs (mapcar (lambda (l) (first (config-value (config-from-string
                                                                (format nil "listen ~a~%" l)
                                                                *httpd-keys*) :listen)))
                              (reverse listen)))
               (addrs (or addrs (config-value cfg :listen)
                          (config-value (config-from-string "listen 127.0.0.1:8080" *httpd-keys*)
                                        :listen)))
               (nworkers (or workers (config-value cfg :workers) 1))
               (problems (configure-vhosts (and config cfg) :root root)))
          (when problems
            (format *error-output* "~{crow-httpd: ~a~%~}" problems)
            (return-from main 1))
          (when check
            (format t "crow-httpd: configuration ok~%")
            (return-from main 0))
          (load-mime-types (config-value cfg :mime-types))
          (open-access-log (config-value cfg :access-log))
          (ignore-sigpipe)
          (let ((sigfd (watch-signals '(:term :int :hup))))
            (start-httpd cfg :workers nworkers :addresses addrs)
            (when swank (crow.sh:start-swank swank))
            (loop for s in *servers* for a in addrs
                  do (log-info "listening on http://~a:~d/ with ~d worker~:p"
                               (if (eq (address-family a) :inet6)
                                   (format nil "[~a]" (address-host a))
                                   (address-host a))
                               (event-server-port s) nworkers))
            (flet ((reload ()
                     (handler-case
                         (let* ((cfg (if config (read-config config *httpd-keys*) cfg))
                                (p (configure-vhosts (and config cfg) :root root)))
                           (open-access-log (config-value cfg :access-log))
                           (if p
                               (log-warn "reload refused: ~{~a~^; ~}" p)
                               (log-info "configuration reloaded")))
                       (error (e) (log-warn "reload refused: ~a" e)))))
              (if repl
                  (progn
                    (mp:process-run-function
                     "crow-httpd signals"
                     (lambda ()
                       (let ((s (wait-for-signals sigfd #'reload)))
                         (log-info "~(~a~): stopping" s)
                         (log-info "stopped after ~d requests" (stop-httpd))
                         (close-access-log)
                         (finish-output *error-output*)
                         (exit-process 0))))
                    (repl))
                  (log-info "~(~a~): stopping" (wait-for-signals sigfd #'reload))))
            (log-info "stopped after ~d requests" (stop-httpd))
            (close-access-log)
            0))
      (unix-error (e) (log-warn "~a" e) 1)
      (config-error (e) (format *error-output* "~a~%" e) 1))))
