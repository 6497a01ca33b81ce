/* conn_tls.c - TLS under a connection. OpenSSL talks to a BIO of ours:
 * reads come from the bytes the backend just received (no copy unless
 * reading stops with some left), writes go to the loop's staging buffer,
 * from which a whole SSL_write's records go to the queue in one raw write.
 * Plaintext is decrypted straight into the connection's input buffer and
 * handed over from there, at most read_buffer_size held, as for a plain
 * connection. */
#include "../conn_parts.h"
#include "../io.h"
#include "context.h"
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TLS_RECORD 16384 /* the most plaintext a record holds */
/* A record's most ciphertext (TLS 1.2 allows 2 KiB of expansion) and its
 * header: the backend may receive this much beyond the input bound, so a
 * record can always complete. */
#define TLS_RECORD_SLACK (TLS_RECORD + 2048 + 5)
#define TLS_FIRST_BYTE 0x16 /* a handshake record: every ClientHello starts so */

enum {
    TLS_SERVER = 1u << 0,
    TLS_HANDSHAKEN = 1u << 1, /* on_open ran */
    TLS_EOF = 1u << 2,        /* the transport's FIN came */
    TLS_NOTIFY_SENT = 1u << 3,
    TLS_CLOSE_WAIT = 1u << 4, /* closed before the handshake, with writes waiting */
    TLS_PLAINTEXT_OK = 1u << 5,
    TLS_FAILED = 1u << 6,
    TLS_STARTED = 1u << 7, /* the first bytes came (a ClientHello may come in pieces) */
};

struct ritual_tls_conn {
    SSL *ssl;
    struct tls_gen *gen;
    struct ritual_tls_loop *loop_bufs;
    unsigned state;
    uint32_t idle_ms; /* the user's idle timeout, set aside during the handshake */
    const char *src;  /* ciphertext OpenSSL reads next */
    size_t src_len;
    struct ritual_inbuf *held; /* ciphertext received while reading was held back */
    char *early;               /* outbound: plaintext written before the handshake */
    size_t early_len, early_cap;
};

/* A file is read and encrypted this much at a time: four records, sent
 * with one system call. */
#define TLS_FILE_STEP (4 * TLS_RECORD)

/* A connection idle this long gives its record buffers (some 34 KiB)
 * back to the allocator: a server holds many more idle connections than
 * busy ones. */
#define TLS_IDLE_MS 1000

struct ritual_tls_loop {
    ritual_timer *sweep; /* every TLS_IDLE_MS while TLS connections exist */
    unsigned conns;      /* TLS connections of the loop */
    /* Ciphertext OpenSSL wrote, on its way to the queue: `owner`'s. While a
     * connection's received bytes are being read (`deferring`), what it
     * writes waits here until they are done, so that a handshake's tickets,
     * the answer to a request and close_notify leave in one system call. */
    char *staged;
    size_t staged_len, staged_cap;
    ritual_conn *owner;
    ritual_conn *deferring;
    bool failed; /* the staging could not grow */
    char record[TLS_RECORD];
    char file[TLS_FILE_STEP];
};

static struct ritual_tls_conn *tls_of(const ritual_conn *conn)
{
    return conn->tls;
}

/* ------------------------------------------------------------------ BIO */

static int bio_read(BIO *bio, char *out, int len)
{
    struct ritual_tls_conn *t = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (t->src_len == 0) {
        BIO_set_retry_read(bio);
        return -1;
    }
    size_t n = (size_t)len < t->src_len ? (size_t)len : t->src_len;
    memcpy(out, t->src, n);
    t->src += n;
    t->src_len -= n;
    return (int)n;
}

static int bio_write(BIO *bio, const char *in, int len)
{
    struct ritual_tls_conn *t = BIO_get_data(bio);
    struct ritual_tls_loop *b = t->loop_bufs;
    BIO_clear_retry_flags(bio);
    size_t need = b->staged_len + (size_t)len;
    if (need > b->staged_cap) {
        size_t cap = b->staged_cap ? b->staged_cap : 64 * 1024;
        while (cap < need)
            cap *= 2;
        char *p = realloc(b->staged, cap);
        if (!p) {
            b->failed = true;
            return -1;
        }
        b->staged = p;
        b->staged_cap = cap;
    }
    memcpy(b->staged + b->staged_len, in, (size_t)len);
    b->staged_len += (size_t)len;
    return len;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    (void)bio, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *bio)
{
    BIO_set_init(bio, 1);
    return 1;
}

void ritual__tls_bio_method_init(BIO_METHOD *m)
{
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
}

