;;;; fs.lisp — file system: stat/fstat/lstat with a struct stat held in an octet vector,
;;;; mkdir, rmdir, unlink, rename, directory listing.

(in-package :crow.unix)

(ffi:clines "#include <sys/stat.h>" "#include <sys/types.h>" "#include <dirent.h>"
            "#include <stdio.h>" "#include <string.h>" "#include <errno.h>" "#include <unistd.h>"
            "#include <fcntl.h>" "#include \"fdio.h\"")

;;; A struct stat lives in a Lisp octet vector (the GC does not move it), filled by the C call
;;; and read through one accessor per field.  Each accessor is declaimed inline, so compiled
;;; code reads the field with one C expression; the same function, compiled, serves the REPL
;;; and interpreted code.  Fields are SETF-able (for tests and for building a stat to compare).

(defmacro define-c-struct-accessors (struct-name c-type &body fields)
  "Defines MAKE-<STRUCT-NAME> and, for each (NAME C-FIELD LISP-TYPE C-TYPE), an inline
accessor <STRUCT-NAME>-<NAME> with a SETF function."
  (let ((maker (intern (format nil "MAKE-~a" struct-name))))
    `(progn
       (defun ,maker ()
         ,(format nil "Returns a zeroed octet vector the size of ~a." c-type)
         (make-octets (ffi:c-inline () () :int ,(format nil "sizeof(~a)" c-type) :one-liner t)))
       ,@(loop for (name cfield ltype ctype) in fields
               for acc = (intern (format nil "~a-~a" struct-name name))
               append
               `((declaim (inline ,acc (setf ,acc)))
                 (defun ,acc (buf)
                   ,(format nil "Returns the ~a field of the ~a in BUF." cfield c-type)
                   (declare (type octets buf))
                   (ffi:c-inline (buf) (:object) ,ltype
                     ,(format nil "(~a)((~a *)#0->vector.self.b8)->~a" ctype c-type cfield)
                     :one-liner t :side-effects nil))
                 (defun (setf ,acc) (value buf)
                   (declare (type octets buf))
                   (ffi:c-inline (value buf) (,ltype :object) ,ltype
                     ,(format nil "((~a *)#1->vector.self.b8)->~a = (~a)#0" c-type cfield ctype)
                     :one-liner t)))))))

(define-c-struct-accessors stat "struct stat"
  (dev "st_dev" :uint64-t "uint64_t")
  (ino "st_ino" :uint64-t "uint64_t")
  (mode "st_mode" :uint32-t "uint32_t")
  (nlink "st_nlink" :uint64-t "uint64_t")
  (uid "st_uid" :uint32-t "uint32_t")
  (gid "st_gid" :uint32-t "uint32_t")
  (rdev "st_rdev" :uint64-t "uint64_t")
  (size "st_size" :int64-t "int64_t")
  (blksize "st_blksize" :int64-t "int64_t")
  (blocks "st_blocks" :int64-t "int64_t")
  (atime "st_atim.tv_sec" :int64-t "int64_t")
  (mtime "st_mtim.tv_sec" :int64-t "int64_t")
  (mtime-nsec "st_mtim.tv_nsec" :int64-t "int64_t")
  (ctime "st_ctim.tv_sec" :int64-t "int64_t"))

