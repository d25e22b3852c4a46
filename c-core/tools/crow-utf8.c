/* crow-utf8.c — UTF-8 <-> UTF-32LE converter, validator and counter for pipelines (iconv-like,
 * streaming in 64 KiB chunks, bounded memory), over libcrowcore's utf8 module. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crow.h"
#include "fdio.h"
#include "utf8.h"

#define CHUNK 65536
#define PROG "crow-utf8"

enum { EXIT_INVALID = 1, EXIT_TROUBLE = 2 };

static uint8_t inbuf[CHUNK + 4];
static uint32_t cpbuf[CHUNK + 4];
static uint8_t outbuf[4 * (CHUNK / 4) + 8];

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " -d|-e|-v|-c [-s] [FILE...]\n"
            "Converts, checks or counts UTF-8 (strict: no overlongs, surrogates or values above\n"
            "U+10FFFF).  Reads standard input when no FILE is given or FILE is -.\n"
            "  -d         decode UTF-8 to UTF-32LE; ill-formed sequences become U+FFFD\n"
            "  -e         encode UTF-32LE to UTF-8; surrogates and values above U+10FFFF become\n"
            "             U+FFFD\n"
            "  -v         validate: exit 0, or print the byte offset of the first error and exit 1\n"
            "  -c         print the number of code points (ill-formed sequences count as U+FFFD)\n"
            "  -s         strict -d/-e: stop at the first error, report its offset, exit 1\n"
            "  -h, --help this text;  --version  the version\n"
            "Exit status: 0 success, 1 invalid input (-v, -s), 2 usage or I/O error.\n"
            "CROW_UTF8_IMPL=scalar|sse2|avx2 forces an implementation.\n");
}

static int out_write(const void *p, size_t n)
{
    if (n && crow_fd_write_all(STDOUT_FILENO, p, n, NULL) < 0) {
        fprintf(stderr, PROG ": write: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static int to_le32(uint32_t *p, size_t n)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t k = 0; k < n; k++)
        p[k] = __builtin_bswap32(p[k]);
#else
    (void)p, (void)n;
#endif
    return 0;
}

static ssize_t in_read(int fd, const char *name, void *buf, size_t len)
{
    ssize_t r = CROW_RETRY(read(fd, buf, len));
    if (r < 0)
        fprintf(stderr, PROG ": %s: %s\n", name, strerror(errno));
    return r;
}

/* -d, -v, -c: one stream per input.  Returns an exit status. */
static int decode_input(int fd, const char *name, int op, int strict, int several)
{
    struct crow_utf8_stream s;
    uint64_t count = 0;
    size_t err;
    int mode = (op == 'v' || strict) ? CROW_UTF8_STOP : CROW_UTF8_REPLACE;
    crow_utf8_stream_init(&s, mode);
    for (;;) {
        ssize_t r = in_read(fd, name, inbuf, CHUNK);
        if (r < 0)
            return EXIT_TROUBLE;
        size_t got;
        errno = 0;
        if (r == 0)
            got = crow_utf8_stream_finish(&s, op == 'd' ? cpbuf : NULL, &err);
        else
            got = crow_utf8_stream_feed(&s, inbuf, (size_t)r, op == 'd' ? cpbuf : NULL, &err);
        int bad = errno == EILSEQ;
        count += got;
        if (op == 'd' && (to_le32(cpbuf, got), out_write(cpbuf, got * 4) < 0))
            return EXIT_TROUBLE;
        if (bad) {
            if (op == 'v') {
                if (several)
                    printf("%s: %zu\n", name, err);
                else
                    printf("%zu\n", err);
            }
            fprintf(stderr, PROG ": %s: invalid UTF-8 at byte offset %zu\n", name, err);
            return EXIT_INVALID;
        }
        if (r == 0)
            break;
    }
    if (op == 'c') {
        if (several)
            printf("%" PRIu64 " %s\n", count, name);
        else
            printf("%" PRIu64 "\n", count);
    }
    return 0;
}

