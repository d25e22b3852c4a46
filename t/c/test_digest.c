/* test_digest.c — c-core/digest (OpenSSL-backed): SHA-256 against FIPS 180-4 examples,
 * HMAC-SHA-256 against RFC 4231, incremental feeding split at every offset, and the
 * constant-time compare. */
#include <stdio.h>
#include <string.h>

#include "digest.h"
#include "tap.h"

static void hex(const uint8_t *d, char *out)
{
    for (int i = 0; i < CROW_SHA256_LEN; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static int digest_is(const char *msg, size_t n, const char *want)
{
    uint8_t d[CROW_SHA256_LEN];
    char h[65];
    if (crow_digest_sha256(msg, n, d) != 0)
        return 0;
    hex(d, h);
    if (strcmp(h, want))
        printf("#   got %s\n#  want %s\n", h, want);
    return !strcmp(h, want);
}

static int hmac_is(const void *key, size_t kn, const char *msg, const char *want)
{
    uint8_t d[CROW_SHA256_LEN];
    char h[65];
    if (crow_hmac_sha256(key, kn, msg, strlen(msg), d) != 0)
        return 0;
    hex(d, h);
    if (strcmp(h, want))
        printf("#   got %s\n#  want %s\n", h, want);
    return !strcmp(h, want);
}

int main(void)
{
    static char million[1000000];
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    uint8_t key[131];

    ok(digest_is("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "empty");
    ok(digest_is("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "abc");
    ok(digest_is(two, strlen(two), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
       "two-block message (56 bytes: padding spills into a second block)");
    memset(million, 'a', sizeof million);
    ok(digest_is(million, sizeof million, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
       "one million 'a'");

    {   /* incremental: every split of a 200-byte message gives the one-shot digest */
        uint8_t msg[200], want[CROW_SHA256_LEN], got[CROW_SHA256_LEN];
        int bad = 0;
        for (int i = 0; i < 200; i++)
            msg[i] = (uint8_t)(i * 7 + 3);
        bad += crow_digest_sha256(msg, sizeof msg, want) != 0;
        for (size_t cut = 0; cut <= sizeof msg; cut++) {
            struct crow_digest *s = crow_digest_sha256_new();
            if (!s) {
                bad++;
                continue;
            }
            bad += crow_digest_update(s, msg, cut) != 0;
            bad += crow_digest_update(s, msg + cut, sizeof msg - cut) != 0;
            bad += crow_digest_final(s, got) != 0;
            crow_digest_free(s);
            bad += memcmp(got, want, sizeof want) != 0;
        }
        is_int(bad, 0, "split at every offset equals one-shot");
    }

    memset(key, 0x0b, 20);
    ok(hmac_is(key, 20, "Hi There",
               "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"), "RFC 4231 case 1");
    ok(hmac_is("Jefe", 4, "what do ya want for nothing?",
               "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"), "RFC 4231 case 2");
    memset(key, 0xaa, sizeof key);
    ok(hmac_is(key, 131, "Test Using Larger Than Block-Size Key - Hash Key First",
               "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
       "RFC 4231 case 6 (key longer than a block)");

    ok(hmac_is("", 0, "", "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"),
       "empty key and message");
    crow_digest_free(NULL);

    ok(crow_digest_memcmp("abcd", "abcd", 4) == 0, "memcmp equal");
    ok(crow_digest_memcmp("abcd", "abce", 4) != 0, "memcmp differs in the last byte");
    ok(crow_digest_memcmp("xbcd", "abcd", 4) != 0, "memcmp differs in the first byte");
    return tap_done();
}
