/* epoll.c - the epoll backend. Level-triggered: a handler may stop early
 * (fairness caps, paused reading) and the kernel reports the fd again on the
 * next wait. Interest changes reach the kernel only when they differ from
 * what is registered (see ritual__io_set), so a steady connection costs no
 * epoll_ctl at all. */
#include "backend.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define EPOLL_BATCH 256

struct epoll_state {
    int epfd;
    bool no_pwait2; /* the kernel predates epoll_pwait2 (5.11): wait in ms */
    struct epoll_event events[EPOLL_BATCH];
};

static int epoll_init(ritual_loop *loop)
{
    struct epoll_state *st = malloc(sizeof *st);
    if (!st)
        return -ENOMEM;
    st->no_pwait2 = false;
    st->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (st->epfd < 0) {
        int e = -errno;
        free(st);
        return e;
    }
    ritual__backend_set_state(loop, st);
    return 0;
}

static void epoll_destroy(ritual_loop *loop)
{
    struct epoll_state *st = ritual__backend_state(loop);
    if (!st)
        return;
    close(st->epfd);
    free(st);
    ritual__backend_set_state(loop, NULL);
}

static uint32_t to_epoll(unsigned events)
{
    return ((events & RITUAL_IO_READ) ? EPOLLIN : 0u) |
           ((events & RITUAL_IO_WRITE) ? EPOLLOUT : 0u);
}

/* A listening socket shared by several loops is registered in each with
 * EPOLLEXCLUSIVE, so one connection wakes one loop, not all of them. The
 * kernel refuses EPOLL_CTL_MOD on such an entry: a change is a delete and
 * an add, and no interest is no entry. */
static int epoll_set_exclusive(struct epoll_state *st, struct ritual_io *io, unsigned events)
{
    if (io->registered) {
        if (epoll_ctl(st->epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0)
            return -errno;
        io->registered = 0;
    }
    if (events == 0)
        return 0;
    struct epoll_event ev = {.events = to_epoll(events) | EPOLLEXCLUSIVE, .data.ptr = io};
    if (epoll_ctl(st->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0)
        return -errno;
    io->registered = 1;
    return 0;
}

static int epoll_set(ritual_loop *loop, struct ritual_io *io, unsigned events)
{
    struct epoll_state *st = ritual__backend_state(loop);
    if (io->exclusive)
        return epoll_set_exclusive(st, io, events);
    if (events & RITUAL_IO_QUIET) {
        /* epoll reports a hang-up whatever the interest: only leaving the
         * set silences it. The next interest adds the fd again. */
        if (io->registered && epoll_ctl(st->epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0)
            return -errno;
        io->registered = 0;
        return 0;
    }
    /* An fd stays registered even with no interest: the kernel still reports
     * errors and hang-ups for it, which is how a reset on a paused or
     * half-closed connection is noticed. */
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = io};
    int op = io->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(st->epfd, op, io->fd, &ev) < 0)
        return -errno;
    io->registered = 1;
    return 0;
}

static void epoll_forget(ritual_loop *loop, struct ritual_io *io)
{
    /* close() removes the fd from the epoll set once no other descriptor
     * refers to the socket; connections are never dup'ed (all fds are
     * CLOEXEC), so for them the EPOLL_CTL_DEL system call is saved. A shared
     * listening socket has a dup per loop and must be removed by hand. */
    struct epoll_state *st = ritual__backend_state(loop);
    if (io->exclusive && io->registered)
        (void)epoll_ctl(st->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->registered = 0;
}

static int wait_for_events(struct epoll_state *st, int64_t timeout_ns)
{
    if (!st->no_pwait2) {
        struct timespec ts = {.tv_sec = timeout_ns / 1000000000,
                              .tv_nsec = timeout_ns % 1000000000};
        int n = epoll_pwait2(st->epfd, st->events, EPOLL_BATCH, timeout_ns < 0 ? NULL : &ts, NULL);
        /* ENOSYS: an old kernel; EPERM: a seccomp filter that predates it. */
        if (n >= 0 || (errno != ENOSYS && errno != EPERM))
            return n;
        st->no_pwait2 = true;
    }
    /* Round up: waking early would make a timer fire early. */
    int64_t ms = timeout_ns < 0 ? -1 : (timeout_ns + 999999) / 1000000;
    return epoll_wait(st->epfd, st->events, EPOLL_BATCH, ms > INT_MAX ? INT_MAX : (int)ms);
}

static int epoll_poll(ritual_loop *loop, int64_t timeout_ns)
{
    struct epoll_state *st = ritual__backend_state(loop);
    int n = wait_for_events(st, timeout_ns);
    int err = n < 0 ? errno : 0;
    ritual__loop_woke(loop);
    if (n < 0)
        return err == EINTR ? 0 : -err;
    for (int i = 0; i < n; i++) {
        uint32_t e = st->events[i].events;
        unsigned ready = ((e & EPOLLIN) ? RITUAL_IO_READ : 0u) |
                         ((e & EPOLLOUT) ? RITUAL_IO_WRITE : 0u) |
                         ((e & (EPOLLERR | EPOLLHUP)) ? RITUAL_IO_ERROR : 0u);
        ritual__io_ready(loop, st->events[i].data.ptr, ready);
    }
    return 0;
}

const struct ritual_backend_ops ritual__backend_epoll = {
    .name = "epoll",
    .init = epoll_init,
    .destroy = epoll_destroy,
    .set = epoll_set,
    .forget = epoll_forget,
    .poll = epoll_poll,
};