(defun stat-type (buf)
  "Returns the file type of the struct stat in BUF: :regular, :directory, :symlink, :fifo,
:socket, :character-device or :block-device."
  (let ((fmt (logand (stat-mode buf) #o170000)))
    (case fmt
      (#o100000 :regular) (#o040000 :directory) (#o120000 :symlink) (#o010000 :fifo)
      (#o140000 :socket) (#o020000 :character-device) (#o060000 :block-device)
      (t :unknown))))

(defun %stat (path buf follow)
  (let ((c (string-to-c path)))
    (ffi:c-inline (c buf follow) (:object :object :bool) (values :int :int)
      "{ struct stat *st = (struct stat *)#1->vector.self.b8;
         int r = #2 ? stat((char *)#0->vector.self.b8, st) : lstat((char *)#0->vector.self.b8, st);
         @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")))

(defun stat (path &optional (buf (make-stat)))
  "Fills BUF (a fresh one by default) with stat(2) of PATH and returns it.  Signals unix-error
(ENOENT, EACCES, ...) with the path."
  (check-syscall ("stat" path) (%stat path buf t))
  buf)

(defun lstat (path &optional (buf (make-stat)))
  "Like stat, but a symbolic link describes itself.  Signals unix-error."
  (check-syscall ("lstat" path) (%stat path buf nil))
  buf)

(defun fstat (fd &optional (buf (make-stat)))
  "Fills BUF with fstat(2) of descriptor FD and returns it.  Signals unix-error."
  (check-syscall ("fstat")
    (ffi:c-inline (fd buf) (:int :object) (values :int :int)
      "{ int r = fstat(#0, (struct stat *)#1->vector.self.b8); @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))
  buf)

(defun file-exists-p (path)
  "Returns true when PATH names an existing file (following symlinks).  Can't fail."
  (zerop (values (%stat path (make-stat) t))))

(defmacro define-path-call (name syscall doc (&rest extra) c-call)
  `(defun ,name (path ,@extra)
     ,doc
     (let ((c (string-to-c path)))
       (check-syscall (,syscall path)
         (ffi:c-inline (c ,@extra) (:object ,@(mapcar (constantly :int) extra)) (values :int :int)
           ,(format nil "{ int r = ~a; @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }" c-call)))
       nil)))

(define-path-call mkdir "mkdir" "Creates directory PATH with MODE.  Signals unix-error (EEXIST...)."
  (mode) "mkdir((char *)#0->vector.self.b8, (mode_t)#1)")
(define-path-call rmdir "rmdir" "Removes the empty directory PATH.  Signals unix-error." ()
  "rmdir((char *)#0->vector.self.b8)")
(define-path-call unlink "unlink" "Removes the file PATH.  Signals unix-error." ()
  "unlink((char *)#0->vector.self.b8)")

(defun rename (from to)
  "Renames FROM to TO atomically (replacing TO).  Signals unix-error with FROM."
  (let ((a (string-to-c from)) (b (string-to-c to)))
    (check-syscall ("rename" from)
      (ffi:c-inline (a b) (:object :object) (values :int :int)
        "{ int r = rename((char *)#0->vector.self.b8, (char *)#1->vector.self.b8);
           @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }"))
    nil))

(defun read-directory (path)
  "Returns the names in directory PATH (without . and ..), unsorted, as strings.  Signals
unix-error (ENOENT, ENOTDIR, EACCES) with the path."
  (let ((c (string-to-c path))
        (names '()))
    (multiple-value-bind (dir errno)
        (ffi:c-inline (c) (:object) (values :pointer-void :int)
          "{ DIR *d = opendir((char *)#0->vector.self.b8); @(return 0) = d; @(return 1) = d ? 0 : errno; }")
      (when (ffi:null-pointer-p dir)
        (unix-error errno "opendir" path))
      (unwind-protect
           (loop
             (multiple-value-bind (name err)
                 (ffi:c-inline (dir) (:pointer-void) (values :object :int)
                   "{ struct dirent *e; errno = 0;
                      do e = readdir((DIR *)#0);
                      while (e && (!strcmp(e->d_name, \".\") || !strcmp(e->d_name, \"..\")));
                      if (e) { size_t n = strlen(e->d_name);
                               cl_object v = ecl_alloc_simple_vector(n, ecl_aet_b8);
                               memcpy(v->vector.self.b8, e->d_name, n);
                               @(return 0) = v; @(return 1) = 0; }
                      else { @(return 0) = ECL_NIL; @(return 1) = errno; } }")
               (cond (name (push (octets-to-string name) names))
                     ((zerop err) (return))
                     (t (unix-error err "readdir" path)))))
        (ffi:c-inline (dir) (:pointer-void) :void "closedir((DIR *)#0)" :one-liner t)))
    names))

(defun read-file-octets (path)
  "Returns the whole contents of the file PATH as an octet vector.  Signals unix-error."
  (with-fd (fd (open-fd path))
    (let* ((size (stat-size (fstat fd)))
           (buf (make-octets size))
           (got (if (zerop size) 0
                    (check-syscall ("read" path)
                      (ffi:c-inline (fd buf size) (:int :object :fixnum) (values :long :int)
                        "{ ssize_t r = crow_fd_read_full(#0, #1->vector.self.b8, (size_t)#2);
                           @(return 0) = r; @(return 1) = r < 0 ? errno : 0; }")))))
      (if (= got size) buf (subseq buf 0 got)))))

(define-path-call chmod "chmod" "Sets PATH's permission bits to MODE.  Signals unix-error." (mode)
  "chmod((char *)#0->vector.self.b8, (mode_t)#1)")

(define-path-call lchown "lchown"
  "Gives PATH (a symbolic link itself, not its target) to user UID and group GID (-1 leaves
one unchanged).  Signals unix-error." (uid gid)
  "lchown((char *)#0->vector.self.b8, (uid_t)#1, (gid_t)#2)")
