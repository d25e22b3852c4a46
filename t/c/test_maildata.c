/* test_maildata.c — c-core/maildata: header scan, durable store, POP3 stuffing. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maildata.h"
#include "tap.h"

#define S(lit) (const unsigned char *)(lit), sizeof(lit) - 1

static void test_scan(void)
{
    struct crow_maildata_info in;
    const char *m = "Received: from a\r\nReceived: from b\r\n"
                    "Subject: hello\r\n world folded\r\nX-A: 1\r\n\r\nbody line\r\n.dot\r\n";
    crow_maildata_scan((const unsigned char *)m, strlen(m), &in);
    is_int(in.fields, 4, "scan: four header fields");
    is_int(in.received, 2, "scan: two Received fields");
    is_int(in.max_field, strlen("Subject: hello") + strlen(" world folded"),
           "scan: a folded field's length is the joined lines'");
    is_int(in.header_len, strstr(m, "\r\n\r\n") + 4 - m, "scan: header_len ends after the empty line");
    is_int(in.flags, CROW_MAILDATA_F_DOT_LINE, "scan: clean message has only its dot line flagged");
    is_int(in.max_line, strlen("Received: from a"), "scan: longest line");

    crow_maildata_scan(S("Subject: x\r\nno colon here\r\n\r\nb\r\n"), &in);
    ok(in.flags & CROW_MAILDATA_F_BAD_FIELD, "scan: a header line without a colon is flagged");
    crow_maildata_scan(S("Subject: x\r\n"), &in);
    ok(in.flags & CROW_MAILDATA_F_NO_BODY, "scan: no empty line: NO_BODY");
    is_int(in.header_len, strlen("Subject: x\r\n"), "scan: no empty line: header_len is all");
    crow_maildata_scan(S("S: \xc3\xa9\r\n\r\nbare\nlf\r\n"), &in);
    ok((in.flags & CROW_MAILDATA_F_8BIT) && (in.flags & CROW_MAILDATA_F_BARE),
       "scan: 8-bit byte and bare LF flagged");
    crow_maildata_scan(S("S: a\rb\r\n\r\n"), &in);
    ok(in.flags & CROW_MAILDATA_F_BARE, "scan: bare CR flagged");
    crow_maildata_scan((const unsigned char *)"S: a\0b\r\n\r\n", 10, &in);
    ok(in.flags & CROW_MAILDATA_F_NUL, "scan: NUL flagged");
    crow_maildata_scan(NULL, 0, &in);
    ok((in.flags & CROW_MAILDATA_F_NO_BODY) && (in.flags & CROW_MAILDATA_F_NO_CRLF), "scan: empty message");
    crow_maildata_scan(S("S: x\r\n\r\nbody\r\n.dot\r\n"), &in);
    ok(in.flags & CROW_MAILDATA_F_DOT_LINE, "scan: a line starting with a dot is flagged");
    crow_maildata_scan(S("S: x\r\n\r\nbody.\r\n x.\r\n"), &in);
    ok(!(in.flags & (CROW_MAILDATA_F_DOT_LINE | CROW_MAILDATA_F_NO_CRLF)), "scan: dots elsewhere are not, CRLF end");
    crow_maildata_scan(S("S: x\r\n\r\nno end"), &in);
    ok(in.flags & CROW_MAILDATA_F_NO_CRLF, "scan: no final CRLF flagged");
}

static void pop3_case(const char *msg, long lines, const char *want, const char *what)
{
    size_t len = strlen(msg), need = crow_maildata_pop3_size((const unsigned char *)msg, len, lines);
    unsigned char *out = malloc(need + 1);
    size_t n = crow_maildata_pop3((const unsigned char *)msg, len, lines, out, need);
    out[n == (size_t)-1 ? 0 : n] = 0;
    if (!ok(n == strlen(want) && need == n && memcmp(out, want, n) == 0, "pop3: %s", what))
        printf("#   got [%s]\n", out);
    if (need > 0) {
        errno = 0;
        ok(crow_maildata_pop3((const unsigned char *)msg, len, lines, out, need - 1) == (size_t)-1
           && errno == ENOSPC, "pop3: %s: one byte short is ENOSPC", what);
    }
    free(out);
}

static void test_pop3(void)
{
    pop3_case("A: 1\r\n\r\n.hidden\r\n..two\r\nx\r\n", -1,
              "A: 1\r\n\r\n..hidden\r\n...two\r\nx\r\n.\r\n", "RETR stuffs leading dots");
    pop3_case("A: 1\r\n\r\nno final crlf", -1, "A: 1\r\n\r\nno final crlf\r\n.\r\n",
              "RETR ends an unterminated last line");
    pop3_case("", -1, ".\r\n", "RETR of an empty message");
    pop3_case(".\r\n", -1, "..\r\n.\r\n", "RETR of a lone dot line");
    pop3_case("A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n", 0, "A: 1\r\nB: 2\r\n\r\n.\r\n",
              "TOP 0 is the header and the empty line");
    pop3_case("A: 1\r\n\r\nl1\r\n.l2\r\nl3\r\n", 2, "A: 1\r\n\r\nl1\r\n..l2\r\n.\r\n",
              "TOP 2 stuffs too");
    pop3_case("A: 1\r\n\r\nl1\r\n", 10, "A: 1\r\n\r\nl1\r\n.\r\n", "TOP beyond the end");
}

static int file_is(const char *path, const char *want)
{
    char buf[256];
    int fd = open(path, O_RDONLY);
    ssize_t n;
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof buf);
    close(fd);
    return n == (ssize_t)strlen(want) && memcmp(buf, want, (size_t)n) == 0;
}

static void test_store(void)
{
    char dir[] = "/tmp/crow-maildata-XXXXXX";
    char tmp[512], f1[512], f2[512], sub[512];
    const char *finals[2];
    struct iovec iov[2];
    struct stat st;

    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return;
    }
    snprintf(tmp, sizeof tmp, "%s/tmp.1", dir);
    snprintf(sub, sizeof sub, "%s/b", dir);
    mkdir(sub, 0700);
    snprintf(f1, sizeof f1, "%s/m1", dir);
    snprintf(f2, sizeof f2, "%s/b/m1", dir);
    finals[0] = f1;
    finals[1] = f2;
    iov[0].iov_base = "Received: x\r\n";
    iov[0].iov_len = 13;
    iov[1].iov_base = "Subject: y\r\n\r\nhi\r\n";
    iov[1].iov_len = 18;
    is_int(crow_maildata_store(tmp, finals, 2, iov, 2, 0), 0, "store: two finals");
    ok(file_is(f1, "Received: x\r\nSubject: y\r\n\r\nhi\r\n") && file_is(f2, "Received: x\r\nSubject: y\r\n\r\nhi\r\n"),
       "store: both names hold the message");
    ok(stat(tmp, &st) < 0 && errno == ENOENT, "store: the temporary name is gone");
    ok(stat(f1, &st) == 0 && st.st_nlink == 2 && (st.st_mode & 0777) == 0600,
       "store: one file, two links, mode 0600");

    errno = 0;
    ok(crow_maildata_store(tmp, finals, 1, iov, 2, 0) < 0 && errno == EEXIST,
       "store: an existing final name is EEXIST");
    ok(stat(tmp, &st) < 0, "store: failure removes the temporary file");

    snprintf(f2, sizeof f2, "%s/nodir/m2", dir);
    snprintf(f1, sizeof f1, "%s/m2", dir);
    finals[0] = f1;
    finals[1] = f2;
    errno = 0;
    ok(crow_maildata_store(tmp, finals, 2, iov, 2, 1) < 0 && errno == ENOENT,
       "store: a missing directory is ENOENT");
    ok(stat(f1, &st) < 0 && stat(tmp, &st) < 0, "store: failure removes the names it made");
    errno = 0;
    ok(crow_maildata_store(tmp, finals, 0, iov, 2, 0) < 0 && errno == EINVAL, "store: no finals is EINVAL");

    snprintf(f1, sizeof f1, "%s/m1", dir);
    unlink(f1);
    snprintf(f1, sizeof f1, "%s/b/m1", dir);
    unlink(f1);
    rmdir(sub);
    rmdir(dir);
}

int main(void)
{
    test_scan();
    test_pop3();
    test_store();
    return tap_done();
}