/* SSL_get_error reads the thread's error queue, which must hold nothing
 * from before the call it explains (another library's, the user's). Only
 * looking is cheap; clearing an empty queue is not (OpenSSL 3 walks all of
 * its slots). */
static inline void clear_errors(void)
{
    if (ERR_peek_error())
        ERR_clear_error();
}

/* ------------------------------------------------------------ life */

/* Gives back the record buffers of connections idle for TLS_IDLE_MS. */
static void sweep_idle(ritual_timer *timer, void *data)
{
    (void)timer;
    ritual_loop *loop = data;
    uint32_t now = tick_of(loop->now);
    for (struct ritual_list *l = loop->conns.next; l != &loop->conns; l = l->next) {
        ritual_conn *conn = ritual_container_of(l, ritual_conn, link);
        struct ritual_tls_conn *t = conn->tls;
        if (t && (t->state & TLS_HANDSHAKEN) && !t->held && !SSL_pending(t->ssl) &&
            (int32_t)(now - conn->last_active) >= TLS_IDLE_MS)
            SSL_free_buffers(t->ssl); /* refused (0) while a record is half read */
    }
}

static struct ritual_tls_loop *loop_bufs(ritual_loop *loop)
{
    if (!loop->tls) {
        loop->tls = calloc(1, sizeof *loop->tls);
        if (loop->tls && !(loop->tls->sweep = ritual_timer_new(loop, sweep_idle, loop))) {
            free(loop->tls);
            loop->tls = NULL;
        }
    }
    return loop->tls;
}

void ritual__tls_loop_free(ritual_loop *loop)
{
    if (loop->tls) { /* its timer went with the loop's */
        free(loop->tls->staged);
        free(loop->tls);
        loop->tls = NULL;
    }
}

