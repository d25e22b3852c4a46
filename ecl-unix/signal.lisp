;;;; signal.lisp — learning of signals inside an event loop (a self-pipe), SIGPIPE ignored.
;;;;
;;;; A C handler, installed with sigaction for the signals asked for, writes the signal
;;;; number into a non-blocking close-on-exec pipe; the event loop watches the read end with
;;;; epoll and calls read-signals.  This works whichever thread the kernel picks (ECL runs a
;;;; signal-servicing thread of its own), and the handler is async-signal-safe.

(in-package :crow.unix)

(ffi:clines "#include <signal.h>" "#include <pthread.h>" "#include <unistd.h>" "#include <errno.h>"
            "#include <string.h>" "#include <fcntl.h>"
            "static int crow_signal_pipe[2] = { -1, -1 };
static void crow_signal_handler(int sig)
{
    int saved = errno;
    unsigned char c = (unsigned char)sig;
    ssize_t r = write(crow_signal_pipe[1], &c, 1); /* a full pipe drops it: already pending */
    (void)r;
    errno = saved;
}")

(define-keyword-map signal-number "Returns the number of a signal keyword (:hup, :term ...)."
  (:hup "SIGHUP") (:int "SIGINT") (:quit "SIGQUIT") (:term "SIGTERM") (:chld "SIGCHLD")
  (:usr1 "SIGUSR1") (:usr2 "SIGUSR2") (:pipe "SIGPIPE") (:kill "SIGKILL") (:stop "SIGSTOP")
  (:cont "SIGCONT") (:alrm "SIGALRM") (:winch "SIGWINCH"))

(defun signal-keyword (number)
  (or (car (rassoc number *signal-number-table*)) number))

(defun signal-fd ()
  "Returns the read end of the signal pipe (-1 before watch-signals).  Can't fail."
  (ffi:c-inline () () :int "crow_signal_pipe[0]" :one-liner t))

(defun watch-signals (signals)
  "Arranges for each signal in SIGNALS (keywords: :hup :term :int :chld ...) to be recorded in
the signal pipe instead of its default action.  Returns the pipe's read end, to watch for
readability (see read-signals).  Signals unix-error."
  (dolist (s signals)
    (let ((n (signal-number s)))
      (check-syscall ("sigaction" (princ-to-string s))
        (ffi:c-inline (n) (:int) (values :int :int)
          "{ int r = 0;
             if (crow_signal_pipe[0] < 0) r = pipe2(crow_signal_pipe, O_CLOEXEC | O_NONBLOCK);
             if (r == 0) {
               struct sigaction sa; memset(&sa, 0, sizeof sa);
               sa.sa_handler = crow_signal_handler; sa.sa_flags = SA_RESTART;
               sigemptyset(&sa.sa_mask);
               r = sigaction(#0, &sa, NULL);
               if (r == 0) { sigset_t one; sigemptyset(&one); sigaddset(&one, #0);
                             pthread_sigmask(SIG_UNBLOCK, &one, NULL); } }
             @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))))
  (signal-fd))

(defun read-signals ()
  "Returns the signals recorded since the last call, oldest first, as keywords (duplicates
kept), or NIL when none.  Never blocks.  Signals unix-error on a read failure."
  (let ((buf (make-octets 64)) (out '()))
    (loop
      (multiple-value-bind (n errno)
          (ffi:c-inline (buf) (:object) (values :int :int)
            "{ ssize_t r = crow_signal_pipe[0] < 0 ? 0 : read(crow_signal_pipe[0], #0->vector.self.b8, 64);
               @(return 0) = (int)r; @(return 1) = r < 0 ? errno : 0; }")
        (cond ((plusp n) (dotimes (i n) (push (signal-keyword (aref buf i)) out)))
              ((zerop n) (return))
              ((or (= errno +eagain+) (= errno +eintr+)) (return))
              (t (unix-error errno "read" "signal pipe")))))
    (nreverse out)))

(defun ignore-sigpipe ()
  "Ignores SIGPIPE, so writing to a closed connection returns EPIPE instead of killing the
process.  Can't fail."
  (ffi:c-inline () () :void "signal(SIGPIPE, SIG_IGN)" :one-liner t)
  t)

(defun default-signal (signal)
  "Restores SIGNAL's default action.  Can't fail."
  (let ((n (signal-number signal)))
    (ffi:c-inline (n) (:int) :void "signal(#0, SIG_DFL)" :one-liner t)))

(defun reset-signal-pipe ()
  "Closes the signal pipe (a forked child calls this, then watch-signals for its own pipe:
the inherited one is shared with the parent).  Signals arriving meanwhile are dropped.
Returns NIL.  Can't fail."
  (ffi:c-inline () () :void
    "{ int r0 = crow_signal_pipe[0], r1 = crow_signal_pipe[1];
       crow_signal_pipe[0] = crow_signal_pipe[1] = -1;
       if (r0 >= 0) close(r0); if (r1 >= 0) close(r1); }")
  nil)
