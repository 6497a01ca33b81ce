/* records.c - a TLS connection's records. In: OpenSSL reads the
 * ciphertext the backend received (kept only if reading stops with some
 * left), and plaintext is decrypted straight into the connection's input
 * buffer and handed over from there, at most read_buffer_size held, as for
 * a plain connection. Out: the user's plaintext and file segments,
 * encrypted into the staging buffer. */
#include "../conn_parts.h"
#include "conn_tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int encrypt(ritual_conn *conn, const char *data, size_t len)
{
    ritual__tls_stage_claim(conn);
    while (len > 0) {
        int piece = len > (1u << 30) ? (1 << 30) : (int)len; /* SSL_write takes an int */
        if (SSL_write(tls_of(conn)->ssl, data, piece) != piece) {
            ritual__tls_failed(conn);
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
    return ritual__tls_flush_unless_deferred(conn);
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
        return -EIO;               /* the file ended before its promised length */
    ritual__tls_stage_claim(conn); /* nothing of its own is staged: written before the file */
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
    return ritual__inbuf_append(conn_loop(conn), &tls_of(conn)->held, bytes, len,
                                opts(conn)->read_buffer_size + TLS_RECORD_SLACK);
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

/* Decrypting stops where handing over does, and at the peer's end. */
#define TLS_HELD_BACK (HELD_BACK | CONN_EOF)

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
        ritual__tls_stage_claim(conn);
        int n = SSL_read(t->ssl, dst, (int)want);
        if (n > 0) {
            conn->in->len += (uint32_t)n;
            /* A key update may want an answer: with the others. */
            if (t->loop_bufs->staged_len > 0 && ritual__tls_flush_unless_deferred(conn) < 0)
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
            if (ritual__tls_flush_staged(conn) < 0)
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
        ritual__tls_failed(conn);
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
    int rc = (t->state & TLS_HANDSHAKEN) ? 1 : ritual__tls_handshake(conn);
    if (rc > 0 && !(conn->flags & TLS_HELD_BACK))
        decrypt_and_deliver(conn);
    b->deferring = outer;
    ritual__tls_flush_staged(conn); /* what reading it made it write */
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
            ritual__tls_become_plain(conn, bytes, len);
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
