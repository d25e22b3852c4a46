;;;; package.lisp — the crow test package and root FiveAM suite.

(defpackage :crow.test
  (:use :cl :fiveam :crow.unix :crow.server)
  (:export #:crow #:run-tap))

(in-package :crow.test)

(def-suite crow :description "Every crow FiveAM suite.")

(defun temp-dir ()
  "Returns a fresh directory under /tmp (as a string ending in /)."
  (let ((base (format nil "/tmp/crow-test-~d-~d/" (getpid) (random 1000000000))))
    (mkdir base #o700)
    base))

(defun rm-rf (dir)
  "Removes DIR and everything under it (no symlink following)."
  (dolist (n (ignore-errors (read-directory dir)))
    (let ((p (concatenate 'string dir n)))
      (if (eq (stat-type (lstat p)) :directory)
          (rm-rf (concatenate 'string p "/"))
          (unlink p))))
  (ignore-errors (rmdir dir)))

(defmacro with-temp-dir ((var) &body body)
  `(let ((,var (temp-dir)))
     (unwind-protect (progn ,@body) (rm-rf ,var))))

(defun command-output (program &rest args)
  "Runs PROGRAM with ARGS through crow.unix:spawn with stdout on a pipe.  Returns (values
OUTPUT-STRING HOW CODE)."
  (multiple-value-bind (r w) (pipe)
    (let ((pid (handler-bind ((error (lambda (e) (declare (ignore e)) (close-fd r) (close-fd w))))
                 (spawn program (cons program args) :stdout w))))
      (close-fd w)
      (let ((out (make-array 0 :element-type '(unsigned-byte 8) :adjustable t :fill-pointer 0))
            (buf (make-octets 4096)))
        (loop for n = (read-fd r buf) until (zerop n)
              do (loop for i below n do (vector-push-extend (aref buf i) out)))
        (close-fd r)
        (multiple-value-bind (p how code) (waitpid pid)
          (declare (ignore p))
          (values (octets-to-string (coerce out 'octets)) how code))))))

(defun octets-of (string)
  (map 'octets #'char-code string))
