;;;; session.lisp — one FTP control connection, served in its own thread (crow.server's
;;;; session model): the command loop, login, the data connections (PASV/EPSV/PORT/EPRT with
;;;; bounce and theft protection) and every command of RFC 959, 2228, 2389, 2428, 2640, 3659
;;;; and 4217.  The byte work of transfers is c-core/ftpdata's.

(in-package :crow.ftp)

;;; Server-wide state, made by configure (parent) and completed by serve (child).

(defstruct ftp-state
  "What every session shares: the ACCOUNTS (name -> account), the GREETING and MOTD replies,
the TLS-CONTEXT (NIL: no AUTH TLS), the DUMMY-HASH checked for unknown users, and the
config's values."
  (accounts (make-hash-table :test 'equal)) greeting motd tls-context dummy-hash
  (pasv-low 0) (pasv-high 0) pasv-address (login-delay 1000) (login-failures 3)
  (transfer-timeout 300) (idle-timeout 300) (umask #o022) fsync require-tls
  (bandwidth-in 0) (bandwidth-out 0)
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

(define-condition ftp-quit (error) ())

(defun reply (ftp code fmt &rest args)
  "Writes the one-line reply CODE text.  Signals session errors."
  (session-write (ftp-session ftp) (format nil "~d ~?~c~c" code fmt args #\Return #\Linefeed)))

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

(defun password-ok-p (account password)
  (cond ((null account) (crypt-verify password (ftp-state-dummy-hash *state*)) nil)
        ((account-anonymous account) t)
        (t (crypt-verify password (account-hash account)))))

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
      (cond
        ((password-ok-p acct arg)
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
             (log-info "login ~a from ~a" (account-name acct) (session-peer (ftp-session ftp)))
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
             (error 'ftp-quit))
           (fail 530 "Login incorrect.")))))))

;;; Data connections

(defun strip-mapped (host)
  "\"::ffff:1.2.3.4\" -> \"1.2.3.4\".  Can't fail."
  (if (and host (> (length host) 7) (string-equal "::ffff:" host :end2 7) (find #\. host))
      (subseq host 7)
      host))

(defun control-hosts (ftp)
  "Returns (values PEER-HOST LOCAL-HOST) of the control connection, v4-mapped made plain."
  (let ((fd (session-fd (ftp-session ftp))))
    (values (strip-mapped (session-peer (ftp-session ftp)))
            (strip-mapped (ignore-errors (local-address fd))))))

(defun v6-p (host) (and host (find #\: host)))

(defun close-data-setup (ftp)
  (when (ftp-pasv-fd ftp)
    (ignore-errors (close-fd (ftp-pasv-fd ftp)))
    (setf (ftp-pasv-fd ftp) nil))
  (setf (ftp-port-host ftp) nil (ftp-port-port ftp) nil))

(defun open-passive (ftp)
  "Listens for a data connection on the control connection's local address, a port in the
passive range.  Returns the port.  Fails 425."
  (close-data-setup ftp)
  (let* ((st *state*)
         (local (nth-value 1 (control-hosts ftp)))
         (lo (ftp-state-pasv-low st)) (hi (ftp-state-pasv-high st)))
    (flet ((try (port)
             (let ((fd (ignore-errors (tcp-listen local port :nonblocking t :backlog 4))))
               (when fd
                 (setf (ftp-pasv-fd ftp) fd)
                 (return-from open-passive (nth-value 1 (local-address fd)))))))
      (if (zerop lo)
          (try 0)
          (let* ((span (1+ (- hi lo))) (start (random span)))
            (dotimes (i (min span 200)) (try (+ lo (mod (+ start i) span))))))
      (fail 425 "Cannot open a passive connection."))))

(defun cmd-pasv (ftp arg)
  (declare (ignore arg))
  (when (ftp-epsv-all ftp) (fail 503 "PASV not allowed after EPSV ALL."))
  (multiple-value-bind (peer local) (control-hosts ftp)
    (declare (ignore peer))
    (when (v6-p local) (fail 522 "PASV is IPv4 only; use EPSV (2)."))
    (let* ((port (open-passive ftp))
           (addr (or (ftp-state-pasv-address *state*) local)))
      (reply ftp 227 "Entering Passive Mode (~a,~d,~d)."
             (substitute #\, #\. addr) (ash port -8) (logand port 255)))))

(defun cmd-epsv (ftp arg)
  (cond ((string-equal arg "ALL")
         (setf (ftp-epsv-all ftp) t)
         (reply ftp 200 "EPSV ALL ok."))
        (t
         (let ((v6 (v6-p (nth-value 1 (control-hosts ftp)))))
           (when (and (plusp (length arg))
                      (not (string= arg (if v6 "2" "1"))))
             (fail 522 "Network protocol not supported, use (~d)." (if v6 2 1)))
           (reply ftp 229 "Entering Extended Passive Mode (|||~d|)." (open-passive ftp))))))

(defun check-active (ftp host port)
  "Bounce protection (RFC 2577): the data connection must go to the control peer's address,
to a port of 1024 or above."
  (when (ftp-epsv-all ftp) (fail 503 "PORT not allowed after EPSV ALL."))
  (let ((peer (control-hosts ftp)))
    (unless (and (typep port 'integer) (<= 1024 port 65535) host
                 (string-equal (strip-mapped host) peer))
      (log-info "refused PORT/EPRT to ~a:~a from ~a" host port peer)
      (fail 504 "Illegal PORT command: only to your own address, port 1024 or above."))
    (close-data-setup ftp)
    (setf (ftp-port-host ftp) (strip-mapped host) (ftp-port-port ftp) port)))

(defun cmd-port (ftp arg)
  (let ((n (mapcar (lambda (x) (ignore-errors (parse-integer x))) (%split arg #\,))))
    (unless (and (= (length n) 6) (every (lambda (x) (and x (<= 0 x 255))) n))
      (fail 501 "Syntax: PORT h1,h2,h3,h4,p1,p2."))
    (when (v6-p (control-hosts ftp)) (fail 522 "PORT is IPv4 only; use EPRT (2)."))
    (check-active ftp (format nil "~{~d~^.~}" (subseq n 0 4)) (+ (* 256 (fifth n)) (sixth n)))
    (reply ftp 200 "PORT command successful.")))

(defun cmd-eprt (ftp arg)
  (when (< (length arg) 7) (fail 501 "Syntax: EPRT |proto|addr|port|."))
  (let* ((d (char arg 0)) (f (%split arg d)))
    (unless (and (= (length f) 5) (string= (first f) "") (string= (fifth f) ""))
      (fail 501 "Syntax: EPRT |proto|addr|port|."))
    (let ((proto (second f)) (host (third f)) (port (ignore-errors (parse-integer (fourth f))))
          (v6 (v6-p (control-hosts ftp))))
      (unless (string= proto (if v6 "2" "1"))
        (fail 522 "Network protocol not supported, use (~d)." (if v6 2 1)))
      (check-active ftp host port)
      (reply ftp 200 "EPRT command successful."))))

(defun accept-data (ftp)
  "Waits for the client's connection to the passive port, refusing any from another address
\(theft protection).  Returns the descriptor, or NIL on timeout."
  (let* ((fd (ftp-pasv-fd ftp))
         (peer (control-hosts ftp))
         (deadline (+ (get-internal-real-time)
                      (* (min 60 (ftp-state-transfer-timeout *state*)) internal-time-units-per-second))))
    (loop
      (let ((left (floor (* 1000 (- deadline (get-internal-real-time))) internal-time-units-per-second)))
        (when (or (<= left 0) (not (wait-readable fd left)))
          (return nil))
        (let ((c (ignore-errors (accept-connection fd))))
          (when c
            (if (string-equal (strip-mapped (ignore-errors (peer-address c))) peer)
                (return c)
                (progn
                  (log-info "refused data connection from ~a (control from ~a)"
                            (ignore-errors (peer-address c)) peer)
                  (ignore-errors (close-fd c))))))))))

(defun connect-data (ftp)
  "Connects to the PORT/EPRT address.  Returns the descriptor or NIL."
  (let ((fd (ignore-errors (tcp-connect (ftp-port-host ftp) (ftp-port-port ftp) :nonblocking t))))
    (when fd
      (if (and (ignore-errors (wait-writable fd (* 1000 (min 30 (ftp-state-transfer-timeout *state*)))))
               (eql 0 (ignore-errors (socket-error-code fd))))
          fd
          (progn (ignore-errors (close-fd fd)) nil)))))

(defun open-data (ftp opening)
  "Opens the data connection set up by PASV/EPSV/PORT/EPRT, replies 150 OPENING, and returns an
ftpdata (TLS when PROT P).  Fails 425 (or 521 when TLS is required for data)."
  (when (and (ftp-state-require-tls *state*) (not (ftp-prot-p ftp)))
    (fail 521 "Data connections must be protected: send PROT P."))
  (let ((fd (cond ((ftp-pasv-fd ftp) (prog1 (accept-data ftp) (close-data-setup ftp)))
                  ((ftp-port-host ftp) (prog1 (connect-data ftp) (close-data-setup ftp)))
                  (t (fail 425 "Use PORT, EPRT, PASV or EPSV first.")))))
    (unless fd (fail 425 "Cannot open data connection."))
    (let ((d (make-ftpdata fd (session-fd (ftp-session ftp))
                           :timeout (ftp-state-transfer-timeout *state*)))
          (u (ftp-ustate ftp)))
      (ftpdata-set-limits d :in (ftp-state-bandwidth-in *state*) :out (ftp-state-bandwidth-out *state*)
                            :share-in (and u (user-state-share-in u))
                            :share-out (and u (user-state-share-out u)))
      (reply ftp 150 "~a" opening)
      (when (ftp-prot-p ftp)
        (multiple-value-bind (st errno why) (ftpdata-starttls d (ftp-state-tls-context *state*))
          (declare (ignore errno))
          (unless (eq st :ok)
            (ftpdata-close d :abort t)
            (fail 425 "TLS negotiation on the data connection failed: ~a." why))))
      d)))

(defun split-command (octets)
  "Returns (values COMMAND ARGUMENT): the upper-cased verb and the rest, decoded as UTF-8."
  (let* ((v (ftp-telnet-strip octets))
         (start (or (position-if-not (lambda (b) (or (= b 32) (< b 32))) v) (length v)))
         (sp (or (position 32 v :start start) (length v)))
         (cmd (string-upcase (map 'string #'code-char (subseq v start sp))))
         (arg (if (< sp (length v)) (octets-to-string v :start (1+ sp)) "")))
    (values cmd arg)))

(defun transfer (ftp d step)
  "Runs STEP (a function of the data connection returning (values STATUS COUNT ERRNO), called
again after a command that does not stop the transfer) until it ends; answers commands that
arrive meanwhile (ABOR, STAT, NOOP, QUIT).  Closes D.  Returns (values STATUS COUNT ERRNO),
STATUS :aborted after ABOR (426 and 226 are then already sent)."
  (let ((total 0))
    (unwind-protect
         (loop
           (multiple-value-bind (st n errno) (funcall step d)
             (incf total n)
             (unless (eq st :control)
               (ftpdata-close d :abort (not (eq st :ok)))
               (return (values st total errno)))
             (let ((line (session-read-line (ftp-session ftp) :as :octets)))
               (when (octets-p line)
                 (let ((cmd (split-command line)))
                   (cond ((string= cmd "ABOR")
                          (ftpdata-close d :abort t)
                          (reply ftp 426 "Transfer aborted.")
                          (reply ftp 226 "ABOR successful.")
                          (return (values :aborted total 0)))
                         ((string= cmd "STAT")
                          (reply ftp 213 "Transfer in progress: ~d bytes." total))
                         ((string= cmd "NOOP") (reply ftp 200 "NOOP ok."))
                         ((string= cmd "QUIT")
                          (ftpdata-close d :abort t)
                          (reply ftp 221 "Goodbye.")
                          (error 'ftp-quit))
                         (t (reply ftp 503 "A transfer is in progress: ABOR or wait."))))))))
      (ftpdata-close d :abort t))))

(defun octets-p (x) (typep x 'octets))

(defun finish-transfer (ftp st errno)
  (case st
    (:ok (reply ftp 226 "Transfer complete."))
    (:aborted nil)
    (:timeout (reply ftp 426 "Data connection timed out; transfer aborted."))
    (:net (reply ftp 426 "Data connection failed (~a); transfer aborted." (strerror-short errno)))
    (:file (reply ftp 451 "Local error: ~a; transfer aborted." (strerror-short errno)))
    (:limit (reply ftp 552 "Quota exceeded; transfer aborted."))))

;;; Listings

(defun listing-target (arg)
  "LIST/NLST arguments: leading ls options (-l, -a, -la) are ignored."
  (let ((words (remove "" (%split arg #\Space) :test #'string=)))
    (loop while (and words (char= (char (first words) 0) #\-)) do (pop words))
    (if words (format nil "~{~a~^ ~}" words) nil)))

(defun crlf-join (lines)
  (utf8-encode (with-output-to-string (s)
                 (dolist (l lines) (format s "~a~c~c" l #\Return #\Linefeed)))))

(defun listing-lines (ftp arg kind)
  "Lines of a LIST (:list), NLST (:nlst) or MLSD (:mlsd) of virtual ARG.  Fails 550."
  (need ftp :list)
  (let* ((vp (vpath ftp (or arg ".")))
         (real (existing ftp vp))
         (st (with-fs-errors (vp) (stat real)))
         (now (unix-time)))
    (cond ((eq (stat-type st) :directory)
           (let ((entries (with-fs-errors (vp) (directory-entries (ftp-home ftp) real)))
                 (perms (account-perms (ftp-account ftp))))
             (ecase kind
               (:list (mapcar (lambda (e) (list-line (cdr e) (car e) now)) entries))
               (:nlst (mapcar (lambda (e) (if arg (format nil "~a/~a" (string-right-trim "/" arg) (car e)) (car e)))
                              entries))
               (:mlsd (cons (mlst-facts st "." perms (ftp-facts ftp) :type "cdir")
                            (mapcar (lambda (e) (mlst-facts (cdr e) (car e) perms (ftp-facts ftp)))
                                    entries))))))
          ((eq kind :mlsd) (fail 501 "~a: Not a directory." vp))
          ((eq kind :nlst) (list (or arg (virtual-name vp))))
          (t (list (list-line st (virtual-name vp) now))))))

(defun unix-time () (- (get-universal-time) +unix-epoch+))

(defun send-listing (ftp arg kind)
  (let* ((lines (listing-lines ftp arg kind))
         (bytes (crlf-join lines))
         (d (open-data ftp (format nil "Opening ~a mode data connection for file list."
                                   (if (eq (ftp-type ftp) :ascii) "ASCII" "BINARY"))))
         (pos 0))
    (multiple-value-bind (st n errno)
        (transfer ftp d (lambda (d)
                          (multiple-value-bind (st n e) (ftpdata-send d bytes :start pos)
                            (incf pos n)
                            (values st n e))))
      (declare (ignore n))
      (finish-transfer ftp st errno))))

;;; Files

(defun cmd-retr (ftp arg)
  (need ftp :download)
  (let* ((vp (vpath ftp arg))
         (real (existing ftp vp))
         (fd (with-fs-errors (vp) (open-file-nofollow real :read)))
         (offset (shiftf (ftp-rest ftp) 0)))
    (unwind-protect
         (let ((size (stat-size (fstat fd))))
           (when (> offset size) (fail 554 "Restart offset ~d is beyond the file's size ~d." offset size))
           (let ((d (open-data ftp (format nil "Opening ~a mode data connection for ~a (~d bytes)."
                                           (if (eq (ftp-type ftp) :ascii) "ASCII" "BINARY")
                                           (virtual-name vp) (- size offset))))
                 (pos offset))
             (multiple-value-bind (st n errno)
                 (transfer ftp d (lambda (d)
                                   (multiple-value-bind (st n e)
                                       (ftpdata-send-file d fd pos :ascii (eq (ftp-type ftp) :ascii))
                                     (incf pos n)
                                     (values st n e))))
               (log-info "~a: RETR ~a: ~(~a~), ~d bytes" (account-name (ftp-account ftp)) vp st n)
               (finish-transfer ftp st errno)
               (when (and (integerp n) (plusp n))
                 (count-event (format nil "mmftpd|bytes-out|~a" (account-name (ftp-account ftp))) n)))))
      (ignore-errors (close-fd fd)))))

(defun unique-name (ftp vp)
  (loop for i from 0 below 1000
        for cand = (if (zerop i) vp (format nil "~a.~d" vp i))
        for real = (creatable ftp cand)
        unless (ignore-errors (lstat real)) do (return (values cand real))
        finally (fail 553 "No unique name available.")))

(defun random-suffix ()
  (format nil "~36r~36r" (random (expt 36 6)) (getpid)))

(defun store (ftp arg how)
  "STOR (HOW :stor), APPE (:appe), STOU (:stou)."
  (need ftp :upload)
  (let* ((vp (if (and (eq how :stou) (string= arg ""))
                 (vpath ftp (format nil "file.~a" (random-suffix)))
                 (vpath ftp arg)))
         (offset (shiftf (ftp-rest ftp) 0))
         real old-st)
    (if (eq how :stou)
        (multiple-value-setq (vp real) (unique-name ftp vp))
        (setf real (creatable ftp vp)))
    (setf old-st (ignore-errors (stat real)))
    (when old-st
      (unless (eq (stat-type old-st) :regular) (fail 553 "~a: Not a plain file." vp))
      (need ftp :overwrite))
    (when (and (plusp offset) old-st (> offset (stat-size old-st)))
      (fail 554 "Restart offset ~d is beyond the file's size." offset))
    (let* ((acct (ftp-account ftp)) (u (ftp-ustate ftp))
           (old-size (if old-st (stat-size old-st) 0))
           (in-place (or (eq how :appe) (plusp offset)))
           (limit (when (plusp (account-quota-bytes acct))
                    (max 0 (+ (- (account-quota-bytes acct) (user-state-used-bytes u))
                              (cond ((eq how :appe) 0)
                                    ((plusp offset) (- old-size offset))
                                    (t old-size)))))))
      (when (and (not old-st) (plusp (account-quota-files acct))
                 (>= (user-state-used-files u) (account-quota-files acct)))
        (fail 552 "File quota exceeded."))
      ;; A plain STOR writes a temporary file renamed over the target only when complete: a
      ;; failed upload never leaves a half-written file under the target's name.
      (let* ((tmp (unless (or in-place (eq how :stou))
                    (let ((dir (host-path (ftp-home ftp) (virtual-parent vp))))
                      (concatenate 'string dir (if (char= (char dir (1- (length dir))) #\/) "" "/")
                                   ".mmftpd-" (random-suffix)))))
             (fd (with-fs-errors (vp)
                   (cond ((eq how :stou) (open-file-nofollow real :create-new :mode #o666))
                         (tmp (open-file-nofollow tmp :create-new :mode #o666))
                         ((eq how :appe) (open-file-nofollow real :append :mode #o666))
                         (t (open-file-nofollow real :at :mode #o666 :offset offset)))))
             (final (if (eq how :stou) real tmp))
             (ok nil) (written 0))
        (flet ((cleanup ()
                 ;; before the reply: a client that saw 5xx/4xx finds nothing left over
                 (when fd (ignore-errors (close-fd fd)) (setf fd nil))
                 (unless ok
                   ;; the temporary (or a new STOU file) goes; an in-place target stays as written
                   (when final (ignore-errors (unlink final)) (setf final nil))
                   (when (and in-place (not old-st) (zerop written))
                     (ignore-errors (unlink real))))))
        (unwind-protect
             (let ((d (open-data ftp (if (eq how :stou)
                                         (format nil "FILE: ~a" (virtual-name vp))
                                         (format nil "Opening ~a mode data connection for ~a."
                                                 (if (eq (ftp-type ftp) :ascii) "ASCII" "BINARY")
                                                 (virtual-name vp))))))
               (multiple-value-bind (st n errno)
                   (transfer ftp d (lambda (d)
                                     (multiple-value-bind (st n e)
                                         (ftpdata-recv-file d fd :ascii (eq (ftp-type ftp) :ascii)
                                                                 :limit (and limit (- limit written))
                                                                 :fsync (ftp-state-fsync *state*))
                                       (incf written n)
                                       (values st n e))))
                 (when (eq st :ok)
                   (handler-case
                       (progn (close-fd (shiftf fd nil))
                              (when tmp (rename tmp real))
                              (setf ok t))
                     (unix-error (e) (setf st :file errno (unix-error-errno e)))))
                 (cond (ok
                        (note-usage ftp (cond ((eq how :appe) n)
                                              (in-place (max 0 (- (+ offset n) old-size)))
                                              (t (- n old-size)))
                                    (if old-st 0 1))
                        (log-info "~a: ~a ~a: ~d bytes" (account-name acct) how vp n))
                       (t (log-info "~a: ~a ~a failed: ~(~a~) after ~d bytes (~a)" (account-name acct) how vp st n
                                    (if (zerop errno) "-" (strerror-short errno)))
                          (cleanup)))
                 (finish-transfer ftp st errno)
                 (when (and (integerp n) (plusp n))
                   (count-event (format nil "mmftpd|bytes-in|~a" (account-name acct)) n))))
          (cleanup)))))))

;;; The commands

(defun cmd-cwd (ftp arg)
  (need ftp :list)
  (let* ((vp (vpath ftp (if (string= arg "") "/" arg)))
         (real (existing ftp vp)))
    (unless (eq (stat-type (with-fs-errors (vp) (stat real))) :directory)
      (fail 550 "~a: Not a directory." vp))
    (setf (ftp-cwd ftp) vp)
    (reply ftp 250 "Directory changed to ~a." vp)))

(defun cmd-size (ftp arg)
  (let* ((vp (vpath ftp arg)) (st (with-fs-errors (vp) (stat (existing ftp vp)))))
    (unless (eq (stat-type st) :regular) (fail 550 "~a: Not a plain file." vp))
    (when (eq (ftp-type ftp) :ascii) (fail 550 "SIZE not allowed in ASCII mode: send TYPE I."))
    (reply ftp 213 "~d" (stat-size st))))

(defun cmd-mdtm (ftp arg)
  (let* ((vp (vpath ftp arg)) (st (with-fs-errors (vp) (stat (existing ftp vp)))))
    (unless (eq (stat-type st) :regular) (fail 550 "~a: Not a plain file." vp))
    (reply ftp 213 "~a" (mdtm-string (stat-mtime st)))))

(defun cmd-mlst (ftp arg)
  (need ftp :list)
  (let* ((vp (vpath ftp (if (string= arg "") "." arg)))
         (st (with-fs-errors (vp) (stat (existing ftp vp)))))
    (reply-lines ftp 250 (list (format nil "Listing ~a" vp)
                               (mlst-facts st vp (account-perms (ftp-account ftp)) (ftp-facts ftp)))
                 "End.")))

(defun cmd-dele (ftp arg)
  (need ftp :delete)
  (let* ((vp (vpath ftp arg)) (real (creatable ftp vp))
         (st (with-fs-errors (vp) (lstat real))))
    (when (eq (stat-type st) :directory) (fail 550 "~a: Is a directory (use RMD)." vp))
    (with-fs-errors (vp) (unlink real))
    (when (eq (stat-type st) :regular) (note-usage ftp (- (stat-size st)) -1))
    (reply ftp 250 "~a deleted." vp)))

(defun cmd-mkd (ftp arg)
  (need ftp :mkdir)
  (let* ((vp (vpath ftp arg)) (real (creatable ftp vp)))
    (with-fs-errors (vp) (mkdir real #o777))
    (reply ftp 257 "\"~a\" created." (quote-path vp))))

(defun cmd-rmd (ftp arg)
  (need ftp :mkdir)
  (let* ((vp (vpath ftp arg)))
    (when (string= vp "/") (fail 550 "Cannot remove the root directory."))
    (with-fs-errors (vp) (rmdir (creatable ftp vp)))
    (reply ftp 250 "~a removed." vp)))

(defun cmd-rnfr (ftp arg)
  (need ftp :rename)
  (let* ((vp (vpath ftp arg)))
    (when (string= vp "/") (fail 550 "Cannot rename the root directory."))
    (let ((real (creatable ftp vp)))
      (unless (ignore-errors (lstat real)) (fail 550 "~a: No such file or directory." vp))
      (setf (ftp-rnfr ftp) real)
      (reply ftp 350 "File exists, ready for destination name."))))

(defun cmd-rnto (ftp arg)
  (let ((from (shiftf (ftp-rnfr ftp) nil)))
    (unless from (fail 503 "RNFR first."))
    (need ftp :rename)
    (let* ((vp (vpath ftp arg)) (real (creatable ftp vp)))
      (when (and (ignore-errors (lstat real)) (not (member :overwrite (account-perms (ftp-account ftp)))))
        (fail 550 "~a exists." vp))
      (with-fs-errors (vp) (rename from real))
      (reply ftp 250 "Rename successful."))))

(defun cmd-type (ftp arg)
  (let ((a (string-upcase (string-trim " " arg))))
    (cond ((member a '("A" "A N") :test #'string=)
           (setf (ftp-type ftp) :ascii) (reply ftp 200 "Type set to A."))
          ((member a '("I" "L 8" "L8") :test #'string=)
           (setf (ftp-type ftp) :binary) (reply ftp 200 "Type set to I."))
          ((string= a "") (fail 501 "Syntax: TYPE A|I."))
          (t (fail 504 "Type ~a not implemented." a)))))

(defun cmd-rest (ftp arg)
  (let ((n (and (plusp (length arg)) (every #'digit-char-p arg) (parse-integer arg))))
    (unless n (fail 501 "Syntax: REST offset."))
    (setf (ftp-rest ftp) n)
    (reply ftp 350 "Restarting at ~d. Send STORE or RETRIEVE." n)))

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
      ((is "QUIT") (reply ftp 221 "Goodbye.") (error 'ftp-quit))
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
                            (reply ftp (ftp-reply-code r) "~a" (ftp-reply-text r)))))))))
           (ftp-quit () nil)
           (session-timeout ()
             (ignore-errors (reply ftp 421 "Timeout: closing control connection."))))
      (close-data-setup ftp)
      (logout ftp))))
