;;;; log.lisp — the small fixed log vocabulary: log-info, log-warn, log-debug, fatal; to stderr
;;;; or syslog, one whole line per call, safe from several threads.

(in-package :crow.server)

(defvar *program* "crow" "The program name every log line starts with.")
(defvar *log-target* :stderr "Where log lines go: :stderr or :syslog.")
(defvar *debug* nil "When true, log-debug lines are written.")
(defvar *log-lock* (mp:make-lock :name "crow log"))

(defun open-log (program target)
  "Sets the program name and TARGET (:stderr or :syslog; syslog is opened now, before any
chroot).  Returns TARGET."
  (setf *program* program *log-target* target)
  (when (eq target :syslog) (openlog program :facility :daemon))
  target)

(defun %log (priority fmt args)
  (let ((msg (apply #'format nil fmt args)))
    (if (eq *log-target* :syslog)
        (syslog priority msg)
        ;; A closed stderr (the log reader went away) must not stop a server.
        (mp:with-lock (*log-lock*)
          (ignore-errors
           (format *error-output* "~&~a: ~a~%" *program* msg)
           (finish-output *error-output*))))
    nil))

(defun log-info (fmt &rest args) "Logs an informational line.  Returns NIL." (%log :info fmt args))
(defun log-warn (fmt &rest args) "Logs a warning line.  Returns NIL." (%log :warning fmt args))
(defun log-debug (fmt &rest args)
  "Logs a debugging line when *debug* is true.  Returns NIL."
  (when *debug* (%log :debug fmt args)))
(defun fatal (fmt &rest args)
  "Logs an error line and ends the process with status 1."
  (%log :err fmt args)
  (ext:quit 1))
