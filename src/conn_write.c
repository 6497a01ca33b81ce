/* conn_write.c - a connection's output. ritual_write sends at once when
 * nothing is queued; only what the kernel did not take is copied into chunks,
 * and the queue is flushed with sendmsg when the socket is writable again.
 * ritual_write_file queues a file segment between chunks, sent with sendfile.
 * Watermarks turn a slow reader into paused reading, not unbounded memory. */
#include "conn_parts.h"
#include "io.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

static void outq_append(ritual_conn *conn, struct ritual_outq *q)
{
    struct ritual_outq *tail = conn->out_tail;
    q->next = tail ? tail->next : q; /* the head, or itself */
    if (tail)
        tail->next = q;
    conn->out_tail = q;
}

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
            struct ritual_outq *tail = conn->out_tail;
            if (!tail || tail->kind != RITUAL_OUTQ_MEMORY ||
                tail->end == sizeof((struct ritual_chunk *)tail)->data) {
                struct ritual_chunk *chunk = ritual__chunk_get(conn_loop(conn));
                if (!chunk)
                    return -ENOMEM;
                outq_append(conn, &chunk->q);
                tail = &chunk->q;
            }
            struct ritual_chunk *chunk = (struct ritual_chunk *)tail;
            size_t n = sizeof chunk->data - tail->end;
            if (n > len)
                n = len;
            memcpy(chunk->data + tail->end, p, n);
            tail->end += (uint32_t)n;
            conn->out_len += (uint32_t)n;
            p += n;
            len -= n;
        }
    }
    return 0;
}

void ritual__outq_put(ritual_conn *conn, struct ritual_outq *q)
{
    if (q->kind != RITUAL_OUTQ_MEMORY) {
        struct ritual_file_chunk *file = (struct ritual_file_chunk *)q;
        if (file->release)
            file->release(file->arg);
        ritual__file_chunk_put(conn_loop(conn), file);
    } else {
        ritual__chunk_put(conn_loop(conn), (struct ritual_chunk *)q);
    }
}

/* Takes the head node off the queue and frees it. */
static void pop_head(ritual_conn *conn)
{
    struct ritual_outq *tail = conn->out_tail, *head = tail->next;
    if (head == tail)
        conn->out_tail = NULL;
    else
        tail->next = head->next;
    if (ritual__outq_is_file(head)) {
        /* Another file segment may still be queued: look (queues are short). */
        conn->flags &= ~CONN_FILE_QUEUED;
        for (struct ritual_outq *q = conn->out_tail ? head->next : NULL; q; q = q->next) {
            if (ritual__outq_is_file(q)) {
                conn->flags |= CONN_FILE_QUEUED;
                break;
            }
            if (q == conn->out_tail)
                break;
        }
    }
    ritual__outq_put(conn, head);
}

/* Drops `n` sent bytes from the memory chunks at the head of the queue. */
static void drop_sent(ritual_conn *conn, size_t n)
{
    conn->out_len -= (uint32_t)n;
    while (n > 0) {
        struct ritual_outq *head = conn->out_tail->next;
        size_t avail = head->end - head->start;
        if (n < avail) {
            head->start += (uint32_t)n;
            return;
        }
        n -= avail;
        pop_head(conn);
    }
}

static void count_sent(ritual_conn *conn, size_t n)
{
    stamp_activity(conn);
    ritual__stat_add(&conn_loop(conn)->stat_written, (uint64_t)n);
}

static ssize_t send_iov(int fd, const struct iovec *iov, int iovcnt, int more)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t n;
    do
        n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT | more);
    while (n < 0 && errno == EINTR);
    return n;
}

/* Sends from the file segment until it is done or the socket is full.
 * Returns 1 when done, 0 when the socket pushed back, or a negative errno
 * (-EIO if the file ended early: the promised length cannot be kept). */
static int send_file(ritual_conn *conn, struct ritual_file_chunk *file)
{
    while (file->remaining > 0) {
        off_t off = (off_t)file->offset;
        size_t want = file->remaining > 0x7ffff000u ? 0x7ffff000u : (size_t)file->remaining;
        ssize_t n = sendfile(conn->io.fd, file->fd, &off, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -errno;
        }
        if (n == 0)
            return -EIO;
        file->offset += (uint64_t)n;
        file->remaining -= (uint64_t)n;
        count_sent(conn, (size_t)n);
    }
    return 1;
}

