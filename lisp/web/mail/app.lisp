;;;; app.lisp — the handler crow-httpd routes /mail to: finds the session, refuses a POST
;;;; without the session's CSRF token, sends logged-out users to the login page and
;;;; non-administrators away from /mail/admin/, and turns database trouble into a page.

(in-package :crow.mailweb)

(defun simple-page (status title text &key link)
  (mail-page (title :status status)
    (:p :id "message" text)
    (:when link (:p (:a :href (car link) (cdr link))))))

(defun unavailable-page (why)
  (simple-page 503 "Mail administration unavailable"
               (format nil "The mail database ~a. Nothing was changed; try again later." why)))

(defun csrf-failure ()
  (simple-page 403 "Form refused"
               "This form was refused because it did not carry this session's security token (CSRF check): it may come from another site, or from a page older than your session. Open the page again and resubmit."
               :link (cons (url "/") "Back to your mail")))

(defun refresh-user ()
  "Re-reads the session's user from the database (an administrator may have disabled,
deleted or demoted them since the login): updates the session, or logs it out when the user
is gone or inactive.  Returns the user plist or NIL."
  (let ((user (session-user)))
    (when user
      (let ((row (query-row "SELECT is_admin, active FROM users WHERE id = $1" (getf user :id))))
        (if (and row (db-true-p (second row)))
            (let ((admin (db-true-p (first row))))
              (unless (eq admin (getf user :admin))
                (setf user (list* :admin admin (loop for (k v) on user by #'cddr
                                                      unless (eq k :admin) append (list k v)))
                      (session-value (ctx-session *ctx*) :user) user))
              user)
            (progn (setf (session-value (ctx-session *ctx*) :user) nil) nil))))))

(defun %dispatch (method sub)
  "Answers the request for the app path SUB (after the mount point) by METHOD."
  (let ((user (refresh-user)) (post (eq method :post)))
    (flet ((need-login ()
             (redirect (ctx-req *ctx*) (url "/login") :status 303))
           (not-found () (simple-page 404 "Not found" "There is no such page here."
                                      :link (cons (url "/") "Back to your mail"))))
      (cond
        ((string= sub "/login") (if post (login-post) (login-page)))
        ((string= sub "/logout") (if post (logout-post) (redirect (ctx-req *ctx*) (url "/") :status 303)))
        ((null user) (need-login))
        ((string= sub "/") (if post (not-found) (home-page)))
        ((string= sub "/filters") (if post (filter-add-post) (redirect (ctx-req *ctx*) (url "/"))))
        ((string= sub "/password") (if post (own-password-post) (redirect (ctx-req *ctx*) (url "/"))))
        ((string= sub "/filters/delete") (if post (filter-delete-post) (redirect (ctx-req *ctx*) (url "/"))))
        ((and (>= (length sub) 6) (string= sub "/admin" :end1 6))
         (if (not (getf user :admin))
             (simple-page 403 "Administrators only"
                          "This part is for mail administrators; your account is not one."
                          :link (cons (url "/") "Back to your mail"))
             (let* ((rest (string-trim "/" (subseq sub 6)))
                    (slash (position #\/ rest))
                    (name (subseq rest 0 slash))
                    (action (and slash (subseq rest (1+ slash))))
                    (r (find-resource name)))
               (cond ((string= rest "") (if post (not-found) (admin-index)))
                     ((and (string= name "users") (equal action "password") post) (password-post))
                     ((and (string= name "mailboxes") (equal action "limits") post) (limits-post))
                     ((null r) (not-found))
                     ((null action) (if post (resource-add-post r) (resource-page r)))
                     ((and (string= action "delete") post) (resource-delete-post r))
                     ((and (string= action "toggle") post (resource-toggles r)) (resource-toggle-post r))
                     (t (not-found))))))
        (t (not-found))))))

(define-handler app (req)
  "crow-httpd's handler for the mount point (route /mail crow.mailweb:app GET,HEAD,POST)."
  (let* ((path (request-path req))
         (sub (subseq path (min (length path) (length *mount*))))
         (method (request-method req)))
    (if (string= sub "")
        (redirect req (url "/") :status 301)
        (http-let (req (token :string nil :from :post :name "csrf"))
          (let ((*ctx* (make-ctx req (current-session req))))
            (handler-case
                (cond ((null (conninfo))
                       (simple-page 503 "Mail administration not configured"
                                    "No mail database is configured for this server: set mail-conninfo in crow-httpd's configuration (for make run: etc/httpd.conf)."))
                      ((and (eq method :post) (not (csrf-valid-p (ctx-session *ctx*) token)))
                       (log-warn "mail web: CSRF check failed for ~a ~a from ~a"
                                 method path (request-peer req))
                       (csrf-failure))
                      (t (%dispatch method sub)))
              (db-unavailable (e)
                (log-warn "mail web: ~a" e)
                (unavailable-page "cannot be reached"))
              (db-error (e)
                (log-warn "mail web: ~a ~a: ~a" method path e)
                (simple-page 500 "Database error"
                             "The mail database refused the request; nothing was changed."
                             :link (cons (url "/") "Back to your mail")))))))))
