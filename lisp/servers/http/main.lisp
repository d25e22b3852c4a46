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
  (embedded :boolean :default "no"
            :doc "Serve the files built into the executable (make site) instead of root's.")
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
  (external-files :boolean :default "yes"
                  :doc "With no, no file is served from disk (embedded vhosts only).")
  (log-pipe :string :validator (lambda (v) (unless (and (plusp (length v)) (char= (char v 0) #\|))
                                              "expected \"|command\""))
            :doc "Access log lines to a command, as \"|command\" (same as access-log \"|command\").")
  (busy-poll :integer :min 0 :max 1000 :default "50"
             :doc "Microseconds a worker keeps polling for new requests after a busy stretch (8 or more events since it last slept) before it sleeps: a client sending its next request within that time finds the worker awake and pays no wake-up.  Light load never polls; 0 turns it off.")
  (keepalive-timeout :duration :min 1 :default "60s"
                     :doc "Idle time allowed between requests on a connection.")
  (linger-max :size :min 0 :default "64M"
              :doc "Most bytes of a refused body read and dropped while a connection lingers.")
  (linger-timeout :duration :min 0 :max 3600000 :default "5s"
                  :doc "How long a connection closing while its client may still be sending reads and drops its input, so the client reads the answer rather than a reset (0: close at once).")
  (mail-conninfo :string
                 :doc "libpq connection string of the mail database for the /mail/ web app (crow.mailweb); unset, /mail/ answers 503.")
  (max-head :size :min 256 :max (* 1024 1024) :default "8K"
            :doc "Largest request head (431 beyond; 414 for a request line alone).")
  (max-headers :integer :min 1 :max 64 :default "64" :doc "Header fields allowed (431 beyond).")
  (mime-types :path :default "/etc/mime.types" :doc "Extension table (type ext ext ...).")
  (request-timeout :duration :min 1 :default "30s"
                   :doc "Time allowed for a request (head and body) to arrive (408); for a multipart body streamed to files, for each pause in it.")
  (upload-dir :path :doc "Directory of the temporary files of multipart uploads (inside the chroot, if any; default /tmp).")
  (upload-max-file :size :min 1 :doc "Largest file part of a multipart upload (413 beyond; default: the vhost's post-max).")
  (upload-max-files :integer :min 1 :max 100000 :default "16" :doc "Most file parts in one multipart upload (413 beyond).")
  (vhost :block :keys *vhost-keys* :doc "A virtual host: vhost NAME { ... }.")
  (write-timeout :duration :min 1 :default "60s"
                 :doc "Time queued output may make no progress before the connection closes."))

;;; The built-in handler

(defvar *hello-count* 0 "Requests /hello answered (the benchmark compares it with wrk's).")
(declaim (type fixnum *hello-count*))
(defparameter *hello-body* (base (format nil "hello~%")))
(defparameter +text-plain+ (base "text/plain"))

(define-handler hello (req)
  (declare (optimize (speed 3) (safety 1) (debug 0))) ; the specials read in place
  (mp:atomic-incf (symbol-value '*hello-count*))
  (respond req *hello-body* :content-type +text-plain+))

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
      (setf *vhosts* vhosts *default-vhost* default *last-host* (cons "" nil))
      (fcache-invalidate))
    problems))

