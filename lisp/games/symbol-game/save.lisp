;;;; save.lisp — saving a game as a readable file of one form per line, and loading it back
;;;; after checking every character and every form, with `file:line: message` errors.
;;;;
;;;; A save file names everything by strings: (thing "LAMP" "INVENTORY").  It is checked
;;;; character by character before READ sees it (outside strings and comments only letters,
;;;; digits, -, parentheses and blanks), then read with *read-eval* NIL into a scratch package
;;;; deleted afterwards, so a hostile file can neither evaluate nor intern anything.  The game
;;;; changes only once the whole file has been checked.

(in-package :crow.symbol-game)

(defparameter +save-version+ 1)
(defparameter +max-save-size+ 65536 "Longest save file LOAD reads, in characters.")

(defun save-pathname (file)
  "Returns FILE (a file name as typed) as a pathname.  Signals game-error for a name with
characters Lisp namestrings take as wildcards or escapes."
  (when (find-if (lambda (c) (find c "*?[\\")) file)
    (refuse "Cannot use ~a: a file name with *, ?, [ or \\ is not supported." file))
  (pathname file))

(defun file-problem (file e)
  "Returns a short reason why FILE could not be opened or read (E: the error signalled)."
  (let ((dir (directory-namestring file))
        (found (ignore-errors (probe-file file))))
    (cond ((and (plusp (length dir)) (not (ignore-errors (probe-file dir))))
           "no such directory")
          ((and found (null (pathname-name found)) (null (pathname-type found)))
           "it is a directory")
          (t
           ;; the Lisp's own words, on one line
           (let ((words '()) (w (make-string-output-stream)))
             (flet ((flush () (let ((x (get-output-stream-string w)))
                                (when (plusp (length x)) (push x words)))))
               (loop for c across (princ-to-string e)
                     do (if (blank-p c) (flush) (write-char c w)))
               (flush))
             (format nil "~{~a~^ ~}" (nreverse words)))))))

(defparameter +save-header+ ";;; Symbol Game save file"
  "How a save file starts: SAVE replaces no existing file that does not.")

(defun save-file-p (pathname)
  "True when the file at PATHNAME starts like a save file."
  (ignore-errors
   (with-open-file (in pathname :direction :input)
     (let ((line (read-line in nil "")))
       (and (>= (length line) (length +save-header+))
            (string= +save-header+ line :end2 (length +save-header+)))))))

(defun save-game (file)
  "Writes the current game to FILE, replacing an earlier save file but no other file.
Returns FILE.  Signals game-error if the file cannot be written or exists and is not a save
file."
  (let* ((pathname (save-pathname file))
         (found (ignore-errors (probe-file pathname))))
    (cond ((null found))
          ((and (null (pathname-name found)) (null (pathname-type found)))
           (refuse "Cannot save to ~a: it is a directory." file))
          ((not (save-file-p found))
           (refuse "Cannot save to ~a: it exists and is not a Symbol Game save file (left alone)."
                   file)))
    (handler-case
        (with-open-file (out pathname :direction :output :if-exists :supersede
                                      :if-does-not-exist :create)
          (with-standard-io-syntax
            ;; standard syntax, but not *print-readably*: SBCL would write a base-string as #.
            (setf *print-readably* nil)
            (format out "~a, read back by LOAD (symbol-game ~a).~%" +save-header+ *version*)
            (format out "(symbol-game-save ~d)~%" +save-version+)
            (format out "(place ~s)~%" (place-name (current-place)))
            (format out "(moves ~d)~%" (game-moves *game*))
            (dolist (f (game-flags *game*))
              (format out "(flag ~s)~%" (symbol-name f)))
            (dolist (tn *thing-order*)
              (let ((where (thing-location tn)))
                (format out "(thing ~s~@[ ~s~])~%" tn
                        (cond ((eq where :inventory) "INVENTORY")
                              (where (place-name where))))))))
      (error (e)
        (refuse "Cannot save to ~a: ~a." file (file-problem file e)))))
  file)

(defun save-error (file line control &rest args)
  (refuse "~a:~d: ~?" file line control args))

(defun check-save-text (text file)
  "Signals game-error at the first character not allowed in a save file, or an unterminated
string.  Returns T."
  (let ((line 1) (state :code) (string-line 1))
    (loop for i from 0 below (length text)
          for c = (char text i)
          do (case state
               (:code
                (cond ((char= c #\") (setf state :string string-line line))
                      ((char= c #\;) (setf state :comment))
                      ((or (word-char-p c) (blank-p c) (find c "()")))
                      (t (save-error file line "~a is not allowed in a save file"
                                     (describe-char c)))))
               (:comment (when (char= c #\Newline) (setf state :code)))
               (:string (cond ((char= c #\\) (setf state :escape))
                              ((char= c #\") (setf state :code))))
               (:escape (setf state :string)))
             (when (char= c #\Newline) (incf line)))
    (when (member state '(:string :escape))
      (save-error file string-line "a string is not closed")))
  t)

(defun read-save-forms (text file)
  "Returns ((LINE . FORM) ...) for the forms of TEXT, already checked by check-save-text.
Signals game-error naming the line of a form that cannot be read."
  (let ((name (game-package-name "INPUT"))
        (pos 0) (line 1) (forms '()))
    (when (find-package name) (delete-package name))
    (let ((scratch (make-package name :use '())))
      (unwind-protect
           (with-standard-io-syntax
             (let ((*package* scratch) (*read-eval* nil))
               (loop
                 ;; skip blanks and comments, counting lines, to know where the form starts
                 (loop while (< pos (length text))
                       do (let ((c (char text pos)))
                            (cond ((char= c #\;)
                                   (setf pos (or (position #\Newline text :start pos) (length text))))
                                  ((blank-p c)
                                   (when (char= c #\Newline) (incf line))
                                   (incf pos))
                                  (t (return)))))
                 (when (>= pos (length text)) (return))
                 (multiple-value-bind (form end)
                     (handler-case (read-from-string text t nil :start pos)
                       (end-of-file () (save-error file line "a list is not closed"))
                       (error () (save-error file line "cannot read this form")))
                   (push (cons line form) forms)
                   (incf line (count #\Newline text :start pos :end end))
                   (setf pos end)))))
        (delete-package scratch)))
    (nreverse forms)))

(defun form-head (form)
  (and (consp form) (symbolp (first form)) (symbol-name (first form))))

(defun parse-save (text file)
  "Checks the save file TEXT.  Returns (values PLACE MOVES FLAGS LOCATIONS), LOCATIONS an
alist (thing-symbol . package-or-NIL).  Signals game-error `FILE:LINE: message` at the first
problem."
  (check-save-text text file)
  (let ((forms (read-save-forms text file))
        place moves (flags '()) (locations '()))
    (let ((head (first forms)))
      (unless (and head (equal (form-head (cdr head)) "SYMBOL-GAME-SAVE"))
        (save-error file (if head (car head) 1) "not a Symbol Game save file"))
      (unless (equal (rest (cdr head)) (list +save-version+))
        (save-error file (car head) "save file version ~a, this game reads version ~d"
                    (or (second (cdr head)) "missing") +save-version+)))
    (dolist (lf (rest forms))
      (destructuring-bind (line . form) lf
        (let ((head (form-head form))
              (args (and (consp form) (rest form))))
          (flet ((bad (control &rest a) (apply #'save-error file line control a))
                 (one-string ()
                   (unless (and (= (length args) 1) (stringp (first args)))
                     (save-error file line "~(~a~) takes one string" head))
                   (first args)))
            (cond
              ((equal head "PLACE")
               (when place (bad "the place is given twice"))
               (setf place (or (find-place (one-string))
                               (bad "unknown place ~s" (first args)))))
              ((equal head "MOVES")
               (when moves (bad "the moves are given twice"))
               (unless (and (= (length args) 1) (integerp (first args))
                            (<= 0 (first args) 1000000000))
                 (bad "moves takes a whole number from 0"))
               (setf moves (first args)))
              ((equal head "FLAG")
               (let* ((name (one-string))
                      (flag (or (find name +flags+ :key #'symbol-name :test #'string=)
                                (bad "unknown flag ~s" name))))
                 (when (member flag flags) (bad "flag ~s is given twice" name))
                 (push flag flags)))
              ((equal head "THING")
               (unless (and (<= 1 (length args) 2) (every #'stringp args))
                 (bad "thing takes a name and, unless it is nowhere, where it is"))
               (let ((s (or (thing-symbol (first args)) (bad "unknown thing ~s" (first args))))
                     (where (second args)))
                 (when (assoc s locations) (bad "thing ~s is given twice" (first args)))
                 (push (cons s (cond ((null where) nil)
                                     ((string= where "INVENTORY") (inventory-package))
                                     ((find-place where) (place-package (find-place where)))
                                     (t (bad "unknown place ~s for ~a" where (first args)))))
                       locations)))
              (t (bad "unknown entry ~a" (if head head "(not a list with a name)"))))))))
    (let ((end (1+ (count #\Newline text))))
      (unless place (save-error file end "the file does not say where the player is"))
      (unless moves (save-error file end "the file does not give the moves"))
      (dolist (tn *thing-order*)
        (unless (assoc (thing-symbol tn) locations)
          (save-error file end "the file does not say where ~a is" tn))))
    (values place moves flags locations)))

(defun load-game (file)
  "Replaces the current game with the one saved in FILE.  Returns FILE.  Signals game-error
(the game unchanged) if the file cannot be read or is not a valid save file."
  (let ((text (handler-case
                  (with-open-file (in (save-pathname file) :direction :input
                                                           :if-does-not-exist nil)
                    (unless in (refuse "Cannot load ~a: no such file." file))
                    (let ((s (make-string (min (or (ignore-errors (file-length in)) 0)
                                               (1+ +max-save-size+)))))
                      (subseq s 0 (read-sequence s in))))
                (game-error (e) (error e))
                (error (e) (refuse "Cannot load ~a: ~a." file (file-problem file e))))))
    (when (> (length text) +max-save-size+)
      (refuse "Cannot load ~a: larger than ~d characters, not a save file." file +max-save-size+))
    (multiple-value-bind (place moves flags locations)
        (handler-case (parse-save text file)
          (game-error (e) (refuse "Cannot load: ~a.  The game goes on unchanged."
                                  (game-error-text e))))
      (let ((inv (inventory-package)))
        (dolist (p (package-use-list inv)) (unuse-package p inv)))
      (setf *game* (make-game :moves moves :flags (reverse flags)))
      (dolist (l locations) (move-thing (car l) nil))
      (dolist (l locations) (move-thing (car l) (cdr l)))
      (enter-place place)
      file)))
