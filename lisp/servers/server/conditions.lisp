;;;; conditions.lisp — the conditions crow.server signals.

(in-package :crow.server)

(define-condition config-error (crow-error)
  ((file :initarg :file :reader config-error-file)
   (line :initarg :line :initform nil :reader config-error-line)
   (message :initarg :message :reader config-error-message)
   (all :initarg :all :initform '()))
  (:report (lambda (c s)
             (loop for (e . more) on (config-error-list c)
                   do (format s "~a~@[:~d~]: ~a~@[~%~]" (config-error-file e)
                              (config-error-line e) (config-error-message e) more))))
  (:documentation "A configuration file is wrong.  FILE and LINE say where (LINE is NIL when
the file itself could not be read), MESSAGE what.  The condition signalled carries every error
found (see config-error-list), FILE, LINE and MESSAGE being the first's; it reports them one
per line, each as `file:line: message`."))

(defun config-error-list (condition)
  "Returns every error CONDITION carries as a list of config-error conditions, one error each,
in the order they were found (a list of CONDITION alone when it carries one).  Can't fail."
  (or (slot-value condition 'all) (list condition)))
