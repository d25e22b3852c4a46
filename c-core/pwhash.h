/* pwhash.h — password hashing through libxcrypt's crypt(3) (yescrypt, SHA-512 crypt) for the
 * accounts files of mmftpd and the mail servers: new hashes with a random salt, and checks
 * whose final comparison takes time independent of where the hashes differ. */
#ifndef CROW_PWHASH_H
#define CROW_PWHASH_H

#include <stddef.h>

/* Hash methods (the prefix crypt_gensalt_rn is given). */
enum crow_crypt_method {
    CROW_PWHASH_YESCRYPT = 0, /* "$y$" */
    CROW_PWHASH_SHA512 = 1    /* "$6$" */
};

/* The longest hash crow_pwhash_new writes, with its NUL (CRYPT_OUTPUT_SIZE). */
#define CROW_PWHASH_MAX 384

/* Hashes the NUL-terminated PASSWORD with METHOD and a fresh random salt (libxcrypt's
 * getrandom-backed crypt_gensalt_rn, default cost) into OUT (OUT_N bytes, at least
 * CROW_PWHASH_MAX).  Returns the hash's length, or -1 with errno EINVAL (unknown METHOD, or a
 * method this libcrypt lacks), ERANGE (OUT too small), ENOMEM, or what libcrypt reports. */
int crow_pwhash_new(const char *password, int method, char *out, size_t out_n);

/* Checks the NUL-terminated PASSWORD against HASH (any method libcrypt knows, as found in an
 * accounts file).  Returns 1 when it matches, 0 when it does not, -1 with errno EINVAL when
 * HASH is not a hash libcrypt can check (empty, "*", "!", unknown prefix) or ENOMEM.  The
 * comparison of the computed hash with HASH is constant-time (CRYPTO_memcmp over the whole
 * length). */
int crow_pwhash_verify(const char *password, const char *hash);

#endif
