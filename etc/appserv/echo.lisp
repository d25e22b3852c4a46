;;;; echo.lisp — an RFC 862 echo service for crow-appserv (framing raw): every read is
;;;; written back as it came; over UDP each datagram is sent back to its sender.

(defun on-data (conn data)
  "Returns DATA unchanged: the reply."
  (declare (ignore conn))
  data)
