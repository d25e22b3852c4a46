;;;; transfer.lisp — mmftpd's data connections (PASV/EPSV/PORT/EPRT with bounce and theft
;;;; protection, PROT P), the transfer loop that answers ABOR/STAT/NOOP/QUIT meanwhile, and the
;;;; commands that use them: LIST/NLST/MLSD, RETR, STOR/APPE/STOU (with REST).  The byte work is
;;;; c-core/ftpdata's.

(in-package :crow.ftp)

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
                          (quit-session))
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

(defun cmd-rest (ftp arg)
  (let ((n (and (plusp (length arg)) (every #'digit-char-p arg) (parse-integer arg))))
    (unless n (fail 501 "Syntax: REST offset."))
    (setf (ftp-rest ftp) n)
    (reply ftp 350 "Restarting at ~d. Send STORE or RETRIEVE." n)))
