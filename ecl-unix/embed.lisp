;;;; embed.lisp — bindings to c-core/embed: the files tools/embed-site compiled into this
;;;; executable (an empty table in programs built without one).

(in-package :crow.unix)

(ffi:clines "#include <string.h>" "#include \"embed.h\"")

(defun embedded-count ()
  "Returns the number of files embedded in this executable (0 without a generated table).
Can't fail."
  (ffi:c-inline () () :fixnum "@(return 0) = (cl_fixnum)crow_embed_count(NULL);" :one-liner nil))

(defun embedded-file (path)
  "Returns (values OCTETS MTIME) for the embedded file PATH (\"/dir/name\", a string of
Latin-1 characters; UTF-8 names as their bytes), a fresh copy of its bytes and its build-time
mtime, or NIL when no such file is embedded.  Can't fail."
  (let ((p (coerce path 'simple-base-string)))
    (let ((n (ffi:c-inline (p (length p)) (:object :fixnum) :fixnum
               "{ const struct crow_embed_file *f = crow_embed_lookup(NULL, (const char *)#0->base_string.self, (size_t)#1);
                  @(return 0) = f ? (cl_fixnum)f->len : -1; }")))
      (when (>= n 0)
        (let ((out (make-octets n)))
          (values out
                  (ffi:c-inline (p (length p) out) (:object :fixnum :object) :int64-t
                    "{ const struct crow_embed_file *f = crow_embed_lookup(NULL, (const char *)#0->base_string.self, (size_t)#1);
                       if (f) memcpy(#2->vector.self.b8, f->data, #2->vector.dim);
                       @(return 0) = f ? f->mtime : 0; }")))))))

(defun embedded-paths ()
  "Returns the paths of the embedded files, in table (byte) order.  Can't fail."
  (loop for i below (embedded-count)
        collect (ffi:c-inline (i) (:fixnum) :object
                  "{ const struct crow_embed_file *f = crow_embed_at(NULL, (size_t)#0);
                     @(return 0) = ecl_make_simple_base_string((char *)f->path, (cl_fixnum)f->path_len); }")))

(defun embedded-name ()
  "Returns the program name embedded with the files (make site NAME=PROG) as a string, or NIL
in a program built without one.  Can't fail."
  (let ((n (ffi:c-inline () () :fixnum
             "@(return 0) = crow_embedded_name ? (cl_fixnum)strlen(crow_embedded_name) : -1;")))
    (when (>= n 0)
      (let ((out (make-octets n)))
        (ffi:c-inline (out) (:object) :void
          "{ memcpy(#0->vector.self.b8, crow_embedded_name, #0->vector.dim); }")
        (octets-to-string out)))))

(defun embedded-config ()
  "Returns the configuration text embedded with the files (make site CONFIG=FILE), decoded
as UTF-8, or NIL when there is none.  Can't fail."
  (let ((n (ffi:c-inline () () :fixnum
             "@(return 0) = crow_embedded_config ? (cl_fixnum)strlen(crow_embedded_config) : -1;")))
    (when (>= n 0)
      (let ((out (make-octets n)))
        (ffi:c-inline (out) (:object) :void
          "{ memcpy(#0->vector.self.b8, crow_embedded_config, #0->vector.dim); }")
        (octets-to-string out)))))
