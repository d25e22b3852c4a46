;;;; package.lisp — crow.site: crow's own web site, what `make run` serves through crow-httpd
;;;; (News, Software, Documentation, Image Gallery, Contact, and the /test page).

(defpackage :crow.site
  (:use :cl :crow.unix :crow.server :crow.http :crow.web)
  (:export #:contact #:docs #:gallery #:index #:irc-log #:render-markdown #:software #:stats #:test-page
           #:tpl))
