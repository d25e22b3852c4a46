/* tls.h — TLS over OpenSSL: server and client contexts, per-connection objects over a descriptor. */
#ifndef CROW_TLS_H
#define CROW_TLS_H

#include <stddef.h>
#include <sys/types.h>

/* How this module is used.
 *
 * A context (struct crow_tls_ctx) holds the configuration shared by every connection: for a
 * server the certificate chain and private key, read from files when the context is made (so
 * the privileged parent makes it before chroot and dropping privileges; the key stays in
 * memory only).  Contexts allow TLS 1.2 and 1.3 only, forward-secret AEAD ciphers only, no
 * compression and no renegotiation.  A context may be shared by any number of threads.
 *
 * A connection (struct crow_tls) wraps a connected descriptor the caller owns (and closes,
 * after crow_tls_free).  The descriptor may be blocking or non-blocking.  On a non-blocking one
 * every call may fail with EAGAIN: crow_tls_want then says whether to wait for the descriptor
 * to become readable (POLLIN) or writable (POLLOUT) before calling again with the same
 * arguments.  A connection is used by one thread at a time.
 *
 * Errors: a TLS-level failure (bad handshake, bad record, bad certificate) sets errno to
 * EPROTO; crow_tls_error then returns OpenSSL's reason for the connection's last failure.  A
 * system call failure keeps its errno (ECONNRESET, EPIPE, ...).  Nothing here prints. */

struct crow_tls_ctx;
struct crow_tls;

/* Returns a server context using the PEM certificate chain in CERT_FILE and the PEM private
 * key in KEY_FILE, or NULL with errno set (ENOENT/EACCES when a file cannot be read, EPROTO
 * when a file is not valid PEM or the key does not match the certificate, ENOMEM) and, when
 * ERR is not NULL, a message of at most ERRLEN bytes (NUL included) in ERR. */
struct crow_tls_ctx *crow_tls_server_ctx(const char *cert_file, const char *key_file,
                                         char *err, size_t errlen);

/* Returns a client context, or NULL with errno and ERR set as above.  With CA_FILE (PEM) the
 * server's certificate must chain to one in it, else the handshake fails (EPROTO); with
 * CA_FILE NULL the server is not verified (tests only). */
struct crow_tls_ctx *crow_tls_client_ctx(const char *ca_file, char *err, size_t errlen);

/* Frees CTX (connections made from it keep what they need).  NULL is ignored.  Can't fail. */
void crow_tls_ctx_free(struct crow_tls_ctx *ctx);

/* Returns a connection over descriptor FD for CTX, the server side when CTX is a server
 * context.  HOST (client side, may be NULL) is sent as SNI and, when CTX verifies, checked
 * against the certificate.  No I/O happens yet.  Returns NULL with errno ENOMEM or EPROTO. */
struct crow_tls *crow_tls_new(struct crow_tls_ctx *ctx, int fd, const char *host);

/* Frees T without any I/O (see crow_tls_shutdown).  The descriptor stays open.  NULL is
 * ignored.  Can't fail. */
void crow_tls_free(struct crow_tls *t);

/* Performs (or continues) the handshake.  Returns 0 when complete, or -1 with errno: EAGAIN
 * (see crow_tls_want), EPROTO (TLS failure; crow_tls_error says why), ECONNRESET when the
 * peer closed during the handshake, or a system call's errno. */
int crow_tls_handshake(struct crow_tls *t);

/* Reads up to LEN bytes of plaintext into BUF (performing the handshake first if needed).
 * Returns the count, 0 when the peer closed the connection (close_notify, or a plain end of
 * file: conversational protocols frame their own ends), or -1 with errno as for
 * crow_tls_handshake. */
ssize_t crow_tls_read(struct crow_tls *t, void *buf, size_t len);

/* Writes up to LEN bytes of BUF.  Returns the count written (at least 1 when LEN > 0; may be
 * short), or -1 with errno (EAGAIN: call again with the same BUF and LEN; EPIPE/ECONNRESET,
 * EPROTO). */
ssize_t crow_tls_write(struct crow_tls *t, const void *buf, size_t len);

/* Sends close_notify once, not waiting for the peer's (nothing after a TLS or system failure).
 * Returns 0, or -1 with errno (EAGAIN: call again; anything else: give up, the connection is
 * going away anyway). */
int crow_tls_shutdown(struct crow_tls *t);

/* Makes the server side of T send no TLS 1.3 session tickets (call before the handshake).
 * For connections where the peer only writes and then closes, as FTP uploads: tickets it
 * never reads would turn its close into a reset that destroys data still in flight.  Can't
 * fail. */
void crow_tls_no_tickets(struct crow_tls *t);

/* Returns POLLIN or POLLOUT: what the last call that failed with EAGAIN waits for (POLLIN
 * when none did).  Can't fail. */
int crow_tls_want(const struct crow_tls *t);

/* Returns the bytes of plaintext already decrypted and buffered inside T (readable without
 * waiting for the descriptor).  Can't fail. */
size_t crow_tls_pending(const struct crow_tls *t);

/* Returns the descriptor T was made over.  Can't fail. */
int crow_tls_fd(const struct crow_tls *t);

/* Returns the reason for T's last TLS failure ("" when none).  The string lives as long as T.
 * Can't fail. */
const char *crow_tls_error(const struct crow_tls *t);

/* Returns the negotiated protocol ("TLSv1.3") or cipher name, "" before the handshake.
 * Can't fail. */
const char *crow_tls_version(const struct crow_tls *t);
const char *crow_tls_cipher(const struct crow_tls *t);

#endif
