;;;; package.lisp — the crow.unix package: Linux system calls and libcrowcore bindings.

(defpackage :crow.unix
  (:use :cl)
  (:export
   ;; conditions (the errno subclasses are exported by conditions.lisp from its table)
   #:check-syscall #:crow-error #:simple-crow-error #:strerror #:unix-error
   #:unix-error-detail #:unix-error-errno #:unix-error-syscall
   ;; octets and strings
   #:defun-inline #:fast-funcall #:fast-symbol-function #:make-octets #:octets #:octets-to-string #:string-to-c
   ;; descriptors and files
   #:%close #:%open #:%pread #:%pwrite #:%read #:%write #:%writev
   #:+o-append+ #:+o-creat+ #:+o-excl+ #:+o-rdonly+ #:+o-rdwr+ #:+o-trunc+ #:+o-wronly+
   #:close-fd #:fdatasync #:fstat #:fsync #:lstat #:make-stat #:mkdir #:open-fd #:pipe
   #:pread-fd #:pwrite-fd #:read-directory #:read-fd #:rename #:rmdir #:sendfile
   #:set-cloexec #:set-nonblocking #:stat #:stat-atime #:stat-blksize #:stat-blocks
   #:stat-ctime #:stat-dev #:stat-gid #:stat-ino #:stat-mode #:stat-mtime #:stat-mtime-nsec
   #:stat-nlink #:stat-rdev #:stat-size #:stat-type #:stat-uid #:unlink #:with-fd
   #:write-all #:write-fd #:writev-fd #:dup2 #:file-exists-p #:read-file-octets #:chmod
   #:lchown
   ;; sockets
   #:%accept #:%connect #:accept-connection #:bind-address #:connect-address
   #:connect-finish #:listen-socket #:local-address #:make-socket #:peer-address
   #:peer-credentials #:recv-from #:send-to #:set-socket-option #:shutdown-socket
   #:socket-pair #:tcp-connect #:tcp-listen #:udp-socket #:unix-connect #:unix-listen
   #:socket-error-code #:send-fd #:receive-fd
   ;; mmstat client (c-core/mmstat)
   #:mmstat #:mmstat-autoflush #:mmstat-begin #:mmstat-close #:mmstat-commit
   #:mmstat-commit-sync #:mmstat-delete #:mmstat-flush #:mmstat-nonblocking #:mmstat-open
   #:mmstat-p #:mmstat-report #:mmstat-reset #:mmstat-rollback #:mmstat-rotate
   #:mmstat-count #:mmstat-send-timeout #:mmstat-set-text #:mmstat-setup #:mmstat-update
   #:with-mmstat
   #:with-mmstat-transaction
   ;; mmstatd's logger (c-core/statlog)
   #:free-statlog-iter #:glob-match-p #:glob-pattern-p #:make-statlog #:make-statlog-iter
   #:lock-file #:map-file #:statlog-ack #:truncate-file #:statlog-frame-check #:statlog-frame-find #:statlog-free
   #:statlog-iter-fetch #:statlog-iter-flags #:statlog-iter-key-into #:statlog-iter-next #:statlog-iter-start
   #:statlog-iter-start-batch #:statlog-iter-text #:statlog-iter-time #:statlog-iter-times
   #:statlog-iter-txn #:statlog-iter-value #:statlog-next-txn #:statlog-offset #:statlog-pump
   #:statlog-set-log #:statlog-set-policy #:statlog-snapshot-add #:statlog-snapshot-finish
   #:statlog-snapshot-open #:statlog-stats #:statlog-sync #:unmap-file
   ;; epoll and eventfd
   #:+epollerr+ #:+epollet+ #:+epollhup+ #:+epollin+ #:+epolloneshot+ #:+epollout+
   #:+epollrdhup+ #:epoll-add #:epoll-create #:epoll-del #:epoll-event-data
   #:epoll-event-events #:epoll-mod #:epoll-wait #:eventfd-create #:eventfd-read
   #:eventfd-write #:make-epoll-events
   ;; processes and credentials
   #:chdir #:chroot #:execve #:exit-process #:fork #:getegid #:geteuid #:getgid #:getgrnam
   #:getpid #:getppid #:getpwnam #:getrlimit #:getuid #:initgroups #:kill #:run-program
   #:setgroups #:setresgid #:setresuid #:setrlimit #:setsid #:spawn #:umask #:waitpid
   #:getgroups #:getcwd #:spawn-waiting #:hand-off #:make-spawner #:spawner-request #:spawner-receive
   #:reserve-lisp-threads #:set-lisp-thread-stacks #:grow-lisp-heap
   #:set-lisp-thread-caches #:lisp-thread-cache-entries
   ;; signals
   #:default-signal #:ignore-sigpipe #:read-signals #:reset-signal-pipe #:signal-fd
   #:signal-number #:watch-signals
   ;; time
   #:format-http-date #:format-iso8601 #:format-rfc5322-date #:monotonic-ns
   #:monotonic-seconds #:real-time #:unix-time
   ;; syslog
   #:closelog #:openlog #:syslog
   ;; UTF-8 (c-core/utf8)
   #:utf8-decode #:utf8-encode #:utf8-error #:utf8-error-offset #:utf8-length #:utf8-validate
   ;; event loops (c-core/evloop)
   #:ev #:ev-close #:ev-date #:ev-destroy #:ev-done #:ev-listen #:ev-next #:ev-pointer
   #:ev-continue #:ev-reply #:ev-reply* #:ev-sendfile #:ev-stats #:ev-tcp-listener #:ev-unit #:ev-unit-conn
   #:ev-unit-data
   #:ev-unit-free #:ev-unit-header #:ev-unit-headers #:ev-unit-http #:ev-unit-keep-alive
   #:ev-unit-length #:ev-unit-line #:ev-unit-method #:ev-unit-method-p #:ev-unit-octets #:ev-unit-peer
   #:ev-unit-listener #:ev-unit-target #:ev-unlisten #:make-ev-loop #:make-ev-unit #:ev-wake #:+ev-exclusive+
   ;; admission control (c-core/admit)
   #:admit #:admit-destroy #:admit-enter #:admit-expire #:admit-leave #:admit-pointer
   #:admit-stats #:admit-ticket #:make-admit #:with-admit
   ;; TLS (c-core/tls)
   #:free-tls-context #:make-tls-client-context #:make-tls-server-context #:tls-context
   #:tls-context-kind #:tls-context-p #:tls-error
   ;; sessions (c-core/sess)
   #:make-session #:session #:session-abort #:session-buffered #:session-close
   #:session-counts #:session-data #:session-eof #:session-error #:session-error-session
   #:session-fd #:session-p #:session-peer #:session-read-data #:session-read-exact
   #:session-read-line #:session-read-some #:session-sendfile #:session-set-bandwidth
   #:session-set-line-policy #:session-set-timeouts #:session-starttls #:session-timeout
   #:session-timeout-direction #:session-tls-error #:session-tls-p #:session-tls-version
   #:session-write #:with-session
   ;; IRC formatting codes (c-core/ircfmt)
   #:irc-strip-formatting
   ;; HTML escaping and form decoding (c-core/html)
   #:%form-decode #:+html-escape-max+ #:form-decode #:html-escape #:html-escape-into
   #:html-escape-octets-into #:log-quote #:octets-search #:percent-encode
   ;; SHA-256 and HMAC (c-core/digest, over OpenSSL)
   #:embedded-config #:embedded-count #:embedded-file #:embedded-name #:embedded-paths
   #:constant-time-equal #:hmac-sha256 #:octets-to-hex #:sha256 #:sha256-file
   ;; password hashes (c-core/crypt, over libxcrypt's crypt(3))
   #:crypt-hash #:crypt-verify
   ;; FTP data connections (c-core/ftpdata)
   #:free-ftpdata-share #:ftpdata #:ftpdata-close #:ftpdata-fd #:ftpdata-p #:ftpdata-recv-file
   #:ftpdata-send #:ftpdata-send-file #:ftpdata-set-limits #:ftpdata-share #:ftpdata-starttls
   #:ftp-telnet-strip
   #:make-ftpdata #:make-ftpdata-share #:open-file-nofollow #:set-oobinline #:wait-readable
   #:wait-writable
   ;; terminals
   #:terminal-echo
   ;; HTTP request facts (evhttp.lisp)
   #:*http-methods* #:ev-unit-header-base #:ev-unit-header-values #:ev-unit-request
   #:ev-unit-string #:ev-unit-string-reusing #:realpath
   ;; streaming multipart/form-data (c-core/mpart)
   #:+ebadmsg+ #:ev-continue-multipart #:ev-unit-multipart #:ev-unit-sink-p #:make-multipart
   #:multipart #:multipart-error #:multipart-feed #:multipart-finish #:multipart-free
   #:multipart-memory #:multipart-p #:multipart-parts
   ;; whole-file answers replayed in C (c-core/fcache)
   #:ev-fcache-attach #:ev-fcache-p #:ev-fcache-put #:ev-fcache-stats #:fcache-invalidate
   ;; the C core
   #:core-version))
