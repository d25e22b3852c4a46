;;;; package.lisp — crow.mailweb: the mail web interface mounted at /mail/ on crow-httpd (users
;;;; manage their envelope filters and see their mailbox usage; an administrator manages
;;;; domains, users, mailboxes, aliases and header filter rules).

(defpackage :crow.mailweb
  (:use :cl :crow.unix :crow.server :crow.http :crow.web)
  (:export
   ;; the app (app.lisp)
   #:*mount* #:app
   ;; the database (db.lisp)
   #:*conninfo* #:db-error #:db-unavailable
   ;; CSRF tokens and logins (auth.lisp)
   #:csrf-token #:csrf-valid-p
   ;; validation (validate.lisp)
   #:check-value #:field-error #:validating))
