/* inline.h — C headers the inline accessors of crow.unix need.  ECL inlines those accessors
 * into whichever file calls them, so crow.asd passes `-include` of this file to every
 * compilation of crow's Lisp code. */
#ifndef CROW_ECL_INLINE_H
#define CROW_ECL_INLINE_H
#include <stdint.h>
#include <errno.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/epoll.h>
#include "evloop.h"
#include "html-inline.h"
#endif
