;;;; layout.lisp — the app's page layout and form pieces: one page macro (compiled into each
;;;; handler), form fields that show the submitted value and their error beside them, the CSRF
;;;; field, and the one-time notice a redirect after a POST leaves for the next page.

(in-package :crow.mailweb)

(defparameter *style* "
body{font-family:sans-serif;margin:0;background:#f4f1ea;color:#222}
header{background:#263238;color:#eee;padding:.6em 1.5em}
header a,header button{color:#cfe;text-decoration:none;margin-right:1em;background:none;border:0;font:inherit;cursor:pointer;padding:0}
header form{display:inline;margin:0;padding:0;border:0;background:none}
header .who{float:right;color:#9ab}
main{padding:1em 2em;max-width:64em}
h1{border-bottom:2px solid #263238}
table.grid{border-collapse:collapse;margin:.5em 0}table.grid td,table.grid th{border:1px solid #aaa;padding:.2em .5em;text-align:left;vertical-align:top}
table.grid form{margin:0;padding:0;border:0;background:none}
form.edit{background:#fff;border:1px solid #ccc;padding:.7em;margin:.7em 0;max-width:40em}
.field label{display:inline-block;width:11em}
.field.bad input,.field.bad select{border:2px solid #b00020}
.error{color:#b00020;display:block;margin-left:11rem;font-size:.9em}
.hint{color:#666;display:block;margin-left:11rem;font-size:.85em}
.errors{background:#fde;border:1px solid #b00020;padding:.3em 1em;margin:.7em 0}
.notice{background:#e6f4ea;border:1px solid #2e7d32;padding:.5em 1em;margin:.7em 0}
.bar{display:inline-block;width:10em;height:.8em;background:#ddd;vertical-align:middle}
.bar span{display:block;height:100%;background:#2e7d32}
.bar.full span{background:#b00020}
footer{margin-top:2em;font-size:.8em;color:#666}")

(defparameter +page-headers+
  '(("Cache-Control" . "no-store")
    ("X-Frame-Options" . "DENY")
    ("X-Content-Type-Options" . "nosniff")
    ("Referrer-Policy" . "same-origin")
    ("Content-Security-Policy"
     . "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"))
  "Every page of the app: not cached, never framed, no script at all.")

(defun url (path)
  "Returns the app's URL for PATH (starting with /)."
  (concatenate 'string *mount* path))

(defun take-notice ()
  "Returns the session's one-time notice and clears it, or NIL."
  (let ((s (ctx-session *ctx*)))
    (when s
      (let ((n (session-value s :notice)))
        (when n (setf (session-value s :notice) nil))
        n))))

(defun set-notice (text)
  "Leaves TEXT for the next page the session sees.  Returns TEXT."
  (let ((s (ctx-session *ctx*)))
    (when s (setf (session-value s :notice) text))
    text))

(define-template csrf-field ()
  (:input :type "hidden" :name "csrf" :value (ctx-csrf)))

(define-template nav-bar ()
  (:let ((user (session-user)))
    (:header
      (:a :href (url "/") "crow mail")
      (:when user
        (:a :href (url "/") "My mailboxes and filters")
        (:when (getf user :admin)
          (:a :href (url "/admin/") "Administration"))
        (:span :class "who" "Signed in as " (:b :id "who" (user-login user)) " "
          (:form :method "post" :action (url "/logout")
            (:call csrf-field)
            (:button :type "submit" :id "logout" "Log out")))))))

(define-template error-summary ()
  (:let ((errors (ctx-errors *ctx*)))
    (:when errors
      (:div :class "errors" :role "alert" :id "errors"
        (:p (:b "The form was not accepted: ") (length errors)
            (if (= (length errors) 1) " field needs" " fields need") " a change.")
        (:ul (:dolist (e errors)
               (:li (:a :href (concatenate 'string "#f-" (car e))
                      (or (cdr (assoc (car e) (ctx-labels *ctx*) :test #'string=)) (car e)))
                    ": " (cdr e))))))))

(defmacro mail-page ((title &key (status 200)) &body body)
  "Answers the current request with the app's layout around BODY (a template) titled TITLE."
  `(respond-html ((ctx-req *ctx*) :status ,status :headers +page-headers+)
     (:doctype)
     (:html :lang "en"
       (:head (:meta :charset "utf-8")
              (:meta :name "viewport" :content "width=device-width")
              (:title "crow mail — " ,title)
              (:style (:raw *style*)))
       (:body
        (:call nav-bar)
        (:main
          (:h1 ,title)
          (:let ((notice (take-notice)))
            (:when notice (:p :class "notice" :id "notice" notice)))
          (:call error-summary)
          ,@body
          (:footer "crow mail (crow.mailweb on crow-httpd " *version* ")"))))))

;;; Form fields.  The value shown is the one submitted when the page answers a failed POST,
;;; else the DEFAULT given; the error of the field, if any, is beside it.

(defun submitted (name &optional default)
  "The value submitted for NAME on the page being answered, else DEFAULT."
  (let ((v (assoc name (ctx-values *ctx*) :test #'string=)))
    (if v (cdr v) default)))

(defun %id (name) (concatenate 'string "f-" name))
(defun %err-id (name) (concatenate 'string "err-" name))

(define-template field-tail (name hint)
  (:let ((err (field-error (ctx-errors *ctx*) name)))
    (:when hint (:small :class "hint" hint))
    (:when err (:span :class "error" :id (%err-id name) err))))

(define-template text-field (name label &key (type "text") default hint (size 30))
  (:let ((err (field-error (ctx-errors *ctx*) name)))
    (:p :class (if err "field bad" "field")
      (:label :for (%id name) label)
      (:input :id (%id name) :name name :type type :size size
              :value (if (string= type "password") nil (submitted name default))
              :aria-invalid (and err "true") :aria-describedby (and err (%err-id name)))
      (:call field-tail name hint))))

(define-template select-field (name label choices &key default hint)
  ;; CHOICES: (VALUE . LABEL) pairs.
  (:let ((err (field-error (ctx-errors *ctx*) name))
         (current (submitted name default)))
    (:p :class (if err "field bad" "field")
      (:label :for (%id name) label)
      (:select :id (%id name) :name name :aria-invalid (and err "true")
        (:dolist (c choices)
          (:option :value (car c) :selected (equal (car c) current) (cdr c))))
      (:call field-tail name hint))))

(define-template check-field (name label &key default hint)
  (:let ((err (field-error (ctx-errors *ctx*) name))
         (on (let ((v (submitted name :none)))
               (if (eq v :none) default (and v (plusp (length v)))))))
    (:p :class (if err "field bad" "field")
      (:label :for (%id name) label)
      (:input :id (%id name) :name name :type "checkbox" :value "yes" :checked on)
      (:call field-tail name hint))))

(define-template delete-button (action id what)
  (:form :method "post" :action action
    (:call csrf-field)
    (:input :type "hidden" :name "id" :value id)
    (:button :type "submit" :class "delete" :title (concatenate 'string "Delete " what) "Delete")))

(defun format-size (n)
  "Returns N octets in a short human form: 512 B, 4.0 KiB, 1.5 MiB, 2.0 GiB."
  (cond ((null n) "—")
        ((< n 1024) (format nil "~d B" n))
        ((< n (* 1024 1024)) (format nil "~,1f KiB" (/ n 1024.0)))
        ((< n (* 1024 1024 1024)) (format nil "~,1f MiB" (/ n 1048576.0)))
        (t (format nil "~,1f GiB" (/ n 1073741824.0)))))

(define-template usage-bar (used limit)
  (:if (and limit (plusp limit))
       (:let ((pct (min 100 (floor (* 100 used) limit))))
         (:span :class (if (>= pct 90) "bar full" "bar") :title (format nil "~d%" pct)
           (:span :style (format nil "width:~d%" pct)))
         " " (format nil "~d%" pct))
       "no limit"))
