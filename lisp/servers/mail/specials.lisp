;;;; specials.lisp — crow.mail's version, config key tables and shared state.

(in-package :crow.mail)

(defparameter *version* "0.1.0")

(define-config-keys *store-keys*
  (conninfo :string :required t :meta "CONNINFO"
            :doc "libpq connection string of the mail database (tools/pg conninfo mail).")
  (spool :path :required t :exists :directory
         :doc "Directory of the message files (tmp/ and msg/ are made in it).")
  (hostname :string :default "localhost" :meta "NAME"
            :doc "This server's name: banner, Received: lines, HELO impersonation check.")
  (db-connections :integer :min 1 :max 500 :default "32"
                  :doc "Idle database connections kept for reuse.")
  (fsync :boolean :default "yes"
         :doc "fsync message files and their directories before answering (never off in production)."))

(define-config-keys *smtp-keys*
  (:include *common-keys*)
  (:include *store-keys*)
  (max-message-size :size :min 1 :max 1073741824 :default "10M"
                    :doc "Largest message accepted (SIZE, 552).")
  (max-recipients :integer :min 1 :default "100" :doc "Recipients per message (452 beyond).")
  (max-line-length :integer :min 78 :max 1048576 :default "998"
                   :doc "Longest message line, CRLF excluded (RFC 5322: 998).")
  (max-header-length :size :min 78 :default "8K"
                     :doc "Longest header field, folded lines joined.")
  (max-hops :integer :min 1 :default "30" :doc "Most Received: fields (554 5.4.6 beyond).")
  (greet-pause :duration :min 0 :default "0"
               :doc "Wait this long before the banner; a client talking first is an early talker.")
  (reject-early-talker :boolean :default "yes"
                       :doc "Refuse (554) a client that speaks before the banner.")
  (reject-unauth-pipelining :boolean :default "yes"
                            :doc "Refuse a client that pipelines before EHLO offered PIPELINING, or past a sync point.")
  (reject-bare-line-ends :boolean :default "yes"
                         :doc "Refuse a bare CR or LF in commands (500) and data (554), which covers every SMTP smuggling variant.")
  (helo-required :boolean :default "yes" :doc "MAIL needs a HELO/EHLO first.")
  (check-helo-syntax :boolean :default "yes"
                     :doc "HELO/EHLO must name a domain or an address literal (501).")
  (reject-helo-impersonation :boolean :default "yes"
                             :doc "Refuse a HELO naming this server's hostname or address (550).")
  (message-rate-per-address :rate :doc "Messages accepted per client address and period, as 100/1m (452 beyond).")
  (greylist :boolean :default "no" :doc "Defer (451) the first attempt of each (address, sender, recipient).")
  (greylist-delay :duration :min 0 :default "5m" :doc "How long a greylisted triplet must wait.")
  (header-filters :boolean :default "yes" :doc "Apply the header filter rules of the database.")
  (envelope-filters :boolean :default "yes" :doc "Apply the users' envelope filters.")
  (filter-cache :duration :min 0 :default "5m"
                :doc "How long header filter rules are cached (a change in the database drops the cache at once).")
  (recipient-cache :duration :min 0 :default "5m"
                   :doc "How long an address's resolution (mailboxes without limits) is cached (a change in the database drops the cache at once); 0: never."))

(define-config-keys *pop3-keys*
  (:include *common-keys*)
  (:include *store-keys*)
  (default-domain :string :meta "DOMAIN"
                  :doc "Domain of logins given without @DOMAIN.")
  (login-delay :duration :min 0 :default "2s" :doc "Pause after a failed login.")
  (max-login-failures :integer :min 1 :default "3" :doc "Failed logins before the connection is closed.")
  (plaintext-login :boolean :default "yes"
                   :doc "Allow USER/PASS without TLS (no: only after STLS)."))

(defvar *store* nil "The store the serving process uses (see open-store).")
(defvar *tls* nil "The server TLS context for STARTTLS/STLS, or NIL.")
(defvar *config* nil "The serving process's configuration.")
(defvar *settings* (make-hash-table :test 'eq)
  "Config key -> value, read once from *config* per serving process (config-value per command
was a measurable share of a message's CPU).")

(defun load-settings (config)
  "Reads every key of CONFIG's table into *settings*.  Returns NIL."
  (let ((h (make-hash-table :test 'eq)))
    (dolist (spec (crow.server::config-keys config))
      (let ((k (crow.server::key-spec-name spec)))
        (unless (eq (crow.server::key-spec-type spec) :block)
          (setf (gethash k h) (config-value config k)))))
    (setf *settings* h)
    nil))

(declaim (inline settings-value))
(defun settings-value (key)
  (values (gethash key *settings*)))

(defun count-event (key &optional (delta 1) &key (persistent t))
  "Counts DELTA on KEY (\"mmsmtpd|messages|crow.test\") in mmstatd through the process's shared
handle (crow.server opens it from stat-dir before serving; without one this does nothing).
Called after the reply is written: a slow or absent mmstatd costs a session at most 20 ms and
never changes an answer.  Can't fail."
  (mmstat-count key delta :persistent persistent))
