;;;; message.lisp — IRC lines: decoding (UTF-8 through the C codec, Latin-1 when that fails),
;;;; parsing into tags, prefix, command and parameters, server-time tags, colour stripping.

(in-package :crow.irc)

(defstruct (message (:constructor make-message (&key tags prefix nick host command params)))
  "One IRC message: TAGS an alist of (name . value) strings, PREFIX the raw source
\(\"nick!user@host\" or a server name), NICK and HOST (user@host) split from it, COMMAND an
upper-case string (\"PRIVMSG\", \"001\"), PARAMS a list of strings (the trailing one last)."
  tags prefix nick host command params)

(defun decode-line (octets)
  "Returns OCTETS (one line without its terminator) as a string: UTF-8 when it is well formed
\(checked and decoded in C), else Latin-1, one character per byte.  Can't fail."
  (if (utf8-validate octets)
      (utf8-decode octets)
      (map 'string #'code-char octets)))

(defun %unescape-tag (value)
  "IRCv3 message-tags value escapes: \\: ; \\s space, \\\\ \\, \\r, \\n."
  (if (not (find #\\ value))
      value
      (with-output-to-string (out)
        (loop with i = 0 while (< i (length value))
              do (let ((c (char value i)))
                   (if (and (char= c #\\) (< (1+ i) (length value)))
                       (let ((d (char value (1+ i))))
                         (write-char (case d (#\: #\;) (#\s #\Space) (#\r #\Return)
                                       (#\n #\Newline) (t d))
                                     out)
                         (incf i 2))
                       (progn (unless (char= c #\\) (write-char c out)) (incf i))))))))

(defun %parse-tags (text)
  (loop for start = 0 then (1+ semi)
        for semi = (position #\; text :start start)
        for tag = (subseq text start semi)
        for eq = (position #\= tag)
        when (plusp (length tag))
          collect (cons (subseq tag 0 eq) (if eq (%unescape-tag (subseq tag (1+ eq))) ""))
        while semi))

(defun parse-message (line)
  "Parses LINE (a string, without CRLF) as an IRC message (RFC 1459 with IRCv3 tags).
Returns a message, or NIL for an empty or malformed line.  Can't fail."
  (let ((i 0) (n (length line)) tags prefix)
    (flet ((word ()
             (let* ((end (or (position #\Space line :start i) n))
                    (w (subseq line i end)))
               (setf i end)
               (loop while (and (< i n) (char= (char line i) #\Space)) do (incf i))
               w)))
      (loop while (and (< i n) (char= (char line i) #\Space)) do (incf i))
      (when (and (< i n) (char= (char line i) #\@))
        (incf i)
        (setf tags (%parse-tags (word))))
      (when (and (< i n) (char= (char line i) #\:))
        (incf i)
        (setf prefix (word)))
      (when (>= i n) (return-from parse-message nil))
      (let ((command (string-upcase (word)))
            (params '()))
        (loop while (< i n)
              do (if (char= (char line i) #\:)
                     (progn (push (subseq line (1+ i)) params) (setf i n))
                     (push (word) params)))
        (let* ((bang (and prefix (position #\! prefix)))
               (at (and prefix (position #\@ prefix)))
               (nick (cond (bang (subseq prefix 0 bang))
                           (at (subseq prefix 0 at))
                           (t prefix))))
          (make-message :tags tags :prefix prefix :nick nick
                        :host (cond (bang (subseq prefix (1+ bang)))
                                    (at (subseq prefix (1+ at))))
                        :command command :params (nreverse params)))))))

(defun message-tag (message name)
  "Returns the value of tag NAME of MESSAGE, or NIL."
  (cdr (assoc name (message-tags message) :test #'string=)))

(defun %digits (s start end)
  (and (<= end (length s))
       (every #'digit-char-p (subseq s start end))
       (parse-integer s :start start :end end)))

(defun parse-server-time (text)
  "Parses an IRCv3 server-time value, YYYY-MM-DDThh:mm:ss[.sss]Z, as Unix seconds (a rational
with milliseconds).  Returns NIL when TEXT is not one.  Can't fail."
  (let ((y (%digits text 0 4)) (mo (%digits text 5 7)) (d (%digits text 8 10))
        (h (%digits text 11 13)) (mi (%digits text 14 16)) (s (%digits text 17 19)))
    (when (and y mo d h mi s (char= (char text 4) #\-) (char= (char text 10) #\T)
               (<= 1 mo 12) (<= 1 d 31) (< h 24) (< mi 60) (< s 61))
      (let* ((dot (and (> (length text) 19) (char= (char text 19) #\.)))
             (msend (and dot (position-if-not #'digit-char-p text :start 20)))
             (ms (if (and dot msend (> msend 20))
                     (/ (parse-integer text :start 20 :end (min msend 23))
                        (expt 10 (- (min msend 23) 20)))
                     0)))
        (+ (- (encode-universal-time (min s 59) mi h d mo y 0) (encode-universal-time 0 0 0 1 1 1970 0))
           ms)))))

(defun message-time (message)
  "Returns the time of MESSAGE: its server-time tag when present and valid, else the clock
\(Unix seconds, rational).  Can't fail."
  (or (let ((tag (message-tag message "time"))) (and tag (parse-server-time tag)))
      (clock-now)))

(defun strip-colours (text)
  "Returns TEXT without mIRC formatting: colour codes ^C[fg[,bg]] (one or two digits each),
hex colours ^D[RRGGBB[,RRGGBB]], bold ^B, italics ^], underline ^_, strike ^^, monospace ^Q,
reverse ^V and reset ^O (removed in C, c-core/ircfmt).  irclog strips whole lines as octets
\(irc-strip-formatting) before decoding them; this is the same for a string.  Can't fail."
  (if (notany (lambda (c) (member (char-code c) '(2 3 4 15 17 22 29 30 31))) text)
      text
      (utf8-decode (irc-strip-formatting (utf8-encode text)))))

(defun base64-encode (octets)
  "Returns OCTETS in base64 (RFC 4648, padded) as a string.  Can't fail."
  (let ((alphabet "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"))
    (with-output-to-string (out)
      (loop for i from 0 below (length octets) by 3
            do (let* ((n (min 3 (- (length octets) i)))
                      (v (loop for k below 3
                               sum (ash (if (< k n) (aref octets (+ i k)) 0) (* 8 (- 2 k))))))
                 (loop for k below 4
                       do (write-char (if (<= k n) (char alphabet (ldb (byte 6 (* 6 (- 3 k))) v)) #\=)
                                      out)))))))

(defun irc-downcase (name)
  "Returns NAME folded as IRC compares nicks and channels (rfc1459: []\\~ are the upper case of
{}|^).  Can't fail."
  (map 'string (lambda (c) (case c (#\[ #\{) (#\] #\}) (#\\ #\|) (#\~ #\^) (t (char-downcase c))))
       name))

(defun channel-name-p (name)
  "True when NAME is a channel (starts with #, &, + or !)."
  (and (plusp (length name)) (find (char name 0) "#&+!")))
