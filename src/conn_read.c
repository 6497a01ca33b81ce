/* conn_read.c - a connection's input. Every connection reads into the loop's
 * one shared buffer, and on_data usually consumes it all; only a remainder is
 * copied into a buffer of the connection's own, which exists just while it
 * holds bytes. */
#include "conn_parts.h"
#include "proxy.h"
#include "proxy_header.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

int ritual__inbuf_reserve(ritual_loop *loop, struct ritual_inbuf **slot, size_t need, size_t max)
{
    size_t alloc = INBUF_ALLOC_MIN;
    while (alloc - INBUF_HEADER < need)
        alloc *= 2;
    if (alloc - INBUF_HEADER > max)
        alloc = INBUF_HEADER + (max > need ? max : need);
    struct ritual_inbuf *old = *slot;
    if (old && old->size >= alloc - INBUF_HEADER)
        return 0;
    struct ritual_inbuf *buf = ritual__inbuf_get(loop, alloc);
    if (!buf)
        return -ENOMEM;
    buf->size = (uint32_t)(alloc - INBUF_HEADER);
    buf->start = buf->len = 0;
    if (old) {
        buf->len = old->len;
        memcpy(buf->data, old->data + old->start, buf->len);
        ritual__inbuf_put(loop, old, INBUF_HEADER + old->size);
    }
    *slot = buf;
    return 0;
}

int ritual__conn_reserve_input(ritual_conn *conn, size_t need)
{
    return ritual__inbuf_reserve(conn_loop(conn), &conn->in, need, opts(conn)->read_buffer_size);
}

/* The held bytes move to the front of the buffer, so that what follows
 * them has all the free room. Called before an append, once something was
 * consumed: at most one move per delivery, never one per request. */
static void compact_input(struct ritual_inbuf *in)
{
    if (in->start == 0)
        return;
    memmove(in->data, in->data + in->start, in->len);
    in->start = 0;
}

int ritual__inbuf_append(ritual_loop *loop, struct ritual_inbuf **slot, const char *bytes,
                         size_t len, size_t max)
{
    size_t held = *slot ? (*slot)->len : 0;
    if (ritual__inbuf_reserve(loop, slot, held + len, max) < 0)
        return -ENOMEM;
    struct ritual_inbuf *in = *slot;
    if (in->start + in->len + len > in->size)
        compact_input(in);
    memcpy(in->data + in->start + in->len, bytes, len);
    in->len += (uint32_t)len;
    return 0;
}

/* Appends `len` received bytes to the input held (a buffer made or grown
 * for them). Returns 0 or -ENOMEM. */
static int append_input(ritual_conn *conn, const char *bytes, size_t len)
{
    return ritual__inbuf_append(conn_loop(conn), &conn->in, bytes, len,
                                opts(conn)->read_buffer_size);
}

char *ritual__conn_input_tail(ritual_conn *conn, size_t *room)
{
    struct ritual_inbuf *in = conn->in;
    compact_input(in);
    size_t free_room = in->size - in->len;
    if (*room > free_room)
        *room = free_room;
    return in->data + in->len;
}

size_t ritual__conn_receive_room(const ritual_conn *conn)
{
    if (conn->tls)
        return ritual__tls_receive_room(conn);
    size_t max = opts(conn)->read_buffer_size, held = in_len(conn);
    if (held < max)
        return max - held;
    /* A PROXY header longer than the input bound: one byte at a time. */
    return ritual__proxy_pending(conn) && held < PROXY_HEADER_MAX ? 1 : 0;
}

/* Hands `len` bytes at `bytes` to the user; keeps what was not consumed. */
void ritual__conn_deliver(ritual_conn *conn, const char *bytes, size_t len)
{
    conn->flags |= CONN_DELIVERING;
    size_t used = cbs(conn)->on_data(conn, bytes, len);
    conn->flags &= ~CONN_DELIVERING;
    if (used > len)
        used = len;
    if (conn->flags & (CONN_CLOSED | CONN_CLOSING | CONN_LINGERING)) {
        ritual__conn_release_input(conn); /* deferred while the callback held it */
        return;
    }
    struct ritual_inbuf *in = conn->in;
    if (!in || bytes != in->data + in->start) {
        /* From the shared buffer (or a completion backend's): keep the
         * remainder in our own. */
        if (used < len && append_input(conn, bytes + used, len - used) < 0)
            ritual__conn_terminate(conn, -ENOMEM);
        return;
    }
    /* `bytes` is the head of what the connection holds, perhaps not all of it. */
    if (used == in->len) {
        ritual__conn_release_input(conn);
    } else {
        in->start += (uint32_t)used;
        in->len -= (uint32_t)used;
    }
}

