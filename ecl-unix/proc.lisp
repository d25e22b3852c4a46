;;;; proc.lisp — processes and credentials: fork, execve, waitpid, spawn, kill, ids, users
;;;; and groups, privilege drop, chroot, chdir, umask, rlimits.

(in-package :crow.unix)

(ffi:clines "#include <sys/types.h>" "#include <sys/wait.h>" "#include <sys/resource.h>"
            "#include <sys/stat.h>" "#include <signal.h>" "#include <unistd.h>"
            "#include <errno.h>" "#include <pwd.h>" "#include <grp.h>" "#include <string.h>"
            "#include <stdlib.h>" "#include <fcntl.h>" "#include <limits.h>" "#include <sys/syscall.h>")

(defmacro define-simple-call (name syscall doc c-expr)
  `(defun ,name ()
     ,doc
     (check-syscall (,syscall)
       (ffi:c-inline () () (values :int :int)
         ,(format nil "{ int r = ~a; @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }" c-expr)))))

(defun getpid () "Returns this process's id.  Can't fail."
  (ffi:c-inline () () :int "getpid()" :one-liner t))
(defun getppid () "Returns the parent's process id.  Can't fail."
  (ffi:c-inline () () :int "getppid()" :one-liner t))
(defun getuid () "Returns the real user id.  Can't fail."
  (ffi:c-inline () () :unsigned-int "getuid()" :one-liner t))
(defun geteuid () "Returns the effective user id.  Can't fail."
  (ffi:c-inline () () :unsigned-int "geteuid()" :one-liner t))
(defun getgid () "Returns the real group id.  Can't fail."
  (ffi:c-inline () () :unsigned-int "getgid()" :one-liner t))
(defun getegid () "Returns the effective group id.  Can't fail."
  (ffi:c-inline () () :unsigned-int "getegid()" :one-liner t))

(define-simple-call setsid "setsid"
  "Starts a new session with this process as leader.  Returns the session id.  Signals
unix-error (EPERM when already a group leader)." "setsid()")

(defun getgroups ()
  "Returns the list of supplementary group ids.  Signals unix-error."
  (let ((v (make-octets (* 4 65536))))
    (let ((n (check-syscall ("getgroups")
               (ffi:c-inline (v) (:object) (values :int :int)
                 "{ int r = getgroups(65536, (gid_t *)#0->vector.self.b8); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))))
      (loop for i below n
            collect (ffi:c-inline (v i) (:object :int) :unsigned-int
                      "((gid_t *)#0->vector.self.b8)[#1]" :one-liner t)))))

(defun fork ()
  "Forks.  Returns 0 in the child, the child's pid in the parent.  Under ECL, fork before
starting threads of your own; the child should exec or stay single-threaded and simple.
Signals unix-error."
  (check-syscall ("fork")
    (ffi:c-inline () () (values :int :int)
      "{ int r = fork(); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")))

(defun exit-process (status)
  "Ends the process at once with STATUS (_exit: no Lisp unwinding, no atexit).  Does not
return."
  (ffi:c-inline (status) (:int) :void "_exit(#0)" :one-liner t))

(defun %string-vector (strings)
  "Returns a simple-vector of NUL-terminated octet vectors, one per string."
  (map 'simple-vector #'string-to-c strings))

(defun environment-strings (env)
  (mapcar (lambda (e) (if (consp e) (format nil "~a=~a" (car e) (cdr e)) e)) env))

(defun execve (program args &optional (env (ext:environ)))
  "Replaces this process with PROGRAM (a path) run with ARGS (argv, including argv[0]) and
ENV (a list of \"NAME=VALUE\" strings or (NAME . VALUE) conses).  Returns only on failure,
by signalling unix-error (ENOENT, EACCES...) with the program."
  (let ((p (string-to-c program))
        (a (%string-vector args))
        (e (%string-vector (environment-strings env))))
    (check-syscall ("execve" program)
      (ffi:c-inline (p a e) (:object :object :object) (values :int :int)
        "{ cl_index na = #1->vector.dim, ne = #2->vector.dim, i;
           char **argv = (char **)ecl_alloc((na + 1) * sizeof(char *));
           char **envp = (char **)ecl_alloc((ne + 1) * sizeof(char *));
           for (i = 0; i < na; i++) argv[i] = (char *)#1->vector.self.t[i]->vector.self.b8;
           for (i = 0; i < ne; i++) envp[i] = (char *)#2->vector.self.t[i]->vector.self.b8;
           argv[na] = NULL; envp[ne] = NULL;
           execve((char *)#0->vector.self.b8, argv, envp);
           @(return 0) = -1; @(return 1) = errno; }"))))

(defun %rlimit-vector (rlimits)
  "Packs ((RESOURCE SOFT HARD) ...) as int64 triples in an octet vector."
  (let ((v (make-octets (* 24 (length rlimits)))))
    (loop for (res soft hard) in rlimits for i from 0
          for r = (rlimit-resource res)
          for s = (if (eq soft :infinity) -1 soft)
          for h = (cond ((null hard) s) ((eq hard :infinity) -1) (t hard))
          do (ffi:c-inline (v i r s h) (:object :int :int64-t :int64-t :int64-t) :void
               "{ int64_t *t = (int64_t *)#0->vector.self.b8 + 3 * #1; t[0] = #2; t[1] = #3; t[2] = #4; }"))
    v))

(defun %gid-vector (gids)
  (let ((v (make-octets (* 4 (max 1 (length gids))))))
    (loop for g in gids for i from 0
          do (ffi:c-inline (v i g) (:object :int :unsigned-int) :void
               "((gid_t *)#0->vector.self.b8)[#1] = #2" :one-liner t))
    v))

(defun spawn (program args &key (env (ext:environ)) (stdin nil) (stdout nil) (stderr nil)
                                directory rlimits chroot uid gid (groups nil groups-p) umask)
  "Starts PROGRAM with ARGS (argv including argv[0]) and ENV in a child process made by
fork+execve entirely in C (safe with threads running).  In the child, in this order:
STDIN/STDOUT/STDERR (descriptors, NIL keeps ours) become 0/1/2; RLIMITS, a list of
(RESOURCE SOFT [HARD]) like (:nofile 64), are set; CHROOT is entered; GROUPS (default: just
GID when GID is given), GID and UID are set (setgroups, setresgid, setresuid — the child
refuses to exec if it could regain root); UMASK is set; DIRECTORY becomes the working
directory.  Returns the child's pid.  Signals unix-error naming the step that failed (its
errno is reported back through a close-on-exec pipe)."
  (let* ((p (string-to-c program))
         (a (%string-vector args))
         (e (%string-vector (environment-strings env)))
         (d (if directory (string-to-c directory) nil))
         (root (if chroot (string-to-c chroot) nil))
         (rl (%rlimit-vector rlimits))
         (nrl (length rlimits))
         (gl (if groups-p groups (and gid (list gid))))
         (gv (%gid-vector gl))
         (ngroups (if (or groups-p gid) (length gl) -1))
         (ids (vector (or uid -1) (or gid -1) (or umask -1) ngroups nrl))
         (in (or stdin -1)) (out (or stdout -1)) (err (or stderr -1)))
    (multiple-value-bind (pid errno syscall)
        (ffi:c-inline (p a e d in out err root rl gv ids)
                      (:object :object :object :object :int :int :int :object :object :object :object)
                      (values :int :int :int)
          "{ cl_index na = #1->vector.dim, ne = #2->vector.dim, i;
             char **argv = (char **)ecl_alloc((na + 1) * sizeof(char *));
             char **envp = (char **)ecl_alloc((ne + 1) * sizeof(char *));
             for (i = 0; i < na; i++) argv[i] = (char *)#1->vector.self.t[i]->vector.self.b8;
             for (i = 0; i < ne; i++) envp[i] = (char *)#2->vector.self.t[i]->vector.self.b8;
             argv[na] = NULL; envp[ne] = NULL;
             const char *dir = #3 == ECL_NIL ? NULL : (char *)#3->vector.self.b8;
             const char *prog = (char *)#0->vector.self.b8;
             int fds[3] = { #4, #5, #6 }, rep[2], e = 0, where = 0;
             pid_t pid = -1;
             if (pipe2(rep, O_CLOEXEC) < 0) { e = errno; }
             else {
               pid = fork();
               if (pid == 0) {
                 int k, r, w;
                 sigset_t all; sigemptyset(&all); sigprocmask(SIG_SETMASK, &all, NULL);
                 for (k = 0; k < 3; k++)
                   if (fds[k] >= 0 && fds[k] != k) {
                     if (dup2(fds[k], k) < 0) { w = 1; goto fail; }
                   } else if (fds[k] == k) fcntl(k, F_SETFD, 0);
                 { int64_t *rl = (int64_t *)#8->vector.self.b8; int nrl = ecl_fixnum(#a->vector.self.t[4]);
                   for (k = 0; k < nrl; k++) { struct rlimit l;
                     l.rlim_cur = rl[3*k+1] < 0 ? RLIM_INFINITY : (rlim_t)rl[3*k+1];
                     l.rlim_max = rl[3*k+2] < 0 ? RLIM_INFINITY : (rlim_t)rl[3*k+2];
                     if (setrlimit((int)rl[3*k], &l) < 0) { w = 4; goto fail; } } }
                 if (#7 != ECL_NIL) {
                   if (chroot((char *)#7->vector.self.b8) < 0) { w = 5; goto fail; }
                   if (chdir(\"/\") < 0) { w = 5; goto fail; } }
                 { long u = ecl_fixnum(#a->vector.self.t[0]), g = ecl_fixnum(#a->vector.self.t[1]);
                   long m = ecl_fixnum(#a->vector.self.t[2]), ng = ecl_fixnum(#a->vector.self.t[3]);
                   if (ng >= 0 && setgroups((size_t)ng, (gid_t *)#9->vector.self.b8) < 0) { w = 6; goto fail; }
                   if (g >= 0 && setresgid((gid_t)g, (gid_t)g, (gid_t)g) < 0) { w = 7; goto fail; }
                   if (u >= 0 && setresuid((uid_t)u, (uid_t)u, (uid_t)u) < 0) { w = 8; goto fail; }
                   if (u > 0 && (setuid(0) == 0 || geteuid() == 0)) { errno = EPERM; w = 8; goto fail; }
                   if (m >= 0) umask((mode_t)m); }
                 if (dir && chdir(dir) < 0) { w = 2; goto fail; }
                 execve(prog, argv, envp);
                 w = 3;
               fail:
                 r = errno;
                 { int msg[2] = { r, w }; ssize_t x = write(rep[1], msg, sizeof msg); (void)x; }
                 _exit(127);
               }
               if (pid < 0) e = errno;
               close(rep[1]);
               if (pid > 0) {
                 int msg[2]; ssize_t n;
                 do n = read(rep[0], msg, sizeof msg); while (n < 0 && errno == EINTR);
                 if (n == (ssize_t)sizeof msg) {
                   int st; e = msg[0]; where = msg[1];
                   while (waitpid(pid, &st, 0) < 0 && errno == EINTR) ;
                   pid = -1;
                 }
               }
               close(rep[0]);
             }
             @(return 0) = pid; @(return 1) = e; @(return 2) = where; }")
      (when (minusp pid)
        (unix-error errno (case syscall (1 "dup2") (2 "chdir") (3 "execve") (4 "setrlimit")
                            (5 "chroot") (6 "setgroups") (7 "setresgid") (8 "setresuid")
                            (t "fork"))
                    (case syscall (2 directory) (5 chroot) (0 nil) (t program))))
      pid)))

(defun waitpid (pid &key nohang)
  "Waits for child PID (-1: any child).  Returns (values PID HOW CODE): HOW is :exited (CODE
the exit status), :signaled (CODE the signal number) or :stopped; with NOHANG returns NIL when
no child has changed state.  Signals unix-error (ECHILD...)."
  (multiple-value-bind (r status errno)
      (ffi:c-inline (pid nohang) (:int :bool) (values :int :int :int)
        "{ int st = 0, r; do r = waitpid(#0, &st, #1 ? WNOHANG : 0); while (r < 0 && errno == EINTR);
           @(return 0) = r; @(return 1) = st; @(return 2) = r < 0 ? errno : 0; }")
    (cond ((minusp r) (unix-error errno "waitpid"))
          ((zerop r) nil)
          (t (multiple-value-bind (how code)
                 (ffi:c-inline (status) (:int) (values :int :int)
                   "{ int s = #0;
                      if (WIFEXITED(s)) { @(return 0) = 0; @(return 1) = WEXITSTATUS(s); }
                      else if (WIFSIGNALED(s)) { @(return 0) = 1; @(return 1) = WTERMSIG(s); }
                      else { @(return 0) = 2; @(return 1) = WIFSTOPPED(s) ? WSTOPSIG(s) : 0; } }")
               (values r (case how (0 :exited) (1 :signaled) (t :stopped)) code))))))

(defun run-program (program args &rest spawn-keys)
  "Runs PROGRAM with ARGS (not including argv[0]) to completion; SPAWN-KEYS are spawn's
keywords.  Returns (values HOW CODE) as waitpid does.  Signals unix-error when it cannot be
started."
  (let ((pid (apply #'spawn program (cons program args) spawn-keys)))
    (multiple-value-bind (p how code) (waitpid pid)
      (declare (ignore p))
      (values how code))))

(defun kill (pid signal)
  "Sends SIGNAL (a number, or a keyword like :term) to PID.  Signals unix-error (ESRCH...)."
  (let ((sig (if (integerp signal) signal (signal-number signal))))
    (check-syscall ("kill")
      (ffi:c-inline (pid sig) (:int :int) (values :int :int)
        "{ int r = kill(#0, #1); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))
    nil))

(defun %passwd-call (name-or-id group)
  "Returns (values NAME ID GID DIR SHELL) or NIL when not found; errno as last value."
  (let ((c (if (stringp name-or-id) (string-to-c name-or-id) nil))
        (id (if (integerp name-or-id) name-or-id -1)))
    (ffi:c-inline (c id group) (:object :int :bool) (values :object :int :int :object :object :int)
      "{ char buf[16384]; int r;
         cl_object name = ECL_NIL, dir = ECL_NIL, shell = ECL_NIL; int uid = -1, gid = -1;
         if (#2) { struct group g, *res = NULL;
           r = #0 != ECL_NIL ? getgrnam_r((char *)#0->vector.self.b8, &g, buf, sizeof buf, &res)
                             : getgrgid_r((gid_t)#1, &g, buf, sizeof buf, &res);
           if (res) { name = ecl_make_simple_base_string(g.gr_name, -1); uid = gid = (int)g.gr_gid; } }
         else { struct passwd p, *res = NULL;
           r = #0 != ECL_NIL ? getpwnam_r((char *)#0->vector.self.b8, &p, buf, sizeof buf, &res)
                             : getpwuid_r((uid_t)#1, &p, buf, sizeof buf, &res);
           if (res) { name = ecl_make_simple_base_string(p.pw_name, -1); uid = (int)p.pw_uid;
                      gid = (int)p.pw_gid; dir = ecl_make_simple_base_string(p.pw_dir, -1);
                      shell = ecl_make_simple_base_string(p.pw_shell, -1); } }
         @(return 0) = name; @(return 1) = uid; @(return 2) = gid; @(return 3) = dir;
         @(return 4) = shell; @(return 5) = r; }")))

(defun getpwnam (name)
  "Returns (values NAME UID GID HOME SHELL) for user NAME (a string, or a uid), or NIL when
there is no such user.  Signals unix-error if the lookup itself fails."
  (multiple-value-bind (n uid gid dir shell err) (%passwd-call name nil)
    (cond (n (values n uid gid dir shell))
          ((member err (list 0 +enoent+ +esrch+ +ebadf+ +eperm+)) nil)
          (t (unix-error err "getpwnam" (princ-to-string name))))))

(defun getgrnam (name)
  "Returns (values NAME GID) for group NAME (a string, or a gid), or NIL when there is no such
group.  Signals unix-error if the lookup itself fails."
  (multiple-value-bind (n gid x y z err) (%passwd-call name t)
    (declare (ignore x y z))
    (cond (n (values n gid))
          ((member err (list 0 +enoent+ +esrch+ +ebadf+ +eperm+)) nil)
          (t (unix-error err "getgrnam" (princ-to-string name))))))

(defun setgroups (gids)
  "Sets the supplementary groups to GIDS (a list).  Signals unix-error (EPERM)."
  (let ((v (make-octets (* 4 (max 1 (length gids)))))
        (n (length gids)))
    (loop for g in gids for i from 0
          do (ffi:c-inline (v i g) (:object :int :unsigned-int) :void
               "((gid_t *)#0->vector.self.b8)[#1] = #2" :one-liner t))
    (check-syscall ("setgroups")
      (ffi:c-inline (v n) (:object :int) (values :int :int)
        "{ int r = setgroups((size_t)#1, (gid_t *)#0->vector.self.b8); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))
    nil))

(defun initgroups (user gid)
  "Sets the supplementary groups from the group database for USER plus GID.  Signals
unix-error."
  (let ((c (string-to-c user)))
    (check-syscall ("initgroups" user)
      (ffi:c-inline (c gid) (:object :unsigned-int) (values :int :int)
        "{ int r = initgroups((char *)#0->vector.self.b8, #1); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))
    nil))

(defun setresgid (rgid egid sgid)
  "Sets the real, effective and saved group ids (-1 leaves one unchanged).  Signals unix-error."
  (check-syscall ("setresgid")
    (ffi:c-inline (rgid egid sgid) (:int :int :int) (values :int :int)
      "{ int r = setresgid(#0, #1, #2); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))
  nil)

(defun setresuid (ruid euid suid)
  "Sets the real, effective and saved user ids (-1 leaves one unchanged).  Signals unix-error."
  (check-syscall ("setresuid")
    (ffi:c-inline (ruid euid suid) (:int :int :int) (values :int :int)
      "{ int r = setresuid(#0, #1, #2); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))
  nil)

(defmacro define-path-proc-call (name syscall doc c-call)
  `(defun ,name (path)
     ,doc
     (let ((c (string-to-c path)))
       (check-syscall (,syscall path)
         (ffi:c-inline (c) (:object) (values :int :int)
           ,(format nil "{ int r = ~a; @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }" c-call)))
       nil)))

