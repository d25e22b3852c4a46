;;;; listen.lisp — the listeners a config names: TCP over IPv4/IPv6, AF_UNIX stream, UDP, and
;;;; TLS addresses, opened by the (privileged) parent before it forks its serving children.
;;;;
;;;; One descriptor per address, shared by every serving process and worker thread: an event
;;;; worker adds it to its loop with EPOLLEXCLUSIVE, so one waiter wakes per connection.  (Not
;;;; SO_REUSEPORT: the parent binds once before forking and dropping privileges, and a process
;;;; started after the drop could not bind a privileged port again.)  On SIGHUP the parent
;;;; keeps the descriptors of addresses still named and opens only the new ones, so no
;;;; connection waiting in a kept listener's queue is lost.

(in-package :crow.server)

(defstruct (listener (:constructor %make-listener))
  "An open listening socket: FD; ADDRESS (an address struct; the bound port filled in when
the config said port 0); KIND :stream or :datagram; TLS true for a listen-tls address;
FRAMING the event loop's mode for it (:raw, :line or :http); KEY the config key that named
it (:listen, :listen-tls, :listen-udp); HANDLER and DATA for the server's own use (a
per-listener handler, a service)."
  fd address (kind :stream) tls (framing :raw) key handler data)

(defmethod print-object ((l listener) stream)
  (print-unreadable-object (l stream :type t)
    (format stream "~a~:[~; tls~]~:[~; udp~] fd ~a" (address-string (listener-address l))
            (listener-tls l) (eq (listener-kind l) :datagram) (listener-fd l))))

(defun listener-family (listener)
  "Returns LISTENER's address family: :inet, :inet6, :unix (or :name for a host name).  Can't
fail."
  (address-family (listener-address listener)))

(defun listener-port (listener)
  "Returns LISTENER's port (NIL for AF_UNIX).  Can't fail."
  (address-port (listener-address listener)))

(defun listener-description (listener)
  "Returns LISTENER as a log would name it: `tcp 127.0.0.1:7`, `tls [::1]:443`, `udp ...`,
`unix /path`.  Can't fail."
  (format nil "~a ~a"
          (cond ((eq (listener-kind listener) :datagram) "udp")
                ((listener-tls listener) "tls")
                ((eq (listener-family listener) :unix) "unix")
                (t "tcp"))
          (if (eq (listener-family listener) :unix)
              (address-path (listener-address listener))
              (address-string (listener-address listener)))))

(defun %live-unix-socket-p (path)
  "True when something accepts connections on the AF_UNIX socket PATH."
  (handler-case (progn (%close (unix-connect path)) t)
    (unix-error () nil)))

