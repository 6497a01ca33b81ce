/* conn_write.c - a connection's output. ritual_write sends at once when
 * nothing is queued; only what the kernel did not take is copied into chunks,
 * and the queue is flushed with sendmsg when the socket is writable again.
 * Watermarks turn a slow reader into paused reading, not unbounded memory. */
#include "conn.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>

/* Copies iov into the queue, skipping the first `skip` bytes. */
static int queue_output(ritual_conn *conn, const struct iovec *iov, int iovcnt, size_t skip)
{
    for (int i = 0; i < iovcnt; i++) {
        const char *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        p += skip;
        len -= skip;
        skip = 0;
        while (len > 0) {
            struct ritual_chunk *tail = conn->out_tail;
            if (!tail || tail->end == sizeof tail->data) {
                struct ritual_chunk *chunk = ritual__chunk_get(conn_loop(conn));
                if (!chunk)
                    return -ENOMEM;
                chunk->next = tail ? tail->next : chunk; /* the head, or itself */
                if (tail)
                    tail->next = chunk;
                conn->out_tail = tail = chunk;
            }
            size_t n = sizeof tail->data - tail->end;
            if (n > len)
                n = len;
            memcpy(tail->data + tail->end, p, n);
            tail->end += (uint32_t)n;
            conn->out_len += (uint32_t)n;
            p += n;
            len -= n;
        }
    }
    return 0;
}

static void drop_sent(ritual_conn *conn, size_t n)
{
    conn->out_len -= (uint32_t)n;
    while (n > 0) {
        struct ritual_chunk *tail = conn->out_tail, *head = tail->next;
        size_t avail = head->end - head->start;
        if (n < avail) {
            head->start += (uint32_t)n;
            return;
        }
        n -= avail;
        if (head == tail)
            conn->out_tail = NULL;
        else
            tail->next = head->next;
        ritual__chunk_put(conn_loop(conn), head);
    }
}

static ssize_t send_iov(int fd, const struct iovec *iov, int iovcnt)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t n;
    do
        n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n;
}

int ritual_writev(ritual_conn *conn, const struct iovec *iov, int iovcnt)
{
    if (conn->flags & (CONN_CLOSING | CONN_LINGERING | CONN_CLOSED))
        return -EPIPE;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;

    size_t sent = 0;
    if (conn->out_len == 0 && !(conn->flags & CONN_CONNECTING)) {
        ssize_t n = iovcnt == 1 ? send(conn->io.fd, iov[0].iov_base, total, MSG_NOSIGNAL)
                                : send_iov(conn->io.fd, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt);
        if (n < 0 && errno == EINTR)
            n = 0;
        if (n < 0) {
            if (errno != EAGAIN) {
                int rc = -errno;
                ritual__conn_terminate(conn, rc);
                return rc;
            }
            n = 0;
        }
        sent = (size_t)n;
        if (n > 0) {
            stamp_activity(conn);
            ritual__stat_add(&conn_loop(conn)->stat_written, (uint64_t)n);
        }
        if (sent == total)
            return 0;
    }
    if ((size_t)conn->out_len + (total - sent) > opts(conn)->write_limit) {
        ritual__conn_terminate(conn, -ENOBUFS);
        return -ENOBUFS;
    }
    if (queue_output(conn, iov, iovcnt, sent) < 0) {
        ritual__conn_terminate(conn, -ENOMEM);
        return -ENOMEM;
    }
    if (conn->out_len > opts(conn)->write_high_watermark)
        conn->flags |= CONN_OVER_HIGH; /* stop reading until the peer catches up */
    ritual__conn_update_interest(conn);
    return (conn->flags & CONN_CLOSED) ? conn->close_reason : 0;
}

int ritual_write(ritual_conn *conn, const void *data, size_t len)
{
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    return ritual_writev(conn, &iov, 1);
}

/* Sends queued output until the kernel pushes back. */
void ritual__conn_flush(ritual_conn *conn)
{
    while (conn->out_len > 0) {
        struct iovec iov[IOV_BATCH];
        int n = 0;
        size_t batch = 0;
        struct ritual_chunk *c = conn->out_tail->next; /* the head */
        for (; n < IOV_BATCH; c = c->next) {
            iov[n].iov_base = c->data + c->start;
            iov[n].iov_len = c->end - c->start;
            batch += iov[n++].iov_len;
            if (c == conn->out_tail)
                break;
        }
        ssize_t sent = send_iov(conn->io.fd, iov, n);
        if (sent < 0) {
            if (errno == EAGAIN)
                break;
            ritual__conn_terminate(conn, -errno);
            return;
        }
        stamp_activity(conn);
        ritual__stat_add(&conn_loop(conn)->stat_written, (uint64_t)sent);
        drop_sent(conn, (size_t)sent);
        if ((size_t)sent < batch)
            break;
    }

    bool drained = false;
    if ((conn->flags & CONN_OVER_HIGH) && conn->out_len <= opts(conn)->write_low_watermark) {
        conn->flags &= ~CONN_OVER_HIGH;
        drained = !(conn->flags & CONN_CLOSING);
        if (conn->flags & CONN_REDELIVER)
            ritual__conn_schedule(conn, conn_loop(conn)->now + 1);
    }
    if (conn->out_len == 0 && (conn->flags & CONN_CLOSING)) {
        ritual__conn_finish_close(conn);
        return;
    }
    ritual__conn_update_interest(conn);
    if (drained && cbs(conn)->on_drain && !(conn->flags & CONN_CLOSED))
        cbs(conn)->on_drain(conn);
}
