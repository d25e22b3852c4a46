;;;; events.lisp — events: messages with chosen keywords, every message of chosen nicks, joins
;;;; of chosen users.  Each is a line in the events log and, when `stat-dir` is set and the
;;;; mmstat client is in the image, a count `irclog|CATEGORY|DETAIL` in mmstatd.

(in-package :crow.irc)

(defstruct (event-rules (:constructor %make-event-rules))
  "KEYWORDS (lower-cased), NICKS and JOINS (IRC-folded), the events log PATH, its fd, and the
mmstat handle (:shared for the process's shared one, or NIL)."
  keywords nicks joins path fd stat (lock (mp:make-lock :name "irclog events")))

(defun make-event-rules (&key keywords nicks joins path)
  "Returns the event rules.  Can't fail."
  (%make-event-rules :keywords (mapcar #'string-downcase keywords)
                     :nicks (mapcar #'irc-downcase nicks) :joins (mapcar #'irc-downcase joins)
                     :path path))

(defun match-events (rules entry)
  "Returns the events ENTRY is, as a list of (CATEGORY DETAIL) strings.  Can't fail."
  (let ((kind (entry-kind entry))
        (nick (and (entry-nick entry) (irc-downcase (entry-nick entry))))
        (out '()))
    (when (member kind '(:message :action :notice))
      (let ((text (string-downcase (or (entry-text entry) ""))))
        (dolist (k (event-rules-keywords rules))
          (when (search k text) (push (list "keyword" k) out))))
      (when (and nick (member nick (event-rules-nicks rules) :test #'string=))
        (push (list "nick" nick) out)))
    (when (and (eq kind :join) nick (member nick (event-rules-joins rules) :test #'string=))
      (push (list "join" nick) out))
    (nreverse out)))

(defun %mmstat-function (name)
  (let ((s (or (find-symbol name "CROW.UNIX")
               (and (find-package "CROW.MMSTAT") (find-symbol name "CROW.MMSTAT")))))
    (and s (fboundp s) (symbol-function s))))

(defun open-event-stats (rules stat-dir)
  "Opens the mmstat client on STAT-DIR for RULES when the binding is present: the process's
shared handle (mmstat-setup, sends bounded to 20 ms) when the binding has one, else a handle
of RULES' own.  Returns true when counting, NIL otherwise (logged).  Can't fail."
  (when stat-dir
    (let ((setup (%mmstat-function "MMSTAT-SETUP"))
          (open (%mmstat-function "MMSTAT-OPEN")))
      (cond ((and setup (boundp 'crow.unix::*mmstat-shared*) (symbol-value 'crow.unix::*mmstat-shared*))
             ;; crow.server opened it before any chroot (see %setup-stats).
             (setf (event-rules-stat rules) :shared))
            (setup
             (or (setf (event-rules-stat rules) (and (funcall setup stat-dir) :shared))
                 (progn (log-warn "events: no mmstatd answers in ~a" stat-dir) nil)))
            (open
             (handler-case (setf (event-rules-stat rules) (funcall open stat-dir))
               (error (e) (log-warn "events: mmstat on ~a: ~a" stat-dir e) nil)))
            (t (log-warn "events: stat-dir set but this irclog has no mmstat client") nil)))))

(defun %count-event (rules key)
  "Counts KEY once in mmstatd.  Failures are logged, never signalled."
  (let ((stat (event-rules-stat rules)))
    (handler-case
        (if (eq stat :shared)
            (funcall (%mmstat-function "MMSTAT-COUNT") key 1)
            (funcall (%mmstat-function "MMSTAT-UPDATE") stat key 1))
      (error (c) (log-warn "events: mmstat: ~a" c)))))

(defun record-events (rules network entry line)
  "Writes one events-log line per event ENTRY is (LINE being its log line) and counts each in
mmstatd.  Returns the events.  Failures are logged, never signalled."
  (let ((events (match-events rules entry)))
    (when events
      (let ((stamp (format-stamp (entry-stamp entry))))
        ;; The event line has its own timestamp: drop the log line's.
        (when (and (> (length line) (+ 2 (length stamp))) (string= stamp line :end2 (length stamp)))
          (setf line (string-left-trim " " (subseq line (length stamp))))))
      (mp:with-lock ((event-rules-lock rules))
        (dolist (e events)
          (handler-case
              (progn
                (unless (event-rules-fd rules)
                  (setf (event-rules-fd rules) (%open-log (event-rules-path rules))))
                (write-all (event-rules-fd rules)
                           (utf8-encode (format nil "~a  ~a ~a ~a ~a: ~a~%"
                                                (format-stamp (entry-stamp entry)) network
                                                (entry-channel entry) (first e) (second e)
                                                line))))
            (error (c) (log-warn "events: ~a: ~a" (event-rules-path rules) c)))
          (when (event-rules-stat rules)
            (%count-event rules (format nil "irclog|~a|~a" (first e) (second e)))))))
    events))
