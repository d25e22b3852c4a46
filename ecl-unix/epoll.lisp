;;;; epoll.lisp — readiness: epoll (create, ctl, wait into a reusable buffer) and eventfd.

(in-package :crow.unix)

(ffi:clines "#include <sys/epoll.h>" "#include <sys/eventfd.h>" "#include <errno.h>"
            "#include <unistd.h>" "#include <stdint.h>")

(define-c-constants
  (+epollin+ "EPOLLIN") (+epollout+ "EPOLLOUT") (+epollerr+ "EPOLLERR") (+epollhup+ "EPOLLHUP")
  (+epollrdhup+ "EPOLLRDHUP") (+epollet+ "(int)EPOLLET") (+epolloneshot+ "EPOLLONESHOT")
  (+epoll-event-size+ "sizeof(struct epoll_event)"))

(defun epoll-create ()
  "Returns a new close-on-exec epoll descriptor.  Signals unix-error."
  (check-syscall ("epoll_create1")
    (ffi:c-inline () () (values :int :int)
      "{ int r = epoll_create1(EPOLL_CLOEXEC); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")))

(defun %epoll-ctl (epfd op fd events data)
  (ffi:c-inline (epfd op fd events data) (:int :int :int :uint32-t :uint64-t) (values :int :int)
    "{ struct epoll_event ev; ev.events = #3; ev.data.u64 = #4;
       int r = epoll_ctl(#0, #1, #2, &ev); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))

(defun epoll-add (epfd fd events &optional (data fd))
  "Watches FD for EVENTS (a logior of +epollin+ ...), reporting DATA (an unsigned 64-bit
integer, FD by default).  Signals unix-error (EEXIST when already watched)."
  (check-syscall ("epoll_ctl" "ADD")
    (%epoll-ctl epfd (ffi:c-inline () () :int "EPOLL_CTL_ADD" :one-liner t) fd events data))
  fd)

(defun epoll-mod (epfd fd events &optional (data fd))
  "Changes the EVENTS and DATA watched for FD.  Signals unix-error (ENOENT when not watched)."
  (check-syscall ("epoll_ctl" "MOD")
    (%epoll-ctl epfd (ffi:c-inline () () :int "EPOLL_CTL_MOD" :one-liner t) fd events data))
  fd)

(defun epoll-del (epfd fd)
  "Stops watching FD.  Signals unix-error."
  (check-syscall ("epoll_ctl" "DEL")
    (%epoll-ctl epfd (ffi:c-inline () () :int "EPOLL_CTL_DEL" :one-liner t) fd 0 0))
  fd)

(defun make-epoll-events (n)
  "Returns a buffer for N events, reused across epoll-wait calls."
  (make-octets (* n +epoll-event-size+)))

(defun epoll-wait (epfd buffer timeout-ms)
  "Waits up to TIMEOUT-MS (-1 forever) for events into BUFFER (from make-epoll-events).
Returns the number of events (0 on timeout or when interrupted by a signal); read them with
epoll-event-events and epoll-event-data.  Signals unix-error."
  (declare (type octets buffer))
  (let ((max (floor (length buffer) +epoll-event-size+)))
    (multiple-value-bind (n errno)
        (ffi:c-inline (epfd buffer max timeout-ms) (:int :object :int :int) (values :int :int)
          "{ int r = epoll_wait(#0, (struct epoll_event *)#1->vector.self.b8, #2, #3);
             @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")
      (cond ((>= n 0) n)
            ((= errno +eintr+) 0)
            (t (unix-error errno "epoll_wait"))))))

(declaim (inline epoll-event-events epoll-event-data))
(defun epoll-event-events (buffer i)
  "Returns the event mask of the Ith event in BUFFER."
  (declare (type octets buffer) (fixnum i))
  (ffi:c-inline (buffer i) (:object :fixnum) :uint32-t
    "((struct epoll_event *)#0->vector.self.b8)[#1].events" :one-liner t))

(defun epoll-event-data (buffer i)
  "Returns the data (the FD unless given otherwise to epoll-add) of the Ith event in BUFFER."
  (declare (type octets buffer) (fixnum i))
  (ffi:c-inline (buffer i) (:object :fixnum) :uint64-t
    "((struct epoll_event *)#0->vector.self.b8)[#1].data.u64" :one-liner t))

(defun eventfd-create (&key (initial 0) nonblocking semaphore)
  "Returns a new close-on-exec eventfd.  Signals unix-error."
  (let ((flags (logior (ffi:c-inline () () :int "EFD_CLOEXEC" :one-liner t)
                       (if nonblocking (ffi:c-inline () () :int "EFD_NONBLOCK" :one-liner t) 0)
                       (if semaphore (ffi:c-inline () () :int "EFD_SEMAPHORE" :one-liner t) 0))))
    (check-syscall ("eventfd")
      (ffi:c-inline (initial flags) (:unsigned-int :int) (values :int :int)
        "{ int r = eventfd(#0, #1); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))))

(defun eventfd-write (fd &optional (n 1))
  "Adds N to the eventfd's counter.  Signals unix-error."
  (check-syscall ("eventfd write")
    (ffi:c-inline (fd n) (:int :uint64-t) (values :int :int)
      "{ uint64_t v = #1; ssize_t r; do r = write(#0, &v, 8); while (r < 0 && errno == EINTR);
         @(return 0) = (int)r; @(return 1) = r < 0 ? errno : 0; }"))
  nil)

(defun eventfd-read (fd)
  "Returns the eventfd's counter and resets it (blocks while zero, unless non-blocking: then
returns 0).  Signals unix-error."
  (multiple-value-bind (v r errno)
      (ffi:c-inline (fd) (:int) (values :uint64-t :int :int)
        "{ uint64_t v = 0; ssize_t r; do r = read(#0, &v, 8); while (r < 0 && errno == EINTR);
           @(return 0) = v; @(return 1) = (int)r; @(return 2) = r < 0 ? errno : 0; }")
    (cond ((>= r 0) v)
          ((= errno +eagain+) 0)
          (t (unix-error errno "eventfd read")))))
