/* uring.c - the io_uring backend (liburing), a completion backend: the
 * kernel receives into buffers the loop provides and sends the output queue
 * itself, and one io_uring_enter per loop turn submits the turn's work and
 * waits for the next.
 *
 * - Receiving: one multishot recv per connection, taking buffers from a
 *   provided buffer ring, so an idle connection holds no buffer. on_data
 *   reads the bytes where the kernel put them; the buffer goes back to the
 *   ring as soon as the callback returns.
 * - Sending: the memory chunks at the head of the output queue, one send in
 *   flight per connection (sends on one socket are not ordered among
 *   themselves); a short send sends the rest next turn. (A write of 16 KiB
 *   or more with nothing queued is sent at once instead: conn_write.c.)
 *   sendfile has no io_uring operation: a file segment waits for
 *   writability (a poll) and goes out with sendfile as on epoll.
 * - Accepting: one multishot accept per listener without max_conns; with a
 *   cap, a poll and accept4, so that no connection is taken beyond it.
 * - Signals and the cross-thread wakeup: a poll on their descriptors.
 * - Timers: the wait's timeout (IORING_ENTER_EXT_ARG).
 *
 * Nothing is prepared for the kernel when it is asked for: set() marks the
 * object dirty and the turn's walk, just before io_uring_enter, arms or
 * cancels what its interest now wants. So every SQE names a descriptor that
 * is open at submission, and a connection closed in the same turn costs
 * nothing. Closing cancels what is in flight; the object is not freed until
 * its last completion (io->busy). A multishot operation that ends (no
 * IORING_CQE_F_MORE: an error, a full CQ, an empty buffer ring) is re-armed
 * by the walk if it is still wanted.
 *
 * Empty buffer ring (-ENOBUFS): the ring grows (doubling, up to BUF_MAX
 * buffers) and the receive is re-armed next turn; at BUF_MAX the data waits
 * in the socket, and TCP flow control pushes back on the peer. */
#include "../internal.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Incremental buffer consumption (Linux 6.12): many small receives share one
 * buffer, each placed after the last, so the memory a burst of small
 * messages touches is what they hold, not a buffer apiece. liburing 2.3
 * predates it; older kernels refuse the flag and get whole buffers. */
#ifndef IOU_PBUF_RING_INC
#define IOU_PBUF_RING_INC 2
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4) /* the buffer stays the kernel's: more goes into it */
#endif

#define SQ_ENTRIES 256 /* a fuller turn submits mid-walk; the SQEs' pages stay few */
/* Room for a turn's completions: 1,000 connections pipelined 16 deep
 * overflowed 4,096, and an overflow ends every multishot receive. Pages
 * are touched only as the CQ fills. */
#define CQ_ENTRIES 16384
#define BUF_SIZE (16 * 1024)
#define BUF_INITIAL 256 /* 4 MiB of buffers, touched only as they are used */
#define BUF_MAX 4096    /* the ring's capacity: 64 MiB of address space, reserved */
#define BGID 0
#define SEND_IOV 16    /* chunks per sendmsg */
#define SEND_SLOTS 64  /* sendmsg headers prepared between two submissions */
#define DRAIN_TURNS 50 /* of up to 20 ms each, waiting for cancellations at free */

enum { OP_READ = 1, OP_WRITE = 2 }; /* in the low bits of user_data; 0 is a cancel */

/* A sendmsg's header, read by the kernel when the SQE is submitted
 * (IORING_FEAT_SUBMIT_STABLE), so the slots are reused after each submit. */
struct send_slot {
    struct msghdr msg;
    struct iovec iov[SEND_IOV];
};

