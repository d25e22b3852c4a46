;;;; script.lisp — runs the Symbol Game from source in SBCL (or ECL) without ASDF:
;;;;   sbcl --script lisp/games/symbol-game/script.lisp [--load FILE]
;;;; It loads the files in the order symbol-game.asd lists them, then calls run-cli.

(defpackage :symbol-game-script (:use :cl))
(in-package :symbol-game-script)

(defun component-files (asd)
  "Returns the :file names of the defsystem form in ASD, read with *read-eval* NIL."
  (with-open-file (in asd)
    (let* ((*read-eval* nil)
           (*package* (find-package :symbol-game-script))
           (form (read in)))
      (loop for c in (getf (cddr form) :components)
            collect (second c)))))

(let* ((here (make-pathname :name nil :type nil :version nil :defaults *load-truename*))
       (status 70)
       (*load-verbose* nil))
  (unwind-protect
       (progn
         (handler-bind ((style-warning #'muffle-warning))
           (dolist (f (component-files (merge-pathnames "symbol-game.asd" here)))
             (load (merge-pathnames (concatenate 'string f ".lisp") here))))
         (setf status (funcall (find-symbol "RUN-CLI" "CROW.SYMBOL-GAME")
                               #+sbcl (rest sb-ext:*posix-argv*)
                               #+ecl (rest (member "--" (ext:command-args) :test #'string=))
                               #-(or sbcl ecl) '())))
    (finish-output *standard-output*)
    #+sbcl (sb-ext:exit :code status :abort nil)
    #+ecl (ext:quit status)))
