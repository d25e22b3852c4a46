;;;; access-log.lisp — one line per answered request in the combined log format, to a file,
;;;; syslog or a pipe to a command (`access-log "|command"`, e.g. a statistics feeder).

(in-package :crow.http)

(defvar *access-log* nil "NIL (off), :syslog, or a descriptor lines are written to.")
(defvar *access-log-pid* nil "The pid of the command behind a piped access log.")
(defvar *access-lock* (mp:make-lock :name "crow.http access log"))

(defun open-access-log (spec)
  "Opens the access log SPEC: \"syslog\", \"|command\" (run by /bin/sh with the lines on its
standard input) or a file name (appended to).  Returns the new *access-log*.  Signals
unix-error."
  (close-access-log)
  (setf *access-log*
        (cond ((null spec) nil)
              ((string= spec "syslog") :syslog)
              ((and (plusp (length spec)) (char= (char spec 0) #\|))
               (multiple-value-bind (r w) (pipe)
                 (unwind-protect
                      (setf *access-log-pid* (spawn "/bin/sh" (list "sh" "-c" (subseq spec 1))
                                                    :stdin r))
                   (%close r))
                 w))
              (t (open-fd spec :direction :output :if-exists :append)))))

(defun close-access-log ()
  "Closes the access log (a piped command then sees end of file).  Returns NIL."
  (when (integerp *access-log*) (%close *access-log*))
  (when *access-log-pid*
    (ignore-errors (waitpid *access-log-pid*))
    (setf *access-log-pid* nil))
  (setf *access-log* nil))

(defun %log-quote (s)
  "S quoted for a \"...\" field (c-core/html's crow_html_log_quote), or - for NIL."
  (if s (log-quote s) "-"))

(defun access-line (req)
  "Returns REQ's access log line (combined format, no newline)."
  (let ((d (ev-date (request-ev req))))   ; "Sun, 06 Nov 1994 08:49:37 GMT"
    (format nil "~a - - [~a/~a/~a:~a +0000] \"~a ~a HTTP/1.~d\" ~d ~d \"~a\" \"~a\""
            (request-peer-host req) (subseq d 5 7) (subseq d 8 11) (subseq d 12 16)
            (subseq d 17 25) (symbol-name (request-method req))
            (%log-quote (request-target req)) (- (request-version req) 10)
            (request-status req) (request-sent req)
            (%log-quote (request-header req "referer"))
            (%log-quote (request-header req "user-agent")))))

(defun log-access (req)
  "Writes REQ's access line when the access log is on.  A failing log never fails the
request.  Returns NIL."
  (let ((log *access-log*))
    (when log
      (let ((line (access-line req)))
        (if (eq log :syslog)
            (syslog :info line)
            (let ((bytes (utf8-encode (concatenate 'string line (string #\Linefeed)))))
              (mp:with-lock (*access-lock*)
                (ignore-errors (write-all log bytes))))))))
  nil)
