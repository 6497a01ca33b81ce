/* tls.h - certificates made at test time with the openssl command, and a
 * blocking TLS client (OpenSSL) for the tests. */
#ifndef RITUAL_TEST_TLS_H
#define RITUAL_TEST_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/* A CA and certificates it signed, in `dir` (made if needed):
 *   ca.pem                      the CA
 *   server.pem, server.key      ECDSA P-256: localhost, 127.0.0.1, ::1
 *   rsa.pem, rsa.key            RSA 2048: rsa.test
 *   other.pem, other.key        ECDSA P-256: other.test, *.wild.test
 * Skips nothing: the openssl command comes with libssl-dev's package set. */
void tls_make_certs(const char *dir);
/* A certificate for `name` (CN and DNS SAN) signed by dir/ca, as
 * dir/FILE.pem and dir/FILE.key; `org` goes in the subject (tells two
 * certificates for one name apart). */
void tls_make_cert(const char *dir, const char *file, const char *name, const char *org);

struct tls_client {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
};

/* Connects to 127.0.0.1:port and completes a handshake within timeout_ms,
 * verifying against `ca_file` (NULL: no verification) for `server_name`
 * (SNI; NULL: none). `alpn` may be NULL; `session` (may be NULL) is
 * offered for resumption. Fails the test unless it succeeds. */
void tls_connect(struct tls_client *c, int port, const char *ca_file, const char *server_name,
                 const char *alpn, SSL_SESSION *session, int timeout_ms);
/* The same, returning 0 or -1 (handshake refused or failed) instead. */
int tls_try_connect(struct tls_client *c, int port, const char *ca_file, const char *server_name,
                    const char *alpn, SSL_SESSION *session, int timeout_ms);
void tls_send_all(struct tls_client *c, const void *buf, size_t n, int timeout_ms);
/* Reads exactly n bytes, or fails the test. */
void tls_recv_exact(struct tls_client *c, void *buf, size_t n, int timeout_ms);
/* Reads until the stream ends; returns 1 for a close_notify, 0 for a FIN
 * without one (the stream was cut), -1 for a reset or a TLS error. */
int tls_recv_to_end(struct tls_client *c, char *buf, size_t cap, size_t *len, int timeout_ms);
/* Sends close_notify (our side is done; reading goes on). */
void tls_shutdown(struct tls_client *c);
void tls_close(struct tls_client *c);

#endif
