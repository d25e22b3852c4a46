/* frame.h — incremental protocol framing over byte buffers: lines, HTTP heads, bodies, SMTP DATA. */
#ifndef CROW_FRAME_H
#define CROW_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* How every framer here is driven.
 *
 * A connection reads bytes into a buffer; BUF/LEN passed to a scan function are the buffer's
 * valid bytes, starting at the first byte not yet handed out.  The framer keeps its progress
 * (a scan offset into BUF) in its state, so bytes already examined are never examined again
 * and a unit split across any number of reads gives exactly the result it gives whole.  The
 * buffer may move between calls (realloc): only offsets are kept, never pointers into it.
 *
 * Every scan function fills a struct crow_frame_unit and returns one of:
 *   CROW_FRAME_NEED_MORE  no complete unit yet; append more bytes and call again;
 *   CROW_FRAME_UNIT       a unit is complete: BUF[start, start+len);
 *   CROW_FRAME_TOO_LONG   a size limit was exceeded (REASON says which);
 *   CROW_FRAME_BAD        the input breaks the protocol (REASON says how).
 * Nothing is allocated; no function here can fail in any other way, touches errno or reads
 * outside BUF[0, LEN).
 *
 * Raw streams (FTP data, an upgraded connection, a body read to end of file) need no framer:
 * the bytes in the buffer are the unit. */

enum crow_frame_status {
    CROW_FRAME_NEED_MORE = 0,
    CROW_FRAME_UNIT = 1,
    CROW_FRAME_TOO_LONG = 2,
    CROW_FRAME_BAD = 3,
};

/* Why a scan returned TOO_LONG or BAD; crow_frame_http_status() maps them to a status code. */
enum crow_frame_reason {
    CROW_FRAME_OK = 0,
    CROW_FRAME_E_BARE_CR,          /* CR not followed by LF */
    CROW_FRAME_E_BARE_LF,          /* LF not preceded by CR, where that is not allowed */
    CROW_FRAME_E_LINE_TOO_LONG,    /* a line longer than its maximum */
    CROW_FRAME_E_REQUEST_LINE,     /* malformed HTTP request line (400) */
    CROW_FRAME_E_VERSION,          /* well-formed but unsupported HTTP version (505) */
    CROW_FRAME_E_URI_TOO_LONG,     /* head limit reached inside the request line (414) */
    CROW_FRAME_E_HEAD_TOO_LARGE,   /* head limit reached inside the fields (431) */
    CROW_FRAME_E_TOO_MANY_FIELDS,  /* more header fields than the caller's array (431) */
    CROW_FRAME_E_FIELD_NAME,       /* empty field name, or a non-token character in it (400) */
    CROW_FRAME_E_NO_COLON,         /* field line without ':' (400) */
    CROW_FRAME_E_WS_BEFORE_COLON,  /* "Name :" (400, RFC 9112 5.1) */
    CROW_FRAME_E_OBS_FOLD,         /* field line starting with SP/HTAB (400, RFC 9112 5.2) */
    CROW_FRAME_E_FIELD_VALUE,      /* NUL inside a field value (400) */
    CROW_FRAME_E_CHUNK_SIZE,       /* chunk size missing or not hex (400) */
    CROW_FRAME_E_CHUNK_OVERFLOW,   /* chunk size over 16 hex digits (400) */
    CROW_FRAME_E_CHUNK_CRLF,       /* CRLF missing after chunk size, data or trailers (400) */
    CROW_FRAME_E_CHUNK_EXT,        /* chunk extension longer than allowed (400) */
    CROW_FRAME_E_TRAILER,          /* trailer section longer than allowed (431) */
    CROW_FRAME_E_BODY_TOO_LARGE,   /* body over the caller's limit (413; SMTP 552) */
    CROW_FRAME_E_COUNT
};

/* What one scan produced.  START/LEN are offsets into the BUF of the call. */
struct crow_frame_unit {
    size_t start;     /* first byte of the unit */
    size_t len;       /* unit length, terminator excluded */
    size_t consumed;  /* see each framer: bytes at the front of BUF that are done with */
    unsigned flags;   /* CROW_FRAME_F_* below */
    int reason;       /* enum crow_frame_reason; CROW_FRAME_OK unless TOO_LONG/BAD */
};

