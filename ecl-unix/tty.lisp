;;;; tty.lisp — terminals: turning echo off for password prompts (mmftpasswd).

(in-package :crow.unix)

(ffi:clines "#include <errno.h>" "#include <termios.h>")

(defun terminal-echo (fd on)
  "Turns echo of terminal FD on or off (ON true/NIL).  Returns whether echo was on before, so
the caller can restore it; NIL when FD is not a terminal (nothing changed).  Can't fail."
  (let ((r (ffi:c-inline (fd on) (:int :bool) :int
             "{ struct termios t; int was = -1;
                if (tcgetattr(#0, &t) == 0) {
                  was = (t.c_lflag & ECHO) != 0;
                  if (#1) t.c_lflag |= ECHO; else t.c_lflag &= ~ECHO;
                  tcsetattr(#0, TCSAFLUSH, &t); }
                @(return) = was; }")))
    (= r 1)))
