/* fuzz_statlog.c — libFuzzer target for mmstatd's log frames (c-core/statlog): whatever the
 * bytes, checking and finding frames never reads outside the buffer, and a frame the checker
 * accepts walks to exactly its op count with every key and text byte printable and inside.
 *
 * Input: byte 0 even — the rest is the ops of one frame whose head (op count = byte 1) and
 * CRC are made here, so the checker's op validation is what is fuzzed; odd — the rest is a
 * raw log.  Buffers are heap copies of the exact size, so ASan sees any over-read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mmstat_wire.h"
#include "statlog.h"

static void walk(const unsigned char *buf, size_t start, size_t end, uint32_t nops)
{
    struct crow_statlog_iter it;
    crow_statlog_iter_init(&it, buf + start, end - start);
    uint32_t n = 0;
    while (crow_statlog_iter_next(&it)) {
        if (it.type < MMSTAT_OP_UPDATE || it.type > MMSTAT_OP_META || it.keylen == 0 ||
            it.keylen > MMSTAT_KEY_MAX || it.textlen > MMSTAT_TEXT_MAX)
            abort();
        for (size_t i = 0; i < it.keylen; i++)
            if (!mmstat_wire_byte_ok((unsigned char)it.key[i]))
                abort();
        for (size_t i = 0; i < it.textlen; i++)
            if (!mmstat_wire_byte_ok((unsigned char)it.text[i]))
                abort();
        n++;
    }
    if (n != nops)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if ((data[0] & 1) == 0) {
        size_t oplen = size - 2;
        if (oplen > MMSTAT_WIRE_MAX)
            return 0;
        size_t total = sizeof(struct mmstat_log_frame) + oplen;
        unsigned char *buf = malloc(total);
        struct mmstat_log_frame f = {MMSTAT_LOG_MAGIC, (uint32_t)oplen, data[1], 0, 1, 0};
        memcpy(buf, &f, sizeof f);
        memcpy(buf + sizeof f, data + 2, oplen);
        f.crc = crow_statlog_crc32c(0, buf, total);
        memcpy(buf, &f, sizeof f);
        ssize_t n = crow_statlog_frame_check(buf, total, 0);
        if (n > 0) {
            if ((size_t)n != total || crow_statlog_frame_find(buf, total, 0) != 0)
                abort();
            walk(buf, 0, total, f.nops);
        }
        free(buf);
    } else {
        size_t len = size - 1;
        unsigned char *buf = malloc(len ? len : 1);
        memcpy(buf, data + 1, len);
        ssize_t n = crow_statlog_frame_check(buf, len, 0);
        if (n > 0) {
            struct mmstat_log_frame f;
            memcpy(&f, buf, sizeof f);
            walk(buf, 0, (size_t)n, f.nops);
        }
        ssize_t at = crow_statlog_frame_find(buf, len, 0);
        if (at >= 0) {
            ssize_t m = crow_statlog_frame_check(buf, len, (size_t)at);
            if (m <= 0)
                abort();
            struct mmstat_log_frame f;
            memcpy(&f, buf + at, sizeof f);
            walk(buf, (size_t)at, (size_t)at + (size_t)m, f.nops);
        }
        free(buf);
    }
    return 0;
}
