;;;; package.lisp — crow.http: crow-httpd, the HTTP/1.1 server on crow.server's event workers
;;;; (the request/response API is the contract in notes/http-api.md, used by crow.web).

(defpackage :crow.http
  (:use :cl :crow.unix :crow.server)
  (:export
   ;; requests
   #:request #:request-body #:request-content-type #:request-header #:request-headers
   #:request-host #:request-method #:request-p #:request-path #:request-peer #:request-plist
   #:request-query-string #:request-raw-head #:request-target #:request-version
   #:request-vhost
   ;; responses
   #:add-response-header #:respond #:respond-error #:respond-file #:respond-redirect
   #:send-chunk #:with-chunked-response
   ;; multipart uploads streamed to temporary files (upload.lisp)
   #:*max-form-memory* #:*max-upload-size* #:*max-uploads* #:*upload-directory*
   #:header-main-value #:header-parameter #:make-upload-scanner #:multipart-boundary
   #:request-multipart
   ;; routing and virtual hosts
   #:*vhosts* #:add-route #:define-handler #:find-vhost #:vhost #:vhost-aliases
   #:vhost-charset #:vhost-mode #:vhost-name #:vhost-post-max #:vhost-root
   ;; the program
   #:*config* #:*version* #:echo #:handle #:hello #:hello-count #:main #:start-httpd #:stop-httpd #:status-reason #:stream-lines))
