;;;; server-config.lisp — crow.server's config reader: every value type, every error path
;;;; (golden messages written by hand from the grammar), blocks, include, -n checks, --help.

(in-package :crow.test)

(def-suite server-config :in crow)
(in-suite server-config)

(define-config-keys *test-location-keys*
  (expires :duration :doc "Cache lifetime."))

(define-config-keys *test-vhost-keys*
  (index :list :default '("index.html") :doc "Index file names.")
  (location :block :keys *test-location-keys* :doc "A path prefix.")
  (root :path :required t :doc "Document root."))

(define-config-keys *test-keys*
  (:include *common-keys*)
  (name :string :doc "A name.")
  (docroot :path)
  (port :integer :min 1 :max 65535)
  (buffer :size :min 1024 :max (* 64 1024 1024))
  (idle :duration :default "30s")
  (keepalive :boolean :default "yes")
  (mode :enum :values '(:fast :safe))
  (aliases :list)
  (tags :list :validator (lambda (l) (when (> (length l) 2) "at most 2 tags")))
  (even :integer :validator (lambda (n) (unless (evenp n) "must be even")))
  (workers :integer :min 1 :max 8 :default "2")
  (vhost :block :keys *test-vhost-keys* :doc "A virtual host."))

(define-config-keys *needs-listen*
  (:include *common-keys*)
  (listen :address :repeatable t :required t))

(defun conf (text &optional (keys *test-keys*))
  (config-from-string text keys :name "x.conf" :directory "/etc/crow/"))

(defun value-of (text key)
  "The value KEY gets from the config TEXT."
  (config-value (conf text) key))

(defun errors-of (text &optional (keys *test-keys*))
  "The error lines reading TEXT gives, or :no-error."
  (handler-case (progn (conf text keys) :no-error)
    (config-error (e)
      (mapcar (lambda (c) (format nil "~a:~d: ~a" (config-error-file c) (config-error-line c)
                                  (config-error-message c)))
              (config-error-list e)))))

(defun error-of (text &optional (keys *test-keys*))
  "The one error line reading TEXT gives (or the list when not exactly one)."
  (let ((errors (errors-of text keys)))
    (if (and (consp errors) (null (rest errors))) (first errors) errors)))

(test strings-quotes-comments
  (is (equal "plain" (value-of "name plain" :name)))
  (is (equal "hello world" (value-of "name \"hello world\"" :name)))
  (is (equal "a \"q\" b\\c" (value-of "name \"a \\\"q\\\" b\\\\c\"" :name)))
  (is (equal "#not-a-comment" (value-of "name \"#not-a-comment\"" :name)))
  (is (equal "a#b" (value-of "name a#b" :name)) "# inside a word is a plain character")
  (is (equal "foo" (value-of "name foo # a comment" :name)))
  (is (equal "prex ypost" (value-of "name pre\"x y\"post" :name)))
  (is (equal "back\\slash" (value-of "name back\\slash" :name)) "no escapes outside quotes")
  (is (equal "tabs" (value-of (format nil "~cname~ctabs~c" #\Tab #\Tab #\Tab) :name)))
  (is (equal "crlf" (value-of (format nil "# top~c~%name crlf~c~%" #\Return #\Return) :name)))
  (is (eq :no-error (errors-of (format nil "~%   ~%# only comments~%  # indented~%"))))
  (is (equal "x.conf:2: name: empty value" (error-of (format nil "#~%name \"\""))))
  (is (equal "x.conf:1: unterminated quoted string" (error-of "name \"abc")))
  (is (equal "x.conf:1: unterminated quoted string" (error-of "name \"abc\\\"")))
  (is (equal "x.conf:1: bad escape \"\\n\" in quoted string (only \\\" and \\\\)"
             (error-of "name \"a\\nb\""))))

(test integers
  (is (= 80 (value-of "port 80" :port)))
  (is (= 65535 (value-of "port 65535" :port)))
  (is (equal "x.conf:1: port: \"0\" is less than the minimum 1" (error-of "port 0")))
  (is (equal "x.conf:1: port: \"70000\" is more than the maximum 65535" (error-of "port 70000")))
  (is (equal "x.conf:1: port: not an integer: \"abc\"" (error-of "port abc")))
  (is (equal "x.conf:1: port: not an integer: \"8O\"" (error-of "port 8O")))
  (is (equal "x.conf:1: port: \"-5\" is less than the minimum 1" (error-of "port -5")))
  (is (equal "x.conf:1: even: must be even" (error-of "even 3")))
  (is (= 4 (value-of "even 4" :even))))

(test sizes
  (is (= 2048 (value-of "buffer 2048" :buffer)))
  (is (= 102400 (value-of "buffer 100K" :buffer)) "K is 1024")
  (is (= 102400 (value-of "buffer 100k" :buffer)))
  (is (= (* 2 1048576) (value-of "buffer 2M" :buffer)))
  (is (= 1073741824 (parse-size "1G")))
  (is (= 0 (parse-size "0")))
  (is (null (parse-size "1.5M")))
  (is (null (parse-size "M")))
  (is (null (parse-size "")))
  (is (= 102400 (value-of "bandwidth-in 100K" :bandwidth-in)))
  (is (equal "x.conf:1: buffer: bad size \"10X\" (digits with an optional K, M or G)"
             (error-of "buffer 10X")))
  (is (equal "x.conf:1: buffer: \"512\" is less than the minimum 1024" (error-of "buffer 512")))
  (is (equal "x.conf:1: buffer: \"1G\" is more than the maximum 67108864" (error-of "buffer 1G"))))

(test durations
  (is (= 30000 (value-of "idle 30" :idle)) "a bare number means seconds")
  (is (= 5000 (value-of "idle 5s" :idle)))
  (is (= 250 (value-of "idle 250ms" :idle)))
  (is (= 120000 (value-of "idle 2m" :idle)))
  (is (= 3600000 (value-of "idle 1h" :idle)))
  (is (= 30000 (value-of "" :idle)) "the default, parsed like the file's values")
  (is (null (parse-duration "1.5s")))
  (is (null (parse-duration "5d")))
  (is (equal "x.conf:1: idle: bad duration \"5x\" (digits with ms, s, m or h)"
             (error-of "idle 5x")))
  (is (equal "x.conf:1: timeout: \"0\" is less than the minimum 1ms" (error-of "timeout 0"))))

(test booleans-and-enums
  (dolist (yes '("yes" "on" "true" "YES"))
    (is (eq t (value-of (format nil "keepalive ~a" yes) :keepalive)) "~a" yes))
  (dolist (no '("no" "off" "false"))
    (is (eq nil (value-of (format nil "keepalive ~a" no) :keepalive)) "~a" no))
  (multiple-value-bind (v set) (config-value (conf "") :keepalive)
    (is (eq t v) "default yes")
    (is (eq nil set) "not set by the file"))
  (is (equal "x.conf:1: keepalive: expected yes or no, got \"maybe\"" (error-of "keepalive maybe")))
  (is (eq :fast (value-of "mode fast" :mode)))
  (is (eq :stderr (value-of "log stderr" :log)))
  (is (eq :syslog (value-of "" :log)))
  (is (equal "x.conf:1: mode: expected one of fast, safe, got \"slow\"" (error-of "mode slow")))
  (is (equal "x.conf:1: log: expected one of syslog, stderr, got \"file\"" (error-of "log file"))))

(test addresses
  (flet ((addr (s)
           (let ((a (first (value-of (format nil "listen ~a" s) :listen))))
             (list (address-family a) (address-host a) (address-port a) (address-path a)))))
    (is (equal '(:inet "127.0.0.1" 8080 nil) (addr "127.0.0.1:8080")))
    (is (equal '(:inet "0.0.0.0" 80 nil) (addr "*:80")) "* means every IPv4 address")
    (is (equal '(:inet6 "::1" 7007 nil) (addr "[::1]:7007")))
    (is (equal '(:inet6 "::" 0 nil) (addr "[::]:0")) "port 0 picks a free port")
    (is (equal '(:inet6 "fe80::1%lo" 22 nil) (addr "[fe80::1%lo]:22")))
    (is (equal '(:name "localhost" 25 nil) (addr "localhost:25")))
    (is (equal '(:unix nil nil "/run/crow.sock") (addr "unix:/run/crow.sock")))
    (is (equal '(:unix nil nil "/etc/crow/crow.sock") (addr "unix:crow.sock"))
        "a relative socket path resolves against the config's directory"))
  (is (equal '("127.0.0.1:1" "[::1]:2" "unix:/s")
             (mapcar #'address-string (value-of (format nil "listen 127.0.0.1:1~%listen [::1]:2~%listen unix:/s")
                                                :listen)))
      "repeatable: every value, in file order")
  (is (address-p (first (value-of "listen-tls *:443" :listen-tls))))
  (is (equal "x.conf:3: listen: bad port \"99999\""
             (error-of (format nil "# ports~%~%listen 1.2.3.4:99999"))))
  (is (equal "x.conf:1: listen: bad port \"\"" (error-of "listen 1.2.3.4:")))
  (is (equal "x.conf:1: listen: bad port \"http\"" (error-of "listen *:http")))
  (is (equal "x.conf:1: listen: expected ADDR:PORT, [IPV6]:PORT or unix:PATH, got \"8080\""
             (error-of "listen 8080")))
  (is (equal "x.conf:1: listen: expected ADDR:PORT, [IPV6]:PORT or unix:PATH, got \"[::1]\""
             (error-of "listen [::1]")))
  (is (equal "x.conf:1: listen: IPv6 address \"::1\" needs brackets: [::1]:80"
             (error-of "listen ::1:80")))
  (is (equal "x.conf:1: listen: bad IPv6 address \"[zz]\"" (error-of "listen [zz]:80")))
  (is (equal "x.conf:1: listen: bad address \"300.1.1.1\"" (error-of "listen 300.1.1.1:80")))
  (is (equal "x.conf:1: listen: bad address \"a b\"" (error-of "listen \"a b:80\"")))
  (is (equal "x.conf:1: listen: empty unix socket path" (error-of "listen unix:"))))

(test rates-and-lists
  (is (equal '(10 . 1000) (value-of "rate-per-address 10/1s" :rate-per-address)))
  (is (equal '(100 . 60000) (value-of "rate-per-address 100/m" :rate-per-address)))
  (is (equal '(5 . 250) (value-of "rate-per-address 5/250ms" :rate-per-address)))
  (is (equal '(3 . 2000) (value-of "rate-per-address 3/2" :rate-per-address)))
  (dolist (bad '("10" "0/1s" "x/1s" "10/0s" "10/" "10/1x"))
    (is (equal (format nil "x.conf:1: rate-per-address: bad rate ~s (N/DURATION, as in 10/1s or 100/m)" bad)
               (error-of (format nil "rate-per-address ~a" bad)))))
  (is (equal '("a" "b" "c d") (value-of "aliases a b \"c d\"" :aliases)))
  (is (equal "x.conf:1: aliases: missing value" (error-of "aliases")))
  (is (equal '("a" "b") (value-of "tags a b" :tags)))
  (is (equal "x.conf:1: tags: at most 2 tags" (error-of "tags a b c")))
  (is (equal "x.conf:1: name: missing value" (error-of "name # nothing")))
  (is (equal "x.conf:1: name: expected one value, got 2" (error-of "name a b"))))

(test keys-defaults-and-duplicates
  (let ((c (conf "")))
    (is (equal '() (config-value c :listen)) "repeatable, unset: the empty list")
    (is (= 2 (config-value c :workers)) "a server's table overrides a common key")
    (is (= 300000 (config-value c :timeout)) "common default 5m")
    (is (= 1024 (config-value c :max-connections)))
    (is (null (config-value c :max-per-address)))
    (signals error (config-value c :no-such-key))
    (signals error (config-blocks c "name")))
  (is (equal "x.conf:1: workers: \"9\" is more than the maximum 8" (error-of "workers 9")))
  (is (equal "x.conf:2: unknown key \"colour\"" (error-of (format nil "name a~%colour red"))))
  (is (equal "x.conf:1: unknown key \"Name\"" (error-of "Name a")) "keys are lower case")
  (is (equal "x.conf:4: duplicate key \"user\" (first set on line 2)"
             (error-of (format nil "~%user a~%name n~%user b"))))
  (is (equal "x.conf:3: missing required key \"listen\""
             (error-of (format nil "user a~%~%# end") *needs-listen*)))
  (is (equal "x.conf:1: missing required key \"listen\"" (error-of "" *needs-listen*)))
  (let ((c (conf (format nil "name a~%~%user www"))))
    (is (equal '("x.conf" 3) (multiple-value-list (config-source c :user))))
    (is (equal '("x.conf" nil) (multiple-value-list (config-source c :group))))))

(test relative-paths
  (is (equal "/etc/crow/www" (value-of "docroot www" :docroot)))
  (is (equal "/etc/crow/www" (value-of "docroot ./www" :docroot)))
  (is (equal "/srv/www" (value-of "docroot /srv/www" :docroot)))
  (is (equal "/etc/crow/../certs/a.pem" (value-of "tls-cert ../certs/a.pem" :tls-cert)))
  (is (equal "/etc/crow/my dir/x" (value-of "docroot \"my dir/x\"" :docroot)))
  (is (equal "x.conf:1: docroot: empty path" (error-of "docroot \"\""))))

(test blocks
  (let* ((c (conf "name top
vhost a.example {
  root /srv/a
  location /img {
    expires 1h
  }
  location /css {
  }
}
vhost \"b example\" {   # quoted argument
  root b
  index i.html \"j k.html\"
}"))
         (vhosts (config-blocks c "vhost")))
    (is (equal '("a.example" "b example") (mapcar #'car vhosts)))
    (is (equal vhosts (config-blocks c :vhost)))
    (let ((a (cdr (first vhosts))) (b (cdr (second vhosts))))
      (is (equal "/srv/a" (config-value a :root)))
      (is (equal '("index.html") (config-value a :index)) "a block's own default")
      (is (equal '("i.html" "j k.html") (config-value b :index)))
      (is (equal "/etc/crow/b" (config-value b :root)))
      (is (eq c (config-parent a)))
      (is (= 2 (config-line a)))
      (is (= 10 (config-line b)))
      (is (equal '("x.conf" 11) (multiple-value-list (config-source b :root))))
      (is (equal '(("/img" . 3600000) ("/css"))
                 (mapcar (lambda (l) (cons (car l) (config-value (cdr l) :expires)))
                         (config-blocks a "location"))))
      (signals error (config-value a :name)))
    (is (equal "top" (config-value c :name)))
    (is (equal '() (config-blocks (conf "") "vhost")))))

(test block-errors
  (is (equal "x.conf:1: missing required key \"root\"" (error-of (format nil "vhost a {~%}"))))
  (is (equal "x.conf:2: block not closed by \"}\""
             (error-of (format nil "name n~%vhost a {~%root /r"))))
  (is (equal "x.conf:2: \"}\" without an open block" (error-of (format nil "name n~%}"))))
  (is (equal "x.conf:1: unknown block \"vhsot\"" (error-of (format nil "vhsot a {~%root /r~%junk~%}")))
      "a wrong block's lines are skipped, not reported one by one")
  (is (equal "x.conf:1: name: not a block" (error-of (format nil "name x {~%}"))))
  (is (equal "x.conf:1: vhost: expected one argument before {, got 0" (error-of (format nil "vhost {~%}"))))
  (is (equal "x.conf:1: vhost: expected one argument before {, got 2" (error-of (format nil "vhost a b {~%}"))))
  (is (equal "x.conf:1: block without a name" (error-of (format nil "{~%}"))))
  (is (equal "x.conf:1: vhost: expected vhost ARG {" (error-of "vhost a")))
  (is (equal "x.conf:3: \"}\" must be alone on its line"
             (error-of (format nil "vhost a {~%root /r~%} x~%}"))))
  (is (equal "x.conf:3: unexpected \"}\" in the middle of a line"
             (error-of (format nil "vhost a {~%root /r~%index a }~%}"))))
  (is (equal "/r}" (config-value (cdr (first (config-blocks (conf (format nil "vhost a {~%root /r}~%}")) "vhost")))
                                 :root))
      "braces inside a word are plain characters")
  (is (equal "/{" (config-value (cdr (first (config-blocks (conf (format nil "vhost a {~%root \"/{\"~%}")) "vhost")))
                                :root))
      "a quoted brace is a plain word")
  (is (equal "x.conf:2: unknown key \"name\"" (error-of (format nil "vhost a {~%name n~%root /r~%}")))
      "a block reads against its own table"))

(test every-error-reported
  (let ((text (format nil "listen 1.2.3.4:99999~%bogus 1~%user a~%user b~%timeout 5x~%name \"x~%vhost v {~%}~%}")))
    (is (equal '("x.conf:1: listen: bad port \"99999\""
                 "x.conf:2: unknown key \"bogus\""
                 "x.conf:4: duplicate key \"user\" (first set on line 3)"
                 "x.conf:5: timeout: bad duration \"5x\" (digits with ms, s, m or h)"
                 "x.conf:6: unterminated quoted string"
                 "x.conf:7: missing required key \"root\""
                 "x.conf:9: \"}\" without an open block")
               (errors-of text)))
    (handler-case (progn (conf text) (fail "no error signalled"))
      (config-error (e)
        (is (typep e 'crow-error))
        (is (equal "x.conf" (config-error-file e)))
        (is (= 1 (config-error-line e)))
        (is (equal "listen: bad port \"99999\"" (config-error-message e)))
        (is (= 7 (length (config-error-list e))))
        (let ((report (princ-to-string e)))
          (is (eql 0 (search "x.conf:1: listen: bad port \"99999\"
x.conf:2: unknown key \"bogus\"
" report)))
          (is (= 6 (count #\Newline report)) "one line per error: ~s" report))))))

(defun write-text (path text)
  (with-open-file (s path :direction :output :if-exists :supersede)
    (write-string text s))
  path)

(test include-files
  (with-temp-dir (dir)
    (mkdir (format nil "~asub" dir) #o700)
    (write-text (format nil "~amain.conf" dir)
                (format nil "name main~%include sub/inc.conf~%vhost v {~%include sub/root.conf~%}"))
    (write-text (format nil "~asub/inc.conf" dir) (format nil "docroot www~%idle 2s~%"))
    (write-text (format nil "~asub/root.conf" dir) (format nil "root here~%"))
    (let* ((c (read-config (format nil "~amain.conf" dir) *test-keys*))
           (v (cdr (first (config-blocks c "vhost")))))
      (is (equal (format nil "~asub/www" dir) (config-value c :docroot))
          "paths resolve against the directory of the file that names them")
      (is (= 2000 (config-value c :idle)))
      (is (equal (format nil "~asub/here" dir) (config-value v :root)) "include inside a block")
      (is (equal (list (format nil "~asub/inc.conf" dir) 2)
                 (multiple-value-list (config-source c :idle)))))
    (write-text (format nil "~asub/inc.conf" dir) (format nil "docroot www~%oops 1~%vhost x {~%"))
    (write-text (format nil "~aloop.conf" dir) (format nil "include loop.conf~%"))
    (write-text (format nil "~amain.conf" dir)
                (format nil "include sub/inc.conf~%include nope.conf~%include a b~%include loop.conf"))
    (handler-case (progn (read-config (format nil "~amain.conf" dir) *test-keys*)
                         (fail "no error signalled"))
      (config-error (e)
        (is (equal (list (format nil "~asub/inc.conf:2: unknown key \"oops\"" dir)
                         (format nil "~asub/inc.conf:3: block not closed by \"}\"" dir)
                         (format nil "~amain.conf:2: include: cannot read \"~anope.conf\": No such file or directory" dir dir)
                         (format nil "~amain.conf:3: include: expected one file name, got 2" dir)
                         (format nil "~aloop.conf:1: include: \"loop.conf\" includes itself" dir))
                   (mapcar #'princ-to-string (config-error-list e))))))))

(test end-to-end-on-disk
  (with-temp-dir (dir)
    (write-text (format nil "~acert.pem" dir) "x")
    (mkdir (format nil "~ajail" dir) #o700)
    (let ((path (format nil "~aserver.conf" dir)))
      (write-text path (format nil "# a server~c
listen 127.0.0.1:0~c
listen [::1]:0
listen unix:run/s.sock
tls-cert cert.pem
chroot jail
pidfile ~acrow.pid
user root
log stderr
bandwidth-out 100K
rate-per-address 20/1s
vhost one {
  root jail
}
" #\Return #\Return dir))
      (let ((c (read-config path *test-keys*)))
        (is (equal '("127.0.0.1:0" "[::1]:0") (mapcar #'address-string (butlast (config-value c :listen)))))
        (is (equal (format nil "~arun/s.sock" dir) (address-path (third (config-value c :listen)))))
        (is (equal (format nil "~acert.pem" dir) (config-value c :tls-cert)))
        (is (equal path (config-file c)))
        (is (equal dir (config-directory c)))
        (is (= 102400 (config-value c :bandwidth-out)))
        (is (equal '(20 . 1000) (config-value c :rate-per-address)))
        ;; -n: the socket directory run/ is missing; everything else exists.
        (handler-case (progn (check-config c) (fail "check-config passed"))
          (config-error (e)
            (is (equal (list (format nil "~a:4: listen: directory \"~arun/\" does not exist" path dir))
                       (mapcar #'princ-to-string (config-error-list e))))))
        (mkdir (format nil "~arun" dir) #o700)
        (is (eq c (check-config c)))
        (is (config-p (read-config path *test-keys* :check t)))))
    (let ((path (format nil "~abad.conf" dir)))
      (write-text path (format nil "tls-cert missing.pem~%chroot cert.pem~%pidfile nodir/x.pid~%user no-such-user-crow~%group no-such-group-crow~%tls-key jail~%vhost v {~%root r~%}~%"))
      (is (config-p (read-config path *test-keys*)) "without -n nothing is looked up")
      (handler-case (progn (read-config path *test-keys* :check t) (fail "-n passed"))
        (config-error (e)
          (is (equal (list (format nil "~a:1: tls-cert: \"~amissing.pem\" does not exist" path dir)
                           (format nil "~a:2: chroot: \"~acert.pem\" is not a directory" path dir)
                           (format nil "~a:3: pidfile: directory \"~anodir/\" does not exist" path dir)
                           (format nil "~a:4: user: no such user \"no-such-user-crow\"" path)
                           (format nil "~a:5: group: no such group \"no-such-group-crow\"" path)
                           (format nil "~a:6: tls-key: \"~ajail\" is a directory" path dir))
                     (mapcar #'princ-to-string (config-error-list e)))))))
    (handler-case (progn (read-config (format nil "~anone.conf" dir) *test-keys*) (fail "no error"))
      (config-error (e)
        (is (null (config-error-line e)))
        (is (equal (format nil "~anone.conf: cannot read: No such file or directory" dir)
                   (princ-to-string e)))))))

(test help-listing
  (let ((out (with-output-to-string (s) (describe-config-keys *test-keys* s))))
    (is (search "K, M or G (1024-based" out))
    (is (search "
  timeout DURATION             Idle time after which a connection is closed. [default: 5m]
" out))
    (is (search "
  listen ADDR:PORT             Plain listener: " out))
    (is (search "(repeatable)" out))
    (is (search "
  log syslog|stderr            Where log lines go. [default: syslog]
" out))
    (is (search "
  vhost ARG { ... }            A virtual host.
    index WORD...              Index file names. [default: index.html]
    location ARG { ... }       A path prefix.
      expires DURATION         Cache lifetime.
    root PATH                  Document root. (required)
" out))
    (is (search "
  keepalive yes|no             [default: yes]
" out))))

(test key-tables
  (is (equal (sort (mapcar #'symbol-name '(:index :location :root)) #'string<)
             (mapcar (lambda (s) (symbol-name (slot-value s 'crow.server::name))) *test-vhost-keys*)))
  (let ((names (mapcar (lambda (s) (symbol-name (slot-value s 'crow.server::name))) *test-keys*)))
    (is (equal names (sort (copy-list names) #'string<)) "the table is sorted")
    (is (= 1 (count "WORKERS" names :test #'string=)) "an override replaces the common key"))
  (signals error (eval '(define-config-keys *bad-keys* (x :colour))))
  (signals error (eval '(define-config-keys *bad-keys* (x :block))))
  (signals error (eval '(define-config-keys *bad-keys* (x :enum)))))
