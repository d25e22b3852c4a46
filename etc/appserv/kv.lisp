;;;; kv.lisp — a small line-protocol key/value service for crow-appserv (framing line).
;;;;
;;;; Commands (one per line, words separated by spaces, command names case-insensitive):
;;;;   SET KEY VALUE   -> +OK                  (VALUE is the rest of the line)
;;;;   GET KEY         -> $VALUE  or  -NOTFOUND
;;;;   DEL KEY         -> +OK     or  -NOTFOUND
;;;;   KEYS            -> *N, then N lines of keys (sorted)
;;;;   QUIT            -> +BYE, and the connection closes
;;;; Anything else gets `-ERR why`; the connection stays usable.  The store lives in the
;;;; serving process: it is shared by every connection and starts empty after a reload.

(defvar *store* (make-hash-table :test 'equal :synchronized t))

(defun split-command (text)
  "Returns (values COMMAND KEY REST): the first word upcased, the second word, and the rest
of the line after it."
  (let* ((text (string-trim '(#\Space #\Tab) text))
         (sp1 (position #\Space text))
         (cmd (string-upcase (subseq text 0 sp1)))
         (after (if sp1 (string-left-trim " " (subseq text sp1)) ""))
         (sp2 (position #\Space after))
         (key (if (string= after "") nil (subseq after 0 sp2)))
         (rest (and sp2 (string-left-trim " " (subseq after sp2)))))
    (values cmd key rest)))

(defun on-open (conn)
  (declare (ignore conn))
  (line "+READY kv"))

(defun on-line (conn text)
  (multiple-value-bind (cmd key rest) (split-command text)
    (flet ((usage (u) (line "-ERR usage: ~a" u)))
      (cond ((string= cmd "") (line "-ERR empty command"))
            ((string= cmd "SET")
             (if (and key rest (plusp (length rest)))
                 (progn (setf (gethash key *store*) rest) (line "+OK"))
                 (usage "SET KEY VALUE")))
            ((string= cmd "GET")
             (cond ((or (null key) rest) (usage "GET KEY"))
                   (t (multiple-value-bind (v found) (gethash key *store*)
                        (if found (line "$~a" v) (line "-NOTFOUND"))))))
            ((string= cmd "DEL")
             (cond ((or (null key) rest) (usage "DEL KEY"))
                   ((remhash key *store*) (line "+OK"))
                   (t (line "-NOTFOUND"))))
            ((string= cmd "KEYS")
             (if key
                 (usage "KEYS")
                 (let ((keys (sort (loop for k being the hash-keys of *store* collect k) #'string<)))
                   (cons (line "*~d" (length keys)) (mapcar (lambda (k) (line "~a" k)) keys)))))
            ((string= cmd "QUIT") (close-after conn) (line "+BYE"))
            (t (line "-ERR unknown command ~s" (subseq cmd 0 (min 32 (length cmd)))))))))

(defun on-too-long (conn)
  (close-after conn)
  (line "-ERR line too long"))
