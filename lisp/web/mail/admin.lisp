;;;; admin.lisp — the administrator's pages: domains, users, mailboxes, aliases and header
;;;; filter rules.  Each is a resource described once (columns, rows, the add form's fields,
;;;; insert and delete); one page shape lists it with a delete button per row and an add form
;;;; that answers with the errors beside the fields.

(in-package :crow.mailweb)

(defstruct resource
  "One kind of thing the administrator manages at /mail/admin/NAME."
  name title singular intro columns list-fn specs insert-fn delete-fn check-fn conflict
  extra-fn
  (toggles '()))            ; (CELL-INDEX . DB-COLUMN): boolean cells with a switch button

(defvar *resources* '() "The resources, in the order of the administration menu.")

(defmacro define-resource (name &rest keys)
  "Defines (or redefines, in place) the resource NAME (a string, its URL segment)."
  `(let ((r (make-resource :name ,name ,@keys)))
     (setf *resources*
           (if (find ,name *resources* :key #'resource-name :test #'string=)
               (substitute r (find ,name *resources* :key #'resource-name :test #'string=) *resources*)
               (append *resources* (list r))))
     r))

(defun find-resource (name)
  (find name *resources* :key #'resource-name :test #'string=))

;;; Choices for select fields

(defun domain-choices ()
  (mapcar (lambda (r) (cons (first r) (second r)))
          (query "SELECT id, name FROM domains ORDER BY name")))

(defun user-choices ()
  (mapcar (lambda (r) (cons (first r) (second r)))
          (query "SELECT u.id, u.name || '@' || d.name FROM users u JOIN domains d ON d.id = u.domain_id
                   ORDER BY d.name, u.name")))

;;; Domains

(define-resource "domains"
  :title "Domains" :singular "domain"
  :intro "Mail is accepted for these domains only; deleting one deletes its users, mailboxes, messages and aliases."
  :columns '("Domain" "Users" "Aliases")
  :list-fn (lambda ()
             (query "SELECT d.id, d.name,
                            (SELECT count(*) FROM users u WHERE u.domain_id = d.id),
                            (SELECT count(*) FROM aliases a WHERE a.domain_id = d.id)
                       FROM domains d ORDER BY d.name"))
  :specs '(("name" "Domain name" :domain :required t :max 253 :hint "like example.org"))
  :conflict '("name" . "That domain exists already.")
  :insert-fn (lambda (v) (query "INSERT INTO domains (name) VALUES ($1)" (form-get v "name")))
  :delete-fn (lambda (id) (query "DELETE FROM domains WHERE id = $1 RETURNING id" id)))

;;; Users

(define-resource "users"
  :title "Users" :singular "user"
  :intro "A user logs in here and at POP3 as name@domain; a new user gets the mailbox INBOX."
  :columns '("Address" "Administrator" "Active" "Mailboxes" "Filters")
  :toggles '((1 . "is_admin") (2 . "active"))
  :list-fn (lambda ()
             (mapcar (lambda (r)
                       (list (first r) (second r) (if (db-true-p (third r)) "yes" "no")
                             (if (db-true-p (fourth r)) "yes" "no") (fifth r) (sixth r)))
                     (query "SELECT u.id, u.name || '@' || d.name, u.is_admin, u.active,
                                    (SELECT count(*) FROM mailboxes b WHERE b.user_id = u.id),
                                    (SELECT count(*) FROM envelope_filters f WHERE f.user_id = u.id)
                               FROM users u JOIN domains d ON d.id = u.domain_id
                              ORDER BY d.name, u.name")))
  :specs `(("name" "User name" :local-part :required t :max 64 :hint "the part before the @")
           ("domain" "Domain" :integer :required t :input :select :choices domain-choices)
           ("password" "Password" :password :required t :max 1024 :input :password
            :hint ,(format nil "at least ~d characters" *min-password*))
           ("admin" "Administrator" :boolean :input :checkbox))
  :conflict '("name" . "That domain has a user of that name already.")
  :insert-fn (lambda (v)
               (with-transaction ()
                 (let ((id (query-value "INSERT INTO users (domain_id, name, password_hash, is_admin)
                                         VALUES ($1, $2, $3, $4) RETURNING id"
                                        (form-get v "domain") (form-get v "name")
                                        (crypt-hash (form-get v "password"))
                                        (if (form-get v "admin") t :false))))
                   (query "INSERT INTO mailboxes (user_id, name) VALUES ($1, 'INBOX')" id))))
  :delete-fn (lambda (id)
               (if (eql id (getf (session-user) :id))
                   (values nil "You cannot delete the account you are logged in with.")
                   (query "DELETE FROM users WHERE id = $1 RETURNING id" id)))
  :extra-fn (lambda () (password-form-html)))

(defparameter +password-specs+
  `(("pw_user" "User" :integer :required t :input :select :choices user-choices)
    ("new_password" "New password" :password :required t :max 1024 :input :password
     :hint ,(format nil "at least ~d characters" *min-password*))))

(defun action-form-html (title action id specs label)
  "The form of a resource page's extra action: TITLE, posting SPECS' fields to ACTION (a path
below the app); ID names the form (ID-form) and its button (ID-submit)."
  (html-string ()
    (:h2 title)
    (:form :method "post" :action (url action) :class "edit" :id (concatenate 'string id "-form")
      (:call csrf-field)
      (:call render-fields specs)
      (:p (:button :type "submit" :id (concatenate 'string id "-submit") label)))))

(defun action-post (specs resource update done missing)
  "Answers an extra action's post: SPECS' fields read and checked (errors: RESOURCE's page
again, 400), then (UPDATE clean-values) — true when a row changed — and back to RESOURCE's
page with the notice DONE or MISSING."
  (multiple-value-bind (clean errors raw) (read-form specs)
    (setf (ctx-values *ctx*) raw (ctx-errors *ctx*) errors)
    (if errors
        (resource-page (find-resource resource) :status 400)
        (progn (set-notice (if (funcall update clean) done missing))
               (redirect (ctx-req *ctx*) (url (concatenate 'string "/admin/" resource)) :status 303)))))

(defun password-form-html ()
  (action-form-html "Set a password" "/admin/users/password" "password" +password-specs+
                    "Set the password"))

(defun password-post ()
  (action-post +password-specs+ "users"
               (lambda (clean)
                 (query "UPDATE users SET password_hash = $2 WHERE id = $1 RETURNING name"
                        (form-get clean "pw_user") (crypt-hash (form-get clean "new_password"))))
               "The password was set." "No such user."))

;;; Mailboxes

(define-resource "mailboxes"
  :title "Mailboxes" :singular "mailbox"
  :intro "name+MAILBOX@domain delivers to the user's mailbox MAILBOX; INBOX takes the rest. Empty limits mean none."
  :columns '("Owner" "Mailbox" "Messages" "Size" "Size limit" "Message limit")
  :list-fn (lambda ()
             (mapcar (lambda (r)
                       (list (first r) (second r) (third r) (fourth r)
                             (format-size (db-integer (fifth r)))
                             (if (sixth r) (format-size (db-integer (sixth r))) "none")
                             (or (seventh r) "none")))
                     (query "SELECT b.id, u.name || '@' || d.name, b.name, count(m.id),
                                    coalesce(sum(m.size), 0), b.max_bytes, b.max_messages
                               FROM mailboxes b JOIN users u ON u.id = b.user_id
                                    JOIN domains d ON d.id = u.domain_id
                                    LEFT JOIN messages m ON m.mailbox_id = b.id
                              GROUP BY b.id, u.name, d.name ORDER BY d.name, u.name, b.name")))
  :specs `(("user" "Owner" :integer :required t :input :select :choices user-choices)
           ("name" "Mailbox name" :mailbox :required t :max 64 :hint "like work or lists")
           ("max_bytes" "Size limit" :size :max-value ,(expt 2 62) :hint "bytes, or with K, M, G (like 50M); empty: none")
           ("max_messages" "Message limit" :integer :min-value 0 :max-value 2000000000 :hint "empty: none"))
  :conflict '("name" . "That user has a mailbox of that name already.")
  :insert-fn (lambda (v)
               (query "INSERT INTO mailboxes (user_id, name, max_bytes, max_messages) VALUES ($1, $2, $3, $4)"
                      (form-get v "user") (form-get v "name") (form-get v "max_bytes")
                      (form-get v "max_messages")))
  :delete-fn (lambda (id) (query "DELETE FROM mailboxes WHERE id = $1 RETURNING id" id))
  :extra-fn (lambda () (limits-form-html)))

(defun mailbox-choices ()
  (mapcar (lambda (r) (cons (first r) (second r)))
          (query "SELECT b.id, u.name || '@' || d.name || ' ' || b.name
                    FROM mailboxes b JOIN users u ON u.id = b.user_id JOIN domains d ON d.id = u.domain_id
                   ORDER BY d.name, u.name, b.name")))

(defparameter +limits-specs+
  `(("mailbox" "Mailbox" :integer :required t :input :select :choices mailbox-choices)
    ("new_max_bytes" "Size limit" :size :max-value ,(expt 2 62) :hint "empty: none")
    ("new_max_messages" "Message limit" :integer :min-value 0 :max-value 2000000000 :hint "empty: none")))

(defun limits-form-html ()
  (action-form-html "Set a mailbox's limits" "/admin/mailboxes/limits" "limits" +limits-specs+
                    "Set the limits"))

(defun limits-post ()
  (action-post +limits-specs+ "mailboxes"
               (lambda (clean)
                 (query "UPDATE mailboxes SET max_bytes = $2, max_messages = $3 WHERE id = $1 RETURNING id"
                        (form-get clean "mailbox") (form-get clean "new_max_bytes")
                        (form-get clean "new_max_messages")))
               "The limits were set." "No such mailbox."))

;;; Aliases

(define-resource "aliases"
  :title "Aliases" :singular "alias"
  :intro "An exact alias names one local part; a regex alias matches whole local parts (PostgreSQL regular expression). Exact aliases win, then a real user, then regex aliases by priority."
  :columns '("Domain" "Kind" "Pattern" "Target" "Priority")
  :list-fn (lambda ()
             (query "SELECT a.id, d.name, a.kind, a.pattern, a.target, a.priority
                       FROM aliases a JOIN domains d ON d.id = a.domain_id
                      ORDER BY d.name, a.kind, a.priority, a.pattern"))
  :specs `(("domain" "Domain" :integer :required t :input :select :choices domain-choices)
           ("kind" "Kind" :choice :required t :input :select
            :choices (("exact" . "exact local part") ("regex" . "regular expression")))
           ("pattern" "Pattern" :text :required t :max 255 :hint "postmaster, or ^info-[a-z0-9]+$ for a regex")
           ("target" "Deliver to" :address :required t :max 320 :hint "user@domain or user+mailbox@domain, in a local domain")
           ("priority" "Priority" :integer :min-value 0 :max-value 1000000 :default "100"))
  :check-fn (lambda (v)
              (append
               (let ((p (form-get v "pattern")))
                 (if (string= (form-get v "kind") "exact")
                     (unless (local-part-p (string-downcase p))
                       (list (cons "pattern" "An exact alias is a plain local part: letters, digits and . _ + -.")))
                     (let ((e (pg-regex-error p)))
                       (when e (list (cons "pattern" (format nil "Not a valid regular expression: ~a" e)))))))
               (let* ((target (form-get v "target"))
                      (domain (subseq target (1+ (position #\@ target :from-end t)))))
                 (unless (query-value "SELECT 1 FROM domains WHERE name = $1" domain)
                   (list (cons "target" (format nil "~a is not a local domain: aliases deliver locally only." domain)))))))
  :conflict '("pattern" . "That alias exists already.")
  :insert-fn (lambda (v)
               (query "INSERT INTO aliases (domain_id, kind, pattern, target, priority) VALUES ($1, $2, $3, $4, $5)"
                      (form-get v "domain") (form-get v "kind")
                      (if (string= (form-get v "kind") "exact")
                          (string-downcase (form-get v "pattern"))
                          (form-get v "pattern"))
                      (form-get v "target") (or (form-get v "priority") 100)))
  :delete-fn (lambda (id) (query "DELETE FROM aliases WHERE id = $1 RETURNING id" id)))

(defun pg-regex-error (pattern)
  "Returns NIL when PostgreSQL accepts PATTERN as a regular expression, else its message."
  (handler-case (progn (query "SELECT '' ~ $1" pattern) nil)
    (db-unavailable (e) (error e))
    (db-error (e) (if (equal (db-error-sqlstate e) "2201B")
                      (db-error-message e)
                      (error e)))))

;;; Header filter rules

(define-resource "header-filters"
  :title "Header filters" :singular "header filter"
  :intro "A message with a header field whose value matches the regular expression (Perl syntax, case-insensitive) is rejected (550), discarded, or tagged with X-Crow-Tag. Lower priorities are tried first; the first match wins."
  :columns '("Domain" "Header" "Regular expression" "Action" "Tag" "Priority" "Active")
  :toggles '((6 . "active"))
  :list-fn (lambda ()
             (mapcar (lambda (r)
                       (list (first r) (or (second r) "all domains") (third r) (fourth r) (fifth r)
                             (sixth r) (seventh r) (if (db-true-p (eighth r)) "yes" "no")))
                     (query "SELECT h.id, d.name, h.header, h.regex, h.action, h.tag, h.priority, h.active
                               FROM header_filters h LEFT JOIN domains d ON d.id = h.domain_id
                              ORDER BY h.priority, h.id")))
  :specs `(("domain" "Domain" :integer :input :select :choices domain-choices :none "all domains")
           ("header" "Header field" :header-name :required t :max 100 :hint "like Subject, or * for any field")
           ("regex" "Regular expression" :regex :required t :max 1000 :hint "Perl syntax, matched case-insensitively")
           ("action" "Action" :choice :required t :input :select
            :choices (("reject" . "reject (550)") ("discard" . "discard") ("tag" . "tag (X-Crow-Tag)")))
           ("tag" "Tag" :text :max 100 :hint "for the tag action: the X-Crow-Tag value")
           ("priority" "Priority" :integer :min-value 0 :max-value 1000000 :default "100")
           ("active" "Active" :boolean :input :checkbox :default t))
  :check-fn (lambda (v)
              (when (and (string= (form-get v "action") "tag") (null (form-get v "tag")))
                (list (cons "tag" "Required for the tag action."))))
  :insert-fn (lambda (v)
               (query "INSERT INTO header_filters (domain_id, header, regex, action, tag, priority, active)
                       VALUES ($1, $2, $3, $4, $5, $6, $7)"
                      (form-get v "domain") (form-get v "header") (form-get v "regex")
                      (form-get v "action") (or (form-get v "tag") "") (or (form-get v "priority") 100)
                      (if (form-get v "active") t :false)))
  :delete-fn (lambda (id) (query "DELETE FROM header_filters WHERE id = $1 RETURNING id" id)))

;;; The pages

(defun resource-path (r &optional (suffix "")) (url (format nil "/admin/~a~a" (resource-name r) suffix)))

(defun resource-page (r &key (status 200))
  (let ((rows (funcall (resource-list-fn r)))
        (extra (resource-extra-fn r)))
    (mail-page ((resource-title r) :status status)
      (:p (resource-intro r))
      (:if rows
           (:table :class "grid" :id (resource-name r)
             (:tr (:dolist (c (resource-columns r)) (:th c)) (:th ""))
             (:dolist (row rows)
               (:tr :class "row"
                 (:loop for cell in (rest row) for i from 0
                        do (:let ((toggle (assoc i (resource-toggles r))))
                             (:if toggle
                                  (:td (:form :method "post" :action (resource-path r "/toggle")
                                         (:call csrf-field)
                                         (:input :type "hidden" :name "id" :value (first row))
                                         (:input :type "hidden" :name "column" :value (cdr toggle))
                                         (:button :type "submit" :class "toggle" :title "Switch" cell)))
                                  (:td cell))))
                 (:td (:call delete-button (resource-path r "/delete") (first row)
                             (resource-singular r))))))
           (:p :class "empty" "None yet."))
      (:h2 "Add a " (resource-singular r))
      (:form :method "post" :action (resource-path r) :class "edit" :id "add-form"
        (:call csrf-field)
        (:call render-fields (resource-specs r))
        (:p (:button :type "submit" :id "add-submit" "Add")))
      (:when extra (:raw (funcall extra))))))

(defun %sqlstate-message (r e)
  "Returns the form error (FIELD . MESSAGE) for the db-error E adding to R, or NIL when it is
not one the administrator can fix in the form."
  (let ((state (db-error-sqlstate e)) (first-field (spec-name (first (resource-specs r)))))
    (cond ((equal state "23505") (or (resource-conflict r) (cons first-field "That exists already.")))
          ((equal state "23503") (cons first-field "It refers to something that was just deleted; reload the page."))
          ((equal state "23514") (cons first-field (format nil "The database refused a value: ~a" (db-error-message e))))
          ((equal state "2201B") (cons first-field (format nil "Not a valid regular expression: ~a" (db-error-message e)))))))

(defun resource-add-post (r)
  (multiple-value-bind (clean errors raw) (read-form (resource-specs r))
    (setf (ctx-values *ctx*) raw)
    (when (and (null errors) (resource-check-fn r))
      (setf errors (funcall (resource-check-fn r) clean)))
    (unless errors
      (handler-case (funcall (resource-insert-fn r) clean)
        (db-unavailable (e) (error e))
        (db-error (e)
          (let ((m (%sqlstate-message r e)))
            (if m (setf errors (list m)) (error e))))))
    (if errors
        (progn (setf (ctx-errors *ctx*) errors) (resource-page r :status 400))
        (progn
          (log-info "mail web: ~a added a ~a" (user-login (session-user)) (resource-singular r))
          (set-notice (format nil "The ~a was added." (resource-singular r)))
          (redirect (ctx-req *ctx*) (resource-path r) :status 303)))))

(defun resource-toggle-post (r)
  (let* ((req (ctx-req *ctx*))
         (id (http-param req "id" :from :post :type :integer))
         (column (find (http-param req "column" :from :post) (resource-toggles r)
                       :key #'cdr :test #'equal))
         (self (and (string= (resource-name r) "users") (eql id (getf (session-user) :id)))))
    (set-notice
     (cond ((or (null id) (null column)) "Nothing to switch.")
           (self "You cannot switch your own account's flags (ask another administrator).")
           ;; the column comes from the resource's own list, never from the request
           ((query (format nil "UPDATE ~a SET ~a = NOT ~a WHERE id = $1 RETURNING id"
                           (substitute #\_ #\- (resource-name r)) (cdr column) (cdr column))
                   id)
            (log-info "mail web: ~a switched ~a of ~a ~d" (user-login (session-user)) (cdr column)
                      (resource-singular r) id)
            (format nil "The ~a was switched." (nth (car column) (resource-columns r))))
           (t (format nil "No such ~a (deleted?)." (resource-singular r)))))
    (redirect req (resource-path r) :status 303)))

(defun resource-delete-post (r)
  (let ((id (http-param (ctx-req *ctx*) "id" :from :post :type :integer)))
    (multiple-value-bind (gone why) (and id (funcall (resource-delete-fn r) id))
      (when gone (log-info "mail web: ~a deleted ~a ~d" (user-login (session-user)) (resource-singular r) id))
      (set-notice (cond (gone (format nil "The ~a was deleted." (resource-singular r)))
                        (why why)
                        (t (format nil "No such ~a (already deleted?)." (resource-singular r)))))
      (redirect (ctx-req *ctx*) (resource-path r) :status 303))))

(defun admin-index ()
  (let ((counts (mapcar (lambda (r)
                          (cons r (query-value (format nil "SELECT count(*) FROM ~a"
                                                       (substitute #\_ #\- (resource-name r))))))
                        *resources*)))
    (mail-page ("Administration")
      (:ul :id "admin-menu"
        (:dolist (c counts)
          (:li (:a :href (resource-path (car c)) (resource-title (car c))) " (" (cdr c) ")"))))))
