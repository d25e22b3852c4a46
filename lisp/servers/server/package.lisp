;;;; package.lisp — the crow.server package: the framework every crow server is built on.

(defpackage :crow.server
  (:use :cl :crow.unix)
  (:export
   ;; conditions
   #:config-error #:config-error-file #:config-error-line #:config-error-list
   #:config-error-message
   ;; configuration files
   #:*common-keys* #:address #:address-family #:address-host #:address-p #:address-path
   #:address-port #:address-string #:check-config #:config #:config-blocks
   #:config-directory #:config-file #:config-from-string #:config-line #:config-p
   #:config-parent #:config-source #:config-value #:define-config-keys
   #:describe-config-keys #:parse-duration #:parse-size #:read-config
   ;; event workers
   #:drain-event-workers #:event-server #:event-server-port #:event-server-stats
   #:start-event-workers #:stop-event-workers
   ;; listeners
   #:close-listener #:listen-specs #:listener #:listener-address #:listener-data
   #:listener-description #:listener-family #:listener-fd #:listener-framing
   #:listener-handler #:listener-key #:listener-kind #:listener-p #:listener-port
   #:listener-tls #:open-listener #:open-listeners
   ;; process pool
   #:pool-call #:pool-stats #:pool-tick #:process-pool #:receive-message #:resident-bytes
   #:send-message #:start-process-pool #:stop-process-pool
   ;; main and privilege separation
   #:*children* #:*foreground* #:*swank-port* #:configure-server #:context-config
   #:context-control #:context-generation #:context-listeners #:context-option
   #:context-options #:context-spec #:context-state #:daemonize #:define-server
   #:drop-privileges #:load-server-config #:make-server-spec #:parse-command-line
   #:run-privsep #:run-server #:server-context #:server-spec #:server-spec-name
   #:server-spec-version #:shutdown-timeout #:spec-open-listeners #:wait-for-stop
   ;; session threads
   #:*session-server* #:session-server #:session-server-port #:session-server-stats
   #:start-session-server #:stop-session-server
   ;; logging
   #:*debug* #:*log-target* #:*program* #:fatal #:log-debug #:log-info #:log-warn #:open-log))
