/* conn.c - a connection's life: reading into library-owned buffers, buffered
 * writes with watermarks, graceful close, abort, and timeouts.
 *
 * Reading: every connection reads into the loop's one shared buffer, and the
 * user's on_data usually consumes it all; only a remainder is copied into a
 * buffer of the connection's own, which exists just while it holds bytes.
 * Writing: ritual_write sends at once when nothing is queued; only what the
 * kernel did not take is copied into chunks. So an echo costs one recv and
 * one send, and an idle connection holds no buffer at all.
 *
 * States: open -> closing (flushing the queue) -> lingering (FIN sent,
 * reading and discarding until the peer's FIN, so unread data does not turn
 * our close into a reset) -> closed (fd gone, on_close at the end of the
 * iteration). */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READS_PER_WAKEUP 16 /* fairness: then let other connections run */
#define IOV_BATCH 64
#define INBUF_ALLOC_MIN 4096 /* one page, header included; the pooled size */
#define INBUF_HEADER offsetof(struct ritual_inbuf, data)
#define CONN_BLOCK 64 /* connection structs are carved from blocks of this many */

#define DEFAULT_READ_BUFFER (64 * 1024)
#define DEFAULT_HIGH_WATERMARK (1024 * 1024)
#define DEFAULT_WRITE_LIMIT (64 * 1024 * 1024)
#define DEFAULT_CLOSE_TIMEOUT_MS 10000

void ritual__conn_options_defaults(ritual_conn_options *o)
{
    if (!o->close_timeout_ms)
        o->close_timeout_ms = DEFAULT_CLOSE_TIMEOUT_MS;
    if (!o->read_buffer_size)
        o->read_buffer_size = DEFAULT_READ_BUFFER;
    if (o->read_buffer_size > UINT32_MAX / 2)
        o->read_buffer_size = UINT32_MAX / 2;
    if (!o->write_high_watermark)
        o->write_high_watermark = DEFAULT_HIGH_WATERMARK;
    if (!o->write_low_watermark || o->write_low_watermark > o->write_high_watermark)
        o->write_low_watermark = o->write_high_watermark / 4;
    if (!o->write_limit)
        o->write_limit = DEFAULT_WRITE_LIMIT;
    if (o->write_limit > (size_t)1 << 31)
        o->write_limit = (size_t)1 << 31; /* out_len is 32 bits */
    if (o->write_high_watermark > o->write_limit)
        o->write_high_watermark = o->write_limit;
    if (o->write_low_watermark > o->write_high_watermark)
        o->write_low_watermark = o->write_high_watermark / 4;
    if (o->write_limit < o->write_high_watermark)
        o->write_limit = o->write_high_watermark;
    if (o->idle_timeout_ms > RITUAL_TIMEOUT_MAX_MS)
        o->idle_timeout_ms = RITUAL_TIMEOUT_MAX_MS;
    if (o->close_timeout_ms > RITUAL_TIMEOUT_MAX_MS)
        o->close_timeout_ms = RITUAL_TIMEOUT_MAX_MS;
}

static inline ritual_loop *conn_loop(const ritual_conn *conn)
{
    return conn->profile->loop;
}

/* A clock reading as a tick, rounded up: a deadline counted from it can
 * only come late, never early. */
static inline uint32_t tick_of(uint64_t ns)
{
    return (uint32_t)((ns + RITUAL_NS_PER_MS - 1) / RITUAL_NS_PER_MS);
}

static inline void stamp_activity(ritual_conn *conn)
{
    conn->last_active = tick_of(conn_loop(conn)->now);
}

static inline const ritual_conn_options *opts(const ritual_conn *conn)
{
    return &conn->profile->opts;
}

static inline const ritual_conn_callbacks *cbs(const ritual_conn *conn)
{
    return &conn->profile->cbs;
}

static unsigned wanted_events(const ritual_conn *conn)
{
    if (conn->flags & CONN_LINGERING)
        return RITUAL_IO_READ;
    if (conn->flags & CONN_CONNECTING)
        return RITUAL_IO_WRITE; /* writable: the handshake finished, or failed */
    unsigned events = conn->out_len ? RITUAL_IO_WRITE : 0;
    if (!(conn->flags & (CONN_PAUSED | CONN_OVER_HIGH | CONN_EOF | CONN_CLOSING)))
        events |= RITUAL_IO_READ;
    return events;
}

