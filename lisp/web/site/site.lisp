;;;; site.lisp — the pages of crow's site: one layout (inlined into each page at compile time,
;;;; so a page is a few constant chunks around its dynamic parts), News, Software,
;;;; Documentation, Image Gallery and Contact.

(in-package :crow.site)

(defvar *started* (unix-time) "When this process started serving (for the uptime).")

(defmacro read-source-file (relative)
  "Expands into the text of RELATIVE (from the checkout's root) read at compile time, so the
executable carries it."
  (let* ((here (or *compile-file-truename* *load-truename*))
         (path (merge-pathnames relative (merge-pathnames "../../../" here))))
    (with-open-file (s path :external-format :utf-8)
      (let ((text (make-string (file-length s))))
        (subseq text 0 (read-sequence text s))))))

(defparameter *readme* (read-source-file "README.md"))
(defparameter *web-guide* (read-source-file "lisp/web/README.md"))

(defparameter *style* "
body{font-family:sans-serif;margin:0;background:#f4f1ea;color:#222}
#side{position:absolute;left:0;top:0;width:11em;padding:1em;background:#263238;color:#eee;min-height:100%}
#side a{color:#cfe;text-decoration:none;display:block;padding:.15em 0}
#side h2{font-size:1em;color:#9ab;margin:1em 0 .3em}
#main{margin-left:13.5em;padding:1em 2em;max-width:60em}
h1{border-bottom:2px solid #263238}
table.grid{border-collapse:collapse}table.grid td,table.grid th{border:1px solid #aaa;padding:.2em .5em;vertical-align:top}
pre{background:#fff;border:1px solid #ccc;padding:.5em;overflow:auto}
.news dt{font-weight:bold}.gallery img{border:1px solid #888;background:#fff}
.gallery figure{display:inline-block;margin:.5em;vertical-align:top;width:210px}
form{background:#fff;border:1px solid #ccc;padding:.7em;margin:.7em 0}
footer{margin-top:2em;font-size:.8em;color:#666}")

(defmacro site-page ((req title &key (status 200) headers) &body body)
  "Answers REQ with the site's layout around BODY (a template) titled TITLE."
  `(respond-html (,req :status ,status :headers ,headers :size 8192)
     (:doctype)
     (:html :lang "en"
       (:head (:meta :charset "utf-8")
              (:meta :name "viewport" :content "width=device-width")
              (:title "crow — " ,title)
              (:style (:raw *style*)))
       (:body
        (:div :id "side"
          (:h2 "Main") (:a :href "/" "Main page")
          (:h2 "crow") (:a :href "/news" "News") (:a :href "/software" "Software")
          (:a :href "/docs" "Documentation")
          (:h2 "Various") (:a :href "/gallery" "Image Gallery") (:a :href "/contact" "Contact")
          (:a :href "/test" "Test page") (:a :href "/stats" "Statistics") (:a :href "/irc/" "IRC logs")
          (:a :href "/hello" "/hello"))
        (:div :id "main"
          (:h1 ,title)
          ,@body
          (:footer "Served by Crow/" *version* " (crow-httpd, Common Lisp on "
                   (lisp-implementation-type) " " (lisp-implementation-version) ")"))))))

;;; ------------------------------------------------------------------ News and main page

(defparameter *news*
  '(("2026-11-30" "crow-httpd serves this site"
     "The HTTP/1.1 server on crow.server's event workers answers static files with sendfile and Lisp handlers looked up per request. Every page here is a compile-time template: constant UTF-8 chunks around escaped dynamic parts, written into one buffer and sent in one writev.")
    ("2026-11-30" "lisp/web: templates, http-let, sessions"
     "Forms are parsed lazily (only the names a handler binds are decoded, through the C codec); uploads go to temporary files; sessions ride on an HMAC-SHA-256 signed cookie.")
    ("2026-11-29" "The C core and the event loop"
     "libcrowcore moves the bytes: UTF-8 (SSE2/AVX2), HTTP framing, timers, token buckets, an epoll loop per thread handing whole requests to Lisp."))
  "(DATE TITLE TEXT) newest first.")

(define-template news-list (items)
  (:dl :class "news"
    (:dolist (n items)
      (:dt (first n) " — " (second n))
      (:dd (:p (third n))))))

(define-handler index (req)
  (site-page (req "crow")
    (:p "crow rebuilds the MMSoftware collection — mmftpd, mmmail, mmstatd, mmspawnd, "
        "Crow-HTTPd, irclog and friends — as one suite for Linux: small, fast, unprivileged, "
        "chrooted servers written in " (:b "Common Lisp on ECL over a C performance core") ".")
    (:p "The house rule: " (:i "C moves bytes, Lisp makes decisions") ".")
    (:h2 "News")
    (:call news-list (subseq *news* 0 2))
    (:p (:a :href "/news" "All news"))))

(define-handler news (req)
  (site-page (req "News")
    (:call news-list *news*)))

;;; ------------------------------------------------------------------ Software

(defun readme-status-table ()
  "Returns the rows of README's \"What works today\" table (header first)."
  (let ((blocks (markdown-blocks *readme*)))
    (loop for (b next) on blocks
          when (and (eq (first b) :h) (search "What works" (third b)) (eq (first next) :table))
            return (second next))))

(defparameter *components*
  '(("crow-httpd" "lisp/servers/http/ + lisp/web/"
     "The HTTP/1.1 server serving this page: virtual hosts, static files (sendfile, ranges, conditionals), Lisp handlers, compile-time templates, http-let, sessions.")
    ("mmftpd" "lisp/servers/ftp/" "FTP with virtual users, each in a chroot, fully unprivileged, with per-address limits and throttling.")
    ("mmmail" "lisp/servers/mail/" "Non-relaying SMTP and POP3 with PostgreSQL and file storage, tuned against spam, with a web interface for filters.")
    ("mmstatd" "lisp/servers/stat/" "Key-based counters with a recovery log, a C client library (mmstat) and a command-line client.")
    ("mmspawnd" "lisp/servers/spawn/" "An inetd-like spawner with rlimits, chroot and privilege dropping per service.")
    ("irclog" "lisp/servers/irc/" "An IRC logger with a web view.")
    ("crow-sh" "lisp/servers/sh/" "Lisp scripts and a REPL with crow.unix loaded (the js-sh of old)."))
  "(NAME WHERE WHAT): crow's components; their state is README's table, shown above them.")

(define-handler software (req)
  (let ((table (readme-status-table)))
    (site-page (req "Software")
      (:p "What works today, as the README says (read from it when this program was built):")
      (:table :class "grid"
        (:tr (:dolist (h (first table)) (:th (:call inline-html h))))
        (:dolist (row (rest table))
          (:tr (:dolist (cell row) (:td (:call inline-html cell))))))
      (:h2 "Components")
      (:dl (:dolist (c *components*)
             (:dt (:b (first c)) " — " (:code (second c)))
             (:dd (third c)))))))

;;; ------------------------------------------------------------------ Documentation

(defvar *readme-html* nil)
(defvar *web-guide-html* nil)

(define-handler docs (req)
  (let ((readme (or *readme-html* (setf *readme-html* (render-markdown *readme*))))
        (guide (or *web-guide-html* (setf *web-guide-html* (render-markdown *web-guide*)))))
    (site-page (req "Documentation")
      (:p "crow's README and the guide to " (:code "lisp/web") ", rendered by "
          (:code "crow.site:render-markdown") ": " (:a :href "#readme" "README") ", "
          (:a :href "#web" "crow.web") ".")
      (:div :id "readme" (:raw readme))
      (:div :id "web" (:raw guide)))))

;;; ------------------------------------------------------------------ Image Gallery

(defparameter *images*
  '(("crow.svg" "A crow on a wire")
    ("layers.svg" "C moves bytes, Lisp makes decisions: the layers")
    ("evloop.svg" "One epoll loop per worker thread")
    ("tiles.svg" "UTF-8 byte classes, as tiles"))
  "(FILE CAPTION) under the vhost's root, img/.")

(define-handler gallery (req)
  (site-page (req "Image Gallery")
    (:p "Small SVG drawings made for this site, served as static files by crow-httpd.")
    (:div :class "gallery"
      (:dolist (i *images*)
        (:figure (:a :href (concatenate 'string "/img/" (first i))
                   (:img :src (concatenate 'string "/img/" (first i)) :width 200 :height 150
                         :alt (second i)))
                 (:figcaption (second i)))))))

;;; ------------------------------------------------------------------ Contact

(defvar *messages* '() "The last contact messages (NAME EMAIL TEXT), newest first.")
(defvar *messages-lock* (mp:make-lock :name "crow.site messages"))

(define-handler contact (req)
  (http-let (req (name :string "" :from :post) (email :string "" :from :post)
                 (message :string "" :from :post))
    (let ((sent (and (eq (request-method req) :post) (plusp (length message)))))
      (when sent
        (mp:with-lock (*messages-lock*)
          (push (list name email message) *messages*)
          (when (> (length *messages*) 20) (setf *messages* (subseq *messages* 0 20)))))
      (site-page (req "Contact")
        (:p "Mail: " (:a :href "mailto:demo@crow.test" "demo@crow.test")
            " (the demo mail domain of " (:code "make run") ").")
        (:if sent
             (:p :id "thanks" "Thank you, " (if (plusp (length name)) name "stranger")
                 ". Your message (" (length message) " characters) was received.")
             (:form :method "post" :action "/contact"
               (:p (:label "Name " (:input :name "name" :value name)))
               (:p (:label "Mail " (:input :name "email" :type "email" :value email)))
               (:p (:textarea :name "message" :rows 5 :cols 60 message))
               (:p (:button :type "submit" "Send"))))))))