/* Unit flags. */
#define CROW_FRAME_F_CRLF     0x01u  /* line ended with CRLF */
#define CROW_FRAME_F_LF       0x02u  /* line ended with a bare LF (allowed by option) */
#define CROW_FRAME_F_BARE_CR  0x04u  /* SMTP: a bare CR occurred in the data */
#define CROW_FRAME_F_BARE_LF  0x08u  /* SMTP: a bare LF occurred; HTTP: some line ended in LF */
#define CROW_FRAME_F_SMUGGLE  0x10u  /* SMTP: a non-CRLF end-of-data look-alike (LF.LF, ...) */
#define CROW_FRAME_F_TOO_BIG  0x20u  /* SMTP: data over the limit; storing stopped */

/* Returns a short constant name for REASON ("bare-cr"), or "unknown".  Can't fail. */
const char *crow_frame_reason_name(int reason);

/* Returns the HTTP status a server answers for REASON (400, 413, 414, 431, 505), or 400 for
 * anything not HTTP-specific.  Can't fail. */
int crow_frame_http_status(int reason);

/* ------------------------------------------------------------------ lines */
/* Lines end with CRLF.  Options: */
#define CROW_FRAME_LINE_LF_OK   0x1u  /* a bare LF also ends a line (else BAD, E_BARE_LF) */
#define CROW_FRAME_LINE_CR_DATA 0x2u  /* a bare CR is an ordinary byte (else BAD, E_BARE_CR) */

struct crow_frame_line {
    size_t max;        /* longest line, terminator excluded */
    unsigned opts;
    size_t scan;       /* private: bytes of the current line already examined */
    int discard;       /* private: skipping the rest of a rejected line */
};

/* Prepares ST for lines of at most MAX bytes (0 means no limit) with options OPTS.
 * Can't fail. */
void crow_frame_line_init(struct crow_frame_line *st, size_t max, unsigned opts);

/* Finds the next line in BUF.  Contract for the caller: before the next call, drop the first
 * U->consumed bytes of BUF (after using the unit), whatever the return.
 *   UNIT: the line is BUF[start, start+len), flags says CRLF or LF.  START may be above 0 when
 *     the call first skipped the tail of a rejected line.
 *   TOO_LONG (E_LINE_TOO_LONG): reported once, as soon as the line is known to be longer than
 *     MAX; the rest of that line, up to and including its LF, is skipped silently by later
 *     calls (so an FTP/SMTP server answers 500 and goes on).
 *   BAD (E_BARE_CR / E_BARE_LF, as the options forbid): the rest of the line is skipped the
 *     same way, so the caller may answer and go on, or close.
 *   NEED_MORE: CONSUMED may be above 0 while a rejected line is being skipped.
 * A bare CR is recognised only once the byte after it is known, so a CR at the very end of
 * BUF waits for the next call. */
int crow_frame_line_scan(struct crow_frame_line *st, const void *buf, size_t len,
                         struct crow_frame_unit *u);

/* ------------------------------------------------------------------ HTTP request head */
/* One header field of a parsed head: offsets into the BUF the head was scanned in.  The value
 * has its leading and trailing SP/HTAB removed. */
struct crow_frame_http_field {
    uint32_t name, name_len, value, value_len;
};

#define CROW_FRAME_HTTP_LF_OK 0x1u  /* accept a bare LF as line end (RFC 9112 2.2 MAY) */

struct crow_frame_http {
    /* results, valid after UNIT (offsets into BUF) */
    uint32_t method, method_len, target, target_len;
    int version;                          /* 10 for HTTP/1.0, 11 for 1.1, 1d for HTTP/1.d */
    size_t nfields;                       /* fields stored in FIELDS[0, nfields) */
    /* configuration (crow_frame_http_init) */
    struct crow_frame_http_field *fields;
    size_t max_fields, max_head;
    unsigned opts;
    /* private */
    size_t scan, line;
    unsigned flags;
    int phase, estatus, ereason;
};