/* What is queued is what the kernel has not taken: on epoll and poll a
 * write goes to the kernel at once when nothing is queued ahead of it, so
 * the queue holds exactly what the kernel refused (CONN_BACKED_UP is set
 * whenever it holds anything). A completion backend gathers small writes
 * instead, for the turn's batched send; they count as taken, as they would
 * have been on epoll, until the kernel refuses some (a send that waits for
 * room). So that this cannot hide much, a connection's gathered output
 * goes to the kernel at once when it would reach GATHER_MAX, as on epoll
 * (not much less: an echo of 16 pipelined 4 KiB messages would then pay a
 * system call for what the turn's one send carries). A write
 * of SEND_NOW_MIN or more with nothing queued is sent at once, without a
 * copy (HTTP, 16 pipelined 4 KiB answers: 1.44 us per request queued,
 * 1.05 sent at once). */
#define GATHER_MAX (64 * 1024)
#define SEND_NOW_MIN (16 * 1024)

static bool gathering(const ritual_conn *conn)
{
    return conn_loop(conn)->gathers && !(conn->flags & (CONN_BACKED_UP | CONN_CONNECTING));
}

/* The kernel refused output, or could not be offered it: from here until
 * the queue empties, all of it counts, against the watermark too. */
static void back_up(ritual_conn *conn)
{
    conn->flags |= CONN_BACKED_UP;
    if (conn->out_len <= opts(conn)->write_high_watermark)
        return;
    if (opts(conn)->keep_reading)
        conn->flags |= CONN_ABOVE_HIGH; /* only on_drain, at the low watermark, follows */
    else
        conn->flags |= CONN_OVER_HIGH; /* stop reading until the peer catches up */
}

/* Before a write that would take gathered output past GATHER_MAX, or a
 * file segment: the gathered bytes go to the kernel now, as they would
 * have on epoll, unless a send of the backend's has them (then they are
 * the kernel's to take or refuse, and the write queues behind them). */
static void send_gathered(ritual_conn *conn)
{
    if (conn->out_tail && gathering(conn) && !(conn->io.busy & RITUAL_BUSY_SEND))
        ritual__conn_flush(conn);
}

/* Copies what the kernel did not take of a write into the queue. Returns
 * 0, or the negative errno the connection was closed with. */
static int queue_refused(ritual_conn *conn, const struct iovec *iov, int iovcnt, size_t sent,
                         size_t total)
{
    if ((size_t)conn->out_len + (total - sent) > opts(conn)->write_limit) {
        ritual__conn_terminate(conn, -ENOBUFS);
        return -ENOBUFS;
    }
    if (queue_output(conn, iov, iovcnt, sent) < 0) {
        ritual__conn_terminate(conn, -ENOMEM);
        return -ENOMEM;
    }
    back_up(conn);
    ritual__conn_update_interest(conn);
    return (conn->flags & CONN_CLOSED) ? conn->close_reason : 0;
}

int ritual_writev(ritual_conn *conn, const struct iovec *iov, int iovcnt)
{
    if (conn->flags & CONN_NO_WRITES)
        return -EPIPE;
    if (conn->tls)
        return ritual__tls_writev(conn, iov, iovcnt);
    return ritual__conn_write_raw(conn, iov, iovcnt);
}

int ritual__conn_write_raw(ritual_conn *conn, const struct iovec *iov, int iovcnt)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    if (gathering(conn) && (conn->out_tail || total < SEND_NOW_MIN) &&
        (size_t)conn->out_len + total < GATHER_MAX) {
        if (queue_output(conn, iov, iovcnt, 0) < 0) {
            ritual__conn_terminate(conn, -ENOMEM);
            return -ENOMEM;
        }
        ritual__conn_update_interest(conn);
        return (conn->flags & CONN_CLOSED) ? conn->close_reason : 0;
    }
    send_gathered(conn);
    if (conn->flags & CONN_CLOSED)
        return conn->close_reason;
    if (conn->out_tail || (conn->flags & CONN_CONNECTING))
        return queue_refused(conn, iov, iovcnt, 0, total);
    ssize_t n = iovcnt == 1 ? send(conn->io.fd, iov[0].iov_base, total, MSG_NOSIGNAL)
                            : send_iov(conn->io.fd, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        n = 0;
    if (n < 0) {
        int rc = -errno;
        ritual__conn_terminate(conn, rc);
        return rc;
    }
    if (n > 0)
        count_sent(conn, (size_t)n);
    if ((size_t)n == total)
        return 0;
    return queue_refused(conn, iov, iovcnt, (size_t)n, total);
}

