;;;; config.lisp — config files: sorted keyword tables, typed values, blocks, include, -n checks.
;;;;
;;;; A file is lines of `key value ...`.  `#` at the start of a word begins a comment (inside a
;;;; word or inside quotes it is a plain character).  A value may be double-quoted, with `\"`
;;;; and `\\` as the only escapes; quoted and bare parts of one word join as in the shell.
;;;; `NAME ARG {` ... `}` opens a block whose lines are read against the block's own key table;
;;;; `include FILE` reads FILE (relative to the including file) in place.  Every error is
;;;; collected as `file:line: message`; reading ends by signalling one config-error carrying
;;;; them all, so a server refuses to start on any of them.
;;;;
;;;; Values: sizes take K, M or G (1024-based: 1K = 1024 bytes); durations take ms, s, m or h
;;;; and a bare number means seconds — the value is in milliseconds; booleans are yes/no,
;;;; on/off or true/false; relative paths resolve against the directory of the file that names
;;;; them.

(in-package :crow.server)

;;; Key specs and tables

(defstruct (key-spec (:constructor %make-key-spec))
  name type default repeatable required min max values validator exists keys meta doc)

(defparameter +types+
  '(:string :path :integer :size :duration :boolean :address :rate :enum :user :group :list
    :block)
  "Every value type a key spec may name.")

(defun %key-name (designator)
  (intern (string-upcase (string designator)) :keyword))

(defun %key-word (spec)
  (string-downcase (symbol-name (key-spec-name spec))))