/* Hands over the input the connection holds, at most read_buffer_size bytes
 * per on_data, as reads would have, until reading stops or the user waits
 * for more. A completion backend may have received more than that while
 * reading was being stopped. */
void ritual__conn_deliver_plain(ritual_conn *conn)
{
    const unsigned held_back = HELD_BACK;
    size_t max = opts(conn)->read_buffer_size;
    while (conn->in && !(conn->flags & held_back)) {
        uint32_t before = conn->in->len;
        size_t slice = before < max ? before : max;
        ritual__conn_deliver(conn, conn->in->data + conn->in->start, slice);
        if (conn->flags & held_back)
            break; /* reading stopped (or the connection closed) inside on_data */
        if (conn->in && conn->in->len == before) {
            if (slice == max) { /* full, and the user consumed nothing */
                ritual__conn_terminate(conn, -ENOBUFS);
                return;
            }
            break; /* the user waits for more */
        }
    }
}

void ritual__conn_deliver_held(ritual_conn *conn)
{
    if (conn->tls) {
        ritual__tls_deliver(conn);
        return;
    }
    ritual__conn_deliver_plain(conn);
    /* The FIN that came in behind the input, now in its place. */
    if ((conn->flags & CONN_EOF_PENDING) && !(conn->flags & HELD_BACK)) {
        conn->flags &= ~CONN_EOF_PENDING;
        ritual__conn_peer_eof(conn);
    }
}

void ritual__conn_peer_eof(ritual_conn *conn)
{
    conn->flags |= CONN_EOF;
    if (!cbs(conn)->on_eof) {
        /* Usually closes at once: no epoll_ctl for a socket about to go. */
        ritual_conn_close(conn);
        return;
    }
    ritual__conn_update_interest(conn); /* stop reading: the socket would stay readable */
    if (!(conn->flags & CONN_CLOSED))
        cbs(conn)->on_eof(conn);
}