int ritual_write(ritual_conn *conn, const void *data, size_t len)
{
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    return ritual_writev(conn, &iov, 1);
}

/* Queues the caller's bytes [sent, len) of `data` as a ref node, released
 * once sent or dropped. `counts`: the kernel refused them (or could not be
 * offered them), so they count against write_limit and the watermarks. */
static int queue_ref(ritual_conn *conn, const char *data, size_t sent, size_t len,
                     void (*release)(void *arg), void *arg, bool counts)
{
    if (counts && (size_t)conn->out_len + (len - sent) > opts(conn)->write_limit) {
        if (release)
            release(arg);
        ritual__conn_terminate(conn, -ENOBUFS);
        return -ENOBUFS;
    }
    struct ritual_file_chunk *ref = ritual__file_chunk_get(conn_loop(conn));
    if (!ref) {
        if (release)
            release(arg);
        ritual__conn_terminate(conn, -ENOMEM);
        return -ENOMEM;
    }
    ref->q.kind = RITUAL_OUTQ_REF;
    ref->q.start = (uint32_t)sent;
    ref->q.end = (uint32_t)len;
    ref->data = data;
    ref->release = release;
    ref->arg = arg;
    outq_append(conn, &ref->q);
    conn->out_len += (uint32_t)(len - sent);
    if (counts)
        back_up(conn);
    ritual__conn_update_interest(conn);
    return (conn->flags & CONN_CLOSED) ? conn->close_reason : 0;
}

