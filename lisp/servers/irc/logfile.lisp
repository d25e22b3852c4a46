;;;; logfile.lisp — one file per channel per day: LOG-DIR/NETWORK/#channel/YYYY-MM-DD.log,
;;;; appended line by line (UTF-8).  The day of a line is the day of its own timestamp, so a
;;;; file ends exactly at the day boundary (UTC or local, *utc*) whatever the clock says.

(in-package :crow.irc)

(defstruct (log-writer (:constructor %make-log-writer (directory)))
  "Open log files under DIRECTORY (a string ending in /): PATH -> fd; one lock for all."
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
  (format nil "~a~a/~a/~a.log" (log-writer-directory writer) (%safe-name network)
          (%safe-name channel) (subseq (format-iso8601 (floor seconds) :utc *utc*) 0 10)))

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
  (let ((path (log-file-path writer network channel seconds))
        (key (cons (irc-downcase network) (irc-downcase channel)))
        (bytes (utf8-encode (concatenate 'string line (string #\Newline)))))
    (mp:with-lock ((log-writer-lock writer))
      (let ((open (gethash key (log-writer-files writer))))
        (unless (and open (string= (car open) path))
          (when open (ignore-errors (close-fd (cdr open))))
          (remhash key (log-writer-files writer))
          (setf open (cons path (%open-log path))
                (gethash key (log-writer-files writer)) open))
        (write-all (cdr open) bytes)))
    path))

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
    (maphash (lambda (k v) (declare (ignore k)) (ignore-errors (close-fd (cdr v))))
             (log-writer-files writer))
    (clrhash (log-writer-files writer))))
