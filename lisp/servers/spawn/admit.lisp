;;;; admit.lisp — admission: max-connections, max-per-address, rate-per-address, decided in C
;;;; (c-core/admit through crow.unix's make-admit) before a connection reaches a child.
;;;;
;;;; The parent accepts every connection, so one table in the parent sees them all: a
;;;; connection enters when accepted and leaves, by its ticket, when the child that served it
;;;; is reaped (the parent's copy of the socket is long closed by then).  A flood from one
;;;; source empties only its own bucket.

(in-package :crow.spawn)

(defun make-admission (&key max per-address rate)
  "Returns an admission table: MAX connections at once, PER-ADDRESS at once from one address
\(NIL: no limit), RATE a (N . MILLISECONDS) pair or NIL.  Signals unix-error (ENOMEM)."
  (make-admit :max-connections (or max 0) :max-per-address (or per-address 0)
              :rate-count (if rate (car rate) 0) :rate-period-ms (if rate (cdr rate) 0)))

(defun admission-enter (adm fd)
  "Decides whether the accepted connection FD may be served.  Returns (values NIL TICKET)
when admitted (give TICKET to admission-leave when it ends), else the limit that refuses it:
:max-connections, :max-per-address, :rate-per-address or :no-memory.  Signals unix-error
\(ENOTCONN when the peer has already gone)."
  (multiple-value-bind (verdict ticket) (admit-enter adm fd)
    (case verdict
      (:ok (values nil ticket))
      (:full :max-connections)
      (:per-address :max-per-address)
      (:rate :rate-per-address)
      (t :no-memory))))

(defun admission-leave (adm ticket)
  "Counts the end of the connection admitted with TICKET.  Returns NIL.  Can't fail."
  (when ticket (admit-leave adm ticket))
  nil)
