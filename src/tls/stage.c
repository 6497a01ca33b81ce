/* stage.c - where OpenSSL's bytes come from and go to. Our BIO reads the
 * ciphertext the backend just received, in place (records.c points it
 * there); it writes records into the loop's staging buffer, from which a
 * whole SSL_write's (or a whole reading's) output goes to the connection's
 * queue in one raw write. Also the loop's idle sweep, which gives the
 * record buffers of quiet connections back. */
#include "../conn_parts.h"
#include "conn_tls.h"

#include <stdlib.h>
#include <string.h>

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

struct ritual_tls_loop *ritual__tls_loop_bufs(ritual_loop *loop)
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
int ritual__tls_flush_staged(ritual_conn *conn)
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
void ritual__tls_stage_claim(ritual_conn *conn)
{
    struct ritual_tls_loop *b = tls_of(conn)->loop_bufs;
    if (b->owner != conn && b->owner && b->staged_len > 0)
        ritual__tls_flush_staged(b->owner);
    b->owner = conn;
}

/* Sends what is staged, unless the connection's received bytes are being
 * read and nothing is queued ahead (then it goes when they are done, with
 * whatever else they make it write), and there is not much of it. */
int ritual__tls_flush_unless_deferred(ritual_conn *conn)
{
    struct ritual_tls_loop *b = tls_of(conn)->loop_bufs;
    if (b->deferring == conn && !conn->out_tail && b->staged_len < TLS_FILE_STEP && !b->failed)
        return 0;
    return ritual__tls_flush_staged(conn);
}

void ritual__tls_flush(ritual_conn *conn)
{
    ritual__tls_flush_staged(conn);
}