struct uring_state {
    struct io_uring ring;
    bool enabled;      /* the ring starts disabled; the thread that runs the loop enables it */
    bool running;      /* inside ritual_loop_run */
    bool arms_pending; /* SQEs naming descriptors wait in the SQ, not yet submitted */
    struct io_uring_buf_ring *br;
    char *bufs;
    uint32_t buf_count; /* buffers given to the ring so far */
    bool incremental;   /* IOU_PBUF_RING_INC: buffers are filled a piece at a time */
    uint32_t *buf_used; /* per buffer: bytes the kernel has filled so far */
    uint32_t returned;  /* given back this turn, not yet published */
    bool ran_dry;       /* a receive found the ring empty this turn */
    bool no_recv_limit; /* the kernel refused a multishot receive's byte limit */
    uint32_t inflight;  /* operations in the kernel */
    struct ritual_io **dirty;
    uint32_t dirty_len, dirty_cap;
    unsigned slots_used;
    struct send_slot slots[SEND_SLOTS];
};

static struct uring_state *state(ritual_loop *loop)
{
    return loop->backend_data;
}

/* ------------------------------------------------------------------ setup */

static void uring_destroy(ritual_loop *loop)
{
    struct uring_state *st = state(loop);
    if (!st)
        return;
    io_uring_queue_exit(&st->ring);
    if (st->br)
        munmap(st->br, BUF_MAX * sizeof(struct io_uring_buf));
    if (st->bufs)
        munmap(st->bufs, (size_t)BUF_MAX * BUF_SIZE);
    free(st->dirty);
    free(st->buf_used);
    free(st);
    loop->backend_data = NULL;
}

static void give_back(struct uring_state *st, unsigned bid)
{
    io_uring_buf_ring_add(st->br, st->bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(BUF_MAX), (int)st->returned++);
}

static void add_buffers(struct uring_state *st, uint32_t count)
{
    while (count-- > 0 && st->buf_count < BUF_MAX)
        give_back(st, st->buf_count++);
}

static int setup_ring(struct uring_state *st)
{
    /* DEFER_TASKRUN (6.1) runs completions only inside io_uring_enter, in
     * batches; SINGLE_ISSUER (6.0) is its precondition and also what marks a
     * kernel with multishot recv. R_DISABLED: the loop's thread, not the
     * one creating it, becomes the single issuer. */
    unsigned base = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_R_DISABLED | IORING_SETUP_CQSIZE |
                    IORING_SETUP_SUBMIT_ALL;
    struct io_uring_params p = {.flags = base | IORING_SETUP_DEFER_TASKRUN,
                                .cq_entries = CQ_ENTRIES};
    int rc = io_uring_queue_init_params(SQ_ENTRIES, &st->ring, &p);
    if (rc == -EINVAL) {
        p = (struct io_uring_params){.flags = base | IORING_SETUP_COOP_TASKRUN,
                                     .cq_entries = CQ_ENTRIES};
        rc = io_uring_queue_init_params(SQ_ENTRIES, &st->ring, &p);
    }
    if (rc < 0)
        return rc == -EINVAL ? -ENOSYS : rc; /* EINVAL: older than 6.0 */
    unsigned need = IORING_FEAT_NODROP | IORING_FEAT_SUBMIT_STABLE | IORING_FEAT_EXT_ARG |
                    IORING_FEAT_FAST_POLL;
    if ((p.features & need) != need) {
        io_uring_queue_exit(&st->ring);
        return -ENOSYS;
    }
    return 0;
}

