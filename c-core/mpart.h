/* mpart.h — a streaming multipart/form-data scanner: the body comes in pieces of any size, file
 * parts go to temporary files as they arrive, the other parts (and every part's head) stay in
 * one memory buffer. */
#ifndef CROW_MPART_H
#define CROW_MPART_H

#include <stddef.h>
#include <stdint.h>

#define CROW_MPART_MAX_BOUNDARY 70 /* RFC 2046 */

struct crow_mpart;
struct crow_ev_sink; /* evloop.h */

struct crow_mpart_config {
    const char *boundary;     /* the boundary parameter, 1..70 bytes (no leading "--") */
    size_t boundary_len;
    const char *dir;          /* directory of the temporary files (NUL-terminated); copied */
    const char *prefix;       /* their name prefix (mkostemp adds 6 characters); copied */
    uint64_t max_file;        /* contents of one file part: EFBIG beyond (0 = no limit) */
    unsigned max_files;       /* file parts: EMLINK beyond */
    unsigned max_parts;       /* parts of any kind: EMLINK beyond */
    size_t max_memory;        /* part heads + non-file contents kept in memory: E2BIG beyond */
    size_t max_part_head;     /* one part's head: E2BIG beyond */
};

/* One part as crow_mpart_get describes it.  A part is a file part when its
 * Content-Disposition has a filename (or filename*) parameter. */
struct crow_mpart_part {
    size_t head_off, head_len; /* its header lines in the memory buffer (CRLF between them, no
                                  blank line); head_len 0 for a part without headers */
    size_t data_off;           /* memory parts: their contents in the memory buffer */
    uint64_t size;             /* contents bytes (in the file or in memory) */
    const char *path;          /* file parts: the temporary file; NULL for memory parts */
};

/* Fills CFG with defaults: no boundary, dir "/tmp", prefix "crow-upload-", no file size limit,
 * 16 files, 1000 parts, 1 MiB memory, 8 KiB per part head.  Can't fail. */
void crow_mpart_config_init(struct crow_mpart_config *cfg);

/* Makes a scanner for one body.  Returns NULL and sets errno (EINVAL for a boundary of 0 or
 * more than 70 bytes or a NULL dir/prefix, ENOMEM). */
struct crow_mpart *crow_mpart_new(const struct crow_mpart_config *cfg);

/* Scans the next N bytes of the body (pieces may be cut anywhere, a boundary included).  A file
 * part's contents are written to its temporary file (mode 600, made with mkostemp when its head
 * is complete); the rest goes to the memory buffer.  Returns 0, or -1 with errno: EFBIG (a file
 * over max_file), EMLINK (over max_files or max_parts), E2BIG (over max_memory, or a part head
 * over max_part_head), EINVAL (called after crow_mpart_finish), ENOMEM, or the errno of
 * mkostemp/write/close (ENOSPC, EDQUOT, EIO...).  Errors are sticky: every later call fails
 * the same way.  Files made so far stay until crow_mpart_free. */
int crow_mpart_feed(struct crow_mpart *m, const void *data, size_t n);

/* The body has ended.  Returns 0 when the close delimiter ("--boundary--") was seen, or -1
 * with errno EBADMSG (missing) or the sticky error of an earlier call. */
int crow_mpart_finish(struct crow_mpart *m);

/* Returns the sticky errno, or 0.  Can't fail. */
int crow_mpart_error(const struct crow_mpart *m);

/* Returns the number of parts begun (a failed scan may end with a part cut short).  Can't
 * fail. */
size_t crow_mpart_count(const struct crow_mpart *m);

/* Fills *OUT with part I.  Returns 0, or -1 with errno ERANGE.  OUT->path is valid until
 * crow_mpart_free. */
int crow_mpart_get(const struct crow_mpart *m, size_t i, struct crow_mpart_part *out);

/* Returns the memory buffer (heads and non-file contents) and its length in *LEN; valid until
 * the next feed or free.  Can't fail. */
const uint8_t *crow_mpart_memory(const struct crow_mpart *m, size_t *len);

/* Returns the body bytes fed so far.  Can't fail. */
uint64_t crow_mpart_fed(const struct crow_mpart *m);

/* Closes what M has open and frees it; with UNLINK_FILES non-zero its temporary files are
 * removed (errors ignored), else they are the caller's.  A NULL M is ignored.  Can't fail. */
void crow_mpart_free(struct crow_mpart *m, int unlink_files);

/* Returns a sink (evloop.h) that feeds M with a request body as it arrives: write =
 * crow_mpart_feed, end = crow_mpart_finish, drop = crow_mpart_free(M, 1).  It lives as long as
 * M.  Can't fail. */
const struct crow_ev_sink *crow_mpart_sink(struct crow_mpart *m);

#endif
