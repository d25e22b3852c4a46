;;;; syslog.lisp — openlog/syslog/closelog.

(in-package :crow.unix)

(ffi:clines "#include <syslog.h>" "#include <stdlib.h>" "#include <string.h>"
            "static char *crow_syslog_ident;")

(define-keyword-map syslog-facility "Returns the LOG_ facility constant for a keyword."
  (:daemon "LOG_DAEMON") (:user "LOG_USER") (:mail "LOG_MAIL") (:ftp "LOG_FTP")
  (:auth "LOG_AUTH") (:authpriv "LOG_AUTHPRIV") (:local0 "LOG_LOCAL0") (:local1 "LOG_LOCAL1")
  (:local2 "LOG_LOCAL2") (:local3 "LOG_LOCAL3") (:local4 "LOG_LOCAL4") (:local5 "LOG_LOCAL5")
  (:local6 "LOG_LOCAL6") (:local7 "LOG_LOCAL7"))

(define-keyword-map syslog-priority "Returns the LOG_ priority constant for a keyword."
  (:emerg "LOG_EMERG") (:alert "LOG_ALERT") (:crit "LOG_CRIT") (:err "LOG_ERR")
  (:warning "LOG_WARNING") (:notice "LOG_NOTICE") (:info "LOG_INFO") (:debug "LOG_DEBUG"))

(defun openlog (ident &key (facility :daemon) (pid t) (ndelay t))
  "Opens the connection to syslog with IDENT (copied: syslog keeps the pointer) and FACILITY.
With NDELAY the socket is opened now, before any chroot.  Can't fail."
  (let ((c (string-to-c ident))
        (f (syslog-facility facility))
        (opts (logior (if pid (ffi:c-inline () () :int "LOG_PID" :one-liner t) 0)
                      (if ndelay (ffi:c-inline () () :int "LOG_NDELAY" :one-liner t) 0))))
    (ffi:c-inline (c opts f) (:object :int :int) :void
      "{ char *old = crow_syslog_ident; crow_syslog_ident = strdup((char *)#0->vector.self.b8);
         openlog(crow_syslog_ident, #1, #2); free(old); }")
    t))

(defun syslog (priority message)
  "Logs MESSAGE (a string, sent verbatim: no format directives) at PRIORITY (:err :warning
:info :debug ...).  Can't fail."
  (let ((c (string-to-c (substitute #\? (code-char 0) message)))
        (p (syslog-priority priority)))
    (ffi:c-inline (p c) (:int :object) :void "syslog(#0, \"%s\", (char *)#1->vector.self.b8)"
                  :one-liner t)
    t))

(defun closelog ()
  "Closes the syslog connection.  Can't fail."
  (ffi:c-inline () () :void "closelog()" :one-liner t)
  t)