static int uring_init(ritual_loop *loop)
{
    /* For tests: behave as a kernel that refuses io_uring. */
    const char *fail = getenv("RITUAL_URING_FAIL");
    if (fail && *fail && strcmp(fail, "0") != 0)
        return -ENOSYS;
    struct uring_state *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    int rc = setup_ring(st);
    if (rc < 0) {
        free(st);
        return rc;
    }
    loop->backend_data = st;
    st->br = mmap(NULL, BUF_MAX * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    st->bufs = mmap(NULL, (size_t)BUF_MAX * BUF_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (st->br == MAP_FAILED || st->bufs == MAP_FAILED) {
        rc = -errno;
        if (st->br == MAP_FAILED)
            st->br = NULL;
        if (st->bufs == MAP_FAILED)
            st->bufs = NULL;
        uring_destroy(loop);
        return rc;
    }
    struct io_uring_buf_reg reg = {
        .ring_addr = (uintptr_t)st->br, .ring_entries = BUF_MAX, .bgid = BGID};
    /* The 16 bits after bgid are `pad` in liburing 2.3 and `flags` later. */
    uint16_t flags = IOU_PBUF_RING_INC;
    memcpy((char *)&reg + offsetof(struct io_uring_buf_reg, bgid) + sizeof reg.bgid, &flags,
           sizeof flags);
    rc = io_uring_register_buf_ring(&st->ring, &reg, 0);
    st->incremental = rc == 0;
    if (rc == -EINVAL) {
        flags = 0;
        memcpy((char *)&reg + offsetof(struct io_uring_buf_reg, bgid) + sizeof reg.bgid, &flags,
               sizeof flags);
        rc = io_uring_register_buf_ring(&st->ring, &reg, 0);
    }
    if (rc == 0 && st->incremental && !(st->buf_used = calloc(BUF_MAX, sizeof *st->buf_used)))
        rc = -ENOMEM;
    if (rc < 0) {
        uring_destroy(loop);
        return rc;
    }
    io_uring_buf_ring_init(st->br);
    add_buffers(st, BUF_INITIAL);
    io_uring_buf_ring_advance(st->br, (int)st->returned);
    st->returned = 0;
    return 0;
}

/* ------------------------------------------------------------- submission */

/* Send headers can be reused once the kernel has taken every SQE. */
static void submitted(struct uring_state *st)
{
    if (io_uring_sq_ready(&st->ring) == 0) {
        st->slots_used = 0;
        st->arms_pending = false;
    }
}

/* The next free SQE, or NULL if the SQ is full and submitting does not
 * empty it (-EBUSY: completions wait for room in the CQ, which only this
 * turn's dispatch makes); the caller then tries again next turn. */
static struct io_uring_sqe *get_sqe(struct uring_state *st)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&st->ring);
    if (sqe)
        return sqe;
    (void)io_uring_submit(&st->ring);
    submitted(st);
    return io_uring_get_sqe(&st->ring);
}

static void tag(struct io_uring_sqe *sqe, struct ritual_io *io, unsigned op)
{
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)io | op);
}

/* What the read side of an object should have in the kernel. A connection
 * that is not reading (paused, over the high watermark, half-closed) still
 * watches for errors, as epoll reports them for any registered socket: a
 * multishot poll, which posts once now (a half-closed socket is always
 * RDHUP-ready) and then once per wake-up of the socket, so it cannot spin. */
enum { GOAL_NONE, GOAL_READ, GOAL_WATCH };

static int read_goal(const struct ritual_io *io, unsigned events)
{
    if (!io->registered)
        return GOAL_NONE;
    bool conn = io->kind == RITUAL_IO_CONN;
    if ((events & RITUAL_IO_READ) &&
        !(conn && ritual__conn_receive_room(ritual_container_of(io, ritual_conn, io)) == 0))
        return GOAL_READ;
    if (conn && !(events & RITUAL_IO_QUIET) &&
        !(ritual_container_of(io, ritual_conn, io)->flags & (CONN_CONNECTING | CONN_CLOSED)))
        return GOAL_WATCH;
    return GOAL_NONE;
}

static int read_state(const struct ritual_io *io)
{
    if (!(io->busy & RITUAL_BUSY_READ))
        return GOAL_NONE;
    return (io->busy & RITUAL_BUSY_WATCH) ? GOAL_WATCH : GOAL_READ;
}

/* Whether the kernel's operations for `io` match `events` (io->events is
 * updated by the caller once this returns). */
static bool in_step(const struct ritual_io *io, unsigned events)
{
    return read_goal(io, events) == read_state(io) &&
           !!(events & RITUAL_IO_WRITE) == !!(io->busy & RITUAL_BUSY_WRITE);
}

