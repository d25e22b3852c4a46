/* fuzz_maildata.c — c-core/maildata: POP3 stuffing against a naive stuffer written from RFC
 * 1939 3 (whole message and TOP), its exact size function, and the header scan's invariants
 * (every offset and length inside the message).  abort() on any mismatch.
 * Input: byte 0 picks RETR (>= 128) or TOP with byte0 % 8 body lines; the rest is the message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maildata.h"

static size_t naive(const uint8_t *m, size_t len, long lines, uint8_t *out)
{
    size_t o = 0, pos = 0;
    long body = -1;
    while (pos < len) {
        size_t end = pos;
        while (end < len && m[end] != '\n')
            end++;
        if (end < len)
            end++;                                  /* the line with its LF */
        if (lines >= 0 && body >= lines)
            break;
        if (m[pos] == '.')
            out[o++] = '.';
        memcpy(out + o, m + pos, end - pos);
        o += end - pos;
        if (body >= 0)
            body++;
        else if ((end - pos == 2 && m[pos] == '\r' && m[pos + 1] == '\n') ||
                 (end - pos == 1 && m[pos] == '\n'))
            body = 0;
        pos = end;
    }
    if (pos == len && len > 0 && m[len - 1] != '\n') {
        out[o++] = '\r';
        out[o++] = '\n';
    }
    memcpy(out + o, ".\r\n", 3);
    return o + 3;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    long lines = data[0] >= 128 ? -1 : (long)(data[0] % 8);
    const uint8_t *m = data + 1;
    size_t len = size - 1;
    uint8_t *want = malloc(2 * len + 8);
    size_t wn = naive(m, len, lines, want);
    size_t need = crow_maildata_pop3_size(m, len, lines);
    uint8_t *got = malloc(need ? need : 1);
    size_t gn = crow_maildata_pop3(m, len, lines, got, need);
    if (need != wn || gn != wn || memcmp(got, want, wn) != 0)
        abort();
    struct crow_maildata_info in;
    crow_maildata_scan(m, len, &in);
    if (in.header_len > len || in.max_line > len || in.max_field > len ||
        in.received > in.fields || (len > 0 && (in.flags & CROW_MAILDATA_F_NO_BODY) && in.header_len != len))
        abort();
    free(want);
    free(got);
    return 0;
}
