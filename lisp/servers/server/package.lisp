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
   #:event-server #:event-server-port #:event-server-stats #:start-event-workers
   #:stop-event-workers
   ;; logging
   #:*debug* #:*log-target* #:*program* #:fatal #:log-debug #:log-info #:log-warn #:open-log))
