;;;; mailweb.lisp — crow.mailweb's pieces that need no database: value checks with their
;;;; messages, the validating macro, CSRF tokens tied to the session, form reading with
;;;; per-field errors, and the 503 page when no database is configured.

(defpackage :crow.test.mailweb
  (:use :cl :fiveam :crow.unix :crow.web :crow.mailweb))

(in-package :crow.test.mailweb)

(def-suite mailweb :in crow.test:crow)
(in-suite mailweb)

(defun ok-value (value kind &rest keys)
  (multiple-value-bind (v e) (apply #'check-value value kind keys)
    (and (null e) v)))

(defun bad-value (value kind &rest keys)
  (multiple-value-bind (v e) (apply #'check-value value kind keys)
    (and (null v) e)))

(test check-names
  (is (string= "crow.test" (ok-value "  Crow.Test. " :domain)))
  (is (string= "a-b.example.org" (ok-value "a-b.example.org" :domain)))
  (is (search "domain name" (bad-value "-bad.example" :domain)))
  (is (bad-value "no_underscore.example" :domain))
  (is (bad-value "nodot" :domain) "a mail domain has a dot")
  (is (bad-value "a..b" :domain))
  (is (bad-value (format nil "~a.org" (make-string 64 :initial-element #\a)) :domain) "label over 63")
  (is (string= "demo" (ok-value "Demo" :local-part)))
  (is (string= "first.last+tag" (ok-value "first.last+tag" :local-part)))
  (is (bad-value ".demo" :local-part))
  (is (bad-value "de..mo" :local-part))
  (is (bad-value "dé" :local-part))
  (is (bad-value "a b" :local-part))
  (is (string= "demo@crow.test" (ok-value "Demo@Crow.Test" :address)))
  (is (search "mail address" (bad-value "demo@" :address)))
  (is (bad-value "demo" :address))
  (is (string= "INBOX" (ok-value "INBOX" :mailbox)))
  (is (bad-value ".hidden" :mailbox))
  (is (bad-value "a/b" :mailbox))
  (is (string= "subject" (ok-value "Subject" :header-name)))
  (is (string= "*" (ok-value "*" :header-name)))
  (is (bad-value "Sub:ject" :header-name)))

(test check-patterns-and-numbers
  (is (string= "*@spam.example" (ok-value "*@SPAM.example" :address-pattern)))
  (is (string= "" (or (ok-value "" :address-pattern) "")) "empty: any")
  (is (bad-value "<>" :address-pattern) "<> is not a glob mmsmtpd matches; empty or * is")
  (is (bad-value "a@b@c" :address-pattern))
  (is (bad-value "spam example" :address-pattern))
  (is (string= "^viagra" (ok-value "^viagra" :regex)))
  (is (search "regular expression" (bad-value "(unclosed" :regex)))
  (is (= 42 (ok-value " 42 " :integer)))
  (is (= -3 (ok-value "-3" :integer)))
  (is (search "whole number" (bad-value "4x" :integer)))
  (is (search "whole number" (bad-value "1-2" :integer)))
  (is (search "at least 0" (bad-value "-1" :integer :min-value 0)))
  (is (search "at most 10" (bad-value "11" :integer :max-value 10)))
  (is (= (* 50 1024 1024) (ok-value "50M" :size)))
  (is (= 1000 (ok-value "1000" :size)))
  (is (search "size" (bad-value "50X" :size)))
  (is (string= "reject" (ok-value "Reject" :choice :choices '("accept" "reject"))))
  (is (search "accept, reject" (bad-value "drop" :choice :choices '("accept" "reject")))))

(test check-required-and-limits
  (is (equal "Required." (bad-value "" :text :required t)))
  (is (equal "Required." (bad-value "   " :domain :required t)) "blank is empty")
  (is (equal "Required." (bad-value nil :text :required t)))
  (multiple-value-bind (v e) (check-value "" :domain)
    (is (and (null v) (null e)) "empty and optional: NIL, no error"))
  (is (search "at most 5" (bad-value "abcdef" :text :max 5)))
  (is (search "Control" (bad-value (format nil "a~cb" (code-char 7)) :text)))
  (is (search "at least" (bad-value "abc" :password)))
  (is (string= " pw with spaces " (ok-value " pw with spaces " :password)) "passwords are not trimmed")
  (is (eq t (check-value "yes" :boolean)))
  (is (null (check-value "" :boolean)))
  (is (null (check-value "off" :boolean))))

(test validating-collects-per-field
  (validating (errors)
      ((name "name" "ok.example" :domain :required t)
       (n "n" "zz" :integer)
       (pw "password" "" :password :required t))
    (is (string= "ok.example" name))
    (is (null n))
    (is (null pw))
    (is (equal '("n" "password") (mapcar #'car errors)) "errors in field order")
    (is (search "whole number" (field-error errors "n")))
    (is (null (field-error errors "name")))))

(test csrf-tokens
  (let* ((*session-secret* (random-octets 32))
         (s1 (crow.web::%make-session (octets-to-hex (random-octets 16)) 0))
         (s2 (crow.web::%make-session (octets-to-hex (random-octets 16)) 0))
         (t1 (csrf-token s1)))
    (is (= 64 (length t1)))
    (is (string= t1 (csrf-token s1)) "stable for a session")
    (is (string/= t1 (csrf-token s2)) "differs between sessions")
    (is (csrf-valid-p s1 t1))
    (is (not (csrf-valid-p s2 t1)) "another session's token is refused")
    (is (not (csrf-valid-p s1 nil)))
    (is (not (csrf-valid-p s1 "")))
    (is (not (csrf-valid-p s1 (subseq t1 0 63))))
    (is (not (csrf-valid-p s1 (concatenate 'string (subseq t1 0 63) (if (char= (char t1 63) #\0) "1" "0")))))
    (is (not (csrf-valid-p nil t1)) "no session, no valid token")
    (is (not (csrf-valid-p s1 (concatenate 'string (string (code-char 233)) (subseq t1 1))))
        "a non-ASCII character in the token is refused")
    (let ((*session-secret* (random-octets 32)))
      (is (not (csrf-valid-p s1 t1)) "a new key (a restarted server) invalidates old tokens"))))

(defun post-request (body &key (path "/mail/filters"))
  "A request as a handler sees it after its urlencoded BODY was parsed (http-let's cache: a
request made here has no C unit to read the head from)."
  (crow.http::%make-request :method :post :path path :target path
                            :plist (list :web-post (parse-urlencoded (utf8-encode body)))))

(defparameter +specs+
  '(("sender" "Sender pattern" :address-pattern)
    ("action" "Action" :choice :required t :input :select
     :choices (("reject" . "reject") ("accept" . "accept")))
    ("priority" "Priority" :integer :min-value 0 :default "100")
    ("password" "Password" :password :required t :input :password)
    ("on" "On" :boolean :input :checkbox)))

(test read-form-and-render-errors
  (let ((crow.mailweb::*ctx*
          (crow.mailweb::make-ctx (post-request "sender=a%20b%3Cc&action=drop&priority=-5&password=sekrit1&on=yes")
                                  nil)))
    (multiple-value-bind (clean errors raw) (crow.mailweb::read-form +specs+)
      (is (equal '("sender" "action" "priority") (mapcar #'car errors)) "one error per bad field, in order")
      (is (search "Choose one" (field-error errors "action")))
      (is (search "at least 0" (field-error errors "priority")))
      (is (string= "sekrit1" (crow.mailweb::form-get clean "password")))
      (is (eq t (crow.mailweb::form-get clean "on")))
      (is (null (cdr (assoc "password" raw :test #'string=))) "a password is never kept for redisplay")
      (setf (crow.mailweb::ctx-values crow.mailweb::*ctx*) raw
            (crow.mailweb::ctx-errors crow.mailweb::*ctx*) errors)
      (let ((html (html-string () (:call crow.mailweb::render-fields +specs+))))
        (is (search "value=\"a b&lt;c\"" html) "the submitted value is shown again, escaped")
        (is (search "id=\"err-sender\"" html))
        (is (search "id=\"err-priority\"" html))
        (is (search "aria-invalid=\"true\"" html))
        (is (not (search "err-password" html)))
        (is (not (search "sekrit1" html)) "the password is not written back")
        (is (search "value=\"-5\"" html))
        (is (search "checked" html) "the checkbox stays checked"))
      (let ((summary (html-string () (:call crow.mailweb::error-summary))))
        (is (search "3 fields need a change" summary))
        (is (search "href=\"#f-priority\"" summary))
        (is (search ">Priority</a>: Must be at least 0." summary) "the summary names fields by their labels"))))
  (let ((crow.mailweb::*ctx*
          (crow.mailweb::make-ctx (post-request "sender=*@spam.example&action=reject&password=abcd") nil)))
    (multiple-value-bind (clean errors) (crow.mailweb::read-form +specs+)
      (is (null errors))
      (is (string= "*@spam.example" (crow.mailweb::form-get clean "sender")))
      (is (string= "reject" (crow.mailweb::form-get clean "action")))
      (is (null (crow.mailweb::form-get clean "priority")) "absent optional integer: NIL")
      (is (null (crow.mailweb::form-get clean "on"))))))

;;; A straight run of more than 9 dynamic values (the mail forms have them): the fused C block
;;; takes at most 9 (c-inline's #1-#9), so the run is split.  Compiled natively here (a
;;; FiveAM body is interpreted and would not fuse).
(defun twelve-values (a b c d e f g h i j k l)
  (html-string () (:p :id a :class b :title c a b c d e f g h i j k l)))

(test template-more-than-nine-values
  (is (string= "<p id=\"1\" class=\"&lt;2\" title=\"3\">1&lt;23456789101112</p>"
               (twelve-values 1 "<2" 3 4 5 6 7 8 9 10 11 12))))

(test conninfo-relative-socket-directory
  (flet ((r (info base) (crow.mailweb::resolve-conninfo-host info base)))
    (is (string= "host=/srv/crow/etc/../var/pg/sock user=crow dbname=mail"
                 (r "host=../var/pg/sock user=crow dbname=mail" "/srv/crow/etc/")))
    (is (string= "dbname=mail host=/srv/etc/sock/" (r "dbname=mail host=sock/" "/srv/etc")) "a slash: a directory")
    (is (string= "dbname=mail host=sock/" (r "dbname=mail host=sock/" nil)) "no base: unchanged")
    (is (string= "host=/run/pg user=x" (r "host=/run/pg user=x" "/srv/etc/")) "absolute: unchanged")
    (is (string= "host=db.example user=x" (r "host=db.example user=x" "/srv/etc/")) "a host name: unchanged")
    (is (string= "host=/e/./s" (r "host=./s" "/e/")))
    (is (string= "xhost=./s" (r "xhost=./s" "/e/")) "only the host keyword")
    (is (string= "postgresql:///mail" (r "postgresql:///mail" "/e/")) "URIs are left alone")))

(test no-inherited-function-redefined
  ;; crow.mailweb uses crow.unix, crow.server, crow.http and crow.web: a defun of one of their
  ;; names (address-p, peer-address were) silently replaces it for the whole image.
  (let ((bad '()))
    (do-symbols (s :crow.mailweb)
      (when (and (not (eq (symbol-package s) (find-package :crow.mailweb)))
                 (fboundp s) (not (macro-function s)) (not (special-operator-p s))
                 (functionp (fdefinition s)))
        (let ((file (ignore-errors (ext:compiled-function-file (fdefinition s)))))
          (when (and (stringp file) (search "/lisp/web/mail/" file))
            (push s bad)))))
    (is (null bad) "redefined from lisp/web/mail/: ~s" bad)))
