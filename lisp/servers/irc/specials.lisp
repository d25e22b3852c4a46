;;;; specials.lisp — irclog's configuration keys, version and clock.

(in-package :crow.irc)

(defparameter *version* "0.1.0")

(define-config-keys *network-keys*
  (server :address :required t :doc "The IRC server, HOST:PORT or [IPV6]:PORT.")
  (tls :boolean :default "no" :doc "Speak TLS to the server.")
  (tls-ca :path :exists :file
          :doc "PEM file of CAs the server's certificate must chain to (not verified when absent).")
  (password :string :doc "Server password (PASS), if the server wants one.")
  (nick :string :required t :doc "The nickname.")
  (alt-nick :string :repeatable t
            :doc "Nicknames tried in order when the nickname is taken (then NICK_, NICK__, ...).")
  (username :string :default "irclog" :doc "The user name (USER).")
  (realname :string :default "crow irclog" :doc "The real name (USER).")
  (sasl-user :string :doc "SASL PLAIN account (with sasl-password), when the server offers SASL.")
  (sasl-password :string :doc "SASL PLAIN password.")
  (channel :list :repeatable t :meta "CHANNEL [KEY]"
           :doc "A channel to join and log, with its key: \"#name\" quoted (# starts a comment), or name alone for #name."))

(define-config-keys *irc-keys*
  (:include *common-keys*)
  (network :block :keys *network-keys* :meta "NAME {"
           :doc "An IRC network to log: server, nick, channels (see the network keys).")
  (log-dir :path :exists :directory :required t
           :doc "Logs go to LOG-DIR/NETWORK/#channel/YYYY-MM-DD.log.")
  (time-zone :enum :values '(:utc :local) :default "utc"
             :doc "Days and timestamps in UTC or in local time (TZ).")
  (strip-colours :boolean :default "yes" :doc "Remove mIRC colour and formatting codes.")
  (events-log :path :exists :parent :doc "Event lines go there (LOG-DIR/events.log when absent).")
  (event-keyword :string :repeatable t :doc "A message containing this word is an event (case ignored).")
  (event-nick :string :repeatable t :doc "Every message from this nick is an event.")
  (event-join :string :repeatable t :doc "A join of this nick is an event.")
  (flood-burst :integer :min 1 :max 100 :default "5" :doc "Lines sent at once before pacing.")
  (flood-interval :duration :min 1 :default "1s" :doc "Then one line per this interval.")
  (reconnect-min :duration :min 1 :default "1s" :doc "First wait before reconnecting.")
  (reconnect-max :duration :min 1 :default "5m" :doc "Longest wait before reconnecting (doubling).")
  (ping-interval :duration :min 1 :default "2m" :doc "Quiet time after which the server is pinged.")
  (ctcp-version :string :default "crow irclog" :doc "The CTCP VERSION reply (the version is appended).")
  (fake-clock :string :doc "Tests only: the clock starts at this ISO-8601 UTC time (YYYY-MM-DDTHH:MM:SSZ) and runs on."))

;;; The clock: every timestamp without a server-time tag comes from here.

(defun %real-clock ()
  (multiple-value-bind (s ns) (real-time) (+ s (/ (floor ns 1000000) 1000))))

(defvar *clock* '%real-clock
  "A function of no arguments returning the time as Unix seconds (a rational: milliseconds in
the fraction).  Tests replace it; `fake-clock` in the config shifts it.")

(defun clock-now ()
  "Returns the current time from *clock* (Unix seconds, a rational).  Can't fail."
  (funcall *clock*))

(defun set-fake-clock (start)
  "Makes *clock* run from START (Unix seconds) on at real speed.  Returns START."
  (let ((offset (- start (%real-clock))))
    (setf *clock* (lambda () (+ (%real-clock) offset))))
  start)

(defvar *networks* '() "The running networks (network structs).")
(defvar *stop* nil "Set when irclog is stopping: network threads say QUIT and end.")
