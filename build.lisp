;;;; build.lisp — builds every crow executable into build/bin/ (run by `make programs`).
;;;;
;;;; For each program: ASDF compiles its system and dependencies (incrementally, cache under
;;;; build/asdf/), bundles the Lisp objects into one static library (monolithic-lib-op), and
;;;; c:build-program links that with build/libcrowcore.a last, with an explicit epilogue that
;;;; calls the program's entry point and exits with its status (without it ECL starts a REPL).

(require :cmp)
(load (merge-pathnames "tools/ecl-env.lisp" *load-truename*))

(defparameter *root* cl-user::*crow-root*)
(defun root (relative) (merge-pathnames relative *root*))

;;; The program table.  The Makefile reads the names from the lines starting `(program "`.
(defparameter *programs*
  '((program "crow-sh"   :system "crow/sh"   :entry "CROW.SH:MAIN")
    (program "crow-echo" :system "crow/echo" :entry "CROW.ECHO:MAIN")
    (program "crow-hello" :system "crow/hello" :entry "CROW.HELLO:MAIN")
    (program "crow-appserv" :system "crow/appserv" :entry "CROW.APPSERV:MAIN")
    (program "mmspawnd" :system "crow/spawn" :entry "CROW.SPAWN:MAIN")
    (program "mmstatd" :system "crow/mmstatd" :entry "CROW.MMSTATD:MAIN")
    (program "crow-httpd" :system "crow/site" :entry "CROW.HTTP:MAIN" :libs ("-lpq"))
    (program "symbol-game" :system "crow/symbol-game" :entry "CROW.SYMBOL-GAME:MAIN")
    (program "mmftpd" :system "crow/ftp" :entry "CROW.FTP:MAIN")
    (program "mmftpasswd" :system "crow/ftp" :entry "CROW.FTP:PASSWD-MAIN")
    (program "mmsmtpd" :system "crow/mail" :entry "CROW.MAIL:SMTP-MAIN" :libs ("-lpq"))
    (program "mmpop3d" :system "crow/mail" :entry "CROW.MAIL:POP3-MAIN" :libs ("-lpq"))
    (program "irclog" :system "crow/irc" :entry "CROW.IRC:MAIN")))

(defun entry-form (entry)
  (let* ((colon (position #\: entry))
         (pkg (subseq entry 0 colon))
         (name (string-left-trim ":" (subseq entry colon))))
    ;; The entry returns the exit status; anything escaping it is reported, status 70.  The
    ;; program then flushes its streams and ends at once (_exit): by then it has stopped its
    ;; own threads, and ECL's quit would wait many seconds for threads blocked in C (swank's
    ;; accept, for one).
    `(let ((status (handler-case (funcall (intern ,name ,pkg))
                     (error (e)
                       (format *error-output* "~a: ~a~%" (first (ext:command-args)) e)
                       70))))
       (ignore-errors (finish-output *standard-output*))
       (ignore-errors (finish-output *error-output*))
       (funcall (intern "EXIT-PROCESS" "CROW.UNIX") (if (integerp status) status 0)))))

(defun build-one (name &key system entry objects libs)
  "Builds build/bin/NAME from SYSTEM with ENTRY; OBJECTS (file names) are linked before the
C core (make site's generated embedded-files object), LIBS (\"-lpq\" ...) after it."
  (let* ((out (root (format nil "build/bin/~a" name)))
         (core (namestring (root "build/libcrowcore.a"))))
    (format t "~&;;; build.lisp: ~a (~a)~%" name system)
    (asdf:load-system system)
    (asdf:operate 'asdf:monolithic-lib-op system)
    (let ((lib (first (asdf:output-files 'asdf:monolithic-lib-op system))))
      (ensure-directories-exist out)
      (c:build-program (namestring out)
                       :lisp-files (list (namestring lib))
                       :ld-flags (append objects (list core) libs
                                         (list "-lssl" "-lcrypto" "-lcrypt" "-lpthread" "-lm"))
                       :epilogue-code (entry-form entry)))
    (unless (probe-file out)
      (error "build.lisp: ~a was not produced" out))))

(handler-case
    (let ((only (rest (member "--" (ext:command-args) :test #'string=))))
      ;; -- --site NAME OBJECT...: crow-httpd's system under the name NAME, OBJECTs linked in
      ;; (make site, mk/embed.mk)
      (when (equal (first only) "--site")
        (destructuring-bind (name &rest objects) (rest only)
          (build-one name :system "crow/site" :entry "CROW.HTTP:MAIN" :libs '("-lpq")
                          :objects (mapcar (lambda (o) (namestring (truename o))) objects))
          (ext:quit 0)))
      (dolist (p *programs*)
        (destructuring-bind (tag name &rest args) p
          (declare (ignore tag))
          (when (or (null only) (member name only :test #'string=))
            (apply #'build-one name args))))
      (ext:quit 0))
  (error (e)
    (format *error-output* "~&build.lisp: ~a~%" e)
    (ext:quit 1)))
