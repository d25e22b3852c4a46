/* pwhash.c — password hashing over libxcrypt (crypt_rn, crypt_gensalt_rn).
 *
 * Design: a thin wrapper so Lisp never sees struct crypt_data (32 KiB: allocated per call on
 * the heap, zeroed, since the session threads' stacks are small and the calls are concurrent;
 * crypt_rn is re-entrant with its own data).  Salts come from crypt_gensalt_rn with no random
 * bytes given, so libxcrypt draws them from getrandom itself; the cost is libxcrypt's default
 * for the method (yescrypt 5, SHA-512 5000 rounds).  Verifying recomputes the hash with HASH as
 * setting and compares the results with CRYPTO_memcmp over HASH's whole length after checking
 * lengths, so the time does not depend on the first differing byte.  crypt_rn's failure
 * tokens ("*0"/"*1" or NULL) become EINVAL.  The password buffers inside crypt_data are wiped
 * before being freed. */
#include <crypt.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crow.h"
#include "pwhash.h"

static const char *prefix_of(int method)
{
    switch (method) {
    case CROW_PWHASH_YESCRYPT:
        return "$y$";
    case CROW_PWHASH_SHA512:
        return "$6$";
    default:
        return NULL;
    }
}

/* Runs crypt_rn(PASSWORD, SETTING) into a fresh crypt_data; returns it (caller frees with
 * free_data) with the hash in ->output, or NULL with errno set. */
static struct crypt_data *run_crypt(const char *password, const char *setting)
{
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd) {
        errno = ENOMEM;
        return NULL;
    }
    errno = 0;
    char *h = crypt_rn(password, setting, cd, (int)sizeof *cd);
    if (!h || h[0] == '*') {
        int e = errno ? errno : EINVAL;
        if (e == ENOSYS || e == EOPNOTSUPP)
            e = EINVAL;
        OPENSSL_cleanse(cd, sizeof *cd);
        free(cd);
        errno = e;
        return NULL;
    }
    return cd;
}

static void free_data(struct crypt_data *cd)
{
    OPENSSL_cleanse(cd, sizeof *cd);
    free(cd);
}

int crow_pwhash_new(const char *password, int method, char *out, size_t out_n)
{
    const char *prefix = prefix_of(method);
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!prefix) {
        errno = EINVAL;
        return -1;
    }
    if (out_n < CROW_PWHASH_MAX) {
        errno = ERANGE;
        return -1;
    }
    errno = 0;
    if (!crypt_gensalt_rn(prefix, 0, NULL, 0, salt, (int)sizeof salt) || salt[0] == '*') {
        if (!errno || errno == ENOSYS || errno == EOPNOTSUPP)
            errno = EINVAL;
        return -1;
    }
    struct crypt_data *cd = run_crypt(password, salt);
    if (!cd)
        return -1;
    size_t n = strlen(cd->output);
    if (n + 1 > out_n) {
        free_data(cd);
        errno = ERANGE;
        return -1;
    }
    memcpy(out, cd->output, n + 1);
    free_data(cd);
    return (int)n;
}

int crow_pwhash_verify(const char *password, const char *hash)
{
    if (!hash[0] || hash[0] == '*' || hash[0] == '!') {
        errno = EINVAL;
        return -1;
    }
    struct crypt_data *cd = run_crypt(password, hash);
    if (!cd)
        return -1;
    size_t n = strlen(hash), m = strlen(cd->output);
    int same = n == m && CRYPTO_memcmp(cd->output, hash, n) == 0;
    free_data(cd);
    return same;
}
