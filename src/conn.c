/* conn.c - a connection's life: opening (accepted or outbound), readiness,
 * graceful close, abort, timeouts, and the public accessors. Input is in
 * conn_read.c, output in conn_write.c.
 *
 * States: open -> closing (flushing the queue) -> lingering (FIN sent,
 * reading and discarding until the peer's FIN, so unread data does not turn
 * our close into a reset) -> closed (fd gone, on_close at the end of the
 * iteration). An echo costs one recv and one send, and an idle connection
 * holds no buffer at all. */
#include "address.h"
#include "conn_parts.h"
#include "io.h"
#include "listener.h"
#include "proxy.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

static unsigned wanted_events(const ritual_conn *conn)
{
    if (conn->flags & CONN_LINGERING)
        return RITUAL_IO_READ;
    if (conn->flags & CONN_CONNECTING)
        return RITUAL_IO_WRITE; /* writable: the handshake finished, or failed */
    unsigned events = conn->out_tail ? RITUAL_IO_WRITE : 0;
    if (!(conn->flags &
          (CONN_PAUSED | CONN_OVER_HIGH | CONN_EOF | CONN_EOF_PENDING | CONN_CLOSING)) &&
        !(conn->tls && ritual__tls_transport_ended(conn)))
        events |= RITUAL_IO_READ;
    else if (events == 0 && (conn->flags & CONN_HUNG_UP))
        events = RITUAL_IO_QUIET;
    return events;
}

void ritual__conn_update_interest(ritual_conn *conn)
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

void ritual__conn_schedule(ritual_conn *conn, uint64_t when)
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
 * now: then ritual__conn_deliver() drops it when the callback returns. */
void ritual__conn_release_input(ritual_conn *conn)
{
    if (conn->in && !(conn->flags & CONN_DELIVERING)) {
        ritual__inbuf_put(conn_loop(conn), conn->in, INBUF_HEADER + conn->in->size);
        conn->in = NULL;
    }
}

/* Frees the queue's nodes from `first` through `last`, following next. */
static void put_nodes(ritual_conn *conn, struct ritual_outq *first, struct ritual_outq *last)
{
    for (struct ritual_outq *q = first;;) {
        struct ritual_outq *next = q->next;
        ritual__outq_put(conn, q);
        if (q == last)
            break;
        q = next;
    }
}

static void release_output(ritual_conn *conn)
{
    if (conn->out_tail)
        put_nodes(conn, conn->out_tail->next, conn->out_tail);
    conn->out_tail = NULL;
    conn->out_len = 0;
    conn->flags &= ~(CONN_FILE_QUEUED | CONN_BACKED_UP);
}

/* A send in flight reads the memory chunks at the head of the queue (up to
 * the first file segment): release the rest now, so that file segments'
 * release callbacks run before on_close, as they do when nothing is in
 * flight. The head goes when the send ends (conn_finish). */
static void release_output_unsent(ritual_conn *conn)
{
    struct ritual_outq *tail = conn->out_tail, *head = tail->next, *last = head;
    while (last != tail && !ritual__outq_is_file(last->next))
        last = last->next;
    if (last == tail)
        return; /* all of it may be the send's */
    struct ritual_outq *rest = last->next;
    last->next = head;
    conn->out_tail = last;
    put_nodes(conn, rest, tail);
    conn->flags &= ~CONN_FILE_QUEUED;
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
    if (connecting) {
        conn->flags |= CONN_CONNECTING;
        conn->io.connecting = 1;
    }
    ritual__timer_node_init(&conn->timer, RITUAL_TIMER_CONN);

    int one = 1;
    /* Small writes go out at once: latency matters more than packet count
     * for the request/response traffic servers carry. Failure is harmless. */
    if (!profile->opts.nagle && !profile->local)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    int rc = ritual__io_set(loop, &conn->io, wanted_events(conn));
    if (rc == 0 && deadline(conn))
        rc = ritual__timer_node_schedule(loop, &conn->timer, deadline(conn));
    if (rc < 0) {
        ritual__timer_node_cancel(loop, &conn->timer);
        ritual__io_forget(loop, &conn->io);
        close(fd);
        conn->io.fd = -1;
        conn_recycle(loop, conn);
        return rc;
    }
    if (profile->listener) {
        profile->listener->refs++;
        profile->listener->conns++;
    }
    loop->conn_count++;
    ritual__stat_add(&loop->stat_accepted, 1);
    ritual__stat_add(&loop->stat_conns, 1);
    ritual_list_add_tail(&loop->conns, &conn->link);
    *out = conn;
    if (profile->listener && profile->listener->proxy) {
        ritual__proxy_begin(conn); /* TLS and on_open once the header is in */
        return 0;
    }
    if (profile->tls) {
        rc = ritual__tls_attach(conn, profile->tls, true, NULL, profile->tls_plaintext);
        if (rc < 0) {
            ritual__conn_terminate(conn, rc); /* never opened: on_close is not called */
            return rc;
        }
        ritual__conn_schedule(conn, deadline(conn)); /* the handshake's */
        return 0;                                    /* on_open once the handshake is done */
    }
    if (!connecting && profile->cbs.on_open)
        profile->cbs.on_open(conn);
    return 0;
}

