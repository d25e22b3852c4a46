;;;; response.lisp — answering from crow.web: HTML pages from templates, Set-Cookie with every
;;;; attribute, redirects.

(in-package :crow.web)

(ffi:clines "#include <string.h>")

;;; ------------------------------------------------------------------ cookies

(defun encode-cookie-value (value)
  "Returns VALUE (a string) with every octet of its UTF-8 form that is not a cookie-octet
written as %XX (parse-cookies undoes it).  Can't fail."
  (percent-encode value :set :cookie))

(defun %token-p (name)
  (and (plusp (length name))
       (every (lambda (c) (and (< 32 (char-code c) 127) (not (find c "()<>@,;:\\\"/[]?={} "))))
              name)))

(defun cookie-header-value (name value &key max-age expires path domain secure http-only
                                            same-site)
  "Returns the Set-Cookie header value for cookie NAME = VALUE (encoded by
encode-cookie-value) with the attributes given: MAX-AGE (seconds), EXPIRES (Unix time),
PATH, DOMAIN, SECURE, HTTP-ONLY, SAME-SITE (:strict, :lax or :none — :none implies Secure).
Signals an error for a NAME that is not an HTTP token or a bad SAME-SITE."
  (unless (%token-p name) (error "crow.web: bad cookie name ~s" name))
  (with-output-to-string (s)
    (format s "~a=~a" name (encode-cookie-value (or value "")))
    (when max-age (format s "; Max-Age=~d" max-age))
    (when expires
      (format s "; Expires=~a" (format-http-date expires)))
    (when domain (format s "; Domain=~a" domain))
    (when path (format s "; Path=~a" path))
    (when (or secure (eq same-site :none)) (write-string "; Secure" s))
    (when http-only (write-string "; HttpOnly" s))
    (when same-site
      (format s "; SameSite=~a" (ecase same-site (:strict "Strict") (:lax "Lax") (:none "None"))))))

(defun set-cookie (req name value &rest attributes &key max-age expires path domain secure
                                                         http-only same-site)
  "Queues a Set-Cookie header on REQ's response (see cookie-header-value for the attributes).
Returns VALUE."
  (declare (ignore max-age expires path domain secure http-only same-site))
  (add-response-header req "Set-Cookie" (apply #'cookie-header-value name value attributes))
  value)

(defun delete-cookie (req name &key path domain)
  "Queues a Set-Cookie header that removes cookie NAME (Max-Age=0).  Returns NIL."
  (add-response-header req "Set-Cookie" (cookie-header-value name "" :max-age 0 :path path
                                                                        :domain domain))
  nil)

;;; ------------------------------------------------------------------ pages and redirects

(defun redirect (req location &key (status 302))
  "Answers REQ with a redirect to LOCATION (302 by default; 303 after a POST).  Returns T, or
NIL when the client has gone."
  (respond-redirect req location :status status))

(defvar *buffer-pool* (make-array 16 :initial-element nil)
  "Idle html-out buffers respond-html reuses: slots taken and filled with compare-and-swap,
so no lock is held on the request path.")
(defparameter +pool-max-size+ (* 1024 1024) "Buffers larger than this are not kept.")

(defun %pool-get ()
  (let ((pool *buffer-pool*))
    (dotimes (i (length pool) (make-html-out 8192))
      (let ((b (svref pool i)))
        (when (and b (eq b (mp:compare-and-swap (svref pool i) b nil)))
          (return b))))))

(defun %pool-put (out)
  (setf (html-out-fill out) 0)
  (when (<= (length (html-out-octets out)) +pool-max-size+)
    (let ((pool *buffer-pool*))
      (dotimes (i (length pool))
        (when (and (null (svref pool i)) (null (mp:compare-and-swap (svref pool i) nil out)))
          (return))))))

(defun respond-buffer (req out &key (status 200) headers (content-type "text/html; charset=utf-8"))
  "Answers REQ with the bytes written into the html-out OUT, without copying them: the
buffer's length is cut to its fill for the call (crow_ev_reply writes or copies every byte
before it returns) and restored after.  Returns what respond returns."
  (let ((v (html-out-octets out)))
    (ffi:c-inline (v (html-out-fill out)) (:object :fixnum) :void
      "#0->vector.fillp = (cl_index)#1;" :one-liner nil)
    (unwind-protect (respond req v :status status :headers headers :content-type content-type)
      (ffi:c-inline (v) (:object) :void "#0->vector.fillp = #0->vector.dim;" :one-liner nil))))

(defmacro respond-html ((req &key (status 200) headers (mode '*html-mode*) size) &body template)
  "Answers REQ with TEMPLATE (compiled now) as text/html; charset=utf-8: the page is written
into a buffer taken from a pool and sent with the head in one writev; the buffer goes back
to the pool after.  Returns what respond returns."
  (declare (ignore size))
  (let ((out (gensym "OUT"))
        (mode (cond ((keywordp mode) mode)
                    ((and (consp mode) (eq (car mode) 'quote)) (second mode))
                    (t *html-mode*))))
    `(let ((,out (%pool-get)))
       (unwind-protect
            (progn ,@(compile-template out template :mode mode)
                   (respond-buffer ,req ,out :status ,status :headers ,headers))
         (%pool-put ,out)))))
