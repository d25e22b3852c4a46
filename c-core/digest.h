/* digest.h — SHA-256 and HMAC-SHA-256 over OpenSSL (libcrypto) for upload digests and signed
 * session cookies, and a constant-time comparison for checking signatures. */
#ifndef CROW_DIGEST_H
#define CROW_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define CROW_SHA256_LEN 32

/* An incremental SHA-256 digest (wraps an EVP_MD_CTX); private. */
struct crow_digest;

/* Returns a new SHA-256 digest ready to be fed, or NULL with errno ENOMEM (allocation) or
 * EPROTO (libcrypto refused to set it up).  Free it with crow_digest_free. */
struct crow_digest *crow_digest_sha256_new(void);
/* Feeds N bytes at P (P may be NULL when N is 0).  Returns 0, or -1 with errno EPROTO when
 * libcrypto fails (the digest is then unusable except for crow_digest_free). */
int crow_digest_update(struct crow_digest *d, const void *p, size_t n);
/* Writes the 32-byte digest into OUT.  Returns 0, or -1 with errno EPROTO.  The digest is then
 * finished: only crow_digest_free may follow. */
int crow_digest_final(struct crow_digest *d, uint8_t out[CROW_SHA256_LEN]);
/* Frees D (NULL is accepted).  Can't fail. */
void crow_digest_free(struct crow_digest *d);

/* One-shot SHA-256 of N bytes at P into OUT.  Returns 0, or -1 with errno EPROTO (ENOMEM when
 * libcrypto could not allocate). */
int crow_digest_sha256(const void *p, size_t n, uint8_t out[CROW_SHA256_LEN]);

/* HMAC-SHA-256 (RFC 2104) of the MSG_N bytes at MSG under the KEY_N-byte KEY into OUT.
 * Returns 0, or -1 with errno EINVAL (a key over INT_MAX bytes) or EPROTO. */
int crow_hmac_sha256(const void *key, size_t key_n, const void *msg, size_t msg_n,
                     uint8_t out[CROW_SHA256_LEN]);

/* Compares N bytes at A and B in time independent of their contents (CRYPTO_memcmp).
 * Returns 0 when equal, non-zero otherwise.  Can't fail. */
int crow_digest_memcmp(const void *a, const void *b, size_t n);

#endif
