/* conn_tls.c - a TLS connection's life: made on accept or connect, its
 * handshake (on_open once it is done), plain text on a listener that takes
 * it, close_notify, and what ritual_conn_tls_info tells. Records are in
 * records.c, OpenSSL's input and output in stage.c. */
#include "../conn_parts.h"
#include "conn_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

int ritual__tls_attach(ritual_conn *conn, ritual_tls *tls, bool server, const char *server_name,
                       bool plaintext)
{
    BIO_METHOD *m = tls->bio_method;
    struct ritual_tls_conn *t = calloc(1, sizeof *t);
    struct ritual_tls_loop *bufs = ritual__tls_loop_bufs(conn_loop(conn));
    if (!t || !bufs) {
        free(t);
        return -ENOMEM;
    }
    t->loop_bufs = bufs;
    t->gen = ritual__tls_gen_get(tls);
    t->ssl = t->gen ? SSL_new(t->gen->ctx[0]) : NULL;
    BIO *bio = t->ssl ? BIO_new(m) : NULL;
    if (!bio) {
        int rc = t->gen ? -ENOMEM : -ESHUTDOWN; /* the configuration was freed */
        if (t->ssl)
            SSL_free(t->ssl);
        ritual__tls_gen_put(t->gen);
        free(t);
        ERR_clear_error();
        return rc;
    }
    BIO_set_data(bio, t);
    SSL_set_bio(t->ssl, bio, bio);
    SSL_set_app_data(t->ssl, conn);
    if (server) {
        t->state |= TLS_SERVER | (plaintext ? TLS_PLAINTEXT_OK : 0);
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        /* A name goes out as SNI and is verified; an address (no SNI
         * for those) is verified against the certificate's IP entries. */
        unsigned char ip[16];
        bool is_ip = server_name && (inet_pton(AF_INET, server_name, ip) == 1 ||
                                     inet_pton(AF_INET6, server_name, ip) == 1);
        int ok = 1;
        if (server_name && !is_ip)
            ok = SSL_set_tlsext_host_name(t->ssl, server_name) == 1 &&
                 (tls->no_verify || SSL_set1_host(t->ssl, server_name) == 1);
        else if (server_name && !tls->no_verify)
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), server_name) == 1;
        if (!ok) {
            ERR_clear_error();
            SSL_free(t->ssl);
            ritual__tls_gen_put(t->gen);
            free(t);
            return -EINVAL;
        }
        /* Sessions are kept by the SNI sent ("" for none), as OpenSSL
         * reports it when one arrives. */
        ritual__tls_session_offer(tls, t->ssl, server_name && !is_ip ? server_name : "");
    }
    conn->tls = t;
    if (bufs->conns++ == 0)
        ritual_timer_start(bufs->sweep, TLS_IDLE_MS, TLS_IDLE_MS);
    /* The handshake has its own deadline; the user's idle timeout starts
     * with on_open. */
    t->idle_ms = conn->idle_ms;
    conn->idle_ms =
        (uint32_t)(tls->handshake_timeout_ms > RITUAL_TIMEOUT_MAX_MS ? RITUAL_TIMEOUT_MAX_MS
                                                                     : tls->handshake_timeout_ms);
    return 0;
}

void ritual__tls_detach(ritual_conn *conn)
{
    struct ritual_tls_conn *t = tls_of(conn);
    if (!t)
        return;
    conn->tls = NULL;
    if (t->loop_bufs->owner == conn) {
        t->loop_bufs->owner = NULL;
        t->loop_bufs->staged_len = 0;
    }
    if (t->loop_bufs->deferring == conn)
        t->loop_bufs->deferring = NULL;
    if (--t->loop_bufs->conns == 0)
        ritual_timer_stop(t->loop_bufs->sweep);
    SSL_free(t->ssl);
    ritual__tls_gen_put(t->gen);
    if (t->held)
        ritual__inbuf_put(conn_loop(conn), t->held, INBUF_HEADER + t->held->size);
    free(t->early);
    free(t);
    ERR_clear_error();
}

bool ritual__tls_transport_ended(const ritual_conn *conn)
{
    return (conn->tls->state & TLS_EOF) != 0;
}

bool ritual__tls_unseen(const ritual_conn *conn)
{
    return conn->tls && (conn->tls->state & (TLS_SERVER | TLS_HANDSHAKEN)) == TLS_SERVER;
}

bool ritual__tls_opened(const ritual_conn *conn)
{
    return !conn->tls || (conn->tls->state & TLS_HANDSHAKEN);
}

/* TLS failed: its alert (if any) goes out, then the connection closes. */
void ritual__tls_failed(ritual_conn *conn)
{
    struct ritual_tls_conn *t = tls_of(conn);
    t->state |= TLS_FAILED;
    unsigned long e = ERR_peek_error();
    if (e)
        ritual_log(conn_loop(conn), RITUAL_LOG_DEBUG, "tls: %s", ERR_reason_error_string(e));
    ERR_clear_error();
    if (ritual__tls_flush_staged(conn) < 0)
        return;
    ritual__conn_close_with(conn, -EPROTO);
}

