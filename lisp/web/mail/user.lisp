;;;; user.lisp — the pages every user has: logging in and out, their mailboxes with their
;;;; usage against the limits, and their envelope filters (added and deleted here, applied by
;;;; mmsmtpd at RCPT time).

(in-package :crow.mailweb)

;;; Logging in and out

(defparameter +login-specs+
  '(("login" "User" :text :required t :max 320 :hint "name@domain, or just the name")
    ("password" "Password" :password :required t :max 1024 :input :password)))

(defun login-page (&key (status 200))
  (mail-page ("Log in" :status status)
    (:form :method "post" :action (url "/login") :class "edit" :id "login-form"
      (:call csrf-field)
      (:call render-fields +login-specs+)
      (:p (:button :type "submit" :id "login-submit" "Log in")))))

(defun login-post ()
  (multiple-value-bind (clean errors raw) (read-form +login-specs+)
    (setf (ctx-values *ctx*) raw)
    (cond
      ((login-blocked-p (client-address (ctx-req *ctx*)))
       (setf (ctx-errors *ctx*)
             (list (cons "password" (format nil "Too many failed logins from your address: wait ~d minutes and try again."
                                            (ceiling *login-failure-window* 60)))))
       (login-page :status 429))
      (errors
       (setf (ctx-errors *ctx*) errors) (login-page :status 400))
      (t
        (multiple-value-bind (user message)
            (authenticate (form-get clean "login") (form-get clean "password"))
          (if user
              (let ((req (ctx-req *ctx*)))
                (setf (ctx-session *ctx*) (start-user-session req user))
                (log-info "mail web: ~a logged in from ~a" (user-login user) (request-peer req))
                (redirect req (url (if (getf user :admin) "/admin/" "/")) :status 303))
              (progn
                (log-warn "mail web: failed login for ~s from ~a (~d in this window)" (form-get clean "login")
                          (request-peer (ctx-req *ctx*))
                          (note-login-failure (client-address (ctx-req *ctx*))))
                (setf (ctx-errors *ctx*) (list (cons "password" message)))
                (login-page :status 403))))))))

(defun logout-post ()
  (let ((req (ctx-req *ctx*)))
    (end-user-session req)
    (redirect req (url "/login") :status 303)))

;;; The user's mailboxes and envelope filters

(defun user-mailboxes (user-id)
  "Returns (NAME COUNT BYTES MAX-BYTES MAX-MESSAGES) for each mailbox of USER-ID, INBOX first."
  (mapcar (lambda (r) (list (first r) (db-integer (second r)) (db-integer (third r))
                            (db-integer (fourth r)) (db-integer (fifth r))))
          (query "SELECT b.name, count(m.id), coalesce(sum(m.size), 0), b.max_bytes, b.max_messages
                    FROM mailboxes b LEFT JOIN messages m ON m.mailbox_id = b.id
                   WHERE b.user_id = $1
                   GROUP BY b.id ORDER BY b.name <> 'INBOX', b.name"
                 user-id)))

(defun user-filters (user-id)
  "Returns (ID SENDER RECIPIENT ACTION PRIORITY) for USER-ID's envelope filters, in the order
mmsmtpd tries them."
  (query "SELECT id, sender_pattern, recipient_pattern, action, priority
            FROM envelope_filters WHERE user_id = $1 ORDER BY priority, id"
         user-id))

(defparameter +filter-specs+
  '(("sender" "Sender pattern" :address-pattern
     :hint "envelope sender, * any run, ? one character; empty: any (the null sender <> too)")
    ("recipient" "Recipient pattern" :address-pattern
     :hint "which of your addresses, e.g. demo+work@crow.test; empty: any")
    ("action" "Action" :choice :required t :input :select
     :choices (("reject" . "reject (550)") ("discard" . "discard (accept, then drop)")
               ("accept" . "accept")))
    ("priority" "Priority" :integer :min-value 0 :max-value 1000000 :default "100"
     :hint "lower numbers are tried first; the first match decides")))