int ritual_write_ref(ritual_conn *conn, const void *data, size_t len, void (*release)(void *arg),
                     void *arg)
{
    int rc = 0;
    if (conn->flags & CONN_NO_WRITES)
        rc = -EPIPE;
    else if (len > RITUAL_WRITE_REF_MAX)
        rc = -EINVAL;
    if (rc < 0 || len == 0) {
        if (release)
            release(arg);
        return rc;
    }
    if (conn->tls) { /* encrypting copies: the caller's bytes are free at once */
        struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
        rc = ritual__tls_writev(conn, &iov, 1);
        if (release)
            release(arg);
        return rc;
    }
    if (gathering(conn) && (conn->out_tail || len < SEND_NOW_MIN) &&
        (size_t)conn->out_len + len < GATHER_MAX)
        return queue_ref(conn, data, 0, len, release, arg, false);
    send_gathered(conn);
    if (conn->flags & CONN_CLOSED) {
        if (release)
            release(arg);
        return conn->close_reason;
    }
    if (conn->out_tail || (conn->flags & CONN_CONNECTING))
        return queue_ref(conn, data, 0, len, release, arg, true);
    ssize_t n = send(conn->io.fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        n = 0;
    if (n < 0) {
        rc = -errno;
        if (release)
            release(arg);
        ritual__conn_terminate(conn, rc);
        return rc;
    }
    if (n > 0)
        count_sent(conn, (size_t)n);
    if ((size_t)n == len) {
        if (release)
            release(arg); /* all of it went: nothing kept */
        return 0;
    }
    return queue_ref(conn, data, (size_t)n, len, release, arg, true);
}

int ritual_write_file(ritual_conn *conn, int fd, uint64_t offset, uint64_t len,
                      void (*release)(void *arg), void *arg)
{
    int rc = 0;
    if (conn->flags & CONN_NO_WRITES)
        rc = -EPIPE;
    else if (!ritual__tls_opened(conn))
        rc = -ENOTCONN; /* TLS: files go once the handshake is done */
    if (rc < 0 || len == 0) {
        if (release)
            release(arg);
        return rc;
    }
    struct ritual_file_chunk *file = ritual__file_chunk_get(conn_loop(conn));
    if (!file) {
        if (release)
            release(arg);
        ritual__conn_terminate(conn, -ENOMEM);
        return -ENOMEM;
    }
    file->fd = fd;
    file->offset = offset;
    file->remaining = len;
    file->release = release;
    file->arg = arg;
    /* No backend sends files itself: with nothing queued ahead, sendfile
     * now, on every backend (over TLS, its first record). */
    if (conn->tls) {
        ritual__tls_flush(conn); /* writes before it go before it */
        if (conn->flags & CONN_CLOSED) {
            ritual__outq_put(conn, &file->q);
            return conn->close_reason;
        }
        bool idle = !conn->out_tail;
        outq_append(conn, &file->q);
        conn->flags |= CONN_FILE_QUEUED;
        if (idle || gathering(conn))
            ritual__conn_flush(conn);
        if (conn->flags & CONN_CLOSED)
            return conn->close_reason;
        if (!(conn->flags & CONN_FILE_QUEUED))
            return 0;
    } else {
        if (!conn->out_tail && !(conn->flags & CONN_CONNECTING)) {
            rc = send_file(conn, file);
            if (rc != 0) { /* done, or failed */
                ritual__outq_put(conn, &file->q);
                if (rc < 0)
                    ritual__conn_terminate(conn, rc);
                return rc < 0 ? rc : 0;
            }
        }
        outq_append(conn, &file->q);
        conn->flags |= CONN_FILE_QUEUED;
        /* Gathered output ahead of it (a response's head): both go now, the
         * head with MSG_MORE so that it shares a packet with the file's
         * first bytes. */
        send_gathered(conn);
        if (conn->flags & CONN_CLOSED)
            return conn->close_reason;
        if (!(conn->flags & CONN_FILE_QUEUED))
            return 0; /* all of it went */
    }
    /* A file being sent counts as over the high watermark: reading waits
     * until it is out, so a peer cannot queue file after file unread. */
    back_up(conn);
    if (!opts(conn)->keep_reading)
        conn->flags |= CONN_OVER_HIGH;
    ritual__conn_update_interest(conn);
    return (conn->flags & CONN_CLOSED) ? conn->close_reason : 0;
}

int ritual__conn_output_iov(const ritual_conn *conn, struct iovec *iov, int max)
{
    int n = 0;
    const struct ritual_outq *q = conn->out_tail->next; /* the head */
    for (; n < max && !ritual__outq_is_file(q); q = q->next) {
        iov[n].iov_base = (void *)ritual__outq_bytes(q);
        iov[n++].iov_len = q->end - q->start;
        if (q == conn->out_tail)
            break;
    }
    return n;
}

/* Sends a run of memory chunks from the head of the queue, up to the next
 * file segment. Returns 1 if all of them went, 0 if the kernel pushed back,
 * or a negative errno. */
static int send_chunks(ritual_conn *conn)
{
    struct iovec iov[IOV_BATCH];
    int n = ritual__conn_output_iov(conn, iov, IOV_BATCH);
    size_t batch = 0;
    for (int i = 0; i < n; i++)
        batch += iov[i].iov_len;
    /* Headers before a file: let the kernel put them in one packet with
     * the file's first bytes. */
    int more = (conn->flags & CONN_FILE_QUEUED) ? MSG_MORE : 0;
    ssize_t sent = send_iov(conn->io.fd, iov, n, more);
    if (sent < 0)
        return errno == EAGAIN ? 0 : -errno;
    count_sent(conn, (size_t)sent);
    drop_sent(conn, (size_t)sent);
    return (size_t)sent == batch;
}

static void after_output(ritual_conn *conn);

/* Puts `len` bytes at the head of the queue, ahead of everything queued. */
static int queue_front(ritual_conn *conn, const char *p, size_t len)
{
    struct ritual_outq *first = NULL, *last = NULL;
    size_t total = len;
    while (len > 0) {
        struct ritual_chunk *chunk = ritual__chunk_get(conn_loop(conn));
        if (!chunk) {
            for (struct ritual_outq *q = first; q;) {
                struct ritual_outq *next = q == last ? NULL : q->next;
                ritual__chunk_put(conn_loop(conn), (struct ritual_chunk *)q);
                q = next;
            }
            return -ENOMEM;
        }
        size_t n = len < sizeof chunk->data ? len : sizeof chunk->data;
        memcpy(chunk->data, p, n);
        chunk->q.end = (uint32_t)n;
        if (last)
            last->next = &chunk->q;
        else
            first = &chunk->q;
        last = &chunk->q;
        p += n;
        len -= n;
    }
    if (!first)
        return 0;
    if (conn->out_tail) {
        last->next = conn->out_tail->next;
        conn->out_tail->next = first;
    } else {
        last->next = first;
        conn->out_tail = last;
    }
    conn->out_len += (uint32_t)total;
    return 0;
}

/* TLS: the file segment at the head gives its next records, sent at once
 * (nothing is ahead of them); what the kernel refuses goes ahead of the
 * rest of the segment, which leaves once its last byte is encrypted.
 * Returns 1 if all went, 0 if the kernel pushed back, or a negative errno. */
static int encrypt_file_head(ritual_conn *conn, struct ritual_file_chunk *file)
{
    int rc = ritual__tls_encrypt_file(conn, file);
    if (rc < 0)
        return rc;
    if (file->remaining == 0)
        pop_head(conn);
    const char *bytes;
    size_t len;
    ritual__tls_staged(conn, &bytes, &len);
    ssize_t n;
    do
        n = send(conn->io.fd, bytes, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN) {
        rc = -errno;
        ritual__tls_staged_clear(conn);
        return rc;
    }
    size_t sent = n > 0 ? (size_t)n : 0;
    if (sent > 0)
        count_sent(conn, sent);
    rc = sent < len ? queue_front(conn, bytes + sent, len - sent) : 0;
    ritual__tls_staged_clear(conn);
    if (rc < 0)
        return rc;
    return sent == len;
}

/* Sends queued output until the kernel pushes back. */
void ritual__conn_flush(ritual_conn *conn)
{
    if (conn->io.busy & RITUAL_BUSY_SEND)
        return; /* a completion backend is sending the queue's head right now */
    while (conn->out_tail) {
        struct ritual_outq *head = conn->out_tail->next;
        int rc;
        if (ritual__outq_is_file(head) && conn->tls) {
            rc = encrypt_file_head(conn, (struct ritual_file_chunk *)head);
        } else if (ritual__outq_is_file(head)) {
            rc = send_file(conn, (struct ritual_file_chunk *)head);
            if (rc == 1)
                pop_head(conn);
        } else {
            rc = send_chunks(conn);
        }
        if (rc < 0) {
            ritual__conn_terminate(conn, rc);
            return;
        }
        if (rc == 0)
            break;
    }
    after_output(conn);
}

/* A completion backend sent `res` bytes from the head of the queue. */
void ritual__conn_sent(ritual_conn *conn, int res)
{
    if (conn->flags & CONN_CLOSED)
        return;
    if (res == -EAGAIN) { /* nothing went: the backend waits for room */
        back_up(conn);
        ritual__conn_update_interest(conn);
        return;
    }
    if (res < 0) {
        ritual__conn_terminate(conn, res);
        return;
    }
    if (res > 0) {
        count_sent(conn, (size_t)res);
        drop_sent(conn, (size_t)res);
    }
    if (conn->out_tail && ritual__outq_is_file(conn->out_tail->next)) {
        ritual__conn_flush(conn); /* sendfile has no io_uring operation: send it here */
        return;
    }
    after_output(conn);
}

/* What follows progress on the queue: the low watermark, a close waiting
 * for the queue to empty, and the interest the new state wants. */
static void after_output(ritual_conn *conn)
{
    bool drained = false;
    if ((conn->flags & CONN_OVER_HIGH) && !(conn->flags & CONN_FILE_QUEUED) &&
        conn->out_len <= opts(conn)->write_low_watermark) {
        conn->flags &= ~CONN_OVER_HIGH;
        drained = !(conn->flags & CONN_CLOSING);
        if (has_held_input(conn) && !(conn->flags & CONN_CLOSING)) {
            /* Input left unconsumed while reading was held back: hand it
             * over again even if the peer sends nothing more. */
            conn->flags |= CONN_REDELIVER;
        }
        if (conn->flags & CONN_REDELIVER)
            ritual__conn_schedule(conn, conn_loop(conn)->now + 1);
    }
    if ((conn->flags & CONN_ABOVE_HIGH) && conn->out_len <= opts(conn)->write_low_watermark) {
        conn->flags &= ~CONN_ABOVE_HIGH;
        drained = true;
    }
    if (!conn->out_tail && (conn->flags & CONN_CLOSING)) {
        ritual__conn_finish_close(conn);
        return;
    }
    if (!conn->out_tail && (conn->flags & CONN_SHUT_WR)) {
        ritual__conn_send_fin(conn); /* what was written before the shutdown is out */
        if (conn->flags & CONN_CLOSED)
            return;
    }
    if (!conn->out_tail) {
        /* What the kernel had refused has gone out (output it took as it
         * came never needed draining, as on epoll). */
        drained = drained || (conn->flags & CONN_BACKED_UP);
        conn->flags &= ~CONN_BACKED_UP;
    }
    ritual__conn_update_interest(conn);
    if (drained && cbs(conn)->on_drain && !(conn->flags & CONN_CLOSED))
        cbs(conn)->on_drain(conn);
}
