;;;; banner.lisp — a banner service for crow-appserv: every connection gets one line, then
;;;; is closed (see banner.conf).

(defparameter *banner*
  (coerce (format nil "220 crow banner~c~c" #\Return #\Linefeed) 'simple-base-string)
  "The line written to every connection.")

(defun on-open (conn)
  "Returns the banner and closes CONN once it is written."
  (close-after conn)
  *banner*)

(defun on-data (conn data)
  "Input is ignored (the connection closes after the banner)."
  (declare (ignore conn data))
  nil)