/* A connection's receive, for at most `room` bytes so that what it holds
 * stays within read_buffer_size, as a read of that size would on epoll: a
 * multishot receive that ends by itself (no IORING_CQE_F_MORE) once the
 * kernel has received its byte limit (Linux 6.17; the limit is counted
 * before a receive, which may then fill a whole buffer, hence BUF_SIZE
 * less), or, where that does not fit or the kernel lacks the limit, one
 * receive of at most `room` bytes. Either is re-armed by the walk. */
static void prep_receive(struct uring_state *st, struct io_uring_sqe *sqe, int fd, size_t room)
{
    if (room > BUF_SIZE && !st->no_recv_limit) {
        io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
        size_t limit = room - BUF_SIZE;
        sqe->file_index = limit > UINT32_MAX ? UINT32_MAX : (uint32_t)limit; /* optlen */
    } else {
        io_uring_prep_recv(sqe, fd, NULL, room > BUF_SIZE ? BUF_SIZE : room, 0);
    }
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
}

static int arm_read(struct uring_state *st, struct ritual_io *io, int goal)
{
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return -EBUSY;
    if (goal == GOAL_WATCH) {
        io_uring_prep_poll_multishot(sqe, io->fd, 0); /* errors and hang-ups only */
        io->busy |= RITUAL_BUSY_WATCH;
    } else if (io->kind == RITUAL_IO_CONN) {
        prep_receive(st, sqe, io->fd,
                     ritual__conn_receive_room(ritual_container_of(io, ritual_conn, io)));
    } else if (io->kind == RITUAL_IO_LISTENER &&
               ritual_container_of(io, ritual_listener, io)->max_conns == 0) {
        io_uring_prep_multishot_accept(sqe, io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } else {
        io_uring_prep_poll_add(sqe, io->fd, POLLIN);
    }
    tag(sqe, io, OP_READ);
    st->arms_pending = true;
    io->busy |= RITUAL_BUSY_READ;
    st->inflight++;
    return 0;
}

/* A connection's write side: the memory chunks at the head of its queue, or
 * a wait for writability (outbound connect, file segment). */
static int arm_write(struct uring_state *st, struct ritual_io *io)
{
    ritual_conn *conn = ritual_container_of(io, ritual_conn, io);
    if (st->slots_used == SEND_SLOTS) {
        (void)io_uring_submit(&st->ring);
        submitted(st);
    }
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return -EBUSY;
    struct send_slot *slot = &st->slots[st->slots_used];
    int n = (conn->flags & CONN_CONNECTING) || (io->busy & RITUAL_BUSY_WAIT_OUT) ||
                    st->slots_used == SEND_SLOTS
                ? 0
                : ritual__conn_output_iov(conn, slot->iov, SEND_IOV);
    io->busy &= (uint8_t)~RITUAL_BUSY_WAIT_OUT;
    if (n == 0) {
        io_uring_prep_poll_add(sqe, io->fd, POLLOUT);
    } else {
        /* Headers before a file: one packet with the file's first bytes. */
        int flags = MSG_NOSIGNAL | ((conn->flags & CONN_FILE_QUEUED) ? MSG_MORE : 0);
        if (n == 1) {
            io_uring_prep_send(sqe, io->fd, slot->iov[0].iov_base, slot->iov[0].iov_len, flags);
        } else {
            slot->msg = (struct msghdr){.msg_iov = slot->iov, .msg_iovlen = (size_t)n};
            io_uring_prep_sendmsg(sqe, io->fd, &slot->msg, (unsigned)flags);
            st->slots_used++;
        }
        io->busy |= RITUAL_BUSY_SEND;
    }
    tag(sqe, io, OP_WRITE);
    st->arms_pending = true;
    io->busy |= RITUAL_BUSY_WRITE;
    st->inflight++;
    return 0;
}

static int cancel(struct uring_state *st, struct ritual_io *io, unsigned op)
{
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)io | op, 0);
    io_uring_sqe_set_data64(sqe, 0);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io->busy |= op == OP_READ ? RITUAL_BUSY_READ_CANCEL : RITUAL_BUSY_WRITE_CANCEL;
    return 0;
}

