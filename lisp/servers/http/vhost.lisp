;;;; vhost.lisp — virtual hosts (names, aliases, root, charset, mode, POST limit, listing,
;;;; index files) and the routes that map path prefixes to handler symbols.

(in-package :crow.http)

(defstruct (route (:constructor %make-route (prefix symbol methods exact)))
  "PREFIX (a decoded path) -> SYMBOL, a handler function name looked up on every request;
METHODS a list of method keywords (NIL: any); EXACT: the path must equal PREFIX."
  prefix symbol methods exact)

(defstruct (vhost (:constructor %make-vhost))
  "A virtual host: names matched case-insensitively against Host (port dropped)."
  (name "default") (aliases '()) (root nil) (real-root nil) (charset "utf-8")
  (mode :static+dynamic) (post-max (* 4 1024 1024)) (routes '()) (listing nil)
  (index '("index.html")) (html-type "text/html; charset=utf-8") (default nil)
  (embedded nil))

(define-slot-readers route %rt prefix symbol methods exact)
(define-slot-readers vhost %vh name aliases root real-root charset mode post-max routes listing
  index html-type default)

(let ((r (%make-route "/p" 's '(:get) t))
      (v (%make-vhost :name "n" :aliases '("a") :root "r" :real-root "rr" :charset "c"
                      :mode :dynamic :post-max 5 :routes '(1) :listing :l :index '("i")
                      :html-type "h" :default :d)))
  (unless (and (check-%rt-readers r) (check-%vh-readers v))
    (error "crow.http: the route or vhost slot readers do not match the structs")))

(defvar *vhosts* (make-hash-table :test 'equalp)
  "Host name or alias (any case) -> vhost.")
(defvar *default-vhost* nil "The vhost for requests whose Host matches no name.")
(defvar *last-host* (cons "" nil)
  "(NAME . VHOST) of the last lookup: most connections repeat their Host.")


(defun make-vhost (&rest args &key charset root &allow-other-keys)
  "Returns a vhost (not yet registered; see register-vhost).  ROOT is resolved with realpath."
  (let ((v (apply #'%make-vhost :allow-other-keys t args)))
    (when charset (setf (vhost-html-type v) (format nil "text/html; charset=~a" charset)))
    (when root
      (setf (vhost-real-root v) (let ((r (realpath root))) (and r (string-right-trim "/" r)))))
    v))

(defun register-vhost (v)
  "Makes V answer for its name and aliases (and for unknown hosts when it is the default or
the first).  Returns V."
  (dolist (n (cons (vhost-name v) (vhost-aliases v)))
    (setf (gethash n *vhosts*) v))
  (when (or (vhost-default v) (null *default-vhost*))
    (setf *default-vhost* v))
  (setf *last-host* (cons "" nil))
  (fcache-invalidate)
  v)

(defun clear-vhosts ()
  "Forgets every vhost.  Returns NIL."
  (clrhash *vhosts*)
  (setf *default-vhost* nil *last-host* (cons "" nil))
  (fcache-invalidate)
  nil)

(defun find-vhost (host)
  "Returns the vhost for the Host value HOST (port and a trailing dot ignored, any case), or
the default vhost."
  (if (or (null host) (zerop (hash-table-count *vhosts*)))
      *default-vhost*
      (let* ((end (length host))
             (colon (position #\: host :from-end t)))
        (when (and colon (not (position #\] host :start colon)))
          (setf end colon))
        (when (and (plusp end) (char= (char host (1- end)) #\.))
          (decf end))
        (or (gethash (if (= end (length host)) host (subseq host 0 end)) *vhosts*)
            *default-vhost*))))

(defun find-vhost-name (host &optional (end (length host)))
  "Returns the vhost named HOST[0,END) (a host name without port, any case), or the default
vhost.  The last Host value seen (port included) is remembered with its vhost."
  (declare (string host) (fixnum end))
  (let ((last *last-host*))
    (if (and (cdr last) (string= (the string (car last)) host))
        (cdr last)
        (let ((v (%find-vhost-name (if (= end (length host)) host (subseq host 0 end)))))
          (setf *last-host* (cons host v))
          v))))

(defun-inline find-vhost-name* (host end)
  "find-vhost-name open-coded for the request path: the last Host string seen again (the
request's strings are reused when their bytes repeat, so usually the very same string) is
answered without a call."
  (let ((last *last-host*))
    (declare (cons last))
    (if (and (eq (car last) host) (cdr last))
        (cdr last)
        (find-vhost-name host end))))

(defun %find-vhost-name (name)
  (or (gethash name *vhosts*)
      (and (plusp (length name)) (char= (char name (1- (length name))) #\.)
           (gethash (subseq name 0 (1- (length name))) *vhosts*))
      *default-vhost*))

(defun add-route (vhost-name prefix symbol &key methods exact)
  "Routes requests to VHOST-NAME (a name, or NIL for the default vhost) whose path starts
with PREFIX (equals it with EXACT) to the handler SYMBOL, called with the request; METHODS
limits the methods (others get 405).  A route for the same prefix is replaced.  Returns the
route.  Signals an error for an unknown vhost."
  (let ((v (if vhost-name (gethash vhost-name *vhosts*) *default-vhost*))
        (r (%make-route prefix symbol methods exact)))
    (unless v (error "crow.http: no vhost ~a" vhost-name))
    (setf (vhost-routes v)
          (sort (cons r (remove prefix (vhost-routes v) :key #'route-prefix :test #'string=))
                #'> :key (lambda (x) (length (route-prefix x)))))
    (fcache-invalidate)                 ; a file answer the C loop replays may be this route's now
    r))

(declaim (inline %prefix-p))
(defun %prefix-p (prefix string)
  "True when STRING starts with PREFIX."
  (declare (string prefix string) (optimize (speed 3) (safety 0)))
  (let ((n (length prefix)))
    (and (<= n (length string))
         (loop for i of-type fixnum from 0 below n
               always (char= (char prefix i) (char string i))))))

(defun find-route (vhost path)
  "Returns the longest route of VHOST matching PATH, or NIL."
  (declare (string path))
  (dolist (r (%vh-routes vhost))
    (let* ((p (%rt-prefix r)) (n (length p)))
      (declare (string p) (fixnum n))
      (when (if (%rt-exact r)
                (and (= n (length path)) (%prefix-p p path))
                (and (%prefix-p p path)
                     (or (= n (length path)) (char= (char p (1- n)) #\/)
                         (char= (char path n) #\/))))
        (return r)))))

(defmacro define-handler (name (req) &body body)
  "Defines the handler NAME, a function of the request REQ.  Handlers are called through
their symbol, so redefining one (from SLIME) changes the very next response."
  `(defun ,name (,req) ,@body))

(defvar *last-route* (vector nil nil nil)
  "#(ROUTES PATH ROUTE) of the last route lookup, ROUTES the vhost's route list it was made
in: add-route makes a new list, so a change of routes is never answered from here.")
(declaim (simple-vector *last-route*))

(defun-inline find-route* (vhost path)
  "find-route for the request path: the last lookup again (the same route list and path) is
answered without searching."
  (let ((c *last-route*) (routes (%vh-routes vhost)))
    (declare (simple-vector c))
    (if (and (eq (svref c 0) routes)
             (let ((p (svref c 1))) (or (eq p path) (and p (string= (the string p) path)))))
        (svref c 2)
        (let ((r (find-route vhost path)))
          (setf *last-route* (vector routes path r))
          r))))
