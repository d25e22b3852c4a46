;;;; package.lisp — crow.irc: irclog, an IRC client that logs channels as humanized,
;;;; irclog2html-readable files, one per channel per day, and records chosen events.

(defpackage :crow.irc
  (:use :cl :crow.unix :crow.server)
  (:export
   ;; clock
   #:*clock* #:clock-now #:set-fake-clock
   ;; messages
   #:decode-line #:make-message #:message #:message-command #:message-host #:message-nick
   #:message-params #:message-prefix #:message-tags #:message-time #:parse-message
   #:parse-server-time #:strip-colours
   ;; log lines
   #:entry #:entry-channel #:entry-kind #:entry-nick #:entry-stamp #:entry-target
   #:entry-text #:entry-userhost #:format-line #:format-stamp #:make-entry
   ;; log files
   #:close-log-files #:log-file-path #:make-log-writer #:write-entry
   ;; events
   #:make-event-rules #:match-events
   ;; the program
   #:*irc-keys* #:main #:*networks* #:network-nick #:network-name))