bool ritual__tls_close_notify(ritual_conn *conn)
{
    struct ritual_tls_conn *t = tls_of(conn);
    if ((t->state & (TLS_NOTIFY_SENT | TLS_FAILED)) || !(t->state & TLS_HANDSHAKEN))
        return false;
    t->state |= TLS_NOTIFY_SENT;
    ritual__tls_stage_claim(conn);
    (void)SSL_shutdown(t->ssl); /* 0: ours is sent, the peer's not yet read */
    ERR_clear_error();
    if (ritual__tls_flush_staged(conn) < 0)
        return true; /* closed */
    return conn->out_tail != NULL;
}

bool ritual__tls_defer_close(ritual_conn *conn)
{
    struct ritual_tls_conn *t = tls_of(conn);
    if ((t->state & (TLS_HANDSHAKEN | TLS_FAILED)) || t->early_len == 0)
        return false;
    t->state |= TLS_CLOSE_WAIT;
    return true;
}

/* ----------------------------------------------------------- handshake */

/* The handshake completed: the user's connection begins. */
static void handshake_done(ritual_conn *conn)
{
    struct ritual_tls_conn *t = tls_of(conn);
    t->state |= TLS_HANDSHAKEN;
    conn->idle_ms = t->idle_ms;
    ritual_conn_set_idle_timeout(conn, t->idle_ms);
    if (t->early_len > 0) {
        struct iovec iov = {.iov_base = t->early, .iov_len = t->early_len};
        int rc = ritual__tls_writev(conn, &iov, 1);
        free(t->early);
        t->early = NULL;
        t->early_len = t->early_cap = 0;
        if (rc < 0)
            return;
    }
    if (t->state & TLS_CLOSE_WAIT) {
        ritual__conn_close_with(conn, 0); /* what was written before it goes first */
        return;
    }
    if ((conn->flags & CONN_SHUT_WR) && !conn->out_tail) {
        ritual__conn_send_fin(conn); /* shut before the handshake, nothing queued */
        if (conn->flags & CONN_CLOSED)
            return;
    }
    ritual__conn_opened(conn);
}

/* Runs the handshake on what has arrived. Returns 1 when it completed
 * (on_open ran), 0 while it waits for the peer, -1 if the connection is
 * closing or closed. */
int ritual__tls_handshake(ritual_conn *conn)
{
    struct ritual_tls_conn *t = tls_of(conn);
    clear_errors();
    ritual__tls_stage_claim(conn);
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        if (ritual__tls_flush_unless_deferred(conn) < 0) /* the tickets: with the first answer */
            return -1;
        handshake_done(conn);
        return (conn->flags & (CONN_CLOSED | CONN_CLOSING | CONN_LINGERING)) ? -1 : 1;
    }
    int err = SSL_get_error(t->ssl, rc);
    if (err == SSL_ERROR_WANT_READ) {
        if (ritual__tls_flush_staged(conn) < 0)
            return -1;
        if (t->state & TLS_EOF) { /* and nothing more will come */
            ritual__conn_terminate(conn, -EPROTO);
            return -1;
        }
        return 0;
    }
    ritual__tls_failed(conn);
    return -1;
}

void ritual__tls_connected(ritual_conn *conn)
{
    ritual__tls_handshake(conn);
}

/* A first byte that no TLS handshake starts with, on a listener that takes
 * plain text: the connection goes on without TLS. */
void ritual__tls_become_plain(ritual_conn *conn, const char *bytes, size_t len)
{
    uint32_t idle = tls_of(conn)->idle_ms;
    ritual__tls_detach(conn);
    conn->idle_ms = idle;
    ritual_conn_set_idle_timeout(conn, idle);
    ritual__conn_opened(conn);
    if (!(conn->flags & CONN_CLOSED))
        ritual__conn_plain_input(conn, bytes, len);
}

/* ---------------------------------------------------------- public */

int ritual_conn_tls_info(const ritual_conn *conn, ritual_tls_info *out)
{
    const struct ritual_tls_conn *t = tls_of(conn);
    if (!t || !(t->state & TLS_HANDSHAKEN))
        return -ENOPROTOOPT;
    memset(out, 0, sizeof *out);
    out->version = SSL_get_version(t->ssl);
    out->cipher = SSL_get_cipher_name(t->ssl);
    out->server_name = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
    const unsigned char *alpn;
    unsigned alpn_len;
    SSL_get0_alpn_selected(t->ssl, &alpn, &alpn_len);
    if (alpn_len >= sizeof out->alpn)
        alpn_len = sizeof out->alpn - 1;
    if (alpn_len > 0) /* alpn is NULL when none was agreed */
        memcpy(out->alpn, alpn, alpn_len);
    out->resumed = SSL_session_reused(t->ssl);
    return 0;
}
