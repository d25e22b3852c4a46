;;;; tls.lisp — bindings to c-core/tls: TLS server and client contexts (OpenSSL), made from
;;;; PEM files before chroot, shared by every thread.

(in-package :crow.unix)

(ffi:clines "#include <errno.h>" "#include <stdlib.h>" "#include \"tls.h\"")

(define-condition tls-error (unix-error) ()
  (:report (lambda (c s)
             (format s "~a: ~a" (unix-error-syscall c)
                     (or (unix-error-detail c) (strerror (unix-error-errno c))))))
  (:documentation "A TLS failure (errno EPROTO): a bad handshake, record or certificate, or a
PEM file OpenSSL cannot use.  DETAIL is OpenSSL's reason."))

(define-c-constants (+eproto+ "EPROTO"))

(defun tls-error (errno syscall detail)
  "Signals tls-error for EPROTO, else the unix-error for ERRNO, with DETAIL.  Does not return."
  (if (= errno +eproto+)
      (error 'tls-error :errno errno :syscall syscall :detail detail)
      (unix-error errno syscall detail)))

(defstruct (tls-context (:constructor %make-tls-context (pointer kind)))
  "An OpenSSL context (struct crow_tls_ctx): KIND is :server or :client."
  pointer kind)

(defun %tls-ctx (kind a b)
  "KIND 0: server context from cert A and key B; 1: client context with CA file A (or NIL)."
  (let ((ca (and a (string-to-c a)))
        (cb (and b (string-to-c b))))
    (ffi:c-inline (kind ca cb) (:int :object :object) (values :pointer-void :int :object)
      "{ char err[256] = \"\"; struct crow_tls_ctx *c;
         if (#0 == 0) c = crow_tls_server_ctx((char *)#1->vector.self.b8, (char *)#2->vector.self.b8, err, sizeof err);
         else c = crow_tls_client_ctx(#1 == ECL_NIL ? NULL : (char *)#1->vector.self.b8, err, sizeof err);
         int e = c ? 0 : errno;
         @(return 0) = c; @(return 1) = e; @(return 2) = ecl_make_simple_base_string(err, -1); }")))

(defun make-tls-server-context (cert-file key-file)
  "Returns a server TLS context using the PEM certificate chain in CERT-FILE and the PEM key in
KEY-FILE, both read now (call it before chroot and dropping privileges).  TLS 1.2 and 1.3
only, AEAD ciphers, no renegotiation.  Signals unix-error (ENOENT, EACCES) or tls-error (not
PEM, key and certificate do not match), with the reason."
  (multiple-value-bind (p errno msg) (%tls-ctx 0 cert-file key-file)
    (when (ffi:null-pointer-p p) (tls-error errno "tls server context" msg))
    (%make-tls-context p :server)))

(defun make-tls-client-context (&key ca-file)
  "Returns a client TLS context.  With CA-FILE (PEM) servers must present a certificate chaining
to it (and matching the host name given to the connection); without it they are not verified
(tests only).  Signals unix-error or tls-error."
  (multiple-value-bind (p errno msg) (%tls-ctx 1 ca-file nil)
    (when (ffi:null-pointer-p p) (tls-error errno "tls client context" msg))
    (%make-tls-context p :client)))

(defun free-tls-context (ctx)
  "Frees CTX (connections made from it keep what they need).  Can't fail."
  (let ((p (tls-context-pointer ctx)))
    (when p
      (setf (tls-context-pointer ctx) nil)
      (ffi:c-inline (p) (:pointer-void) :void "crow_tls_ctx_free((struct crow_tls_ctx *)#0)"
                    :one-liner t))
    nil))
