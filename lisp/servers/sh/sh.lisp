;;;; sh.lisp — crow-sh: run a Lisp script with crow.unix loaded, evaluate a form, or a REPL;
;;;; and start-swank, shared with every program that takes --swank.

(in-package :crow.sh)

(defvar *version* "0.1.0")

(defvar *script* nil "The script's path, or NIL for -e and the REPL.")
(defvar *args* '() "The arguments after the script name (or after -e FORM), as strings.")
(defvar *posix-argv* '()
  "Like SBCL's: the script path (or \"crow-sh\") followed by *args*.")

(defun usage (stream)
  (format stream "usage: crow-sh [--swank PORT] [SCRIPT.lisp [ARG...]]
       crow-sh [--swank PORT] -e FORM [ARG...]
       crow-sh --help | --version

Runs SCRIPT (a file of Lisp forms; a first line starting with #! is skipped) in package
CROW-SH-USER, which uses CL and CROW.UNIX.  CROW.SH:*ARGS* holds the arguments after the
script, CROW.SH:*POSIX-ARGV* the script name followed by them.  (exit N) ends the script with
status N; a script that returns normally exits 0, one that signals an error prints it and
exits 1.  -e FORM evaluates FORM and prints its values.  With no script, starts a REPL.
--swank PORT starts a swank server on 127.0.0.1:PORT for SLIME (M-x slime-connect) first; with
no script it then serves until killed.~%"))

(defun exit (&optional (status 0))
  "Ends the script (or -e form) with exit STATUS, unwinding normally.  Does not return."
  (throw 'exit (if (integerp status) status (if status 0 1))))

(defun swank-cache-directory ()
  "Where swank's compiled files go: $CROW_CACHE, else $XDG_CACHE_HOME/crow, else ~/.cache/crow."
  (let ((c (ext:getenv "CROW_CACHE"))
        (x (ext:getenv "XDG_CACHE_HOME")))
    (pathname
     (concatenate 'string
      (string-right-trim "/" (cond ((and c (plusp (length c))) c)
                                  ((and x (plusp (length x))) (format nil "~a/crow" x))
                                  (t (format nil "~a/.cache/crow" (or (ext:getenv "HOME") "/tmp")))))
      "/"))))

(defun load-swank ()
  "Loads swank (Debian's cl-swank), compiling it once into the cache directory (about a
minute the first time; `make` does it ahead, into build/swank-cache/).  Returns T.  Signals an
error if swank cannot be loaded."
  (require :asdf)
  (unless (find-package "SWANK")
    (let ((cache (swank-cache-directory)))
      (funcall (intern "INITIALIZE-OUTPUT-TRANSLATIONS" "ASDF")
               `(:output-translations (t (,cache :**/ :*.*.*)) :inherit-configuration))
      (let ((*standard-output* *error-output*))
        (funcall (intern "LOAD-SYSTEM" "ASDF") "swank"))))
  t)

(defun start-swank (port)
  "Loads swank (see load-swank) and starts its server on 127.0.0.1:PORT in a background
thread.  Returns PORT.  Signals an error if swank cannot be loaded or the port cannot be
bound."
  (load-swank)
  (let ((swank (find-package "SWANK")))
    (setf (symbol-value (intern "*LOG-EVENTS*" swank)) nil)
    (funcall (intern "CREATE-SERVER" swank) :port port :dont-close t
             :interface "127.0.0.1"))
  (format *error-output* "~&crow: swank listening on 127.0.0.1:~d~%" port)
  port)

(defun read-script-forms (path)
  "Returns the forms of the script at PATH, skipping a first #! line.  Read errors carry
file:line."
  (with-open-file (in path :external-format :utf-8)
    (let ((first (peek-char nil in nil nil))
          (line 1))
      (when (eql first #\#)
        (let ((l (read-line in nil "")))
          (if (and (> (length l) 1) (char= (char l 1) #\!))
              (incf line)
              (error "~a:1: a script starts with #! or a form" path))))
      (let ((*package* (find-package :crow-sh-user)))
        (loop for form = (handler-case (read in nil in)
                           (reader-error (e)
                             (error "~a:~a: ~a" path (ignore-errors (file-position in)) e)))
              until (eq form in)
              collect form)))))

(defun run-forms (forms &key print)
  (let ((*package* (find-package :crow-sh-user)))
    (dolist (f forms)
      (let ((vals (multiple-value-list (eval f))))
        (when print
          (format t "~{~s~^~%~}~%" vals))))))

(defun repl ()
  (let ((*package* (find-package :crow-sh-user)))
    (format t "crow-sh ~a on ECL ~a; crow.unix loaded.  (exit) or Ctrl-D leaves.~%"
            *version* (lisp-implementation-version))
    (loop
      (format t "~&~a> " (package-name *package*))
      (finish-output)
      (let ((form (handler-case (read *standard-input* nil '%eof)
                    (error (e) (format t "~&read error: ~a~%" e) (clear-input) nil))))
        (when (eq form '%eof) (terpri) (return 0))
        (handler-case
            (let ((vals (multiple-value-list (eval form))))
              (format t "~{~s~^~%~}~%" vals))
          (error (e) (format t "~&error: ~a~%" e)))))))

(defun main ()
  "crow-sh's entry point.  Returns the exit status."
  (let ((args (rest (ext:command-args)))
        (swank nil))
    (crow.unix:ignore-sigpipe)
    (loop while args
          do (let ((a (first args)))
               (cond ((member a '("-h" "--help") :test #'string=)
                      (usage *standard-output*) (return-from main 0))
                     ((string= a "--version")
                      (format t "crow-sh ~a (libcrowcore ~a, ECL ~a)~%" *version*
                              (crow.unix:core-version) (lisp-implementation-version))
                      (return-from main 0))
                     ((string= a "--swank")
                      (unless (and (second args) (every #'digit-char-p (second args)))
                        (format *error-output* "crow-sh: --swank needs a port number~%")
                        (return-from main 2))
                      (setf swank (parse-integer (second args)) args (cddr args)))
                     (t (return)))))
    (when swank (start-swank swank))
    (catch 'exit
      (handler-case
          (cond ((and args (string= (first args) "-e"))
                 (unless (second args)
                   (format *error-output* "crow-sh: -e needs a form~%")
                   (return-from main 2))
                 (setf *args* (cddr args) *posix-argv* (cons "crow-sh" *args*))
                 (run-forms (let ((*package* (find-package :crow-sh-user)))
                              (with-input-from-string (in (second args))
                                (loop for f = (read in nil in) until (eq f in) collect f)))
                            :print t)
                 (finish-output)
                 0)
                (args
                 (setf *script* (first args) *args* (rest args)
                       *posix-argv* (copy-list args))
                 (unless (probe-file *script*)
                   (format *error-output* "crow-sh: ~a: no such file~%" *script*)
                   (return-from main 2))
                 (run-forms (read-script-forms *script*))
                 (finish-output)
                 0)
                (swank
                 (format *error-output* "crow-sh: serving swank; Ctrl-C or SIGTERM ends~%")
                 (loop (sleep 3600)))
                (t (repl)))
        (error (e)
          (finish-output)
          (format *error-output* "crow-sh: ~@[~a: ~]~a~%" *script* e)
          1)))))
