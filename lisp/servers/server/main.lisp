;;;; main.lisp — a server's main in a few lines: define-server / run-server parse the common
;;;; command line, read and check the config, set up logging, the pidfile and signals, then
;;;; hand over to privilege separation (privsep.lisp), which runs the server's body in a child.

(in-package :crow.server)

(defstruct (server-spec (:constructor make-server-spec
                            (&key name version keys summary options default-listen
                                  (framing :raw) configure serve open-listeners release
                                  (listen-keys '(:listen :listen-tls :listen-udp)))))
  "What a server is: NAME (\"crow-appserv\"), VERSION, KEYS (its config key table), SUMMARY
\(text for --help), OPTIONS (its own command-line options, see run-server), DEFAULT-LISTEN
\(an address used when the config names none), FRAMING of its listeners, LISTEN-KEYS (which
listen keys it honours), CONFIGURE (called in the parent with the config after each read:
returns the server's state, or signals an error to refuse the config), SERVE (called in
the serving child with a server-context: serves until wait-for-stop returns, then drains and
returns an exit status) and OPEN-LISTENERS (optional: a function of CONFIG STATE REUSE
returning (values LISTENERS UNUSED) as open-listeners does, for listeners named elsewhere
than the top-level listen keys, as in blocks) and RELEASE (optional: frees a state CONFIGURE
returned, in the parent, once no new child will be forked with it)."
  name version keys summary options default-listen framing configure serve listen-keys
  open-listeners release)

(defstruct (server-context (:conc-name context-))
  "What a serving child gets: the SPEC, the CONFIG, the LISTENERS opened for it, the OPTIONS
given on the command line (a plist keyed by option keyword), the STATE CONFIGURE returned,
its GENERATION (1 at start, +1 per SIGHUP) and CONTROL, the socket to the parent (EOF: stop)."
  spec config listeners options state (generation 1) control stop-reason)

(defun context-option (context key &optional default)
  "Returns the value of command-line option KEY in CONTEXT, or DEFAULT.  Can't fail."
  (getf (context-options context) key default))

(defun shutdown-timeout (config)
  "Returns how long (ms) a stopping server may take to finish its connections: the config's
shutdown-timeout when its table has that key, else 10 s.  Can't fail."
  (or (ignore-errors (config-value config :shutdown-timeout)) 10000))

(defvar *server-spec* nil "The server-spec of the running program.")
(defvar *options* '() "The running program's command-line options (a plist).")
(defvar *foreground* nil "True when --foreground was given.")
(defvar *swank-port* nil "The --swank PORT, or NIL.")
(defvar *config-path* nil "The -f CONFIG path, or NIL.")

(defun %usage (spec stream)
  (format stream "usage: ~a [-f CONFIG] [-n] [--foreground] [--swank PORT] [-d]~{ [~a]~}
       ~a --help | --version~%"
          (server-spec-name spec)
          (loop for (flag nil meta) in (server-spec-options spec)
                collect (if meta (format nil "~a ~a" flag meta) flag))
          (server-spec-name spec))
  (when (server-spec-summary spec)
    (format stream "~a~%" (string-right-trim '(#\Newline) (server-spec-summary spec))))
  (format stream "~%Options:
  -f CONFIG          read the configuration from CONFIG
  -n                 check the configuration (syntax, files, users, handlers) and exit 0/1
  --foreground       stay attached to the terminal and log to stderr
  --swank PORT       start swank on 127.0.0.1:PORT in the serving process (for SLIME)
  -d                 log debugging lines too~%")
  (loop for (flag nil meta doc) in (server-spec-options spec)
        do (format stream "  ~19a~a~%" (if meta (format nil "~a ~a" flag meta) flag) (or doc "")))
  (format stream "~%Signals: SIGHUP re-reads the configuration and replaces the serving process
gracefully; SIGTERM and SIGINT stop accepting, finish open connections, and exit.~%")
  (format stream "~%Configuration keys:~%")
  (describe-config-keys (server-spec-keys spec) stream))

(defun parse-command-line (spec args)
  "Parses ARGS (the arguments after the program name) for SPEC.  Returns a plist: :config,
:check, :foreground, :swank, :debug, :help, :version and each of the server's options (an
option spec is (FLAG KEY [META [DOC [CONFIG-KEY]]]): a META takes a value; CONFIG-KEY names
the config key the value replaces, as `-l ADDR` replaces every `listen`).  Signals
simple-crow-error for an unknown option or a missing value."
  (let ((out '()))
    (flet ((fail (fmt &rest a)
             (error 'simple-crow-error :format-control fmt :format-arguments a)))
      (loop while args
            do (let* ((a (pop args))
                      (own (find a (server-spec-options spec) :key #'first :test #'string=)))
                 (flet ((value ()
                          (if args (pop args) (fail "~a needs a value" a))))
                   (cond ((member a '("-h" "--help") :test #'string=) (setf (getf out :help) t))
                         ((string= a "--version") (setf (getf out :version) t))
                         ((string= a "-f") (setf (getf out :config) (value)))
                         ((string= a "-n") (setf (getf out :check) t))
                         ((string= a "-d") (setf (getf out :debug) t))
                         ((string= a "--foreground") (setf (getf out :foreground) t))
                         ((string= a "--swank")
                          (let ((v (value)))
                            (setf (getf out :swank)
                                  (or (and (every #'digit-char-p v) (plusp (length v))
                                           (< 0 (parse-integer v) 65536) (parse-integer v))
                                      (fail "--swank needs a port, got ~s" v)))))
                         (own (let ((key (second own)))
                                (if (third own)
                                    (setf (getf out key) (append (getf out key) (list (value))))
                                    (setf (getf out key) t))))
                         (t (fail "unknown option ~a (try --help)" a)))))))
    out))

(defun %override-text (spec options)
  "Returns config text for the options that replace config keys."
  (with-output-to-string (s)
    (loop for (flag key meta doc config-key) in (server-spec-options spec)
          do (progn flag meta doc)
          when (and config-key (getf options key))
            do (dolist (v (getf options key))
                 (format s "~(~a~) \"~a\"~%" config-key v)))))

(defun %override (config other)
  "Replaces in CONFIG every key OTHER sets."
  (maphash (lambda (k v) (setf (gethash k (config-entries config)) v))
           (config-entries other))
  config)

(defvar *default-config* nil
  "Text read as the configuration when no -f is given (an executable's embedded one: make
site CONFIG=FILE), or NIL for an empty configuration.")

(defun load-server-config (spec options &key check)
  "Reads the configuration for SPEC: the -f file (or *default-config*, or an empty one), with
the values of options that replace keys.  With CHECK does the -n checks.  Returns the config.
Signals config-error."
  (let* ((path (getf options :config))
         (over (%override-text spec options))
         (config (if path
                     (read-config path (server-spec-keys spec) :check check)
                     (config-from-string (or *default-config* "") (server-spec-keys spec)
                                         :name (if *default-config* "(embedded config)" "(no config)")
                                         :check check))))
    (when (plusp (length over))
      (%override config (config-from-string over (server-spec-keys spec)
                                            :name "command line" :check check)))
    config))

(defun configure-server (spec config)
  "Runs SPEC's configure function on CONFIG.  Returns its state.  An error it signals becomes a
config-error naming the config file."
  (let ((fn (server-spec-configure spec)))
    (when fn
      (handler-case (funcall fn config)
        (config-error (e) (error e))
        (error (e)
          (error 'config-error :file (config-file config) :line nil
                               :message (princ-to-string e)))))))

(defun %debugger-hook (condition hook)
  "No interactive debugger in a server: an error nothing handled (in any thread) is logged and
ends the process with status 70; a serving child is then replaced by its parent."
  (declare (ignore hook))
  (ignore-errors
   (log-warn "unhandled in thread ~a: ~a" (mp:process-name mp:*current-process*) condition))
  (exit-process 70))

(defun release-state (spec state)
  "Calls SPEC's release function on STATE.  Can't fail (errors are logged)."
  (when (server-spec-release spec)
    (handler-case (funcall (server-spec-release spec) state)
      (error (e) (log-warn "release: ~a" e)))))

(defun %log-target (config foreground)
  (multiple-value-bind (target set) (ignore-errors (config-value config :log))
    (cond ((and foreground (not set)) :stderr)
          (target target)
          (foreground :stderr)
          (t :syslog))))

(defun run-server (spec &optional (args (rest (ext:command-args))))
  "The main of a server described by SPEC: parses ARGS (see parse-command-line; --help and
--version answer and return 0), reads the config (errors as `file:line: message` on stderr:
status 1), with -n checks it and the server's configure function and returns 0 or 1; else
sets up logging (stderr with --foreground unless the config says `log`), detaches unless
--foreground, ignores SIGPIPE, writes the pidfile, opens the listeners and runs the server
under privilege separation (run-privsep).  An executable built with an embedded name (make
site NAME=PROG) runs under that name: logs, syslog ident, --help and --version.  Returns the
exit status."
  (let ((own (embedded-name)))
    (when own (setf (server-spec-name spec) own)))
  (let* ((name (server-spec-name spec))
         (options (handler-case (parse-command-line spec args)
                    (crow-error (e)
                      (format *error-output* "~a: ~a~%" name e)
                      (return-from run-server 2)))))
    (setf *server-spec* spec *options* options
          *foreground* (getf options :foreground) *swank-port* (getf options :swank)
          *config-path* (getf options :config) *debug* (getf options :debug)
          *program* name)
    (cond ((getf options :help) (%usage spec *standard-output*) (return-from run-server 0))
          ((getf options :version)
           (format t "~a ~a~%" name (server-spec-version spec)) (return-from run-server 0)))
    (let ((check (getf options :check)) config state)
      (handler-case
          (setf config (load-server-config spec options :check check)
                state (configure-server spec config))
        (config-error (e)
          (format *error-output* "~a~%" e)
          (return-from run-server 1)))
      (when check
        (release-state spec state)
        (format t "~a: configuration ok~%" name)
        (return-from run-server 0))
      (open-log name (%log-target config *foreground*))
      (setf *debugger-hook* #'%debugger-hook)
      (ignore-sigpipe)
      (unless *foreground* (daemonize))
      (run-privsep spec config state options))))

(defmacro define-server (name &rest keys &key version keys-table summary options default-listen
                                              framing configure serve listen-keys open-listeners
                                              release)
  "Defines MAIN in the current package as the entry point of the server NAME (a string):
`(define-server \"crow-foo\" :version V :keys-table *foo-keys* :serve 'serve ...)`; the
keywords are make-server-spec's (KEYS-TABLE for KEYS).  MAIN returns the exit status."
  (declare (ignore version keys-table summary options default-listen framing configure serve
                   listen-keys open-listeners release))
  (let ((args (loop for (k v) on keys by #'cddr
                    append (list (if (eq k :keys-table) :keys k) v)))
        (main (intern "MAIN")))
    `(defun ,main ()
       ,(format nil "~a's entry point.  Returns the exit status." name)
       (run-server (make-server-spec :name ,name ,@args)))))
