;;;; session.lisp — one FTP control connection, served in its own thread (crow.server's
;;;; session model): the server's and the session's state, replies, the user's path helpers,
;;;; per-user counts, login (USER/PASS), AUTH TLS/PBSZ/PROT, the small commands (TYPE, FEAT,
;;;; OPTS, STAT), the command table and the command loop.  The path commands are in files.lisp,
;;;; the data connections and transfers in transfer.lisp.

(in-package :crow.ftp)

;;; Server-wide state, made by configure (parent) and completed by serve (child).

(defstruct ftp-state
  "What every session shares: the ACCOUNTS (name -> account), the GREETING and MOTD replies,
the TLS-CONTEXT (NIL: no AUTH TLS), the DUMMY-HASH checked for unknown users, and the
config's values."
  (accounts (make-hash-table :test 'equal)) greeting motd tls-context dummy-hash
  (pasv-low 0) (pasv-high 0) pasv-address (login-delay 1000) (login-failures 3)
  (transfer-timeout 300) (idle-timeout 300) (umask #o022) fsync require-tls
  (bandwidth-in 0) (bandwidth-out 0) auth-cache
  (users (make-hash-table :test 'equal)) (users-lock (mp:make-lock :name "mmftpd users")))

(defvar *state* nil "The ftp-state of the serving process.")

(defstruct user-state
  "Per user, shared by that user's sessions: LOGINS now, bytes and files USED (counted at the
first login, then kept up to date), the bandwidth buckets shared by their data connections."
  (logins 0) (used-bytes 0) (used-files 0) share-in share-out (lock (mp:make-lock :name "mmftpd user")))

;;; A session

(defstruct (ftp (:constructor %make-ftp (session)))
  session user account ustate home (cwd "/") (type :ascii) (rest 0) rnfr
  pasv-fd port-host port-port epsv-all prot-p pbsz (failures 0)
  (facts (list :type :size :modify :perm :unique)))

(define-condition ftp-reply (error)
  ((code :initarg :code :reader ftp-reply-code)
   (text :initarg :text :reader ftp-reply-text))
  (:report (lambda (c s) (format s "~d ~a" (ftp-reply-code c) (ftp-reply-text c)))))

(defun fail (code fmt &rest args)
  "Ends the current command with reply CODE.  Does not return."
  (error 'ftp-reply :code code :text (apply #'format nil fmt args)))

(defun quit-session ()
  "Ends the session once its last reply is written: throws to handle-session (no condition:
making one costs a new session thread ~10% of its login's CPU in CLOS dispatch caches).
Does not return."
  (throw 'ftp-quit nil))

(defun %reply-line (code text)
  "CODE (100-599), a space, TEXT and CRLF, as one string."
  (let* ((n (length text))
         (s (make-string (+ n 6) :element-type (if (typep text 'base-string) 'base-char 'character))))
    (setf (char s 0) (code-char (+ 48 (floor code 100)))
          (char s 1) (code-char (+ 48 (mod (floor code 10) 10)))
          (char s 2) (code-char (+ 48 (mod code 10)))
          (char s 3) #\Space)
    (replace s text :start1 4)
    (setf (char s (+ n 4)) #\Return (char s (+ n 5)) #\Linefeed)
    s))

(defun reply (ftp code fmt &rest args)
  "Writes the one-line reply CODE text (FMT and ARGS as for format; a FMT without arguments
and without a tilde is the text itself).  Signals session errors."
  (session-write (ftp-session ftp)
                 (%reply-line code (if (or args (find #\~ fmt)) (apply #'format nil fmt args) fmt))))

(defun reply-lines (ftp code lines last)
  "Writes a multi-line reply: CODE-first line, the other LINES (each starting with a space,
RFC 959 4.2), then CODE LAST."
  (session-write (ftp-session ftp)
                 (with-output-to-string (s)
                   (loop for l in lines for first = t then nil
                         do (if first
                                (format s "~d-~a~c~c" code l #\Return #\Linefeed)
                                (format s " ~a~c~c" l #\Return #\Linefeed)))
                   (format s "~d ~a~c~c" code last #\Return #\Linefeed))))

(defun quote-path (p)
  "P with each double quote doubled (RFC 959 257 replies)."
  (with-output-to-string (s)
    (loop for c across p do (write-char c s) (when (char= c #\") (write-char c s)))))

;;; Paths of the logged-in user

(defun vpath (ftp arg)
  (or (normalize-path (ftp-cwd ftp) arg) (fail 553 "Bad file name.")))

(defun existing (ftp vp)
  (multiple-value-bind (p why) (resolve-existing (ftp-home ftp) vp)
    (or p (fail 550 "~a: ~:[No such file or directory~;Permission denied~]." vp (eq why :outside)))))

(defun creatable (ftp vp)
  (multiple-value-bind (p why) (resolve-new (ftp-home ftp) vp)
    (or p (fail (if (eq why :missing) 550 553) "~a: ~:[cannot be created~;No such directory~]." vp (eq why :missing)))))

(defun need (ftp perm)
  (unless (member perm (account-perms (ftp-account ftp)))
    (fail 550 "Permission denied.")))

(defun strerror-short (e)
  (handler-case (strerror e) (error () (format nil "errno ~d" e))))

(defmacro with-fs-errors ((what) &body body)
  "Runs BODY; a unix-error becomes reply 550 WHAT: reason."
  `(handler-case (progn ,@body)
     (unix-error (e) (fail 550 "~a: ~a." ,what (strerror-short (unix-error-errno e))))))

;;; Users

(defun user-state-for (name home)
  "Returns NAME's user-state, counting the usage under HOME the first time.  Can't fail."
  (let ((st *state*))
    (mp:with-lock ((ftp-state-users-lock st))
      (or (gethash name (ftp-state-users st))
          (setf (gethash name (ftp-state-users st))
                (multiple-value-bind (bytes files) (tree-usage home)
                  (make-user-state :used-bytes bytes :used-files files)))))))

(defun tree-usage (dir)
  "Returns (values BYTES FILES) of the regular files under DIR (at most 100,000 entries, no
symbolic links followed).  Can't fail."
  (let ((bytes 0) (files 0) (budget 100000))
    (labels ((walk (d)
               (dolist (n (ignore-errors (read-directory d)))
                 (when (minusp (decf budget)) (return-from tree-usage (values bytes files)))
                 (let* ((p (concatenate 'string d "/" n)) (st (ignore-errors (lstat p))))
                   (when st
                     (case (stat-type st)
                       (:regular (incf bytes (stat-size st)) (incf files))
                       (:directory (walk p))))))))
      (walk (if (string= dir "") "/" dir)))
    (values bytes files)))

(defun note-usage (ftp bytes files)
  (let ((u (ftp-ustate ftp)))
    (when u
      (mp:with-lock ((user-state-lock u))
        (incf (user-state-used-bytes u) bytes)
        (incf (user-state-used-files u) files)))))

(defun count-event (key &optional (delta 1) &key (persistent t))
  "Counts DELTA on KEY in mmstatd through the process's shared handle (crow.server opens it
from stat-dir before the chroot; without one this does nothing).  Waits 20 ms at most.  Can't
fail."
  (mmstat-count key delta :persistent persistent))

(defun logout (ftp)
  (let ((u (ftp-ustate ftp)))
    (when u
      (mp:with-lock ((user-state-lock u))
        (decf (user-state-logins u)))
      (count-event (format nil "mmftpd|sessions|~a" (account-name (ftp-account ftp))) -1
                   :persistent nil)
      (setf (ftp-ustate ftp) nil (ftp-account ftp) nil))))

;;; Verified-credentials cache (config auth-cache N; off by default), like Dovecot's
;;; auth_cache: yescrypt costs ~20 ms of CPU (and more latency) per login by design, and a
;;; client that logs in again and again with the same password need not pay it each time.
;;; An entry holds, per user, HMAC-SHA-256 under a random per-process key of the user, the
;;; password and the account's stored hash, and when it was made: never the password.  A
;;; login whose MAC equals the entry's (constant-time compare) within TTL is accepted without
;;; crypt; anything else takes the full crypt-verify.  A changed password changes the stored
;;; hash, so an old entry never matches (and SIGHUP, which re-reads the accounts, starts a new
;;; serving process with an empty cache).  Failures are never cached; at most SIZE users.

(defstruct (auth-cache (:constructor %make-auth-cache (size ttl key)))
  size ttl key (table (make-hash-table :test 'equal)) (lock (mp:make-lock :name "mmftpd auth cache")))

(defun make-auth-cache (size ttl-ms)
  "Returns a cache of at most SIZE users whose entries last TTL-MS milliseconds, keyed with 32
octets from /dev/urandom.  Signals unix-error if /dev/urandom cannot be read."
  (let ((key (make-octets 32)))
    (with-fd (fd (open-fd "/dev/urandom"))
      (loop with got = 0 while (< got 32)
            do (let ((n (read-fd fd key :start got)))
                 (when (zerop n) (error "/dev/urandom: end of file"))
                 (incf got n))))
    (%make-auth-cache size (* ttl-ms (/ internal-time-units-per-second 1000)) key)))

(defun %auth-mac (cache account password)
  (hmac-sha256 (auth-cache-key cache)
               (concatenate 'string (account-name account) (string (code-char 0)) password
                            (string (code-char 0)) (account-hash account))))

(defun auth-cache-hit-p (cache account password)
  "True when CACHE holds a live entry for ACCOUNT made with PASSWORD and its current hash."
  (let ((mac (%auth-mac cache account password))
        (e (mp:with-lock ((auth-cache-lock cache))
             (gethash (account-name account) (auth-cache-table cache)))))
    (and e
         (< (- (get-internal-real-time) (cdr e)) (auth-cache-ttl cache))
         (constant-time-equal mac (car e)))))

(defun auth-cache-remember (cache account password)
  (let ((mac (%auth-mac cache account password))
        (now (get-internal-real-time)))
    (mp:with-lock ((auth-cache-lock cache))
      (let ((table (auth-cache-table cache)))
        (when (and (>= (hash-table-count table) (auth-cache-size cache))
                   (not (gethash (account-name account) table)))
          ;; full: drop the expired entries, else the oldest one
          (let ((oldest nil))
            (maphash (lambda (k v)
                       (cond ((>= (- now (cdr v)) (auth-cache-ttl cache)) (remhash k table))
                             ((or (null oldest) (< (cdr v) (cdr (gethash oldest table))))
                              (setf oldest k))))
                     table)
            (when (and oldest (>= (hash-table-count table) (auth-cache-size cache)))
              (remhash oldest table))))
        (setf (gethash (account-name account) table) (cons mac now))))))

(defun password-ok-p (account password)
  "Returns T when PASSWORD is ACCOUNT's, and as second value whether the auth cache said so."
  (let ((cache (ftp-state-auth-cache *state*)))
    (cond ((null account) (crypt-verify password (ftp-state-dummy-hash *state*)) nil)
          ((account-anonymous account) t)
          ((and cache (auth-cache-hit-p cache account password)) (values t t))
          ((crypt-verify password (account-hash account))
           (when cache (auth-cache-remember cache account password))
           t))))

(defun cmd-user (ftp arg)
  (when (and (ftp-state-require-tls *state*) (not (session-tls-p (ftp-session ftp))))
    (fail 530 "TLS required: send AUTH TLS first."))
  (logout ftp)
  (setf (ftp-user ftp) arg)
  (if (member arg '("anonymous" "ftp") :test #'string=)
      (reply ftp 331 "Anonymous login ok, send your e-mail address as password.")
      (reply ftp 331 "Password required for ~a." arg)))

(defun cmd-pass (ftp arg)
  (let ((name (ftp-user ftp)))
    (unless name (fail 503 "Login with USER first."))
    (when (ftp-account ftp) (fail 503 "Already logged in."))
    (let* ((st *state*)
           (acct (gethash (if (string= name "ftp") "anonymous" name) (ftp-state-accounts st))))
      (multiple-value-bind (ok cached) (password-ok-p acct arg)
      (cond
        (ok
         (let ((home (realpath (if (string= (account-home acct) "") "/" (account-home acct)))))
           (unless home (fail 530 "Home directory unavailable."))
           (when (string= home "/") (setf home ""))
           (let ((u (user-state-for (account-name acct) home)))
             (mp:with-lock ((user-state-lock u))
               (when (and (plusp (account-max-logins acct))
                          (>= (user-state-logins u) (account-max-logins acct)))
                 (setf (ftp-user ftp) nil)
                 (fail 530 "Too many sessions for ~a, try later." name))
               (incf (user-state-logins u))
               (unless (user-state-share-in u)
                 (setf (user-state-share-in u) (and (plusp (account-bandwidth-in acct))
                                                    (make-ftpdata-share (account-bandwidth-in acct)))
                       (user-state-share-out u) (and (plusp (account-bandwidth-out acct))
                                                     (make-ftpdata-share (account-bandwidth-out acct))))))
             (setf (ftp-account ftp) acct (ftp-ustate ftp) u (ftp-home ftp) home
                   (ftp-cwd ftp) "/" (ftp-failures ftp) 0)
             (log-info "login ~a from ~a~:[~; (cached)~]" (account-name acct) (session-peer (ftp-session ftp))
                       cached)
             (let ((motd (ftp-state-motd st)))
               (if motd
                   (reply-lines ftp 230 motd (format nil "User ~a logged in." name))
                   (reply ftp 230 "User ~a logged in." name)))
             (count-event (format nil "mmftpd|logins|~a" (account-name acct)))
             (count-event (format nil "mmftpd|sessions|~a" (account-name acct)) 1 :persistent nil))))
        (t
         (let ((n (incf (ftp-failures ftp))))
           (setf (ftp-user ftp) nil)
           (log-info "login failed for ~a from ~a (~d)" name (session-peer (ftp-session ftp)) n)
           ;; Before the deliberate delay below, so it adds nothing a client notices.
           (count-event (format nil "mmftpd|failed-logins|~a"
                                (or (session-peer (ftp-session ftp)) "unknown")))
           (sleep (/ (* n (ftp-state-login-delay st)) 1000))
           (when (>= n (ftp-state-login-failures st))
             (reply ftp 421 "Too many login failures, closing.")
             (quit-session))
           (fail 530 "Login incorrect."))))))))

(defun split-command (octets)
  "Returns (values COMMAND ARGUMENT): the upper-cased verb and the rest, decoded as UTF-8."
  (let* ((v (ftp-telnet-strip octets))
         (start (or (position-if-not (lambda (b) (or (= b 32) (< b 32))) v) (length v)))
         (sp (or (position 32 v :start start) (length v)))
         (cmd (string-upcase (map 'string #'code-char (subseq v start sp))))
         (arg (if (< sp (length v)) (octets-to-string v :start (1+ sp)) "")))
    (values cmd arg)))

(defun cmd-type (ftp arg)
  (let ((a (string-upcase (string-trim " " arg))))
    (cond ((member a '("A" "A N") :test #'string=)
           (setf (ftp-type ftp) :ascii) (reply ftp 200 "Type set to A."))
          ((member a '("I" "L 8" "L8") :test #'string=)
           (setf (ftp-type ftp) :binary) (reply ftp 200 "Type set to I."))
          ((string= a "") (fail 501 "Syntax: TYPE A|I."))
          (t (fail 504 "Type ~a not implemented." a)))))

(defun cmd-feat (ftp arg)
  (declare (ignore arg))
  (reply-lines ftp 211
               (append (list "Features:")
                       (when (ftp-state-tls-context *state*) (list "AUTH TLS" "PBSZ" "PROT"))
                       (list "EPRT" "EPSV" "MDTM" "MLST type*;size*;modify*;perm*;unique*;"
                             "REST STREAM" "SIZE" "TVFS" "UTF8"))
               "End"))

(defun cmd-opts (ftp arg)
  (let* ((sp (position #\Space arg))
         (what (string-upcase (subseq arg 0 sp)))
         (rest (if sp (string-trim " " (subseq arg (1+ sp))) "")))
    (cond ((string= what "UTF8")
           (if (string-equal rest "ON")
               (reply ftp 200 "UTF8 set to on.")
               (fail 501 "UTF8 is always on.")))
          ((string= what "MLST")
           (let ((facts (loop for f in (%split rest #\;)
                              for k = (find f '("type" "size" "modify" "perm" "unique") :test #'string-equal)
                              when k collect (intern (string-upcase k) :keyword))))
             (setf (ftp-facts ftp) facts)
             (reply ftp 200 "MLST OPTS ~{~(~a~);~}" facts)))
          (t (fail 501 "Option ~a not understood." what)))))

(defun cmd-auth (ftp arg)
  (let ((ctx (ftp-state-tls-context *state*))
        (s (ftp-session ftp)))
    (cond ((null ctx) (fail 502 "AUTH not available: no TLS certificate configured."))
          ((session-tls-p s) (fail 503 "Already using TLS."))
          ((not (member arg '("TLS" "TLS-C" "SSL") :test #'string-equal))
           (fail 504 "AUTH ~a not supported (use AUTH TLS)." arg)))
    (reply ftp 234 "AUTH ~a successful." (string-upcase arg))
    ;; session-starttls drops whatever the client pipelined after AUTH in plaintext
    (let ((dropped (session-starttls s ctx)))
      (when (plusp dropped)
        (log-info "AUTH TLS: dropped ~d plaintext byte~:p sent after AUTH by ~a" dropped (session-peer s))))
    (logout ftp)
    (setf (ftp-user ftp) nil (ftp-pbsz ftp) nil (ftp-prot-p ftp) nil)))

(defun cmd-pbsz (ftp arg)
  (unless (session-tls-p (ftp-session ftp)) (fail 503 "PBSZ needs AUTH TLS first."))
  (unless (and (plusp (length arg)) (every #'digit-char-p arg)) (fail 501 "Syntax: PBSZ 0."))
  (setf (ftp-pbsz ftp) t)
  (reply ftp 200 "PBSZ=0"))

(defun cmd-prot (ftp arg)
  (unless (session-tls-p (ftp-session ftp)) (fail 503 "PROT needs AUTH TLS first."))
  (unless (ftp-pbsz ftp) (fail 503 "PROT needs PBSZ first."))
  (let ((a (string-upcase arg)))
    (cond ((string= a "P") (setf (ftp-prot-p ftp) t) (reply ftp 200 "Protection level set to P."))
          ((string= a "C") (setf (ftp-prot-p ftp) nil) (reply ftp 200 "Protection level set to C."))
          ((member a '("S" "E") :test #'string=) (fail 536 "PROT ~a not supported." a))
          (t (fail 504 "PROT ~a not understood." a)))))

(defun cmd-stat (ftp arg)
  (if (string= arg "")
      (reply-lines ftp 211
                   (list "mmftpd status:"
                         (format nil "Connected from ~a" (session-peer (ftp-session ftp)))
                         (if (ftp-account ftp)
                             (format nil "Logged in as ~a" (account-name (ftp-account ftp)))
                             "Not logged in")
                         (format nil "TYPE: ~a, MODE: Stream, STRUcture: File"
                                 (if (eq (ftp-type ftp) :ascii) "ASCII" "BINARY"))
                         (format nil "Control connection ~:[plain~;TLS~], data ~:[plain~;protected~]"
                                 (session-tls-p (ftp-session ftp)) (ftp-prot-p ftp)))
                   "End of status.")
      (progn
        (unless (ftp-account ftp) (fail 530 "Please login with USER and PASS."))
        (reply-lines ftp 213 (cons (format nil "Status of ~a:" arg)
                                   (listing-lines ftp (listing-target arg) :list))
                     "End of status."))))

(defparameter +commands+
  ;; verb  function  login-needed  argument-needed
  '(("USER" cmd-user nil t) ("PASS" cmd-pass nil nil) ("QUIT" nil nil nil) ("SYST" nil nil nil)
    ("FEAT" cmd-feat nil nil) ("OPTS" cmd-opts nil t) ("HELP" nil nil nil) ("NOOP" nil nil nil)
    ("STAT" cmd-stat nil nil) ("ALLO" nil t nil) ("AUTH" cmd-auth nil t) ("PBSZ" cmd-pbsz nil t)
    ("PROT" cmd-prot nil t) ("ABOR" nil nil nil) ("MODE" nil nil t) ("STRU" nil nil t)
    ("TYPE" cmd-type nil nil)
    ("PWD" nil t nil) ("XPWD" nil t nil) ("CWD" cmd-cwd t nil) ("XCWD" cmd-cwd t nil)
    ("CDUP" nil t nil) ("XCUP" nil t nil)
    ("PASV" cmd-pasv t nil) ("EPSV" cmd-epsv t nil) ("PORT" cmd-port t t) ("EPRT" cmd-eprt t t)
    ("LIST" nil t nil) ("NLST" nil t nil) ("MLSD" nil t nil) ("MLST" cmd-mlst t nil)
    ("SIZE" cmd-size t t) ("MDTM" cmd-mdtm t t) ("REST" cmd-rest t t)
    ("RETR" cmd-retr t t) ("STOR" nil t t) ("STOU" nil t nil) ("APPE" nil t t)
    ("DELE" cmd-dele t t) ("RNFR" cmd-rnfr t t) ("RNTO" cmd-rnto t t)
    ("MKD" cmd-mkd t t) ("XMKD" cmd-mkd t t) ("RMD" cmd-rmd t t) ("XRMD" cmd-rmd t t))
  "Every command mmftpd implements.")

(defparameter +not-implemented+ '("ACCT" "SMNT" "REIN" "SITE" "CCC" "MIC" "CONF" "ENC" "ADAT" "LPRT" "LPSV" "MFMT" "MFF")
  "Commands that exist (RFC 959 and extensions) but are not implemented here: 502.")

(defun dispatch (ftp cmd arg)
  (let ((entry (assoc cmd +commands+ :test #'string=)))
    (cond
      ((null entry)
       (if (member cmd +not-implemented+ :test #'string=)
           (fail 502 "~a not implemented." cmd)
           (fail 500 "~a: command not understood." (subseq cmd 0 (min 20 (length cmd))))))
      ((and (third entry) (null (ftp-account ftp)))
       (fail 530 "Please login with USER and PASS."))
      ((and (fourth entry) (string= arg ""))
       (fail 501 "~a needs an argument." cmd)))
    (unless (member cmd '("RNFR" "RNTO") :test #'string=)
      (when (and (ftp-rnfr ftp) (string/= cmd "NOOP")) (setf (ftp-rnfr ftp) nil)))
    (unless (member cmd '("REST" "RETR" "STOR" "APPE" "NOOP" "TYPE" "PASV" "EPSV" "PORT" "EPRT")
                    :test #'string=)
      (setf (ftp-rest ftp) 0))
    (let ((fn (second entry)))
      (if fn
          (funcall fn ftp arg)
          (simple-command ftp cmd arg)))))

(defun simple-command (ftp cmd arg)
  (macrolet ((is (&rest names) `(member cmd ',names :test #'string=)))
    (cond
      ((is "QUIT") (reply ftp 221 "Goodbye.") (quit-session))
      ((is "SYST") (reply ftp 215 "UNIX Type: L8"))
      ((is "NOOP") (reply ftp 200 "NOOP ok."))
      ((is "HELP")
       (reply-lines ftp 214 (cons "The following commands are recognized:"
                                  (loop for l on (mapcar #'first +commands+) by (lambda (l) (nthcdr 10 l))
                                        collect (format nil "~{~5a~^ ~}" (subseq l 0 (min 10 (length l))))))
                    "Help OK."))
      ((is "ALLO") (reply ftp 202 "ALLO not needed."))
      ((is "ABOR") (reply ftp 225 "No transfer to abort."))
      ((is "MODE") (if (string-equal arg "S") (reply ftp 200 "Mode set to S.") (fail 504 "Mode ~a not implemented." arg)))
      ((is "STRU") (if (string-equal arg "F") (reply ftp 200 "Structure set to F.") (fail 504 "Structure ~a not implemented." arg)))
      ((is "PWD" "XPWD") (reply ftp 257 "\"~a\" is the current directory." (quote-path (ftp-cwd ftp))))
      ((is "CDUP" "XCUP") (cmd-cwd ftp ".."))
      ((is "LIST") (send-listing ftp (listing-target arg) :list))
      ((is "NLST") (send-listing ftp (listing-target arg) :nlst))
      ((is "MLSD") (send-listing ftp (if (string= arg "") nil arg) :mlsd))
      ((is "STOR") (store ftp arg :stor))
      ((is "APPE") (store ftp arg :appe))
      ((is "STOU") (store ftp arg :stou)))))

(defun handle-session (session)
  "Serves one control connection until QUIT, end of file or the idle timeout (421)."
  (ignore-errors (set-oobinline (session-fd session)))
  (let ((ftp (%make-ftp session)))
    (unwind-protect
         (catch 'ftp-quit
          (handler-case
             (loop
               (let ((line (session-read-line session :as :octets :eof-error-p nil :eof-value :eof)))
                 (case line
                   (:eof (return))
                   (:too-long (reply ftp 500 "Line too long."))
                   (:bad (reply ftp 500 "Bad line ending."))
                   (t (multiple-value-bind (cmd arg) (split-command line)
                        (handler-case (dispatch ftp cmd arg)
                          (ftp-reply (r)
                            (session-write session (%reply-line (ftp-reply-code r)
                                                                (ftp-reply-text r))))))))))
           (session-timeout ()
             (ignore-errors (reply ftp 421 "Timeout: closing control connection.")))))
      (close-data-setup ftp)
      (logout ftp))))
