;;;; format.lisp — the humanized log line: one entry (what happened, who, where, when) becomes
;;;; one line in the format irclog2html reads without configuration:
;;;;   2026-11-30T12:00:00  <nick> message        2026-11-30T12:00:00  * nick acts
;;;;   2026-11-30T12:00:00  *** nick (user@host) has joined #chan       (joins, parts, quits,
;;;;   nick changes, kicks, topics, modes, notices: `***` server-style lines)
;;;; format-line is a named global function called through its symbol for every line, so
;;;; redefining it from a swank client changes the very next line written.

(in-package :crow.irc)

(defstruct (entry (:constructor make-entry (&key kind stamp nick userhost channel text target)))
  "One loggable happening: KIND (:message :action :notice :ctcp :join :part :quit :nick :kick
:topic :topic-is :mode), STAMP (Unix seconds), NICK (who did it) and USERHOST, CHANNEL (where
it is logged), TEXT (message, reason, topic, mode arguments or CTCP request) and TARGET (the new
nick of a nick change, the victim of a kick)."
  kind stamp nick userhost channel text target)

(defvar *utc* t "True when days and timestamps are UTC, false for local time.")

(defun format-stamp (seconds)
  "Returns SECONDS (Unix time) as YYYY-MM-DDThh:mm:ss in UTC or local time (*utc*), with no
zone suffix (irclog2html's timestamp pattern).  Can't fail."
  (subseq (format-iso8601 (floor seconds) :utc *utc*) 0 19))

(defun format-line (entry)
  "Returns the log line (without newline) for ENTRY, or NIL to log nothing.  Can't fail."
  (let ((nick (entry-nick entry)) (text (entry-text entry)))
    (format nil "~a  ~?" (format-stamp (entry-stamp entry))
            (ecase (entry-kind entry)
              (:message "<~a> ~a")
              (:action "* ~a ~a")
              (:notice "*** -~a- ~a")
              (:ctcp "*** ~a sent CTCP ~a")
              (:join "*** ~a~@[ (~a)~] has joined ~a")
              (:part "*** ~a~@[ (~a)~] has left ~a~@[ (~a)~]")
              (:quit "*** ~a~@[ (~a)~] has quit IRC~@[ (~a)~]")
              (:nick "*** ~a is now known as ~a")
              (:kick "*** ~a was kicked by ~a~@[ (~a)~]")
              (:topic "*** ~a changes topic to \"~a\"")
              (:topic-is "*** Topic for ~a is \"~a\"")
              (:mode "*** ~a sets mode: ~a"))
            (ecase (entry-kind entry)
              ((:message :action :notice :ctcp :topic :mode) (list nick text))
              (:join (list nick (entry-userhost entry) (entry-channel entry)))
              (:part (list nick (entry-userhost entry) (entry-channel entry)
                           (and (plusp (length text)) text)))
              (:quit (list nick (entry-userhost entry) (and (plusp (length text)) text)))
              (:nick (list nick (entry-target entry)))
              (:kick (list (entry-target entry) nick (and (plusp (length text)) text)))
              (:topic-is (list (entry-channel entry) text))))))
