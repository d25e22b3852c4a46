;;;; web-forms.lisp — crow.web request parsing over octets: urlencoded fields (lazy values),
;;;; multipart bodies with uploads in temporary files and limits, header parameters, cookies,
;;;; coercion; and the c-core/html and digest bindings they rest on.

(in-package :crow.test.web)

(def-suite web-forms :in crow.test:crow)
(in-suite web-forms)

(defun crlf (&rest lines)
  (format nil "~{~a~^~c~c~}" (loop for (l . more) on lines
                                   collect l when more append (list #\Return #\Linefeed))))

(test bindings
  (is (string= "a b+c/é" (form-decode (coerce "a+b%2bc%2F%C3%A9" 'base-string))))
  (is (string= "a+b" (form-decode (coerce "a+b" 'base-string) :plus nil)))
  (is (string= "%zz" (form-decode (coerce "%zz" 'base-string))) "malformed escape kept")
  (is (string= (coerce (list #\x (code-char #xfffd)) 'string)
               (form-decode (coerce "x%FF" 'base-string))) "invalid UTF-8 -> U+FFFD")
  (is (string= "&lt;&quot;&#39;&gt;&amp;" (html-escape "<\"'>&")))
  (is (= 7 (octets-search (utf8-encode "--x") (utf8-encode "abc--y --x--x"))))
  (is (null (octets-search (utf8-encode "--q") (utf8-encode "abc--y --x--x"))))
  (is (string= "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
               (octets-to-hex (sha256 "abc"))))
  (is (string= "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
               (octets-to-hex (hmac-sha256 "Jefe" "what do ya want for nothing?"))))
  (is (constant-time-equal (sha256 "x") (sha256 "x")))
  (is (not (constant-time-equal (sha256 "x") (sha256 "y")))))

(test urlencoded
  (let ((f (parse-urlencoded (coerce "a=1&b=x+y&c=%C3%A9t%C3%A9&a=2&&d&e=&n%20m=v" 'base-string))))
    (is (string= "1" (form-value f "a")))
    (is (equal '("1" "2") (form-values f "a")))
    (is (string= "x y" (form-value f "b")))
    (is (string= "été" (form-value f "c")))
    (is (string= "" (form-value f "d")))
    (is (string= "" (form-value f "e")))
    (is (string= "v" (form-value f "n m")))
    (is (null (form-value f "zz")))
    (is (equal '("a" "b" "c" "d" "e" "n m") (form-names f))))
  ;; values are decoded only when looked up
  (let ((f (parse-urlencoded (coerce "x=%41&y=%42" 'base-string))))
    (form-value f "x")
    (is (stringp (cdr (assoc "x" (crow.web::form-fields-entries f) :test #'string=))))
    (is (consp (cdr (assoc "y" (crow.web::form-fields-entries f) :test #'string=)))))
  (let ((f (parse-urlencoded (utf8-encode "k=%E2%82%AC&z=1"))))
    (is (string= (string (code-char #x20ac)) (form-value f "k")) "octets source"))
  (is (= 3 (length (form-values (parse-urlencoded (coerce "a=1&a=2&a=3&a=4" 'base-string)
                                                  :max-fields 3)
                                "a")))))

(test header-parameters
  (is (string= "multipart/form-data" (header-main-value "Multipart/Form-Data; boundary=xyz")))
  (is (string= "xyz" (header-parameter "multipart/form-data; boundary=xyz" "boundary")))
  (is (string= "a b" (header-parameter "form-data; name=\"a b\"; filename=\"c\\\"d.txt\"" "name")))
  (is (string= "c\"d.txt" (header-parameter "form-data; name=\"a b\"; filename=\"c\\\"d.txt\"" "filename")))
  (is (null (header-parameter "form-data; name=\"a\"" "filename"))))

(defun read-file-string (path) (utf8-decode (read-file-octets path)))

(defun multipart-body ()
  (utf8-encode
   (crlf "--XyZ"
         "Content-Disposition: form-data; name=\"title\""
         ""
         "Grüße & <tags>"
         "--XyZ"
         "Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\""
         "Content-Type: text/plain"
         ""
         "line one"
         "--XyZnot a boundary"
         "--XyZ"
         "Content-Disposition: form-data; name=\"file\"; filename=\"\""
         "Content-Type: application/octet-stream"
         ""
         ""
         "--XyZ"
         "Content-Disposition: form-data; name=\"check\""
         ""
         "on"
         "--XyZ--"
         "")))

(test multipart
  (crow.test::with-temp-dir (dir)
    (let* ((*upload-directory* dir)
           (f (parse-multipart (multipart-body) "XyZ"))
           (ups (form-values f "file")))
      (is (string= "Grüße & <tags>" (form-value f "title")))
      (is (string= "on" (form-value f "check")))
      (is (= 2 (length ups)))
      (let ((a (first ups)))
        (is (upload-p a))
        (is (string= "a.txt" (upload-filename a)))
        (is (string= "text/plain" (upload-content-type a)))
        (is (= 29 (upload-size a)))
        (is (string= (crlf "line one" "--XyZnot a boundary") (read-file-string (upload-path a)))))
      (is (= 0 (upload-size (second ups))) "an empty file part")
      (is (= 2 (length (read-directory dir))))
      (delete-uploads f)
      (is (null (read-directory dir)) "delete-uploads removes the files"))))

(test multipart-limits-and-errors
  (crow.test::with-temp-dir (dir)
    (let ((*upload-directory* dir))
      (let ((c (handler-case (parse-multipart (multipart-body) "XyZ" :max-file-size 10)
                 (form-error (e) e))))
        (is (typep c 'form-error))
        (is (= 413 (form-error-status c))))
      (let ((c (handler-case (parse-multipart (multipart-body) "XyZ" :max-files 1)
                 (form-error (e) e))))
        (is (typep c 'form-error))
        (is (= 413 (form-error-status c))))
      (is (null (read-directory dir)) "files written before the failure are deleted")
      (dolist (bad (list (utf8-encode "no boundary at all")
                         (utf8-encode (crlf "--XyZ" "Content-Disposition: form-data; name=\"a\"" "" "unterminated"))
                         (utf8-encode (crlf "--XyZ" "Content-Disposition: form-data" "" "x" "--XyZ--"))))
        (let ((c (handler-case (parse-multipart bad "XyZ") (form-error (e) e))))
          (is (typep c 'form-error))
          (is (eql 400 (and (typep c 'form-error) (form-error-status c)))))))))

(test cookies
  (is (equal '(("a" . "1") ("b" . "x y") ("c" . "A ") ("d" . ""))
             (parse-cookies "a=1; b=\"x y\";c=%41%20; d=; junk")))
  (is (null (parse-cookies nil))))

(test coercion
  (is (= 42 (coerce-param "42" :integer)))
  (is (null (coerce-param "4x" :integer)))
  (is (null (coerce-param nil :integer)))
  (is (eq t (coerce-param "on" :boolean)))
  (is (null (coerce-param "off" :boolean)))
  (is (null (coerce-param nil :boolean)))
  (is (= 2.5d0 (coerce-param "2.5" :float)))
  (is (null (coerce-param "(list 1)" :float)))
  (is (string= "AB" (coerce-param "ab" #'string-upcase))))

(test set-cookie-values
  (is (string= "a=b" (cookie-header-value "a" "b")))
  (is (string= "sid=x%20y%3B%22%25%E2%82%AC; Max-Age=60; Domain=crow.test; Path=/p; Secure; HttpOnly; SameSite=Strict"
               (cookie-header-value "sid" (concatenate 'string "x y;\"%" (string (code-char #x20ac)))
                                    :max-age 60 :path "/p" :domain "crow.test" :secure t
                                    :http-only t :same-site :strict)))
  (is (string= "n=; Expires=Sun, 06 Nov 1994 08:49:37 GMT; Secure; SameSite=None"
               (cookie-header-value "n" "" :expires 784111777 :same-site :none))
      "SameSite=None implies Secure")
  (signals error (cookie-header-value "bad name" "v"))
  (signals error (cookie-header-value "a" "v" :same-site :sometimes))
  ;; what set-cookie encodes, parse-cookies gives back
  (let ((v (coerce (list #\a #\Space #\; #\" #\% #\, #\\ (code-char #xe9)) 'string)))
    (is (string= v (cdr (assoc "k" (parse-cookies (cookie-header-value "k" v)) :test #'string=))))))

(test session-cookie-signature
  (let* ((*session-secret* (sha256 "test secret"))
         (s (crow.web::%make-session (octets-to-hex (random-octets 16)) 0))
         (v (session-cookie-value s)))
    (is (= (+ 32 1 64) (length v)))
    (is (string= (web-session-id s) (crow.web::%verify v)))
    (is (null (crow.web::%verify (concatenate 'string (subseq v 0 40) (if (char= (char v 40) #\0) "1" "0")
                                              (subseq v 41))))
        "a changed signature is refused")
    (is (null (crow.web::%verify (concatenate 'string (if (char= (char v 0) #\0) "1" "0") (subseq v 1))))
        "a changed id is refused")
    (is (null (crow.web::%verify nil)))
    (is (null (crow.web::%verify "short.sig")))
    (let ((*session-secret* (sha256 "another secret")))
      (is (null (crow.web::%verify v)) "another key refuses it"))))

(test integer-coercion-edges
  (is (= -17 (coerce-param "-17" :integer)))
  (is (= 17 (coerce-param "+17" :integer)))
  (is (= (expt 10 30) (coerce-param (format nil "~d" (expt 10 30)) :integer)))
  (dolist (bad '("" "-" "+" " 1" "1 " "1.5" "0x10" "12a"))
    (is (null (coerce-param bad :integer)) "~s is not an integer" bad)))

(defun query-request (q)
  (crow.http::%make-request :query-string q))

(test http-let-query-fast-path
  ;; http-let's :get :string / :integer bindings scan the raw query (crow.web::%get-string,
  ;; %get-integer); they must answer exactly what the general path (http-param) answers.
  (let ((queries (list "name=a&n=7" "n=1&n=2&name=x&name=y" "x=1&name=%41b&name=c" "na%6De=z&n%3D=5"
                       "nam+e=q" "name" "name=&n=" "&&name=x&&n=3&" "n=+5" "n=%2B5" "n=-12" "n=-"
                       "n=12a" "n=99999999999999999999999" "n=123456789012345678" "n=%31%32"
                       "name=caf%C3%A9" "name=a+b%20c" "n+=3" "%6e=4&%6E=5" "name=%zz%4" "N=1&NAME=x"
                       "%C3%A9=accent" "n=-0" "n=007" "=5&n"
                       (format nil "~{~a~^&~}&name=late&n=9" (loop repeat 1000 collect "a=1"))))
        (names '("name" "n" "N" "é" "name " "")))
    (dolist (q queries)
      (dolist (name names)
        (let ((o (utf8-encode name)))
          (dolist (form (list (coerce q 'simple-base-string) (coerce q '(vector character))))
            (is (equal (http-param (query-request form) name :from :get :type :string :default :absent)
                       (crow.web::%get-string (query-request form) name o :absent))
                "string ~s in ~s" name (subseq q 0 (min 40 (length q))))
            (is (eql (http-param (query-request form) name :from :get :type :integer :default :absent)
                     (crow.web::%get-integer (query-request form) name o :absent))
                "integer ~s in ~s" name (subseq q 0 (min 40 (length q))))))))
    (is (eq :d (crow.web::%get-string (query-request nil) "name" (utf8-encode "name") :d)))
    (is (eq :d (crow.web::%get-integer (query-request nil) "n" (utf8-encode "n") :d)))
    (is (= 42 (crow.web::%get-integer (query-request (coerce "n=42" 'simple-base-string))
                                      "n" (utf8-encode "n") 0)))
    (let ((expansion (macroexpand-1 '(http-let (r (a :string "d" :from :get) (b :integer 1 :from :get)
                                                  (c :integer 1) (d (:list :integer) nil :from :get))
                                      (list a b c d)))))
      (is (search "%GET-STRING" (prin1-to-string expansion)))
      (is (search "%GET-INTEGER" (prin1-to-string expansion)))
      (is (search "HTTP-PARAM" (prin1-to-string expansion)) "other kinds keep the general path"))))
