;;;; forms.lisp — a form described once as field specs: the same list reads and checks the
;;;; submitted values, keeps them for a page answering with errors, and renders the inputs.
;;;; A spec is (NAME LABEL KIND &key input choices required max min-value max-value hint
;;;; default): KIND as for check-value; INPUT :text (the default), :password, :select (CHOICES
;;;; a list of (VALUE . LABEL) or a function name returning one) or :checkbox.

(in-package :crow.mailweb)

(defun spec-name (spec) (first spec))
(defun spec-label (spec) (second spec))
(defun spec-kind (spec) (third spec))
(defun spec-option (spec key &optional default) (getf (cdddr spec) key default))

(defun spec-choices (spec)
  (let ((c (spec-option spec :choices)))
    (if (and c (symbolp c)) (funcall c) c)))

(defun read-form (specs)
  "Reads and checks the POSTed fields SPECS describe.  Returns (values CLEAN ERRORS RAW):
CLEAN an alist NAME -> checked value, ERRORS an alist NAME -> message in the specs' order,
RAW an alist NAME -> submitted string (NIL when absent) for redisplay."
  (let ((clean '()) (errors '()) (raw '()) (req (ctx-req *ctx*)))
    (dolist (s specs)
      (push (cons (spec-name s) (spec-label s)) (ctx-labels *ctx*))
      (let* ((name (spec-name s))
             (v (http-param req name :from :post))
             (kind (spec-kind s)))
        (push (cons name (if (eq kind :password) nil v)) raw)
        (multiple-value-bind (c e)
            (if (eq (spec-option s :input) :select)
                (let ((choices (spec-choices s)))
                  (cond ((and (or (null v) (string= v "")) (not (spec-option s :required)))
                         (values nil nil))
                        ((or (null v) (string= v "")) (values nil "Required."))
                        ((find v choices :key #'car :test #'equal)
                         (if (eq kind :integer) (check-value v :integer) (values v nil)))
                        (t (values nil "Choose one of the listed values."))))
                (check-value v kind :required (spec-option s :required)
                                    :max (spec-option s :max 255)
                                    :min-value (spec-option s :min-value)
                                    :max-value (spec-option s :max-value)
                                    :choices (spec-option s :choices)))
          (if e (push (cons name e) errors) (push (cons name c) clean)))))
    (values (nreverse clean) (nreverse errors) (nreverse raw))))

(defun form-get (clean name)
  "The checked value of NAME in CLEAN (read-form's first value)."
  (cdr (assoc name clean :test #'string=)))

(define-template render-fields (specs)
  (:dolist (s specs)
    (:let ((name (spec-name s)) (label (spec-label s)) (hint (spec-option s :hint))
           (default (spec-option s :default)) (input (spec-option s :input :text)))
      (:cond
        ((eq input :select)
         (:call select-field name label
                (let ((c (spec-choices s)))
                  (if (spec-option s :required) c (cons (cons "" (spec-option s :none "—")) c)))
                :default default :hint hint))
        ((eq input :checkbox) (:call check-field name label :default default :hint hint))
        ((eq input :password) (:call text-field name label :type "password" :hint hint))
        (t (:call text-field name label :default default :hint hint))))))