/* --------------------------------------------------------------- closing */

/* Which closed_* counter of ritual_loop_stats a reason goes to. */
static unsigned close_class(int reason)
{
    switch (reason) {
    case 0:
        return RITUAL__CLOSED_CLEAN;
    case -ECONNRESET:
    case -EPIPE:
        return RITUAL__CLOSED_RESET;
    case -ETIMEDOUT:
        return RITUAL__CLOSED_TIMEOUT;
    case -ENOBUFS:
        return RITUAL__CLOSED_OVERFLOW;
    case -ECONNABORTED:
        return RITUAL__CLOSED_ABORTED;
    case -ECANCELED:
        return RITUAL__CLOSED_CANCELED;
    default:
        return RITUAL__CLOSED_OTHER;
    }
}

/* Every reason is final here, on_close or not: each connection counted in
 * stat_accepted is counted once in stat_closed. */
void ritual__conn_terminate(ritual_conn *conn, int reason)
{
    if (conn->flags & CONN_CLOSED)
        return;
    ritual_loop *loop = conn_loop(conn);
    conn->flags |= CONN_CLOSED;
    conn->close_reason = (int16_t)reason;
    ritual__timer_node_cancel(loop, &conn->timer);
    ritual__io_forget(loop, &conn->io);
    close(conn->io.fd); /* on Linux the fd is released even if close reports EINTR */
    conn->io.fd = -1;
    ritual__conn_release_input(conn);
    if (conn->io.busy & RITUAL_BUSY_SEND)
        release_output_unsent(conn); /* the kernel reads the head until its send ends */
    else
        release_output(conn);
    ritual_list_del(&conn->link);
    ritual_list_add_tail(&loop->closed, &conn->link);
    loop->conn_count--;
    ritual__stat_add(&loop->stat_conns, UINT64_MAX); /* minus one */
    ritual__stat_add(&loop->stat_closed[close_class(reason)], 1);
    if (conn->profile->listener)
        ritual__listener_conn_closed(conn->profile->listener);
    ritual__loop_check_drained(loop);
}

/* The last of a closed connection: its profile and its struct. */
static void conn_finish(ritual_loop *loop, ritual_conn *conn)
{
    const struct ritual_conn_profile *profile = conn->profile;
    ritual__tls_detach(conn);
    ritual__proxy_release(conn);
    release_output(conn);
    if (profile->listener)
        ritual__listener_unref(profile->listener);
    if (!profile->listener || profile->own)
        free((void *)profile); /* an outbound connection's own, or a copy */
    conn_recycle(loop, conn);
}

void ritual__conns_reap(ritual_loop *loop)
{
    while (!ritual_list_empty(&loop->closed)) {
        ritual_conn *conn = ritual_container_of(loop->closed.next, ritual_conn, link);
        ritual_list_del(&conn->link);
        const struct ritual_conn_profile *profile = conn->profile;
        ritual__conn_release_input(conn); /* kept if it closed during its own on_data */
        if (profile->cbs.on_close && !ritual__tls_unseen(conn) && !ritual__proxy_pending(conn))
            profile->cbs.on_close(conn, conn->close_reason);
        if (conn->io.busy) {
            /* The kernel still has operations naming it: the struct (and
             * the profile it points to) waits for the last completion. */
            conn->flags |= CONN_REAPED;
            ritual_list_add_tail(&loop->zombie_conns, &conn->link);
            continue;
        }
        conn_finish(loop, conn);
    }
}

void ritual__conn_released(ritual_conn *conn)
{
    if (!(conn->flags & CONN_REAPED))
        return; /* closed this iteration: ritual__conns_reap finishes it */
    ritual_list_del(&conn->link);
    conn_finish(conn_loop(conn), conn);
}