int ritual__tls_attach(ritual_conn *conn, ritual_tls *tls, bool server, const char *server_name,
                       bool plaintext)
{
    BIO_METHOD *m = tls->bio_method;
    struct ritual_tls_conn *t = calloc(1, sizeof *t);
    struct ritual_tls_loop *bufs = loop_bufs(conn_loop(conn));
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

/* ---------------------------------------------------------- output */

void ritual__tls_staged(ritual_conn *conn, const char **bytes, size_t *len)
{
    *bytes = tls_of(conn)->loop_bufs->staged;
    *len = tls_of(conn)->loop_bufs->staged_len;
}

void ritual__tls_staged_clear(ritual_conn *conn)
{
    tls_of(conn)->loop_bufs->staged_len = 0;
}

/* Sends what OpenSSL staged for the connection (records, alerts).
 * Returns 0, or the negative errno the connection closed with. */
static int flush_staged(ritual_conn *conn)
{
    struct ritual_tls_loop *b = tls_of(conn)->loop_bufs;
    if (b->owner != conn)
        return 0; /* nothing of its own is staged */
    if (b->failed) {
        b->failed = false;
        b->staged_len = 0;
        ritual__conn_terminate(conn, -ENOMEM);
        return -ENOMEM;
    }
    if (b->staged_len == 0)
        return 0;
    if (conn->flags & CONN_CLOSED) { /* aborted with its output: dropped */
        b->staged_len = 0;
        return conn->close_reason;
    }
    struct iovec iov = {.iov_base = b->staged, .iov_len = b->staged_len};
    b->staged_len = 0; /* a raw write does not come back here */
    return ritual__conn_write_raw(conn, &iov, 1);
}

/* Before OpenSSL writes for `conn`: another connection's staged bytes go
 * to that connection first. */
static void stage_claim(ritual_conn *conn)
{
    struct ritual_tls_loop *b = tls_of(conn)->loop_bufs;
    if (b->owner != conn && b->owner && b->staged_len > 0)
        flush_staged(b->owner);
    b->owner = conn;
}

/* Sends what is staged, unless the connection's received bytes are being
 * read and nothing is queued ahead (then it goes when they are done, with
 * whatever else they make it write), and there is not much of it. */
static int flush_unless_deferred(ritual_conn *conn)
{
    struct ritual_tls_loop *b = tls_of(conn)->loop_bufs;
    if (b->deferring == conn && !conn->out_tail && b->staged_len < TLS_FILE_STEP && !b->failed)
        return 0;
    return flush_staged(conn);
}

void ritual__tls_flush(ritual_conn *conn)
{
    flush_staged(conn);
}

/* TLS failed: its alert (if any) goes out, then the connection closes. */
static void tls_failed(ritual_conn *conn)
{
    struct ritual_tls_conn *t = tls_of(conn);
    t->state |= TLS_FAILED;
    unsigned long e = ERR_peek_error();
    if (e)
        ritual_log(conn_loop(conn), RITUAL_LOG_DEBUG, "tls: %s", ERR_reason_error_string(e));
    ERR_clear_error();
    if (flush_staged(conn) < 0)
        return;
    ritual__conn_close_with(conn, -EPROTO);
}

static int encrypt(ritual_conn *conn, const char *data, size_t len)
{
    stage_claim(conn);
    while (len > 0) {
        int piece = len > (1u << 30) ? (1 << 30) : (int)len; /* SSL_write takes an int */
        if (SSL_write(tls_of(conn)->ssl, data, piece) != piece) {
            tls_failed(conn);
            return -EPROTO;
        }
        data += piece;
        len -= (size_t)piece;
    }
    return 0;
}

/* Keeps plaintext written before the handshake completed (outbound). */
static int keep_early(ritual_conn *conn, const struct iovec *iov, int iovcnt)
{
    struct ritual_tls_conn *t = tls_of(conn);
    for (int i = 0; i < iovcnt; i++) {
        size_t len = iov[i].iov_len, need = t->early_len + len;
        if (need > opts(conn)->write_limit) {
            ritual__conn_terminate(conn, -ENOBUFS);
            return -ENOBUFS;
        }
        if (need > t->early_cap) {
            size_t cap = t->early_cap ? t->early_cap * 2 : 4096;
            while (cap < need)
                cap *= 2;
            char *p = realloc(t->early, cap);
            if (!p) {
                ritual__conn_terminate(conn, -ENOMEM);
                return -ENOMEM;
            }
            t->early = p;
            t->early_cap = cap;
        }
        memcpy(t->early + t->early_len, iov[i].iov_base, len);
        t->early_len += len;
    }
    return 0;
}

int ritual__tls_writev(ritual_conn *conn, const struct iovec *iov, int iovcnt)
{
    struct ritual_tls_conn *t = tls_of(conn);
    if (!(t->state & TLS_HANDSHAKEN))
        return keep_early(conn, iov, iovcnt);
    /* Small pieces share a record (a response's head and body); large
     * ones are their own, which OpenSSL cuts into records. */
    char *record = t->loop_bufs->record;
    size_t fill = 0;
    for (int i = 0; i < iovcnt; i++) {
        const char *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        if (fill + len > TLS_RECORD && fill > 0) {
            if (encrypt(conn, record, fill) < 0)
                return -EPROTO;
            fill = 0;
        }
        if (len >= TLS_RECORD / 2) {
            if (encrypt(conn, p, len) < 0)
                return -EPROTO;
            continue;
        }
        memcpy(record + fill, p, len);
        fill += len;
    }
    if (fill > 0 && encrypt(conn, record, fill) < 0)
        return -EPROTO;
    return flush_unless_deferred(conn);
}

int ritual__tls_encrypt_file(ritual_conn *conn, struct ritual_file_chunk *file)
{
    char *record = tls_of(conn)->loop_bufs->file;
    size_t want = file->remaining < TLS_FILE_STEP ? (size_t)file->remaining : TLS_FILE_STEP;
    ssize_t n;
    do
        n = pread(file->fd, record, want, (off_t)file->offset);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -EIO;   /* the file ended before its promised length */
    stage_claim(conn); /* nothing of its own is staged: written before the file */
    if (SSL_write(tls_of(conn)->ssl, record, (int)n) != (int)n) {
        ERR_clear_error();
        return -EPROTO;
    }
    if (tls_of(conn)->loop_bufs->failed) {
        tls_of(conn)->loop_bufs->failed = false;
        tls_of(conn)->loop_bufs->staged_len = 0;
        return -ENOMEM;
    }
    file->offset += (uint64_t)n;
    file->remaining -= (uint64_t)n;
    return 0;
}

bool ritual__tls_close_notify(ritual_conn *conn)
{
    struct ritual_tls_conn *t = tls_of(conn);
    if ((t->state & (TLS_NOTIFY_SENT | TLS_FAILED)) || !(t->state & TLS_HANDSHAKEN))
        return false;
    t->state |= TLS_NOTIFY_SENT;
    stage_claim(conn);
    (void)SSL_shutdown(t->ssl); /* 0: ours is sent, the peer's not yet read */
    ERR_clear_error();
    if (flush_staged(conn) < 0)
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
static int handshake(ritual_conn *conn)
{
    struct ritual_tls_conn *t = tls_of(conn);
    clear_errors();
    stage_claim(conn);
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        if (flush_unless_deferred(conn) < 0) /* the tickets: with the first answer */
            return -1;
        handshake_done(conn);
        return (conn->flags & (CONN_CLOSED | CONN_CLOSING | CONN_LINGERING)) ? -1 : 1;
    }
    int err = SSL_get_error(t->ssl, rc);
    if (err == SSL_ERROR_WANT_READ) {
        if (flush_staged(conn) < 0)
            return -1;
        if (t->state & TLS_EOF) { /* and nothing more will come */
            ritual__conn_terminate(conn, -EPROTO);
            return -1;
        }
        return 0;
    }
    tls_failed(conn);
    return -1;
}

void ritual__tls_connected(ritual_conn *conn)
{
    handshake(conn);
}

/* A first byte that no TLS handshake starts with, on a listener that takes
 * plain text: the connection goes on without TLS. */
static void become_plain(ritual_conn *conn, const char *bytes, size_t len)
{
    uint32_t idle = tls_of(conn)->idle_ms;
    ritual__tls_detach(conn);
    conn->idle_ms = idle;
    ritual_conn_set_idle_timeout(conn, idle);
    ritual__conn_opened(conn);
    if (!(conn->flags & CONN_CLOSED))
        ritual__conn_plain_input(conn, bytes, len);
}

/* ------------------------------------------------------------- input */

size_t ritual__tls_input_held(const ritual_conn *conn)
{
    const struct ritual_tls_conn *t = tls_of(conn);
    return t->held ? t->held->len : 0;
}

size_t ritual__tls_receive_room(const ritual_conn *conn)
{
    size_t max = opts(conn)->read_buffer_size + TLS_RECORD_SLACK;
    size_t held = in_len(conn) + ritual__tls_input_held(conn);
    return held < max ? max - held : 0;
}

bool ritual__tls_holds_input(const ritual_conn *conn)
{
    const struct ritual_tls_conn *t = tls_of(conn);
    return ritual__tls_input_held(conn) > 0 || SSL_pending(t->ssl) > 0 ||
           ((t->state & TLS_EOF) && !(conn->flags & CONN_EOF));
}

/* Keeps ciphertext OpenSSL has not read yet (reading was held back). */
static int hold_ciphertext(ritual_conn *conn, const char *bytes, size_t len)
{
    struct ritual_tls_conn *t = tls_of(conn);
    struct ritual_inbuf *h = t->held;
    size_t have = h ? h->len : 0;
    if (!h || h->start + have + len > h->size) {
        size_t size = INBUF_ALLOC_MIN - INBUF_HEADER;
        while (size < have + len)
            size = size * 2 + INBUF_HEADER;
        struct ritual_inbuf *nh = (h && h->size >= have + len)
                                      ? h
                                      : ritual__inbuf_get(conn_loop(conn), INBUF_HEADER + size);
        if (!nh)
            return -ENOMEM;
        if (nh != h) {
            nh->size = (uint32_t)size;
            nh->start = 0;
            nh->len = 0;
        }
        if (h) {
            memmove(nh->data, h->data + h->start, have);
            if (nh != h)
                ritual__inbuf_put(conn_loop(conn), h, INBUF_HEADER + h->size);
        }
        nh->start = 0;
        nh->len = (uint32_t)have;
        t->held = h = nh;
    }
    memcpy(h->data + h->start + h->len, bytes, len);
    h->len += (uint32_t)len;
    return 0;
}

/* What OpenSSL did not read of the source goes back into `held`. */
static int keep_unread(ritual_conn *conn, const char *from_held)
{
    struct ritual_tls_conn *t = tls_of(conn);
    size_t left = t->src_len;
    const char *src = t->src;
    t->src = NULL;
    t->src_len = 0;
    if (from_held) { /* the source was `held` itself: drop what was read */
        struct ritual_inbuf *h = t->held;
        h->start += (uint32_t)(src - from_held);
        h->len = (uint32_t)left;
        if (left == 0) {
            ritual__inbuf_put(conn_loop(conn), h, INBUF_HEADER + h->size);
            t->held = NULL;
        }
        return 0;
    }
    return left ? hold_ciphertext(conn, src, left) : 0;
}

static const unsigned TLS_HELD_BACK = CONN_PAUSED | CONN_OVER_HIGH | CONN_CLOSING | CONN_LINGERING |
                                      CONN_CLOSED | CONN_REDELIVER | CONN_EOF;

/* Decrypts into the input buffer and hands over, until reading is held
 * back or OpenSSL needs more. The source is set by the caller. */
static void decrypt_and_deliver(ritual_conn *conn)
{
    struct ritual_tls_conn *t = tls_of(conn);
    size_t max = opts(conn)->read_buffer_size;
    while (!(conn->flags & TLS_HELD_BACK)) {
        if (in_len(conn) > 0) {
            ritual__conn_deliver_plain(conn);
            if (conn->flags & (TLS_HELD_BACK | CONN_CLOSED))
                return;
        }
        size_t held = in_len(conn);
        size_t want = held < max ? max - held : 0;
        if (want > TLS_RECORD)
            want = TLS_RECORD;
        if (want == 0)
            return; /* full: ritual__conn_deliver_plain closed it or will */
        if (ritual__conn_reserve_input(conn, held + want) < 0) {
            ritual__conn_terminate(conn, -ENOMEM);
            return;
        }
        char *dst = ritual__conn_input_tail(conn, &want);
        clear_errors();
        stage_claim(conn);
        int n = SSL_read(t->ssl, dst, (int)want);
        if (n > 0) {
            conn->in->len += (uint32_t)n;
            /* A key update may want an answer: with the others. */
            if (t->loop_bufs->staged_len > 0 && flush_unless_deferred(conn) < 0)
                return;
            if (t->src_len == 0 && !SSL_has_pending(t->ssl) && !(t->state & TLS_EOF)) {
                /* All that came is decrypted: hand it over and wait, without
                 * asking OpenSSL for what it does not have. */
                ritual__conn_deliver_plain(conn);
                return;
            }
            continue;
        }
        int err = SSL_get_error(t->ssl, n);
        if (in_len(conn) == 0)
            ritual__conn_release_input(conn);
        if (err == SSL_ERROR_WANT_READ) {
            /* A key update or a ticket may have something to answer. */
            if (flush_staged(conn) < 0)
                return;
            if ((t->state & TLS_EOF) && t->src_len == 0 && !(conn->flags & CONN_EOF)) {
                ritual__conn_terminate(conn, -EPROTO); /* cut without close_notify */
                return;
            }
            return;
        }
        if (err == SSL_ERROR_ZERO_RETURN) { /* close_notify: the end of the stream */
            ritual__conn_peer_eof(conn);
            return;
        }
        tls_failed(conn);
        return;
    }
}

/* OpenSSL reads t->src: the handshake first if it is not done, then
 * records while reading is not held back. What it leaves unread is kept
 * (`from_held`: the source was the held buffer itself). */
static void pump(ritual_conn *conn, const char *from_held)
{
    struct ritual_tls_conn *t = tls_of(conn);
    struct ritual_tls_loop *b = t->loop_bufs;
    ritual_conn *outer = b->deferring;
    b->deferring = conn;
    int rc = (t->state & TLS_HANDSHAKEN) ? 1 : handshake(conn);
    if (rc > 0 && !(conn->flags & TLS_HELD_BACK))
        decrypt_and_deliver(conn);
    b->deferring = outer;
    flush_staged(conn); /* what reading it made it write */
    if (conn->flags & CONN_CLOSED) {
        t->src = NULL;
        t->src_len = 0;
        return;
    }
    if (keep_unread(conn, from_held) < 0)
        ritual__conn_terminate(conn, -ENOMEM);
}

void ritual__tls_deliver(ritual_conn *conn)
{
    struct ritual_tls_conn *t = tls_of(conn);
    const char *from = t->held ? t->held->data + t->held->start : NULL;
    t->src = from;
    t->src_len = t->held ? t->held->len : 0;
    pump(conn, from);
}

void ritual__tls_received(ritual_conn *conn, const char *bytes, size_t len)
{
    struct ritual_tls_conn *t = tls_of(conn);
    if (len == 0) {
        /* What is held is read first; the end is decided then (a close_notify
         * ends the stream, anything else truncates it). */
        t->state |= TLS_EOF;
        if (!(conn->flags & TLS_HELD_BACK))
            ritual__tls_deliver(conn);
        return;
    }
    if (!(t->state & TLS_STARTED)) {
        t->state |= TLS_STARTED;
        if ((t->state & TLS_PLAINTEXT_OK) && (unsigned char)bytes[0] != TLS_FIRST_BYTE) {
            become_plain(conn, bytes, len);
            return;
        }
    }
    if (t->held || (conn->flags & TLS_HELD_BACK)) {
        /* Behind ciphertext already held, or not read now: keep it. */
        if (hold_ciphertext(conn, bytes, len) < 0) {
            ritual__conn_terminate(conn, -ENOMEM);
            return;
        }
        if (!(conn->flags & TLS_HELD_BACK))
            ritual__tls_deliver(conn);
        return;
    }
    /* The common case: OpenSSL reads the backend's buffer in place. */
    t->src = bytes;
    t->src_len = len;
    pump(conn, NULL);
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
