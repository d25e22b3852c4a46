;;;; admit.lisp — admission: max-connections, max-per-address, rate-per-address, decided
;;;; before a connection reaches a child.
;;;;
;;;; Kept behind two functions, admission-enter and admission-leave, so that the C admission
;;;; module (c-core/admit, issue 4's "admission control in C") replaces this table without
;;;; touching the server.  Per-address state: connections open, and a token bucket of
;;;; RATE-N tokens refilled at RATE-N per RATE-MS (a flood from one source empties only its
;;;; own bucket).  Entries idle for a whole period with nothing open are dropped, so memory is
;;;; bounded by the addresses seen within one period.

(in-package :crow.spawn)

(defstruct (admission (:constructor %make-admission))
  max per-address rate-n rate-ms
  (open 0)
  (table (make-hash-table :test 'equal))   ; address -> entry
  (swept 0))

(defstruct (%entry (:constructor %make-entry (tokens stamp)))
  (open 0) tokens stamp)

(defun make-admission (&key max per-address rate)
  "Returns an admission table: MAX connections at once, PER-ADDRESS at once from one address
\(NIL: no limit), RATE a (N . MILLISECONDS) pair or NIL.  Can't fail."
  (%make-admission :max max :per-address per-address
                   :rate-n (and rate (car rate)) :rate-ms (and rate (cdr rate))))

(defun %now-ms () (floor (monotonic-ns) 1000000))

(defun %refill (adm e now)
  (when (admission-rate-n adm)
    (let* ((n (admission-rate-n adm)) (ms (admission-rate-ms adm))
           (gained (/ (* n (- now (%entry-stamp e))) ms)))
      (setf (%entry-tokens e) (min n (+ (%entry-tokens e) gained))
            (%entry-stamp e) now))))

(defun %sweep (adm now)
  (let ((period (or (admission-rate-ms adm) 10000)))
    (when (> (- now (admission-swept adm)) period)
      (setf (admission-swept adm) now)
      (let ((dead '()))
        (maphash (lambda (k e)
                   (when (and (zerop (%entry-open e)) (> (- now (%entry-stamp e)) period))
                     (push k dead)))
                 (admission-table adm))
        (dolist (k dead) (remhash k (admission-table adm)))))))

(defun admission-enter (adm fd address)
  "Decides whether the connection FD from ADDRESS (a string) may be served.  Returns NIL and
counts it when admitted, else the limit that refuses it: :max-connections,
:max-per-address or :rate-per-address.  Can't fail."
  (declare (ignore fd))
  (let* ((now (%now-ms))
         (table (admission-table adm))
         (e (or (gethash address table)
                (setf (gethash address table)
                      (%make-entry (or (admission-rate-n adm) 0) now)))))
    (%sweep adm now)
    (%refill adm e now)
    (setf (%entry-stamp e) now)
    (cond ((and (admission-max adm) (>= (admission-open adm) (admission-max adm)))
           :max-connections)
          ((and (admission-per-address adm) (>= (%entry-open e) (admission-per-address adm)))
           :max-per-address)
          ((and (admission-rate-n adm) (< (%entry-tokens e) 1))
           :rate-per-address)
          (t (when (admission-rate-n adm) (decf (%entry-tokens e)))
             (incf (%entry-open e))
             (incf (admission-open adm))
             nil))))

(defun admission-leave (adm address)
  "Counts the end of a connection admitted from ADDRESS.  Returns NIL.  Can't fail."
  (let ((e (gethash address (admission-table adm))))
    (when (and e (plusp (%entry-open e)))
      (decf (%entry-open e))
      (decf (admission-open adm))))
  nil)
