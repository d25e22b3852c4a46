;;;; conditions.lisp — the conditions crow.server signals.

(in-package :crow.server)

(define-condition config-error (crow-error)
  ((file :initarg :file :reader config-error-file)
   (line :initarg :line :initform nil :reader config-error-line)
   (message :initarg :message :reader config-error-message)
   (others :initarg :others :initform '()))
  (:report (lambda (c s)
             (loop for (e . more) on (config-error-list c)
                   do (format s "~a~@[:~d~]: ~a~@[~%~]" (config-error-file e)
                              (config-error-line e) (config-error-message e) more))))
  (:documentation "A configuration file is wrong.  FILE and LINE say where (LINE is NIL when
the file itself could not be read), MESSAGE what.  One condition carries every error found in
a file: its own plus the others (see config-error-list); it reports them one per line, each as
`file:line: message`."))

(defun config-error-list (condition)
  "Returns every error CONDITION carries, itself first, as a list of config-error conditions
in the order they were found.  Can't fail."
  (cons condition (slot-value condition 'others)))
