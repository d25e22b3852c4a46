/* tls.c — TLS contexts and connections over OpenSSL, for listen-tls and in-session STARTTLS.
 *
 * Design: a thin, errno-style layer over OpenSSL's SSL_CTX and SSL, so the session I/O
 * (sess.c) and the event loop can treat a TLS connection like a descriptor: a call either
 * moves bytes or fails with an errno, EAGAIN meaning "wait for crow_tls_want() and call
 * again".  OpenSSL's own error reporting (a per-thread queue, SSL_get_error's codes) is folded
 * into that here, once: the queue is cleared before each call, and a TLS failure becomes
 * EPROTO with the queue's last reason copied into the connection, so no other module touches
 * OpenSSL's error machinery.  Policy is fixed, not configurable, because every crow server
 * wants the same: TLS 1.2 minimum, forward-secret AEAD ciphers, no compression (CRIME), no
 * renegotiation (client-initiated renegotiation is a cheap CPU attack), buffers released while
 * a connection is idle (session threads sit idle a lot), and a missing close_notify read as a
 * plain end of file (FTP, SMTP, POP3 and IRC frame their own ends).  The key and certificate
 * are read when the context is made, so the privileged parent can make it before chroot.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "crow.h"
#include "tls.h"

struct crow_tls_ctx {
    SSL_CTX *ssl;
    int server;
};

struct crow_tls {
    SSL *ssl;
    int fd;
    int want;              /* POLLIN or POLLOUT after EAGAIN */
    int shut;              /* close_notify sent, or must not be (after a fatal error) */
    char err[200];
};

/* TLS 1.2 suites: ECDHE/DHE key exchange, AEAD only (Mozilla's "intermediate" list).  TLS 1.3
 * suites are OpenSSL's defaults, all of them AEAD. */
static const char CIPHERS12[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";

static void set_err(char *err, size_t errlen, const char *what)
{
    if (!err || !errlen)
        return;
    unsigned long e = ERR_peek_last_error();
    if (e) {
        char reason[160];
        ERR_error_string_n(e, reason, sizeof reason);
        snprintf(err, errlen, "%s: %s", what, reason);
    } else {
        snprintf(err, errlen, "%s: %s", what, strerror(errno));
    }
}

/* errno for a failed context step: a system error from reading a file, else EPROTO. */
static int ctx_errno(void)
{
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_SYS)
        return ERR_GET_REASON(e);
    if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE)
        return ENOMEM;
    return EPROTO;
}

/* Returns 0 if FILE can be opened for reading, else -1 with errno and ERR set: OpenSSL's own
 * report of a missing file loses the errno. */
static int readable(const char *file, char *err, size_t errlen)
{
    int fd = CROW_RETRY(open(file, O_RDONLY | O_CLOEXEC));
    if (fd < 0) {
        int e = errno;
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", file, strerror(e));
        errno = e;
        return -1;
    }
    close(fd);
    return 0;
}

static struct crow_tls_ctx *ctx_new(int server, char *err, size_t errlen)
{
    struct crow_tls_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        errno = ENOMEM;
        return NULL;
    }
    ERR_clear_error();
    c->server = server;
    c->ssl = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!c->ssl) {
        set_err(err, errlen, "SSL_CTX_new");
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(c->ssl, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                    SSL_OP_CIPHER_SERVER_PREFERENCE |
                                    SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(c->ssl, CIPHERS12) != 1) {
        set_err(err, errlen, "cipher list");
        SSL_CTX_free(c->ssl);
        free(c);
        errno = EPROTO;
        return NULL;
    }
    if (server) {
        SSL_CTX_set_dh_auto(c->ssl, 1);
        SSL_CTX_set_session_id_context(c->ssl, (const unsigned char *)"crow", 4);
    }
    return c;
}

static struct crow_tls_ctx *ctx_fail(struct crow_tls_ctx *c, char *err, size_t errlen,
                                     const char *what)
{
    int e = ctx_errno();
    set_err(err, errlen, what);
    crow_tls_ctx_free(c);
    ERR_clear_error();
    errno = e;
    return NULL;
}

struct crow_tls_ctx *crow_tls_server_ctx(const char *cert_file, const char *key_file,
                                         char *err, size_t errlen)
{
    if (readable(cert_file, err, errlen) < 0 || readable(key_file, err, errlen) < 0)
        return NULL;
    struct crow_tls_ctx *c = ctx_new(1, err, errlen);
    if (!c)
        return NULL;
    if (SSL_CTX_use_certificate_chain_file(c->ssl, cert_file) != 1)
        return ctx_fail(c, err, errlen, cert_file);
    if (SSL_CTX_use_PrivateKey_file(c->ssl, key_file, SSL_FILETYPE_PEM) != 1)
        return ctx_fail(c, err, errlen, key_file);
    if (SSL_CTX_check_private_key(c->ssl) != 1)
        return ctx_fail(c, err, errlen, "key does not match certificate");
    ERR_clear_error();
    return c;
}

struct crow_tls_ctx *crow_tls_client_ctx(const char *ca_file, char *err, size_t errlen)
{
    if (ca_file && readable(ca_file, err, errlen) < 0)
        return NULL;
    struct crow_tls_ctx *c = ctx_new(0, err, errlen);
    if (!c)
        return NULL;
    if (ca_file) {
        if (SSL_CTX_load_verify_locations(c->ssl, ca_file, NULL) != 1)
            return ctx_fail(c, err, errlen, ca_file);
        SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(c->ssl, SSL_VERIFY_NONE, NULL);
    }
    ERR_clear_error();
    return c;
}