/* Prepares ST to parse one request head into the caller's array FIELDS of MAX_FIELDS entries,
 * the head (leading empty lines, request line, fields, final empty line) being at most
 * MAX_HEAD bytes (0 or anything above 1 GiB means 1 GiB).  Call it again for each request.
 * Can't fail. */
void crow_frame_http_init(struct crow_frame_http *st, struct crow_frame_http_field *fields,
                          size_t max_fields, size_t max_head, unsigned opts);

/* Parses the request head at the front of BUF (RFC 9112), line by line as lines complete.
 * The caller keeps BUF's bytes in place (appending is fine) until UNIT/TOO_LONG/BAD; CONSUMED
 * is 0 until then.
 *   UNIT: ST's method/target/version/fields are set; START is the request line (after any
 *     ignored leading empty lines), LEN the head's length up to and including the final empty
 *     line, CONSUMED = START + LEN: the body, if any, begins at BUF[CONSUMED].  FLAGS has
 *     F_BARE_LF if some line ended with a bare LF (only possible with HTTP_LF_OK).
 *   TOO_LONG: E_URI_TOO_LONG, E_HEAD_TOO_LARGE or E_TOO_MANY_FIELDS.
 *   BAD: E_REQUEST_LINE, E_VERSION, E_FIELD_NAME, E_NO_COLON, E_WS_BEFORE_COLON, E_OBS_FOLD,
 *     E_FIELD_VALUE, E_BARE_CR, E_BARE_LF.
 * The request line is exactly method SP target SP "HTTP/" DIGIT "." DIGIT; the method is a
 * token, the target any bytes but controls, SP and DEL (bytes >= 0x80 pass: Lisp judges the
 * target).  Field values may hold any byte but NUL, CR and LF (RFC 9110 5.5's MUST); the
 * error for a line is the first that applies: bare LF, bare CR, then the line's syntax.
 * After TOO_LONG or BAD the same answer comes back until crow_frame_http_init is called; the
 * server replies (crow_frame_http_status) and closes. */
int crow_frame_http_scan(struct crow_frame_http *st, const void *buf, size_t len,
                         struct crow_frame_unit *u);

/* Returns the index of the first field of a parsed head whose name is NAME (NAME_LEN bytes,
 * ASCII case-insensitive), or -1 if none.  BUF is the buffer the head was parsed in.
 * Can't fail. */
long crow_frame_http_find(const struct crow_frame_http *st, const void *buf,
                          const char *name, size_t name_len);

/* ------------------------------------------------------------------ fixed-length bodies */
struct crow_frame_fixed {
    uint64_t remaining;   /* body bytes still to come */
};

/* Prepares ST for a body of LENGTH bytes.  Can't fail. */
void crow_frame_fixed_init(struct crow_frame_fixed *st, uint64_t length);

/* Takes the body bytes at the front of BUF: U->start = 0, U->len = U->consumed = the body
 * bytes present (at most what remains), and REMAINING goes down by as much.  Returns UNIT when
 * the body is complete (bytes after it belong to the next message), else NEED_MORE.  A caller
 * that wants the body whole simply waits until LEN >= remaining.  Can't fail. */
int crow_frame_fixed_scan(struct crow_frame_fixed *st, const void *buf, size_t len,
                          struct crow_frame_unit *u);

/* ------------------------------------------------------------------ in-place decoders */
/* The chunked and SMTP DATA decoders rewrite BUF in place: decoded bytes are compacted to the
 * front, BUF[0, out), while raw bytes are read from BUF[in, LEN) (out <= in always).  After
 * each call U->start = 0, U->len = out (decoded bytes so far) and U->consumed = in (raw bytes
 * used; the last byte or so may be left unused until what follows it arrives).  Between calls
 * the caller either
 *   - keeps BUF[0, LEN) as it is and appends to it (the whole body accumulates at the front), or
 *   - streams: takes the decoded bytes BUF[0, U->len), removes the first U->consumed bytes of
 *     BUF (keeping the unused rest), and calls the decoder's _drop function so output restarts
 *     at 0.
 * On UNIT the body is BUF[0, U->len) and the next message starts at BUF[U->consumed]. */