(define-path-proc-call chroot "chroot"
  "Makes PATH the root directory (then chdir to it yourself).  Signals unix-error (EPERM)."
  "chroot((char *)#0->vector.self.b8)")
(define-path-proc-call chdir "chdir" "Makes PATH the working directory.  Signals unix-error."
  "chdir((char *)#0->vector.self.b8)")

(defun getcwd ()
  "Returns the working directory as a string.  Signals unix-error."
  (multiple-value-bind (s errno)
      (ffi:c-inline () () (values :object :int)
        "{ char buf[PATH_MAX]; char *r = getcwd(buf, sizeof buf);
           @(return 0) = r ? ecl_make_simple_base_string(buf, -1) : ECL_NIL; @(return 1) = r ? 0 : errno; }")
    (or s (unix-error errno "getcwd"))))

(defun umask (mask)
  "Sets the file mode creation mask to MASK and returns the previous one.  Can't fail."
  (ffi:c-inline (mask) (:int) :int "(int)umask((mode_t)#0)" :one-liner t))

(define-keyword-map rlimit-resource "Returns the RLIMIT_ constant for a keyword."
  (:as "RLIMIT_AS") (:core "RLIMIT_CORE") (:cpu "RLIMIT_CPU") (:data "RLIMIT_DATA")
  (:fsize "RLIMIT_FSIZE") (:locks "RLIMIT_LOCKS") (:memlock "RLIMIT_MEMLOCK")
  (:msgqueue "RLIMIT_MSGQUEUE") (:nice "RLIMIT_NICE") (:nofile "RLIMIT_NOFILE")
  (:nproc "RLIMIT_NPROC") (:rss "RLIMIT_RSS") (:rtprio "RLIMIT_RTPRIO")
  (:rttime "RLIMIT_RTTIME") (:sigpending "RLIMIT_SIGPENDING") (:stack "RLIMIT_STACK"))

