;;;; static.lisp — files from a vhost's root: an open-file cache (descriptor and stat kept,
;;;; revalidated at most once a second), conditional requests, ranges, index files, directory
;;;; listings; the bytes go out with sendfile behind a head written with writev.
;;;;
;;;; No way out of the root: the request path is refused earlier when it has a `.`/`..`
;;;; segment, an encoded slash or a NUL (request.lisp); here every file is resolved with
;;;; realpath(3) when it enters the cache (and whenever its identity changes) and refused
;;;; unless the result lies under the root's own realpath, so symbolic links leading outside
;;;; are refused too.

(in-package :crow.http)

(defstruct (file-entry (:constructor %make-file-entry))
  "A cached file: descriptor, identity, validators, and for small files their bytes (so a
response is one writev); HEAD-BYTES are the validator header lines, made once."
  path fd type size mtime ino etag last-modified (checked 0) media-type head-bytes data)

(defvar *small-file* 65536 "Files up to this size are kept in memory by the cache.")

(defvar *file-cache* (make-hash-table :test 'equal) "Path -> file-entry.")
(defvar *file-cache-lock* (mp:make-lock :name "crow.http file cache"))
(defvar *file-cache-max* 4096 "Entries beyond which the cache is emptied.")
(defvar *retired-fds* '()
  "(fd . time) of descriptors replaced in the cache: closed a few seconds later, since a
worker may be about to hand the old one to ev-sendfile (which duplicates it).")

(defun %retire (entry now)
  (when (file-entry-fd entry)
    (push (cons (file-entry-fd entry) now) *retired-fds*)
    (setf (file-entry-fd entry) nil)))

(defun %reap (now)
  (setf *retired-fds*
        (delete-if (lambda (x) (when (> (- now (cdr x)) 5) (%close (car x)) t)) *retired-fds*)))

(defun under-root-p (real root)
  (let ((n (length root)))
    (and (>= (length real) n) (string= root real :end2 n)
         (or (= (length real) n) (char= (char real n) #\/)))))

(defun %load-entry (path root charset)
  "Returns a fresh file-entry for PATH, or NIL when it does not exist, is not a regular file
or directory, cannot be opened, or resolves outside ROOT."
  (let ((st (handler-case (stat path) (unix-error () nil))))
    (when st
      (let ((real (realpath path))
            (type (stat-type st)))
        (when (and real (under-root-p real root) (member type '(:regular :directory)))
          (let ((fd (and (eq type :regular)
                         (handler-case (open-fd path) (unix-error () nil)))))
            (when (or fd (eq type :directory))
              (let* ((etag (format nil "\"~x-~x-~x\"" (stat-ino st) (stat-size st) (stat-mtime st)))
                     (lm (format-http-date (stat-mtime st)))
                     (size (stat-size st))
                     (data (and fd (<= 0 size *small-file*)
                                (let ((buf (make-array size :element-type '(unsigned-byte 8))))
                                  (and (= size (pread-fd fd buf 0)) buf)))))
                (%make-file-entry
                 :path path :fd fd :type type :size size :mtime (stat-mtime st)
                 :ino (stat-ino st) :etag etag :last-modified lm
                 :media-type (base (mime-type path charset)) :data data
                 :head-bytes (base (format nil "Last-Modified: ~a~c~cETag: ~a~c~cAccept-Ranges: bytes~c~c"
                                           lm #\Return #\Linefeed etag #\Return #\Linefeed
                                           #\Return #\Linefeed)))))))))))

(defun cached-file (path root charset)
  "Returns the file-entry of PATH (a file or directory under ROOT), or NIL.  The entry's
descriptor is usable until a few seconds after the file changes."
  (let ((now (unix-time)))
    (mp:with-lock (*file-cache-lock*)
      (let ((e (gethash path *file-cache*)))
        (if (and e (= (file-entry-checked e) now))
            e
            (let ((st (handler-case (stat path) (unix-error () nil))))
              (%reap now)
              (cond ((and e st (= (stat-ino st) (file-entry-ino e))
                          (= (stat-size st) (file-entry-size e))
                          (= (stat-mtime st) (file-entry-mtime e)))
                     (setf (file-entry-checked e) now)
                     e)
                    (t
                     (when e (%retire e now) (remhash path *file-cache*))
                     (when (>= (hash-table-count *file-cache*) *file-cache-max*)
                       (maphash (lambda (k v) (declare (ignore k)) (%retire v now)) *file-cache*)
                       (clrhash *file-cache*))
                     (let ((n (and st (%load-entry path root charset))))
                       (when n
                         (setf (file-entry-checked n) now
                               (gethash path *file-cache*) n))
                       n)))))))))

;;; Conditional requests and ranges

(defun parse-http-date (s)
  "Returns the Unix time of an IMF-fixdate S (\"Sun, 06 Nov 1994 08:49:37 GMT\"), or NIL."
  (ignore-errors
   (let ((mon (position (subseq s 8 11) '("Jan" "Feb" "Mar" "Apr" "May" "Jun" "Jul" "Aug"
                                          "Sep" "Oct" "Nov" "Dec")
                        :test #'string=)))
     (when (and mon (= (length s) 29) (string= (subseq s 26) "GMT"))
       (- (encode-universal-time (parse-integer s :start 23 :end 25)
                                 (parse-integer s :start 20 :end 22)
                                 (parse-integer s :start 17 :end 19)
                                 (parse-integer s :start 5 :end 7) (1+ mon)
                                 (parse-integer s :start 12 :end 16) 0)
          2208988800)))))

(defun etag-matches-p (header etag)
  "True when the If-None-Match HEADER lists ETAG (weak comparison) or is *."
  (let ((h (string-trim " " header)))
    (or (string= h "*")
        (some (lambda (x) (let ((x (string-trim " " x)))
                            (string= (if (and (> (length x) 2) (string= "W/" x :end2 2)) (subseq x 2) x)
                                     etag)))
              (split-on #\, h)))))

(defun split-on (char string)
  (loop for start = 0 then (1+ end)
        for end = (position char string :start start)
        collect (subseq string start end)
        while end))

(defparameter +if-none-match+ (base "if-none-match"))
(defparameter +if-modified-since+ (base "if-modified-since"))
(defparameter +range+ (base "range"))
(defparameter +if-range+ (base "if-range"))

(defun not-modified-p (req entry)
  (let ((inm (ev-unit-header-base (request-unit req) +if-none-match+)))
    (if inm
        (etag-matches-p inm (file-entry-etag entry))
        (let ((ims (ev-unit-header-base (request-unit req) +if-modified-since+)))
          (and ims (or (string= ims (file-entry-last-modified entry))
                       (let ((tm (parse-http-date ims)))
                         (and tm (>= tm (file-entry-mtime entry))))))))))

(defparameter *max-ranges* 16 "More ranges than this in one request: the Range is ignored.")

(defun parse-ranges (header size)
  "Returns the byte ranges of a Range HEADER for a file of SIZE bytes as a list of
(FIRST . LAST), :unsatisfiable when none can be served, or NIL when the header is to be
ignored (not bytes=, malformed, too many ranges)."
  (when (and (> (length header) 6) (string-equal "bytes=" header :end2 6))
    (let ((specs (split-on #\, (subseq header 6))) (out '()))
      (when (> (length specs) *max-ranges*) (return-from parse-ranges nil))
      (dolist (spec specs)
        (let* ((spec (string-trim " 	" spec))
               (dash (position #\- spec)))
          (unless dash (return-from parse-ranges nil))
          (flet ((num (s) (and (plusp (length s)) (every #'digit-char-p s) (parse-integer s))))
            (let ((a (num (subseq spec 0 dash))) (b (num (subseq spec (1+ dash)))))
              (cond ((and (null a) (null b)) (return-from parse-ranges nil))
                    ((null a)             ; suffix: the last B bytes
                     (when (plusp b) (push (cons (max 0 (- size b)) (1- size)) out)))
                    ((and b (< b a)) (return-from parse-ranges nil))
                    ((< a size) (push (cons a (min (1- size) (or b (1- size)))) out)))))))
      (if out (nreverse out) :unsatisfiable))))

;;; Sending

(defun %send-slice (ev conn entry first n &key more close)
  "Sends bytes [FIRST, FIRST+N) of ENTRY's file: from its descriptor with sendfile, or from
its bytes when it has no descriptor (an embedded file)."
  (if (file-entry-fd entry)
      (ev-sendfile ev conn (file-entry-fd entry) first n :more more :close close)
      (ev-reply ev conn (vector (subseq (file-entry-data entry) first (+ first n)))
                :more more :close close)))

(defun send-file-head (req status type length headers &key (more t))
  "Writes the head of a file response (Content-Length LENGTH) with MORE when a body follows.
Returns (values OK CLOSE)."
  (let ((close (%close-p req status)))
    (values (ev-reply (request-ev req) (request-conn req)
                      (%head req status type length headers close nil nil)
                      :more more :close (and (not more) close))
            close)))

(defun respond-file (req entry &key (status 200) headers)
  "Answers REQ with the regular file of ENTRY (a file-entry), honouring If-None-Match,
If-Modified-Since, Range and If-Range.  Returns T, or NIL when the client has gone."
  (let* ((size (file-entry-size entry))
         (type (file-entry-media-type entry))
         (ev (request-ev req)) (conn (request-conn req))
         (head-p (eq (request-method req) :head))
         (hdrs (cons (file-entry-head-bytes entry) headers)))
    (when (not-modified-p req entry)
      (return-from respond-file (send-response req 304 nil '() hdrs)))
    (let* ((range (ev-unit-header-base (request-unit req) +range+))
           (if-range (and range (ev-unit-header-base (request-unit req) +if-range+)))
           (ranges (and range (= status 200)
                        (or (null if-range) (string= if-range (file-entry-etag entry))
                            (string= if-range (file-entry-last-modified entry)))
                        (parse-ranges range size))))
      (cond ((eq ranges :unsatisfiable)
             (send-response req 416 "text/html; charset=utf-8" (list (error-page 416))
                            (cons (cons "Content-Range" (format nil "bytes */~d" size)) hdrs)))
            ((and ranges (null (rest ranges)))
             (destructuring-bind (first . last) (first ranges)
               (let ((n (1+ (- last first))))
                 (%finish req 206 (if head-p 0 n) nil)
                 (multiple-value-bind (ok close)
                     (send-file-head req 206 type n
                                     (cons (cons "Content-Range"
                                                 (format nil "bytes ~d-~d/~d" first last size))
                                           hdrs)
                                     :more (not head-p))
                   (if (and ok (not head-p))
                       (%send-slice ev conn entry first n :close close)
                       ok)))))
            (ranges (send-multipart req entry ranges hdrs head-p))
            ((file-entry-data entry)
             (send-response req status type (list (file-entry-data entry)) hdrs))
            (t
             (let ((body-p (and (not head-p) (plusp size))))
               (%finish req status (if body-p size 0) nil)
               (multiple-value-bind (ok close) (send-file-head req status type size hdrs :more body-p)
                 (if (and ok body-p)
                     (ev-sendfile ev conn (file-entry-fd entry) 0 size :close close)
                     ok))))))))

(defvar *boundary-counter* 0)

(defun send-multipart (req entry ranges headers head-p)
  "Answers with a 206 multipart/byteranges body: one part per range, each slice sent with
sendfile between the part heads."
  (let* ((size (file-entry-size entry))
         (boundary (format nil "CROW~36r~36r" (unix-time) (incf *boundary-counter*)))
         (part-heads (loop for (first . last) in ranges
                           for i from 0
                           collect (bytes-of (format nil "~:[~c~c~;~2*~]--~a~c~cContent-Type: ~a~c~cContent-Range: bytes ~d-~d/~d~c~c~c~c"
                                                     (zerop i) #\Return #\Linefeed boundary
                                                     #\Return #\Linefeed
                                                     (file-entry-media-type entry) #\Return #\Linefeed
                                                     first last size #\Return #\Linefeed
                                                     #\Return #\Linefeed))))
         (tail (bytes-of (format nil "~c~c--~a--~c~c" #\Return #\Linefeed boundary #\Return #\Linefeed)))
         (length (+ (length tail)
                    (loop for h in part-heads for (first . last) in ranges
                          sum (+ (length h) 1 (- last first)))))
         (ev (request-ev req)) (conn (request-conn req)))
    (%finish req 206 (if head-p 0 length) nil)
    (multiple-value-bind (ok close)
        (send-file-head req 206 (format nil "multipart/byteranges; boundary=~a" boundary) length
                        headers :more (not head-p))
      (when (and ok (not head-p))
        (loop for h in part-heads for (first . last) in ranges
              while ok
              do (setf ok (and (ev-reply ev conn (vector h) :more t)
                               (%send-slice ev conn entry first (1+ (- last first)) :more t))))
        (when ok (setf ok (ev-reply ev conn (vector tail) :close close))))
      ok)))

;;; Directories

(defun url-encode-path (s)
  "Returns S with every byte outside the unreserved set (and /) percent-encoded (UTF-8), by
c-core/html in one pass."
  (percent-encode s :set :path))

(defun respond-listing-names (req path names)
  "Answers REQ with an HTML list of NAMES (strings, sorted; a directory's ending in /, names
escaped), the directory PATH's entries."
  (respond req
           (with-output-to-string (o)
             (format o "<!DOCTYPE html>~%<html><head><meta charset=\"utf-8\"><title>Index of ~a</title></head>~%<body><h1>Index of ~a</h1><ul>~%"
                     (html-escape path) (html-escape path))
             (unless (string= path "/") (format o "<li><a href=\"../\">../</a></li>~%"))
             (dolist (shown names)
               (format o "<li><a href=\"~a\">~a</a></li>~%"
                       (html-escape (url-encode-path shown)) (html-escape shown)))
             (format o "</ul><hr>Crow/~a</body></html>~%" *version*))
           :content-type "text/html; charset=utf-8"))

(defun respond-listing (req dir path)
  "Answers REQ with an HTML list of directory DIR's entries (names escaped), shown as PATH."
  (respond-listing-names
   req path
   (loop for n in (sort (handler-case (read-directory dir) (unix-error () '())) #'string<)
         collect (let ((st (handler-case (stat (concatenate 'string dir "/" n)) (unix-error () nil))))
                   (if (and st (eq (stat-type st) :directory)) (concatenate 'string n "/") n)))))

;;; Whole-file answers the C loop replays (c-core/fcache)

(defvar *file-answers* t
  "When true (and no access log is kept), a plain GET/HEAD answered with a whole file is
recorded in the worker's C loop, which then answers the same Host and path itself — C moves
the bytes of a decision made here — until the file changes (re-stat'ed once a second) or
routes, vhosts or media types change (fcache-invalidate).  Conditional and range requests,
and any request with a body, still come here.")

(defvar *access-log*)                   ; access-log.lisp
(defvar *max-headers*)                  ; server.lisp

(defparameter +deferred-headers+ '("if-none-match" "if-modified-since" "if-range" "range")
  "Header fields whose presence sends a request to Lisp even when the C loop knows its file.")

(defun file-answers-allowed-p ()
  "True when the C loop may answer file requests without Lisp seeing them: nothing is done
per request on the Lisp side beyond the answer itself.  Whatever adds such a side effect
\(the access log today; a per-request counter tomorrow) must make this false."
  (and *file-answers* (null *access-log*)))

(defun remember-file-answer (req entry path)
  "After REQ was answered with ENTRY's whole file, records the answer in the worker's C loop
\(see *file-answers*); PATH is the file's path to revalidate, NIL for embedded bytes.  Returns
nothing useful; can't fail (a request that does not qualify is simply not recorded)."
  (when (and (file-answers-allowed-p) (eql (%rq-status req) 200)
             (member (%rq-method req) '(:get :head)))
    (let ((ev (%rq-ev req)))
      (unless (ev-fcache-p ev)
        (ev-fcache-attach ev :prefix (status-line 200) :close-line +conn-close+
                             :keep-line +conn-keep+ :end +crlf+ :defer +deferred-headers+
                             :max-headers *max-headers*))
      (ev-fcache-put ev (%rq-unit req) path (file-entry-fd entry) (file-entry-size entry)
                     (file-entry-ino entry) (file-entry-mtime entry)
                     (concatenate 'simple-base-string +ct+ (file-entry-media-type entry) +cl+
                                  (digits (file-entry-size entry)) +crlf+
                                  (file-entry-head-bytes entry))
                     (file-entry-data entry)))))

;;; Embedded files (make site: tools/embed-site, c-core/embed)

(defvar *external-files* t "NIL (external-files no): no file is served from disk.")

;; An executable built by make site with CONFIG reads that text when no -f is given.
(setf crow.server::*default-config* (embedded-config))

(defvar *embedded-cache* (make-hash-table :test 'equal)
  "\"CHARSET PATH\" -> file-entry of an embedded file (only files found are kept: the table
is fixed at build time, so the cache is bounded by it).")

(defun embedded-entry (path charset)
  "Returns a file-entry (no descriptor, the bytes in memory, validators from the build-time
mtime) for the embedded file PATH, or NIL."
  (let ((key (concatenate 'string charset " " path)))
    (or (mp:with-lock (*file-cache-lock*) (gethash key *embedded-cache*))
        (let ((name (map 'simple-base-string #'code-char (utf8-encode path))))
          (multiple-value-bind (data mtime) (embedded-file name)
            (when data
              (let* ((size (length data))
                     (etag (format nil "\"e-~x-~x\"" size mtime))
                     (lm (format-http-date mtime))
                     (e (%make-file-entry
                         :path path :fd nil :type :regular :size size :mtime mtime :ino 0
                         :etag etag :last-modified lm :data data
                         :media-type (base (mime-type path charset))
                         :head-bytes (base (format nil "Last-Modified: ~a~c~cETag: ~a~c~cAccept-Ranges: bytes~c~c"
                                                   lm #\Return #\Linefeed etag #\Return #\Linefeed
                                                   #\Return #\Linefeed)))))
                (mp:with-lock (*file-cache-lock*)
                  (setf (gethash key *embedded-cache*) e)))))))))

(defun embedded-children (dir)
  "Returns the names of the entries of the embedded directory DIR (a path ending in /), sorted,
a subdirectory's ending in /; NIL when no embedded file lies under DIR."
  (let* ((prefix (map 'simple-base-string #'code-char (utf8-encode dir)))
         (n (length prefix))
         (names '()))
    (dolist (p (embedded-paths))
      (when (and (> (length p) n) (string= prefix p :end2 n))
        (let* ((slash (position #\/ p :start n))
               (name (subseq p n (if slash (1+ slash) (length p)))))
          (unless (equal name (first names)) ; table order: a directory's files are together
            (push name names)))))
    (sort (mapcar (lambda (b) (octets-to-string (map 'octets #'char-code b))) names) #'string<)))

(defun serve-embedded (req vhost path)
  "Answers a GET/HEAD REQ for PATH from the files embedded in the executable: the file, a
directory's index file or (with listing) its list of entries, a redirect to add a directory's
slash, or 404."
  (let* ((charset (vhost-charset vhost))
         (dir-p (char= (char path (1- (length path))) #\/))
         (e (if dir-p nil (embedded-entry path charset))))
    (flet ((index (dir)
             (loop for name in (vhost-index vhost)
                   thereis (embedded-entry (concatenate 'string dir name) charset))))
      (cond (e (prog1 (respond-file req e) (remember-file-answer req e nil)))
            (dir-p (let ((ie (index path)))
                     (cond (ie (respond-file req ie))
                           ((not (vhost-listing vhost)) (respond-error req 404))
                           (t (let ((names (embedded-children path)))
                                (if names
                                    (respond-listing-names req path names)
                                    (respond-error req 404)))))))
            ((or (index (concatenate 'string path "/"))
                 (and (vhost-listing vhost) (embedded-children (concatenate 'string path "/"))))
             (respond-redirect req (let ((q (request-query-string req)))
                                     (format nil "~a/~@[?~a~]" (url-encode-path path) q))
                               :status 301))
            (t (respond-error req 404))))))

(defun serve-static (req vhost path)
  "Answers a GET/HEAD REQ for PATH (decoded, already checked for `..`) from VHOST's root (or
from the embedded files, for an embedded vhost): the file, a directory's index file or
listing, a redirect to add a directory's slash, or 404 (always, for disk files, with
external-files no)."
  (when (vhost-embedded vhost)
    (return-from serve-static (serve-embedded req vhost path)))
  (let ((root (and *external-files* (vhost-real-root vhost))))
    (if (null root)
        (respond-error req 404)
        (let* ((file (concatenate 'string root path))
               (e (cached-file file root (vhost-charset vhost))))
          (cond ((null e) (respond-error req 404))
                ((eq (file-entry-type e) :regular)
                 (prog1 (respond-file req e) (remember-file-answer req e (file-entry-path e))))
                ((char/= (char path (1- (length path))) #\/)
                 (respond-redirect req (let ((q (request-query-string req)))
                                         (format nil "~a/~@[?~a~]" (url-encode-path path) q))
                                   :status 301))
                (t
                 (let ((index (loop for name in (vhost-index vhost)
                                    for ie = (cached-file (concatenate 'string file name) root
                                                          (vhost-charset vhost))
                                    when (and ie (eq (file-entry-type ie) :regular)) return ie)))
                   (cond (index (respond-file req index))
                         ((vhost-listing vhost) (respond-listing req (string-right-trim "/" file) path))
                         (t (respond-error req 403))))))))))