/* -e: UTF-32LE units may be cut between reads; up to 3 bytes wait for the next one. */
static int encode_input(int fd, const char *name, int strict)
{
    size_t have = 0;
    uint64_t units_done = 0;
    for (;;) {
        ssize_t r = in_read(fd, name, inbuf + have, CHUNK);
        if (r < 0)
            return EXIT_TROUBLE;
        if (r == 0)
            break;
        have += (size_t)r;
        size_t nu = have / 4, e;
        memcpy(cpbuf, inbuf, nu * 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        for (size_t k = 0; k < nu; k++)
            cpbuf[k] = __builtin_bswap32(cpbuf[k]);
#endif
        errno = 0;
        size_t n = crow_utf8_encode(cpbuf, nu, outbuf, &e, strict ? CROW_UTF8_STOP : CROW_UTF8_REPLACE);
        if (out_write(outbuf, n) < 0)
            return EXIT_TROUBLE;
        if (strict && e < nu) {
            fprintf(stderr, PROG ": %s: invalid code point 0x%" PRIX32 " at byte offset %" PRIu64 "\n",
                    name, cpbuf[e], (units_done + e) * 4);
            return EXIT_INVALID;
        }
        units_done += nu;
        memmove(inbuf, inbuf + nu * 4, have - nu * 4);
        have -= nu * 4;
    }
    if (have) {
        if (strict) {
            fprintf(stderr, PROG ": %s: input ends inside a UTF-32 unit at byte offset %" PRIu64 "\n",
                    name, units_done * 4);
            return EXIT_INVALID;
        }
        if (out_write("\xef\xbf\xbd", 3) < 0)
            return EXIT_TROUBLE;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int op = 0, strict = 0, k;
    for (k = 1; k < argc && argv[k][0] == '-' && argv[k][1]; k++) {
        const char *a = argv[k];
        if (strcmp(a, "--") == 0) {
            k++;
            break;
        }
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf(PROG " %s (%s)\n", crow_version(), crow_utf8_impl());
            return 0;
        }
        if (a[1] == '-') {
            fprintf(stderr, PROG ": %s: unknown option\n", a);
            usage(stderr);
            return EXIT_TROUBLE;
        }
        for (const char *c = a + 1; *c; c++) {
            switch (*c) {
            case 'd': case 'e': case 'v': case 'c':
                if (op && op != *c) {
                    fprintf(stderr, PROG ": -%c: only one of -d, -e, -v, -c\n", *c);
                    return EXIT_TROUBLE;
                }
                op = *c;
                break;
            case 's':
                strict = 1;
                break;
            case 'h':
                usage(stdout);
                return 0;
            default:
                fprintf(stderr, PROG ": -%c: unknown option\n", *c);
                usage(stderr);
                return EXIT_TROUBLE;
            }
        }
    }
    if (!op) {
        fprintf(stderr, PROG ": no operation: give -d, -e, -v or -c\n");
        usage(stderr);
        return EXIT_TROUBLE;
    }
    if (strict && (op == 'v' || op == 'c')) {
        fprintf(stderr, PROG ": -s: only with -d or -e\n");
        return EXIT_TROUBLE;
    }
    int nfiles = argc - k, rc = 0;
    for (int f = 0; f < (nfiles ? nfiles : 1); f++) {
        const char *name = nfiles ? argv[k + f] : "-";
        int fd = STDIN_FILENO;
        if (strcmp(name, "-") != 0 && (fd = open(name, O_RDONLY | O_CLOEXEC)) < 0) {
            fprintf(stderr, PROG ": %s: %s\n", name, strerror(errno));
            rc = EXIT_TROUBLE;
            continue;
        }
        const char *shown = fd == STDIN_FILENO ? "stdin" : name;
        int st = op == 'e' ? encode_input(fd, shown, strict)
                           : decode_input(fd, shown, op, strict, nfiles > 1);
        if (fd != STDIN_FILENO)
            close(fd);
        if (st > rc)
            rc = st;
        if (st == EXIT_TROUBLE || (st && op != 'v'))
            break;
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, PROG ": write: %s\n", strerror(errno));
        return EXIT_TROUBLE;
    }
    return rc;
}
