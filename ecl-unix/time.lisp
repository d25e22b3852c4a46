;;;; time.lisp — clocks (monotonic and real) and date formatting for HTTP, RFC 5322 and ISO 8601.

(in-package :crow.unix)

(ffi:clines "#include <time.h>" "#include <string.h>" "#include <stdio.h>")

(defun monotonic-ns ()
  "Returns CLOCK_MONOTONIC in nanoseconds as an integer.  Can't fail."
  (ffi:c-inline () () :int64-t
    "{ struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
       @(return) = (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }"))

(defun monotonic-seconds ()
  "Returns CLOCK_MONOTONIC in seconds as a double-float.  Can't fail."
  (ffi:c-inline () () :double
    "{ struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); @(return) = t.tv_sec + t.tv_nsec / 1e9; }"))

(defun real-time ()
  "Returns CLOCK_REALTIME as (values SECONDS NANOSECONDS) since the Unix epoch.  Can't fail."
  (ffi:c-inline () () (values :int64-t :int)
    "{ struct timespec t; clock_gettime(CLOCK_REALTIME, &t); @(return 0) = t.tv_sec; @(return 1) = (int)t.tv_nsec; }"))

(defun unix-time ()
  "Returns the current Unix time in whole seconds.  Can't fail."
  (values (real-time)))

(defun %strftime (seconds fmt utc)
  (ffi:c-inline (seconds fmt utc) (:int64-t :cstring :bool) :object
    "{ time_t t = (time_t)#0; struct tm tm; char buf[128]; size_t n;
       if (#2) gmtime_r(&t, &tm); else localtime_r(&t, &tm);
       n = strftime(buf, sizeof buf, #1, &tm);
       @(return) = ecl_make_simple_base_string(buf, (cl_fixnum)n); }"))

(defun format-http-date (&optional (seconds (unix-time)))
  "Returns SECONDS (Unix time) as an HTTP IMF-fixdate, \"Sun, 06 Nov 1994 08:49:37 GMT\"
(RFC 9110 5.6.7; names in English whatever the locale).  Can't fail."
  (multiple-value-bind (wday mday mon year hh mm ss) (%broken-down seconds t)
    (format nil "~a, ~2,'0d ~a ~4,'0d ~2,'0d:~2,'0d:~2,'0d GMT"
            (svref #("Sun" "Mon" "Tue" "Wed" "Thu" "Fri" "Sat") wday) mday
            (svref #("Jan" "Feb" "Mar" "Apr" "May" "Jun" "Jul" "Aug" "Sep" "Oct" "Nov" "Dec") mon)
            year hh mm ss)))

(defun %broken-down (seconds utc)
  "Returns (values WDAY MDAY MON0 YEAR HOUR MIN SEC GMTOFF-SECONDS)."
  (ffi:c-inline (seconds utc) (:int64-t :bool) (values :int :int :int :int :int :int :int :long)
    "{ time_t t = (time_t)#0; struct tm tm; if (#1) gmtime_r(&t, &tm); else localtime_r(&t, &tm);
       @(return 0) = tm.tm_wday; @(return 1) = tm.tm_mday; @(return 2) = tm.tm_mon;
       @(return 3) = tm.tm_year + 1900; @(return 4) = tm.tm_hour; @(return 5) = tm.tm_min;
       @(return 6) = tm.tm_sec; @(return 7) = tm.tm_gmtoff; }"))

(defun format-rfc5322-date (&optional (seconds (unix-time)) (utc nil))
  "Returns SECONDS as an RFC 5322 date-time in local time (UTC when UTC is true),
\"Tue, 24 Nov 2026 21:14:00 +0100\".  Can't fail."
  (multiple-value-bind (wday mday mon year hh mm ss off) (%broken-down seconds utc)
    (format nil "~a, ~2,'0d ~a ~4,'0d ~2,'0d:~2,'0d:~2,'0d ~a~2,'0d~2,'0d"
            (svref #("Sun" "Mon" "Tue" "Wed" "Thu" "Fri" "Sat") wday) mday
            (svref #("Jan" "Feb" "Mar" "Apr" "May" "Jun" "Jul" "Aug" "Sep" "Oct" "Nov" "Dec") mon)
            year hh mm ss (if (minusp off) "-" "+")
            (floor (abs off) 3600) (mod (floor (abs off) 60) 60))))

(defun format-iso8601 (&optional (seconds (unix-time)) &key (utc t) nanoseconds)
  "Returns SECONDS as ISO 8601, \"2026-11-24T21:14:00Z\" (or with a +hh:mm offset in local
time when UTC is NIL); with NANOSECONDS, milliseconds are appended (\".123\").  Can't fail."
  (multiple-value-bind (wday mday mon year hh mm ss off) (%broken-down seconds utc)
    (declare (ignore wday))
    (format nil "~4,'0d-~2,'0d-~2,'0dT~2,'0d:~2,'0d:~2,'0d~@[.~3,'0d~]~a"
            year (1+ mon) mday hh mm ss
            (and nanoseconds (floor nanoseconds 1000000))
            (if utc "Z"
                (format nil "~a~2,'0d:~2,'0d" (if (minusp off) "-" "+")
                        (floor (abs off) 3600) (mod (floor (abs off) 60) 60))))))