/* ritual_conn_shutdown_write's queue is out: the FIN, and reading goes on. */
void ritual__conn_send_fin(ritual_conn *conn)
{
    if (conn->tls && !ritual__tls_opened(conn))
        return; /* after the handshake */
    if (conn->tls && ritual__tls_close_notify(conn))
        return; /* close_notify first; the FIN when it has gone */
    if (shutdown(conn->io.fd, SHUT_WR) < 0) {
        ritual__conn_terminate(conn, -errno);
        return;
    }
    ritual__conn_update_interest(conn);
}

/* The queue is empty: send our FIN, then read until the peer's. */
void ritual__conn_finish_close(ritual_conn *conn)
{
    if (conn->tls && ritual__tls_close_notify(conn))
        return; /* close_notify first; the FIN when it has gone */
    if (conn->flags & CONN_CLOSED)
        return;
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
    ritual__conn_update_interest(conn);
    ritual__conn_schedule(conn, deadline(conn));
}

static void begin_close(ritual_conn *conn, int reason)
{
    if (conn->flags & (CONN_CLOSING | CONN_LINGERING | CONN_CLOSED))
        return;
    if (conn->tls && ritual__tls_defer_close(conn))
        return; /* what was written goes once the handshake is done */
    if ((conn->flags & CONN_CONNECTING) && !conn->out_tail) {
        ritual__conn_terminate(conn, reason); /* nothing to say: just drop it */
        return;
    }
    conn->flags |= CONN_CLOSING;
    conn->flags &= ~CONN_REDELIVER;
    conn->close_reason = (int16_t)reason;
    conn->last_active = tick_of(ritual__clock_ns()); /* may be called outside the loop */
    ritual__conn_release_input(conn);
    if (conn->flags & CONN_CONNECTING) {
        /* Queued bytes go out once connected; the FIN follows them. */
        ritual__conn_schedule(conn, deadline(conn));
        return;
    }
    if (!conn->out_tail) {
        ritual__conn_finish_close(conn);
        return;
    }
    ritual__conn_update_interest(conn);
    ritual__conn_schedule(conn, deadline(conn));
}

void ritual_conn_close(ritual_conn *conn)
{
    begin_close(conn, 0);
}

void ritual__conn_close_with(ritual_conn *conn, int reason)
{
    begin_close(conn, reason);
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

int ritual_conn_shutdown_write(ritual_conn *conn)
{
    if (conn->flags & (CONN_CLOSING | CONN_LINGERING | CONN_CLOSED))
        return -EPIPE;
    if (conn->flags & CONN_SHUT_WR)
        return 0;
    conn->flags |= CONN_SHUT_WR;
    if (conn->out_tail || (conn->flags & CONN_CONNECTING))
        return 0; /* the FIN follows the queue, or the handshake */
    ritual__conn_send_fin(conn);
    return (conn->flags & CONN_CLOSED) ? conn->close_reason : 0;
}

void ritual__conn_timer_fired(ritual_conn *conn)
{
    ritual_loop *loop = conn_loop(conn);
    if (conn->flags & CONN_REDELIVER) {
        conn->flags &= ~CONN_REDELIVER;
        /* Over the high watermark, ritual__conn_flush() hands the input over
         * once the queue drains; meanwhile the idle deadline applies, below. */
        if (!(conn->flags & CONN_OVER_HIGH) && has_held_input(conn) &&
            !(conn->flags & (CONN_PAUSED | CONN_CLOSING | CONN_LINGERING))) {
            ritual__conn_deliver_held(conn);
            if (conn->flags & (CONN_CLOSED | CONN_REDELIVER))
                return; /* closed, or paused and resumed again: already rescheduled */
        }
    }
    uint64_t due = deadline(conn);
    if (!due)
        return;
    if (due > loop->now) {
        ritual__conn_schedule(conn, due); /* there was activity: look again later */
        return;
    }
    if (conn->flags & CONN_CONNECTING) {
        int error = conn->profile->connect_error;
        ritual__conn_terminate(conn, error ? -error : -ETIMEDOUT);
    } else if (conn->flags & CONN_LINGERING) {
        ritual__conn_terminate(conn, conn->close_reason);
    } else if (conn->flags & CONN_CLOSING) {
        abort_with(conn, -ETIMEDOUT); /* the peer stopped reading our last bytes */
    } else if (conn->out_tail) {
        /* Output queued and no progress for the whole idle timeout. The
         * kernel may not have woken us although the peer has been reading
         * (it signals writability only once a good part of the buffer is
         * free): try. If nothing goes, the peer stopped reading, and a
         * graceful close would only hold the connection for
         * close_timeout_ms more. */
        uint32_t before = conn->last_active;
        ritual__conn_flush(conn);
        if (conn->flags & CONN_CLOSED)
            return;
        if (conn->last_active == before)
            abort_with(conn, -ETIMEDOUT);
        else if (!(conn->flags & CONN_REDELIVER)) /* else the flush scheduled the hand-over */
            ritual__conn_schedule(conn, deadline(conn));
    } else {
        begin_close(conn, -ETIMEDOUT);
    }
}

/* An error or hang-up that no read or write consumed, on a connection that
 * is not reading (paused, over its watermark, after the peer's FIN). */
static void socket_error(ritual_conn *conn)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(conn->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == 0) {
        /* No error: a hang-up. Both directions are shut (our side was shut
         * with shutdown(2), then the peer sent its FIN): the peer's last
         * bytes and its FIN wait in the socket, read when reading resumes,
         * and nothing else can happen to it. Stop watching it meanwhile, or
         * the level-triggered hang-up would repeat. */
        conn->flags |= CONN_HUNG_UP;
        ritual__conn_update_interest(conn);
        return;
    }
    /* Linux files a reset that arrives after the peer's FIN as EPIPE; it is
     * a reset all the same, so report it as one. */
    if (err == EPIPE)
        err = ECONNRESET;
    ritual__conn_terminate(conn, -err);
}

