;;;; http.lisp — crow.http's decisions that need no socket: target splitting and decoding, the
;;;; root's boundary, ranges, conditional headers, dates, routes, vhosts, media types
;;;; (goldens written from RFC 9110/9112/3986).

(in-package :crow.test)

(def-suite http :in crow)
(in-suite http)

(test split-target
  (is (equal '("/a/b" "x=1&y" nil) (multiple-value-list (crow.http::split-target "/a/b?x=1&y"))))
  (is (equal '("/a b/é" nil nil) (multiple-value-list (crow.http::split-target "/a%20b/%C3%A9"))))
  (is (equal '("/p" "q" "h.test:81") (multiple-value-list (crow.http::split-target "http://h.test:81/p?q"))))
  (is (equal '("/" nil "h") (multiple-value-list (crow.http::split-target "http://h"))))
  (is (equal "*" (crow.http::split-target "*")))
  ;; refused: no leading slash, bad escapes, NUL, encoded slash, invalid UTF-8
  (dolist (bad '("a/b" "/a%zz" "/a%2" "/a%00b" "/a%2fb" "/a%2Fb" "/%ff%fe" ""))
    (is (null (crow.http::split-target bad)) "~s must be refused" bad)))

(test dot-segments
  (is-true (crow.http::path-segments-safe-p "/a/b.c/.d/..e/"))
  (dolist (bad '("/.." "/../x" "/a/../b" "/a/." "/./a" "/a/.."))
    (is-false (crow.http::path-segments-safe-p bad) "~s" bad))
  ;; an encoded dot-dot decodes to one and is then refused
  (is-false (crow.http::path-segments-safe-p (crow.http::split-target "/%2e%2E/etc"))))

(test ranges
  (is (equal '((0 . 9)) (crow.http::parse-ranges "bytes=0-9" 100)))
  (is (equal '((90 . 99)) (crow.http::parse-ranges "bytes=-10" 100)))
  (is (equal '((0 . 99)) (crow.http::parse-ranges "bytes=-1000" 100)))
  (is (equal '((95 . 99)) (crow.http::parse-ranges "bytes=95-" 100)))
  (is (equal '((0 . 99)) (crow.http::parse-ranges "bytes=0-500" 100)))
  (is (equal '((0 . 1) (5 . 6)) (crow.http::parse-ranges "bytes=0-1, 5-6" 100)))
  (is (equal '((0 . 1)) (crow.http::parse-ranges "bytes=0-1,200-300" 100)))
  (is (eq :unsatisfiable (crow.http::parse-ranges "bytes=100-200" 100)))
  (is (eq :unsatisfiable (crow.http::parse-ranges "bytes=-0" 100)))
  ;; ignored (serve the whole file): not bytes, malformed, reversed, too many
  (dolist (h '("items=0-1" "bytes=" "bytes=a-b" "bytes=5-1" "bytes=-" "bytes=1"))
    (is (null (crow.http::parse-ranges h 100)) "~s" h))
  (is (null (crow.http::parse-ranges
             (format nil "bytes=~{~d-~d~^,~}" (loop for i below 40 append (list i i))) 100))))

(test conditionals
  (is-true (crow.http::etag-matches-p "\"a\"" "\"a\""))
  (is-true (crow.http::etag-matches-p "\"x\", W/\"a\"" "\"a\""))
  (is-true (crow.http::etag-matches-p "*" "\"a\""))
  (is-false (crow.http::etag-matches-p "\"b\"" "\"a\""))
  (is (= 784111777 (crow.http::parse-http-date "Sun, 06 Nov 1994 08:49:37 GMT")))
  (is (null (crow.http::parse-http-date "Sunday, 06-Nov-94 08:49:37 GMT")))
  (is (null (crow.http::parse-http-date "garbage"))))

(test routes-and-vhosts
  (let ((crow.http:*vhosts* (make-hash-table :test 'equalp))
        (crow.http::*default-vhost* nil)
        (crow.http::*last-host* (cons "" nil)))
    (let ((a (crow.http::register-vhost (crow.http::make-vhost :name "a.test" :aliases '("www.a.test"))))
          (b (crow.http::register-vhost (crow.http::make-vhost :name "b.test" :default t))))
      (is (eq a (crow.http:find-vhost "A.Test:8080")))
      (is (eq a (crow.http:find-vhost "www.a.test.")))
      (is (eq b (crow.http:find-vhost "nowhere")))
      (is (eq b (crow.http:find-vhost nil)))
      (is (eq a (crow.http::find-vhost-name "A.TEST")))
      (crow.http:add-route "a.test" "/app" 'app)
      (crow.http:add-route "a.test" "/app/admin" 'admin)
      (crow.http:add-route "a.test" "/x" 'x :exact t)
      (flet ((r (p) (let ((r (crow.http::find-route a p))) (and r (crow.http::route-symbol r)))))
        (is (eq 'app (r "/app")))
        (is (eq 'app (r "/app/page")))
        (is (eq 'admin (r "/app/admin/users")))
        (is (null (r "/application")))
        (is (eq 'x (r "/x")))
        (is (null (r "/x/y")))))))

(test route-and-vhost-caches
  ;; the request path's lookups remember the last answer; a change of routes or vhosts made
  ;; at run time must be seen by the very next lookup
  (let ((crow.http:*vhosts* (make-hash-table :test 'equalp))
        (crow.http::*default-vhost* nil)
        (crow.http::*last-host* (cons "" nil))
        (crow.http::*last-route* (vector nil nil nil)))
    (let ((a (crow.http::register-vhost (crow.http::make-vhost :name "a.test")))
          (host (copy-seq "a.test")))
      (crow.http:add-route "a.test" "/p" 'one :exact t)
      (flet ((r (v path) (let ((r (crow.http::find-route* v path)))
                           (and r (crow.http::route-symbol r)))))
        (is (eq 'one (r a "/p")))
        (is (eq 'one (r a "/p")))
        (is (eq 'one (r a (copy-seq "/p"))))
        (is (null (r a "/q")))
        (crow.http:add-route "a.test" "/p" 'two :exact t)
        (is (eq 'two (r a "/p")))
        (crow.http:add-route "a.test" "/q" 'three)
        (is (eq 'three (r a "/q")))
        (is (eq a (crow.http::find-vhost-name* host 6)))
        (is (eq a (crow.http::find-vhost-name* host 6)))
        (let ((a2 (crow.http::register-vhost (crow.http::make-vhost :name "a.test"))))
          (is (eq a2 (crow.http::find-vhost-name* host 6)))
          (is (null (r a2 "/p"))))
        (crow.http::clear-vhosts)
        (is (null (crow.http::find-vhost-name* host 6)))))))

(test media-types
  (crow.http::load-mime-types "/nonexistent/mime.types")
  (is (equal "text/html; charset=utf-8" (crow.http::mime-type "/a/index.html")))
  (is (equal "text/css; charset=latin1" (crow.http::mime-type "s.CSS" "latin1")))
  (is (equal "image/png" (crow.http::mime-type "p.png")))
  (is (equal "application/octet-stream" (crow.http::mime-type "/a.dir/noext")))
  (with-temp-dir (d)
    (let ((f (concatenate 'string d "mime.types")))
      (with-fd (fd (open-fd f :direction :output))
        (write-all fd (octets-of (format nil "# comment~%application/x-crow  crow cr~%image/png png~%"))))
      (crow.http::load-mime-types f)
      (is (equal "application/x-crow" (crow.http::mime-type "a.cr")))
      (is (equal "text/css; charset=utf-8" (crow.http::mime-type "a.css"))))))

(test html-escape
  (is (equal "&lt;b&gt;&amp;&quot;&#39;x" (crow.http::html-escape "<b>&\"'x")))
  (is (equal "/a%20b/%C3%A9%3C" (crow.http::url-encode-path "/a b/é<"))))

(test percent-encode-and-log-quote
  (is (equal "/a-b_c.d~e/%25%3F%23" (percent-encode "/a-b_c.d~e/%?#")))
  (let ((plain (coerce "/plain/path.html" 'simple-base-string)))
    (is (eq plain (percent-encode plain)) "a base-string needing nothing comes back itself"))
  (is (equal "%C3%A9" (percent-encode (coerce (list (code-char 233)) 'base-string)))
      "a Latin-1 base-string is encoded as its UTF-8 form")
  (is (equal "%00%FF" (percent-encode (make-array 2 :element-type '(unsigned-byte 8)
                                                    :initial-contents '(0 255)))))
  (is (equal "a%20b%3B%C3%A9%25!#" (percent-encode "a b;é%!#" :set :cookie)))
  (is (equal "a%20b%3B%C3%A9" (crow.web:encode-cookie-value "a b;é")))
  (is (equal (format nil "GET \\\"x\\\\y\\\" \\x0a~c" (code-char 200))
             (log-quote (coerce (format nil "GET \"x\\y\" ~c~c" (code-char 10) (code-char 200))
                                'base-string))))
  (is (equal "caf\\x01é" (log-quote (format nil "caf~cé" (code-char 1)))) "a non-base string keeps its characters")
  (is (equal "-" (crow.http::%log-quote nil))))

(test status-pages
  (is (equal "Range Not Satisfiable" (crow.http:status-reason 416)))
  (is (search "431 Request Header Fields Too Large" (crow.http::error-page 431)))
  (is (equal "0" (crow.http::digits 0)))
  (is (equal "1234567890123" (crow.http::digits 1234567890123))))