(defun %bound-address (address fd)
  "Returns ADDRESS with the port FD is bound to (differs when ADDRESS said port 0)."
  (if (and (member (address-family address) '(:inet :inet6 :name))
           (eql (address-port address) 0))
      (%make-address (address-family address) (address-host address)
                     (nth-value 1 (local-address fd)) nil)
      address))

(defun open-listener (address &key (kind :stream) tls (framing :raw) key (backlog 511)
                                   (unix-mode #o666))
  "Opens a non-blocking, close-on-exec listening socket on ADDRESS (an address struct from the
config): TCP for :inet, :inet6 (V6ONLY) and :name, an AF_UNIX stream socket for :unix (a
stale socket file is removed; a live one is EADDRINUSE; the file gets UNIX-MODE), a bound UDP
socket when KIND is :datagram.  Returns a listener.  Signals unix-error."
  (let ((fd (ecase kind
              (:stream
               (if (eq (address-family address) :unix)
                   (let ((path (address-path address)))
                     (when (and (file-exists-p path) (%live-unix-socket-p path))
                       (unix-error +eaddrinuse+ "bind" path))
                     (let ((fd (unix-listen path :backlog backlog :remove-stale t)))
                       (handler-bind ((error (lambda (e) (declare (ignore e)) (%close fd))))
                         (chmod path unix-mode)
                         (set-nonblocking fd))
                       fd))
                   (tcp-listen (address-host address) (address-port address)
                               :backlog backlog :nonblocking t)))
              (:datagram
               (when (eq (address-family address) :unix)
                 (error 'simple-crow-error :format-control "~a: UDP needs HOST:PORT"
                                           :format-arguments (list (address-string address))))
               (let ((fd (udp-socket (address-host address) (address-port address))))
                 (set-nonblocking fd)
                 fd)))))
    (%make-listener :fd fd :address (%bound-address address fd) :kind kind :tls tls
                    :framing framing :key key)))

(defun close-listener (listener &key unlink)
  "Closes LISTENER's descriptor (once); with UNLINK also removes an AF_UNIX socket's file.
Returns NIL.  Can't fail."
  (let ((fd (listener-fd listener)))
    (when fd
      (setf (listener-fd listener) nil)
      (ignore-errors (%close fd))
      (when (and unlink (eq (listener-family listener) :unix))
        (ignore-errors (unlink (address-path (listener-address listener))))))
    nil))

(defparameter *listen-keys*
  '((:listen :stream nil) (:listen-tls :stream t) (:listen-udp :datagram nil))
  "The config keys that name listeners: (KEY KIND TLS).")

(defun %config-entries (config key)
  "Returns KEY's entries in CONFIG as (VALUE FILE . LINE), in file order."
  (reverse (gethash (%key-name key) (config-entries config))))

(defun listen-specs (config &key (keys '(:listen :listen-tls :listen-udp)) default)
  "Returns what CONFIG asks to listen on, as a list of (ADDRESS KIND TLS KEY FILE LINE), for
the listen KEYS present in CONFIG's table.  When none is set, DEFAULT (an address string like
\"127.0.0.1:8080\", or NIL) stands for one plain listen.  Signals config-error for a bad
DEFAULT."
  (let ((specs '()))
    (dolist (k keys)
      (let ((entry (assoc k *listen-keys*)))
        (when (and entry (find (%key-name k) (config-keys config) :key #'key-spec-name))
          (loop for (address file . line) in (%config-entries config k)
                do (push (list address (second entry) (third entry) k file line) specs)))))
    (when (and (null specs) default)
      (let ((a (first (config-value (config-from-string (format nil "listen ~a" default)
                                                        (list (make-key-spec :listen :address
                                                                             :repeatable t))
                                                        :name "default")
                                    :listen))))
        (push (list a :stream nil :listen nil nil) specs)))
    (nreverse specs)))

(defun %spec-match-p (spec listener)
  (destructuring-bind (address kind tls &rest rest) spec
    (declare (ignore rest))
    (and (listener-fd listener)
         (eq kind (listener-kind listener))
         (eq (and tls t) (and (listener-tls listener) t))
         (not (eql (address-port address) 0))
         (string= (address-string address) (address-string (listener-address listener))))))

(defun open-listeners (config &key (keys '(:listen :listen-tls :listen-udp)) default
                                   (framing :raw) reuse (unix-mode #o666))
  "Opens every listener CONFIG names under KEYS (see listen-specs; DEFAULT when none), framed
in FRAMING.  A listener of REUSE (the previous generation's, on SIGHUP) whose address, kind
and TLS flag are still named is kept instead of opened again.  Returns (values LISTENERS
UNUSED): the listeners in config order, and those of REUSE no longer named (the caller closes
them once nothing serves them).  On any failure closes what it opened and signals one
config-error `file:line: listen ADDR: why` for each address that could not be opened."
  (let ((opened '()) (result '()) (errors '()) (kept '()))
    (dolist (spec (listen-specs config :keys keys :default default))
      (destructuring-bind (address kind tls key file line) spec
        (let ((old (find-if (lambda (l) (%spec-match-p spec l)) reuse)))
          (if (and old (not (member old kept)))
              (progn (push old kept) (push old result))
              (handler-case
                  (let ((l (open-listener address :kind kind :tls tls :framing framing :key key
                                                  :unix-mode unix-mode)))
                    (push l opened) (push l result))
                (crow-error (e)
                  (push (make-condition 'config-error :file (or file "default") :line line
                                                      :message (format nil "~(~a~) ~a: ~a" key
                                                                       (address-string address) e))
                        errors)))))))
    (when errors
      (dolist (l opened) (close-listener l))
      (let ((errors (nreverse errors)))
        (error (make-condition 'config-error :file (config-error-file (first errors))
                                             :line (config-error-line (first errors))
                                             :message (config-error-message (first errors))
                                             :all errors))))
    (values (nreverse result)
            (remove-if (lambda (l) (member l kept)) reuse))))