/* The outbound handshake finished: connected, or refused. */
static void connect_done(ritual_conn *conn)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (conn->profile->connect_error)
        err = conn->profile->connect_error; /* the socket itself is unconnected */
    else if (getsockopt(conn->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        ritual__conn_terminate(conn, -err);
        return;
    }
    conn->flags &= ~CONN_CONNECTING;
    conn->io.connecting = 0;
    stamp_activity(conn);
    ritual__conn_schedule(conn, deadline(conn));
    ritual__conn_update_interest(conn);
    if (conn->flags & (CONN_CLOSED | CONN_CLOSING))
        return; /* closed by the user before it connected: no on_open */
    if (conn->tls) {
        ritual__tls_connected(conn); /* on_open once the TLS handshake is done */
        return;
    }
    if ((conn->flags & CONN_SHUT_WR) && !conn->out_tail) {
        ritual__conn_send_fin(conn); /* shut before it connected, with nothing to say */
        if (conn->flags & CONN_CLOSED)
            return;
    }
    ritual__conn_opened(conn);
}

void ritual__conn_opened(ritual_conn *conn)
{
    if (cbs(conn)->on_open)
        cbs(conn)->on_open(conn);
    /* Opened during a drain: it is told like the others were. */
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
    if ((events & (RITUAL_IO_WRITE | RITUAL_IO_ERROR)) && conn->out_tail) {
        ritual__conn_flush(conn);
        if (conn->flags & CONN_CLOSED)
            return;
    }
    if (conn->flags & CONN_LINGERING) {
        if (events & (RITUAL_IO_READ | RITUAL_IO_ERROR))
            ritual__conn_linger_read(conn);
        return;
    }
    if ((events & RITUAL_IO_READ) && (conn->io.events & RITUAL_IO_READ))
        ritual__conn_read(conn);
    else if (events & RITUAL_IO_ERROR)
        socket_error(conn);
}

/* ------------------------------------------------------------- public API */

void ritual_conn_pause(ritual_conn *conn)
{
    conn->flags |= CONN_PAUSED;
    ritual__conn_update_interest(conn);
}

void ritual_conn_resume(ritual_conn *conn)
{
    if (!(conn->flags & CONN_PAUSED))
        return;
    conn->flags &= ~CONN_PAUSED;
    ritual__conn_update_interest(conn);
    if (has_held_input(conn) && !(conn->flags & (CONN_CLOSED | CONN_CLOSING | CONN_LINGERING))) {
        /* Hand the buffered input over again from the loop, not from inside
         * this call: the caller may be in the middle of anything. */
        conn->flags |= CONN_REDELIVER;
        /* Just after the iteration's clock, so that it runs in the next
         * iteration rather than again in the timer run under way. */
        ritual__conn_schedule(conn, conn_loop(conn)->now + 1);
    }
}