(defun %build-vhosts (cfg root)
  (let ((*vhosts* (make-hash-table :test 'equalp)) (*default-vhost* nil) (problems '()))
    (dolist (b (and cfg (config-blocks cfg :vhost)))
      (let* ((c (cdr b))
             (v (make-vhost :name (car b) :aliases (reduce #'append (config-value c :alias))
                            :root (config-value c :root) :charset (config-value c :charset)
                            :mode (config-value c :mode) :post-max (config-value c :post-max)
                            :listing (config-value c :listing) :index (config-value c :index)
                            :default (config-value c :default)
                            :embedded (config-value c :embedded))))
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

;;; Serving

(defun canned (status &optional (close t))
  "Returns the bytes of a whole small STATUS response without Date (for the C loop's refusal
and timeout replies)."
  (let ((body (error-page status)))
    (utf8-encode (format nil "HTTP/1.1 ~d ~a~c~cServer: Crow/~a~c~cContent-Type: text/html~c~cContent-Length: ~d~c~c~:[~;Connection: close~c~c~]~c~c~a"
                         status (status-reason status) #\Return #\Linefeed *version* #\Return #\Linefeed
                         #\Return #\Linefeed (length body) #\Return #\Linefeed close #\Return #\Linefeed
                         #\Return #\Linefeed body))))

(defun make-admission (cfg)
  "Returns an admission table for CFG's max-per-address and rate-per-address, or NIL when
neither is set."
  (let ((per (config-value cfg :max-per-address))
        (rate (config-value cfg :rate-per-address)))
    (when (or per rate)
      (make-admit :max-connections (config-value cfg :max-connections)
                  :max-per-address (or per 0)
                  :rate-count (if rate (car rate) 0) :rate-period-ms (if rate (cdr rate) 0)))))

(defun ev-options (cfg &optional admit)
  "Returns make-ev-loop's keywords from CFG's limits and timeouts (and the admission table
ADMIT)."
  (let ((post-max (max (* 4 1024 1024)
                       (loop for v being the hash-values of *vhosts* maximize (vhost-post-max v))))
        (post-min (loop for v being the hash-values of *vhosts* minimize (vhost-post-max v))))
    (setf *max-post* post-max)
    (list* :max-connections (config-value cfg :max-connections)
           ;; a body beyond the smallest vhost limit, chunked or awaiting 100 Continue comes
           ;; as a :head unit first, so the request's own vhost limit decides (handle-head)
           :head-first t :head-first-over (min *stream-uploads-over* (or post-min post-max))
           :idle-ms (config-value cfg :keepalive-timeout)
           :head-ms (config-value cfg :request-timeout)
           :write-ms (config-value cfg :write-timeout)
           :max-head (config-value cfg :max-head)
           :max-body post-max
           :linger-ms (config-value cfg :linger-timeout)
           :linger-max (config-value cfg :linger-max)
           :busy-poll-us (config-value cfg :busy-poll)
           :refusal (canned 503) :timeout-reply (canned 408)
           :timeout-started-only t     ; an idle keep-alive connection closes silently
           (and admit (list :admit admit)))))

(defvar *servers* '() "The event-servers started by start-httpd (in a live image).")

(defun start-httpd (cfg &key (workers 1) addresses)
  "Starts WORKERS event workers on each of ADDRESSES (address objects) with CFG's limits, in
this process (for a live image or a test; the program itself runs under crow.server's
privilege separation).  Returns the list of event-servers."
  (setf *max-headers* (config-value cfg :max-headers)
        *start-time* (unix-time))
  (let ((opts (ev-options cfg)))
    (setf *servers*
          (loop for a in addresses
                collect (start-event-workers 'handle :host (address-host a) :port (address-port a)
                                                     :workers workers :mode :http
                                                     :ev-options opts :on-error 'handle-error)))))

(defun stop-httpd ()
  "Stops the servers start-httpd started.  Returns the number of units handled."
  (prog1 (loop for s in *servers* sum (stop-event-workers s))
    (setf *servers* '())))

(defvar *tls-context* nil "The server TLS context for listen-tls listeners (made by the parent).")

(defun configure-tls (config check)
  "Makes the TLS context for CONFIG's listen-tls addresses from tls-cert and tls-key (in the
parent, before any chroot), replacing the previous one.  Signals an error when they are
missing or unusable.  Returns the context or NIL."
  (when (config-value config :listen-tls)
    (let ((cert (config-value config :tls-cert)) (key (config-value config :tls-key)))
      (unless (and cert key) (error "listen-tls needs tls-cert and tls-key"))
      (let ((ctx (make-tls-server-context cert key)))
        (if check
            (progn (free-tls-context ctx) nil)
            (let ((old *tls-context*))
              (setf *tls-context* ctx)
              (when old (free-tls-context old))
              ctx))))))

(defvar *config* nil
  "The configuration being served (set by configure in the parent, inherited by the serving
process), so mounted apps read their own keys from it (crow.mailweb: mail-conninfo).")

(defun configure (config)
  "crow.server's configure step, in the parent after each read of CONFIG: builds the vhosts
\(signals an error listing the problems), loads the TLS certificate, reads the media types and
opens the access log (before any chroot).  Returns NIL."
  (setf *config* config)
  (let* ((root (getf crow.server::*options* :root))
         (problems (configure-vhosts config :root (if (consp root) (car (last root)) root))))
    (when problems (error "~{~a~^; ~}" problems)))
  (setf *external-files* (config-value config :external-files)
        *upload-directory* (or (config-value config :upload-dir) "/tmp/")
        *max-upload-size* (config-value config :upload-max-file)
        *max-uploads* (config-value config :upload-max-files))
  (configure-tls config (getf crow.server::*options* :check))
  (load-mime-types (config-value config :mime-types))
  (unless (getf crow.server::*options* :check)
    (open-access-log (or (config-value config :access-log) (config-value config :log-pipe))))
  (fcache-invalidate)
  nil)

(defun repl ()
  "An ECL REPL on the terminal, in package crow.http.  Returns at end of input."
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

(defun serve (context)
  "crow.server's serve step, in the serving process: event workers on the listeners until
told to stop, then drain.  With --repl a REPL runs on the terminal meanwhile; its end of
input stops the server.  Returns 0."
  (let* ((config (context-config context))
         (nworkers (config-value config :workers))
         (admit (make-admission config))
         (server (progn
                   (setf *max-headers* (config-value config :max-headers)
                         *start-time* (unix-time))
                   (start-event-workers 'handle :listeners (context-listeners context)
                                                :workers nworkers :mode :http
                                                :ev-options (ev-options config admit)
                                                :tls-context *tls-context*
                                                :on-error 'handle-error))))
    (log-info "serving http on ~{~a~^, ~} with ~d worker~:p"
              (mapcar #'listener-description (context-listeners context)) nworkers)
    (when (context-option context :repl)
      (mp:process-run-function "crow-httpd repl"
                               (lambda ()
                                 (repl)
                                 (ignore-errors (kill (getppid) :term)))))
    (wait-for-stop context)
    (drain-event-workers server (shutdown-timeout config))
    (log-info "stopped after ~d requests" (stop-event-workers server))
    (when admit (admit-destroy admit))
    0))

(define-server "crow-httpd"
  :version *version*
  :keys-table *httpd-keys*
  :summary "An HTTP/1.1 server for files and Lisp handlers: each worker thread runs a C epoll
loop that frames requests and calls the Lisp handler CROW.HTTP:HANDLE once per request.
Without a config: 127.0.0.1:8080, one worker, a default vhost with /hello (and ROOT's files
with -r).  --repl gives an ECL REPL on the terminal while serving."
  :options '(("-l" :listen "HOST:PORT" "listen there (replaces the config's listen keys)" :listen)
             ("-t" :workers "WORKERS" "worker threads (replaces the config's workers)" :workers)
             ("-r" :root "ROOT" "without vhosts in the config: serve ROOT's files")
             ("--repl" :repl nil "an ECL REPL on the terminal while serving (with --foreground)"))
  :default-listen "127.0.0.1:8080"
  :framing :http
  :configure 'configure
  :serve 'serve)

;;; Diagnostic handlers (tests and benchmarks route to them from a config)

(define-handler echo (req)
  "Answers with the request's method, path, query, Host, body length and then the body."
  (respond req (list (format nil "~a ~a~%query: ~a~%host: ~a~%length: ~d~%"
                             (request-method req) (request-path req) (request-query-string req)
                             (request-host req) (length (or (request-body req) #())))
                     (or (request-body req) ""))
           :content-type "text/plain; charset=utf-8"))

(define-handler stream-lines (req)
  "Answers with a chunked body of N lines (query n=N, default 3), one chunk each."
  (let* ((q (request-query-string req))
         (n (or (and q (> (length q) 2) (string= "n=" q :end2 2)
                     (parse-integer q :start 2 :junk-allowed t))
                3)))
    (with-chunked-response (s req :content-type "text/plain")
      (dotimes (i (min n 10000))
        (send-chunk s (format nil "line ~d~%" i))))))

(define-handler hello-count (req)
  "Answers with the number of /hello requests answered so far (the benchmark compares it with
wrk's total)."
  (respond req (format nil "~d~%" *hello-count*) :content-type "text/plain"))

(define-handler fail (req)
  "Signals an error before answering (the server must answer 500 and go on serving)."
  (declare (ignore req))
  (error "crow.http:fail was asked to fail"))

(define-handler fail-late (req)
  "Signals an error after a first chunk of a streamed answer (the server must cut it off)."
  (with-chunked-response (s req :content-type "text/plain")
    (send-chunk s (format nil "first chunk~%"))
    (error "crow.http:fail-late was asked to fail")))
