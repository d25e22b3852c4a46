;;;; vfs.lisp — the simulated chroot: client paths normalised inside the user's home (`..`,
;;;; absolute paths, `//`, NUL bytes, overlong names), symbolic links followed only while they
;;;; stay inside, and the listings (LIST, NLST, MLSD/MLST facts) of what is there.

(in-package :crow.ftp)

(defconstant +max-path+ 4096)
(defconstant +max-name+ 255)

(defun normalize-path (cwd path)
  "Returns the virtual absolute path (\"/\" or \"/a/b\", no trailing slash) PATH names from the
virtual directory CWD: absolute paths start at the user's root, `.` and empty components are
dropped, `..` never climbs above the root.  Returns NIL for a path holding a NUL, longer than
4,096 bytes, or with a component longer than 255 bytes.  Can't fail."
  (when (or (find (code-char 0) path)
            (> (length (utf8-encode path)) +max-path+))
    (return-from normalize-path nil))
  (let ((parts (if (and (plusp (length path)) (char= (char path 0) #\/))
                   '()
                   (reverse (remove "" (%split cwd #\/) :test #'string=)))))
    (dolist (c (%split path #\/))
      (cond ((or (string= c "") (string= c ".")))
            ((string= c "..") (pop parts))
            ((> (length (utf8-encode c)) +max-name+) (return-from normalize-path nil))
            (t (push c parts))))
    (if parts
        (format nil "~{/~a~}" (reverse parts))
        "/")))

(defun virtual-parent (vpath)
  "Returns the parent of virtual path VPATH (\"/\" for \"/\").  Can't fail."
  (let ((i (position #\/ vpath :from-end t)))
    (if (or (null i) (zerop i)) "/" (subseq vpath 0 i))))

(defun virtual-name (vpath)
  (subseq vpath (1+ (or (position #\/ vpath :from-end t) -1))))

(defun inside-p (home real)
  "True when the resolved path REAL is HOME or below it.  Can't fail."
  (or (string= real home)
      (and (> (length real) (length home))
           (string= home real :end2 (length home))
           (char= (char real (length home)) #\/))
      (string= home "/")))

(defun host-path (home vpath)
  "Returns the path on the host for virtual VPATH under HOME.  Can't fail."
  (if (string= vpath "/") (if (string= home "") "/" home) (concatenate 'string home vpath)))

(defun resolve-existing (home vpath)
  "Returns the host path of virtual VPATH when it exists and every symbolic link on the way
stays inside HOME (a resolved real path), else (values NIL REASON) with REASON :missing or
:outside.  Can't fail."
  (multiple-value-bind (real errno) (realpath (host-path home vpath))
    (declare (ignore errno))
    (cond ((null real)
           ;; a dangling link may point anywhere: it does not exist for the user
           (values nil :missing))
          ((inside-p home real) (host-path home vpath))
          (t (values nil :outside)))))

(defun resolve-new (home vpath)
  "Returns the host path for creating virtual VPATH (its parent must resolve inside HOME; an
existing last component must too, and a symbolic link there must resolve inside).  Returns
\(values NIL REASON) otherwise (:missing parent, :outside, :root).  Can't fail."
  (when (string= vpath "/") (return-from resolve-new (values nil :root)))
  (multiple-value-bind (parent why) (resolve-existing home (virtual-parent vpath))
    (unless parent (return-from resolve-new (values nil why)))
    (let* ((p (host-path home vpath))
           (st (ignore-errors (lstat p))))
      (cond ((null st) p)
            ((eq (stat-type st) :symlink)
             (multiple-value-bind (ok w) (resolve-existing home vpath)
               (if ok p (values nil (if (eq w :missing) :outside w)))))
            (t p)))))

;;; Listings

(defconstant +unix-epoch+ 2208988800)

(defparameter +months+ #("Jan" "Feb" "Mar" "Apr" "May" "Jun" "Jul" "Aug" "Sep" "Oct" "Nov" "Dec"))

(defun mdtm-string (unix-time)
  "YYYYMMDDHHMMSS in UTC (RFC 3659 time-val).  Can't fail."
  (multiple-value-bind (s mi h d mo y) (decode-universal-time (+ unix-time +unix-epoch+) 0)
    (format nil "~4,'0d~2,'0d~2,'0d~2,'0d~2,'0d~2,'0d" y mo d h mi s)))

(defun mode-string (st)
  (let ((m (stat-mode st)))
    (with-output-to-string (s)
      (write-char (case (stat-type st) (:directory #\d) (:symlink #\l) (t #\-)) s)
      (loop for bit in '(#o400 #o200 #o100 #o40 #o20 #o10 #o4 #o2 #o1)
            for c in '(#\r #\w #\x #\r #\w #\x #\r #\w #\x)
            do (write-char (if (logtest m bit) c #\-) s)))))

(defun list-line (st name now)
  "An `ls -l` line for NAME with stat ST (owner and group shown as ftp).  Can't fail."
  (multiple-value-bind (s mi h d mo y) (decode-universal-time (+ (stat-mtime st) +unix-epoch+) 0)
    (declare (ignore s))
    (format nil "~a ~3d ftp      ftp      ~12d ~a ~2d ~a ~a"
            (mode-string st) (stat-nlink st) (stat-size st) (aref +months+ (1- mo)) d
            (if (< (abs (- now (stat-mtime st))) (* 180 86400))
                (format nil "~2,'0d:~2,'0d" h mi)
                (format nil " ~d" y))
            name)))

(defun mlst-facts (st name perms facts &key type)
  "RFC 3659 facts for NAME (stat ST) as `fact=value;...; NAME`, restricted to FACTS (a list of
keywords among :type :size :modify :perm :unique); TYPE overrides the type fact (cdir,
pdir).  Can't fail."
  (let ((dir (eq (stat-type st) :directory)))
    (with-output-to-string (s)
      (dolist (f facts)
        (case f
          (:type (format s "type=~a;" (or type (if dir "dir" "file"))))
          (:size (format s "size=~d;" (stat-size st)))
          (:modify (format s "modify=~a;" (mdtm-string (stat-mtime st))))
          (:perm (format s "perm=~a;"
                         (coerce (if dir
                                     (append (list #\e)
                                             (and (member :list perms) '(#\l))
                                             (and (member :upload perms) '(#\c))
                                             (and (member :mkdir perms) '(#\m #\p))
                                             (and (member :delete perms) '(#\d))
                                             (and (member :rename perms) '(#\f)))
                                     (append (and (member :download perms) '(#\r))
                                             (and (member :overwrite perms) '(#\w #\a))
                                             (and (member :delete perms) '(#\d))
                                             (and (member :rename perms) '(#\f))))
                                 'string)))
          (:unique (format s "unique=~(~x~)g~(~x~);" (stat-dev st) (stat-ino st)))))
      (format s " ~a" name))))

(defun temp-name-p (name)
  (and (> (length name) 8) (string= ".mmftpd-" name :end2 8)))

(defun directory-entries (home real)
  "Returns ((NAME . STAT) ...) for directory REAL, sorted by name, each symbolic link replaced
by what it points to when that stays inside HOME and left out otherwise; upload temporaries
are left out.  Signals unix-error when REAL cannot be read."
  (let ((out '()))
    (dolist (name (read-directory real))
      (unless (temp-name-p name)
        (let* ((p (concatenate 'string (string-right-trim "/" real) "/" name))
               (st (ignore-errors (lstat p))))
          (when st
            (if (eq (stat-type st) :symlink)
                (let ((r (realpath p)))
                  (when (and r (inside-p home r))
                    (let ((st2 (ignore-errors (stat p))))
                      (when st2 (push (cons name st2) out)))))
                (push (cons name st) out))))))
    (sort out #'string< :key #'car)))
