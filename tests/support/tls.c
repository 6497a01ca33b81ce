/* tls.c - certificates by the openssl command, and a blocking TLS client. */
#include "tls.h"

#include "check.h"
#include "net.h"
#include "proc.h"
#include "server.h"

#include <errno.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void openssl_run(const char *const argv[])
{
    struct cmd_result r;
    run_command(argv, 60000, &r);
    if (r.exit_code != 0)
        FAIL("%s %s failed: %s", argv[0], argv[1], r.err);
}

static const char *openssl_path(void)
{
    static char path[256];
    if (!path[0] && !find_tool("openssl", path, sizeof path))
        FAIL("the openssl command is needed to make certificates");
    return path;
}

static void make_signed(const char *dir, const char *file, const char *subject, const char *san,
                        const char *keyalg)
{
    char key[256], csr[256], pem[256], ext[256], ca[256], ca_key[256], subj[256];
    snprintf(key, sizeof key, "%s/%s.key", dir, file);
    snprintf(csr, sizeof csr, "%s/%s.csr", dir, file);
    snprintf(pem, sizeof pem, "%s/%s.pem", dir, file);
    snprintf(ext, sizeof ext, "%s/%s.ext", dir, file);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(ca_key, sizeof ca_key, "%s/ca.key", dir);
    snprintf(subj, sizeof subj, "%s", subject);
    FILE *f = fopen(ext, "w");
    ASSERT(f);
    fprintf(f, "subjectAltName=%s\n", san);
    fclose(f);
    const char *opt = strcmp(keyalg, "rsa") == 0 ? "rsa:2048" : "ec";
    if (strcmp(keyalg, "rsa") == 0) {
        const char *req[] = {openssl_path(), "req", "-newkey", opt,  "-nodes", "-keyout", key,
                             "-out",         csr,   "-subj",   subj, NULL};
        openssl_run(req);
    } else {
        const char *req[] = {
            openssl_path(), "req",     "-newkey", opt,    "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes",       "-keyout", key,       "-out", csr,        "-subj",
            subj,           NULL};
        openssl_run(req);
    }
    const char *sign[] = {
        openssl_path(),    "x509",  "-req", "-in",      csr, "-CA",  ca,  "-CAkey", ca_key,
        "-CAcreateserial", "-days", "2",    "-extfile", ext, "-out", pem, NULL};
    openssl_run(sign);
    unlink(csr);
    unlink(ext);
}

void tls_make_cert(const char *dir, const char *file, const char *name, const char *org)
{
    char subject[256], san[256];
    snprintf(subject, sizeof subject, "/O=%s/CN=%s", org, name);
    snprintf(san, sizeof san, "DNS:%s", name);
    make_signed(dir, file, subject, san, "ec");
}

void tls_make_certs(const char *dir)
{
    char ca[256], ca_key[256];
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(ca_key, sizeof ca_key, "%s/ca.key", dir);
    const char *ca_req[] = {openssl_path(),
                            "req",
                            "-x509",
                            "-newkey",
                            "ec",
                            "-pkeyopt",
                            "ec_paramgen_curve:P-256",
                            "-nodes",
                            "-keyout",
                            ca_key,
                            "-out",
                            ca,
                            "-days",
                            "2",
                            "-subj",
                            "/CN=ritual test CA",
                            NULL};
    openssl_run(ca_req);
    make_signed(dir, "server", "/CN=localhost", "DNS:localhost,IP:127.0.0.1,IP:::1", "ec");
    make_signed(dir, "rsa", "/CN=rsa.test", "DNS:rsa.test", "rsa");
    make_signed(dir, "other", "/CN=other.test", "DNS:other.test,DNS:*.wild.test", "ec");
}

/* Waits for what OpenSSL asked for; 0, or -1 at the deadline. */
static int wait_for(struct tls_client *c, int rc, uint64_t deadline)
{
    int err = SSL_get_error(c->ssl, rc);
    short ev = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (!ev)
        return -1;
    return wait_fd(c->fd, ev, deadline) > 0 ? 0 : -1;
}