/* Cancels what is in flight for a closed object (not yet cancelled). */
static int cancel_all(struct uring_state *st, struct ritual_io *io)
{
    if ((io->busy & RITUAL_BUSY_READ) && !(io->busy & RITUAL_BUSY_READ_CANCEL) &&
        cancel(st, io, OP_READ) < 0)
        return -EBUSY;
    if ((io->busy & RITUAL_BUSY_WRITE) && !(io->busy & RITUAL_BUSY_WRITE_CANCEL) &&
        cancel(st, io, OP_WRITE) < 0)
        return -EBUSY;
    return 0;
}

static int grow_dirty(struct uring_state *st, uint32_t need)
{
    if (need <= st->dirty_cap)
        return 0;
    uint32_t cap = st->dirty_cap ? st->dirty_cap : 64;
    while (cap < need)
        cap *= 2;
    struct ritual_io **d = realloc(st->dirty, cap * sizeof *d);
    if (!d)
        return -ENOMEM;
    st->dirty = d;
    st->dirty_cap = cap;
    return 0;
}

static void mark_dirty(ritual_loop *loop, struct ritual_io *io)
{
    struct uring_state *st = state(loop);
    if (io->busy & RITUAL_BUSY_DIRTY)
        return;
    if (st->dirty_len == st->dirty_cap && grow_dirty(st, st->dirty_len + 1) < 0) {
        ritual_log(loop, RITUAL_LOG_ERROR, "io_uring: out of memory for the dirty list");
        return;
    }
    io->busy |= RITUAL_BUSY_DIRTY;
    st->dirty[st->dirty_len++] = io;
}

/* The turn's walk: arm or cancel what each dirty object's interest wants;
 * hand back closed objects the kernel holds nothing of. */
static int visit(ritual_loop *loop, struct ritual_io *io, bool arm)
{
    struct uring_state *st = state(loop);
    io->busy &= (uint8_t)~RITUAL_BUSY_DIRTY;
    if (!io->registered) {
        if (cancel_all(st, io) < 0)
            goto again;
        if (!io->busy)
            ritual__io_released(loop, io);
        return 0;
    }
    if (!arm)
        return 0;
    unsigned want = io->events, busy = io->busy;
    int goal = read_goal(io, want), now = read_state(io);
    if (now == GOAL_NONE && goal != GOAL_NONE) {
        if (arm_read(st, io, goal) < 0)
            goto again;
    } else if (now != goal && !(busy & RITUAL_BUSY_READ_CANCEL)) {
        if (cancel(st, io, OP_READ) < 0) /* then the goal, once its last completion is in */
            goto again;
    }
    if ((want & RITUAL_IO_WRITE) && !(busy & RITUAL_BUSY_WRITE)) {
        if (arm_write(st, io) < 0)
            goto again;
    } else if (!(want & RITUAL_IO_WRITE) && (busy & RITUAL_BUSY_WRITE) &&
               !(busy & (RITUAL_BUSY_WRITE_CANCEL | RITUAL_BUSY_SEND))) {
        if (cancel(st, io, OP_WRITE) < 0) /* a wait for writability no longer wanted */
            goto again;
    }
    return 0;
again:
    io->busy |= RITUAL_BUSY_DIRTY;
    return -EBUSY;
}

/* The turn's walk: arm or cancel what each dirty object's interest wants;
 * hand back closed objects the kernel holds nothing of. If the SQ cannot
 * take more, the rest of the list waits for the next turn. */
