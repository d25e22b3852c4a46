;;;; package.lisp — the crow.ftp package: mmftpd (the FTP server) and mmftpasswd.

(defpackage :crow.ftp
  (:use :cl :crow.unix :crow.server)
  (:export
   ;; accounts
   #:account #:account-anonymous #:account-hash #:account-home #:account-max-logins
   #:account-name #:account-perms #:account-quota-bytes #:account-quota-files
   #:format-account #:parse-accounts #:read-accounts #:write-accounts
   ;; paths
   #:normalize-path
   ;; programs
   #:main #:passwd-main))
