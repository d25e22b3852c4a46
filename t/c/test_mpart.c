/* test_mpart.c — the streaming multipart/form-data scanner: one hand-written body cut at every
 * position and fed in pieces of every small size (same parts, same file contents each time),
 * boundary-like data inside a file, preamble and epilogue, a part without headers, CRLF
 * variants, a missing close delimiter, each limit, sticky errors, and temporary files removed
 * by crow_mpart_free. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpart.h"
#include "tap.h"

static char dir[64];

#define FILE_A "line one\r\n--XyZnot a boundary\r\n--XyZ-x\r\n--XyZ\rz\n--XyZ\r\nend\r\n--X"

static const char body[] =
    "preamble text\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"title\"\r\n"
    "\r\n"
    "Gr\xc3\xbc\xc3\x9f" "e\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    FILE_A "\r\n"
    "--XyZ\r\n"
    "\r\n"
    "nohead\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"e\"; filename=\"\"\r\n"
    "\r\n"
    "\r\n"
    "--XyZ--\r\n"
    "epilogue junk\r\n--XyZ\r\n";

static struct crow_mpart *make(const char *boundary)
{
    struct crow_mpart_config c;
    crow_mpart_config_init(&c);
    c.boundary = boundary;
    c.boundary_len = strlen(boundary);
    c.dir = dir;
    c.prefix = "t-";
    return crow_mpart_new(&c);
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *b = malloc(1 << 16);
    *n = fread(b, 1, 1 << 16, f);
    fclose(f);
    return b;
}

static int count_files(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "ls -A %s | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = -1;
        pclose(p);
    }
    return n;
}

/* Checks M's parts against the body above.  Returns 1 when all is as expected. */
static int check_parts(struct crow_mpart *m, char *why, size_t whyn)
{
    size_t mlen, n;
    const uint8_t *mem = crow_mpart_memory(m, &mlen);
    struct crow_mpart_part p[4];
    if (crow_mpart_count(m) != 4) {
        snprintf(why, whyn, "%zu parts", crow_mpart_count(m));
        return 0;
    }
    for (size_t i = 0; i < 4; i++)
        crow_mpart_get(m, i, &p[i]);
    static const char h0[] = "Content-Disposition: form-data; name=\"title\"";
    static const char h1[] = "Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
                             "Content-Type: text/plain";
    if (p[0].path || p[0].head_len != strlen(h0) || memcmp(mem + p[0].head_off, h0, strlen(h0)) ||
        p[0].size != 7 || memcmp(mem + p[0].data_off, "Gr\xc3\xbc\xc3\x9f" "e", 7)) {
        snprintf(why, whyn, "part 0");
        return 0;
    }
    if (!p[1].path || p[1].head_len != strlen(h1) || memcmp(mem + p[1].head_off, h1, strlen(h1)) ||
        p[1].size != strlen(FILE_A)) {
        snprintf(why, whyn, "part 1 (size %llu)", (unsigned long long)p[1].size);
        return 0;
    }
    char *d = slurp(p[1].path, &n);
    int same = d && n == strlen(FILE_A) && !memcmp(d, FILE_A, n);
    free(d);
    if (!same) {
        snprintf(why, whyn, "part 1's file");
        return 0;
    }
    if (p[2].path || p[2].head_len != 0 || p[2].size != 6 || memcmp(mem + p[2].data_off, "nohead", 6)) {
        snprintf(why, whyn, "part 2");
        return 0;
    }
    struct stat st;
    if (!p[3].path || p[3].size != 0 || stat(p[3].path, &st) != 0 || st.st_size != 0 ||
        (st.st_mode & 0777) != 0600) {
        snprintf(why, whyn, "part 3");
        return 0;
    }
    return 1;
}

