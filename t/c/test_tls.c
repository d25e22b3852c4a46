/* test_tls.c — TLS contexts and connections: real OpenSSL handshakes over socketpairs, blocking
 * and non-blocking, verification, bad input, old protocol versions, big transfers. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "tap.h"
#include "tls.h"

static char dir_a[256], dir_b[256], cert_a[300], key_a[300], cert_b[300], key_b[300];

static int mkcert(const char *dir)
{
    const char *root = getenv("CROW_ROOT");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s/tools/mkcert %s", root ? root : ".", dir);
    return system(cmd);
}

/* The server side of a blocking handshake, run in a thread. */
struct srv {
    struct crow_tls_ctx *ctx;
    int fd;
    int hs;                  /* handshake result */
    int hs_errno;
    char got[64];
    ssize_t n;
};

static void *server_thread(void *arg)
{
    struct srv *s = arg;
    struct crow_tls *t = crow_tls_new(s->ctx, s->fd, NULL);
    s->hs = t ? crow_tls_handshake(t) : -2;
    s->hs_errno = errno;
    if (s->hs == 0) {
        s->n = crow_tls_read(t, s->got, sizeof s->got - 1);
        if (s->n > 0) {
            s->got[s->n] = 0;
            crow_tls_write(t, "pong", 4);
        }
        char c;
        crow_tls_read(t, &c, 1);   /* until the client closes */
        crow_tls_shutdown(t);
    }
    crow_tls_free(t);
    return NULL;
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Drives a call on a non-blocking connection until it stops failing with EAGAIN (bounded). */
static int wait_want(struct crow_tls *t)
{
    struct pollfd p = {crow_tls_fd(t), (short)crow_tls_want(t), 0};
    return poll(&p, 1, 5000);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    char err[256];

    snprintf(dir_a, sizeof dir_a, "/tmp/crow-test-tls-%d-a", (int)getpid());
    snprintf(dir_b, sizeof dir_b, "/tmp/crow-test-tls-%d-b", (int)getpid());
    ok(mkcert(dir_a) == 0 && mkcert(dir_b) == 0, "tools/mkcert makes two certificates");
    snprintf(cert_a, sizeof cert_a, "%s/cert.pem", dir_a);
    snprintf(key_a, sizeof key_a, "%s/key.pem", dir_a);
    snprintf(cert_b, sizeof cert_b, "%s/cert.pem", dir_b);
    snprintf(key_b, sizeof key_b, "%s/key.pem", dir_b);

    /* Contexts. */
    errno = 0;
    struct crow_tls_ctx *bad = crow_tls_server_ctx("/nonexistent/cert.pem", key_a, err, sizeof err);
    ok(bad == NULL && errno == ENOENT, "missing certificate file: NULL, ENOENT (errno %d)", errno);
    ok(strstr(err, "/nonexistent/cert.pem") != NULL, "error names the file: %s", err);
    bad = crow_tls_server_ctx(cert_a, key_b, err, sizeof err);
    ok(bad == NULL && errno == EPROTO, "key of another certificate: NULL, EPROTO");
    ok(strstr(err, "mismatch") != NULL, "error says why: %s", err);
    bad = crow_tls_server_ctx("/etc/hostname", key_a, err, sizeof err);
    ok(bad == NULL && errno == EPROTO, "a file that is not PEM: EPROTO");

    struct crow_tls_ctx *sctx = crow_tls_server_ctx(cert_a, key_a, err, sizeof err);
    ok(sctx != NULL, "server context from cert + key");
    struct crow_tls_ctx *cnone = crow_tls_client_ctx(NULL, err, sizeof err);
    struct crow_tls_ctx *cver = crow_tls_client_ctx(cert_a, err, sizeof err);
    struct crow_tls_ctx *cother = crow_tls_client_ctx(cert_b, err, sizeof err);
    ok(cnone && cver && cother, "client contexts (no verification, CA a, CA b)");
    ok(crow_tls_client_ctx("/nonexistent/ca.pem", err, sizeof err) == NULL,
       "client context with a missing CA file fails");
    if (!sctx || !cnone || !cver || !cother)
        return tap_done();

    /* Blocking handshake with verification against the right CA and host. */
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct srv s = {sctx, sv[0], 0, 0, {0}, 0};
    pthread_t th;
    pthread_create(&th, NULL, server_thread, &s);
    struct crow_tls *c = crow_tls_new(cver, sv[1], "localhost");
    ok(c != NULL, "client connection");
    ok(strcmp(crow_tls_version(c), "") == 0, "no version before the handshake");
    is_int(crow_tls_handshake(c), 0, "blocking handshake, certificate verified for localhost");
    ok(strcmp(crow_tls_version(c), "TLSv1.3") == 0, "TLS 1.3 negotiated (%s)", crow_tls_version(c));
    ok(strlen(crow_tls_cipher(c)) > 0, "cipher %s", crow_tls_cipher(c));
    is_int(crow_tls_write(c, "ping", 4), 4, "client writes");
    char buf[64];
    ssize_t n = crow_tls_read(c, buf, sizeof buf);
    ok(n == 4 && memcmp(buf, "pong", 4) == 0, "client reads the server's reply");
    is_int(crow_tls_shutdown(c), 0, "client close_notify");
    shutdown(sv[1], SHUT_WR);
    pthread_join(th, NULL);
    ok(s.hs == 0 && strcmp(s.got, "ping") == 0, "server handshake and read");
    crow_tls_free(c);
    close(sv[0]);
    close(sv[1]);

    /* Wrong host name, wrong CA: the client refuses, EPROTO with a reason. */
    const char *hosts[2] = {"example.com", "localhost"};
    struct crow_tls_ctx *cas[2] = {cver, cother};
    for (int i = 0; i < 2; i++) {
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
        struct srv s2 = {sctx, sv[0], 0, 0, {0}, 0};
        pthread_create(&th, NULL, server_thread, &s2);
        c = crow_tls_new(cas[i], sv[1], hosts[i]);
        int r = crow_tls_handshake(c);
        int e = errno;
        ok(r == -1 && e == EPROTO, "%s: handshake fails with EPROTO",
           i ? "certificate of another CA" : "wrong host name");
        ok(strstr(crow_tls_error(c), "verify") != NULL, "reason: %s", crow_tls_error(c));
        crow_tls_free(c);
        close(sv[1]);
        pthread_join(th, NULL);
        ok(s2.hs == -1, "server side fails too");
        close(sv[0]);
    }

    /* Plaintext to a TLS server: EPROTO, not a hang. */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct srv s3 = {sctx, sv[0], 0, 0, {0}, 0};
    pthread_create(&th, NULL, server_thread, &s3);
    const char junk[] = "EHLO example.com\r\nMAIL FROM:<a@b>\r\n";
    write(sv[1], junk, sizeof junk - 1);
    pthread_join(th, NULL);
    ok(s3.hs == -1 && s3.hs_errno == EPROTO, "plaintext to a TLS server: EPROTO (errno %d)",
       s3.hs_errno);
    close(sv[0]);
    close(sv[1]);

    /* Peer gone mid-handshake: ECONNRESET. */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct srv s4 = {sctx, sv[0], 0, 0, {0}, 0};
    pthread_create(&th, NULL, server_thread, &s4);
    close(sv[1]);
    pthread_join(th, NULL);
    ok(s4.hs == -1 && s4.hs_errno == ECONNRESET, "client closed before hello: ECONNRESET (%d)",
       s4.hs_errno);
    close(sv[0]);

    /* A TLS 1.1 client is refused. */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct srv s5 = {sctx, sv[0], 0, 0, {0}, 0};
    pthread_create(&th, NULL, server_thread, &s5);
    SSL_CTX *old = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_security_level(old, 0);
    SSL_CTX_set_min_proto_version(old, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(old, TLS1_1_VERSION);
    SSL *os = SSL_new(old);
    SSL_set_fd(os, sv[1]);
    ok(SSL_connect(os) != 1, "TLS 1.1 client: handshake fails");
    SSL_free(os);
    SSL_CTX_free(old);
    close(sv[1]);
    pthread_join(th, NULL);
    ok(s5.hs == -1 && s5.hs_errno == EPROTO, "server refuses TLS 1.1 (EPROTO)");
    close(sv[0]);

    /* Non-blocking, both ends in this thread: handshake and 1 MiB each way in pieces. */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    set_nonblock(sv[0]);
    set_nonblock(sv[1]);
    struct crow_tls *st = crow_tls_new(sctx, sv[0], NULL);
    c = crow_tls_new(cnone, sv[1], NULL);
    int sdone = 0, cdone = 0, eagains = 0, rounds = 0;
    while ((!sdone || !cdone) && rounds++ < 1000) {
        if (!sdone) {
            int r = crow_tls_handshake(st);
            if (r == 0)
                sdone = 1;
            else if (errno == EAGAIN)
                eagains++;
            else
                break;
        }
        if (!cdone) {
            int r = crow_tls_handshake(c);
            if (r == 0)
                cdone = 1;
            else if (errno == EAGAIN)
                eagains++;
            else
                break;
        }
    }
    ok(sdone && cdone && eagains > 0 && rounds < 1000, "non-blocking handshake completes through EAGAIN (%d)",
       eagains);
    enum { BIG = 1 << 20 };
    unsigned char *out = malloc(BIG), *in = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        out[i] = (unsigned char)(i * 31 + (i >> 9));
    size_t wrote = 0, got = 0;
    int stalls = 0;
    rounds = 0;
    while (got < BIG && rounds++ < 100000) {
        if (wrote < BIG) {
            ssize_t w = crow_tls_write(c, out + wrote, BIG - wrote);
            if (w > 0)
                wrote += (size_t)w;
            else if (errno != EAGAIN)
                break;
            else
                stalls++;
        }
        ssize_t r = crow_tls_read(st, in + got, BIG - got);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0 || errno != EAGAIN)
            break;
        else if (wrote == BIG)
            wait_want(st);
    }
    ok(got == BIG && memcmp(in, out, BIG) == 0, "1 MiB non-blocking, intact (%d write stalls)",
       stalls);
    ok(wrote == BIG, "every byte written");
    ok(crow_tls_pending(st) == 0, "nothing left pending");
    crow_tls_shutdown(c);
    ssize_t r = -1;
    for (int i = 0; i < 100; i++) {
        r = crow_tls_read(st, in, 16);
        if (!(r < 0 && errno == EAGAIN))
            break;
        wait_want(st);
    }
    is_int(r, 0, "close_notify reads as end of file");
    crow_tls_free(st);
    crow_tls_free(c);
    close(sv[0]);
    close(sv[1]);

    /* Writing after the peer closed: EPIPE/ECONNRESET, no signal. */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct srv s6 = {sctx, sv[0], 0, 0, {0}, 0};
    pthread_create(&th, NULL, server_thread, &s6);
    c = crow_tls_new(cnone, sv[1], NULL);
    crow_tls_handshake(c);
    crow_tls_write(c, "x", 1);
    crow_tls_read(c, buf, sizeof buf);
    shutdown(sv[0], SHUT_RDWR);
    pthread_join(th, NULL);
    close(sv[0]);
    int e = 0;
    for (int i = 0; i < 10 && !e; i++)
        if (crow_tls_write(c, buf, sizeof buf) < 0)
            e = errno;
    ok(e == EPIPE || e == ECONNRESET, "write to a closed peer: EPIPE/ECONNRESET (%d)", e);
    crow_tls_free(c);
    close(sv[1]);

    crow_tls_ctx_free(sctx);
    crow_tls_ctx_free(cnone);
    crow_tls_ctx_free(cver);
    crow_tls_ctx_free(cother);
    crow_tls_ctx_free(NULL);
    crow_tls_free(NULL);
    free(out);
    free(in);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir_a, dir_b);
    system(cmd);
    return tap_done();
}