void crow_tls_ctx_free(struct crow_tls_ctx *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl);
    free(ctx);
}

struct crow_tls *crow_tls_new(struct crow_tls_ctx *ctx, int fd, const char *host)
{
    struct crow_tls *t = calloc(1, sizeof *t);
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    ERR_clear_error();
    t->fd = fd;
    t->want = POLLIN;
    t->ssl = SSL_new(ctx->ssl);
    if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1) {
        int e = ctx_errno();
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        errno = e;
        return NULL;
    }
    if (ctx->server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        if (host && *host) {
            SSL_set_tlsext_host_name(t->ssl, host);
            if (SSL_CTX_get_verify_mode(ctx->ssl) & SSL_VERIFY_PEER)
                SSL_set1_host(t->ssl, host);
        }
    }
    return t;
}

void crow_tls_free(struct crow_tls *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t);
}

/* Turns the outcome R of an SSL_* call into -1 and errno (EAGAIN, EPROTO, ...), or returns 0
 * for a clean close (SSL_ERROR_ZERO_RETURN).  SAVED is errno right after the call.  Sets
 * RETRY when the call was merely interrupted by a signal and should be repeated at once. */
static int fail(struct crow_tls *t, int r, int saved, int *retry)
{
    int code = SSL_get_error(t->ssl, r);
    *retry = 0;
    switch (code) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        if (saved == EINTR) {
            *retry = 1;
            return -1;
        }
        t->want = code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (saved == EINTR) {
            *retry = 1;
            return -1;
        }
        t->shut = 1;       /* OpenSSL forbids SSL_shutdown after a fatal error */
        if (ERR_peek_last_error()) {
            set_err(t->err, sizeof t->err, "tls");
            errno = EPROTO;
        } else {
            /* An end of file where OpenSSL still wanted bytes (mid-handshake). */
            snprintf(t->err, sizeof t->err, "tls: %s",
                     saved ? strerror(saved) : "connection closed by peer");
            errno = saved ? saved : ECONNRESET;
        }
        return -1;
    default: {
        long v = SSL_get_verify_result(t->ssl);
        t->shut = 1;
        set_err(t->err, sizeof t->err, "tls");
        if (v != X509_V_OK) {
            size_t n = strlen(t->err);
            snprintf(t->err + n, sizeof t->err - n, " (%s)",
                     X509_verify_cert_error_string(v));
        }
        errno = EPROTO;
        return -1;
    }
    }
}

int crow_tls_handshake(struct crow_tls *t)
{
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(t->ssl);
        if (r == 1)
            return 0;
        int retry, saved = errno;
        if (fail(t, r, saved, &retry) == 0) {
            snprintf(t->err, sizeof t->err, "tls: closed during handshake");
            errno = ECONNRESET;
            return -1;
        }
        if (!retry)
            return -1;
    }
}

void crow_tls_no_tickets(struct crow_tls *t)
{
    SSL_set_num_tickets(t->ssl, 0);
}

ssize_t crow_tls_read(struct crow_tls *t, void *buf, size_t len)
{
    if (len == 0)
        return 0;
    for (;;) {
        size_t n = 0;
        ERR_clear_error();
        int r = SSL_read_ex(t->ssl, buf, len, &n);
        if (r == 1)
            return (ssize_t)n;
        int retry, saved = errno;
        if (fail(t, 0, saved, &retry) == 0)
            return 0;
        if (!retry)
            return -1;
    }
}

ssize_t crow_tls_write(struct crow_tls *t, const void *buf, size_t len)
{
    if (len == 0)
        return 0;
    for (;;) {
        size_t n = 0;
        ERR_clear_error();
        int r = SSL_write_ex(t->ssl, buf, len, &n);
        if (r == 1)
            return (ssize_t)n;
        int retry, saved = errno;
        if (fail(t, 0, saved, &retry) == 0) {
            errno = EPIPE;
            return -1;
        }
        if (!retry)
            return -1;
    }
}

int crow_tls_shutdown(struct crow_tls *t)
{
    if (t->shut)
        return 0;
    for (;;) {
        ERR_clear_error();
        int r = SSL_shutdown(t->ssl);
        if (r >= 0) {
            t->shut = 1;
            return 0;
        }
        int retry, saved = errno;
        if (fail(t, r, saved, &retry) == 0) {
            t->shut = 1;
            return 0;
        }
        if (!retry)
            return -1;
    }
}

int crow_tls_want(const struct crow_tls *t) { return t->want; }

size_t crow_tls_pending(const struct crow_tls *t)
{
    int n = SSL_pending(t->ssl);
    return n > 0 ? (size_t)n : 0;
}

int crow_tls_fd(const struct crow_tls *t) { return t->fd; }

const char *crow_tls_error(const struct crow_tls *t) { return t->err; }

const char *crow_tls_version(const struct crow_tls *t)
{
    return SSL_is_init_finished(t->ssl) ? SSL_get_version(t->ssl) : "";
}

const char *crow_tls_cipher(const struct crow_tls *t)
{
    const char *c = SSL_is_init_finished(t->ssl) ? SSL_get_cipher_name(t->ssl) : NULL;
    return c ? c : "";
}
