;;;; maildata.lisp — bindings to c-core/maildata: durable message files, the header scan, and
;;;; POP3 dot-stuffing.

(in-package :crow.unix)

(ffi:clines "#include <errno.h>" "#include <string.h>" "#include <sys/uio.h>"
            "#include \"maildata.h\"")

(export '(maildata-scan maildata-store maildata-pop3))

(defun maildata-scan (message)
  "Scans MESSAGE (octets) and returns a plist: :header-len (bytes of the header section with
its empty line), :max-line, :max-field (folded header fields joined), :fields, :received (the
hop count) and :flags, a list of :8bit :nul :no-body :bad-field :bare :dot-line (a line
starts with \".\") :no-crlf (no final CRLF).  Can't fail."
  (check-type message octets)
  (multiple-value-bind (hl ml mf fields received flags)
      (ffi:c-inline (message) (:object)
                    (values :fixnum :fixnum :fixnum :int :int :int)
        "{ struct crow_maildata_info in;
           crow_maildata_scan(#0->vector.self.b8, #0->vector.fillp, &in);
           @(return 0) = (cl_fixnum)in.header_len; @(return 1) = (cl_fixnum)in.max_line;
           @(return 2) = (cl_fixnum)in.max_field; @(return 3) = (int)in.fields;
           @(return 4) = (int)in.received; @(return 5) = (int)in.flags; }")
    (list :header-len hl :max-line ml :max-field mf :fields fields :received received
          :flags (loop for (bit kw) in '((#x01 :8bit) (#x02 :nul) (#x04 :no-body)
                                         (#x08 :bad-field) (#x10 :bare) (#x20 :dot-line)
                                         (#x40 :no-crlf))
                       when (logtest bit flags) collect kw))))

(defun maildata-store (tmp finals parts &key nosync)
  "Writes PARTS (octet vectors and base-strings, in order) to the new file TMP, fsyncs it,
hard-links it under every path of FINALS (a non-empty list), removes TMP and fsyncs the final
directories (NOSYNC skips both fsyncs).  Returns NIL once every final name is durable.
Signals unix-error (EEXIST, ENOENT, ENOSPC, EIO ...); every name it made is removed then."
  (let ((tmp-c (string-to-c tmp))
        (fin (map 'simple-vector #'string-to-c finals))
        (v (%write-parts parts))
        (nosync (and nosync t)))
    (check-syscall ("maildata store" tmp)
      (ffi:c-inline (tmp-c fin v nosync) (:object :object :object :bool) (values :int :int)
        "{ cl_index nf = #1->vector.dim, n = #2->vector.dim, i;
           const char *fstack[8], **f = fstack; struct iovec stackv[16], *iov = stackv;
           if (nf > 8) f = (const char **)ecl_alloc_atomic(nf * sizeof *f);
           if (n > 16) iov = (struct iovec *)ecl_alloc_atomic(n * sizeof *iov);
           for (i = 0; i < nf; i++) f[i] = (const char *)#1->vector.self.t[i]->vector.self.b8;
           for (i = 0; i < n; i++) { cl_object x = #2->vector.self.t[i];
             if (ECL_BASE_STRING_P(x)) { iov[i].iov_base = x->base_string.self; iov[i].iov_len = x->base_string.fillp; }
             else { iov[i].iov_base = x->vector.self.b8; iov[i].iov_len = x->vector.fillp; } }
           int r = crow_maildata_store((const char *)#0->vector.self.b8, f, nf, iov, (int)n, #3);
           @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")))
  nil)

(defun maildata-pop3 (message &optional (lines -1))
  "Returns MESSAGE (octets) as a POP3 multi-line response body: lines starting with \".\"
stuffed, the last line ended with CRLF, \".\\r\\n\" appended.  LINES -1: the whole message
(RETR); N >= 0: the header section, the empty line and N body lines (TOP).  Can't fail."
  (check-type message octets)
  (let* ((n (ffi:c-inline (message lines) (:object :long) :fixnum
              "(cl_fixnum)crow_maildata_pop3_size(#0->vector.self.b8, #0->vector.fillp, #1)"
              :one-liner t))
         (out (make-octets n)))
    (ffi:c-inline (message lines out) (:object :long :object) :void
      "crow_maildata_pop3(#0->vector.self.b8, #0->vector.fillp, #1, #2->vector.self.b8, #2->vector.dim)"
      :one-liner t)
    out))