static void update_interest(ritual_conn *conn)
{
    if (conn->flags & CONN_CLOSED)
        return;
    int rc = ritual__io_set(conn_loop(conn), &conn->io, wanted_events(conn));
    if (rc < 0)
        ritual__conn_terminate(conn, rc);
}

/* When the connection's timer must next look at it (ns, monotonic); 0 for
 * never. The 32-bit tick of the deadline is placed next to the loop's clock:
 * timeouts are below 2^31 ms, so the difference cannot wrap. */
static uint64_t deadline(const ritual_conn *conn)
{
    uint32_t timeout_ms;
    if (conn->flags & CONN_CONNECTING)
        timeout_ms = (uint32_t)conn->profile->connect_timeout_ms;
    else if (conn->flags & (CONN_CLOSING | CONN_LINGERING))
        timeout_ms = (uint32_t)opts(conn)->close_timeout_ms;
    else if (conn->idle_ms)
        timeout_ms = conn->idle_ms;
    else
        return 0;
    uint64_t now_ms = conn_loop(conn)->now / RITUAL_NS_PER_MS;
    int64_t ahead = (int32_t)(conn->last_active + timeout_ms - (uint32_t)now_ms);
    if (ahead <= 0)
        return conn_loop(conn)->now; /* due */
    return (now_ms + (uint64_t)ahead) * RITUAL_NS_PER_MS;
}

static void deliver(ritual_conn *conn, const char *bytes, size_t len);

static void schedule_timer(ritual_conn *conn, uint64_t when)
{
    if (!when) {
        ritual__timer_node_cancel(conn_loop(conn), &conn->timer);
        return;
    }
    if (ritual__timer_node_schedule(conn_loop(conn), &conn->timer, when) < 0)
        ritual__conn_terminate(conn, -ENOMEM);
}

/* ---------------------------------------------------------------- buffers */

/* Drops the connection's input buffer, unless on_data is reading it right
 * now: then deliver() drops it when the callback returns. */
static void release_input(ritual_conn *conn)
{
    if (conn->in && !(conn->flags & CONN_DELIVERING)) {
        ritual__inbuf_put(conn_loop(conn), conn->in, INBUF_HEADER + conn->in->size);
        conn->in = NULL;
    }
}

static void release_output(ritual_conn *conn)
{
    struct ritual_chunk *tail = conn->out_tail;
    if (tail) {
        struct ritual_chunk *c = tail->next;
        for (;;) {
            struct ritual_chunk *next = c->next;
            ritual__chunk_put(conn_loop(conn), c);
            if (c == tail)
                break;
            c = next;
        }
    }
    conn->out_tail = NULL;
    conn->out_len = 0;
}

static inline uint32_t in_len(const ritual_conn *conn)
{
    return conn->in ? conn->in->len : 0;
}

/* Gives the connection an input buffer for at least `need` bytes, keeping
 * what it holds. Returns 0 or -ENOMEM. */
static int reserve_input(ritual_conn *conn, size_t need)
{
    size_t alloc = INBUF_ALLOC_MIN;
    while (alloc - INBUF_HEADER < need)
        alloc *= 2;
    size_t max = opts(conn)->read_buffer_size;
    if (alloc - INBUF_HEADER > max)
        alloc = INBUF_HEADER + (max > need ? max : need);
    if (conn->in && conn->in->size >= alloc - INBUF_HEADER)
        return 0;
    struct ritual_inbuf *buf = ritual__inbuf_get(conn_loop(conn), alloc);
    if (!buf)
        return -ENOMEM;
    buf->size = (uint32_t)(alloc - INBUF_HEADER);
    buf->len = 0;
    if (conn->in) {
        buf->len = conn->in->len;
        memcpy(buf->data, conn->in->data, buf->len);
        ritual__inbuf_put(conn_loop(conn), conn->in, INBUF_HEADER + conn->in->size);
    }
    conn->in = buf;
    return 0;
}

/* --------------------------------------------------------------- opening */

/* Connection structs come from blocks of CONN_BLOCK, so each costs its 80
 * bytes and no allocator header; the blocks go back with the loop. */
struct conn_block {
    void *next;
    ritual_conn conns[CONN_BLOCK];
};

