;;;; mail.lisp — crow.unix's libpq binding against a private cluster (tools/pg in a temporary
;;;; directory), the maildata bindings, and crow.mail's parsers and filters.

(in-package :crow.test)

(def-suite mail :in crow)
(in-suite mail)

(defun %tools-pg (dir &rest args)
  (multiple-value-bind (out how code)
      (apply #'command-output (namestring (crow-asd:project-path "tools/pg")) "-d" dir args)
    (declare (ignore how))
    (values (string-trim '(#\Newline #\Space) out) code)))

(defmacro with-pq-cluster ((conninfo) &body body)
  "Runs BODY with CONNINFO bound to the database crow of a fresh private cluster, destroyed
afterwards."
  (let ((d (gensym "D")) (dir (gensym "DIR")))
    `(with-temp-dir (,d)
       (let ((,dir (concatenate 'string ,d "pg")))
         (unwind-protect
              (progn
                (%tools-pg ,dir "start")
                (let ((,conninfo (%tools-pg ,dir "conninfo" "crow")))
                  ,@body))
           (%tools-pg ,dir "destroy"))))))

(test pq-exec-params-transactions-errors
  (with-pq-cluster (ci)
    (with-pq-connection (c ci)
      (is (pq-connection-ok-p c))
      (pq-exec c "CREATE TABLE t (id integer PRIMARY KEY, s text, n bigint)")
      (multiple-value-bind (rows affected) (pq-exec c "INSERT INTO t VALUES ($1, $2, $3), ($4, $5, $6)"
                                                    1 "plain" 42 2 (format nil "caf~a ~a" (code-char #xe9) (code-char #x2713))
                                                    nil)
        (is (null rows))
        (is (= 2 affected)))
      (multiple-value-bind (rows affected columns) (pq-exec c "SELECT id, s, n FROM t ORDER BY id")
        (is (= 2 affected))
        (is (equal '("id" "s" "n") columns))
        (is (equalp #("1" "plain" "42") (first rows)))
        (is (equal (format nil "caf~a ~a" (code-char #xe9) (code-char #x2713))
                   (svref (second rows) 1)))
        (is (null (svref (second rows) 2))))
      (is (equal "x'; DROP TABLE t; --" (pq-value c "SELECT $1::text" "x'; DROP TABLE t; --")))
      (is (equal "2" (pq-value c "SELECT count(*) FROM t")))
      (let ((e (handler-case (progn (pq-exec c "INSERT INTO t VALUES (1, 'dup', 0)") nil)
                 (pq-error (e) e))))
        (is (typep e 'pq-error))
        (is (equal "23505" (and e (pq-error-sqlstate e)))))
      (signals pq-error (pq-exec c "SELECT * FROM no_such_table"))
      ;; a rolled-back transaction leaves nothing; a committed one stays
      (ignore-errors (with-pq-transaction (c)
                       (pq-exec c "INSERT INTO t VALUES (3, 'rolled back', 0)")
                       (error "abort")))
      (is (equal "2" (pq-value c "SELECT count(*) FROM t")))
      (with-pq-transaction (c) (pq-exec c "INSERT INTO t VALUES (4, 'kept', 0)"))
      (is (equal "3" (pq-value c "SELECT count(*) FROM t")))
      ;; the connection is usable after an error inside a transaction
      (signals pq-error (with-pq-transaction (c) (pq-exec c "SELECT 1/0")))
      (is (equal "1" (pq-value c "SELECT 1"))))
    (signals pq-error (pq-connect (concatenate 'string ci " dbname=no_such_db")))))

(test maildata-bindings
  (let* ((msg (octets-of (format nil "Subject: a~c~c~c~c.dot~c~cend" #\Return #\Newline
                                 #\Return #\Newline #\Return #\Newline)))
         (info (maildata-scan msg)))
    (is (= 1 (getf info :fields)))
    (is (= 14 (getf info :header-len)))
    (is (equal (quote (:dot-line :no-crlf)) (getf info :flags)))
    (is (equal (format nil "Subject: a~c~c~c~c..dot~c~cend~c~c.~c~c" #\Return #\Newline #\Return
                       #\Newline #\Return #\Newline #\Return #\Newline #\Return #\Newline)
               (octets-to-string (maildata-pop3 msg)))))
  (with-temp-dir (d)
    (let ((final (concatenate 'string d "m1")))
      (maildata-store (concatenate 'string d "tmp1") (list final)
                      (list "Received: x" (octets-of (format nil "~c~cbody" #\Return #\Newline))))
      (is (equal (format nil "Received: x~c~cbody" #\Return #\Newline)
                 (octets-to-string (read-file-octets final))))
      (signals eexist (maildata-store (concatenate 'string d "tmp2") (list final) (list "x"))))))

(test mail-parsers
  (is (crow.mail:glob-match-p "*@spam.example" "bob@SPAM.example"))
  (is (not (crow.mail:glob-match-p "*@spam.example" "bob@spam.example.org")))
  (is (crow.mail:glob-match-p "" "anything"))
  (is (crow.mail:glob-match-p "a?c*" "abcdef"))
  (is (not (crow.mail:glob-match-p "a?c" "ac")))
  (is (equal "demo@crow.test" (crow.mail:parse-path "<demo@crow.test> SIZE=10")))
  (is (equal "SIZE=10" (nth-value 1 (crow.mail:parse-path "<demo@crow.test> SIZE=10"))))
  (is (equal "" (crow.mail:parse-path "<>")))
  (is (eq :source-route (crow.mail:parse-path "<@a,@b:u@c>")))
  (is (eq :quoted (crow.mail:parse-path "<\"a@b\"@c>")))
  (is (eq :bad (crow.mail:parse-path "demo@crow.test")))
  (is (eq :bad (crow.mail:parse-path "<demo@crow.test")))
  (is (equal '("demo" "crow.test")
             (multiple-value-list (crow.mail::split-address "demo@Crow.Test."))))
  (is (crow.mail::domain-syntax-p "client.example"))
  (is (crow.mail::domain-syntax-p "[192.0.2.1]"))
  (is (not (crow.mail::domain-syntax-p "bad_name!@x")))
  (is (not (crow.mail::domain-syntax-p "-x.example")))
  (let* ((m (octets-of (format nil "Subject: one~c~c two~c~cFrom: a@b~c~c~c~cbody"
                               #\Return #\Newline #\Return #\Newline #\Return #\Newline
                               #\Return #\Newline)))
         (fields (crow.mail::parse-header-fields m (getf (maildata-scan m) :header-len))))
    (is (equal '(("subject" . "one two") ("from" . "a@b")) fields))
    (let ((rules (list (crow.mail::make-hfilter nil "subject" (cl-ppcre:create-scanner "ONE\\s+two" :case-insensitive-mode t)
                                                :tag "t")
                       (crow.mail::make-hfilter "other.test" "*" (cl-ppcre:create-scanner "a@b")
                                                :reject ""))))
      (is (eq :tag (crow.mail::header-verdict rules fields '("crow.test"))))
      (is (null (crow.mail::header-verdict (rest rules) fields '("crow.test"))))
      (is (eq :reject (crow.mail::header-verdict (rest rules) fields '("other.test")))))))