void ritual_conn_set_idle_timeout(ritual_conn *conn, uint64_t ms)
{
    conn->idle_ms = ms > RITUAL_TIMEOUT_MAX_MS ? RITUAL_TIMEOUT_MAX_MS : (uint32_t)ms;
    if (conn->flags & (CONN_CLOSED | CONN_CLOSING | CONN_LINGERING | CONN_CONNECTING))
        return; /* applies from on_open on */
    conn->last_active = tick_of(ritual__clock_ns());
    if (!(conn->flags & CONN_REDELIVER))
        ritual__conn_schedule(conn, deadline(conn));
}

void ritual_conn_set_data(ritual_conn *conn, void *data)
{
    conn->data = data;
}

int ritual_conn_set_callbacks(ritual_conn *conn, const ritual_conn_callbacks *callbacks)
{
    if (!callbacks || !callbacks->on_data)
        return -EINVAL;
    if (conn->flags & (CONN_CLOSED | CONN_CLOSING | CONN_LINGERING))
        return -EPIPE;
    struct ritual_conn_profile *own = (struct ritual_conn_profile *)conn->profile;
    if (own->listener && !own->own) {
        /* A listener's profile is shared: this connection gets a copy. The
         * listener's reference stays the connection's, as before. */
        own = malloc(sizeof *own);
        if (!own)
            return -ENOMEM;
        *own = *conn->profile;
        own->own = true;
        conn->profile = own;
    }
    own->cbs = *callbacks;
    return 0;
}

void *ritual_conn_data(const ritual_conn *conn)
{
    return conn->data;
}

size_t ritual_conn_write_queued(const ritual_conn *conn)
{
    size_t queued = (conn->flags & CONN_BACKED_UP) ? conn->out_len : 0;
    if (conn->flags & CONN_FILE_QUEUED) {
        const struct ritual_outq *q = conn->out_tail;
        do {
            q = q->next;
            if (ritual__outq_is_file(q)) {
                uint64_t left = ((const struct ritual_file_chunk *)q)->remaining;
                queued = left > SIZE_MAX - queued ? SIZE_MAX : queued + (size_t)left;
            }
        } while (q != conn->out_tail);
    }
    return queued;
}

int ritual_conn_write_blocked(const ritual_conn *conn)
{
    return (conn->flags & (CONN_OVER_HIGH | CONN_ABOVE_HIGH)) != 0;
}

size_t ritual_conn_input_held(const ritual_conn *conn)
{
    return in_len(conn) + (conn->tls ? ritual__tls_input_held(conn) : 0);
}

int ritual_conn_closing(const ritual_conn *conn)
{
    return (conn->flags & (CONN_CLOSING | CONN_LINGERING | CONN_CLOSED)) != 0;
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
    const struct ritual_proxy_peer *p = conn->proxy;
    if (p && !ritual__proxy_pending(conn)) {
        if (p->addr.sa.sa_family != AF_UNIX)
            return ritual__address_format(&p->addr.sa, buf, len);
        if (len < sizeof "unix:")
            return -ENOSPC;
        memcpy(buf, "unix:", sizeof "unix:");
        return 0;
    }
    return ritual_conn_socket_peer(conn, buf, len);
}

int ritual_conn_socket_peer(const ritual_conn *conn, char *buf, size_t len)
{
    struct sockaddr_storage addr;
    socklen_t addr_len = sizeof addr;
    if (conn->io.fd < 0)
        return -ENOTCONN;
    memset(&addr, 0, sizeof addr);
    if (getpeername(conn->io.fd, (struct sockaddr *)&addr, &addr_len) < 0)
        return -errno;
    if (addr.ss_family == AF_UNIX) {
        /* A client's socket is unnamed (or bound to a name that says
         * nothing about who it is): every unix peer is "unix:". */
        memset(&addr, 0, sizeof addr);
        addr.ss_family = AF_UNIX;
    }
    return ritual__address_format((struct sockaddr *)&addr, buf, len);
}

int ritual_conn_peer_cred(const ritual_conn *conn, pid_t *pid, uid_t *uid, gid_t *gid)
{
    if (!conn->profile->local)
        return -ENOTSUP;
    if (conn->io.fd < 0)
        return -ENOTCONN;
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(conn->io.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return -errno;
    if (pid)
        *pid = cred.pid;
    if (uid)
        *uid = cred.uid;
    if (gid)
        *gid = cred.gid;
    return 0;
}