static void prepare(ritual_loop *loop, bool arm)
{
    struct uring_state *st = state(loop);
    uint32_t i = 0;
    for (; i < st->dirty_len; i++) {
        struct ritual_io *io = st->dirty[i];
        if (!(io->busy & RITUAL_BUSY_DIRTY))
            continue; /* a recycled connection (its busy bits were reset) */
        if (visit(loop, io, arm) < 0)
            break;
    }
    st->dirty_len -= i;
    memmove(st->dirty, st->dirty + i, st->dirty_len * sizeof *st->dirty);
}

/* ------------------------------------------------------------ operations */

static int uring_set(ritual_loop *loop, struct ritual_io *io, unsigned events)
{
    struct uring_state *st = state(loop);
    /* The dirty list grows here, where running out of memory fails one
     * object cleanly, rather than mid-turn. It holds what changes in one
     * turn, not every object: idle connections cost it nothing. */
    if (grow_dirty(st, st->dirty_len + 1) < 0)
        return -ENOMEM;
    io->registered = 1;
    /* An echo's output queue empties as its send completes: WRITE goes,
     * with nothing to cancel, and costs no visit from the walk. */
    if (!in_step(io, events))
        mark_dirty(loop, io);
    return 0;
}

static void uring_forget(ritual_loop *loop, struct ritual_io *io)
{
    struct uring_state *st = state(loop);
    if (!io->registered)
        return;
    io->registered = 0;
    io->busy &= (uint8_t)~RITUAL_BUSY_WAIT_OUT; /* a hint for the next send: none will come */
    if (st->arms_pending) {
        /* A submit that could not take everything (-EBUSY) left SQEs that
         * name descriptors: they must reach the kernel before this one is
         * closed and its number reused. */
        (void)io_uring_submit(&st->ring);
        submitted(st);
    }
    /* Cancel by user_data: the descriptor may be closed and reused before
     * the SQE is submitted, its address not. (If the SQ is full, the walk
     * cancels.) */
    (void)cancel_all(st, io);
    mark_dirty(loop, io); /* released by the walk once nothing is in flight */
    if ((!st->running || io->kind == RITUAL_IO_LISTENER) && st->enabled &&
        (io->busy & (RITUAL_BUSY_READ | RITUAL_BUSY_WRITE))) {
        /* The kernel's operations keep the socket alive (listening, or
         * unreset) until cancelled. A listener must stop listening when the
         * caller closes it, as on epoll, or clients that connect meanwhile
         * are queued and then reset; so must anything closed while the loop
         * is not running. So cancel now rather than at the next turn. From
         * another thread than the loop's this fails (EEXIST); then the next
         * run or ritual_loop_free does it. */
        (void)io_uring_submit_and_get_events(&st->ring);
        submitted(st);
    }
}

/* ------------------------------------------------------------ completions */

static void read_done(struct uring_state *st, ritual_loop *loop, struct ritual_io *io, int res,
                      unsigned flags)
{
    if (flags & IORING_CQE_F_BUFFER) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        char *data = st->bufs + (size_t)bid * BUF_SIZE;
        if (st->incremental) {
            /* This piece follows the ones before it in the buffer. */
            data += st->buf_used[bid];
            st->buf_used[bid] += res > 0 ? (uint32_t)res : 0;
        }
        if (io->kind == RITUAL_IO_CONN && res > 0)
            ritual__conn_received(ritual_container_of(io, ritual_conn, io), data, res);
        if (!(flags & IORING_CQE_F_BUF_MORE)) { /* the kernel is done with it */
            if (st->incremental)
                st->buf_used[bid] = 0;
            give_back(st, bid);
        }
        return;
    }
    if (res == -ECANCELED)
        return;
    switch (io->kind) {
    case RITUAL_IO_CONN:
        if (res == -ENOBUFS) {
            st->ran_dry = true; /* re-armed by the walk, after the ring grows */
        } else if (res == -EINVAL && !st->no_recv_limit) {
            /* A kernel before the multishot byte limit: from now on every
             * receive is a single one of at most the room left. */
            st->no_recv_limit = true;
            ritual_log(loop, RITUAL_LOG_DEBUG,
                       "io_uring: no byte limit on multishot receives: receiving one at a time");
        } else {
            ritual__conn_received(ritual_container_of(io, ritual_conn, io), NULL, res);
        }
        break;
    case RITUAL_IO_LISTENER: {
        ritual_listener *l = ritual_container_of(io, ritual_listener, io);
        if (l->max_conns == 0)
            ritual__listener_accepted(l, res);
        else if (!l->closed)
            ritual__listener_ready(l, RITUAL_IO_READ);
        break;
    }
    default:
        if (io->registered)
            ritual__io_ready(loop, io, RITUAL_IO_READ);
        break;
    }
}

