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

(defvar *stamp-cache* (list nil nil "")
  "(SECONDS UTC STRING) of the last stamp made: lines come many per second, and ECL's format
is slow.  Replaced whole, never mutated, so threads may share it.")

(defun format-stamp (seconds)
  "Returns SECONDS (Unix time) as YYYY-MM-DDThh:mm:ss in UTC or local time (*utc*), with no
zone suffix (irclog2html's timestamp pattern).  Can't fail."
  (let ((s (floor seconds)) (cache *stamp-cache*))
    (if (and (eql (first cache) s) (eq (second cache) *utc*))
        (third cache)
        (let ((stamp (subseq (format-iso8601 s :utc *utc*) 0 19)))
          (setf *stamp-cache* (list s *utc* stamp))
          stamp))))

(defun %s (x) (or x ""))

(defun %paren (x)
  "\" (X)\" for a non-empty X, else \"\"."
  (if (and x (plusp (length x))) (concatenate 'string " (" x ")") ""))

(defun format-line (entry)
  "Returns the log line (without newline) for ENTRY, or NIL to log nothing.  Can't fail."
  (let ((stamp (format-stamp (entry-stamp entry)))
        (nick (%s (entry-nick entry))) (text (%s (entry-text entry)))
        (channel (%s (entry-channel entry))))
    (flet ((line (&rest parts) (apply #'concatenate 'string stamp "  " parts)))
      (ecase (entry-kind entry)
        (:message (line "<" nick "> " text))
        (:action (line "* " nick " " text))
        (:notice (line "*** -" nick "- " text))
        (:ctcp (line "*** " nick " sent CTCP " text))
        (:join (line "*** " nick (%paren (entry-userhost entry)) " has joined " channel))
        (:part (line "*** " nick (%paren (entry-userhost entry)) " has left " channel (%paren text)))
        (:quit (line "*** " nick (%paren (entry-userhost entry)) " has quit IRC" (%paren text)))
        (:nick (line "*** " nick " is now known as " (%s (entry-target entry))))
        (:kick (line "*** " (%s (entry-target entry)) " was kicked by " nick (%paren text)))
        (:topic (line "*** " nick " changes topic to \"" text "\""))
        (:topic-is (line "*** Topic for " channel " is \"" text "\""))
        (:mode (line "*** " nick " sets mode: " text))))))
