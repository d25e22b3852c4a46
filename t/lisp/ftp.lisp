;;;; ftp.lisp — crow.ftp's pure parts: the simulated chroot's path normalisation (every
;;;; escape form) and the accounts-file parser.

(in-package :crow.test)

(def-suite ftp :in crow)
(in-suite ftp)

(test ftp-normalize-path-escapes
  (dolist (case '(("/" "/etc/passwd" "/etc/passwd")
                  ("/a/b" "../../../../etc/passwd" "/etc/passwd")
                  ("/a/b" ".." "/a")
                  ("/" ".." "/")
                  ("/" "/../.." "/")
                  ("/a" "//x//y/./z/.." "/x/y")
                  ("/a" "b/./c/" "/a/b/c")
                  ("/a" "" "/a")
                  ("/a" "..\\..\\etc" "/a/..\\..\\etc")
                  ("/" "~/../x" "/x")))
    (destructuring-bind (cwd path want) case
      (is (equal want (crow.ftp:normalize-path cwd path)) "~s from ~s" path cwd)))
  (is (null (crow.ftp:normalize-path "/" (format nil "a~cb" (code-char 0)))))
  (is (null (crow.ftp:normalize-path "/" (make-string 256 :initial-element #\n))))
  (is (equal (concatenate 'string "/" (make-string 255 :initial-element #\n))
             (crow.ftp:normalize-path "/" (make-string 255 :initial-element #\n))))
  (is (null (crow.ftp:normalize-path "/" (format nil "~{~a~}" (loop repeat 1000 collect "abcd/"))))))

(test ftp-accounts-parser
  (let ((as (crow.ftp:parse-accounts
             (format nil "# comment~%demo:$y$x:/srv/demo/:lrw:1K::0:2M:3~%anonymous::/srv/pub:all~%"))))
    (is (= 2 (length as)))
    (let ((d (first as)) (a (second as)))
      (is (equal "/srv/demo" (crow.ftp:account-home d)))
      (is (equal '(:list :download :upload) (crow.ftp:account-perms d)))
      (is (= 1024 (crow.ftp:account-quota-bytes d)))
      (is (= 3 (crow.ftp:account-max-logins d)))
      (is-true (crow.ftp:account-anonymous a))
      (is (equal '(:download :list) (sort (copy-list (crow.ftp:account-perms a)) #'string<)))))
  (dolist (bad (list "x:$y$:relative:l" "x::/h:l" "x:$y$:/h:q" "x:$y$" (format nil "a:h:/h:l~%a:h:/h:l")
                     "x:$y$:/h:l:big"))
    (signals error (crow.ftp:parse-accounts bad :file "acc")))
  (handler-case (crow.ftp:parse-accounts (format nil "ok:h:/h:l~%bad") :file "acc")
    (error (e) (is (search "acc:2:" (princ-to-string e)))))
  (is (equal "demo:h:/h:lr:::::" (crow.ftp:format-account (first (crow.ftp:parse-accounts "demo:h:/h:rl"))))))