static ritual_conn *conn_alloc(ritual_loop *loop)
{
    if (!loop->conn_free) {
        struct conn_block *block = malloc(sizeof *block);
        if (!block)
            return NULL;
        block->next = loop->conn_blocks;
        loop->conn_blocks = block;
        for (int i = CONN_BLOCK - 1; i >= 0; i--) {
            block->conns[i].data = loop->conn_free;
            loop->conn_free = &block->conns[i];
        }
    }
    ritual_conn *conn = loop->conn_free;
    loop->conn_free = conn->data;
    memset(conn, 0, sizeof *conn);
    return conn;
}

static void conn_recycle(ritual_loop *loop, ritual_conn *conn)
{
    conn->data = loop->conn_free;
    loop->conn_free = conn;
}

void ritual__conns_free_blocks(ritual_loop *loop)
{
    while (loop->conn_blocks) {
        struct conn_block *next = ((struct conn_block *)loop->conn_blocks)->next;
        free(loop->conn_blocks);
        loop->conn_blocks = next;
    }
    loop->conn_free = NULL;
}

int ritual__conn_open(ritual_loop *loop, const struct ritual_conn_profile *profile, int fd,
                      bool connecting, ritual_conn **out)
{
    *out = NULL;
    ritual_conn *conn = conn_alloc(loop);
    if (!conn) {
        close(fd);
        return -ENOMEM;
    }
    conn->io.fd = fd;
    conn->io.kind = RITUAL_IO_CONN;
    conn->profile = profile;
    conn->idle_ms = (uint32_t)profile->opts.idle_timeout_ms;
    /* An outbound connection may be made outside the loop, long after the
     * iteration's clock was read: its timeout counts from now. */
    conn->last_active = tick_of(connecting ? ritual__clock_ns() : loop->now);
    if (connecting)
        conn->flags |= CONN_CONNECTING;
    ritual__timer_node_init(&conn->timer, RITUAL_TIMER_CONN);

    int one = 1;
    /* Small writes go out at once: latency matters more than packet count
     * for the request/response traffic servers carry. Failure is harmless. */
    if (!profile->opts.nagle)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    int rc = ritual__io_set(loop, &conn->io, wanted_events(conn));
    if (rc == 0 && deadline(conn))
        rc = ritual__timer_node_schedule(loop, &conn->timer, deadline(conn));
    if (rc < 0) {
        ritual__timer_node_cancel(loop, &conn->timer);
        loop->backend->forget(loop, &conn->io);
        close(fd);
        conn_recycle(loop, conn);
        return rc;
    }
    if (profile->listener) {
        profile->listener->refs++;
        profile->listener->conns++;
    }
    loop->conn_count++;
    ritual_list_add_tail(&loop->conns, &conn->link);
    *out = conn;
    if (!connecting && profile->cbs.on_open)
        profile->cbs.on_open(conn);
    return 0;
}

/* --------------------------------------------------------------- closing */

void ritual__conn_terminate(ritual_conn *conn, int reason)
{
    if (conn->flags & CONN_CLOSED)
        return;
    ritual_loop *loop = conn_loop(conn);
    conn->flags |= CONN_CLOSED;
    conn->close_reason = (int16_t)reason;
    ritual__timer_node_cancel(loop, &conn->timer);
    loop->backend->forget(loop, &conn->io);
    close(conn->io.fd); /* on Linux the fd is released even if close reports EINTR */
    conn->io.fd = -1;
    release_input(conn);
    release_output(conn);
    ritual_list_del(&conn->link);
    ritual_list_add_tail(&loop->closed, &conn->link);
    loop->conn_count--;
    if (conn->profile->listener)
        ritual__listener_conn_closed(conn->profile->listener);
    ritual__loop_check_drained(loop);
}

void ritual__conns_reap(ritual_loop *loop)
{
    while (!ritual_list_empty(&loop->closed)) {
        ritual_conn *conn = container_of(loop->closed.next, ritual_conn, link);
        ritual_list_del(&conn->link);
        const struct ritual_conn_profile *profile = conn->profile;
        release_input(conn); /* kept if it closed during its own on_data */
        if (profile->cbs.on_close)
            profile->cbs.on_close(conn, conn->close_reason);
        if (profile->listener)
            ritual__listener_unref(profile->listener);
        else
            free((void *)profile); /* an outbound connection's own */
        conn_recycle(loop, conn);
    }
}