(defparameter +own-password-specs+
  `(("current" "Current password" :password :required t :max 1024 :input :password)
    ("password1" "New password" :password :required t :max 1024 :input :password
     :hint ,(format nil "at least ~d characters" *min-password*))
    ("password2" "New password again" :password :required t :max 1024 :input :password)))

(defun home-page (&key (status 200))
  (let* ((user (session-user))
         (boxes (user-mailboxes (getf user :id)))
         (filters (user-filters (getf user :id))))
    (mail-page ("Your mail" :status status)
      (:h2 "Mailboxes")
      (:p "Mail to " (:b (user-login user)) " goes to INBOX; mail to "
          (:b (getf user :name) "+NAME@" (getf user :domain)) " to the mailbox NAME.")
      (:table :class "grid" :id "mailboxes"
        (:tr (:th "Mailbox") (:th "Messages") (:th "Size") (:th "Size limit") (:th "Message limit"))
        (:dolist (b boxes)
          (:tr :class "mailbox"
            (:td :class "name" (first b))
            (:td :class "count" (second b))
            (:td :class "size" (format-size (third b)))
            (:td (:call usage-bar (third b) (fourth b))
                 (:when (fourth b) " of " (format-size (fourth b))))
            (:td (:call usage-bar (second b) (fifth b))
                 (:when (fifth b) " of " (fifth b))))))
      (:h2 "Envelope filters")
      (:p "Each message for one of your addresses is checked against these filters in order; "
          "the first whose patterns both match decides. None matching: the message is accepted.")
      (:if filters
           (:table :class "grid" :id "filters"
             (:tr (:th "Priority") (:th "Sender") (:th "Recipient") (:th "Action") (:th ""))
             (:dolist (f filters)
               (:tr :class "filter"
                 (:td (fifth f)) (:td :class "sender" (second f)) (:td :class "recipient" (third f))
                 (:td :class "action" (fourth f))
                 (:td (:call delete-button (url "/filters/delete") (first f) "this filter")))))
           (:p :id "no-filters" "No filters: every message is accepted."))
      (:h2 "Add a filter")
      (:form :method "post" :action (url "/filters") :class "edit" :id "filter-form"
        (:call csrf-field)
        (:call render-fields +filter-specs+)
        (:p (:button :type "submit" :id "filter-submit" "Add the filter")))
      (:h2 "Change your password")
      (:p "The same password serves here and for POP3.")
      (:form :method "post" :action (url "/password") :class "edit" :id "own-password-form"
        (:call csrf-field)
        (:call render-fields +own-password-specs+)
        (:p (:button :type "submit" :id "own-password-submit" "Change the password"))))))

(defun own-password-post ()
  (let ((user (session-user)))
    (multiple-value-bind (clean errors raw) (read-form +own-password-specs+)
      (setf (ctx-values *ctx*) raw)
      (when (and (null errors)
                 (string/= (form-get clean "password1") (form-get clean "password2")))
        (setf errors (list (cons "password2" "Does not match the new password."))))
      (when (and (null errors)
                 (not (crypt-verify (form-get clean "current")
                                    (or (query-value "SELECT password_hash FROM users WHERE id = $1"
                                                     (getf user :id))
                                        ""))))
        (note-login-failure (client-address (ctx-req *ctx*)))
        (setf errors (list (cons "current" "Wrong password."))))
      (if errors
          (progn (setf (ctx-errors *ctx*) errors) (home-page :status 400))
          (progn
            (query "UPDATE users SET password_hash = $2 WHERE id = $1"
                   (getf user :id) (crypt-hash (form-get clean "password1")))
            (log-info "mail web: ~a changed their password" (user-login user))
            (set-notice "Your password was changed.")
            (redirect (ctx-req *ctx*) (url "/") :status 303))))))

(defun filter-add-post ()
  (let ((user (session-user)))
    (multiple-value-bind (clean errors raw) (read-form +filter-specs+)
      (setf (ctx-values *ctx*) raw (ctx-errors *ctx*) errors)
      (if errors
          (home-page :status 400)
          (progn
            (query "INSERT INTO envelope_filters (user_id, sender_pattern, recipient_pattern, action, priority)
                    VALUES ($1, $2, $3, $4, $5)"
                   (getf user :id) (or (form-get clean "sender") "*")
                   (or (form-get clean "recipient") "*") (form-get clean "action")
                   (or (form-get clean "priority") 100))
            (log-info "mail web: ~a added an envelope filter" (user-login user))
            (set-notice "The filter was added.")
            (redirect (ctx-req *ctx*) (url "/") :status 303))))))

(defun filter-delete-post ()
  (let* ((user (session-user))
         (id (http-param (ctx-req *ctx*) "id" :from :post :type :integer))
         (gone (and id (query "DELETE FROM envelope_filters WHERE id = $1 AND user_id = $2 RETURNING id"
                              id (getf user :id)))))
    (set-notice (if gone "The filter was deleted." "No such filter (already deleted?)."))
    (redirect (ctx-req *ctx*) (url "/") :status 303)))