int tls_try_connect(struct tls_client *c, int port, const char *ca_file, const char *server_name,
                    const char *alpn, SSL_SESSION *session, int timeout_ms)
{
    memset(c, 0, sizeof *c);
    c->ctx = SSL_CTX_new(TLS_client_method());
    ASSERT(c->ctx);
    if (ca_file) {
        ASSERT_EQ(SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL), 1);
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    }
    c->fd = tcp_connect(port);
    set_nonblocking(c->fd, 1);
    c->ssl = SSL_new(c->ctx);
    ASSERT(c->ssl);
    SSL_set_fd(c->ssl, c->fd);
    if (server_name) {
        SSL_set_tlsext_host_name(c->ssl, server_name);
        if (ca_file)
            SSL_set1_host(c->ssl, server_name);
    }
    if (alpn) {
        unsigned char wire[64];
        size_t n = strlen(alpn);
        ASSERT(n < sizeof wire);
        wire[0] = (unsigned char)n;
        memcpy(wire + 1, alpn, n);
        SSL_set_alpn_protos(c->ssl, wire, (unsigned)n + 1);
    }
    if (session)
        SSL_set_session(c->ssl, session);
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int rc = SSL_connect(c->ssl);
        if (rc == 1)
            return 0;
        if (wait_for(c, rc, deadline) < 0) {
            ERR_clear_error();
            return -1;
        }
    }
}

void tls_connect(struct tls_client *c, int port, const char *ca_file, const char *server_name,
                 const char *alpn, SSL_SESSION *session, int timeout_ms)
{
    if (tls_try_connect(c, port, ca_file, server_name, alpn, session, timeout_ms) < 0)
        FAIL("TLS handshake with port %d failed: %s", port,
             ERR_reason_error_string(ERR_peek_last_error()));
}

void tls_send_all(struct tls_client *c, const void *buf, size_t n, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    const char *p = buf;
    while (n > 0) {
        int rc = SSL_write(c->ssl, p, n > (1u << 30) ? (1 << 30) : (int)n);
        if (rc > 0) {
            p += rc;
            n -= (size_t)rc;
            continue;
        }
        if (wait_for(c, rc, deadline) < 0)
            FAIL("TLS send: %zu bytes left", n);
    }
}

void tls_recv_exact(struct tls_client *c, void *buf, size_t n, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    char *p = buf;
    size_t got = 0;
    while (got < n) {
        int rc = SSL_read(c->ssl, p + got, (int)(n - got > (1u << 30) ? (1u << 30) : n - got));
        if (rc > 0) {
            got += (size_t)rc;
            continue;
        }
        if (wait_for(c, rc, deadline) < 0)
            FAIL("TLS receive: %zu of %zu bytes (error %d)", got, n, SSL_get_error(c->ssl, rc));
    }
}

int tls_recv_to_end(struct tls_client *c, char *buf, size_t cap, size_t *len, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    *len = 0;
    for (;;) {
        char scratch[16384];
        char *dst = *len < cap ? buf + *len : scratch;
        size_t room = *len < cap ? cap - *len : sizeof scratch;
        int rc = SSL_read(c->ssl, dst, (int)(room > (1u << 30) ? (1u << 30) : room));
        if (rc > 0) {
            if (dst != scratch)
                *len += (size_t)rc;
            continue;
        }
        int err = SSL_get_error(c->ssl, rc);
        if (err == SSL_ERROR_ZERO_RETURN)
            return 1;
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            if (wait_for(c, rc, deadline) < 0)
                FAIL("TLS receive: no end of stream within %d ms", timeout_ms);
            continue;
        }
        unsigned long e = ERR_peek_last_error();
        ERR_clear_error();
        /* OpenSSL 3 reports a FIN without close_notify as an SSL error. */
        if (err == SSL_ERROR_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            return 0;
        if (err == SSL_ERROR_SYSCALL && errno == 0)
            return 0;
        return -1;
    }
}

void tls_shutdown(struct tls_client *c)
{
    int rc = SSL_shutdown(c->ssl);
    ASSERT(rc >= 0);
}

void tls_close(struct tls_client *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->ctx)
        SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    memset(c, 0, sizeof *c);
    c->fd = -1;
    ERR_clear_error();
}