(defun make-key-spec (name type &key default repeatable required min max values validator
                                     exists keys meta doc)
  "Returns a key spec; signals an error when TYPE is unknown or a block lacks KEYS or an enum
its VALUES."
  (unless (member type +types+) (error "config key ~(~a~): unknown type ~s" name type))
  (when (and (eq type :block) (null keys)) (error "config block ~(~a~) needs :keys" name))
  (when (and (eq type :enum) (null values)) (error "config key ~(~a~) needs :values" name))
  (%make-key-spec :name (%key-name name) :type type :default default
                  :repeatable (or repeatable (eq type :block)) :required required
                  :min min :max max :values (mapcar #'%key-name values)
                  :validator validator :exists exists :keys keys :meta meta :doc doc))

(defun %make-key-table (parts)
  "PARTS is a list of key specs and key tables (from :include).  Returns one table sorted by
name, a later spec replacing an earlier one of the same name."
  (let ((specs '()))
    (dolist (p parts)
      (dolist (s (if (listp p) p (list p)))
        (setf specs (cons s (remove (key-spec-name s) specs :key #'key-spec-name)))))
    (sort specs #'string< :key #'key-spec-name)))

(defmacro define-config-keys (name &body clauses)
  "Defines the special variable NAME as a key table: each clause is
`(key type &key default repeatable required min max values validator exists keys meta doc)`
\(options evaluated) or `(:include TABLE)`, a table whose specs are merged in (a later clause
of the same name replaces them).  Types: :string :path :integer :size :duration :boolean
:address :rate :enum :user :group :list, and :block (a repeatable `key ARG { ... }` section
read against the table KEYS).  A string DEFAULT is parsed like a value from the file; MIN and
MAX bound integers, sizes (bytes) and durations (ms); VALUES lists an enum's words; VALIDATOR
is called on the parsed value and returns NIL or a message; EXISTS (:file, :directory or
:parent) says what check-config requires of a path; META names the value in --help output."
  `(defparameter ,name
     (%make-key-table
      (list ,@(loop for (key . rest) in clauses
                    collect (if (eq key :include)
                                (first rest)
                                `(make-key-spec ',key ,@rest)))))
     ,(format nil "Config key table ~(~a~)." name)))

(defun %find-spec (word keys)
  (find word keys :key #'%key-word :test #'string=))

;;; Values

(defstruct (address (:constructor %make-address (family host port path)))
  "A listen or connect address: FAMILY :inet, :inet6, :unix or :name (a host name resolved
when bound); HOST a string (no brackets) and PORT an integer, or PATH for :unix."
  family host port path)

(defun address-string (address)
  "Returns ADDRESS written as in a config file: `HOST:PORT`, `[V6]:PORT` or `unix:PATH`."
  (case (address-family address)
    (:unix (format nil "unix:~a" (address-path address)))
    (:inet6 (format nil "[~a]:~d" (address-host address) (address-port address)))
    (t (format nil "~a:~d" (address-host address) (address-port address)))))

(defmethod print-object ((a address) stream)
  (print-unreadable-object (a stream :type t)
    (write-string (address-string a) stream)))

(defun %digits-p (s &key (start 0))
  (and (< start (length s)) (every #'digit-char-p (subseq s start))))

(defun %parse-integer (s)
  "Returns the decimal integer S (an optional leading -), or NIL."
  (let ((neg (and (plusp (length s)) (char= (char s 0) #\-))))
    (when (%digits-p s :start (if neg 1 0))
      (parse-integer s))))

(defun %split-number (s)
  "Returns (values INTEGER SUFFIX) for digits followed by a suffix, or NIL without digits."
  (let ((end (or (position-if-not #'digit-char-p s) (length s))))
    (when (plusp end)
      (values (parse-integer s :end end) (subseq s end)))))

(defun parse-size (string)
  "Returns the byte count STRING names: digits with an optional K, M or G (1024-based; k, m, g
also), or NIL when STRING is not a size.  Can't fail."
  (multiple-value-bind (n suffix) (%split-number string)
    (when n
      (let ((scale (cdr (assoc suffix '(("" . 1) ("K" . 1024) ("k" . 1024)
                                        ("M" . 1048576) ("m" . 1048576)
                                        ("G" . 1073741824) ("g" . 1073741824))
                               :test #'string=))))
        (and scale (* n scale))))))

(defun parse-duration (string)
  "Returns the milliseconds STRING names: digits with ms, s, m or h (a bare number means
seconds), or NIL when STRING is not a duration.  Can't fail."
  (multiple-value-bind (n suffix) (%split-number string)
    (when n
      (let ((scale (cdr (assoc suffix '(("" . 1000) ("s" . 1000) ("ms" . 1) ("m" . 60000)
                                        ("h" . 3600000))
                               :test #'string=))))
        (and scale (* n scale))))))

(defun %ipv4-p (host)
  (let ((parts (loop with start = 0
                     for dot = (position #\. host :start start)
                     collect (subseq host start dot)
                     while dot do (setf start (1+ dot)))))
    (and (= 4 (length parts))
         (every (lambda (p) (and (%digits-p p) (<= (length p) 3) (<= (parse-integer p) 255)))
                parts))))

(defun %ipv6-p (host)
  (and (>= (count #\: host) 2)
       (every (lambda (c) (or (digit-char-p c 16) (member c '(#\: #\. #\%))
                              (alphanumericp c)))
              host)))

(defun %hostname-p (host)
  (and (plusp (length host))
       (every (lambda (c) (or (alphanumericp c) (member c '(#\- #\. #\_)))) host)
       (not (%digits-p (remove #\. host)))))

(defun %resolve-path (path directory)
  "Returns PATH made absolute against DIRECTORY (ending in /), leading ./ removed."
  (if (and (plusp (length path)) (char= (char path 0) #\/))
      path
      (loop while (and (> (length path) 2) (string= "./" path :end2 2))
            do (setf path (string-left-trim "/" (subseq path 2)))
            finally (return (concatenate 'string directory path)))))

(defun %parse-address (s directory)
  "Returns (values ADDRESS NIL) or (values NIL MESSAGE)."
  (when (and (>= (length s) 5) (string= "unix:" s :end2 5))
    (let ((path (subseq s 5)))
      (return-from %parse-address
        (if (string= path "")
            (values nil "empty unix socket path")
            (values (%make-address :unix nil nil (%resolve-path path directory)) nil)))))
  (let* ((close (and (plusp (length s)) (char= (char s 0) #\[) (position #\] s)))
         (colon (if close
                    (and (< (1+ close) (length s)) (char= (char s (1+ close)) #\:) (1+ close))
                    (position #\: s :from-end t)))
         (host (and colon (subseq s 0 colon)))
         (port-string (and colon (subseq s (1+ colon))))
         (port (and port-string (%digits-p port-string) (<= (length port-string) 5)
                    (parse-integer port-string))))
    (cond ((or (null colon) (string= host ""))
           (values nil (format nil "expected ADDR:PORT, [IPV6]:PORT or unix:PATH, got ~s" s)))
          ((not (and port (<= port 65535)))
           (values nil (format nil "bad port ~s" port-string)))
          ((string= host "*") (values (%make-address :inet "0.0.0.0" port nil) nil))
          ((char= (char host 0) #\[)
           (let ((v6 (string-trim "[]" host)))
             (if (and (char= (char host (1- (length host))) #\]) (%ipv6-p v6))
                 (values (%make-address :inet6 v6 port nil) nil)
                 (values nil (format nil "bad IPv6 address ~s" host)))))
          ((find #\: host)
           (values nil (format nil "IPv6 address ~s needs brackets: [~a]:~a" host host
                               port-string)))
          ((%ipv4-p host) (values (%make-address :inet host port nil) nil))
          ((%hostname-p host) (values (%make-address :name host port nil) nil))
          (t (values nil (format nil "bad address ~s" host))))))

(defun %bounds-message (value spec text)
  (let ((min (key-spec-min spec)) (max (key-spec-max spec)))
    (cond ((and min (< value min))
           (format nil "~s is less than the minimum ~a" text (%show-bound min spec)))
          ((and max (> value max))
           (format nil "~s is more than the maximum ~a" text (%show-bound max spec))))))

(defun %show-bound (n spec)
  (case (key-spec-type spec)
    (:duration (format nil "~dms" n))
    (t (format nil "~d" n))))

(defun %parse-one (spec text directory)
  "Parses TEXT as a value of SPEC's type.  Returns (values VALUE NIL) or (values NIL MESSAGE)."
  (macrolet ((fail (fmt &rest args)
               `(return-from %parse-one (values nil (format nil ,fmt ,@args)))))
    (let ((value
            (ecase (key-spec-type spec)
              ((:string :user :group)
               (if (string= text "") (fail "empty value") text))
              (:path (if (string= text "") (fail "empty path") (%resolve-path text directory)))
              (:integer (or (%parse-integer text) (fail "not an integer: ~s" text)))
              (:size (or (parse-size text)
                         (fail "bad size ~s (digits with an optional K, M or G)" text)))
              (:duration (or (parse-duration text)
                             (fail "bad duration ~s (digits with ms, s, m or h)" text)))
              (:boolean
               (cond ((member text '("yes" "on" "true") :test #'string-equal) t)
                     ((member text '("no" "off" "false") :test #'string-equal) nil)
                     (t (fail "expected yes or no, got ~s" text))))
              (:enum (or (find text (key-spec-values spec) :test #'string-equal)
                         (fail "expected one of ~{~(~a~)~^, ~}, got ~s"
                               (key-spec-values spec) text)))
              (:address (multiple-value-bind (a message) (%parse-address text directory)
                          (or a (fail "~a" message))))
              (:rate
               (let* ((slash (position #\/ text))
                      (n (and slash (%digits-p (subseq text 0 slash))
                              (parse-integer text :end slash)))
                      (per (and slash (subseq text (1+ slash))))
                      (ms (and per (parse-duration
                                    (if (and (plusp (length per)) (alpha-char-p (char per 0)))
                                        (concatenate 'string "1" per)
                                        per)))))
                 (if (and n (plusp n) ms (plusp ms))
                     (cons n ms)
                     (fail "bad rate ~s (N/DURATION, as in 10/1s or 100/m)" text)))))))
      (let ((message (and (member (key-spec-type spec) '(:integer :size :duration))
                          (%bounds-message value spec text))))
        (when message (fail "~a" message)))
      (let ((message (and (key-spec-validator spec) (funcall (key-spec-validator spec) value))))
        (when message (fail "~a" message)))
      (values value nil))))

(defun %parse-value (spec args directory)
  "Parses the words ARGS after SPEC's key.  Returns (values VALUE NIL) or (values NIL MESSAGE)."
  (cond ((null args) (values nil "missing value"))
        ((eq (key-spec-type spec) :list)
         (let ((message (and (key-spec-validator spec) (funcall (key-spec-validator spec) args))))
           (if message (values nil message) (values (copy-list args) nil))))
        ((rest args) (values nil (format nil "expected one value, got ~d" (length args))))
        (t (%parse-one spec (first args) directory))))

;;; Config objects

(defstruct (config (:constructor %make-config (file directory keys parent line)))
  "What read-config returns: FILE (as named), DIRECTORY (absolute, ending in /), the key table
KEYS, the enclosing config PARENT (for a block) and the LINE a block opened on."
  file directory keys parent line
  (entries (make-hash-table :test 'eq))   ; key -> list of (value file . line), newest first
  (defaults (make-hash-table :test 'eq))  ; key -> parsed default
  (block-table (make-hash-table :test 'eq)))  ; key -> list of (arg . config), newest first

(defun %config-spec (config key)
  (or (find (%key-name key) (config-keys config) :key #'key-spec-name)
      (error "config key ~(~a~) is not in this config's key table" key)))

(defun config-value (config key)
  "Returns the value of KEY (a keyword) in CONFIG — a list of values in file order for a
repeatable key — and as second value T when the file set it, NIL when it is the default (or
NIL without one).  Signals an error when KEY is not in CONFIG's key table."
  (let* ((spec (%config-spec config key))
         (entries (gethash (key-spec-name spec) (config-entries config))))
    (cond ((null entries) (values (gethash (key-spec-name spec) (config-defaults config)) nil))
          ((key-spec-repeatable spec) (values (reverse (mapcar #'first entries)) t))
          (t (values (first (first entries)) t)))))

(defun config-blocks (config name)
  "Returns the blocks NAME (a string or keyword) in CONFIG as a list of (ARG . SUB-CONFIG) in
file order.  Signals an error when NAME is not a block key of CONFIG's table."
  (let ((spec (%config-spec config name)))
    (unless (eq (key-spec-type spec) :block)
      (error "config key ~(~a~) is not a block" name))
    (reverse (gethash (key-spec-name spec) (config-block-table config)))))

(defun config-source (config &optional key)
  "Returns (values FILE LINE) where KEY was (first) set in CONFIG, or where CONFIG itself
starts when KEY is NIL or was not set (LINE NIL for a whole file).  For messages about a
value found wrong later (a listen address already in use).  Can't fail."
  (let ((entry (and key (car (last (gethash (%key-name key) (config-entries config)))))))
    (if entry
        (values (cadr entry) (cddr entry))
        (values (config-file config) (config-line config)))))

;;; Reading

(defstruct (%reader (:conc-name %reader-))
  (errors '()) (files '()))

(defun %error (reader file line fmt &rest args)
  (push (make-condition 'config-error :file file :line line
                                      :message (apply #'format nil fmt args))
        (%reader-errors reader))
  nil)

(defparameter +bad-escape+ "bad escape \"\\~@[~c~]\" in quoted string (only \\\" and \\\\)")

(defun %tokenize (text)
  "Splits one line into words.  Returns a list of (STRING . QUOTED-P), or (values NIL MESSAGE)
when a quote is unterminated or an escape is bad."
  (let ((words '()) (i 0) (n (length text)))
    (loop
      (loop while (and (< i n) (member (char text i) '(#\Space #\Tab #\Return #\Page)))
            do (incf i))
      (when (or (>= i n) (char= (char text i) #\#))
        (return (values (nreverse words) nil)))
      (let ((word (make-string-output-stream)) (quoted nil))
        (loop while (and (< i n) (not (member (char text i) '(#\Space #\Tab #\Return #\Page))))
              do (let ((c (char text i)))
                   (cond ((char= c #\")
                          (setf quoted t)
                          (incf i)
                          (loop
                            (when (>= i n)
                              (return-from %tokenize (values nil "unterminated quoted string")))
                            (let ((q (char text i)))
                              (incf i)
                              (cond ((char= q #\") (return))
                                    ((char= q #\\)
                                     (let ((e (and (< i n) (char text i))))
                                       (unless (member e '(#\" #\\))
                                         (return-from %tokenize
                                           (values nil (format nil +bad-escape+ e))))
                                       (write-char e word)
                                       (incf i)))
                                    (t (write-char q word))))))
                         (t (write-char c word) (incf i)))))
        (push (cons (get-output-stream-string word) quoted) words)))))

(defun %bare-p (token string)
  (and (not (cdr token)) (string= (car token) string)))

(defun %split-lines (text)
  (loop with start = 0
        for end = (position #\Newline text :start start)
        collect (subseq text start (or end (length text)))
        while end do (setf start (1+ end))))

(defun %directory-of (name)
  "Returns the directory part of NAME (ending in /), or \"\" when it has none."
  (let ((slash (position #\/ name :from-end t)))
    (if slash (subseq name 0 (1+ slash)) "")))

(defun %absolute-directory (name)
  (%resolve-path (%directory-of name) (let ((cwd (getcwd)))
                                        (if (string= cwd "/") "/" (concatenate 'string cwd "/")))))

(defun %finish (reader config last-line)
  "Applies defaults to CONFIG and reports its missing required keys."
  (dolist (spec (config-keys config))
    (let ((name (key-spec-name spec)))
      (when (and (key-spec-required spec) (null (gethash name (config-entries config)))
                 (null (gethash name (config-block-table config))))
        (%error reader (config-file config) (or (config-line config) (max 1 last-line))
                "missing required key ~s" (%key-word spec)))
      (unless (eq (key-spec-type spec) :block)
        (setf (gethash name (config-defaults config))
              (%default-value reader spec config))))))

(defun %default-value (reader spec config)
  (let ((d (key-spec-default spec)) (dir (config-directory config)))
    (flet ((one (v)
             (if (stringp v)
                 (multiple-value-bind (value message) (%parse-one spec v dir)
                   (when message
                     (%error reader (config-file config) (config-line config)
                             "~a: bad default: ~a" (%key-word spec) message))
                   value)
                 v)))
      (cond ((null d) (if (key-spec-repeatable spec) '() nil))
            ((and (key-spec-repeatable spec) (listp d)) (mapcar #'one d))
            ((eq (key-spec-type spec) :list) (if (stringp d) (list d) d))
            (t (one d))))))

(defun %statement (reader config words file line directory)
  "Handles one `key value ...` line in CONFIG."
  (let* ((word (car (first words)))
         (args (mapcar #'car (rest words)))
         (spec (%find-spec word (config-keys config))))
    (cond ((find-if (lambda (w) (or (%bare-p w "{") (%bare-p w "}"))) words)
           (%error reader file line "unexpected ~s in the middle of a line"
                   (car (find-if (lambda (w) (or (%bare-p w "{") (%bare-p w "}"))) words))))
          ((null spec) (%error reader file line "unknown key ~s" word))
          ((eq (key-spec-type spec) :block)
           (%error reader file line "~a: expected ~a ARG {" word word))
          (t
           (let ((old (gethash (key-spec-name spec) (config-entries config))))
             (if (and old (not (key-spec-repeatable spec)))
                 (destructuring-bind (v ofile . oline) (car (last old))
                   (declare (ignore v))
                   (%error reader file line
                           "duplicate key ~s (first set ~:[in ~a:~d~;on line ~*~d~])"
                           word (equal ofile file) ofile oline))
                 (multiple-value-bind (value message) (%parse-value spec args directory)
                   (if message
                       (%error reader file line "~a: ~a" word message)
                       (push (list* value file line)
                             (gethash (key-spec-name spec) (config-entries config)))))))))))

(defun %open-block (reader config words file line directory)
  "Handles `NAME ARG {`.  Returns the block's new config, or NIL when the line is wrong (its
contents are then skipped)."
  (let* ((word (car (first words)))
         (args (mapcar #'car (butlast (rest words))))
         (spec (and (not (%bare-p (first words) "{")) (%find-spec word (config-keys config)))))
    (cond ((%bare-p (first words) "{") (%error reader file line "block without a name"))
          ((null spec) (%error reader file line "unknown block ~s" word))
          ((not (eq (key-spec-type spec) :block))
           (%error reader file line "~a: not a block" word))
          ((/= 1 (length args))
           (%error reader file line "~a: expected one argument before {, got ~d" word
                   (length args)))
          (t (let ((sub (%make-config file directory (key-spec-keys spec) config line)))
               (push (cons (first args) sub)
                     (gethash (key-spec-name spec) (config-block-table config)))
               sub)))))

(defun %include (reader config args file line directory)
  (if (/= 1 (length args))
      (%error reader file line "include: expected one file name, got ~d" (length args))
      (let* ((target (first args))
             (name (if (char= (char target 0) #\/) target
                       (concatenate 'string (%directory-of file) target)))
             (path (%resolve-path target directory)))
        (cond ((member path (%reader-files reader) :test #'string=)
               (%error reader file line "include: ~s includes itself" target))
              ((> (length (%reader-files reader)) 16)
               (%error reader file line "include: nested too deep"))
              (t (%read-file reader config name path file line))))))

(defun %read-file (reader config name path &optional from-file from-line)
  "Reads the file PATH (NAME in messages) into CONFIG.  A file that cannot be read is an error
at FROM-FILE:FROM-LINE (the include line), or at NAME without a line."
  (let ((text (handler-case (octets-to-string (read-file-octets path))
                (unix-error (e)
                  (if from-file
                      (%error reader from-file from-line "include: cannot read ~s: ~a" name
                              (strerror (unix-error-errno e)))
                      (%error reader name nil "cannot read: ~a"
                              (strerror (unix-error-errno e))))
                  (return-from %read-file nil)))))
    (push path (%reader-files reader))
    (unwind-protect (%read-text reader config name (%directory-of path) text)
      (pop (%reader-files reader)))))

(defun %read-text (reader config file directory text)
  "Reads the lines of TEXT (from FILE, relative paths against DIRECTORY) into CONFIG.  Blocks
must close in the file that opens them."
  (let ((stack (list config)) (line 0))
    (dolist (raw (%split-lines text))
      (incf line)
      (multiple-value-bind (words message) (%tokenize raw)
        (let ((current (first stack)))
          (cond (message (%error reader file line "~a" message))
                ((null words))
                ((%bare-p (first words) "}")
                 (cond ((rest words)
                        (%error reader file line "\"}\" must be alone on its line"))
                       ((rest stack)
                        (when (config-p current) (%finish reader current line))
                        (pop stack))
                       (t (%error reader file line "\"}\" without an open block"))))
                ((%bare-p (car (last words)) "{")
                 ;; A wrong block line still opens a (skipped) block: its "}" must match.
                 (push (if (config-p current)
                           (or (%open-block reader current words file line directory) :skip)
                           :skip)
                       stack))
                ((not (config-p current)))
                ((and (%bare-p (first words) "include")
                      (not (%find-spec "include" (config-keys current))))
                 (%include reader current (mapcar #'car (rest words)) file line directory))
                (t (%statement reader current words file line directory))))))
    (loop while (rest stack)
          do (let ((open (pop stack)))
               (if (config-p open)
                   (%error reader file (config-line open) "block not closed by \"}\"")
                   (%error reader file line "skipped block not closed by \"}\""))))
    line))

(defun %signal-errors (reader)
  (let ((errors (reverse (%reader-errors reader))))
    (when errors
      (error (make-condition 'config-error
                             :file (config-error-file (first errors))
                             :line (config-error-line (first errors))
                             :message (config-error-message (first errors))
                             :all errors)))))

(defun %read-config (keys name directory check reader-fn)
  (let* ((reader (make-%reader))
         (config (%make-config name directory keys nil nil))
         (last-line (funcall reader-fn reader config)))
    (unless last-line                   ; the file could not be read: nothing more to say
      (%signal-errors reader))
    (%finish reader config last-line)
    (when check (%check reader config))
    (%signal-errors reader)
    config))

(defun read-config (path keys &key check)
  "Reads the config file PATH (a string, named so in messages) against the key table KEYS.
Returns a config (see config-value, config-blocks).  With CHECK, also does check-config's
checks (-n).  Signals one config-error carrying every error found (unreadable file, syntax,
unknown, duplicate and missing keys, bad values)."
  (let ((path (namestring path)))
    (%read-config keys path (%absolute-directory path) check
                  (lambda (reader config)
                    (%read-file reader config path
                                (%resolve-path path (%absolute-directory "")))))))

(defun config-from-string (text keys &key (name "<string>") directory check)
  "Reads TEXT as the contents of a config file called NAME in DIRECTORY (default: the working
directory) against KEYS.  Returns a config; signals config-error as read-config does."
  (let ((directory (if directory
                       (%resolve-path (string-right-trim "/" (namestring directory))
                                      (%absolute-directory ""))
                       (%absolute-directory ""))))
    (unless (char= (char directory (1- (length directory))) #\/)
      (setf directory (concatenate 'string directory "/")))
    (%read-config keys name directory check
                  (lambda (reader config)
                    (push (concatenate 'string directory name) (%reader-files reader))
                    (%read-text reader config name directory text)))))

;;; -n checks

(defun %check-value (spec value)
  "Returns NIL when VALUE (of SPEC) names things that exist, else a message."
  (flet ((kind (path)
           (ignore-errors (stat-type (stat path)))))
    (case (key-spec-type spec)
      (:path
       (case (key-spec-exists spec)
         (:file (let ((k (kind value)))
                  (cond ((null k) (format nil "~s does not exist" value))
                        ((eq k :directory) (format nil "~s is a directory" value)))))
         (:directory (let ((k (kind value)))
                       (cond ((null k) (format nil "directory ~s does not exist" value))
                             ((not (eq k :directory)) (format nil "~s is not a directory" value)))))
         (:parent (let ((dir (%directory-of value)))
                    (unless (eq (kind (if (string= dir "") "." dir)) :directory)
                      (format nil "directory ~s does not exist" dir))))))
      (:address
       (when (eq (address-family value) :unix)
         (let ((dir (%directory-of (address-path value))))
           (unless (eq (kind dir) :directory)
             (format nil "directory ~s does not exist" dir)))))
      (:user (handler-case (unless (getpwnam value) (format nil "no such user ~s" value))
               (unix-error (e) (format nil "looking up user ~s: ~a" value e))))
      (:group (handler-case (unless (getgrnam value) (format nil "no such group ~s" value))
                (unix-error (e) (format nil "looking up group ~s: ~a" value e)))))))

(defun %check (reader config)
  "Adds the -n failures of CONFIG and its blocks to READER's errors, in file and line order."
  (let ((before (%reader-errors reader)))
    (setf (%reader-errors reader) '())
    (%check-1 reader config)
    (setf (%reader-errors reader)
          (append (reverse (stable-sort (reverse (%reader-errors reader)) #'%error<)) before))))

(defun %error< (a b)
  (let ((fa (config-error-file a)) (fb (config-error-file b)))
    (or (string< fa fb)
        (and (string= fa fb) (< (config-error-line a) (config-error-line b))))))

(defun %check-1 (reader config)
  (dolist (spec (config-keys config))
    (let ((entries (reverse (gethash (key-spec-name spec) (config-entries config)))))
      (loop for (value file . line) in entries
            for message = (%check-value spec value)
            when message do (%error reader file line "~a: ~a" (%key-word spec) message))
      (when (eq (key-spec-type spec) :block)
        (loop for (nil . sub) in (config-blocks config (key-spec-name spec))
              do (%check-1 reader sub))))))

(defun check-config (config)
  "Checks what CONFIG names (the -n checks): paths whose key says :exists (certificates,
chroot, the directories of pid and log files), unix socket directories, users and groups.
Returns CONFIG; signals one config-error carrying every failure."
  (let ((reader (make-%reader)))
    (%check reader config)
    (%signal-errors reader)
    config))

;;; --help

(defun %meta (spec)
  (or (key-spec-meta spec)
      (ecase (key-spec-type spec)
        (:string "STRING") (:path "PATH") (:integer "N") (:size "SIZE") (:duration "DURATION")
        (:boolean "yes|no") (:address "ADDR:PORT") (:rate "N/DURATION")
        (:enum (format nil "~{~(~a~)~^|~}" (key-spec-values spec)))
        (:user "USER") (:group "GROUP") (:list "WORD...") (:block "ARG { ... }"))))

(defun %show-default (spec)
  (let ((d (key-spec-default spec)))
    (cond ((null d) nil)
          ((stringp d) d)
          ((eq (key-spec-type spec) :boolean) (if d "yes" "no"))
          ((and (listp d) (every #'stringp d)) (format nil "~{~a~^ ~}" d))
          (t (princ-to-string d)))))

(defun describe-config-keys (keys &optional (stream *standard-output*) (indent 2))
  "Writes one line per key of the table KEYS to STREAM (for --help): the key, its value's
shape, its doc, and whether it is required or repeatable and its default; a block's keys
follow it, indented.  Returns NIL.  Can't fail (but for STREAM's errors)."
  (when (= indent 2)
    (format stream "Sizes take K, M or G (1024-based: 1K = 1024 bytes); durations take ms, s, m ~
                    or h (a bare number means seconds); booleans are yes or no.~%"))
  (dolist (spec keys)
    (let ((head (format nil "~a~a ~a" (make-string indent :initial-element #\Space)
                        (%key-word spec) (%meta spec))))
      (format stream "~a~30t ~{~a~^ ~}~%" head
              (remove nil (list (key-spec-doc spec)
                                (and (key-spec-required spec) "(required)")
                                (and (key-spec-repeatable spec)
                                     (not (eq (key-spec-type spec) :block))
                                     "(repeatable)")
                                (let ((d (%show-default spec)))
                                  (and d (format nil "[default: ~a]" d))))))
      (when (eq (key-spec-type spec) :block)
        (describe-config-keys (key-spec-keys spec) stream (+ indent 2))))))

;;; The keys every server understands

(define-config-keys *common-keys*
  (listen :address :repeatable t
          :doc "Plain listener: HOST:PORT, *:PORT (all IPv4), [IPV6]:PORT, [::]:PORT, unix:PATH.")
  (listen-tls :address :repeatable t :doc "TLS listener, addresses as for listen.")
  (listen-udp :address :repeatable t
              :doc "UDP socket, HOST:PORT or [IPV6]:PORT (for servers with a datagram service).")
  (tls-cert :path :exists :file :doc "TLS certificate chain (PEM).")
  (tls-key :path :exists :file :doc "TLS private key (PEM).")
  (user :user :doc "User the serving processes run as.")
  (group :group :doc "Group the serving processes run as (default: the user's).")
  (chroot :path :exists :directory :doc "Directory the serving processes are chrooted to.")
  (pidfile :path :exists :parent :doc "File the parent's process id is written to.")
  (log :enum :values '(:syslog :stderr) :default "syslog" :doc "Where log lines go.")
  (access-log :path :exists :parent :doc "File access lines are appended to.")
  (workers :integer :min 1 :max 1024 :default "1" :doc "Serving processes or threads.")
  (max-connections :integer :min 1 :default "1024" :doc "Connections served at once.")
  (max-per-address :integer :min 1
                   :doc "Connections at once from one address (no limit when absent).")
  (rate-per-address :rate :doc "New connections allowed per address and period, as 10/1s.")
  (bandwidth-in :size :min 1
                :doc "Bytes/s read per connection, K/M/G allowed (no limit when absent).")
  (bandwidth-out :size :min 1
                 :doc "Bytes/s written per connection, K/M/G allowed (no limit when absent).")
  (timeout :duration :min 1 :default "5m" :doc "Idle time after which a connection is closed.")
  (shutdown-timeout :duration :min 0 :default "10s"
                    :doc "How long a stopping or replaced process may take to finish its connections.")
  (stat-dir :path :exists :directory
            :doc "mmstatd's socket directory (no statistics when absent)."))
