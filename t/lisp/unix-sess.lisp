;;;; unix-sess.lisp — crow.unix sessions and TLS contexts over socket pairs: lines, conditions,
;;;; exact reads, SMTP DATA, writev, sendfile, bandwidth, STARTTLS with injected plaintext.

(in-package :crow.test)

(def-suite unix-sess :in crow)
(in-suite unix-sess)

(defmacro with-session-pair ((session peer &rest options) &body body)
  "Binds SESSION to a session over one end of a socket pair and PEER to the other end's
descriptor; closes both afterwards."
  (let ((a (gensym)) (b (gensym)))
    `(multiple-value-bind (,a ,b) (socket-pair)
       (let ((,peer ,b))
         (unwind-protect
              (let ((,session (make-session ,a ,@options)))
                (unwind-protect (progn ,@body)
                  (session-close ,session)))
           (%close ,peer))))))

(defun send-string (fd string)
  (write-all fd (octets-of string)))

(defun read-all-string (fd)
  "Reads FD to end of file; returns the bytes as a string (one char per byte)."
  (let ((out (make-string-output-stream)) (buf (make-octets 4096)))
    (loop for n = (read-fd fd buf) until (zerop n)
          do (loop for i below n do (write-char (code-char (aref buf i)) out)))
    (get-output-stream-string out)))

(defvar *test-cert-dir* nil)

(defun test-cert-dir ()
  "Returns a directory holding cert.pem and key.pem made by tools/mkcert (once per run)."
  (or *test-cert-dir*
      (let ((d (format nil "/tmp/crow-test-tls-~d/" (getpid))))
        (multiple-value-bind (out how code)
            (command-output (namestring (crow-asd:project-path "tools/mkcert")) d)
          (declare (ignore out how))
          (assert (eql code 0) () "tools/mkcert failed"))
        (setf *test-cert-dir* d))))

(test session-lines-and-policy
  (with-session-pair (s peer :max-line 16 :idle-timeout 5)
    (send-string peer (format nil "HELO x~c~cbare~c0123456789012345678901234~c~cQUIT~c~ca~cb~c~c"
                              #\Return #\Linefeed #\Linefeed #\Return #\Linefeed
                              #\Return #\Linefeed #\Return #\Return #\Linefeed))
    (let ((l (session-read-line s)))
      (is (equal "HELO x" l))
      (is (typep l 'simple-base-string) "lines are base-strings"))
    (is (equalp (octets-of "bare") (session-read-line s :as :octets)) "bare LF allowed, as octets")
    (is (eq :too-long (session-read-line s)) "a 25-byte line over 16 returns :too-long")
    (is (equal "QUIT" (session-read-line s)) "and the rest of it is skipped")
    (is (eq :bad (session-read-line s)) "a bare CR returns :bad")
    (shutdown-socket peer :write)
    (is (eq :done (session-read-line s :eof-error-p nil :eof-value :done)) "EOF-VALUE")
    (signals session-eof (session-read-line s))
    (multiple-value-bind (in out) (session-counts s)
      (is (> in 40))
      (is (zerop out)))))

(test session-timeout-and-abort
  (with-session-pair (s peer :idle-timeout 0.2)
    (let ((t0 (monotonic-seconds)))
      (signals session-timeout (session-read-line s))
      (is (< 0.15 (- (monotonic-seconds) t0) 3) "after about 0.2 s"))
    (session-set-timeouts s :idle 10)
    (let ((th (mp:process-run-function "abort" (lambda () (sleep 0.2) (session-abort s))))
          (t0 (monotonic-seconds)))
      (signals session-eof (session-read-line s))
      (is (< (- (monotonic-seconds) t0) 3) "session-abort from another thread ends the wait")
      (mp:process-join th))))

(test session-exact-some-data
  (with-session-pair (s peer :idle-timeout 5)
    (send-string peer (format nil "SIZE 5~c~cabcdeREST" #\Return #\Linefeed))
    (is (equal "SIZE 5" (session-read-line s)))
    (is (equalp (octets-of "abcde") (session-read-exact s 5)))
    (let ((buf (make-octets 10)))
      (is (= 4 (session-read-some s buf)))
      (is (equalp (octets-of "REST") (subseq buf 0 4))))
    (let ((crlf (format nil "~c~c" #\Return #\Linefeed)))
      (send-string peer (concatenate 'string "Subject: x" crlf ".." "dot" crlf "bare"
                                     (string #\Linefeed) "x" crlf "." crlf "NOOP" crlf))
      (multiple-value-bind (data flags) (session-read-data s)
        (is (equalp (octets-of (concatenate 'string "Subject: x" crlf "." "dot" crlf "bare"
                                            (string #\Linefeed) "x" crlf))
                    data)
            "DATA unstuffed")
        (is (equal '(:bare-lf) flags)))
      (is (equal "NOOP" (session-read-line s)))
      (send-string peer (concatenate 'string (make-string 3000 :initial-element #\y) crlf
                                     "." crlf))
      (multiple-value-bind (data flags) (session-read-data s :max-size 1000)
        (is (= 1000 (length data)))
        (is (member :too-big flags)))
      (send-string peer (concatenate 'string "a" (string #\Return) "b" crlf "." crlf))
      (is (equal '(:bad) (nth-value 1 (session-read-data s :reject-bare t)))))
    (shutdown-socket peer :write)
    (signals session-eof (session-read-exact s 100))))

(test session-write-and-sendfile
  (with-temp-dir (d)
    (let ((path (concatenate 'string d "f")))
      (with-fd (fd (open-fd path :direction :output))
        (write-all fd (octets-of "0123456789")))
      (with-session-pair (s peer :write-timeout 5)
        (session-write s "220 " (octets-of "ready") (format nil " é~c~c" #\Return #\Linefeed))
        (with-fd (fd (open-fd path))
          (is (= 7 (session-sendfile s fd 3 100)) "sendfile short at end of file"))
        (session-close s)
        (is (equalp (concatenate 'octets (octets-of "220 ready ") #(#xc3 #xa9 13 10)
                                 (octets-of "3456789"))
                    (octets-of (read-all-string peer)))
            "strings, octets and UTF-8 in one writev, then the file")))))

(test session-bandwidth-lower-bound
  (with-session-pair (s peer :write-timeout 10)
    (let* ((n 150000) (rate 200000)
           (reader (mp:process-run-function "sink" (lambda () (read-all-string peer))))
           (t0 (monotonic-seconds)))
      (session-set-bandwidth s :out rate)
      (session-write s (make-octets n))
      (let ((dt (- (monotonic-seconds) t0)))
        (session-close s)
        (mp:process-join reader)
        (is (>= dt (* 0.999 (/ n rate))) "never faster than the rate (~,3f s)" dt)
        (is (< dt (* 4 (/ n rate))) "not absurdly slower (~,3f s)" dt)))))

(test tls-contexts
  (let ((d (test-cert-dir)))
    (signals enoent (make-tls-server-context "/nonexistent.pem" (concatenate 'string d "key.pem")))
    (signals tls-error (make-tls-server-context "/etc/hostname" (concatenate 'string d "key.pem")))
    (let ((ctx (make-tls-server-context (concatenate 'string d "cert.pem")
                                        (concatenate 'string d "key.pem"))))
      (is (eq :server (tls-context-kind ctx)))
      (free-tls-context ctx)
      (free-tls-context ctx))))

(test session-starttls-discards-injected-plaintext
  (let* ((d (test-cert-dir))
         (sctx (make-tls-server-context (concatenate 'string d "cert.pem")
                                        (concatenate 'string d "key.pem")))
         (cctx (make-tls-client-context :ca-file (concatenate 'string d "cert.pem")))
         (crlf (format nil "~c~c" #\Return #\Linefeed)))
    (unwind-protect
         (multiple-value-bind (a b) (socket-pair)
           (let* ((client-result nil)
                  (client (mp:process-run-function
                           "tls client"
                           (lambda ()
                             (setf client-result
                                   (handler-case
                                       (with-session (c b :idle-timeout 5 :write-timeout 5)
                                         (session-write c "STARTTLS" crlf "RCPT TO:<evil@x>" crlf)
                                         (session-read-line c)
                                         (session-starttls c cctx :host "localhost")
                                         (session-write c "AFTER" crlf)
                                         (list (session-read-line c) (session-tls-version c)))
                                     (error (e) e)))))))
             (with-session (s a :idle-timeout 5 :write-timeout 5)
               (is (equal "STARTTLS" (session-read-line s)))
               (is (= 18 (session-buffered s)) "the injected command waits in the buffer")
               (session-write s "220 go ahead" crlf)
               (is (= 18 (session-starttls s sctx)) "18 injected bytes discarded")
               (is (session-tls-p s))
               (is (equal "AFTER" (session-read-line s)) "the next line came through TLS")
               (session-write s "250 ok" crlf)
               (signals unix-error (session-starttls s sctx)))
             (mp:process-join client)
             (is (equal '("250 ok" "TLSv1.3") client-result) "client: ~a" client-result)))
      (free-tls-context sctx)
      (free-tls-context cctx))))
