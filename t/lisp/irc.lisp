;;;; irc.lisp — irclog's pure parts: message parsing, server-time, colour stripping, the line
;;;; formatter, log file naming and rotation exactly at the day boundary (injected clock),
;;;; events, and the web view's line splitting.

(in-package :crow.test)

(def-suite irc :in crow)
(in-suite irc)

(defun irc-sym (name) (find-symbol name "CROW.IRC"))
(defun irc (name &rest args) (apply (symbol-function (irc-sym name)) args))

(test irc-parse-message
  (let ((m (crow.irc:parse-message
            "@time=2026-11-30T23:59:59.999Z;msgid=a\\sb :alice!~a@host PRIVMSG #crow :hello  world ")))
    (is (equal "PRIVMSG" (crow.irc:message-command m)))
    (is (equal "alice" (crow.irc:message-nick m)))
    (is (equal "~a@host" (crow.irc:message-host m)))
    (is (equal '("#crow" "hello  world ") (crow.irc:message-params m)))
    (is (equal '(("time" . "2026-11-30T23:59:59.999Z") ("msgid" . "a b")) (crow.irc:message-tags m))))
  (let ((m (crow.irc:parse-message "PING :irc.test")))
    (is (equal "PING" (crow.irc:message-command m)))
    (is (null (crow.irc:message-prefix m)))
    (is (equal '("irc.test") (crow.irc:message-params m))))
  (let ((m (crow.irc:parse-message ":srv 353 me = #c :@op +voice plain")))
    (is (equal '("me" "=" "#c" "@op +voice plain") (crow.irc:message-params m))))
  (is (null (crow.irc:parse-message "")))
  (is (null (crow.irc:parse-message ":prefix-only"))))

(test irc-server-time
  (is (= 1764547199999/1000 (crow.irc:parse-server-time "2025-11-30T23:59:59.999Z")))
  (is (= 0 (crow.irc:parse-server-time "1970-01-01T00:00:00Z")))
  (is (null (crow.irc:parse-server-time "yesterday")))
  (is (null (crow.irc:parse-server-time "2026-13-01T00:00:00Z"))))

(test irc-decode-and-strip
  (is (equal "café ✓" (crow.irc:decode-line (utf8-encode "café ✓"))))
  (is (equal "café" (crow.irc:decode-line (coerce #(99 97 102 233) 'octets))) "Latin-1 fallback")
  (is (equal "red and bold, 12,5x"
             (crow.irc:strip-colours (format nil "~c04red~c and ~cbold~c, 12,5~c4,12x~c"
                                             (code-char 3) (code-char 3) (code-char 2) (code-char 2)
                                             (code-char 3) (code-char 15)))))
  (is (equal "hex" (crow.irc:strip-colours (format nil "~cFF00AA,00ff00hex" (code-char 4)))))
  (is (equal "plain" (crow.irc:strip-colours "plain"))))

(test irc-base64
  (is (equal "AGFiAGM=" (irc "BASE64-ENCODE" (coerce #(0 97 98 0 99) 'octets))))
  (is (equal "YWJj" (irc "BASE64-ENCODE" (coerce #(97 98 99) 'octets)))))

(defun entry (kind &rest keys)
  (apply #'crow.irc:make-entry :kind kind :stamp 1764547199 keys))

(test irc-format-line
  (let ((crow.irc::*utc* t))
    (is (equal "2025-11-30T23:59:59  <alice> hi" (crow.irc:format-line (entry :message :nick "alice" :text "hi"))))
    (is (equal "2025-11-30T23:59:59  * alice waves" (crow.irc:format-line (entry :action :nick "alice" :text "waves"))))
    (is (equal "2025-11-30T23:59:59  *** bob (~b@h) has left #c"
               (crow.irc:format-line (entry :part :nick "bob" :userhost "~b@h" :channel "#c" :text ""))))
    (is (equal "2025-11-30T23:59:59  *** bob (~b@h) has quit IRC (gone)"
               (crow.irc:format-line (entry :quit :nick "bob" :userhost "~b@h" :channel "#c" :text "gone"))))
    (is (equal "2025-11-30T23:59:59  *** bob was kicked by op (out)"
               (crow.irc:format-line (entry :kick :nick "op" :target "bob" :channel "#c" :text "out"))))))

(test irc-rotation-at-the-boundary
  ;; Lines stamped 23:59:59.999 and 00:00:00.000 UTC go to two files; the injected clock
  ;; stamps messages without a server-time tag.
  (with-temp-dir (dir)
    (let* ((crow.irc::*utc* t)
           (w (crow.irc:make-log-writer dir))
           (day-end (crow.irc:parse-server-time "2026-11-30T23:59:59.999Z"))
           (crow.irc:*clock* (lambda () day-end)))
      (unwind-protect
           (let* ((m1 (crow.irc:parse-message ":a!b@c PRIVMSG #Crow :last"))
                  (p1 (irc "WRITE-LOG-LINE" w "Net" "#Crow" (crow.irc:message-time m1) "one"))
                  (crow.irc:*clock* (lambda () (+ day-end 1/1000)))
                  (p2 (irc "WRITE-LOG-LINE" w "Net" "#Crow" (crow.irc:message-time m1) "two")))
             (is (equal (format nil "~anet/#crow/2026-11-30.log" dir) p1))
             (is (equal (format nil "~anet/#crow/2026-12-01.log" dir) p2))
             (is (equal (format nil "one~%") (octets-to-string (read-file-octets p1))))
             (is (equal (format nil "two~%") (octets-to-string (read-file-octets p2))))
             (is (equal (format nil "~anet/%2Fetc/2026-11-30.log" dir)
                        (crow.irc:log-file-path w "NET" "/etc" day-end)) "a / never makes a path"))
        (crow.irc:close-log-files w)))))

(test irc-events
  (let ((rules (crow.irc:make-event-rules :keywords '("Lisp") :nicks '("Carol") :joins '("dave"))))
    (is (equal '(("keyword" "lisp")) (crow.irc:match-events rules (entry :message :nick "a" :text "I like LISP"))))
    (is (equal '(("nick" "carol")) (crow.irc:match-events rules (entry :message :nick "CAROL" :text "x"))))
    (is (equal '(("join" "dave")) (crow.irc:match-events rules (entry :join :nick "Dave"))))
    (is (null (crow.irc:match-events rules (entry :part :nick "dave" :text "lisp"))))))

(test irc-random-lines
  ;; Random and mutated lines: decoding, parsing and stripping never signal.
  (let ((*random-state* (make-random-state t))
        (seeds (mapcar #'utf8-encode
                       (list "@time=2026-11-30T00:00:00.000Z;a=b\\s :n!u@h PRIVMSG #c :hi"
                             (format nil ":n!u@h PRIVMSG #c :~cACTION x~c" (code-char 1) (code-char 1))
                             (format nil "~c03,04x~c99,99y~cFFFFFF,zz" (code-char 3) (code-char 3) (code-char 4))
                             ":srv 353 me = #c :@a +b" "KICK #c" "@" ":" "CAP * LS * :")))
        (failures '()))
    (loop repeat 3000 do
      (let* ((base (nth (random (length seeds)) seeds))
             (line (if (zerop (random 3))
                       (coerce (loop repeat (random 80) collect (random 256)) 'octets)
                       (let ((v (copy-seq base)))
                         (loop repeat (1+ (random 4)) finally (return v) do
                           (when (plusp (length v))
                             (setf (aref v (random (length v))) (random 256))))))))
        (let ((f (handler-case
                      (let* ((text (crow.irc:decode-line line))
                             (m (crow.irc:parse-message text)))
                        (crow.irc:strip-colours text)
                        (when m
                          (crow.irc:message-time m)
                          (crow.irc:parse-server-time (or (cdr (first (crow.irc:message-tags m))) "")))
                        nil)
                    (error (e) (format nil "~a on ~s" e line)))))
          (when f (push f failures)))))
    (is (null failures) "~{~a~%~}" (subseq failures 0 (min 5 (length failures))))))