static void test_splits(void)
{
    size_t n = sizeof body - 1;
    int bad = 0;
    char why[128] = "";
    for (size_t k = 0; k <= n && !bad; k++) {
        struct crow_mpart *m = make("XyZ");
        if (crow_mpart_feed(m, body, k) < 0 || crow_mpart_feed(m, body + k, n - k) < 0 ||
            crow_mpart_finish(m) < 0) {
            snprintf(why, sizeof why, "cut at %zu: errno %d", k, errno);
            bad = 1;
        } else if (!check_parts(m, why, sizeof why)) {
            bad = 1;
        }
        crow_mpart_free(m, 1);
        if (!bad && count_files() != 0) {
            snprintf(why, sizeof why, "files left after free (cut at %zu)", k);
            bad = 1;
        }
        if (bad)
            diag(why);
    }
    ok(!bad, "the body cut at each of its %zu positions gives the same 4 parts", n + 1);
    bad = 0;
    for (size_t step = 1; step <= 80 && !bad; step++) {
        struct crow_mpart *m = make("XyZ");
        for (size_t i = 0; i < n && !bad; i += step)
            bad = crow_mpart_feed(m, body + i, i + step < n ? step : n - i) < 0;
        if (bad || crow_mpart_finish(m) < 0 || !check_parts(m, why, sizeof why)) {
            bad = 1;
            diag(why);
        }
        crow_mpart_free(m, 1);
    }
    ok(!bad, "fed in pieces of 1 to 80 bytes: the same parts");
    ok(count_files() == 0, "crow_mpart_free(m, 1) removes the temporary files");
    struct crow_mpart *m = make("XyZ");
    crow_mpart_feed(m, body, n);
    crow_mpart_finish(m);
    struct crow_mpart_part p;
    crow_mpart_get(m, 1, &p);
    char *keep = strdup(p.path);
    is_int(crow_mpart_fed(m), n, "crow_mpart_fed counts the bytes");
    crow_mpart_free(m, 0);
    ok(access(keep, F_OK) == 0, "crow_mpart_free(m, 0) leaves the files to the caller");
    unlink(keep);
    free(keep);
    for (size_t i = 0; i < 2; i++) { /* empty-file part 3 was left too */
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -f %s/t-*", dir);
        if (system(cmd) != 0)
            break;
    }
}

static int run(const char *boundary, const char *b, int *err)
{
    struct crow_mpart *m = make(boundary);
    int r = crow_mpart_feed(m, b, strlen(b));
    if (r == 0)
        r = crow_mpart_finish(m);
    *err = r < 0 ? errno : 0;
    int n = (int)crow_mpart_count(m);
    crow_mpart_free(m, 1);
    return r < 0 ? -1 : n;
}

static void test_edges(void)
{
    int e;
    is_int(run("b", "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--b\r\n"
                    "Content-Disposition: form-data; name=\"c\"\r\n\r\nunterminated", &e), -1,
           "missing close delimiter: finish fails");
    is_int(e, EBADMSG, "... with EBADMSG");
    is_int(run("b", "--b--\r\n", &e), 0, "a close delimiter alone: no parts");
    is_int(run("b", "no delimiter at all", &e), -1, "no delimiter: fails");
    is_int(e, EBADMSG, "... with EBADMSG");
    is_int(run("b", "--b\r\nX: y\r\n\r\nunended head--b--", &e), -1,
           "a close delimiter not at a line start is data");
    is_int(run("b", "--b\nX: y\r\n\r\nv\r\n--b--", &e), 0,
           "a delimiter line ended by a bare LF is not one (preamble, then the close: 0 parts)");
    is_int(run("b", "junk--b\r\n\r\nv\r\n--b--", &e), 0,
           "a first delimiter not at the body's or a line's start is preamble");
    is_int(run("b", "pre\r\n--b\r\n\r\nv\n--b\r\n\r\nw\r\n--b--", &e), 1,
           "an LF-only line start before a boundary is data: 1 part");
    is_int(run("b", "--b\r\n\r\nv\r\n--bb\r\n--b-\r\n--b--junk", &e), 1,
           "a longer boundary and --b- are data; epilogue after --b-- dropped");
    /* filename detection */
    struct crow_mpart *m = make("b");
    const char *b = "--b\r\nContent-Disposition: form-data; name=\"a; filename=x\"\r\n\r\nv\r\n"
                    "--b\r\ncontent-disposition: form-data; name=f; FILENAME*=UTF-8''x\r\n\r\nw\r\n"
                    "--b\r\nX-Other: filename=\"no\"\r\n\r\nz\r\n--b--";
    struct crow_mpart_part p0, p1, p2;
    ok(crow_mpart_feed(m, b, strlen(b)) == 0 && crow_mpart_finish(m) == 0 &&
           crow_mpart_get(m, 0, &p0) == 0 && crow_mpart_get(m, 1, &p1) == 0 &&
           crow_mpart_get(m, 2, &p2) == 0,
       "three parts");
    ok(!p0.path, "filename= inside a quoted name is not a filename parameter");
    ok(p1.path != NULL, "filename* in any case makes a file part");
    ok(!p2.path, "filename in another header does not count");
    ok(crow_mpart_get(m, 3, &p0) < 0 && errno == ERANGE, "crow_mpart_get past the end: ERANGE");
    crow_mpart_free(m, 1);
}

