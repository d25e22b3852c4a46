;;;; unix-time.lisp — clocks and date formats (goldens from RFC 9110, RFC 5322, ISO 8601).

(in-package :crow.test)

(def-suite unix-time :in crow)
(in-suite unix-time)

(test http-date
  ;; RFC 9110 5.6.7's example.
  (is (equal "Sun, 06 Nov 1994 08:49:37 GMT" (format-http-date 784111777)))
  (is (equal "Thu, 01 Jan 1970 00:00:00 GMT" (format-http-date 0)))
  (is (equal "Tue, 29 Feb 2028 12:00:00 GMT" (format-http-date 1835438400))))

(test rfc5322-date
  (is (equal "Sun, 06 Nov 1994 08:49:37 +0000" (format-rfc5322-date 784111777 t)))
  (let ((s (format-rfc5322-date)))
    (is (= 31 (length s)) "local date has the fixed shape: ~a" s)))

(test iso8601
  (is (equal "1970-01-01T00:00:00Z" (format-iso8601 0)))
  (is (equal "1994-11-06T08:49:37Z" (format-iso8601 784111777)))
  (is (equal "1994-11-06T08:49:37.123Z" (format-iso8601 784111777 :nanoseconds 123456789))))

(test clocks
  (let ((a (monotonic-ns)))
    (sleep 0.02)
    (let ((b (monotonic-ns)))
      (is (>= (- b a) 15000000) "monotonic advanced ~d ns over a 20 ms sleep" (- b a))))
  (multiple-value-bind (s ns) (real-time)
    (is (> s 1700000000))
    (is (< -1 ns 1000000000))
    (is (<= (abs (- s (unix-time))) 1)))
  (is (< (abs (- (monotonic-seconds) (/ (monotonic-ns) 1d9))) 1d0)))

(test syslog-calls
  (is (eq t (openlog "crow-test" :facility :user)))
  (is (eq t (syslog :debug "crow test message, 100% literal")))
  (signals crow-error (syslog :no-such-priority "x"))
  (is (eq t (closelog))))
