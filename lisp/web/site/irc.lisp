;;;; irc.lisp — /irc/, the web view of irclog's logs: networks -> channels -> days -> a day's
;;;; log rendered with an anchor per line, and a search box (one channel, or everything).
;;;; It reads the files irclog writes (LOG-DIR/NETWORK/#channel/YYYY-MM-DD.log); every name in
;;;; a URL must be one of the names listed in the directory, so a URL never leaves the logs.

(in-package :crow.site)

(defvar *irc-log-directory* nil
  "The directory irclog logs into, ending in /; NIL: $CROW_VAR/irclog/ (make run), else
var/irclog/ under the working directory.")

(defparameter *irc-search-limit* 200 "At most this many search results are shown.")

(defun irc-log-directory ()
  "Returns the log directory (a string ending in /).  Can't fail."
  (or *irc-log-directory*
      (let ((var (ext:getenv "CROW_VAR")))
        (if (and var (plusp (length var)))
            (concatenate 'string (string-right-trim "/" var) "/irclog/")
            "var/irclog/"))))

(defun irc-url-encode (s)
  "Returns S with every byte outside [A-Za-z0-9._~-] percent-encoded (UTF-8).  Can't fail."
  (with-output-to-string (out)
    (loop for b across (utf8-encode s)
          do (if (or (<= 48 b 57) (<= 65 b 90) (<= 97 b 122) (member b '(45 46 95 126)))
                 (write-char (code-char b) out)
                 (format out "%~2,'0X" b)))))

(defun irc-list (directory &key files)
  "Returns the sorted names in DIRECTORY (sub-directories, or with FILES the .log files without
their suffix), or NIL when it cannot be read."
  (let ((names (ignore-errors (read-directory directory))))
    (sort (loop for n in names
                for path = (concatenate 'string directory n)
                when (if files
                         (and (> (length n) 4) (string= ".log" n :start2 (- (length n) 4)))
                         (eq (ignore-errors (stat-type (stat path))) :directory))
                  collect (if files (subseq n 0 (- (length n) 4)) n))
          #'string<)))

(defun irc-known (name directory &key files)
  "Returns NAME when it is one of DIRECTORY's entries (see irc-list), else NIL."
  (and name (find name (irc-list directory :files files) :test #'string=)))

(defun irc-day-lines (path)
  "The lines of the log file PATH (UTF-8), or NIL."
  (let ((octets (ignore-errors (read-file-octets path))))
    (and octets
         (loop with text = (utf8-decode octets)
               for start = 0 then (1+ end)
               for end = (position #\Newline text :start start)
               for line = (subseq text start end)
               when (plusp (length line)) collect line
               while end))))

(defun irc-split-line (line)
  "Returns (values TIME KIND WHO TEXT) for a log LINE: KIND :msg (WHO the nick), :action,
or :server; TIME the hh:mm:ss part (NIL when the line has no timestamp)."
  (let* ((stamped (and (> (length line) 21) (char= (char line 10) #\T)
                       (string= "  " line :start2 19 :end2 21)))
         (time (and stamped (subseq line 11 19)))
         (rest (if stamped (subseq line 21) line)))
    (cond ((and (plusp (length rest)) (char= (char rest 0) #\<) (position #\> rest))
           (let ((gt (position #\> rest)))
             (values time :msg (subseq rest 1 gt) (string-left-trim " " (subseq rest (1+ gt))))))
          ((and (> (length rest) 2) (string= "* " rest :end2 2))
           (values time :action nil (subseq rest 2)))
          (t (values time :server nil rest)))))

(defparameter *irc-style* "
.irclog{font-family:monospace;background:#fff;border:1px solid #ccc;padding:.5em}
.irclog div{padding:1px 0}.irclog div:target{background:#ffd}
.irclog a.t{color:#888;text-decoration:none}.irclog .n{color:#1a5e8a;font-weight:bold}
.irclog .action{color:#7a3e9d}.irclog .server{color:#2e7d32}
.hits li{font-family:monospace}")

(define-template irc-search-box (action q)
  (:form :method "get" :action action :class "search"
    (:input :type "search" :name "q" :value q :id "irc-q" :placeholder "search the logs")
    " " (:button :type "submit" :id "irc-search" "Search")))

(define-template irc-log-line (id line)
  (:let ((parts (multiple-value-list (irc-split-line line))))
    (:div :id id :class (string-downcase (symbol-name (second parts)))
      (:a :class "t" :href (concatenate 'string "#" id) (or (first parts) "--:--:--"))
      " "
      (:cond ((eq (second parts) :msg)
              (:span :class "n" "<" (third parts) ">") " " (fourth parts))
             ((eq (second parts) :action) "* " (fourth parts))
             (t (fourth parts))))))

(define-template irc-log-lines (lines)
  (:div :class "irclog" :id "log"
    (:loop for line in lines for i from 1 do
      (:call irc-log-line (format nil "l~d" i) line))))

(defun irc-search (roots q)
  "Returns up to *irc-search-limit* hits (URL NETWORK CHANNEL DAY LINE) for Q (case ignored) in
the logs under ROOTS, a list of (NETWORK CHANNEL) pairs; newest days first."
  (let ((needle (string-downcase q)) (hits '()) (base (irc-log-directory)))
    (block search
      (dolist (root roots)
        (destructuring-bind (net chan) root
          (let ((dir (format nil "~a~a/~a/" base net chan)))
            (dolist (day (reverse (irc-list dir :files t)))
              (loop for line in (irc-day-lines (format nil "~a~a.log" dir day))
                    for i from 1
                    when (search needle (string-downcase line))
                      do (push (list (format nil "/irc/~a/~a/~a#l~d" (irc-url-encode net)
                                             (irc-url-encode chan) day i)
                                     net chan day line)
                               hits)
                         (when (>= (length hits) *irc-search-limit*) (return-from search))))))))
    (nreverse hits)))

(defun irc-all-channels ()
  (let ((base (irc-log-directory)))
    (loop for net in (irc-list base)
          append (loop for chan in (irc-list (format nil "~a~a/" base net))
                       collect (list net chan)))))

(defun irc-results (req title q roots action)
  (let ((hits (irc-search roots q)))
    (site-page (req title)
      (:style (:raw *irc-style*))
      (:call irc-search-box action q)
      (:p (:span :id "hit-count" (length hits)) " line(s) containing " (:b q)
          (:when (>= (length hits) *irc-search-limit*) " (the first " *irc-search-limit* ")") ".")
      (:ul :class "hits"
        (:loop for (url net chan day line) in hits do
          (:li (:a :href url net " " chan " " day) " " line))))))

(defun irc-split-path (path)
  "The non-empty components of PATH after /irc."
  (loop for start = 5 then (1+ end)
        for end = (position #\/ path :start (min start (length path)))
        for part = (subseq path (min start (length path)) end)
        when (plusp (length part)) collect part
        while end))

(define-handler irc-log (req)
  (let* ((path (request-path req))
         (parts (if (or (string= path "/irc")
                          (and (>= (length path) 5) (string= "/irc/" path :end2 5)))
                      (irc-split-path path)
                      :bad))
         (base (irc-log-directory)))
    (http-let (req (q :string "" :from :get))
      (when (eq parts :bad) (return-from irc-log (respond-error req 404)))
      (when (and (string= path "/irc") (null parts))
        (return-from irc-log (redirect req "/irc/" :status 301)))
      (destructuring-bind (&optional net chan day &rest more) parts
        (let* ((net (and net (irc-known net base)))
               (ndir (and net (format nil "~a~a/" base net)))
               (chan (and chan ndir (irc-known chan ndir)))
               (cdir (and chan (format nil "~a~a/" ndir chan)))
               (day (and day cdir (irc-known day cdir :files t))))
          (cond
            ((or more (and (second parts) (null chan)) (and (third parts) (null day))
                 (and (first parts) (null net)))
             (respond-error req 404))
            (day
             (let ((lines (irc-day-lines (format nil "~a~a.log" cdir day)))
                   (days (irc-list cdir :files t)))
               (let ((prev (cadr (member day (reverse days) :test #'string=)))
                     (next (cadr (member day days :test #'string=)))
                     (up (format nil "/irc/~a/~a/" (irc-url-encode net) (irc-url-encode chan))))
                 (site-page (req (format nil "~a ~a ~a" net chan day))
                   (:style (:raw *irc-style*))
                   (:p (:a :href "/irc/" "networks") " / "
                       (:a :href (format nil "/irc/~a/" (irc-url-encode net)) net) " / "
                       (:a :href up chan) " / " day
                       (:when prev " — " (:a :id "prev" :href (concatenate 'string up prev) "previous day"))
                       (:when next " — " (:a :id "next" :href (concatenate 'string up next) "next day")))
                   (:call irc-search-box up "")
                   (:call irc-log-lines lines)))))
            ((and chan (plusp (length q)))
             (irc-results req (format nil "~a ~a: search" net chan) q (list (list net chan))
                          (format nil "/irc/~a/~a/" (irc-url-encode net) (irc-url-encode chan))))
            (chan
             (let ((days (reverse (irc-list cdir :files t)))
                   (up (format nil "/irc/~a/~a/" (irc-url-encode net) (irc-url-encode chan))))
               (site-page (req (format nil "~a ~a" net chan))
                 (:p (:a :href "/irc/" "networks") " / "
                     (:a :href (format nil "/irc/~a/" (irc-url-encode net)) net) " / " chan)
                 (:call irc-search-box up q)
                 (:ul :id "days"
                   (:loop for d in days do
                     (:li (:a :href (concatenate 'string up d) d)))))))
            (net
             (site-page (req (format nil "IRC: ~a" net))
               (:p (:a :href "/irc/" "networks") " / " net)
               (:ul :id "channels"
                 (:loop for c in (irc-list ndir) do
                   (:li (:a :href (format nil "/irc/~a/~a/" (irc-url-encode net) (irc-url-encode c)) c))))))
            ((plusp (length q))
             (irc-results req "IRC logs: search" q (irc-all-channels) "/irc/"))
            (t
             (site-page (req "IRC logs")
               (:p "Channels logged by " (:b "irclog") " (" (:code (irc-log-directory)) ").")
               (:call irc-search-box "/irc/" q)
               (:ul :id "networks"
                 (:loop for n in (irc-list base) do
                   (:li (:a :href (format nil "/irc/~a/" (irc-url-encode n)) n))))))))))))
