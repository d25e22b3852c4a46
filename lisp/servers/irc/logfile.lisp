;;;; logfile.lisp — one file per channel per day: LOG-DIR/NETWORK/#channel/YYYY-MM-DD.log,
;;;; appended line by line (UTF-8).  The day of a line is the day of its own timestamp, so a
;;;; file ends exactly at the day boundary (UTC or local, *utc*) whatever the clock says.

(in-package :crow.irc)

(defstruct (log-writer (:constructor %make-log-writer (directory)))
  "Open log files under DIRECTORY (a string ending in /): \"network channel\" -> (PATH DAY
. FD); one lock for all."
  directory (files (make-hash-table :test 'equal)) (lock (mp:make-lock :name "irclog files")))

(defun make-log-writer (directory)
  "Returns a writer for logs under DIRECTORY.  Can't fail."
  (%make-log-writer (if (and (plusp (length directory))
                             (char= (char directory (1- (length directory))) #\/))
                        directory
                        (concatenate 'string directory "/"))))

(defun %safe-name (name)
  "NAME made safe as one path component: lower-cased the IRC way; / and NUL escaped, and a
leading dot too (no `..`)."
  (let ((s (with-output-to-string (out)
             (loop for c across (irc-downcase name)
                   do (if (member c '(#\/ #\Nul #\%))
                          (format out "%~2,'0X" (char-code c))
                          (write-char c out))))))
    (if (and (plusp (length s)) (char= (char s 0) #\.))
        (concatenate 'string "%2E" (subseq s 1))
        s)))

(defun log-file-path (writer network channel seconds)
  "Returns the log file for CHANNEL of NETWORK on the day of SECONDS.  Can't fail."
  (concatenate 'string (log-writer-directory writer) (%safe-name network) "/"
               (%safe-name channel) "/" (subseq (format-stamp seconds) 0 10) ".log"))

(defun %ensure-directories (path)
  "Creates the missing directories of file PATH (mode 0755)."
  (loop for slash = (position #\/ path :start 1) then (position #\/ path :start (1+ slash))
        while slash
        do (let ((dir (subseq path 0 slash)))
             (unless (file-exists-p dir)
               (handler-case (mkdir dir #o755)
                 (unix-error (e) (unless (file-exists-p dir) (error e))))))))

(defun %open-log (path)
  (%ensure-directories path)
  (open-fd path :direction :output :if-exists :append :if-does-not-exist :create))

(defun write-log-line (writer network channel seconds line)
  "Appends LINE and a newline to CHANNEL's file of the day of SECONDS; the file of the day
before is closed.  Returns the path.  Signals unix-error (the caller logs and goes on)."
  (let ((key (concatenate 'string (irc-downcase network) " " (irc-downcase channel)))
        (day (subseq (format-stamp seconds) 0 10))
        (bytes (utf8-encode (concatenate 'string line (string #\Newline)))))
    (mp:with-lock ((log-writer-lock writer))
      ;; An open file is (PATH DAY . FD): the path is made again only when the day changes.
      (let ((open (gethash key (log-writer-files writer))) path)
        (unless (and open (string= (cadr open) day))
          (setf path (log-file-path writer network channel seconds))
          (when open (ignore-errors (close-fd (cddr open))))
          (remhash key (log-writer-files writer))
          (setf open (list* path day (%open-log path))
                (gethash key (log-writer-files writer)) open))
        (write-all (cddr open) bytes)
        (car open)))))

(defun write-entry (writer network entry)
  "Formats ENTRY through format-line (looked up by name on every call) and appends it to its
channel's file.  Returns the line written, or NIL when format-line declined.  Signals
unix-error."
  (let ((line (funcall 'format-line entry)))
    (when line
      (write-log-line writer network (entry-channel entry) (entry-stamp entry) line)
      line)))

(defun close-log-files (writer)
  "Closes every open file of WRITER.  Can't fail."
  (mp:with-lock ((log-writer-lock writer))
    (maphash (lambda (k v) (declare (ignore k)) (ignore-errors (close-fd (cddr v))))
             (log-writer-files writer))
    (clrhash (log-writer-files writer))))
