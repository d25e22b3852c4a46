;;;; pq-glue.lisp — the four libpq operations db.lisp needs, over crow.unix's PostgreSQL
;;;; binding (ecl-unix/pq.lisp): connect, run a statement with parameters, check a
;;;; connection, close it.

(in-package :crow.mailweb)

(defun pq-connect (info)
  "Returns a new connection to the database INFO names.  Signals an error if it fails."
  (declare (ignore info))
  (error "crow.mailweb: no PostgreSQL binding in this build"))

(defun pq-rows (conn sql params)
  "Runs SQL with PARAMS on CONN; returns the rows as lists of strings (NIL for NULL).  Signals
db-error with the SQLSTATE when the statement fails."
  (declare (ignore conn sql params))
  (error 'db-unavailable :message "no PostgreSQL binding in this build"))

(defun pq-usable-p (conn)
  "True when CONN is still connected and idle (not inside a failed transaction)."
  (declare (ignore conn))
  nil)

(defun pq-finish (conn)
  "Closes CONN.  Returns NIL."
  (declare (ignore conn))
  nil)