/* The queue is empty: send our FIN, then read until the peer's. */
static void finish_close(ritual_conn *conn)
{
    if (conn->flags & CONN_EOF) {
        ritual__conn_terminate(conn, conn->close_reason);
        return;
    }
    if (shutdown(conn->io.fd, SHUT_WR) < 0) {
        ritual__conn_terminate(conn, conn->close_reason);
        return;
    }
    conn->flags = (conn->flags & ~CONN_CLOSING) | CONN_LINGERING;
    stamp_activity(conn); /* lingering is bounded from here */
    update_interest(conn);
    schedule_timer(conn, deadline(conn));
}

static void begin_close(ritual_conn *conn, int reason)
{
    if (conn->flags & (CONN_CLOSING | CONN_LINGERING | CONN_CLOSED))
        return;
    if ((conn->flags & CONN_CONNECTING) && conn->out_len == 0) {
        ritual__conn_terminate(conn, reason); /* nothing to say: just drop it */
        return;
    }
    conn->flags |= CONN_CLOSING;
    conn->flags &= ~CONN_REDELIVER;
    conn->close_reason = (int16_t)reason;
    conn->last_active = tick_of(ritual__clock_ns()); /* may be called outside the loop */
    release_input(conn);
    if (conn->flags & CONN_CONNECTING) {
        /* Queued bytes go out once connected; the FIN follows them. */
        schedule_timer(conn, deadline(conn));
        return;
    }
    if (conn->out_len == 0) {
        finish_close(conn);
        return;
    }
    update_interest(conn);
    schedule_timer(conn, deadline(conn));
}

void ritual_conn_close(ritual_conn *conn)
{
    begin_close(conn, 0);
}

static void abort_with(ritual_conn *conn, int reason)
{
    if (conn->flags & CONN_CLOSED)
        return;
    /* Linger on with a zero timeout: close() sends RST and drops the queue. */
    struct linger lin = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(conn->io.fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
    ritual__conn_terminate(conn, reason);
}

void ritual_conn_abort(ritual_conn *conn)
{
    abort_with(conn, -ECONNABORTED);
}

void ritual__conn_timer_fired(ritual_conn *conn)
{
    ritual_loop *loop = conn_loop(conn);
    if (conn->flags & CONN_REDELIVER) {
        if (conn->flags & CONN_OVER_HIGH) {
            /* flush() hands it over once the queue drains; meanwhile the
             * idle deadline still applies. */
            schedule_timer(conn, deadline(conn));
            return;
        }
        conn->flags &= ~CONN_REDELIVER;
        if (in_len(conn) && !(conn->flags & (CONN_PAUSED | CONN_CLOSING | CONN_LINGERING))) {
            deliver(conn, conn->in->data, conn->in->len);
            if (conn->flags & (CONN_CLOSED | CONN_REDELIVER))
                return; /* closed, or paused and resumed again: already rescheduled */
        }
    }
    uint64_t due = deadline(conn);
    if (!due)
        return;
    if (due > loop->now) {
        schedule_timer(conn, due); /* there was activity: look again later */
        return;
    }
    if (conn->flags & CONN_CONNECTING) {
        ritual__conn_terminate(conn, -ETIMEDOUT);
    } else if (conn->flags & CONN_LINGERING) {
        ritual__conn_terminate(conn, conn->close_reason);
    } else if (conn->flags & CONN_CLOSING) {
        abort_with(conn, -ETIMEDOUT); /* the peer stopped reading our last bytes */
    } else {
        begin_close(conn, -ETIMEDOUT);
    }
}

/* ---------------------------------------------------------------- writing */

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
        if (n > 0)
            stamp_activity(conn);
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
    update_interest(conn);
    return (conn->flags & CONN_CLOSED) ? conn->close_reason : 0;
}

int ritual_write(ritual_conn *conn, const void *data, size_t len)
{
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    return ritual_writev(conn, &iov, 1);
}

/* Sends queued output until the kernel pushes back. */
static void flush(ritual_conn *conn)
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
        drop_sent(conn, (size_t)sent);
        if ((size_t)sent < batch)
            break;
    }

    bool drained = false;
    if ((conn->flags & CONN_OVER_HIGH) && conn->out_len <= opts(conn)->write_low_watermark) {
        conn->flags &= ~CONN_OVER_HIGH;
        drained = !(conn->flags & CONN_CLOSING);
        if (conn->flags & CONN_REDELIVER)
            schedule_timer(conn, conn_loop(conn)->now + 1);
    }
    if (conn->out_len == 0 && (conn->flags & CONN_CLOSING)) {
        finish_close(conn);
        return;
    }
    update_interest(conn);
    if (drained && cbs(conn)->on_drain && !(conn->flags & CONN_CLOSED))
        cbs(conn)->on_drain(conn);
}