void ritual__conn_read(ritual_conn *conn)
{
    if (ritual__proxy_pending(conn)) {
        ritual__proxy_read(conn); /* no TLS, no on_data before the header */
        return;
    }
    ritual_loop *loop = conn_loop(conn);
    size_t max = opts(conn)->read_buffer_size;
    for (int round = 0; round < READS_PER_WAKEUP; round++) {
        /* CONN_REDELIVER: held input goes to the user before more is read,
         * so a full buffer is not taken for one the user cannot progress
         * on, nor an end of stream seen ahead of the requests before it. */
        if (conn->flags & (CONN_PAUSED | CONN_OVER_HIGH | CONN_REDELIVER | CONN_EOF | CONN_CLOSING |
                           CONN_LINGERING | CONN_CLOSED))
            return;
        char *dst;
        size_t room;
        struct ritual_inbuf *in = conn->in;
        if (conn->tls) {
            /* Ciphertext, which OpenSSL reads from the shared buffer. */
            dst = loop->rbuf;
            room = ritual__tls_receive_room(conn);
            if (room > loop->rbuf_size)
                room = loop->rbuf_size;
            if (room == 0)
                return;
        } else if (!in) {
            dst = loop->rbuf;
            room = max;
        } else {
            if (in->len >= max) {
                /* Full, and the user consumed nothing: it can never progress. */
                ritual__conn_terminate(conn, -ENOBUFS);
                return;
            }
            /* Grow while the buffer is mostly full and may still grow. */
            if (in->size - in->len < INBUF_ALLOC_MIN / 2 && in->size < max) {
                if (ritual__conn_reserve_input(conn, (size_t)in->size * 2) < 0) {
                    ritual__conn_terminate(conn, -ENOMEM);
                    return;
                }
                in = conn->in;
            }
            compact_input(in);
            dst = in->data + in->len;
            room = (in->size < max ? in->size : max) - in->len;
        }
        ssize_t n = recv(conn->io.fd, dst, room, 0);
        if (n > 0) {
            stamp_activity(conn);
            ritual__stat_add(&loop->stat_read, (uint64_t)n);
            if (conn->tls) {
                ritual__tls_received(conn, dst, (size_t)n);
                if (conn->flags & CONN_CLOSED)
                    return;
            } else if (!in) {
                ritual__conn_deliver(conn, dst, (size_t)n);
            } else {
                in->len += (uint32_t)n;
                ritual__conn_deliver(conn, in->data, in->len);
            }
            if ((size_t)n < room)
                return; /* drained, most likely; level-triggered epoll says if not */
            continue;
        }
        if (n == 0 && conn->tls) {
            ritual__tls_received(conn, NULL, 0);
            if (!(conn->flags & CONN_CLOSED))
                ritual__conn_update_interest(conn);
            return;
        }
        if (n == 0) {
            ritual__conn_peer_eof(conn);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            ritual__conn_terminate(conn, -errno);
        return;
    }
}

/* After our FIN: read and discard until the peer's FIN, then close. Closing
 * with unread input would send RST and could destroy data the peer has not
 * read yet. The time spent here is bounded by close_timeout_ms. */
void ritual__conn_linger_read(ritual_conn *conn)
{
    ritual_loop *loop = conn_loop(conn);
    for (int round = 0; round < READS_PER_WAKEUP; round++) {
        ssize_t n = recv(conn->io.fd, loop->rbuf, loop->rbuf_size, 0);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        ritual__conn_terminate(conn, conn->close_reason);
        return;
    }
}

/* A completion backend received `len` bytes into a buffer of its own, which
 * it takes back when this returns: on_data reads them in place, and only a
 * remainder is copied, as with the shared buffer. The backend receives at
 * most ritual__conn_receive_room() bytes from when it asks, so what is held
 * stays within read_buffer_size, as with a read. */
void ritual__conn_received(ritual_conn *conn, const char *bytes, int len)
{
    if (conn->flags & CONN_CLOSED)
        return;
    if (conn->flags & CONN_LINGERING) {
        if (len <= 0) /* the peer's FIN (or a reset): done */
            ritual__conn_terminate(conn, conn->close_reason);
        return; /* discarded */
    }
    if (len < 0) {
        ritual__conn_terminate(conn, len);
        return;
    }
    if (ritual__proxy_pending(conn)) {
        ritual__proxy_received(conn, bytes, len);
        return;
    }
    if (conn->tls) {
        if (len > 0) {
            stamp_activity(conn);
            ritual__stat_add(&conn_loop(conn)->stat_read, (uint64_t)len);
        }
        if (!(conn->flags & (CONN_EOF | CONN_CLOSING)))
            ritual__tls_received(conn, bytes, (size_t)len);
        return;
    }
    if (len == 0) {
        if (conn->flags & (CONN_EOF | CONN_EOF_PENDING | CONN_CLOSING))
            return;
        if (conn->flags & (CONN_PAUSED | CONN_OVER_HIGH | CONN_REDELIVER)) {
            /* Reading is held back, perhaps with input not yet handed over:
             * the FIN waits its turn behind it. */
            conn->flags |= CONN_EOF_PENDING;
            ritual__conn_update_interest(conn);
            return;
        }
        ritual__conn_peer_eof(conn);
        return;
    }
    if (conn->flags & CONN_CLOSING)
        return; /* no longer read: discarded, as lingering would */
    stamp_activity(conn);
    ritual__stat_add(&conn_loop(conn)->stat_read, (uint64_t)len);
    ritual__conn_plain_input(conn, bytes, (size_t)len);
}

void ritual__conn_plain_input(ritual_conn *conn, const char *bytes, size_t len)
{
    bool reading = !(conn->flags & (CONN_PAUSED | CONN_OVER_HIGH | CONN_EOF | CONN_CLOSING));
    if (reading && !conn->in) {
        ritual__conn_deliver(conn, bytes, (size_t)len);
        /* Full, and the user consumed nothing: it can never progress, and
         * the backend will not receive again to find out (no room), so say
         * so now, as a read does. */
        if (conn->in && in_len(conn) >= opts(conn)->read_buffer_size &&
            !(conn->flags & (CONN_PAUSED | CONN_OVER_HIGH | CONN_EOF | CONN_CLOSING |
                             CONN_LINGERING | CONN_CLOSED)))
            ritual__conn_terminate(conn, -ENOBUFS);
        return;
    }
    /* Behind input already held, or arriving after reading stopped (the
     * receive was being cancelled): keep it, in order. */
    if (append_input(conn, bytes, (size_t)len) < 0) {
        ritual__conn_terminate(conn, -ENOMEM);
        return;
    }
    if (reading) /* else handed over when reading resumes */
        ritual__conn_deliver_held(conn);
}
