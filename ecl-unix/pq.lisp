;;;; pq.lisp — a small binding to libpq (PostgreSQL's client library): connect, run a
;;;; statement with parameters, results as strings, transactions, errors as conditions.
;;;;
;;;; Loaded as its own ASDF system (crow/pq, linked with -lpq) so only the programs that talk
;;;; to PostgreSQL depend on libpq.  Statements always go through PQexecParams with text
;;;; parameters: values are never spliced into SQL.  A connection belongs to one thread at a
;;;; time (libpq's rule); servers keep one per session thread or a small pool.  The calls block
;;;; the calling thread in C (libpq retries EINTR itself).

(in-package :crow.unix)

(ffi:clines "#include <string.h>" "#include <postgresql/libpq-fe.h>")

(export '(pq-error pq-error-message pq-error-sqlstate pq-error-query
          pq-connection pq-connection-p pq-connect pq-finish with-pq-connection
          pq-connection-ok-p pq-reset pq-exec pq-value pq-rows
          with-pq-transaction pq-call-with-transaction pq-conninfo-escape
          pq-socket pq-notifications))

(define-condition pq-error (crow-error)
  ((message :initarg :message :reader pq-error-message)
   (sqlstate :initarg :sqlstate :initform nil :reader pq-error-sqlstate)
   (query :initarg :query :initform nil :reader pq-error-query))
  (:report (lambda (c s)
             (format s "PostgreSQL~@[ ~a~]: ~a" (pq-error-sqlstate c)
                     (string-right-trim '(#\Newline #\Space) (pq-error-message c)))))
  (:documentation "A PostgreSQL failure: connecting, or a statement the server refused.
SQLSTATE is the five-character code (\"23505\" unique violation, \"40001\" serialization
failure, ...) or NIL when the connection itself failed; MESSAGE libpq's text; QUERY the SQL."))

(defstruct (pq-connection (:constructor %make-pq-connection (pointer conninfo)))
  "An open libpq connection (PGconn).  CONNINFO is what it was opened with."
  pointer conninfo)

(defun %pq-conn (conn)
  (or (pq-connection-pointer conn)
      (error 'pq-error :message "connection is closed")))

(defun %pq-conn-message (p)
  (ffi:c-inline (p) (:pointer-void) :object
    "ecl_make_simple_base_string(PQerrorMessage((PGconn *)#0), -1)" :one-liner t))

(defun pq-connect (conninfo)
  "Opens a connection with the libpq CONNINFO string (\"host=/path/sock user=crow dbname=mail\",
or a postgresql:// URI).  Returns a pq-connection.  Signals pq-error (no SQLSTATE) when the
connection fails; nothing stays open then."
  (let ((ci (string-to-c conninfo)))
    (let ((p (ffi:c-inline (ci) (:object) :pointer-void
               "PQconnectdb((const char *)#0->vector.self.b8)" :one-liner t)))
      (when (ffi:null-pointer-p p)
        (error 'pq-error :message "out of memory"))
      (unless (ffi:c-inline (p) (:pointer-void) :bool
                "PQstatus((PGconn *)#0) == CONNECTION_OK" :one-liner t)
        (let ((m (%pq-conn-message p)))
          (ffi:c-inline (p) (:pointer-void) :void "PQfinish((PGconn *)#0)" :one-liner t)
          (error 'pq-error :message m)))
      (%make-pq-connection p conninfo))))

(defun pq-finish (conn)
  "Closes CONN.  Idempotent.  Returns NIL.  Can't fail."
  (let ((p (pq-connection-pointer conn)))
    (when p
      (setf (pq-connection-pointer conn) nil)
      (ffi:c-inline (p) (:pointer-void) :void "PQfinish((PGconn *)#0)" :one-liner t)))
  nil)

(defmacro with-pq-connection ((var conninfo) &body body)
  "Binds VAR to (pq-connect CONNINFO) around BODY and closes it however BODY exits."
  `(let ((,var (pq-connect ,conninfo)))
     (unwind-protect (progn ,@body)
       (pq-finish ,var))))

(defun pq-connection-ok-p (conn)
  "Returns true when CONN is open and its link to the server is good.  Can't fail."
  (let ((p (pq-connection-pointer conn)))
    (and p (ffi:c-inline (p) (:pointer-void) :bool
             "PQstatus((PGconn *)#0) == CONNECTION_OK" :one-liner t))))

(defun pq-reset (conn)
  "Reconnects CONN with its original parameters (after the server restarted).  Returns CONN.
Signals pq-error when the new connection fails."
  (let ((p (%pq-conn conn)))
    (ffi:c-inline (p) (:pointer-void) :void "PQreset((PGconn *)#0)" :one-liner t)
    (unless (pq-connection-ok-p conn)
      (error 'pq-error :message (%pq-conn-message p))))
  conn)

(defun %pq-param (x)
  "Returns parameter X as NUL-terminated octets for libpq's text format, or NIL (SQL NULL)."
  (etypecase x
    ((member nil :null) nil)
    ((eql t) (string-to-c "t"))
    (integer (string-to-c (princ-to-string x)))
    (string (string-to-c x))
    (octets (let ((v (make-octets (1+ (length x)))))
              (when (find 0 x)
                (error 'pq-error :message "a parameter contains a NUL byte"))
              (replace v x)
              v))))

(defun pq-exec (conn sql &rest params)
  "Runs the statement SQL on CONN with PARAMS bound to $1, $2, ... (strings, integers, T, octet
vectors of UTF-8 text; NIL or :null is SQL NULL).  Returns (values ROWS AFFECTED COLUMNS TAG):
ROWS a list of simple-vectors, one string (NIL for NULL) per column, in the server's text
format (ASCII values are base-strings); AFFECTED the rows the command touched (an integer, or
NIL when the command does not say); COLUMNS the column names; TAG the command tag
(\"INSERT 0 1\", \"COMMIT\", \"ROLLBACK\").  Signals pq-error with the
SQLSTATE when the server refuses the statement, or without one when the connection failed."
  (let* ((p (%pq-conn conn))
         (q (string-to-c sql))
         (ps (map 'simple-vector #'%pq-param params))
         (r (ffi:c-inline (p q ps) (:pointer-void :object :object) :pointer-void
              "{ cl_index n = #2->vector.dim, i; const char *stackv[16]; const char **v = stackv;
                 if (n > 16) v = (const char **)ecl_alloc_atomic(n * sizeof *v);
                 for (i = 0; i < n; i++) { cl_object x = #2->vector.self.t[i];
                   v[i] = x == ECL_NIL ? NULL : (const char *)x->vector.self.b8; }
                 @(return) = PQexecParams((PGconn *)#0, (const char *)#1->vector.self.b8, (int)n,
                                          NULL, v, NULL, NULL, 0); }")))
    (when (ffi:null-pointer-p r)
      (error 'pq-error :message (%pq-conn-message p) :query sql))
    (unwind-protect
         (multiple-value-bind (ok msg state)
             (ffi:c-inline (r) (:pointer-void) (values :bool :object :object)
               "{ PGresult *r = (PGresult *)#0; ExecStatusType st = PQresultStatus(r);
                  int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
                  const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
                  @(return 0) = ok;
                  @(return 1) = ok ? ECL_NIL : ecl_make_simple_base_string(PQresultErrorMessage(r), -1);
                  @(return 2) = (ok || !s) ? ECL_NIL : ecl_make_simple_base_string(s, -1); }")
           (unless ok
             (error 'pq-error :message msg :sqlstate state :query sql))
           (multiple-value-bind (rows affected columns tag)
               (ffi:c-inline (r) (:pointer-void) (values :object :object :object :object)
                 "{ PGresult *r = (PGresult *)#0; int nr = PQntuples(r), nc = PQnfields(r), i, j;
                    cl_object rows = ECL_NIL, cols = ECL_NIL; const char *t = PQcmdTuples(r);
                    for (j = nc - 1; j >= 0; j--)
                      cols = CONS(ecl_make_simple_base_string(PQfname(r, j), -1), cols);
                    for (i = nr - 1; i >= 0; i--) {
                      cl_object row = ecl_alloc_simple_vector(nc, ecl_aet_object);
                      for (j = 0; j < nc; j++) {
                        cl_object cell = ECL_NIL;
                        if (!PQgetisnull(r, i, j)) {
                          const unsigned char *s = (const unsigned char *)PQgetvalue(r, i, j);
                          int len = PQgetlength(r, i, j), k, ascii = 1;
                          for (k = 0; k < len; k++) if (s[k] & 0x80) { ascii = 0; break; }
                          if (ascii) { cell = ecl_alloc_simple_base_string(len); memcpy(cell->base_string.self, s, len); }
                          else { cell = ecl_alloc_simple_vector(len, ecl_aet_b8); memcpy(cell->vector.self.b8, s, len); } }
                        row->vector.self.t[j] = cell; }
                      rows = CONS(row, rows); }
                    @(return 0) = rows;
                    @(return 1) = (t && *t) ? ecl_make_fixnum(atol(t)) : ECL_NIL;
                    @(return 2) = cols;
                    @(return 3) = ecl_make_simple_base_string(PQcmdStatus(r), -1); }")
             ;; Non-ASCII values came back as UTF-8 octets: decode them here, in Lisp.
             (dolist (row rows)
               (dotimes (j (length row))
                 (let ((c (svref row j)))
                   (when (typep c 'octets) (setf (svref row j) (utf8-decode c))))))
             (values rows affected columns tag)))
      (ffi:c-inline (r) (:pointer-void) :void "PQclear((PGresult *)#0)" :one-liner t))))

(defun pq-rows (conn sql &rest params)
  "Returns the rows of (pq-exec CONN SQL PARAMS...) as a list of lists.  Fails as pq-exec."
  (mapcar (lambda (v) (coerce v 'list)) (apply #'pq-exec conn sql params)))

(defun pq-value (conn sql &rest params)
  "Returns the first column of the first row of (pq-exec CONN SQL PARAMS...), NIL when there
is no row (or the value is NULL).  Fails as pq-exec."
  (let ((row (first (apply #'pq-exec conn sql params))))
    (and row (plusp (length row)) (svref row 0))))

(defun pq-call-with-transaction (conn fn)
  "Calls FN inside BEGIN ... COMMIT on CONN and returns its values.  A non-local exit from FN
(an error, a throw) rolls the transaction back (ignoring a failure of the rollback itself: the
connection may be gone).  Signals pq-error when BEGIN or COMMIT fails (the transaction is then
rolled back: COMMIT of a failed transaction reports ROLLBACK, turned into pq-error here)."
  (pq-exec conn "BEGIN")
  (let ((done nil))
    (unwind-protect
         (multiple-value-prog1 (funcall fn)
           (let ((tag (nth-value 3 (pq-exec conn "COMMIT"))))
             (unless (string= tag "COMMIT")
               (error 'pq-error :message (format nil "COMMIT ended as ~a" tag)
                                :query "COMMIT")))
           (setf done t))
      (unless done
        (ignore-errors (pq-exec conn "ROLLBACK"))))))

(defmacro with-pq-transaction ((conn) &body body)
  "Runs BODY in a transaction on CONN: committed when BODY returns, rolled back when it exits
otherwise.  See pq-call-with-transaction."
  `(pq-call-with-transaction ,conn (lambda () ,@body)))

(defun pq-socket (conn)
  "Returns CONN's socket descriptor (to wait for notifications with epoll), owned by libpq:
never close it.  Can't fail (-1 when the connection is down)."
  (let ((p (%pq-conn conn)))
    (ffi:c-inline (p) (:pointer-void) :int "PQsocket((PGconn *)#0)" :one-liner t)))

(defun pq-notifications (conn)
  "Reads what the server sent on CONN without blocking and returns the notifications (LISTEN)
received, oldest first, as a list of (CHANNEL . PAYLOAD).  Signals pq-error when the
connection failed."
  (let ((p (%pq-conn conn)) (out '()))
    (unless (ffi:c-inline (p) (:pointer-void) :bool "PQconsumeInput((PGconn *)#0)" :one-liner t)
      (error 'pq-error :message (%pq-conn-message p)))
    (loop
      (multiple-value-bind (got channel payload)
          (ffi:c-inline (p) (:pointer-void) (values :bool :object :object)
            "{ PGnotify *n = PQnotifies((PGconn *)#0);
               @(return 0) = n != NULL;
               @(return 1) = n ? ecl_make_simple_base_string(n->relname, -1) : ECL_NIL;
               @(return 2) = n ? ecl_make_simple_base_string(n->extra, -1) : ECL_NIL;
               if (n) PQfreemem(n); }")
        (unless got (return (nreverse out)))
        (push (cons channel payload) out)))))

(defun pq-conninfo-escape (value)
  "Returns VALUE quoted for a conninfo string (single quotes, backslash escapes).  Can't fail."
  (with-output-to-string (s)
    (write-char #\' s)
    (loop for c across value
          do (when (member c '(#\' #\\)) (write-char #\\ s))
             (write-char c s))
    (write-char #\' s)))
