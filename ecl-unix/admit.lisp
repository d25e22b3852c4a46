;;;; admit.lisp — bindings to c-core/admit: admission control (global and per-address
;;;; connection limits, per-address connection rate) shared by every thread of a process.

(in-package :crow.unix)

(ffi:clines "#include <errno.h>" "#include <stdint.h>" "#include <time.h>"
            "#include <sys/socket.h>" "#include \"admit.h\"")

(defparameter *admit-results* #(:ok :full :per-address :rate :nomem)
  "crow_admit_enter's result number -> keyword.")

(defstruct (admit (:constructor %make-admit (pointer)))
  "An admission table (struct crow_admit), shared by every thread and loop of the process."
  pointer)

(defstruct (admit-ticket (:constructor %make-admit-ticket (peer)))
  "What admit-enter hands out for a connection it let in; give it back with admit-leave."
  peer
  (left nil))

(defun make-admit (&key (max-connections 0) (max-per-address 0) (rate-count 0)
                     (rate-period-ms 0) (bandwidth-in 0) (bandwidth-out 0)
                     (max-addresses 0) (ipv6-prefix 0))
  "Returns a new admission table.  0 means no limit for each of MAX-CONNECTIONS (connections
in at once), MAX-PER-ADDRESS (at once from one source address) and RATE-COUNT (new
connections per source per RATE-PERIOD-MS, a token bucket of RATE-COUNT refilled over the
period).  BANDWIDTH-IN/-OUT (bytes/s) are totals per source address shared by its connections
in the event loops that use this table.  MAX-ADDRESSES bounds the source entries kept (0 =
65536); IPV6-PREFIX counts IPv6 sources per prefix of that many bits (0 = 128).  IPv4-mapped
IPv6 peers count as the IPv4 address; AF_UNIX peers are exempt from the per-address limits.
Free it with admit-destroy once no loop or thread uses it.  Signals unix-error (EINVAL for
a rate count without a period, ENOMEM)."
  (let ((v (vector max-connections max-per-address rate-count (* rate-period-ms 1000000)
                   bandwidth-in bandwidth-out max-addresses ipv6-prefix)))
    (loop for x across v do (check-type x (integer 0 #.(1- (expt 2 63)))))
    (multiple-value-bind (p errno)
        (ffi:c-inline (v) (:object) (values :pointer-void :int)
          "{ struct crow_admit_config c; cl_object *v = #0->vector.self.t;
             crow_admit_config_init(&c);
             c.max_connections = (size_t)ecl_to_uint64_t(v[0]);
             c.max_per_address = (size_t)ecl_to_uint64_t(v[1]);
             uint64_t rc = ecl_to_uint64_t(v[2]);
             c.rate_count = rc > UINT32_MAX ? UINT32_MAX : (uint32_t)rc;
             c.rate_period_ns = ecl_to_uint64_t(v[3]);
             c.bandwidth_in = ecl_to_uint64_t(v[4]); c.bandwidth_out = ecl_to_uint64_t(v[5]);
             c.max_addresses = (size_t)ecl_to_uint64_t(v[6]);
             uint64_t pf = ecl_to_uint64_t(v[7]); c.ipv6_prefix = pf > 1000 ? 1000 : (unsigned)pf;
             struct crow_admit *a = crow_admit_new(&c);
             @(return 0) = a; @(return 1) = a ? 0 : errno; }")
      (when (ffi:null-pointer-p p) (unix-error errno "crow_admit_new"))
      (%make-admit p))))

(defun admit-destroy (admit)
  "Frees ADMIT's table (tickets still out become invalid).  Harmless twice.  Can't fail."
  (let ((p (admit-pointer admit)))
    (when p
      (setf (admit-pointer admit) nil)
      (ffi:c-inline (p) (:pointer-void) :void "crow_admit_destroy((struct crow_admit *)#0)"
                    :one-liner t))))

(defmacro with-admit ((var &rest options) &body body)
  "Binds VAR to (make-admit OPTIONS...) around BODY and destroys it after."
  `(let ((,var (make-admit ,@options)))
     (unwind-protect (progn ,@body) (admit-destroy ,var))))

(defun %admit-live (admit)
  (or (admit-pointer admit) (error 'simple-crow-error :format-control "admit table destroyed")))

(defun admit-enter (admit fd)
  "Asks ADMIT to let in the connection on socket FD (its source comes from getpeername).
Returns (values :ok TICKET) — give TICKET back with admit-leave when the connection ends — or
(values REFUSAL NIL) with REFUSAL one of :full (max-connections), :per-address, :rate or
:nomem, the connection then not counted.  Thread-safe.  Signals unix-error when getpeername
fails (ENOTCONN: the peer has gone)."
  (let ((p (%admit-live admit)))
    (multiple-value-bind (r peer errno)
        (ffi:c-inline (p fd) (:pointer-void :int) (values :int :pointer-void :int)
          "{ struct sockaddr_storage ss; socklen_t sl = sizeof ss; struct crow_admit_peer *pe = NULL;
             int r, e = 0;
             if (getpeername(#1, (struct sockaddr *)&ss, &sl) < 0) { e = errno; r = -1; }
             else { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
                    r = crow_admit_enter_peer((struct crow_admit *)#0, (struct sockaddr *)&ss, sl,
                          (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec, &pe); }
             @(return 0) = r; @(return 1) = pe; @(return 2) = e; }")
      (cond ((minusp r) (unix-error errno "getpeername"))
            ((zerop r) (values :ok (%make-admit-ticket peer)))
            (t (values (svref *admit-results* r) nil))))))

(defun admit-leave (admit ticket-or-fd)
  "Lets out a connection admit-enter let in.  TICKET-OR-FD is the ticket it returned (a
ticket already given back is ignored: returns NIL), or the connection's socket while it is
still connected (its source then comes from getpeername; returns NIL when no connection from
that source is in).  Returns T when a connection was let out.  Thread-safe.  Signals
unix-error when getpeername fails for an FD."
  (let ((p (%admit-live admit)))
    (etypecase ticket-or-fd
      (admit-ticket
       (unless (admit-ticket-left ticket-or-fd)
         (setf (admit-ticket-left ticket-or-fd) t)
         (ffi:c-inline (p (admit-ticket-peer ticket-or-fd)) (:pointer-void :pointer-void) :void
           "crow_admit_leave_peer((struct crow_admit *)#0, (struct crow_admit_peer *)#1)"
           :one-liner t)
         t))
      (integer
       (multiple-value-bind (r errno)
           (ffi:c-inline (p ticket-or-fd) (:pointer-void :int) (values :int :int)
             "{ struct sockaddr_storage ss; socklen_t sl = sizeof ss; int r, e = 0;
                if (getpeername(#1, (struct sockaddr *)&ss, &sl) < 0) { e = errno; r = -2; }
                else { r = crow_admit_leave((struct crow_admit *)#0, (struct sockaddr *)&ss, sl);
                       if (r < 0) e = errno; }
                @(return 0) = r; @(return 1) = e; }")
         (cond ((zerop r) t)
               ((= r -2) (unix-error errno "getpeername"))
               (t nil)))))))

(defun admit-expire (admit)
  "Drops the idle source entries whose rate state has recovered.  Returns how many."
  (let ((p (%admit-live admit)))
    (ffi:c-inline (p) (:pointer-void) :fixnum
      "{ struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
         @(return) = (cl_fixnum)crow_admit_expire((struct crow_admit *)#0,
                       (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec); }")))

(defun admit-stats (admit)
  "Returns ADMIT's counters as a plist (:active :admitted :refused-full
:refused-per-address :refused-rate :refused-nomem :addresses :expired :evicted)."
  (let ((p (%admit-live admit)))
    (multiple-value-bind (ac ad rf rp rr rn n ex ev)
        (ffi:c-inline (p) (:pointer-void)
                      (values :uint64-t :uint64-t :uint64-t :uint64-t :uint64-t :uint64-t
                              :uint64-t :uint64-t :uint64-t)
          "{ struct crow_admit_stats s; crow_admit_stats((struct crow_admit *)#0, &s);
             @(return 0) = s.active; @(return 1) = s.admitted; @(return 2) = s.refused_full;
             @(return 3) = s.refused_per_address; @(return 4) = s.refused_rate;
             @(return 5) = s.refused_nomem; @(return 6) = s.addresses; @(return 7) = s.expired;
             @(return 8) = s.evicted; }")
      (list :active ac :admitted ad :refused-full rf :refused-per-address rp :refused-rate rr
            :refused-nomem rn :addresses n :expired ex :evicted ev))))