static void write_done(ritual_conn *conn, int res, bool was_send)
{
    if (conn->flags & CONN_CLOSED)
        return;
    if (was_send && (res == -EAGAIN || res == -EINTR)) {
        /* Seen with a send behind a large partial one on a non-blocking
         * socket: nothing went; the next attempt waits for writability
         * (and then sends from here, as epoll would). */
        conn->io.busy |= RITUAL_BUSY_WAIT_OUT;
        ritual__conn_sent(conn, -EAGAIN);
        return;
    }
    if (was_send) {
        ritual__conn_sent(conn, res);
    } else if (res != -ECANCELED) {
        bool error = res < 0 || (res & (POLLERR | POLLHUP));
        ritual__conn_ready(conn, RITUAL_IO_WRITE | (error ? RITUAL_IO_ERROR : 0u));
    }
}

/* After a completion: does the object's interest still match what is in
 * flight? If not, the walk sees to it. */
static void settle(ritual_loop *loop, struct ritual_io *io)
{
    if (!io->registered) {
        if (!io->busy)
            ritual__io_released(loop, io);
        return;
    }
    if (!in_step(io, io->events))
        mark_dirty(loop, io);
}

static void complete(ritual_loop *loop, uint64_t user_data, int res, unsigned flags)
{
    struct uring_state *st = state(loop);
    if (user_data == 0)
        return; /* a cancel that found nothing: the operation had ended */
    struct ritual_io *io = (struct ritual_io *)(uintptr_t)(user_data & ~(uint64_t)7);
    if ((user_data & 7) == OP_READ) {
        bool watch = io->busy & RITUAL_BUSY_WATCH;
        if (!(flags & IORING_CQE_F_MORE)) {
            io->busy &= (uint8_t) ~(RITUAL_BUSY_READ | RITUAL_BUSY_READ_CANCEL | RITUAL_BUSY_WATCH);
            st->inflight--;
        }
        if (!watch)
            read_done(st, loop, io, res, flags);
        else if (res > 0 && (res & (POLLERR | POLLHUP)) && io->registered)
            ritual__conn_ready(ritual_container_of(io, ritual_conn, io), RITUAL_IO_ERROR);
    } else {
        bool was_send = io->busy & RITUAL_BUSY_SEND;
        io->busy &= (uint8_t) ~(RITUAL_BUSY_WRITE | RITUAL_BUSY_WRITE_CANCEL | RITUAL_BUSY_SEND);
        st->inflight--;
        write_done(ritual_container_of(io, ritual_conn, io), res, was_send);
    }
    settle(loop, io);
}

/* Handles every completion waiting, then publishes the buffers given back. */
static void dispatch(ritual_loop *loop)
{
    struct uring_state *st = state(loop);
    /* Bounded: without DEFER_TASKRUN the kernel may keep adding. */
    for (unsigned n = 0; n < 2 * CQ_ENTRIES; n++) {
        struct io_uring_cqe *cqe;
        if (io_uring_peek_cqe(&st->ring, &cqe) != 0)
            break;
        uint64_t user_data = cqe->user_data;
        int res = cqe->res;
        unsigned flags = cqe->flags;
        io_uring_cqe_seen(&st->ring, cqe);
        complete(loop, user_data, res, flags);
    }
    if (st->ran_dry) {
        st->ran_dry = false;
        if (st->buf_count < BUF_MAX) {
            add_buffers(st, st->buf_count);
            ritual_log(loop, RITUAL_LOG_DEBUG, "io_uring: the buffer ring ran dry: %u buffers now",
                       (unsigned)st->buf_count);
        }
    }
    if (st->returned) {
        io_uring_buf_ring_advance(st->br, (int)st->returned);
        st->returned = 0;
    }
}

