/* digest.c — SHA-256 and HMAC-SHA-256 over OpenSSL 3's libcrypto.
 *
 * Design: hashing is not the point of crow, so this is a thin wrapper over libcrypto (which
 * every program links already for TLS): EVP_Digest for one-shot digests, an EVP_MD_CTX behind
 * an opaque struct for streaming ones (uploads hashed block by block), HMAC() for the cookie
 * signatures, CRYPTO_memcmp for comparing them.  The SHA-256 EVP_MD is the built-in one
 * (EVP_sha256, no provider fetch per call).  libcrypto's error queue is cleared on failure so
 * nothing is left for an unrelated TLS call to find; failures become errno EPROTO. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "crow.h"
#include "digest.h"

struct crow_digest {
    EVP_MD_CTX *ctx;
};

static int fail(int e)
{
    ERR_clear_error();
    errno = e;
    return -1;
}

struct crow_digest *crow_digest_sha256_new(void)
{
    struct crow_digest *d = malloc(sizeof *d);
    if (!d) {
        errno = ENOMEM;
        return NULL;
    }
    d->ctx = EVP_MD_CTX_new();
    if (!d->ctx) {
        free(d);
        fail(ENOMEM);
        return NULL;
    }
    if (EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(d->ctx);
        free(d);
        fail(EPROTO);
        return NULL;
    }
    return d;
}

int crow_digest_update(struct crow_digest *d, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    return EVP_DigestUpdate(d->ctx, p, n) == 1 ? 0 : fail(EPROTO);
}

int crow_digest_final(struct crow_digest *d, uint8_t out[CROW_SHA256_LEN])
{
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(d->ctx, out, &len) != 1 || len != CROW_SHA256_LEN)
        return fail(EPROTO);
    return 0;
}

void crow_digest_free(struct crow_digest *d)
{
    if (d) {
        EVP_MD_CTX_free(d->ctx);
        free(d);
    }
}

int crow_digest_sha256(const void *p, size_t n, uint8_t out[CROW_SHA256_LEN])
{
    static const unsigned char none[1];
    unsigned int len = 0;
    if (EVP_Digest(n ? p : none, n, out, &len, EVP_sha256(), NULL) != 1 || len != CROW_SHA256_LEN)
        return fail(EPROTO);
    return 0;
}

int crow_hmac_sha256(const void *key, size_t key_n, const void *msg, size_t msg_n,
                     uint8_t out[CROW_SHA256_LEN])
{
    static const unsigned char none[1];
    unsigned int len = 0;
    if (key_n > INT_MAX)
        return fail(EINVAL);
    if (!HMAC(EVP_sha256(), key_n ? key : none, (int)key_n, msg_n ? msg : none, msg_n, out, &len)
        || len != CROW_SHA256_LEN)
        return fail(EPROTO);
    return 0;
}

int crow_digest_memcmp(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n);
}