static void test_limits(void)
{
    struct crow_mpart_config c;
    const char *file2 = "--b\r\nContent-Disposition: form-data; name=f; filename=a\r\n\r\n0123456789\r\n"
                        "--b\r\nContent-Disposition: form-data; name=g; filename=b\r\n\r\nx\r\n--b--";
    crow_mpart_config_init(&c);
    c.boundary = "b";
    c.boundary_len = 1;
    c.dir = dir;
    c.prefix = "t-";
    c.max_file = 9;
    struct crow_mpart *m = crow_mpart_new(&c);
    int r = crow_mpart_feed(m, file2, strlen(file2));
    ok(r < 0 && errno == EFBIG, "a file part over max_file: EFBIG");
    ok(crow_mpart_feed(m, "x", 1) < 0 && errno == EFBIG && crow_mpart_finish(m) < 0 &&
           errno == EFBIG && crow_mpart_error(m) == EFBIG,
       "the error is sticky");
    ok(count_files() == 1, "the cut file stays until free");
    crow_mpart_free(m, 1);
    ok(count_files() == 0, "... and free(1) removes it");
    c.max_file = 10;
    m = crow_mpart_new(&c);
    ok(crow_mpart_feed(m, file2, strlen(file2)) == 0 && crow_mpart_finish(m) == 0,
       "a file of exactly max_file is taken");
    crow_mpart_free(m, 1);
    c.max_files = 1;
    m = crow_mpart_new(&c);
    ok(crow_mpart_feed(m, file2, strlen(file2)) < 0 && errno == EMLINK, "over max_files: EMLINK");
    crow_mpart_free(m, 1);
    c.max_files = 16;
    c.max_parts = 1;
    m = crow_mpart_new(&c);
    ok(crow_mpart_feed(m, file2, strlen(file2)) < 0 && errno == EMLINK, "over max_parts: EMLINK");
    crow_mpart_free(m, 1);
    c.max_parts = 10;
    c.max_memory = 45;
    const char *fields = "--b\r\nContent-Disposition: form-data; name=a\r\n\r\n0123456789\r\n--b--";
    m = crow_mpart_new(&c);
    ok(crow_mpart_feed(m, fields, strlen(fields)) < 0 && errno == E2BIG,
       "fields over max_memory: E2BIG");
    crow_mpart_free(m, 1);
    c.max_memory = 1 << 20;
    c.max_part_head = 16;
    m = crow_mpart_new(&c);
    ok(crow_mpart_feed(m, fields, strlen(fields)) < 0 && errno == E2BIG,
       "a part head over max_part_head: E2BIG");
    crow_mpart_free(m, 1);
    c.max_part_head = 8192;
    c.dir = "/nonexistent-crow-dir";
    m = crow_mpart_new(&c);
    ok(crow_mpart_feed(m, file2, strlen(file2)) < 0 && errno == ENOENT,
       "a temporary directory that does not exist: mkostemp's ENOENT");
    crow_mpart_free(m, 1);
    c.boundary_len = 71;
    ok(crow_mpart_new(&c) == NULL && errno == EINVAL, "a boundary over 70 bytes: EINVAL");
    c.boundary_len = 0;
    ok(crow_mpart_new(&c) == NULL && errno == EINVAL, "an empty boundary: EINVAL");
}

static void test_big(void)
{
    /* 3 MiB of a file whose contents are full of near-boundaries, fed in 4 KiB + 1 pieces */
    size_t fn = 3u << 20;
    char *f = malloc(fn);
    for (size_t i = 0; i < fn; i++)
        f[i] = "\r\n--bound-\r"[i % 11];
    const char *h = "--bound\r\nContent-Disposition: form-data; name=f; filename=big\r\n\r\n";
    const char *t = "\r\n--bound--\r\n";
    struct crow_mpart *m = make("bound");
    int bad = crow_mpart_feed(m, h, strlen(h)) < 0;
    for (size_t i = 0; i < fn && !bad; i += 4097)
        bad = crow_mpart_feed(m, f + i, i + 4097 < fn ? 4097 : fn - i) < 0;
    bad = bad || crow_mpart_feed(m, t, strlen(t)) < 0 || crow_mpart_finish(m) < 0;
    struct crow_mpart_part p;
    ok(!bad && crow_mpart_get(m, 0, &p) == 0 && p.size == fn, "3 MiB of near-boundaries: one file");
    FILE *in = p.path ? fopen(p.path, "rb") : NULL;
    char *g = malloc(fn + 1);
    size_t got = in ? fread(g, 1, fn + 1, in) : 0;
    if (in)
        fclose(in);
    ok(got == fn && !memcmp(f, g, fn), "... with the very bytes sent");
    size_t mlen;
    crow_mpart_memory(m, &mlen);
    ok(mlen < 100, "... and nothing of it in memory (%zu bytes)", mlen);
    crow_mpart_free(m, 1);
    free(f);
    free(g);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/crow-mpart-XXXXXX");
    if (!mkdtemp(dir)) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    test_splits();
    test_edges();
    test_limits();
    test_big();
    rmdir(dir);
    return tap_done();
}