/* ------------------------------------------------------------------ chunked bodies */
struct crow_frame_chunked {
    uint64_t max_body;     /* limit on the sum of chunk sizes */
    size_t max_ext, max_trailer;
    /* private */
    uint64_t total, chunk;
    size_t in, out, count;
    int state, digits, estatus, ereason;
};

/* Prepares ST for a chunked body (RFC 9112 7.1) whose data may total MAX_BODY bytes, whose
 * chunk extensions may be MAX_EXT bytes each (counted from the first byte after the size,
 * whitespace included; 0 forbids extensions) and whose trailer fields may be MAX_TRAILER
 * bytes in all (CRLFs included, the final empty line not).  A chunk size is at most 16 hex
 * digits, leading zeros included.  Can't fail. */
void crow_frame_chunked_init(struct crow_frame_chunked *st, uint64_t max_body, size_t max_ext,
                             size_t max_trailer);

/* Decodes BUF in place (see above).  Extensions and trailer fields are skipped.
 *   UNIT: the final CRLF after the trailers was read.
 *   TOO_LONG: E_BODY_TOO_LARGE, reported when a chunk size would take the total over MAX_BODY
 *     (before any of that chunk is stored); E_CHUNK_EXT; E_TRAILER.
 *   BAD: E_CHUNK_SIZE, E_CHUNK_OVERFLOW, E_CHUNK_CRLF (also for a bare CR or LF anywhere
 *     outside chunk data).
 * After TOO_LONG or BAD the same answer comes back; the connection cannot be resynchronised. */
int crow_frame_chunked_scan(struct crow_frame_chunked *st, void *buf, size_t len,
                            struct crow_frame_unit *u);

/* Tells ST the caller took the decoded bytes and removed the consumed ones (streaming).
 * Can't fail. */
void crow_frame_chunked_drop(struct crow_frame_chunked *st);

/* ------------------------------------------------------------------ SMTP DATA */
#define CROW_FRAME_SMTP_REJECT_BARE 0x1u  /* BAD at the first bare CR or LF (else flag it) */

struct crow_frame_smtp {
    uint64_t max_size;     /* bytes of unstuffed message stored at most */
    unsigned opts;
    /* private */
    uint64_t size;
    size_t in, out;
    unsigned flags;
    int state, estatus, ereason;
    unsigned char hist[3];
};

/* Prepares ST for the bytes after "354" (RFC 5321 4.5.2): the first line starts right away,
 * so a lone "." line ends an empty message.  MAX_SIZE 0 means no limit.  Can't fail. */
void crow_frame_smtp_init(struct crow_frame_smtp *st, uint64_t max_size, unsigned opts);

/* Decodes BUF in place (see above): finds CRLF "." CRLF and removes the leading "." of every
 * other line that starts with one.  The message includes the CRLF ending its last line.
 * Bare CR and bare LF are message bytes, flagged F_BARE_CR / F_BARE_LF; a "." between any
 * other mix of CR, LF and CRLF (LF.LF, CR.CR, CRLF.LF, LF.CRLF, ...) is not the end, and is
 * flagged F_SMUGGLE so the server can refuse the message.
 *   UNIT: the end of data was read; FLAGS as above.
 *   TOO_LONG (E_BODY_TOO_LARGE): likewise at the end of data, when the message was over
 *     MAX_SIZE: only the first MAX_SIZE bytes were stored (answer 552 and continue).
 *   BAD (only with SMTP_REJECT_BARE): E_BARE_CR / E_BARE_LF, at once; it stays BAD.
 * Can't fail otherwise. */
int crow_frame_smtp_scan(struct crow_frame_smtp *st, void *buf, size_t len,
                         struct crow_frame_unit *u);

/* Tells ST the caller took the decoded bytes and removed the consumed ones (streaming).
 * Can't fail. */
void crow_frame_smtp_drop(struct crow_frame_smtp *st);

#endif