/* ---------------------------------------------------------------- reading */

/* Hands `len` bytes at `bytes` to the user; keeps what was not consumed. */
static void deliver(ritual_conn *conn, const char *bytes, size_t len)
{
    conn->flags |= CONN_DELIVERING;
    size_t used = cbs(conn)->on_data(conn, bytes, len);
    conn->flags &= ~CONN_DELIVERING;
    if (used > len)
        used = len;
    if (conn->flags & (CONN_CLOSED | CONN_CLOSING | CONN_LINGERING)) {
        release_input(conn); /* deferred while the callback held it */
        return;
    }
    size_t left = len - used;
    if (!conn->in || bytes != conn->in->data) {
        /* From the shared buffer: keep the remainder in our own. */
        if (left == 0)
            return;
        if (reserve_input(conn, left) < 0) {
            ritual__conn_terminate(conn, -ENOMEM);
            return;
        }
        memcpy(conn->in->data, bytes + used, left);
        conn->in->len = (uint32_t)left;
        return;
    }
    if (left == 0) {
        release_input(conn);
    } else if (used > 0) {
        memmove(conn->in->data, conn->in->data + used, left);
        conn->in->len = (uint32_t)left;
    }
}

static void peer_eof(ritual_conn *conn)
{
    conn->flags |= CONN_EOF;
    if (!cbs(conn)->on_eof) {
        /* Usually closes at once: no epoll_ctl for a socket about to go. */
        ritual_conn_close(conn);
        return;
    }
    update_interest(conn); /* stop reading: the socket would stay readable */
    if (!(conn->flags & CONN_CLOSED))
        cbs(conn)->on_eof(conn);
}

