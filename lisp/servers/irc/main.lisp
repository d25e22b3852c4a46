;;;; main.lisp — irclog's entry point: the common command line and config (crow.server), one
;;;; thread per network, and a clean stop (QUIT sent, files closed) on SIGTERM.

(in-package :crow.irc)

(defun %check-channel (words)
  (cond ((find-if (lambda (c) (member c '(#\, #\Space #\Bel #\Nul))) (first words))
         (format nil "~s is not a channel name" (first words)))
        ((cddr words) "expected CHANNEL [KEY]")))

(defun configure (config)
  "Checks CONFIG beyond its key table: at least one network, channel names, the fake clock.
Returns the networks' names.  Signals an error (refusing the config)."
  (let ((blocks (config-blocks config :network)))
    (unless blocks (error "no network block: nothing to log"))
    (dolist (b blocks)
      (dolist (c (config-value (cdr b) :channel))
        (let ((message (%check-channel c)))
          (when message
            (multiple-value-bind (file line) (config-source (cdr b) :channel)
              (error 'config-error :file file :line line :message message))))))
    (let ((fake (config-value config :fake-clock)))
      (when (and fake (null (parse-server-time fake)))
        (multiple-value-bind (file line) (config-source config :fake-clock)
          (error 'config-error :file file :line line
                               :message (format nil "fake-clock: expected YYYY-MM-DDTHH:MM:SSZ, got ~s" fake)))))
    (mapcar #'car blocks)))

(defun %options (config)
  (list :flood-burst (config-value config :flood-burst)
        :flood-interval (config-value config :flood-interval)
        :reconnect-min (config-value config :reconnect-min)
        :reconnect-max (config-value config :reconnect-max)
        :ping-interval (config-value config :ping-interval)
        :strip-colours (config-value config :strip-colours)
        :ctcp-version (config-value config :ctcp-version)))

(defun serve (context)
  "The serving process: a thread per network until stopped.  Returns 0."
  (let* ((config (context-config context))
         (dir (config-value config :log-dir))
         (writer (make-log-writer dir))
         (rules (make-event-rules :keywords (config-value config :event-keyword)
                                  :nicks (config-value config :event-nick)
                                  :joins (config-value config :event-join)
                                  :path (or (config-value config :events-log)
                                            (format nil "~a/events.log" (string-right-trim "/" dir)))))
         (options (%options config)))
    (setf *utc* (eq (config-value config :time-zone) :utc) *stop* nil)
    (let ((fake (config-value config :fake-clock)))
      (when fake (set-fake-clock (parse-server-time fake))))
    (open-event-stats rules (config-value config :stat-dir))
    (setf *networks*
          (loop for (name . block) in (config-blocks config :network)
                collect (%make-network :name name :config block :writer writer :rules rules
                                       :options options)))
    (dolist (net *networks*)
      (let ((net net))
        (setf (network-thread net)
              (mp:process-run-function (format nil "irclog ~a" (network-name net))
                                       (lambda () (run-network net))))))
    (wait-for-stop context)
    (setf *stop* t)
    (dolist (net *networks*)
      (let ((deadline (+ (monotonic-seconds) 5)))
        (loop while (and (mp:process-active-p (network-thread net)) (< (monotonic-seconds) deadline))
              do (sleep 0.05))))
    (close-log-files writer)
    0))

(define-server "irclog" :version *version* :keys-table *irc-keys*
  :summary "Logs IRC channels as humanized files, one per channel per day, and records events."
  :listen-keys '() :configure 'configure :serve 'serve
  :options '(("-L" :log-dir "DIR" "log into DIR instead of the config's log-dir" :log-dir)))
