;;;; db.lisp — the mail database as the app sees it: a small pool of libpq connections (one per
;;;; worker thread at most, made on first need, dropped when broken), queries with parameters
;;;; returning rows of strings, transactions, and PostgreSQL errors as conditions with their
;;;; SQLSTATE so the pages can turn a unique or foreign-key violation into a form message.

(in-package :crow.mailweb)

(define-condition db-error (error)
  ((sqlstate :initarg :sqlstate :initform nil :reader db-error-sqlstate)
   (message :initarg :message :initform "" :reader db-error-message))
  (:report (lambda (c s) (format s "mail database: ~a~@[ (SQLSTATE ~a)~]"
                                 (db-error-message c) (db-error-sqlstate c))))
  (:documentation "A statement failed; SQLSTATE says why (23505 unique, 23503 foreign key)."))

(define-condition db-unavailable (db-error) ()
  (:documentation "No database: none configured, or it cannot be reached."))

(defun resolve-conninfo-host (info base)
  "Returns the conninfo string INFO with a relative socket directory in host=DIR (one starting
with . or holding a /, so not a host name) made absolute against the directory BASE, as every
relative path in a config resolves against the config file's directory.  Can't fail."
  (let* ((start (search "host=" info))
         (start (and start (or (zerop start) (member (char info (1- start)) '(#\Space #\Tab)))
                     (+ start 5)))
         (end (and start (or (position-if (lambda (c) (member c '(#\Space #\Tab))) info :start start)
                             (length info))))
         (host (and start (subseq info start end))))
    (if (and host base (plusp (length host)) (not (find (char host 0) "/'"))
             (or (char= (char host 0) #\.) (find #\/ host)))
        (concatenate 'string (subseq info 0 start)
                     (string-right-trim "/" base) "/" host
                     (subseq info end))
        info)))

(defun conninfo ()
  "Returns the conninfo string of the mail database (*conninfo*, else crow-httpd's
mail-conninfo key, its relative socket directory resolved against the config file's), or NIL."
  (or *conninfo*
      (let ((info (and *config* (config-value *config* :mail-conninfo))))
        (and info
             (resolve-conninfo-host
              info (let ((path (and crow.server::*config-path* (namestring crow.server::*config-path*))))
                     (and path
                          (let* ((path (if (char= (char path 0) #\/)
                                           path
                                           (concatenate 'string (getcwd) "/" path)))
                                 (slash (position #\/ path :from-end t)))
                            (subseq path 0 (1+ slash))))))))))

(defvar *idle* '() "Idle connections, each (CONNINFO . CONNECTION).")
(defvar *idle-lock* (mp:make-lock :name "crow.mailweb db pool"))
(defparameter +max-idle+ 8 "Idle connections kept; more are closed when returned.")

(defvar *db* nil "The connection the current with-db body uses.")

(defun %take (info)
  (or (mp:with-lock (*idle-lock*)
        (let ((c (find info *idle* :key #'car :test #'string=)))
          (when c (setf *idle* (remove c *idle*)) (cdr c))))
      (handler-case (pq-connect info)
        (error (e)
          (error 'db-unavailable :message (format nil "cannot connect: ~a" e))))))

(defun %give-back (info conn)
  (if (mp:with-lock (*idle-lock*)
        (when (< (length *idle*) +max-idle+)
          (push (cons info conn) *idle*)
          t))
      nil
      (ignore-errors (pq-finish conn))))

(defun call-with-db (fn)
  "Calls FN with a connection bound to *db* (nested calls share it) and returns its values.
The connection goes back to the pool after, unless a db-error left it unusable.  Signals
db-unavailable when no database is configured or reachable, db-error for a failed statement."
  (if *db*
      (funcall fn)
      (let ((info (conninfo)))
        (unless info (error 'db-unavailable :message "no mail-conninfo configured"))
        (let ((conn (%take info)) (ok nil))
          (unwind-protect
               (multiple-value-prog1 (let ((*db* conn)) (funcall fn))
                 (setf ok t))
            (if (or ok (pq-connection-ok-p conn))
                (%give-back info conn)
                (ignore-errors (pq-finish conn))))))))

(defmacro with-db (() &body body)
  `(call-with-db (lambda () ,@body)))

(defun %param (x)
  (cond ((null x) nil)
        ((eq x t) "t")
        ((eq x :false) "f")
        ((stringp x) x)
        ((integerp x) (princ-to-string x))
        (t (princ-to-string x))))

(defun query (sql &rest params)
  "Runs SQL with PARAMS ($1, $2 ...: strings, integers, NIL for NULL, T / :false for booleans)
and returns its rows, each a list of column values as strings (NIL for NULL).  Signals
db-error with the SQLSTATE when the server refuses the statement, db-unavailable when the
connection fails."
  (with-db ()
    (handler-case (apply #'pq-rows *db* sql (mapcar #'%param params))
      (pq-error (e)
        (error (if (pq-error-sqlstate e) 'db-error 'db-unavailable)
               :sqlstate (pq-error-sqlstate e)
               :message (string-right-trim '(#\Newline #\Space) (pq-error-message e)))))))

(defun query-row (sql &rest params)
  "The first row of (query SQL PARAMS...), or NIL."
  (first (apply #'query sql params)))

(defun query-value (sql &rest params)
  "The first column of the first row of (query SQL PARAMS...), or NIL."
  (first (apply #'query-row sql params)))

(defun db-true-p (s)
  "True for PostgreSQL's text form of boolean true."
  (and s (string= s "t")))

(defun db-integer (s)
  "The integer S (a column's text) stands for, or NIL."
  (and s (parse-integer s :junk-allowed t)))

(defun call-with-transaction (fn)
  (with-db ()
    (query "BEGIN")
    (let ((ok nil))
      (unwind-protect (multiple-value-prog1 (funcall fn) (query "COMMIT") (setf ok t))
        (unless ok (ignore-errors (query "ROLLBACK")))))))

(defmacro with-transaction (() &body body)
  "Runs BODY in one transaction on the current connection: committed when it returns, rolled
back when it exits by an error or a throw."
  `(call-with-transaction (lambda () ,@body)))
