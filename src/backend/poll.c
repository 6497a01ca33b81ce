/* poll.c - the portable backend: ppoll(2) over a dense array of pollfd,
 * for kernels or sandboxes that allow neither epoll nor io_uring, and as a
 * reference the others are tested against. O(n) per wait, so it is meant
 * for correctness, not for ten thousand connections.
 *
 * Like epoll here it is level-triggered, and an fd with no interest stays
 * in the array: poll reports errors and hang-ups whatever it asked for. */
#include "backend.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

struct poll_state {
    struct pollfd *pfds; /* dense, in no order */
    struct ritual_io **ios;
    size_t n, cap;
    unsigned *slot; /* by fd: index in pfds plus one; 0 when absent */
    size_t slot_cap;
    /* What one wait found, dispatched after it: an entry forgotten while
     * dispatching (its fd closed) is cleared so it is not reported. */
    struct ritual_io **ready;
    unsigned *ready_events;
    size_t nready;
};

static int poll_init(ritual_loop *loop)
{
    struct poll_state *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    ritual__backend_set_state(loop, st);
    return 0;
}

static void poll_destroy(ritual_loop *loop)
{
    struct poll_state *st = ritual__backend_state(loop);
    if (!st)
        return;
    free(st->pfds);
    free(st->ios);
    free(st->slot);
    free(st->ready);
    free(st->ready_events);
    free(st);
    ritual__backend_set_state(loop, NULL);
}

static short to_poll(unsigned events)
{
    return (short)(((events & RITUAL_IO_READ) ? POLLIN : 0) |
                   ((events & RITUAL_IO_WRITE) ? POLLOUT : 0));
}

/* Room for one more entry, and a slot for `fd`. Returns 0 or -ENOMEM. */
static int grow(struct poll_state *st, int fd)
{
    if ((size_t)fd >= st->slot_cap) {
        size_t cap = st->slot_cap ? st->slot_cap : 64;
        while (cap <= (size_t)fd)
            cap *= 2;
        unsigned *slot = realloc(st->slot, cap * sizeof *slot);
        if (!slot)
            return -ENOMEM;
        memset(slot + st->slot_cap, 0, (cap - st->slot_cap) * sizeof *slot);
        st->slot = slot;
        st->slot_cap = cap;
    }
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 64;
        struct pollfd *pfds = realloc(st->pfds, cap * sizeof *pfds);
        if (pfds)
            st->pfds = pfds;
        struct ritual_io **ios = pfds ? realloc(st->ios, cap * sizeof *ios) : NULL;
        if (ios)
            st->ios = ios;
        struct ritual_io **ready = ios ? realloc(st->ready, cap * sizeof *ready) : NULL;
        if (ready)
            st->ready = ready;
        unsigned *ready_events =
            ready ? realloc(st->ready_events, cap * sizeof *ready_events) : NULL;
        if (!ready_events)
            return -ENOMEM; /* the arrays that did grow are kept: harmless */
        st->ready_events = ready_events;
        st->cap = cap;
    }
    return 0;
}

static int poll_set(ritual_loop *loop, struct ritual_io *io, unsigned events)
{
    struct poll_state *st = ritual__backend_state(loop);
    if (io->fd < 0)
        return -EBADF;
    size_t i;
    if ((size_t)io->fd < st->slot_cap && st->slot[io->fd]) {
        i = st->slot[io->fd] - 1;
    } else {
        int rc = grow(st, io->fd);
        if (rc < 0)
            return rc;
        i = st->n++;
        st->slot[io->fd] = (unsigned)i + 1;
        st->pfds[i].fd = io->fd;
        st->ios[i] = io;
    }
    /* poll skips a negative fd: how a quiet entry hears not even hang-ups. */
    st->pfds[i].fd = (events & RITUAL_IO_QUIET) ? ~io->fd : io->fd;
    st->pfds[i].events = to_poll(events);
    io->registered = 1;
    return 0;
}

static void poll_forget(ritual_loop *loop, struct ritual_io *io)
{
    struct poll_state *st = ritual__backend_state(loop);
    io->registered = 0;
    if (io->fd < 0 || (size_t)io->fd >= st->slot_cap || !st->slot[io->fd])
        return;
    size_t i = st->slot[io->fd] - 1;
    st->slot[io->fd] = 0;
    if (i != --st->n) { /* the last entry moves into the hole */
        st->pfds[i] = st->pfds[st->n];
        st->ios[i] = st->ios[st->n];
        st->slot[st->ios[i]->fd] = (unsigned)i + 1;
    }
    for (size_t k = 0; k < st->nready; k++)
        if (st->ready[k] == io)
            st->ready[k] = NULL;
}

static int poll_poll(ritual_loop *loop, int64_t timeout_ns)
{
    struct poll_state *st = ritual__backend_state(loop);
    struct timespec ts = {.tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000};
    int n = ppoll(st->pfds, (nfds_t)st->n, timeout_ns < 0 ? NULL : &ts, NULL);
    int err = n < 0 ? errno : 0;
    ritual__loop_woke(loop);
    if (n < 0)
        return err == EINTR ? 0 : -err;
    st->nready = 0;
    for (size_t i = 0; i < st->n && st->nready < (size_t)n; i++) {
        short e = st->pfds[i].revents;
        if (!e)
            continue;
        st->ready[st->nready] = st->ios[i];
        st->ready_events[st->nready++] =
            ((e & POLLIN) ? RITUAL_IO_READ : 0u) | ((e & POLLOUT) ? RITUAL_IO_WRITE : 0u) |
            ((e & (POLLERR | POLLHUP | POLLNVAL)) ? RITUAL_IO_ERROR : 0u);
    }
    for (size_t k = 0; k < st->nready; k++)
        if (st->ready[k])
            ritual__io_ready(loop, st->ready[k], st->ready_events[k]);
    st->nready = 0;
    return 0;
}

const struct ritual_backend_ops ritual__backend_poll = {
    .name = "poll",
    .init = poll_init,
    .destroy = poll_destroy,
    .set = poll_set,
    .forget = poll_forget,
    .poll = poll_poll,
};
