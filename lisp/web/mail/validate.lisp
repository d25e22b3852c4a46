;;;; validate.lisp — checking form values: each value is cleaned (trimmed, lowercased where
;;;; the kind wants it) and either accepted or given one message a person can act on; a form's
;;;; errors are an alist (FIELD . MESSAGE) the page shows beside each field.

(in-package :crow.mailweb)

(defun %split (char string)
  "Returns the parts of STRING between occurrences of CHAR (empty parts kept)."
  (loop for start = 0 then (1+ end)
        for end = (position char string :start start)
        collect (subseq string start end)
        while end))

(defun %label-char-p (c)
  (or (char<= #\a c #\z) (char<= #\0 c #\9) (char= c #\-)))

(defun domain-name-p (s)
  "True when S (lowercase) is a DNS host name: labels of 1-63 letters, digits and hyphens
\(no hyphen first or last) joined by dots, at most 253 characters.  Can't fail."
  (and (<= 1 (length s) 253)
       (let ((labels (%split #\. s)))
         (every (lambda (l)
                  (and (<= 1 (length l) 63) (every #'%label-char-p l)
                       (char/= (char l 0) #\-) (char/= (char l (1- (length l))) #\-)))
                labels))))

(defun %local-char-p (c)
  (or (char<= #\a c #\z) (char<= #\0 c #\9) (find c "._+-")))

(defun local-part-p (s)
  "True when S (lowercase) is a plain local part: 1-64 of a-z 0-9 . _ + -, no dot first,
last or doubled.  Can't fail."
  (and (<= 1 (length s) 64) (every #'%local-char-p s)
       (char/= (char s 0) #\.) (char/= (char s (1- (length s))) #\.)
       (not (search ".." s))))

(defun mail-address-p (s)
  "True when S (lowercase) is LOCAL@DOMAIN with a plain local part and a domain name."
  (let ((at (position #\@ s :from-end t)))
    (and at (local-part-p (subseq s 0 at)) (domain-name-p (subseq s (1+ at))))))

(defun address-pattern-p (s)
  "True when S is an envelope address pattern as mmsmtpd matches them (crow.mail's
glob-match-p): address characters with * (any run) and ? (one character) wildcards, at
most one @, at most 255 characters.  (Empty, like *, matches any address, <> too.)"
  (and (<= (length s) 255)
       (every (lambda (c) (or (%local-char-p c) (find c "@*?"))) s)
       (<= (count #\@ s) 1)))

(defun regex-error (s)
  "Returns NIL when S compiles as a cl-ppcre regular expression, else the parser's message."
  (handler-case (progn (cl-ppcre:create-scanner s) nil)
    (cl-ppcre:ppcre-syntax-error (e)
      (format nil "~a at position ~d" (cl-ppcre:ppcre-syntax-error-string e)
              (or (cl-ppcre:ppcre-syntax-error-pos e) 0)))
    (error (e) (princ-to-string e))))

(defun %trim (s)
  (string-trim '(#\Space #\Tab #\Return #\Newline) (or s "")))

(defun %control-char-p (c)
  (or (char< c #\Space) (char= c (code-char 127))))

(defun check-value (value kind &key required (max 255) (min 0) min-value max-value choices)
  "Checks the form VALUE (a string or NIL) as KIND: :text, :local-part, :domain, :address,
:address-pattern, :regex, :password, :mailbox, :header-name, :size (bytes, with K/M/G),
:integer (MIN-VALUE..MAX-VALUE), :choice (one of CHOICES, strings) or :boolean.  Returns (values CLEAN MESSAGE): the cleaned value (trimmed;
lowercased for names; an integer for :integer; T/NIL for :boolean) and NIL, or NIL and a
message saying what is wrong.  An empty value is NIL and fine unless REQUIRED.  Can't fail."
  (let ((s (if (eq kind :password) (or value "") (%trim value))))
    (flet ((bad (fmt &rest args) (return-from check-value (values nil (apply #'format nil fmt args)))))
      (when (eq kind :boolean)
        (return-from check-value
          (values (and (plusp (length s)) (not (member s '("0" "no" "off" "false") :test #'string-equal)))
                  nil)))
      (when (zerop (length s))
        (if required (bad "Required.") (return-from check-value (values nil nil))))
      (when (> (length s) max) (bad "Too long: at most ~d characters." max))
      (when (< (length s) min) (bad "Too short: at least ~d characters." min))
      (when (and (not (eq kind :password)) (find-if #'%control-char-p s))
        (bad "Control characters are not allowed."))
      (ecase kind
        (:text (values s nil))
        (:password
         (cond ((< (length s) *min-password*) (bad "Too short: at least ~d characters." *min-password*))
               ((find-if #'%control-char-p s) (bad "Control characters are not allowed."))
               (t (values s nil))))
        (:local-part
         (let ((d (string-downcase s)))
           (if (local-part-p d) (values d nil)
               (bad "Not a valid name: use letters, digits and . _ + - (no dot first, last or twice), at most 64."))))
        (:domain
         (let ((d (string-downcase (string-right-trim "." s))))
           (if (and (domain-name-p d) (find #\. d)) (values d nil)
               (bad "Not a domain name: letters, digits and hyphens between dots, like example.org."))))
        (:address
         (let ((d (string-downcase s)))
           (if (mail-address-p d) (values d nil)
               (bad "Not a mail address: name@example.org."))))
        (:address-pattern
         (let ((d (string-downcase s)))
           (if (address-pattern-p d) (values d nil)
               (bad "Not an address pattern: address characters with * and ? as wildcards, like *@spam.example."))))
        (:regex
         (let ((e (regex-error s)))
           (if e (bad "Not a valid regular expression: ~a." e) (values s nil))))
        (:mailbox
         (if (and (<= (length s) 64) (char/= (char s 0) #\.)
                  (every (lambda (c) (or (alphanumericp c) (find c "._-"))) s)
                  (every (lambda (c) (< (char-code c) 128)) s))
             (values s nil)
             (bad "Not a mailbox name: letters, digits and . _ - (not starting with a dot), at most 64.")))
        (:header-name
         (if (or (string= s "*")
                 (every (lambda (c) (and (< 32 (char-code c) 127) (char/= c #\:))) s))
             (values (string-downcase s) nil)
             (bad "Not a header field name: printable characters without a colon, like Subject, or * for any field.")))
        (:size
         (let* ((unit (char-upcase (char s (1- (length s)))))
                (mult (case unit (#\K 1024) (#\M (* 1024 1024)) (#\G (* 1024 1024 1024)) (t 1)))
                (digits (if (= mult 1) s (subseq s 0 (1- (length s))))))
           (if (and (plusp (length digits)) (<= (length digits) 15) (every #'digit-char-p digits))
               (let ((n (* mult (parse-integer digits))))
                 (if (and max-value (> n max-value))
                     (bad "Too large: at most ~a." max-value)
                     (values n nil)))
               (bad "Not a size: a whole number of bytes, or with K, M or G (like 50M)."))))
        (:integer
         (let ((n (and (every #'digit-char-p (string-left-trim "-" s)) (> (length (string-left-trim "-" s)) 0)
                       (<= (count #\- s) 1) (or (zerop (count #\- s)) (char= (char s 0) #\-))
                       (parse-integer s :junk-allowed t))))
           (cond ((null n) (bad "Not a whole number."))
                 ((and min-value (< n min-value)) (bad "Must be at least ~d." min-value))
                 ((and max-value (> n max-value)) (bad "Must be at most ~d." max-value))
                 (t (values n nil)))))
        (:choice
         (let ((c (find s choices :test #'string-equal)))
           (if c (values c nil) (bad "Choose one of: ~{~a~^, ~}." choices))))))))

(defmacro validating ((errors) bindings &body body)
  "Binds each (VAR FIELD VALUE KIND . KEYS) of BINDINGS to (check-value VALUE KIND . KEYS)'s
clean value, in order, collecting each message as (FIELD . MESSAGE) into the variable ERRORS
\(first error first), then runs BODY (which may push more).  Returns BODY's values."
  `(let* ((,errors '())
          ,@(loop for (var field value kind . keys) in bindings
                  collect `(,var (multiple-value-bind (v e) (check-value ,value ,kind ,@keys)
                                   (when e (push (cons ,field e) ,errors))
                                   v))))
     (setf ,errors (reverse ,errors))
     ,@body))

(defun field-error (errors field)
  "Returns the message for FIELD in the alist ERRORS, or NIL."
  (cdr (assoc field errors :test #'string=)))
