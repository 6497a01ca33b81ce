/* io.c - the core's one dispatch point to the backends. It picks a loop's
 * backend and forwards the core's calls to it (io.h), and it turns what a
 * backend reports about an io record into calls on the object that owns it
 * (the core's half of backend/backend.h). Nothing else in the core knows
 * which backend a loop runs on: what it must know is a property of the
 * loop set here (loop->gathers, loop->uring_refused). */
#include "io.h"
#include "conn.h"
#include "listener.h"
#include "loop.h"
#include "post.h"
#include "signals.h"
#include "watch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------- the core's */

static int pick(ritual_backend choice, const struct ritual_backend_ops **out, ritual_error *err)
{
    if (choice == RITUAL_BACKEND_AUTO) {
        /* An override for tests and for sandboxes that refuse epoll. */
        const char *env = getenv("RITUAL_BACKEND");
        if (env && strcmp(env, "poll") == 0)
            choice = RITUAL_BACKEND_POLL;
        else if (env && strcmp(env, "epoll") == 0)
            choice = RITUAL_BACKEND_EPOLL;
        else if (env && strcmp(env, "io_uring") == 0)
            choice = RITUAL_BACKEND_IO_URING;
        else if (env && *env && strcmp(env, "auto") != 0)
            return ritual_error_set(
                err, -EINVAL, "loop: RITUAL_BACKEND=%s: not auto, io_uring, epoll or poll", env);
    }
    switch (choice) {
    case RITUAL_BACKEND_AUTO:
    case RITUAL_BACKEND_IO_URING:
#ifdef RITUAL_HAVE_URING
        *out = &ritual__backend_uring;
#else
        *out = &ritual__backend_epoll;
#endif
        return 0;
    case RITUAL_BACKEND_EPOLL:
        *out = &ritual__backend_epoll;
        return 0;
    case RITUAL_BACKEND_POLL:
        *out = &ritual__backend_poll;
        return 0;
    }
    return ritual_error_set(err, -EINVAL, "loop: unknown backend %d", (int)choice);
}

int ritual__io_init(ritual_loop *loop, ritual_backend choice, ritual_error *err)
{
    const struct ritual_backend_ops *backend = NULL;
    int rc = pick(choice, &backend, err);
    if (rc < 0)
        return rc;
    loop->backend = backend;
    rc = backend->init(loop);
    if (rc < 0 && backend->completion) {
        /* io_uring refused (an old kernel, the io_uring_disabled sysctl, a
         * seccomp filter): epoll does the same job. */
        ritual_log(loop, choice == RITUAL_BACKEND_IO_URING ? RITUAL_LOG_WARN : RITUAL_LOG_INFO,
                   "io_uring unavailable (%s): using epoll", ritual_strerror(rc));
        backend = loop->backend = &ritual__backend_epoll;
        loop->uring_refused = true;
        rc = backend->init(loop);
    }
    if (rc < 0)
        return ritual_error_set(err, rc, "%s: create", backend->name);
    loop->gathers = backend->completion;
    return 0;
}

void ritual__io_destroy(ritual_loop *loop)
{
    loop->backend->destroy(loop);
}

int ritual__io_set(ritual_loop *loop, struct ritual_io *io, unsigned events)
{
    /* An exclusive entry with no interest is no entry at all. */
    if (io->events == events && (io->registered || (io->exclusive && events == 0)))
        return 0;
    int rc = loop->backend->set(loop, io, events);
    if (rc == 0)
        io->events = (uint8_t)events;
    return rc;
}

void ritual__io_forget(ritual_loop *loop, struct ritual_io *io)
{
    loop->backend->forget(loop, io);
}

int ritual__io_wait(ritual_loop *loop, int64_t timeout_ns)
{
    int rc = loop->backend->poll(loop, timeout_ns);
    if (rc < 0)
        ritual_log(loop, RITUAL_LOG_ERROR, "%s: wait: %s", loop->backend->name,
                   ritual_strerror(rc));
    return rc;
}

