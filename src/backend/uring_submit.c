/* uring_submit.c - the io_uring backend's submission side: interest set
 * and forgotten, and the turn's walk that arms and cancels operations to
 * match it. See uring.h. */
#include "uring.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

/* Send headers can be reused once the kernel has taken every SQE. */
void ritual__uring_submitted(struct uring_state *st)
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
    ritual__uring_submitted(st);
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
    if ((events & RITUAL_IO_READ) && !(conn && ritual__io_receive_room(io) == 0))
        return GOAL_READ;
    if (conn && !(events & RITUAL_IO_QUIET) && !io->connecting)
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
bool ritual__uring_in_step(const struct ritual_io *io, unsigned events)
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
        prep_receive(st, sqe, io->fd, ritual__io_receive_room(io));
    } else if (io->kind == RITUAL_IO_LISTENER && io->accept_all) {
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
 * a wait for writability (outbound connect, file segment); any other
 * object's: a wait for writability. */
static int arm_write(struct uring_state *st, struct ritual_io *io)
{
    if (st->slots_used == SEND_SLOTS) {
        (void)io_uring_submit(&st->ring);
        ritual__uring_submitted(st);
    }
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return -EBUSY;
    struct send_slot *slot = &st->slots[st->slots_used];
    bool more = false;
    int n = io->kind != RITUAL_IO_CONN || io->connecting || (io->busy & RITUAL_BUSY_WAIT_OUT) ||
                    st->slots_used == SEND_SLOTS
                ? 0
                : ritual__io_output_iov(io, slot->iov, SEND_IOV, &more);
    io->busy &= (uint8_t)~RITUAL_BUSY_WAIT_OUT;
    if (n == 0) {
        io_uring_prep_poll_add(sqe, io->fd, POLLOUT);
    } else {
        /* Headers before a file: one packet with the file's first bytes. */
        int flags = MSG_NOSIGNAL | (more ? MSG_MORE : 0);
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

void ritual__uring_mark_dirty(ritual_loop *loop, struct ritual_io *io)
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
void ritual__uring_prepare(ritual_loop *loop, bool arm)
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

int ritual__uring_set(ritual_loop *loop, struct ritual_io *io, unsigned events)
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
    if (!ritual__uring_in_step(io, events))
        ritual__uring_mark_dirty(loop, io);
    return 0;
}

void ritual__uring_forget(ritual_loop *loop, struct ritual_io *io)
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
        ritual__uring_submitted(st);
    }
    /* Cancel by user_data: the descriptor may be closed and reused before
     * the SQE is submitted, its address not. (If the SQ is full, the walk
     * cancels.) */
    (void)cancel_all(st, io);
    ritual__uring_mark_dirty(loop, io); /* released by the walk once nothing is in flight */
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
        ritual__uring_submitted(st);
    }
}
