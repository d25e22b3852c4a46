;;;; main.lisp — mmsmtpd's and mmpop3d's mains on crow.server: config, TLS context (opened in
;;;; the parent, before any chroot), the store (opened in the serving process; mmsmtpd runs
;;;; the start-up recovery first), session threads.

(in-package :crow.mail)

(defun configure (config)
  "Checks CONFIG and returns the TLS server context (or NIL without tls-cert/tls-key)."
  (let ((cert (config-value config :tls-cert))
        (key (config-value config :tls-key)))
    (cond ((and cert key) (make-tls-server-context (namestring cert) (namestring key)))
          ((or cert key) (error "tls-cert and tls-key go together"))
          (t nil))))

(defun release (tls)
  (when tls (free-tls-context tls)))

(defun %admit-options (config)
  (let ((per (config-value config :max-per-address))
        (rate (config-value config :rate-per-address)))
    (when (or per rate)
      (append (and per (list :max-per-address per))
              (and rate (list :rate-count (car rate) :rate-period-ms (cdr rate)))))))

(defun serve-with (context handler refusal &key recover watch)
  "The serving process of either server: opens the store (RECOVER, mmsmtpd: run the start-up
recovery first; WATCH: keep the caches' watcher), serves HANDLER on session threads until told to stop, drains.  Returns 0, or 1 when
the store cannot be opened."
  (let* ((config (context-config context))
         (store (handler-case
                    (open-store (config-value config :conninfo)
                                (namestring (config-value config :spool))
                                :fsync (config-value config :fsync)
                                :max-idle (config-value config :db-connections))
                  ((or pq-error unix-error) (e)
                    (log-warn "store: ~a" e)
                    (return-from serve-with 1)))))
    (setf *store* store *config* config *tls* (context-state context))
    (load-settings config)
    (when recover
      (handler-case (recover-store store)
        ((or pq-error unix-error) (e)
          (log-warn "store recovery: ~a" e)
          (return-from serve-with 1))))
    (let* ((watcher (and watch (start-cache-watcher store)))
           (server (start-session-server handler
                                        :listeners (context-listeners context)
                                        :max-sessions (config-value config :max-connections)
                                        :spare-threads (max 2 (config-value config :workers))
                                        :idle-timeout (max 1 (ceiling (config-value config :timeout) 1000))
                                        :bandwidth-in (config-value config :bandwidth-in)
                                        :bandwidth-out (config-value config :bandwidth-out)
                                        :max-line 1000
                                        :bare-lf (not (ignore-errors
                                                       (config-value config :reject-bare-line-ends)))
                                        :tls-context *tls*
                                        :refusal refusal
                                        :admit (%admit-options config))))
      (log-info "serving on ~{~a~^, ~}" (mapcar #'listener-description (context-listeners context)))
      (loop until (wait-for-stop context :timeout-ms 1000))
      (stop-session-server server :timeout (ceiling (shutdown-timeout config) 1000))
      (when watcher (stop-cache-watcher watcher))
      (close-store store)
      0)))

(defun smtp-serve (context)
  (serve-with context 'serve-smtp
              (format nil "421 4.7.0 ~a Too many connections, try later~c~c"
                      (config-value (context-config context) :hostname) #\Return #\Newline)
              ;; Only the first serving process: after SIGHUP the old one may still be between
              ;; linking a file and committing its row.
              :recover (= 1 (context-generation context))
              :watch t))

(defun pop3-serve (context)
  (serve-with context 'serve-pop3
              (format nil "-ERR [SYS/TEMP] Too many connections, try later~c~c" #\Return #\Newline)))

(defun smtp-main ()
  "mmsmtpd's entry point.  Returns the exit status."
  (run-server (make-server-spec
               :name "mmsmtpd" :version *version* :keys *smtp-keys*
               :summary "A non-relaying SMTP server (RFC 5321) delivering to the mailboxes of a
PostgreSQL + message-file store; mmpop3d serves them."
               :listen-keys '(:listen :listen-tls)
               :configure 'configure :release 'release :serve 'smtp-serve)))

(defun pop3-main ()
  "mmpop3d's entry point.  Returns the exit status."
  (run-server (make-server-spec
               :name "mmpop3d" :version *version* :keys *pop3-keys*
               :summary "A POP3 server (RFC 1939, 2449, 2595) for the mailboxes mmsmtpd stores."
               :listen-keys '(:listen :listen-tls)
               :configure 'configure :release 'release :serve 'pop3-serve)))
