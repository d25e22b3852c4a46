;;;; mime.lisp — file name extension -> media type: /etc/mime.types (read at start, before any
;;;; chroot) over a built-in table.

(in-package :crow.http)

(defparameter +builtin-mime-types+
  '(("html" . "text/html") ("htm" . "text/html") ("css" . "text/css") ("txt" . "text/plain")
    ("md" . "text/markdown") ("csv" . "text/csv") ("xml" . "application/xml")
    ("js" . "text/javascript") ("mjs" . "text/javascript") ("json" . "application/json")
    ("svg" . "image/svg+xml") ("png" . "image/png") ("jpg" . "image/jpeg")
    ("jpeg" . "image/jpeg") ("gif" . "image/gif") ("webp" . "image/webp")
    ("ico" . "image/vnd.microsoft.icon") ("pdf" . "application/pdf")
    ("wasm" . "application/wasm") ("woff" . "font/woff") ("woff2" . "font/woff2")
    ("ttf" . "font/ttf") ("mp4" . "video/mp4") ("webm" . "video/webm")
    ("mp3" . "audio/mpeg") ("ogg" . "audio/ogg") ("zip" . "application/zip")
    ("gz" . "application/gzip") ("tar" . "application/x-tar") ("lisp" . "text/plain")
    ("c" . "text/plain") ("h" . "text/plain"))
  "Types used when /etc/mime.types lacks the extension (or is absent).")

(defvar *mime-types* (make-hash-table :test 'equalp) "Extension (any case) -> media type.")
(defvar *default-type* "application/octet-stream")

(defun load-mime-types (&optional (path "/etc/mime.types"))
  "Fills *mime-types* from the built-in table and then PATH (lines `type ext ext...`, `#`
comments), whose entries win.  A missing PATH is not an error.  Returns the number of
extensions known."
  (clrhash *mime-types*)
  (loop for (ext . type) in +builtin-mime-types+ do (setf (gethash ext *mime-types*) type))
  (when (file-exists-p path)
    (let ((text (octets-to-string (read-file-octets path))))
      (with-input-from-string (s text)
        (loop for line = (read-line s nil) while line
              do (let* ((line (subseq line 0 (or (position #\# line) (length line))))
                        (words (split-words line)))
                   (when (and (rest words) (position #\/ (first words)))
                     (dolist (ext (rest words))
                       (setf (gethash ext *mime-types*) (first words)))))))))
  (hash-table-count *mime-types*))

(defun split-words (line)
  "Returns the blank-separated words of LINE."
  (let ((words '()) (start nil))
    (loop for i from 0 to (length line)
          for c = (if (< i (length line)) (char line i) #\Space)
          do (if (member c '(#\Space #\Tab #\Return #\Linefeed))
                 (when start (push (subseq line start i) words) (setf start nil))
                 (unless start (setf start i))))
    (nreverse words)))

(defun mime-type (name &optional (charset "utf-8"))
  "Returns the media type for file NAME by its extension; text types get CHARSET."
  (let* ((dot (position #\. name :from-end t))
         (slash (position #\/ name :from-end t))
         (type (or (and dot (or (null slash) (> dot slash))
                        (gethash (subseq name (1+ dot)) *mime-types*))
                   *default-type*)))
    (if (and charset (> (length type) 5) (string= "text/" type :end2 5))
        (concatenate 'string type "; charset=" charset)
        type)))
