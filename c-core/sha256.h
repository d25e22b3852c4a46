/* sha256.h — SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104) for upload digests and signed
 * session cookies, without a dependency on a crypto library. */
#ifndef CROW_SHA256_H
#define CROW_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define CROW_SHA256_LEN 32

/* Incremental state; may live on the stack, fields private. */
struct crow_sha256 {
    uint32_t h[8];
    uint64_t len;       /* bytes fed */
    uint8_t buf[64];
    size_t nbuf;
};

/* Starts a digest.  Can't fail. */
void crow_sha256_init(struct crow_sha256 *s);
/* Feeds N bytes at P (P may be NULL when N is 0).  Can't fail. */
void crow_sha256_update(struct crow_sha256 *s, const void *p, size_t n);
/* Writes the 32-byte digest into OUT; the state must then be initialised again.  Can't fail. */
void crow_sha256_final(struct crow_sha256 *s, uint8_t out[CROW_SHA256_LEN]);

/* One-shot digest of N bytes at P into OUT.  Can't fail. */
void crow_sha256(const void *p, size_t n, uint8_t out[CROW_SHA256_LEN]);

/* HMAC-SHA-256 of the MSG_N bytes at MSG under the KEY_N-byte KEY into OUT.  Can't fail. */
void crow_sha256_hmac(const void *key, size_t key_n, const void *msg, size_t msg_n,
                      uint8_t out[CROW_SHA256_LEN]);

/* Compares N bytes at A and B in time independent of their contents.  Returns 0 when equal,
 * non-zero otherwise.  Can't fail. */
int crow_sha256_memcmp(const void *a, const void *b, size_t n);

#endif
