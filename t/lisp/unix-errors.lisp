;;;; unix-errors.lisp — errno conditions: classes from the table, reports, details.

(in-package :crow.test)

(def-suite unix-errors :in crow)
(in-suite unix-errors)

(test enoent-on-missing-file
  (let ((c (handler-case (progn (open-fd "/nonexistent/crow-missing") nil)
             (unix-error (e) e))))
    (is (typep c 'enoent) "opening a missing file signals the ENOENT class")
    (is (typep c 'unix-error))
    (is (typep c 'crow-error))
    (is (= +enoent+ (unix-error-errno c)))
    (is (equal "open" (unix-error-syscall c)))
    (is (equal "/nonexistent/crow-missing" (unix-error-detail c)) "the path is in the condition")
    (let ((report (princ-to-string c)))
      (is (search "No such file or directory" report) "report carries strerror: ~a" report)
      (is (search "/nonexistent/crow-missing" report) "report carries the path: ~a" report))))

(test errno-classes
  (with-temp-dir (d)
    (mkdir (concatenate 'string d "x") #o700)
    (signals eexist (mkdir (concatenate 'string d "x") #o700))
    (signals enotdir (read-directory "/etc/passwd"))
    (signals ebadf (close-fd 987654))
    (signals enotempty (rmdir d))
    (is (= +eexist+ (handler-case (mkdir (concatenate 'string d "x") #o700)
                      (unix-error (e) (unix-error-errno e)))))))

(test constants-from-headers
  (is (= 2 +enoent+) "ENOENT from <errno.h>")
  (is (= 11 +eagain+))
  (is (= 98 +eaddrinuse+))
  (is (= 111 +econnrefused+))
  (is (search "Connection refused" (strerror +econnrefused+))))

(test unknown-keyword-is-a-crow-error
  (signals crow-error (getrlimit :no-such-limit))
  (signals crow-error (string-to-c (format nil "a~cb" (code-char 0)))))
