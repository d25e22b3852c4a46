;;;; run.lisp — runs every FiveAM suite of crow/test and prints TAP, one line per check
;;;; (ecl --norc --shell t/lisp/run.lisp [SUITE...]).

(load (merge-pathnames "../../tools/ecl-env.lisp" *load-truename*))

(defun tap-line (ok n desc &optional directive)
  (format t "~:[not ok~;ok~] ~d - ~a~@[ # ~a~]~%" ok n
          (substitute #\Space #\Newline (string-trim '(#\Space #\Newline) desc)) directive))

(let ((n 0) (failed 0))
  (handler-case
      (let ((*standard-output* *error-output*))
        (asdf:load-system "crow/test"))
    (error (e)
      (tap-line nil 1 (format nil "load crow/test: ~a" e))
      (format t "1..1~%")
      (ext:quit 1)))
  (let* ((fiveam-run (find-symbol "RUN" "FIVEAM"))
         (results (let ((*standard-output* (make-broadcast-stream)))
                    (funcall fiveam-run (find-symbol "CROW" "CROW.TEST")))))
    (dolist (r results)
      (let* ((tc (ignore-errors (funcall (find-symbol "TEST-CASE" "FIVEAM") r)))
             (name (if tc (funcall (find-symbol "NAME" "FIVEAM") tc) "?"))
             (reason (ignore-errors (funcall (find-symbol "REASON" "FIVEAM") r)))
             (kind (type-of r)))
        (incf n)
        (cond
          ((string= kind "TEST-PASSED") (tap-line t n (format nil "~(~a~)" name)))
          ((string= kind "TEST-SKIPPED") (tap-line t n (format nil "~(~a~)" name)
                                                   (format nil "SKIP ~a" reason)))
          (t (incf failed)
           (tap-line nil n (format nil "~(~a~): ~a" name (or reason kind))))))))
  (format t "1..~d~%" n)
  (finish-output)
  (ext:quit (if (zerop failed) 0 1)))
