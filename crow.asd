;;;; crow.asd — one ASDF system per crow package, loadable into a live ECL (SLIME) or built
;;;; into executables by build.lisp.
;;;;
;;;; The C core is not compiled by ASDF: `make lib` builds build/libcrowcore.{a,so}.  Loading
;;;; crow/unix into a live image loads build/libcrowcore.so once (running `make lib` first if it
;;;; is missing), so every compiled file's inline C finds the core's symbols and the image holds
;;;; one copy of the core's state.  Executables link build/libcrowcore.a instead.

(defpackage :crow-asd
  (:use :cl :asdf)
  (:export #:ensure-core #:project-path))
(in-package :crow-asd)

(defun project-path (relative)
  "Returns the absolute pathname of RELATIVE inside the crow checkout."
  (merge-pathnames relative (system-source-directory "crow")))

(defvar *core-loaded* nil)

(defun ensure-core ()
  "Makes the C core's headers visible to ECL's C compiler and loads build/libcrowcore.so into
this image (once).  Signals an error if the library cannot be built or loaded."
  (require :cmp)
  (let ((inc (format nil "-I~a -include ~a" (namestring (project-path "c-core/"))
                    (namestring (project-path "ecl-unix/inline.h"))))
        (flags (find-symbol "*CC-FLAGS*" "C")))
    (unless (search inc (symbol-value flags))
      (setf (symbol-value flags) (concatenate 'string (symbol-value flags) " " inc))))
  (unless *core-loaded*
    (let ((so (project-path "build/libcrowcore.so")))
      (unless (probe-file so)
        (uiop:run-program (list "make" "-C" (namestring (project-path "")) "lib")
                          :output *error-output* :error-output *error-output*))
      (ffi:load-foreign-library (namestring (truename so)))
      (setf *core-loaded* t))))

(defsystem "crow"
  :description "crow: Unix servers on an ECL Common Lisp host over a C performance core."
  :version "0.1.0"
  :license "BSD-2-Clause"
  :depends-on ("crow/unix" "crow/server" "crow/sh" "crow/echo" "crow/hello" "crow/appserv"
               "crow/spawn" "crow/http" "crow/ftp" "crow/mmstatd"))

(defsystem "crow/unix"
  :description "crow.unix: Linux system calls and libcrowcore bindings through ECL inline C."
  :version "0.1.0"
  :pathname "ecl-unix/"
  :perform (prepare-op :before (o c) (crow-asd:ensure-core))
  :serial t
  :components ((:file "package")
               (:file "conditions")
               (:file "ffi")
               (:file "utf8")
               (:file "html")
               (:file "ircfmt")
               (:file "fd")
               (:file "fs")
               (:file "socket")
               (:file "epoll")
               (:file "proc")
               (:file "signal")
               (:file "time")
               (:file "syslog")
               (:file "admit")
               (:file "tls")
               (:file "evloop")
               (:file "evhttp")
               (:file "mpart")
               (:file "fcache")
               (:file "sess")
               (:file "digest")
               (:file "crypt")
               (:file "ftpdata")
               (:file "tty")
               (:file "embed")
               (:file "maildata")
               (:file "mmstat")
               (:file "statlog")))

(defsystem "crow/pq"
  :description "crow.unix's libpq binding (PostgreSQL client), apart so only the programs that
use it link -lpq."
  :version "0.1.0"
  :pathname "ecl-unix/"
  :depends-on ("crow/unix")
  ;; A live image needs libpq's symbols before loading the compiled file.
  :perform (prepare-op :before (o c) (ffi:load-foreign-library "libpq.so.5"))
  :components ((:file "pq")))

(defsystem "crow/sh"
  :description "crow-sh: run Lisp scripts and a REPL with crow.unix loaded."
  :version "0.1.0"
  :pathname "lisp/servers/sh/"
  :depends-on ("crow/unix")
  :serial t
  :components ((:file "package")
               (:file "sh")))

(defsystem "crow/echo"
  :description "crow-echo: the echo service make run starts until crow-httpd replaces it."
  :version "0.1.0"
  :pathname "lisp/servers/echo/"
  :depends-on ("crow/unix" "crow/sh")
  :serial t
  :components ((:file "package")
               (:file "echo")))

(defsystem "crow/server"
  :description "crow.server: the framework every crow server is built on (config, ...)."
  :version "0.1.0"
  :pathname "lisp/servers/server/"
  :depends-on ("crow/unix")
  :serial t
  :components ((:file "package")
               (:file "conditions")
               (:file "log")
               (:file "config")
               (:file "listen")
               (:file "event")
               (:file "session")
               (:file "main")
               (:file "privsep")
               (:file "prefork")))

(defsystem "crow/hello"
  :description "crow-hello: an HTTP hello-world on crow.server's event workers."
  :version "0.1.0"
  :pathname "lisp/servers/hello/"
  :depends-on ("crow/unix" "crow/server" "crow/sh")
  :serial t
  :components ((:file "package")
               (:file "hello")))

(defsystem "crow/appserv"
  :description "crow-appserv: services with protocol handlers written as Lisp files."
  :version "0.1.0"
  :pathname "lisp/servers/appserv/"
  :depends-on ("crow/unix" "crow/server" "crow/sh")
  :serial t
  :components ((:file "package")
               (:file "appserv")))

(defsystem "crow/spawn"
  :description "mmspawnd: an inetd-like server, one instance per service, with a pool of
pre-forked, chrooted, unprivileged children."
  :version "0.1.0"
  :pathname "lisp/servers/spawn/"
  :depends-on ("crow/unix" "crow/server" "crow/sh")
  :serial t
  :components ((:file "package")
               (:file "config")
               (:file "admit")
               (:file "server")
               (:file "main")))

(defsystem "crow/http"
  :description "crow-httpd: HTTP/1.1 server for files and Lisp handlers (package crow.http)."
  :version "0.1.0"
  :pathname "lisp/servers/http/"
  :depends-on ("crow/unix" "crow/server" "crow/sh")
  :serial t
  :components ((:file "package")
               (:file "specials")
               (:file "request")
               (:file "vhost")
               (:file "mime")
               (:file "response")
               (:file "static")
               (:file "access-log")
               (:file "upload")
               (:file "server")
               (:file "main")))

(defsystem "crow/mail"
  :description "mmsmtpd and mmpop3d: SMTP and POP3 over a PostgreSQL + message-file store."
  :version "0.1.0"
  :pathname "lisp/servers/mail/"
  :depends-on ("crow/unix" "crow/pq" "crow/server" "cl-ppcre")
  :serial t
  :components ((:file "package")
               (:file "specials")
               (:file "store")
               (:file "filters")
               (:file "smtp")
               (:file "pop3")
               (:file "main")))

(defsystem "crow/ftp"
  :description "mmftpd: an FTP server for virtual users in simulated chroots, with FTPS, limits
and throttling; mmftpasswd, its accounts tool (package crow.ftp)."
  :version "0.1.0"
  :pathname "lisp/servers/ftp/"
  :depends-on ("crow/unix" "crow/server" "crow/sh")
  :serial t
  :components ((:file "package")
               (:file "accounts")
               (:file "vfs")
               (:file "session")
               (:file "files")
               (:file "transfer")
               (:file "main")))

(defsystem "crow/irc"
  :description "irclog: logs IRC channels as humanized files and records events (package crow.irc)."
  :version "0.1.0"
  :pathname "lisp/servers/irc/"
  :depends-on ("crow/unix" "crow/server" "crow/sh")
  :serial t
  :components ((:file "package")
               (:file "specials")
               (:file "message")
               (:file "format")
               (:file "logfile")
               (:file "events")
               (:file "client")
               (:file "main")))

(defsystem "crow/mmstatd"
  :description "mmstatd: the counter database server (package crow.mmstatd)."
  :version "0.1.0"
  :pathname "lisp/servers/stat/"
  :depends-on ("crow/unix" "crow/server" "crow/sh")
  :serial t
  :components ((:file "package")
               (:file "db")
               (:file "store")
               (:file "server")
               (:file "main")))

(defsystem "crow/web"
  :description "crow.web: compile-time HTML templates, http-let, cookies and sessions."
  :version "0.1.0"
  :pathname "lisp/web/"
  :depends-on ("crow/unix" "crow/server" "crow/http")
  :serial t
  :components ((:file "package")
               (:file "html")
               (:file "forms")
               (:file "params")
               (:file "response")
               (:file "session")))

(defsystem "crow/mailweb"
  :description "crow.mailweb: the mail web interface at /mail/ (filters, usage, administration)."
  :version "0.1.0"
  :pathname "lisp/web/mail/"
  :depends-on ("crow/web" "crow/pq" "cl-ppcre")
  :serial t
  :components ((:file "package")
               (:file "specials")
               (:file "validate")
               (:file "db")
               (:file "auth")
               (:file "layout")
               (:file "forms")
               (:file "user")
               (:file "admin")
               (:file "app")))

(defsystem "crow/site"
  :description "crow.site: crow's own web site, served by crow-httpd (make run)."
  :version "0.1.0"
  :pathname "lisp/web/site/"
  :depends-on ("crow/web" "crow/mailweb")
  :serial t
  :components ((:file "package")
               (:file "markdown")
               ;; site.lisp reads these at compile time: a change rebuilds it
               (:static-file "README.md" :pathname "../../../README.md")
               (:static-file "web-README.md" :pathname "../README.md")
               (:file "site")
               (:file "test")
               (:file "bench")
               (:file "stats")
               (:file "irc")))

(defsystem "crow/symbol-game"
  :description "symbol-game: the Symbol Game (portable; lisp/games/symbol-game/symbol-game.asd
lists the same files for other Lisps), with ECL's entry point main.lisp."
  :version "0.1.0"
  :pathname "lisp/games/symbol-game/"
  :depends-on ("crow/unix" "crow/sh")
  :serial t
  :components ((:file "package")
               (:file "specials")
               (:file "world")
               (:file "reader")
               (:file "verbs")
               (:file "save")
               (:file "commands")
               (:file "keep")
               (:file "play")
               (:file "main")))

(defsystem "crow/test"
  :description "FiveAM suites for every crow package (run by t/lisp/run.lisp)."
  :version "0.1.0"
  :pathname "t/lisp/"
  :depends-on ("fiveam" "crow/unix" "crow/server" "crow/http" "crow/web" "crow/symbol-game"
               "crow/mail" "crow/mailweb" "crow/mmstatd" "crow/irc" "crow/ftp")
  :serial t
  :components ((:file "package")
               (:file "unix-errors")
               (:file "unix-fs")
               (:file "unix-socket")
               (:file "unix-proc")
               (:file "unix-time")
               (:file "unix-utf8")
               (:file "unix-sess")
               (:file "unix-admit")
               (:file "unix-crypt")
               (:file "server-config")
               (:file "server-session")
               (:file "server-listen")
               (:file "server-prefork")
               (:file "http")
               (:file "web-html")
               (:file "web-forms")
               (:file "game-symbol")
               (:file "mail")
               (:file "mailweb")
               (:file "mmstatd")
               (:file "irc")
               (:file "ftp")))