(defun getrlimit (resource)
  "Returns (values SOFT HARD) for RESOURCE (:nofile, :as, :cpu, ... every RLIMIT_*); :infinity
stands for RLIM_INFINITY.  Signals unix-error."
  (let ((r (rlimit-resource resource)))
    (multiple-value-bind (soft hard soft-inf hard-inf ret errno)
        (ffi:c-inline (r) (:int) (values :uint64-t :uint64-t :bool :bool :int :int)
          "{ struct rlimit l; int r = getrlimit(#0, &l);
             @(return 0) = l.rlim_cur; @(return 1) = l.rlim_max;
             @(return 2) = l.rlim_cur == RLIM_INFINITY; @(return 3) = l.rlim_max == RLIM_INFINITY;
             @(return 4) = r; @(return 5) = r < 0 ? errno : 0; }")
      (when (minusp ret) (unix-error errno "getrlimit" (princ-to-string resource)))
      (values (if soft-inf :infinity soft) (if hard-inf :infinity hard)))))

(defun setrlimit (resource soft &optional (hard soft))
  "Sets RESOURCE's SOFT and HARD limits (integers or :infinity).  Signals unix-error (EPERM
when raising the hard limit unprivileged, EINVAL when SOFT > HARD)."
  (let ((r (rlimit-resource resource))
        (s (if (eq soft :infinity) -1 soft))
        (h (if (eq hard :infinity) -1 hard)))
    (check-syscall ("setrlimit" (princ-to-string resource))
      (ffi:c-inline (r s h) (:int :int64-t :int64-t) (values :int :int)
        "{ struct rlimit l; l.rlim_cur = #1 < 0 ? RLIM_INFINITY : (rlim_t)#1;
           l.rlim_max = #2 < 0 ? RLIM_INFINITY : (rlim_t)#2;
           int r = setrlimit(#0, &l); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))
    nil))

;;; Pre-forked children: set up now, exec later on the descriptor they are handed
;;; (c-core/spawn).  A waiting child is made either directly (spawn-waiting: fork from this
;;; process) or by a spawner (make-spawner): a process that clones waiting children on
;;; request with CLONE_PARENT, so they are still this process's children (SIGCHLD, waitpid)
;;; while this process never forks again.  That matters for a large Lisp image: each fork
;;; copies its page tables and write-protects its heap, and every page Lisp writes afterwards
;;; costs a copy-on-write fault.

(ffi:clines "#include \"spawn.h\""
            "
/* Fills *S from the Lisp objects %spawn-setup prepares. */
static void crow_spawn_setup_fill(struct crow_spawn_setup *s, cl_object p, cl_object a,
                                  cl_object e, cl_object d, cl_object root, cl_object rl,
                                  cl_object gv, cl_object ids)
{
    cl_index na = a->vector.dim, ne = e->vector.dim, i;
    cl_object *v = ids->vector.self.t;
    char **argv = (char **)ecl_alloc((na + 1) * sizeof(char *));
    char **env = (char **)ecl_alloc((ne + 1) * sizeof(char *));
    for (i = 0; i < na; i++) argv[i] = (char *)a->vector.self.t[i]->vector.self.b8;
    for (i = 0; i < ne; i++) env[i] = (char *)e->vector.self.t[i]->vector.self.b8;
    argv[na] = NULL; env[ne] = NULL;
    s->argv = argv; s->env = env; s->nenv = (long)ne;
    s->prog = (char *)p->vector.self.b8;
    s->dir = d == ECL_NIL ? NULL : (char *)d->vector.self.b8;
    s->root = root == ECL_NIL ? NULL : (char *)root->vector.self.b8;
    s->rlimits = (int64_t *)rl->vector.self.b8;
    s->groups = (gid_t *)gv->vector.self.b8;
    s->uid = ecl_fixnum(v[0]); s->gid = ecl_fixnum(v[1]); s->umask = ecl_fixnum(v[2]);
    s->ngroups = ecl_fixnum(v[3]); s->nrlimits = (int)ecl_fixnum(v[4]);
    s->devnull = (int)ecl_fixnum(v[5]); s->err = (int)ecl_fixnum(v[6]);
    s->report = (int)ecl_fixnum(v[7]);
    s->signals_clean = 0;
}")

(defun %spawn-setup (program args env stderr devnull rlimits chroot uid gid groups groups-p
                     umask directory report)
  "Returns the list of Lisp objects crow_spawn_setup_fill reads (kept alive by the caller
for as long as C uses them)."
  (let ((gl (if groups-p groups (and gid (list gid)))))
    (list (string-to-c program) (%string-vector args) (%string-vector (environment-strings env))
          (if directory (string-to-c directory) nil) (if chroot (string-to-c chroot) nil)
          (%rlimit-vector rlimits) (%gid-vector gl)
          (vector (or uid -1) (or gid -1) (or umask -1) (if (or groups-p gid) (length gl) -1)
                  (length rlimits) (or devnull -1) (or stderr -1) (if report 1 0)))))

(defun %spawn-step-error (errno step program directory chroot)
  (unix-error errno (case step (1 "dup2") (2 "chdir") (3 "execve") (4 "setrlimit") (5 "chroot")
                      (6 "setgroups") (7 "setresgid") (8 "setresuid") (t "fork"))
              (case step (2 directory) (5 chroot) (0 nil) (t program))))

(defun spawn-waiting (program args &key (env (ext:environ)) (stderr nil) devnull
                                        rlimits chroot uid gid (groups nil groups-p) umask
                                        directory wait-ready)
  "Forks a child that sets itself up now and execs PROGRAM later, when handed a descriptor
\(crow_spawn_waiting).  The child and the caller talk over a new AF_UNIX SOCK_SEQPACKET pair.
In the child, entirely in C (safe with threads running): signal dispositions reset to default
and all signals unblocked; DEVNULL (a descriptor open on /dev/null, or NIL) becomes 0 and 1
and STDERR (a descriptor, or NIL for DEVNULL) becomes 2; every other descriptor but its control
socket is closed; then RLIMITS ((RESOURCE SOFT [HARD]) ...), CHROOT, GROUPS/GID/UID, UMASK and
DIRECTORY are applied as spawn does.  The child then waits for one message carrying a
descriptor (see hand-off): that descriptor becomes 0 and 1 (blocking mode), the message's
NAME=VALUE strings are added to ENV, and PROGRAM is executed with ARGS (argv including
argv[0]).  At end of stream on its control socket the child exits with status 0; if execve
fails it exits with status 127.
With WAIT-READY the child reports when set up and the parent waits for it: when set-up failed,
the child is reaped and unix-error names the step (setrlimit, chroot, setgroups, setresgid,
setresuid, chdir).  Returns (values PID CONTROL), CONTROL the caller's end, to pass to
hand-off (or to close: the waiting child then exits).  Signals unix-error (socketpair,
fork...)."
  (destructuring-bind (p a e d root rl gv ids)
      (%spawn-setup program args env stderr devnull rlimits chroot uid gid groups groups-p
                    umask directory wait-ready)
    (multiple-value-bind (pid control errno step)
        (ffi:c-inline (p a e d root rl gv ids)
                      (:object :object :object :object :object :object :object :object)
                      (values :int :int :int :int)
          "{ struct crow_spawn_setup s; int control = -1, step = 0;
             crow_spawn_setup_fill(&s, #0, #1, #2, #3, #4, #5, #6, #7);
             pid_t pid = crow_spawn_waiting(&s, &control, &step);
             @(return 0) = pid; @(return 1) = control; @(return 2) = pid < 0 ? errno : 0;
             @(return 3) = step; }")
      (when (minusp pid) (%spawn-step-error errno step program directory chroot))
      (values pid control))))

(defun %helper-argv (helper program args env rlimits umask directory chroot uid gid gl)
  (append (list helper)
          (when chroot (list "-r" chroot))
          (when uid (list "-u" (princ-to-string uid)))
          (when gid (list "-g" (princ-to-string gid)))
          (when gl (list "-G" (format nil "~{~d~^,~}" gl)))
          (when umask (list "-m" (princ-to-string umask)))
          (when directory (list "-d" directory))
          (loop for (res soft hard) in rlimits
                for h = (or hard soft)
                append (list "-l" (format nil "~d:~d:~d" (rlimit-resource res)
                                          (if (eq soft :infinity) -1 soft)
                                          (if (eq h :infinity) -1 h))))
          (loop for x in (environment-strings env) append (list "-E" x))
          (list "--" program)
          args))

(defun make-spawner (program args &key (env (ext:environ)) (stderr nil) devnull rlimits
                                       umask directory chroot uid gid (groups nil groups-p)
                                       helper)
  "Starts a spawner: a process that, on each request (see spawner-request), clones a waiting
child as spawn-waiting describes for PROGRAM, ARGS, ENV, STDERR, DEVNULL, RLIMITS, UMASK and
DIRECTORY, with CLONE_PARENT: the children are the caller's (its SIGCHLD, its waitpid), and
the caller pays no fork of its own image per child.  Each child's control socket comes back
over the spawner's socket (see spawner-receive).  CHROOT, GROUPS, GID and UID are applied by
the spawner to itself once, so every child inherits them.  With HELPER (the path of
crow-spawner), the spawner is that small program, exec'd with the set-up in its arguments
\(cheap clones); otherwise it is a fork of this process that stays in C.  The spawner exits
at end of stream on its socket.  Returns (values PID SOCKET), SOCKET non-blocking and
close-on-exec.  Signals unix-error (socketpair, fork, or the helper's execve)."
  (multiple-value-bind (mine theirs) (socket-pair :type :seqpacket)
    (handler-bind ((error (lambda (c) (declare (ignore c)) (%close mine) (%close theirs))))
      (let ((gl (if groups-p groups (and gid (list gid)))) (pid nil))
        (if helper
            (setf pid (spawn helper (%helper-argv helper program args env rlimits umask directory
                                                  chroot uid gid gl)
                             :env '() :stdin theirs :stdout devnull :stderr (or stderr devnull)))
            (destructuring-bind (p a e d root rl gv ids)
                (%spawn-setup program args env stderr devnull rlimits chroot uid gid groups
                              groups-p umask directory nil)
              (multiple-value-bind (r errno)
                  (ffi:c-inline (p a e d root rl gv ids theirs)
                                (:object :object :object :object :object :object :object :object :int)
                                (values :int :int)
                    "{ struct crow_spawn_setup s; int step;
                       crow_spawn_setup_fill(&s, #0, #1, #2, #3, #4, #5, #6, #7);
                       pid_t pid = fork();
                       if (pid == 0) {
                         /* Keep the socket, /dev/null and stderr only, as 3, 4 and 5. */
                         int keep[3] = { #8, s.devnull, s.err }, moved[3], k;
                         for (k = 0; k < 3; k++)
                           moved[k] = keep[k] < 0 ? -1 : fcntl(keep[k], F_DUPFD_CLOEXEC, 10);
                         for (k = 0; k < 3; k++) if (moved[k] >= 0) dup3(moved[k], 3 + k, O_CLOEXEC);
                         { int k2; if (syscall(SYS_close_range, 6U, ~0U, 0) < 0)
                             for (k2 = 6; k2 < 65536; k2++) close(k2); }
                         s.devnull = moved[1] < 0 ? -1 : 4;
                         s.err = keep[2] == 2 ? 2 : (moved[2] < 0 ? -1 : 5);
                         if (crow_spawn_drop(&s, &step) < 0) _exit(1);
                         s.root = NULL; s.ngroups = -1; s.gid = -1; s.uid = -1;
                         _exit(crow_spawn_serve(&s, 3) < 0 ? 1 : 0);
                       }
                       @(return 0) = pid; @(return 1) = pid < 0 ? errno : 0; }")
                (when (minusp r) (unix-error errno "fork"))
                (setf pid r))))
        (%close theirs)
        (set-nonblocking mine)
        (values pid mine)))))

(defun spawner-request (socket n)
  "Asks the spawner behind SOCKET for N (1 or more) new waiting children.  Returns N.
Signals unix-error (EPIPE when the spawner is gone, EAGAIN when its socket is full)."
  (let ((v (make-octets 4)))
    (ffi:c-inline (v n) (:object :int) :void
      "{ int x = #1; memcpy(#0->vector.self.b8, &x, sizeof x); }")
    (check-syscall ("send")
      (ffi:c-inline (socket v) (:int :object) (values :long :int)
        "{ ssize_t r; do r = send(#0, #1->vector.self.b8, 4, MSG_NOSIGNAL); while (r < 0 && errno == EINTR);
           @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))
    n))

(defun spawner-receive (socket)
  "Returns (values PID CONTROL) for the next child the spawner behind SOCKET made, NIL when
none is ready yet, or :closed when the spawner has gone.  Signals unix-error with the
spawner's errno when it could not make a child."
  (let ((buf (make-octets 8)))
    (multiple-value-bind (fd n)
        (handler-case (receive-fd socket buf)
          (eagain () (return-from spawner-receive nil)))
      (if (< n 8)
          (progn (when fd (%close fd)) :closed)
          (let ((pid (ffi:c-inline (buf) (:object) :int
                       "({ int x; memcpy(&x, #0->vector.self.b8, 4); x; })" :one-liner t))
                (err (ffi:c-inline (buf) (:object) :int
                       "({ int x; memcpy(&x, #0->vector.self.b8 + 4, 4); x; })" :one-liner t)))
            (cond ((and (plusp pid) fd) (values pid fd))
                  (t (when fd (%close fd))
                     (unix-error (if (zerop err) +eio+ err) "clone"))))))))

(defun hand-off (control fd env)
  "Hands descriptor FD to the waiting child behind CONTROL (see spawn-waiting) with ENV, a
list of \"NAME=VALUE\" strings or (NAME . VALUE) conses added to its environment (under 4 kB in
all), and closes CONTROL whatever happens.  The child execs with FD as its stdin and stdout;
the caller may close FD once this returns.  Returns T.  Signals unix-error (EPIPE or
ECONNREFUSED when the child is gone)."
  (let* ((strings (mapcar #'utf8-encode (environment-strings env)))
         (data (make-octets (max 1 (reduce #'+ strings :key #'length
                                                       :initial-value (length strings)))))
         (i 0))
    (dolist (u strings)
      (replace data u :start1 i)
      (incf i (1+ (length u))))
    (unwind-protect (progn (send-fd control fd data) t)
      (%close control))))

;;; ECL 21.2.1 keeps its Lisp threads in a vector, cl_core.processes (256 slots at start).
;;; Its extend_process_vector() passes the old fill pointer as make-vector's ADJUSTABLE
;;; argument and NIL as the fill pointer, so the grown vector is "full" (fill pointer = size)
;;; and ecl_list_process grows it again, 1.5 times bigger each turn, until the heap limit:
;;; thread 255 of a process fails with STORAGE-EXHAUSTED ("Memory limit reached") after
;;; allocating gigabytes.  Replacing the vector once, early, by a bigger one with a correct
;;; fill pointer (under ECL's own spinlock) means it is never extended.

(ffi:clines "extern void ecl_get_spinlock(cl_env_ptr env, cl_object *lock);"
            "extern void ecl_giveup_spinlock(cl_object *lock);")

(defun reserve-lisp-threads (n)
  "Makes room in ECL's process table for N Lisp threads in this process, so that creating
them does not run into ECL 21's process-vector bug (see above); a no-op when the table is
that big already.  Returns the table's size.  Call it before the 250th thread.  Can't fail
(short of memory)."
  (check-type n (integer 1 1000000))
  (ffi:c-inline (n) (:int) :int "{
  cl_env_ptr env = ecl_process_env();
  cl_index want = (cl_index)#0, size;
  /* Allocated outside the spinlock: an allocation may signal. */
  cl_object v = want > cl_core.processes->vector.dim
    ? si_make_vector(ECL_T, ecl_make_fixnum(want), ECL_NIL, ecl_make_fixnum(0), ECL_NIL, ECL_NIL)
    : ECL_NIL;
  ecl_disable_interrupts_env(env);
  ecl_get_spinlock(env, &cl_core.processes_spinlock);
  {
    cl_object old = cl_core.processes;
    if (v != ECL_NIL && want > old->vector.dim && old->vector.fillp <= want) {
      memcpy(v->vector.self.t, old->vector.self.t, old->vector.fillp * sizeof(cl_object));
      v->vector.fillp = old->vector.fillp;
      cl_core.processes = v;
    }
    size = cl_core.processes->vector.dim;
  }
  ecl_giveup_spinlock(&cl_core.processes_spinlock);
  ecl_enable_interrupts_env(env);
  @(return) = (int)size; }" :one-liner nil))

;;; A new ECL thread allocates its Lisp stacks in the collected heap: 8,192 binding-stack
;;; entries, 2,048 frames (each holds a sigjmp_buf) and 32,768 Lisp-stack words by default,
;;; ~0.9 MB, plus ~0.2 MB of method caches, so a burst of threads grows the heap by ~1.2 MB a
;;; thread and triggers collections that each scan every thread.  A server whose threads run
;;; shallow code may ask for smaller stacks; an overflow is still the continuable
;;; ext:stack-overflow error (ECL then enlarges that thread's stack).

(defun set-lisp-thread-stacks (&key binding frame lisp)
  "Sets the sizes of the Lisp stacks of the threads created from now on in this process:
BINDING (special-binding entries), FRAME (catch/block/unwind-protect frames) and LISP (words),
each at least 64; NIL leaves one as it is.  Existing threads keep theirs.  Returns the
previous sizes as (values BINDING FRAME LISP).  Can't fail."
  (flet ((opt (which v)
           (check-type v (or null (integer 64 10000000)))
           (ffi:c-inline (which (or v -1)) (:int :long) :long
             "{ int o = #0 == 0 ? ECL_OPT_BIND_STACK_SIZE
                      : #0 == 1 ? ECL_OPT_FRAME_STACK_SIZE : ECL_OPT_LISP_STACK_SIZE;
                cl_fixnum old = ecl_get_option(o);
                if (#1 > 0) ecl_set_option(o, #1);
                @(return) = old; }" :one-liner nil)))
    (values (opt 0 binding) (opt 1 frame) (opt 2 lisp))))

(ffi:clines "#include <gc/gc.h>")

(defun grow-lisp-heap (bytes)
  "Grows the collected heap to at least BYTES now (address space: pages are touched only when
used), so a burst of allocations below that runs without the collections that growing the
heap step by step would cost.  Returns true when the heap is that big.  Can't fail."
  (check-type bytes (integer 0 #.(expt 2 40)))
  (ffi:c-inline (bytes) (:unsigned-long) :bool
    "{ size_t have = GC_get_heap_size();
       @(return) = have >= #0 || GC_expand_hp(#0 - have); }" :one-liner nil))

;;; Each new ECL thread also gets two dispatch caches (ecl_init_env: ecl_make_cache(64, 4096)
;;; for methods, (3, 4096) for slots): 3 x 4,096 words each, 196 KB of collected heap cleared
;;; at creation, two thirds of a session thread's memory and a third of the CPU of starting it
;;; (perf of a fresh mmftpd taking 300 logins: ecl_make_cache 22% of all samples, mostly page
;;; faults).  ecl_init_env calls ecl_make_cache through the PLT, so this program's own
;;; ecl_make_cache (below; exported from the executable because libecl references it) is the
;;; one called: it passes the request on to libecl's with the cache size capped by
;;; crow_ecl_cache_cap, 0 (no cap) until set-lisp-thread-caches sets it, so ECL's boot and
;;; every thread before that keep the full size.  A cache of any size works (its lookups wrap
;;; around the table); a lookup aborts ECL (search_method_hash) only when the 20 entries it
;;; probes are all taken by keys of other arities, which needs a nearly full table: ECL's own
;;; boot fills ~100s of entries (it aborts with a cap of 128), a session thread's code a few
;;; dozen, hence a floor of 512.

(ffi:clines "#include <dlfcn.h>"
            "#include <ecl/cache.h>"
            "static volatile cl_index crow_ecl_cache_cap = 0;"
            "static ecl_cache_ptr (*crow_ecl_real_make_cache)(cl_index, cl_index);"
            "ecl_cache_ptr ecl_make_cache(cl_index key_size, cl_index cache_size)"
            "{"
            "  cl_index cap = crow_ecl_cache_cap;"
            "  if (crow_ecl_real_make_cache == NULL)"
            "    crow_ecl_real_make_cache = (ecl_cache_ptr (*)(cl_index, cl_index))dlsym(RTLD_NEXT, \"ecl_make_cache\");"
            "  if (cap > 0 && cache_size > cap) cache_size = cap;"
            "  return crow_ecl_real_make_cache(key_size, cache_size);"
            "}")

(ffi:clines "static int crow_ecl_cache_here(void) { return 0; }"
            "static int crow_ecl_cache_interposed(void)"
            "{"
            "  Dl_info a, b;"
            "  void *f = dlsym(RTLD_DEFAULT, \"ecl_make_cache\");"
            "  return f != NULL && dladdr(f, &a) && dladdr((void *)crow_ecl_cache_here, &b)"
            "         && a.dli_fbase == b.dli_fbase;"
            "}")

(defun set-lisp-thread-caches (entries)
  "Caps the method and slot dispatch caches of the Lisp threads created from now on in this
process at ENTRIES entries each (ECL's default: 4,096, 96 KB each); NIL or 0 removes the cap.
At least 512 (see above).  Existing threads keep theirs.  Returns the previous cap (0: none)
and whether the cap takes effect: true in a program built with crow.unix linked in (its
ecl_make_cache is the one ECL calls), false where crow.unix was loaded into a running ECL (a
loaded module cannot replace libecl's function), where the cap is stored but unused.
Can't fail."
  (check-type entries (or null (integer 0 0) (integer 512 4096)))
  (values (ffi:c-inline ((or entries 0)) (:unsigned-long) :unsigned-long
            "{ cl_index old = crow_ecl_cache_cap; crow_ecl_cache_cap = #0; @(return) = old; }"
            :one-liner nil)
          (ffi:c-inline () () :bool "crow_ecl_cache_interposed()" :one-liner t)))

(defun lisp-thread-cache-entries ()
  "Returns the number of entries of the current thread's method dispatch cache.  Can't fail."
  (ffi:c-inline () () :unsigned-long
    "{ cl_env_ptr env = ecl_process_env();
       @(return) = env->method_cache->table->vector.dim / 3; }" :one-liner nil))