void ritual__io_flush(ritual_loop *loop)
{
    if (loop->backend->flush)
        loop->backend->flush(loop);
}

void ritual__io_drain(ritual_loop *loop)
{
    if (loop->backend->drain)
        loop->backend->drain(loop); /* hands back what the kernel still holds */
}

const char *ritual__io_backend_name(const ritual_loop *loop)
{
    return loop->backend->name;
}

/* ------------------------------------------------------- the backend's */

void ritual__loop_woke(ritual_loop *loop)
{
    loop->now = ritual__clock_ns();
}

void ritual__io_ready(ritual_loop *loop, struct ritual_io *io, unsigned events)
{
    switch (io->kind) {
    case RITUAL_IO_CONN:
        ritual__conn_ready(ritual_container_of(io, ritual_conn, io), events);
        break;
    case RITUAL_IO_LISTENER:
        ritual__listener_ready(ritual_container_of(io, ritual_listener, io), events);
        break;
    case RITUAL_IO_SIGNAL:
        ritual__signals_ready(loop);
        break;
    case RITUAL_IO_WAKEUP:
        ritual__posts_ready(loop);
        break;
    case RITUAL_IO_WATCH:
        ritual__watch_ready(ritual_container_of(io, ritual_watch, io), events);
        break;
    }
}

void ritual__io_released(ritual_loop *loop, struct ritual_io *io)
{
    (void)loop;
    if (io->kind == RITUAL_IO_CONN)
        ritual__conn_released(ritual_container_of(io, ritual_conn, io));
    else if (io->kind == RITUAL_IO_LISTENER)
        ritual__listener_released(ritual_container_of(io, ritual_listener, io));
    else if (io->kind == RITUAL_IO_WATCH)
        ritual__watch_released(ritual_container_of(io, ritual_watch, io));
}

void ritual__io_release_all(ritual_loop *loop)
{
    while (!ritual_list_empty(&loop->zombie_conns)) {
        ritual_conn *conn = ritual_container_of(loop->zombie_conns.next, ritual_conn, link);
        conn->io.busy = 0;
        ritual__conn_released(conn);
    }
    while (!ritual_list_empty(&loop->held_listeners)) {
        ritual_listener *l = ritual_container_of(loop->held_listeners.next, ritual_listener, link);
        l->io.busy = 0;
        ritual__listener_released(l);
    }
    /* The last connections let go of their listeners just now. */
    ritual__listeners_reap(loop);
    while (!ritual_list_empty(&loop->zombie_listeners)) {
        ritual_listener *l =
            ritual_container_of(loop->zombie_listeners.next, ritual_listener, link);
        l->io.busy = 0;
        ritual__listener_released(l);
    }
    ritual__watches_release_all(loop);
}

void ritual__io_received(struct ritual_io *io, const char *bytes, int len)
{
    ritual__conn_received(ritual_container_of(io, ritual_conn, io), bytes, len);
}

void ritual__io_sent(struct ritual_io *io, int res)
{
    ritual_conn *conn = ritual_container_of(io, ritual_conn, io);
    if (!(conn->flags & CONN_CLOSED))
        ritual__conn_sent(conn, res);
}

void ritual__io_accepted(struct ritual_io *io, int fd)
{
    ritual__listener_accepted(ritual_container_of(io, ritual_listener, io), fd);
}

size_t ritual__io_receive_room(const struct ritual_io *io)
{
    return ritual__conn_receive_room(ritual_container_of(io, const ritual_conn, io));
}

int ritual__io_output_iov(const struct ritual_io *io, struct iovec *iov, int max, bool *more)
{
    const ritual_conn *conn = ritual_container_of(io, const ritual_conn, io);
    *more = (conn->flags & CONN_FILE_QUEUED) != 0;
    return ritual__conn_output_iov(conn, iov, max);
}