static void read_input(ritual_conn *conn)
{
    ritual_loop *loop = conn_loop(conn);
    size_t max = opts(conn)->read_buffer_size;
    for (int round = 0; round < READS_PER_WAKEUP; round++) {
        if (conn->flags &
            (CONN_PAUSED | CONN_OVER_HIGH | CONN_EOF | CONN_CLOSING | CONN_LINGERING | CONN_CLOSED))
            return;
        char *dst;
        size_t room;
        struct ritual_inbuf *in = conn->in;
        if (!in) {
            dst = loop->rbuf;
            room = max;
        } else {
            /* Grow while the buffer is mostly full and may still grow. */
            if (in->size - in->len < INBUF_ALLOC_MIN / 2 && in->size < max) {
                if (reserve_input(conn, (size_t)in->size * 2) < 0) {
                    ritual__conn_terminate(conn, -ENOMEM);
                    return;
                }
                in = conn->in;
            }
            if (in->len >= max) {
                /* Full, and the user consumed nothing: it can never progress. */
                ritual__conn_terminate(conn, -ENOBUFS);
                return;
            }
            dst = in->data + in->len;
            room = (in->size < max ? in->size : max) - in->len;
        }
        ssize_t n = recv(conn->io.fd, dst, room, 0);
        if (n > 0) {
            stamp_activity(conn);
            if (!in) {
                deliver(conn, dst, (size_t)n);
            } else {
                in->len += (uint32_t)n;
                deliver(conn, in->data, in->len);
            }
            if ((size_t)n < room)
                return; /* drained, most likely; level-triggered epoll says if not */
            continue;
        }
        if (n == 0) {
            peer_eof(conn);
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
static void linger_read(ritual_conn *conn)
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

/* An error or hang-up that no read or write consumed: a reset on a paused or
 * half-closed connection. Close it, or the level-triggered report would spin. */
static void socket_error(ritual_conn *conn)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(conn->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    /* Linux files a reset that arrives after the peer's FIN as EPIPE; it is
     * a reset all the same, so report it as one. */
    if (err == 0 || err == EPIPE)
        err = ECONNRESET;
    ritual__conn_terminate(conn, -err);
}

/* The outbound handshake finished: connected, or refused. */
static void connect_done(ritual_conn *conn)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(conn->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        ritual__conn_terminate(conn, -err);
        return;
    }
    conn->flags &= ~CONN_CONNECTING;
    stamp_activity(conn);
    schedule_timer(conn, deadline(conn));
    update_interest(conn);
    if (conn->flags & (CONN_CLOSED | CONN_CLOSING))
        return; /* closed by the user before it connected: no on_open */
    if (cbs(conn)->on_open)
        cbs(conn)->on_open(conn);
    /* Connected during a drain: it is told like the others were. */
    if (conn_loop(conn)->shutting_down && cbs(conn)->on_shutdown &&
        !(conn->flags & (CONN_CLOSED | CONN_CLOSING | CONN_LINGERING)))
        cbs(conn)->on_shutdown(conn);
}

void ritual__conn_ready(ritual_conn *conn, unsigned events)
{
    if (conn->flags & CONN_CLOSED)
        return;
    if (conn->flags & CONN_CONNECTING) {
        if (!(events & (RITUAL_IO_WRITE | RITUAL_IO_ERROR)))
            return;
        connect_done(conn);
        if (conn->flags & (CONN_CLOSED | CONN_CONNECTING))
            return;
        events = RITUAL_IO_WRITE; /* flush what was written while connecting */
    }
    if ((events & (RITUAL_IO_WRITE | RITUAL_IO_ERROR)) && conn->out_len) {
        flush(conn);
        if (conn->flags & CONN_CLOSED)
            return;
    }
    if (conn->flags & CONN_LINGERING) {
        if (events & (RITUAL_IO_READ | RITUAL_IO_ERROR))
            linger_read(conn);
        return;
    }
    if ((events & RITUAL_IO_READ) && (conn->io.events & RITUAL_IO_READ))
        read_input(conn);
    else if (events & RITUAL_IO_ERROR)
        socket_error(conn);
}

/* ------------------------------------------------------------- public API */

void ritual_conn_pause(ritual_conn *conn)
{
    conn->flags |= CONN_PAUSED;
    update_interest(conn);
}

void ritual_conn_resume(ritual_conn *conn)
{
    if (!(conn->flags & CONN_PAUSED))
        return;
    conn->flags &= ~CONN_PAUSED;
    update_interest(conn);
    if (in_len(conn) && !(conn->flags & (CONN_CLOSED | CONN_CLOSING | CONN_LINGERING))) {
        /* Hand the buffered input over again from the loop, not from inside
         * this call: the caller may be in the middle of anything. */
        conn->flags |= CONN_REDELIVER;
        /* Just after the iteration's clock, so that it runs in the next
         * iteration rather than again in the timer run under way. */
        schedule_timer(conn, conn_loop(conn)->now + 1);
    }
}

void ritual_conn_set_idle_timeout(ritual_conn *conn, uint64_t ms)
{
    conn->idle_ms = ms > RITUAL_TIMEOUT_MAX_MS ? RITUAL_TIMEOUT_MAX_MS : (uint32_t)ms;
    if (conn->flags & (CONN_CLOSED | CONN_CLOSING | CONN_LINGERING | CONN_CONNECTING))
        return; /* applies from on_open on */
    conn->last_active = tick_of(ritual__clock_ns());
    if (!(conn->flags & CONN_REDELIVER))
        schedule_timer(conn, deadline(conn));
}

void ritual_conn_set_data(ritual_conn *conn, void *data)
{
    conn->data = data;
}

void *ritual_conn_data(const ritual_conn *conn)
{
    return conn->data;
}

size_t ritual_conn_write_queued(const ritual_conn *conn)
{
    return conn->out_len;
}

ritual_loop *ritual_conn_loop(const ritual_conn *conn)
{
    return conn_loop(conn);
}

ritual_listener *ritual_conn_listener(const ritual_conn *conn)
{
    return conn->profile->listener;
}

int ritual_conn_fd(const ritual_conn *conn)
{
    return conn->io.fd;
}

int ritual_conn_peer(const ritual_conn *conn, char *buf, size_t len)
{
    struct sockaddr_storage addr;
    socklen_t addr_len = sizeof addr;
    if (conn->io.fd < 0)
        return -ENOTCONN;
    if (getpeername(conn->io.fd, (struct sockaddr *)&addr, &addr_len) < 0)
        return -errno;
    return ritual__address_format((struct sockaddr *)&addr, buf, len);
}
