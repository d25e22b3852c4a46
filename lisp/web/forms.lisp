;;;; forms.lisp — parsing what a browser sends, over octets and base-strings: query strings and
;;;; urlencoded bodies (values decoded lazily, through the C codec), multipart/form-data (file
;;;; parts streamed to temporary files, with limits), cookies, header parameters, and the
;;;; type coercions http-let applies.

(in-package :crow.web)

(ffi:clines "#include <string.h>")

;;; ------------------------------------------------------------------ form fields

(defstruct (form-fields (:constructor %make-form-fields (source entries)))
  "Parsed fields: ENTRIES is a list of (NAME . VALUE) in the order sent; VALUE is a string, an
upload, or (START . END) into SOURCE, decoded on first lookup."
  source (entries '() :type list))

(defun %decoded (fields entry)
  (let ((v (cdr entry)))
    (if (and (consp v) (integerp (car v)))
        (setf (cdr entry) (%form-decode (form-fields-source fields) (car v) (cdr v) t))
        v)))

(defun form-value (fields name)
  "Returns the value of the first field NAME (a string) in FIELDS — a string or an upload — or
NIL.  Only that field's value is decoded.  Can't fail."
  (when fields
    (dolist (e (form-fields-entries fields) nil)
      (when (string= name (the string (car e)))
        (return (%decoded fields e))))))

(defun form-values (fields name)
  "Returns the values of every field NAME in FIELDS, in the order sent.  Can't fail."
  (when fields
    (loop for e in (form-fields-entries fields)
          when (string= name (car e)) collect (%decoded fields e))))

(defun form-names (fields)
  "Returns the distinct field names of FIELDS in the order first sent."
  (when fields
    (remove-duplicates (mapcar #'car (form-fields-entries fields)) :test #'string= :from-end t)))

(defun %byte-source (source)
  "Returns SOURCE as a simple-base-string or an octet vector (what form-decode reads)."
  (cond ((ffi:c-inline (source) (:object) :bool
           "(ECL_VECTORP(#0) && #0->vector.elttype == ecl_aet_b8) || ecl_t_of(#0) == t_base_string"
           :one-liner t)
         source)
        ((stringp source)
         (coerce (map 'string (lambda (c) (if (< (char-code c) 256) c #\?)) source) 'simple-base-string))
        (t (error 'type-error :datum source :expected-type '(or string octets)))))

(defun %next-byte (src byte start end)
  "Returns the index of BYTE (a code) in SRC[START,END) or END."
  (declare (fixnum byte start end))
  (ffi:c-inline (src byte start end) (:object :int :fixnum :fixnum) :fixnum
    "{ const uint8_t *p = ecl_t_of(#0) == t_base_string ? (const uint8_t *)#0->base_string.self
                                                       : #0->vector.self.b8;
       const uint8_t *q = memchr(p + #2, #1, (size_t)(#3 - #2));
       @(return) = q ? (cl_fixnum)(q - p) : #3; }"))

(defun parse-urlencoded (source &key (start 0) end (max-fields 1000))
  "Returns the form-fields of SOURCE[START,END): application/x-www-form-urlencoded text (a
query string as a simple-base-string, or a body as octets).  Names are decoded now, values on
first lookup.  Empty pieces are skipped; a piece without `=` has the value \"\".  At most
MAX-FIELDS fields are kept (the rest ignored).  Signals type-error for another SOURCE."
  (let* ((src (%byte-source source))
         (end (crow.unix::check-bounds src start end))
         (entries '())
         (count 0))
    (declare (fixnum end count))
    (loop with i fixnum = start
          while (and (< i end) (< count max-fields))
          do (let* ((stop (%next-byte src 38 i end))
                    (eq (%next-byte src 61 i stop)))
               (declare (fixnum stop eq))
               (when (> stop i)
                 (incf count)
                 (push (if (< eq stop)
                           (cons (%form-decode src i eq t) (cons (1+ eq) stop))
                           (cons (%form-decode src i stop t) ""))
                       entries))
               (setf i (1+ stop))))
    (%make-form-fields src (nreverse entries))))

;;; header-main-value and header-parameter come from crow.http (upload.lisp).

;;; ------------------------------------------------------------------ multipart/form-data

(defstruct upload
  "A file part of a multipart/form-data body, stored in a temporary file while the request
lasts."
  (name "" :type string) (filename "" :type string) (content-type "" :type string)
  (path "" :type string) (size 0 :type integer))

(define-condition form-error (crow-error)
  ((status :initarg :status :initform 400 :reader form-error-status)
   (message :initarg :message :reader form-error-message))
  (:report (lambda (c s) (format s "~a" (form-error-message c))))
  (:documentation "A body that cannot be accepted: STATUS is the HTTP status to answer (400 for
malformed, 413 for over a limit)."))

(defun form-fail (status fmt &rest args)
  (error 'form-error :status status :message (apply #'format nil fmt args)))

;; *upload-directory*, *max-upload-size*, *max-uploads* and *max-form-memory* are crow.http's
;; (upload.lisp): the server streams large multipart bodies to files before a handler runs.

(defun delete-uploads (fields)
  "Deletes the temporary files of FIELDS' uploads (errors ignored).  Returns NIL."
  (when fields
    (dolist (e (form-fields-entries fields))
      (when (upload-p (cdr e))
        (ignore-errors (unlink (upload-path (cdr e))))))))

(defun %part-headers (body start end)
  "Returns the header fields of a part, BODY[START,END), as an alist of lowercase names."
  (let ((text (utf8-decode body :start start :end end)))
    (loop with i = 0 with n = (length text)
          while (< i n)
          for eol = (or (search (format nil "~c~c" #\Return #\Linefeed) text :start2 i) n)
          for colon = (position #\: text :start i :end eol)
          when colon
            collect (cons (string-downcase (string-trim " 	" (subseq text i colon)))
                          (string-trim " 	" (subseq text (1+ colon) eol)))
          do (setf i (+ eol 2)))))

(defun multipart-form-fields (mp)
  "Returns the form-fields of the finished crow.unix multipart scanner MP: plain parts as
strings (UTF-8 decoded), file parts as upload structs naming MP's temporary files.  Signals
form-error 400 for a part without a name."
  (let ((mem (multipart-memory mp)) (entries '()))
    (dolist (p (multipart-parts mp))
      (destructuring-bind (hs he ds size path) p
        (let* ((headers (%part-headers mem hs he))
               (disp (or (cdr (assoc "content-disposition" headers :test #'string=)) ""))
               (name (or (header-parameter disp "name")
                         (form-fail 400 "multipart: part without a name"))))
          (push (cons name
                      (if path
                          (make-upload :name name :filename (or (header-parameter disp "filename") "")
                                       :content-type (or (cdr (assoc "content-type" headers
                                                                     :test #'string=))
                                                         "application/octet-stream")
                                       :path path :size size)
                          (utf8-decode mem :start ds :end (+ ds size))))
                entries))))
    (%make-form-fields mem (nreverse entries))))

(defun %scan-error (e)
  "Turns the scanner's unix-error E into form-error (413 for a limit, 400 for a malformed
body) or signals it again."
  (let ((errno (unix-error-errno e)))
    (cond ((member errno (list +efbig+ +emlink+ +e2big+))
           (form-fail 413 "multipart: over a limit (~a)" (strerror errno)))
          ((= errno +ebadmsg+) (form-fail 400 "multipart: malformed body (no closing boundary)"))
          (t (error e)))))

(defun parse-multipart (body boundary &key (max-file-size (or *max-upload-size* 0))
                                           (max-files *max-uploads*))
  "Returns the form-fields of a multipart/form-data BODY (octets) with BOUNDARY (a string),
scanned by c-core/mpart: plain parts as strings (UTF-8 decoded), file parts (those with a
filename) as upload structs whose contents were written to temporary files under
*upload-directory*.  Signals form-error 400 when the body is malformed, 413 when a file is over
MAX-FILE-SIZE (0: no limit), there are more than MAX-FILES files or the fields are over
*max-form-memory*; temporary files already written are then deleted."
  (let ((mp (make-multipart boundary :directory *upload-directory*
                                     :prefix (format nil "crow-upload-~d-" (getpid))
                                     :max-file-size max-file-size :max-files max-files
                                     :max-memory *max-form-memory*))
        (done nil))
    (unwind-protect
         (progn
           (handler-case (progn (multipart-feed mp body) (multipart-finish mp))
             (unix-error (e) (%scan-error e)))
           (prog1 (multipart-form-fields mp) (setf done t)))
      (multipart-free mp :unlink (not done)))))

;;; ------------------------------------------------------------------ cookies

(defun parse-cookies (header)
  "Returns the cookies of a Cookie HEADER value as an alist ((NAME . VALUE) ...) in order;
values are unquoted and percent-decoded (set-cookie encodes them).  Can't fail."
  (when header
    (loop with n = (length header) with i = 0
          while (< i n)
          for semi = (or (position #\; header :start i) n)
          for eq = (position #\= header :start i :end semi)
          when eq
            collect (let ((name (string-trim " 	" (subseq header i eq)))
                          (value (string-trim " 	" (subseq header (1+ eq) semi))))
                      (when (and (>= (length value) 2) (char= (char value 0) #\")
                                 (char= (char value (1- (length value))) #\"))
                        (setf value (subseq value 1 (1- (length value)))))
                      (cons name (if (find #\% value)
                                     (form-decode (coerce value 'simple-base-string) :plus nil)
                                     value)))
          do (setf i (1+ semi)))))

;;; ------------------------------------------------------------------ coercion

(defun %parse-integer (s)
  "Returns the decimal integer S spells (an optional sign, then digits, nothing else), or NIL."
  (let ((n (length s)) (i 0) (neg nil) (v 0))
    (when (and (plusp n) (member (char s 0) '(#\+ #\-)))
      (setf neg (char= (char s 0) #\-) i 1))
    (when (< i n)
      (loop for k from i below n
            for d = (digit-char-p (char s k))
            unless d do (return-from %parse-integer nil)
            do (setf v (+ (* v 10) d)))
      (if neg (- v) v))))

(defun coerce-param (value type)
  "Returns the string (or upload) VALUE converted to TYPE: :string (as it is), :integer (NIL
when not an integer), :boolean (false for NIL, \"\", \"0\", \"false\", \"off\", \"no\"),
:float, :upload (an upload or NIL), :octets (UTF-8 octets), or a function designator called
with VALUE.  NIL stays NIL for every type but :boolean (which gives NIL)."
  (case type
    ((:string nil) (if (upload-p value) (upload-filename value) value))
    (:integer (and (stringp value) (%parse-integer value)))
    (:boolean (and value (not (member value '("" "0" "false" "off" "no") :test #'string-equal))))
    (:float (and (stringp value)
                 (let ((*read-default-float-format* 'double-float))
                   (ignore-errors
                    (let ((x (let ((*read-eval* nil)) (read-from-string value))))
                      (and (realp x) (coerce x 'double-float)))))))
    (:upload (and (upload-p value) value))
    (:octets (and (stringp value) (utf8-encode value)))
    (t (and value (funcall type value)))))
