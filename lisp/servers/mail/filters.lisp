;;;; filters.lisp — mmsmtpd's policy from the database and memory: envelope filters (per user,
;;;; globs), header filter rules (regular expressions through cl-ppcre), greylisting triplets,
;;;; and the per-address message rate.

(in-package :crow.mail)

;;; Globs: '*' any run, '?' one character, case-insensitive; "" matches everything.

(defun glob-match-p (pattern string)
  "Returns true when STRING matches the shell-style PATTERN ('*' any run, '?' any one
character, case-insensitive; an empty pattern matches everything).  Can't fail."
  (let ((p (string-downcase pattern)) (s (string-downcase string)))
    (when (zerop (length p)) (return-from glob-match-p t))
    ;; Iterative matcher with one backtrack point (linear in practice, no recursion).
    (let ((pj 0) (si 0) (star nil) (mark 0) (np (length p)) (ns (length s)))
      (loop
        (cond ((< si ns)
               (cond ((and (< pj np) (or (char= (char p pj) #\?) (char= (char p pj) (char s si))))
                      (incf pj) (incf si))
                     ((and (< pj np) (char= (char p pj) #\*))
                      (setf star pj mark si) (incf pj))
                     (star (setf pj (1+ star) mark (1+ mark) si mark))
                     (t (return nil))))
              (t (loop while (and (< pj np) (char= (char p pj) #\*)) do (incf pj))
                 (return (= pj np))))))))

(defun envelope-verdict (conn user sender recipient)
  "Returns :accept, :reject or :discard for a message from SENDER (\"\" for <>) to RECIPIENT
by USER's envelope filters (the first match by priority; none: :accept).  Signals pq-error."
  (dolist (row (pq-exec conn "SELECT sender_pattern, recipient_pattern, action FROM envelope_filters
                              WHERE user_id = $1 ORDER BY priority, id" user)
               :accept)
    (when (and (glob-match-p (svref row 0) sender) (glob-match-p (svref row 1) recipient))
      (return (intern (string-upcase (svref row 2)) :keyword)))))

;;; Header filter rules

(defstruct (hfilter (:constructor make-hfilter (domain header scanner action tag)))
  domain header scanner action tag)

(defvar *hfilters* '() "The cached header filter rules (hfilter structs, in order).")
(defvar *hfilters-time* 0 "When *hfilters* was loaded (internal real time), 0: never.")
(defvar *hfilters-lock* (mp:make-lock :name "crow.mail header filters"))

(defun load-header-filters (conn)
  "Returns the active header filter rules, compiled.  A rule whose regex does not compile is
logged and skipped.  Signals pq-error."
  (loop for row in (pq-exec conn "SELECT d.name, f.header, f.regex, f.action, f.tag
                                  FROM header_filters f LEFT JOIN domains d ON d.id = f.domain_id
                                  WHERE f.active ORDER BY f.priority, f.id")
        for scanner = (handler-case (cl-ppcre:create-scanner (svref row 2) :case-insensitive-mode t)
                        (error (e) (log-warn "header filter ~s: ~a" (svref row 2) e) nil))
        when scanner
          collect (make-hfilter (svref row 0) (string-downcase (svref row 1)) scanner
                                (intern (string-upcase (svref row 3)) :keyword) (svref row 4))))

(defun forget-header-filters ()
  "Makes the next header-filters call reload the rules.  Can't fail."
  (mp:with-lock (*hfilters-lock*) (setf *hfilters-time* 0)))

(pushnew 'forget-header-filters *cache-hooks*)

(defun header-filters (conn cache-ms)
  "Returns the header filter rules, reloaded when older than CACHE-MS (or the cache watcher
is not connected).  Signals pq-error."
  (let ((now (get-internal-real-time)))
    (mp:with-lock (*hfilters-lock*)
      (when (or (zerop *hfilters-time*) (not *cache-valid*)
                (> (- now *hfilters-time*) (* cache-ms (/ internal-time-units-per-second 1000))))
        (setf *hfilters* (load-header-filters conn) *hfilters-time* (max 1 now)))
      *hfilters*)))

(defun parse-header-fields (message header-len)
  "Returns the header fields of MESSAGE's first HEADER-LEN bytes as a list of (name . value),
names downcased, folded lines joined, values decoded as UTF-8.  Can't fail."
  (let ((text (octets-to-string message :end header-len))
        (fields '()))
    (with-input-from-string (in text)
      (loop for line = (read-line in nil)
            while line
            do (let ((l (string-right-trim '(#\Return) line)))
                 (cond ((zerop (length l)) (return))
                       ((and fields (member (char l 0) '(#\Space #\Tab)))
                        (setf (cdr (first fields)) (concatenate 'string (cdr (first fields)) " "
                                                                (string-trim " 	" l))))
                       (t (let ((colon (position #\: l)))
                            (when colon
                              (push (cons (string-downcase (subseq l 0 colon))
                                          (string-trim " 	" (subseq l (1+ colon))))
                                    fields))))))))
    (nreverse fields)))

(defun header-verdict (filters fields domains)
  "Returns (values ACTION TAG) of the first rule of FILTERS matching one of FIELDS for a
message to DOMAINS (a list of domain names): :reject, :discard or :tag, or NIL.  Can't fail."
  (dolist (f filters nil)
    (when (or (null (hfilter-domain f)) (member (hfilter-domain f) domains :test #'string-equal))
      (dolist (field fields)
        (when (and (or (string= (hfilter-header f) "*") (string= (hfilter-header f) (car field)))
                   (cl-ppcre:scan (hfilter-scanner f) (cdr field)))
          (return-from header-verdict (values (hfilter-action f) (hfilter-tag f))))))))

;;; Greylisting

(defun greylist-pass-p (conn client sender recipient delay-ms)
  "Records the triplet (CLIENT, SENDER, RECIPIENT) and returns true when it may pass: it
passed before, or it was first seen at least DELAY-MS ago.  Signals pq-error."
  (let ((row (first (pq-exec conn "INSERT INTO greylist (client, sender, recipient) VALUES ($1, $2, $3)
        ON CONFLICT (client, sender, recipient) DO UPDATE
          SET last_seen = now(), attempts = greylist.attempts + 1,
              passed = greylist.passed OR greylist.first_seen <= now() - make_interval(secs => $4::double precision / 1000)
        RETURNING passed OR (first_seen <= now() - make_interval(secs => $4::double precision / 1000) AND attempts > 1)"
                             client sender recipient delay-ms))))
    (and row (equal (svref row 0) "t"))))

;;; Per-address message rate (this process's memory)

(defvar *rates* (make-hash-table :test 'equal) "Client address -> (window-start-ms . count).")
(defvar *rates-lock* (mp:make-lock :name "crow.mail rates"))

(defun rate-allow-p (address limit)
  "Counts one message from ADDRESS against LIMIT, a (COUNT . PERIOD-MS) pair; returns NIL when
ADDRESS is over it.  Can't fail."
  (destructuring-bind (count . period) limit
    (let ((now (floor (monotonic-ns) 1000000)))
      (mp:with-lock (*rates-lock*)
        (when (> (hash-table-count *rates*) 100000)
          (clrhash *rates*))
        (let ((e (gethash address *rates*)))
          (when (or (null e) (>= (- now (car e)) period))
            (setf e (cons now 0) (gethash address *rates*) e))
          (when (< (cdr e) count)
            (incf (cdr e))
            t))))))
