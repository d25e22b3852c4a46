/* fuzz_mpart.c — differential fuzzing of c-core/mpart: the same body fed whole and fed in
 * pieces cut by a PRNG must give the same outcome (errno of feed and finish), the same parts
 * (heads, memory contents, file contents and sizes) and the same memory buffer; a result that
 * differs abort()s, and ASan watches every buffer (small limits make the head, memory and
 * file-count limits trip often).
 * Input: byte 0 picks the boundary ("a", "XyZ" or "--") and seeds the cuts; the rest is the
 * body. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpart.h"

static char dir[64];

static void cleanup(void)
{
    rmdir(dir); /* empty: every scanner removed its files */
}

static struct crow_mpart *make(const char *b)
{
    struct crow_mpart_config c;
    crow_mpart_config_init(&c);
    c.boundary = b;
    c.boundary_len = strlen(b);
    c.dir = dir;
    c.prefix = "f-";
    c.max_part_head = 64;
    c.max_memory = 2048;
    c.max_files = 3;
    c.max_parts = 12;
    c.max_file = 4096;
    return crow_mpart_new(&c);
}

/* Feeds DATA[0,N) to M (in pieces when SEED is non-zero).  Returns the errno of the first
 * failure (0 when none) and puts finish's in *FIN. */
static int run(struct crow_mpart *m, const uint8_t *data, size_t n, unsigned seed, int *fin)
{
    int err = 0;
    size_t i = 0;
    while (i < n && !err) {
        size_t k = n - i;
        if (seed) {
            seed = seed * 1103515245u + 12345u;
            size_t cut = (seed >> 16) % 19 + 1;
            if (cut < k)
                k = cut;
        }
        if (crow_mpart_feed(m, data + i, k) < 0)
            err = errno;
        i += k;
    }
    *fin = crow_mpart_finish(m) < 0 ? errno : 0;
    return err;
}

static size_t slurp(const char *path, uint8_t *buf, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        abort();
    size_t n = fread(buf, 1, max, f);
    fclose(f);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const bounds[] = {"a", "XyZ", "--"};
    static uint8_t fa[8192], fb[8192];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/crow-fuzz-mpart-XXXXXX");
        if (!mkdtemp(dir))
            abort();
        atexit(cleanup);
    }
    if (size < 1)
        return 0;
    const char *b = bounds[data[0] % 3];
    struct crow_mpart *whole = make(b), *cut = make(b);
    if (!whole || !cut)
        abort();
    int fin1, fin2;
    int e1 = run(whole, data + 1, size - 1, 0, &fin1);
    int e2 = run(cut, data + 1, size - 1, data[0] | 1u, &fin2);
    if (e1 != e2 || fin1 != fin2 || crow_mpart_fed(whole) > size)
        abort();
    if (!e1) { /* on a limit both stop at the same byte, but pieces may have taken less */
        size_t n1, n2;
        const uint8_t *m1 = crow_mpart_memory(whole, &n1), *m2 = crow_mpart_memory(cut, &n2);
        if (n1 != n2 || memcmp(m1, m2, n1) || crow_mpart_count(whole) != crow_mpart_count(cut))
            abort();
        for (size_t i = 0; i < crow_mpart_count(whole); i++) {
            struct crow_mpart_part p, q;
            if (crow_mpart_get(whole, i, &p) || crow_mpart_get(cut, i, &q))
                abort();
            if (p.head_off != q.head_off || p.head_len != q.head_len || p.size != q.size ||
                !p.path != !q.path || p.head_off + p.head_len > n1)
                abort();
            if (p.path && !fin1) { /* complete: every file flushed and closed */
                size_t la = slurp(p.path, fa, sizeof fa), lb = slurp(q.path, fb, sizeof fb);
                if (la != p.size || lb != la || memcmp(fa, fb, la))
                    abort();
            } else if (!p.path && (p.data_off != q.data_off || p.data_off + p.size > n1)) {
                abort();
            }
        }
    }
    crow_mpart_free(whole, 1);
    crow_mpart_free(cut, 1);
    return 0;
}
