/* uring_complete.c - the io_uring backend's turn: submit and wait, then
 * hand each completion to the core; and the ops table. See uring.h. */
#include "uring.h"

#include <errno.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A poll's result as readiness: `base`, with ERROR for an error or a
 * hang-up (or a failed poll). */
static unsigned poll_events(int res, unsigned base)
{
    if (res < 0)
        return base | RITUAL_IO_ERROR;
    return base | ((res & (POLLERR | POLLHUP)) ? RITUAL_IO_ERROR : 0u);
}

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
            ritual__io_received(io, data, res);
        if (!(flags & IORING_CQE_F_BUF_MORE)) { /* the kernel is done with it */
            if (st->incremental)
                st->buf_used[bid] = 0;
            ritual__uring_give_back(st, bid);
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
            ritual__io_received(io, NULL, res);
        }
        break;
    case RITUAL_IO_LISTENER:
        if (io->accept_all)
            ritual__io_accepted(io, res);
        else if (io->registered)
            ritual__io_ready(loop, io, RITUAL_IO_READ);
        break;
    default:
        if (io->registered)
            ritual__io_ready(loop, io, poll_events(res, RITUAL_IO_READ));
        break;
    }
}

static void write_done(ritual_loop *loop, struct ritual_io *io, int res, bool was_send)
{
    if (!io->registered)
        return;
    if (was_send && (res == -EAGAIN || res == -EINTR)) {
        /* Seen with a send behind a large partial one on a non-blocking
         * socket: nothing went; the next attempt waits for writability
         * (and then sends from here, as epoll would). */
        io->busy |= RITUAL_BUSY_WAIT_OUT;
        ritual__io_sent(io, -EAGAIN);
        return;
    }
    if (was_send)
        ritual__io_sent(io, res);
    else if (res != -ECANCELED)
        ritual__io_ready(loop, io, poll_events(res, RITUAL_IO_WRITE));
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
    if (!ritual__uring_in_step(io, io->events))
        ritual__uring_mark_dirty(loop, io);
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
            ritual__io_ready(loop, io, RITUAL_IO_ERROR);
    } else {
        bool was_send = io->busy & RITUAL_BUSY_SEND;
        io->busy &= (uint8_t) ~(RITUAL_BUSY_WRITE | RITUAL_BUSY_WRITE_CANCEL | RITUAL_BUSY_SEND);
        st->inflight--;
        write_done(loop, io, res, was_send);
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
            ritual__uring_add_buffers(st, st->buf_count);
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
    ritual__uring_submitted(st);
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
    ritual__uring_prepare(loop, true);
    struct __kernel_timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    int rc = submit_and_wait(st, tsp);
    ritual__loop_woke(loop);
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
        ritual__uring_submitted(st);
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
        ritual__uring_prepare(loop, false);
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
        if (submit_and_wait(st, &ts) < 0)
            break; /* EEXIST: another thread */
        dispatch(loop);
    }
    ritual__uring_prepare(loop, false);
    ritual__io_release_all(loop);
}

const struct ritual_backend_ops ritual__backend_uring = {
    .name = "io_uring",
    .init = ritual__uring_init,
    .destroy = ritual__uring_destroy,
    .set = ritual__uring_set,
    .forget = ritual__uring_forget,
    .poll = uring_poll,
    .drain = uring_drain,
    .flush = uring_flush,
    .completion = true,
};
