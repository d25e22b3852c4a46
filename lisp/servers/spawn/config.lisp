;;;; config.lisp — mmspawnd's keys, and the plan: the config checked and turned into what the
;;;; server needs (target, ids, rlimits, environment), every refusal as `file:line: message`.

(in-package :crow.spawn)

(eval-when (:compile-toplevel :load-toplevel :execute)
(defparameter +rlimits+
  '((:as :size) (:core :size) (:cpu :integer) (:data :size) (:fsize :size) (:locks :integer)
    (:memlock :size) (:msgqueue :size) (:nice :integer) (:nofile :integer) (:nproc :integer)
    (:rss :size) (:rtprio :integer) (:rttime :integer) (:sigpending :integer) (:stack :size))
  "Every RLIMIT_* resource mmspawnd sets, and its value type (CPU in seconds, RTTIME in
microseconds).")

(defun %rlimit-key (resource)
  (intern (format nil "RLIMIT-~a" resource) :keyword)))

(defun %umask-message (s)
  (unless (and (<= 1 (length s) 4) (every (lambda (c) (digit-char-p c 8)) s))
    (format nil "expected an octal mask like 022, got ~s" s)))

(defun %env-message (words)
  (let ((bad (find-if-not (lambda (w) (let ((eq (position #\= w)))
                                        (and eq (plusp eq))))
                          words)))
    (when bad (format nil "expected NAME=VALUE, got ~s" bad))))

(defun %absolute-message (s)
  (unless (and (plusp (length s)) (char= (char s 0) #\/))
    (format nil "expected an absolute path, got ~s" s)))

(defun %stderr-message (s)
  (unless (or (member s '("log" "null") :test #'string=)
              (and (plusp (length s)) (char= (char s 0) #\/)))
    (format nil "expected log, null or an absolute path, got ~s" s)))

(defmacro %define-spawn-keys ()
  `(define-config-keys *spawn-keys*
     (:include *common-keys*)
     (program :path :required t
              :doc "The program run per connection (a path inside the chroot when one is set).")
     (args :list :doc "Arguments after argv[0] (argv[0] is the program's file name).")
     (env :list :repeatable t :validator #'%env-message :meta "NAME=VALUE..."
          :doc "Environment entries the program gets (nothing else is inherited).")
     (protocol :enum :values '(:tcp :udp) :default "tcp"
               :doc "tcp: one program per connection; udp: inetd `wait' service.")
     (cwd :string :default "/" :validator #'%absolute-message
          :doc "Working directory of the program (inside the chroot).")
     (umask :string :default "022" :validator #'%umask-message :meta "OCTAL"
            :doc "File mode creation mask of the program.")
     (stderr :string :default "log" :validator #'%stderr-message :meta "log|null|PATH"
             :doc "The program's stderr: mmspawnd's own log stream, /dev/null, or a file.")
     (spare :integer :min 0 :max 1024 :default "4"
            :doc "Idle pre-forked children kept ready.")
     (max-spare :integer :min 1 :max 1024 :default "32"
                :doc "Idle children at most (the pool grows under bursts up to this).")
     (refusal :string :default "421 Service busy, try again later."
              :doc "Line written (with CRLF) to a connection refused by a limit.")
     (log-connections :boolean :default "yes" :doc "Log each connection and exit status.")
     (udp-respawn-limit :integer :min 1 :max 100000 :default "10"
                        :doc "udp: programs in a row that end within a second before the service pauses (1 s, doubling up to 60 s), as a program exiting without reading its datagram would be respawned in a loop.")
     (spawner :string :default "auto" :meta "auto|builtin|PATH"
              :doc "What clones the pool's children: crow-spawner found beside mmspawnd (auto), a copy of mmspawnd (builtin), or the crow-spawner at PATH.")
     ,@(loop for (r type) in +rlimits+
             collect `(,(%rlimit-key r) ,type :min 0
                       :doc ,(format nil "RLIMIT_~a of the program~a." r
                                     (case r (:cpu " (seconds)") (:rttime " (microseconds)")
                                       (t "")))))))

(%define-spawn-keys)

(defstruct (plan (:constructor %make-plan))
  "What mmspawnd runs, derived from a checked config."
  config program argv env protocol cwd umask stderr spare max-spare refusal log-connections
  listen rlimits chroot user uid gid groups max-connections max-per-address rate spawner
  (udp-respawn-limit 10) (log-target :stderr))

(defun %refuse (config key fmt &rest args)
  "Signals a config-error at KEY's line in CONFIG."
  (multiple-value-bind (file line) (config-source config key)
    (error 'config-error :file file :line line
                         :message (format nil "~(~a~): ~?" key fmt args))))

(defun check-target (path &key (owners (list 0)) (label path))
  "Returns NIL when PATH is fit to run as a service: an existing regular file, executable,
not writable by group or other, owned by one of OWNERS (uids).  Otherwise returns a message
saying why not (naming LABEL).  Can't fail."
  (let ((st (handler-case (stat path) (unix-error (e) e))))
    (if (typep st 'unix-error)
        (format nil "~s: ~a" label (strerror (unix-error-errno st)))
        (let ((mode (logand (stat-mode st) #o7777)))
          (cond ((not (eq (stat-type st) :regular)) (format nil "~s is not a regular file" label))
                ((zerop (logand mode #o111)) (format nil "~s is not executable (mode ~4,'0o)" label mode))
                ((logtest mode #o022)
                 (format nil "~s is writable by group or other (mode ~4,'0o)" label mode))
                ((not (member (stat-uid st) owners))
                 (format nil "~s is owned by uid ~d, not by root~@[ or the service user (uid ~d)~]"
                         label (stat-uid st) (second owners))))))))

(defun make-plan (config)
  "Returns the plan for CONFIG (read against *spawn-keys*), after the start checks: who runs
the program (root must name a user; only root may switch user or chroot), the target's
sanity (see check-target), the listen addresses.  Signals config-error (`file:line: message`)
for the first refusal."
  (flet ((v (k) (config-value config k)))
    (let* ((root (zerop (geteuid)))
           (user (v :user)) (group (v :group)) (chroot (v :chroot))
           (uid nil) (gid nil))
      (when (null (v :listen))
        (%refuse config :listen "at least one listen address is needed"))
      (when (v :listen-tls) (%refuse config :listen-tls "mmspawnd has no TLS listeners"))
      (when (and root (null user))
        (%refuse config :user "required when started as root (mmspawnd does not serve as root)"))
      (when user
        (multiple-value-bind (name u g) (getpwnam user)
          (unless name (%refuse config :user "no such user ~s" user))
          (when (zerop u) (%refuse config :user "~s is root: name an unprivileged user" user))
          (setf uid u gid g)))
      (when group
        (multiple-value-bind (name g) (getgrnam group)
          (unless name (%refuse config :group "no such group ~s" group))
          (setf gid g)))
      (unless root
        (when (and uid (/= uid (geteuid)))
          (%refuse config :user "switching to ~s needs root (running as uid ~d)" user (geteuid)))
        (when (and gid (/= gid (getegid)) (not (member gid (getgroups))))
          (%refuse config :group "switching to gid ~d needs root" gid))
        (when chroot (%refuse config :chroot "needs root (running as uid ~d)" (geteuid))))
      (let* ((program (v :program))
             (inside (if chroot
                         (concatenate 'string (string-right-trim "/" chroot) program)
                         program))
             (service-uid (or uid (geteuid)))
             (why (check-target inside :owners (remove-duplicates (list 0 service-uid))
                                       :label program)))
        (when why (%refuse config :program "~a; refusing to start" why))
        (when (and (eq (v :protocol) :udp)
                   (some (lambda (a) (eq (address-family a) :unix)) (v :listen)))
          (%refuse config :listen "udp services listen on IP addresses"))
        (%make-plan
         :config config :program program
         :argv (cons (let ((slash (position #\/ program :from-end t)))
                       (if slash (subseq program (1+ slash)) program))
                     (v :args))
         :env (apply #'append (v :env))
         :protocol (v :protocol) :cwd (v :cwd) :umask (parse-integer (v :umask) :radix 8)
         :stderr (v :stderr) :spare (v :spare) :max-spare (max (v :spare) (v :max-spare))
         :refusal (v :refusal) :log-connections (v :log-connections)
         :listen (v :listen)
         :rlimits (loop for (r) in +rlimits+
                        for value = (config-value config (%rlimit-key r))
                        when value collect (list r value value))
         :chroot chroot :user user :uid uid :gid gid :groups (and gid (list gid))
         :max-connections (v :max-connections) :max-per-address (v :max-per-address)
         :rate (v :rate-per-address) :log-target (v :log)
         :udp-respawn-limit (v :udp-respawn-limit)
         :spawner (%spawner-path config (v :spawner)))))))

(defun %spawner-path (config value)
  "Returns the crow-spawner path for VALUE of the spawner key, or NIL for the builtin one."
  (flet ((usable (path) (and (ignore-errors (eq (stat-type (stat path)) :regular)) path)))
    (cond ((string= value "builtin") nil)
          ((string= value "auto")
           (let ((exe (ignore-errors (namestring (truename "/proc/self/exe")))))
             (and exe (usable (concatenate 'string (subseq exe 0 (1+ (position #\/ exe :from-end t)))
                                           "crow-spawner")))))
          ((char/= (char value 0) #\/)
           (%refuse config :spawner "expected auto, builtin or an absolute path, got ~s" value))
          ((usable value))
          (t (%refuse config :spawner "~s is not a file" value)))))
