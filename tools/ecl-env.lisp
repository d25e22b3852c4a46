;;;; ecl-env.lisp — ASDF set-up shared by build.lisp, the Lisp test runner and tools:
;;;; the checkout as a source directory, fasls cached under build/asdf/.
(require :asdf)
(defparameter cl-user::*crow-root*
  (uiop:pathname-parent-directory-pathname (uiop:pathname-directory-pathname *load-truename*)))
(asdf:initialize-source-registry
 `(:source-registry (:directory ,cl-user::*crow-root*) :inherit-configuration))
(asdf:initialize-output-translations
 `(:output-translations (t (,(merge-pathnames "build/asdf/" cl-user::*crow-root*) :**/ :*.*.*))
                        :inherit-configuration))