/* Submits what is queued and waits for a completion, up to `ts` (NULL:
 * no limit). Returns 0, or the negative errno of a ring that cannot go on.
 * Not errors: ETIME (the timeout passed), EINTR, and EBUSY/EAGAIN
 * (completions wait for CQ room, which the dispatch that follows makes). */
static int submit_and_wait(struct uring_state *st, struct __kernel_timespec *ts)
{
    struct io_uring_cqe *cqe;
    int rc = io_uring_submit_and_wait_timeout(&st->ring, &cqe, 1, ts, NULL);
    submitted(st);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
        return rc;
    return 0;
}

static int uring_poll(ritual_loop *loop, int64_t timeout_ns)
{
    struct uring_state *st = state(loop);
    if (!st->enabled) {
        /* io_uring_enable_rings is declared by liburing 2.3 but not
         * exported: the system call itself. */
        if (syscall(__NR_io_uring_register, st->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL,
                    0) < 0)
            return -errno;
        st->enabled = true;
    }
    st->running = true;
    prepare(loop, true);
    struct __kernel_timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    int rc = submit_and_wait(st, tsp);
    loop->now = ritual__clock_ns();
    if (rc < 0)
        return rc;
    dispatch(loop);
    return 0;
}

static void uring_flush(ritual_loop *loop)
{
    struct uring_state *st = state(loop);
    st->running = false;
    if (st->enabled) {
        /* Run the completions too: with DEFER_TASKRUN a cancellation ends
         * (and the listening socket is let go) only then. */
        (void)io_uring_submit_and_get_events(&st->ring);
        submitted(st);
    }
}

/* The loop is being freed: every connection and listener is closed and its
 * cancellations queued. Wait for the kernel to finish with them, so no send
 * still reads a chunk and no completion names a freed object. If this is
 * not the thread that ran the loop (a server's worker that has exited),
 * the ring refuses this thread (EEXIST) and only completions already posted
 * can be read: what is still held is let go regardless. That is safe with
 * DEFER_TASKRUN: an operation of a ring whose issuer has exited can no
 * longer run, and io_uring_queue_exit in destroy tears them down. */
static void uring_drain(ritual_loop *loop)
{
    struct uring_state *st = state(loop);
    dispatch(loop);
    for (int turn = 0; turn < DRAIN_TURNS && st->inflight > 0 && st->enabled; turn++) {
        prepare(loop, false);
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
        if (submit_and_wait(st, &ts) < 0)
            break; /* EEXIST: another thread */
        dispatch(loop);
    }
    prepare(loop, false);
    while (!ritual_list_empty(&loop->zombie_conns)) {
        ritual_conn *conn = ritual_container_of(loop->zombie_conns.next, ritual_conn, link);
        conn->io.busy = 0;
        ritual__conn_released(conn);
    }
    /* The last connections let go of their listeners just now. */
    ritual__listeners_reap(loop);
    while (!ritual_list_empty(&loop->zombie_listeners)) {
        ritual_listener *l =
            ritual_container_of(loop->zombie_listeners.next, ritual_listener, link);
        l->io.busy = 0;
        ritual__listener_released(l);
    }
}

const struct ritual_backend_ops ritual__backend_uring = {
    .name = "io_uring",
    .init = uring_init,
    .destroy = uring_destroy,
    .set = uring_set,
    .forget = uring_forget,
    .poll = uring_poll,
    .drain = uring_drain,
    .flush = uring_flush,
    .completion = true,
};
