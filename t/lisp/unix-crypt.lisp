;;;; unix-crypt.lisp — crypt-hash / crypt-verify (c-core/crypt over libxcrypt): both methods,
;;;; UTF-8 passwords, random salts, wrong passwords, unusable hashes, a known vector.

(in-package :crow.test)

(def-suite unix-crypt :in crow)
(in-suite unix-crypt)

(test crypt-yescrypt-round-trip
  (let ((h (crypt-hash "demo")))
    (is (typep h 'base-string))
    (is (string= "$y$" (subseq h 0 3)))
    (is-true (crypt-verify "demo" h))
    (is-false (crypt-verify "Demo" h))
    (is-false (crypt-verify "" h))
    (is (string/= h (crypt-hash "demo")))))

(test crypt-sha512-utf8
  (let* ((pw (coerce (list #\p (code-char #xe4) #\s #\s #\Space (code-char #x263a)) 'string))
         (h (crypt-hash pw :method :sha512)))
    (is (string= "$6$" (subseq h 0 3)))
    (is-true (crypt-verify pw h))
    (is-false (crypt-verify "pass" h))))

(test crypt-known-vector-and-bad-hashes
  (is-true (crypt-verify "Hello world!"
                         "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"))
  (is-false (crypt-verify "Hello world!"
                          "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz2"))
  (is-false (crypt-verify "x" ""))
  (is-false (crypt-verify "x" "!"))
  (is-false (crypt-verify "x" "*"))
  (is-false (crypt-verify "x" "$zz$nonsense"))
  (is-false (crypt-verify (coerce (list #\a (code-char 0) #\b) 'string) (crypt-hash "a" :method :sha512)))
  (signals error (crypt-hash "x" :method :md5)))
