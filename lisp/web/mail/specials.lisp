;;;; specials.lisp — crow.mailweb's settings.

(in-package :crow.mailweb)

(defvar *mount* "/mail" "The path the app is mounted at (its route prefix, without the final /).")

(defvar *cookie* "crow-mail"
  "The session cookie of the mail app (its own name and Path, apart from the site's).")

(defvar *conninfo* nil
  "The libpq connection string of the mail database; NIL takes crow-httpd's mail-conninfo
key.  Neither set: /mail/ answers 503.")

(defparameter *min-password* 4 "Shortest password accepted (the demo's is demo).")

(defparameter *login-failures-allowed* 10
  "Failed logins an address may make within *login-failure-window* seconds; past that its
logins answer 429 until the window ends.")
(defparameter *login-failure-window* 300 "Seconds over which failed logins are counted.")
