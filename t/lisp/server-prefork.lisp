;;;; server-prefork.lisp — crow.server's process pool: tasks handed to pre-forked processes,
;;;; errors carried back, recycling after max-requests, connections served, clean stop.

(in-package :crow.test)

(def-suite server-prefork :in crow)
(in-suite server-prefork)

(defun pool-ready (pool n)
  "Ticks POOL until N members reported idle (at most ~5 s)."
  (loop repeat 100
        until (>= (- (getf (pool-stats pool) :processes) (getf (pool-stats pool) :busy)) n)
        do (pool-tick pool) (sleep 0.05)))

(test pool-tasks
  (ignore-sigpipe)
  (let ((pool (start-process-pool nil :min 2 :max 2 :spare 0 :max-requests 3)))
    (unwind-protect
         (progn
           (pool-ready pool 2)
           (is (= 2 (getf (pool-stats pool) :processes)))
           (is (= 7 (pool-call pool 'cl:+ 3 4)))
           (is (equal '(1 "a") (multiple-value-list (pool-call pool 'cl:values 1 "a"))))
           (let ((pid (pool-call pool 'crow.unix:getpid)))
             (is (/= (getpid) pid))
             (is (= (getpid) (pool-call pool 'crow.unix:getppid))))
           (let ((e (handler-case (progn (pool-call pool 'cl:error "boom ~a" 1) nil)
                      (crow-error (e) (princ-to-string e)))))
             (is (search "ERROR: boom 1" e) "~a" e))
           ;; Each process serves 3 tasks, then is replaced: 12 calls see at least 4 pids.
           (let ((pids (loop repeat 12
                             collect (progn (pool-ready pool 1) (pool-call pool 'crow.unix:getpid)))))
             (is (>= (length (remove-duplicates pids)) 4) "processes are recycled: ~a" pids))
           (is (>= (getf (pool-stats pool) :forked) 4)))
      (is (= 0 (stop-process-pool pool 5000))))
    (is (null (handler-case (waitpid -1 :nohang t) (unix-error () nil))) "no child left")))

(test pool-connections
  (ignore-sigpipe)
  (let* ((l (first (open-listeners (config-from-string "listen 127.0.0.1:0" *common-keys*))))
         (pool (start-process-pool (lambda (fd)
                                     (let ((buf (make-octets 16)))
                                       (let ((n (read-fd fd buf)))
                                         (write-all fd (octets-of (format nil "~d:~a" (getpid)
                                                                          (octets-to-string (subseq buf 0 n))))))))
                                   :listener l :min 2 :max 3 :spare 1)))
    (unwind-protect
         (progn
           (pool-ready pool 1)
           (let ((answers
                   (loop for i below 10
                         collect (let ((c (tcp-connect "127.0.0.1" (listener-port l)))
                                       (buf (make-octets 64)))
                                   (unwind-protect
                                        (progn (write-all c (octets-of (format nil "m~d" i)))
                                               (octets-to-string (subseq buf 0 (read-fd c buf))))
                                     (%close c)
                                     (pool-tick pool))))))
             (is (= 10 (length answers)))
             (is (every (lambda (a i) (search (format nil ":m~d" i) a)) answers
                        (loop for i below 10 collect i)))
             (is (notany (lambda (a) (search (format nil "~d:" (getpid)) a)) answers)
                 "served by pool processes, not this one")))
      (stop-process-pool pool 5000)
      (close-listener l))))
