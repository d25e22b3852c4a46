/* html-inline.h — helpers for the C blocks crow.web's templates compile into: the room a
 * dynamic value needs and writing it escaped as UTF-8 (c-core/html), on ECL objects.  Forced
 * into every compilation through inline.h, since the blocks land in the user's files. */
#ifndef CROW_ECL_HTML_INLINE_H
#define CROW_ECL_HTML_INLINE_H
#include <string.h>
#include <ecl/ecl.h>
#include "html.h"

/* Returns the most bytes crow_web_text writes for V: NIL, a fixnum, an 8-bit or a wide
 * string.  For any other object sets *OK to 0 (the template then takes its Lisp path). */
static inline size_t crow_web_need(cl_object v, int *ok)
{
    if (Null(v))
        return 0;
    if (ECL_FIXNUMP(v))
        return 21;
    if (!ECL_IMMEDIATE(v)) {
        if (ecl_t_of(v) == t_base_string)
            return CROW_HTML_ESCAPE_MAX * v->base_string.fillp;
        if (ecl_t_of(v) == t_string)
            return CROW_HTML_ESCAPE_MAX * v->string.fillp;
    }
    *ok = 0;
    return 0;
}

/* Writes V (one crow_web_need accepted) at O: NIL nothing, a fixnum in decimal, a string
 * escaped.  Returns the position after it. */
static inline uint8_t *crow_web_text(uint8_t *o, cl_object v)
{
    if (Null(v))
        return o;
    if (ECL_FIXNUMP(v)) {
        cl_fixnum x = ecl_fixnum(v);
        uint64_t m = x < 0 ? -(uint64_t)x : (uint64_t)x;
        char tmp[24];
        int k = 0;
        do tmp[k++] = (char)('0' + m % 10); while (m /= 10);
        if (x < 0)
            *o++ = '-';
        while (k)
            *o++ = (uint8_t)tmp[--k];
        return o;
    }
    if (ecl_t_of(v) == t_base_string)
        return o + crow_html_escape_latin1((const uint8_t *)v->base_string.self, v->base_string.fillp, o);
    return o + crow_html_escape_utf32((const uint32_t *)v->string.self, v->string.fillp, o);
}
#endif
