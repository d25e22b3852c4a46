;;;; accounts.lisp — mmftpd's accounts file: one line per virtual user,
;;;;   name:hash:home:perms:quota-bytes:quota-files:bandwidth-in:bandwidth-out:max-logins
;;;; (crypt(3) hash; perms letters l list, r download, w upload, o overwrite, d delete,
;;;; n rename, m mkdir/rmdir; sizes with K/M/G, 0 or empty for no limit).  The user
;;;; `anonymous` with an empty hash is the optional anonymous read-only user.

(in-package :crow.ftp)

(defparameter +perm-letters+
  '((#\l . :list) (#\r . :download) (#\w . :upload) (#\o . :overwrite) (#\d . :delete)
    (#\n . :rename) (#\m . :mkdir))
  "Permission letters of the accounts file and what they allow.")

(defstruct account
  "A virtual user: NAME, crypt(3) HASH (\"\" for anonymous), HOME (absolute directory as the
serving process sees it), PERMS (keywords), quotas (0: none), bandwidths (bytes/s, 0: none),
MAX-LOGINS (0: none)."
  name hash home (perms '()) (quota-bytes 0) (quota-files 0) (bandwidth-in 0) (bandwidth-out 0)
  (max-logins 0) anonymous)

(defun %split (string char)
  (loop with start = 0
        for pos = (position char string :start start)
        collect (subseq string start pos)
        while pos do (setf start (1+ pos))))

(defun parse-perms (text)
  "Returns the permission keywords of TEXT (letters lrwodnm, or `all`), or NIL and an error
message for an unknown letter."
  (if (string-equal text "all")
      (mapcar #'cdr +perm-letters+)
      (let ((out '()))
        (loop for c across text
              for p = (cdr (assoc c +perm-letters+))
              do (if p (pushnew p out) (return-from parse-perms (values nil (format nil "unknown permission ~s" c)))))
        (nreverse out))))

(defun perms-string (perms)
  (coerce (loop for (c . p) in +perm-letters+ when (member p perms) collect c) 'string))

(defun %size-field (text what)
  (cond ((string= text "") 0)
        ((parse-size text))
        (t (error "bad ~a ~s" what text))))

(defun parse-account-line (line)
  "Returns the account LINE describes.  Signals simple-error with a message."
  (let ((f (%split line #\:)))
    (when (< (length f) 4) (error "expected name:hash:home:perms[:quota-bytes:quota-files:bandwidth-in:bandwidth-out:max-logins]"))
    (when (> (length f) 9) (error "too many fields"))
    (destructuring-bind (name hash home perms &optional (qb "") (qf "") (bi "") (bo "") (ml "")) f
      (when (or (string= name "") (find #\Space name)) (error "bad user name ~s" name))
      (unless (and (plusp (length home)) (char= (char home 0) #\/))
        (error "home must be an absolute path: ~s" home))
      (multiple-value-bind (p msg) (parse-perms perms)
        (when msg (error msg))
        (let ((anon (and (string= name "anonymous") (string= hash ""))))
          (when (and (string= hash "") (not anon))
            (error "empty password hash (only the user anonymous may have none)"))
          (make-account :name name :hash hash
                        :home (string-right-trim "/" home)
                        ;; anonymous is read-only whatever the file says
                        :perms (if anon (intersection p '(:list :download)) p)
                        :quota-bytes (%size-field qb "quota-bytes")
                        :quota-files (if (string= qf "") 0
                                         (or (ignore-errors (parse-integer qf)) (error "bad quota-files ~s" qf)))
                        :bandwidth-in (%size-field bi "bandwidth-in")
                        :bandwidth-out (%size-field bo "bandwidth-out")
                        :max-logins (if (string= ml "") 0
                                        (or (ignore-errors (parse-integer ml)) (error "bad max-logins ~s" ml)))
                        :anonymous anon))))))

(defun parse-accounts (text &key (file "accounts"))
  "Returns the accounts in TEXT as a list, in file order.  Signals simple-error
`FILE:LINE: message` for the first bad line or a duplicate user."
  (let ((out '()) (n 0))
    (dolist (line (%split text #\Newline))
      (incf n)
      (let ((l (string-trim '(#\Space #\Tab #\Return) line)))
        (unless (or (string= l "") (char= (char l 0) #\#))
          (let ((a (handler-case (parse-account-line l)
                     (error (e) (error "~a:~d: ~a" file n e)))))
            (when (find (account-name a) out :key #'account-name :test #'string=)
              (error "~a:~d: duplicate user ~s" file n (account-name a)))
            (push a out)))))
    (nreverse out)))

(defun read-accounts (path)
  "Returns the accounts of the file PATH (see parse-accounts); a missing file has none.
Signals simple-error or unix-error."
  (if (file-exists-p path)
      (parse-accounts (octets-to-string (read-file-octets path)) :file path)
      '()))

(defun %size-text (n) (if (zerop n) "" (princ-to-string n)))

(defun format-account (a)
  "Returns account A as one accounts-file line (no newline).  Can't fail."
  (format nil "~a:~a:~a:~a:~a:~a:~a:~a:~a" (account-name a) (account-hash a) (account-home a)
          (perms-string (account-perms a)) (%size-text (account-quota-bytes a))
          (%size-text (account-quota-files a)) (%size-text (account-bandwidth-in a))
          (%size-text (account-bandwidth-out a)) (%size-text (account-max-logins a))))

(defun write-accounts (path accounts)
  "Replaces the file PATH with ACCOUNTS atomically (a temporary file renamed over it), mode
0600.  Signals unix-error."
  (let ((tmp (format nil "~a.tmp~d" path (getpid)))
        (text (with-output-to-string (s)
                (format s "# mmftpd accounts: name:hash:home:perms:quota-bytes:quota-files:bandwidth-in:bandwidth-out:max-logins~%")
                (dolist (a accounts) (format s "~a~%" (format-account a))))))
    (with-fd (fd (open-fd tmp :direction :output :if-exists :truncate :mode #o600))
      (write-all fd (utf8-encode text))
      (fsync fd))
    (rename tmp path)))
