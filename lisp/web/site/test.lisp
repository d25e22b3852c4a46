;;;; test.lisp — /test, as on the original Crow-HTTPd: echoes the raw request, method, path,
;;;; vhost and headers; urlencoded, checkbox and multipart upload forms (each file's name,
;;;; size and SHA-256); a cookie round trip; server name, version, uptime, Lisp and OS.

(in-package :crow.site)

(defparameter *test-cookie* "crowtest")

(defun uptime-string ()
  (let ((s (- (unix-time) *started*)))
    (multiple-value-bind (d s) (floor s 86400)
      (multiple-value-bind (h s) (floor s 3600)
        (multiple-value-bind (m s) (floor s 60)
          (format nil "~@[~dd ~]~2,'0d:~2,'0d:~2,'0d" (and (plusp d) d) h m s))))))

(defun os-string ()
  (format nil "~a ~a" (software-type) (software-version)))

(define-template test-forms ()
  (:h2 "Forms")
  (:form :id "form-urlencoded" :method "post" :action "/test/form"
    (:p (:b "urlencoded POST") " "
        (:input :name "text" :id "text" :value "héllo <world> & co")
        " " (:input :name "number" :id "number" :value "42")
        " " (:button :type "submit" :id "submit-form" "Submit")))
  (:form :id "form-checkbox" :method "get" :action "/test/form"
    (:p (:b "checkboxes (GET)") " "
        (:loop for o in '("red" "green" "blue") do
          (:label (:input :type "checkbox" :name "color" :value o :id (concatenate 'string "color-" o)) o " "))
        (:button :type "submit" :id "submit-checkbox" "Submit")))
  (:form :id "form-upload" :method "post" :action "/test/upload" :enctype "multipart/form-data"
    (:p (:b "multipart upload") " "
        (:input :type "text" :name "comment" :id "comment" :value "files")
        " " (:input :type "file" :name "file" :id "file" :multiple t)
        " " (:button :type "submit" :id "submit-upload" "Upload")))
  (:form :id "form-cookie" :method "post" :action "/test/cookie"
    (:p (:b "cookie round trip") " "
        (:input :name "value" :id "cookie-input" :value "crow cookie ✓")
        " " (:button :type "submit" :id "submit-cookie" "Set cookie"))))

(define-template request-echo (req)
  (:h2 "Request")
  (:table :class "grid" :id "request"
    (:tr (:th "Method") (:td :id "method" (symbol-name (request-method req))))
    (:tr (:th "Path") (:td :id "path" (request-path req)))
    (:tr (:th "Query") (:td :id "query" (request-query-string req)))
    (:tr (:th "Virtual host") (:td :id "vhost" (let ((v (request-vhost req))) (and v (vhost-name v)))))
    (:tr (:th "Host") (:td :id "host" (request-host req)))
    (:tr (:th "Peer") (:td :id "peer" (request-peer req)))
    (:tr (:th "Version") (:td (if (= (request-version req) 11) "HTTP/1.1" "HTTP/1.0"))))
  (:h3 "Headers")
  (:table :class "grid" :id "headers"
    (:loop for (name . value) in (request-headers req) do (:tr (:th name) (:td value))))
  (:h3 "Raw request head")
  (:pre :id "raw" (utf8-decode (request-raw-head req))))

(define-template server-info ()
  (:h2 "Server")
  (:table :class "grid" :id "server"
    (:tr (:th "Server") (:td :id "server-name" "Crow-HTTPd (crow-httpd)"))
    (:tr (:th "Version") (:td :id "server-version" *version*))
    (:tr (:th "Uptime") (:td :id "uptime" (uptime-string)))
    (:tr (:th "Lisp") (:td :id "lisp" (lisp-implementation-type) " " (lisp-implementation-version)))
    (:tr (:th "OS") (:td :id "os" (os-string)))
    (:tr (:th "Machine") (:td (machine-type)))))

(defun test-main (req)
  (http-let (req (cookie :string nil :from :cookie :name *test-cookie*)
                 (forget :boolean nil :from :get))
    (when forget (end-session req :path "/test"))
    (let ((visits (and (not forget)
                       (let ((s (ensure-session req :path "/test")))
                         (incf (session-value s :visits 0))))))
      (site-page (req "Test page")
        (:p "Cookie " (:code *test-cookie*) ": "
            (:span :id "cookie-value" (or cookie "(none)")))
        (:p "Visits in this session (a server-side session behind an HMAC-signed cookie): "
            (:span :id "visits" (or visits "(session ended)"))
            " " (:a :href "/test?forget=1" "end the session"))
        (:call test-forms)
        (:call request-echo req)
        (:call server-info)))))

(defun test-form (req)
  (http-let (req (text :string "") (number :integer -1) (colors :list :name "color"))
    (site-page (req "Form result")
      (:table :class "grid"
        (:tr (:th "text") (:td :id "r-text" text))
        (:tr (:th "number") (:td :id "r-number" number))
        (:tr (:th "color") (:td :id "r-color" (format nil "~{~a~^,~}" colors))))
      (:p (:a :href "/test" "Back to /test"))
      (:call request-echo req))))

(defun test-upload (req)
  (http-let (req (comment :string "" :from :post) (files (:list :upload) :name "file" :from :post))
    (site-page (req "Upload result")
      (:p "Comment: " (:span :id "r-comment" comment))
      (:table :class "grid" :id "files"
        (:tr (:th "name") (:th "size") (:th "type") (:th "SHA-256"))
        (:loop for f in files for i from 0 do
          (:tr (:td :class "name" (upload-filename f))
               (:td :class "size" (upload-size f))
               (:td (upload-content-type f))
               (:td :class "sha256" (:code (octets-to-hex (sha256-file (upload-path f))))))))
      (:p (:span :id "file-count" (length files)) " file(s).")
      (:p (:a :href "/test" "Back to /test")))))

(defun test-cookie (req)
  (http-let (req (value :string "" :from :post))
    (set-cookie req *test-cookie* value :path "/test" :max-age 3600 :http-only t :same-site :lax)
    (redirect req "/test" :status 303)))

(define-handler test-page (req)
  (let ((path (request-path req)))
    (cond ((string= path "/test/form") (test-form req))
          ((and (string= path "/test/upload") (eq (request-method req) :post)) (test-upload req))
          ((and (string= path "/test/cookie") (eq (request-method req) :post)) (test-cookie req))
          ((or (string= path "/test") (string= path "/test/")) (test-main req))
          (t (respond-error req 404)))))
