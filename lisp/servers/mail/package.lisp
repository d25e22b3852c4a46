;;;; package.lisp — the crow.mail package: mmsmtpd and mmpop3d over PostgreSQL + message files.

(defpackage :crow.mail
  (:use :cl :crow.unix :crow.server)
  (:export
   ;; programs
   #:pop3-main #:smtp-main
   ;; store
   #:*store* #:close-store #:deliver #:glob-match-p #:mailbox-messages #:open-store
   #:recover-store #:resolve-address #:store #:store-conninfo #:store-spool
   #:with-store-connection
   ;; SMTP address parsing (for the web interface's validation too)
   #:parse-path))
