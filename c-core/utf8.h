/* utf8.h — strict UTF-8 <-> UTF-32 codec: decode, encode, validate, count, streaming decode. */
#ifndef CROW_UTF8_H
#define CROW_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Error modes.  STOP: stop at the first ill-formed sequence, report its offset, errno EILSEQ.
 * REPLACE: emit U+FFFD for each maximal subpart of an ill-formed sequence (Unicode 15 §3.9,
 * "U+FFFD Substitution of Maximal Subparts"; the output of CPython's
 * bytes.decode('utf-8', 'replace')) and carry on.  Ill-formed: overlong forms, surrogates
 * (U+D800..U+DFFF), values above U+10FFFF, stray continuation bytes, C0, C1, F5..FF,
 * sequences cut short by another byte or by the end of the input. */
enum crow_utf8_mode { CROW_UTF8_STOP = 0, CROW_UTF8_REPLACE = 1 };

#define CROW_UTF8_REPLACEMENT 0xFFFDu

/* Decodes N bytes of UTF-8 at IN into code points at OUT, which must have room for N code
 * points (one per byte at most).  Returns the number of code points written.
 * ERR_OFF (may be NULL) receives the byte offset of the first ill-formed sequence, or N when
 * there is none.  STOP mode: on an ill-formed sequence returns the code points decoded before
 * it and sets errno to EILSEQ (errno is untouched on success).  REPLACE mode: can't fail. */
size_t crow_utf8_decode(const uint8_t *in, size_t n, uint32_t *out, size_t *err_off, int mode);

/* Encodes N code points at IN as UTF-8 into OUT, which must have room for 4 * N bytes.
 * Returns the number of bytes written.  ERR_IDX (may be NULL) receives the index of the first
 * unit that is a surrogate or above U+10FFFF, or N when there is none.  STOP mode: on such a
 * unit returns the bytes written before it and sets errno to EILSEQ.  REPLACE mode: encodes
 * it as U+FFFD (EF BF BD); can't fail. */
size_t crow_utf8_encode(const uint32_t *in, size_t n, uint8_t *out, size_t *err_idx, int mode);

/* Returns 0 if the N bytes at IN are well-formed UTF-8, else -1 with errno EILSEQ and the
 * offset of the first ill-formed sequence in *ERR_OFF (ERR_OFF may be NULL). */
int crow_utf8_validate(const uint8_t *in, size_t n, size_t *err_off);

/* Returns the number of code points crow_utf8_decode would write in REPLACE mode (for valid
 * input: the code points in it).  Can't fail. */
size_t crow_utf8_count(const uint8_t *in, size_t n);

/* Streaming decode: input may be split at any byte; a sequence cut between two chunks
 * decodes exactly as if it arrived whole.  The struct may live on the stack; its fields are
 * private.  Offsets reported are from the start of the stream. */
struct crow_utf8_stream {
    uint64_t pos;     /* bytes fed so far */
    uint64_t err;     /* STOP mode: offset of the error once failed */
    uint8_t pend[4];  /* the start of a sequence cut by the end of the last chunk */
    uint8_t npend;
    uint8_t mode;
    uint8_t failed;
};

/* Starts a stream in MODE.  Can't fail. */
void crow_utf8_stream_init(struct crow_utf8_stream *s, int mode);

/* Decodes the chunk IN[0..N) into OUT, which must have room for N + 1 code points (a
 * sequence pending from the previous chunk may complete, or in REPLACE mode become U+FFFD).
 * OUT may be NULL to only count and check.  Returns the number of code points produced.
 * Up to 3 trailing bytes of an incomplete sequence are kept for the next call.
 * STOP mode: on an ill-formed sequence returns the code points before it, sets errno to
 * EILSEQ and *ERR_OFF (may be NULL) to its stream offset; the stream then stays failed (every
 * later call returns 0 with EILSEQ and the same offset) until crow_utf8_stream_init. */
size_t crow_utf8_stream_feed(struct crow_utf8_stream *s, const uint8_t *in, size_t n,
                             uint32_t *out, size_t *err_off);

/* Ends the stream: a pending incomplete sequence is an error (STOP: returns 0, errno EILSEQ,
 * *ERR_OFF its offset) or one U+FFFD in OUT (room for 1 code point; may be NULL).  Returns
 * the code points produced (0 or 1).  The stream is then re-initialised in the same mode,
 * ready for a new input. */
size_t crow_utf8_stream_finish(struct crow_utf8_stream *s, uint32_t *out, size_t *err_off);

/* Implementations: "scalar" (the reference), "sse2" (SIMD ASCII runs), "avx2" (SIMD ASCII
 * runs and block validation).  The best one the CPU supports is chosen at first use, unless
 * the environment variable CROW_UTF8_IMPL names a supported one (read once; an unknown or
 * unsupported name is ignored). */

/* Returns the name of the implementation in use.  Can't fail. */
const char *crow_utf8_impl(void);

/* Returns 1 if the CPU supports implementation NAME, 0 if not or if NAME is unknown. */
int crow_utf8_impl_supported(const char *name);

/* Forces implementation NAME for every later call (for tests and benchmarks); NULL returns to
 * the automatic choice.  Returns 0, or -1 with errno EINVAL (unknown name) or ENOTSUP (the
 * CPU lacks it); the implementation is then unchanged. */
int crow_utf8_set_impl(const char *name);

#endif
