/* fuzz_ircfmt.c — differential fuzzing of c-core/ircfmt against a naive reference written
 * from the definition of mIRC formatting codes, out of place and in place.  abort() on any
 * mismatch; the input is copied into a buffer of exactly its size, so ASan catches a read
 * past the end.  Planted bug (CROW_PLANTED_BUG): the background comma check reads one byte
 * past the end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ircfmt.h"

static int digit(uint8_t c) { return c >= '0' && c <= '9'; }
static int hex(uint8_t c) { return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* The reference: one code at a time, straight from the definition. */
static size_t ref_strip(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t c = in[i++];
        if (c == 3 || c == 4) {
            int (*ok)(uint8_t) = c == 3 ? digit : hex;
            size_t max = c == 3 ? 2 : 6, k = 0;
            while (k < max && i < n && ok(in[i])) { i++; k++; }
            if (k && i + 1 < n && in[i] == ',' && ok(in[i + 1])) {
                i++;
                for (k = 0; k < max && i < n && ok(in[i]); k++) i++;
            }
        } else if (c == 2 || c == 15 || c == 17 || c == 22 || c == 29 || c == 30 || c == 31) {
            /* a toggle: dropped */
        } else {
            out[o++] = c;
        }
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *in = malloc(size ? size : 1), *a = malloc(size ? size : 1), *b = malloc(size ? size : 1);
    if (!in || !a || !b)
        abort();
    memcpy(in, data, size);
    size_t na = crow_ircfmt_strip(in, size, a);
    size_t nb = ref_strip(in, size, b);
    if (na != nb || memcmp(a, b, na))
        abort();
    size_t nc = crow_ircfmt_strip(in, size, in);        /* in place */
    if (nc != na || memcmp(in, a, na))
        abort();
    free(in);
    free(a);
    free(b);
    return 0;
}
