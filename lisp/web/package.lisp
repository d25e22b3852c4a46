;;;; package.lisp — crow.web: compile-time HTML templates, http-let, cookies, redirects and
;;;; signed sessions for handlers running in crow-httpd.

(defpackage :crow.web
  (:use :cl :crow.unix :crow.server :crow.http)
  (:export
   ;; templates (html.lisp)
   #:*html-fuse* #:*html-mode* #:compile-template #:define-template #:html-octets #:html-out
   #:html-out-fill #:html-out-octets #:html-out-result #:html-out-write-octets
   #:html-out-write-raw #:html-out-write-text #:html-string #:make-html-out
   #:with-html-output
   ;; forms, uploads, cookies (forms.lisp)
   #:*max-form-memory* #:*max-upload-size* #:*max-uploads* #:*upload-directory* #:coerce-param
   #:delete-uploads #:multipart-form-fields
   #:form-error #:form-error-status #:form-fields #:form-names #:form-value #:form-values
   #:header-main-value #:header-parameter #:parse-cookies #:parse-multipart
   #:parse-urlencoded #:upload #:upload-content-type #:upload-filename #:upload-name
   #:upload-p #:upload-path #:upload-size
   ;; http-let (params.lisp)
   #:delete-request-uploads #:http-let #:http-param #:request-body-fields #:request-cookie
   #:request-cookies #:request-query-fields #:with-http-let
   ;; responses (response.lisp)
   #:cookie-header-value #:delete-cookie #:encode-cookie-value #:redirect #:respond-buffer
   #:respond-html
   #:set-cookie
   ;; sessions (session.lisp)
   #:*session-cookie* #:*session-lifetime* #:*session-secret* #:end-session #:ensure-session
   #:find-session #:random-octets #:session-cookie-value #:session-value #:web-session
   #:web-session-expires #:web-session-id))
