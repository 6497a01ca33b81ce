/* loop.c - the event loop: create, run, stop, shut down, free. One iteration
 * waits in the backend until I/O is ready or the next timer is due, then runs
 * the ready handlers, the due timers, and the close callbacks, in that order. */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static void ignore_sigpipe_if_default(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO)) {
        struct sigaction ign;
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = SIG_IGN;
        sigemptyset(&ign.sa_mask);
        sigaction(SIGPIPE, &ign, NULL);
    }
}

ritual_loop *ritual_loop_new(const ritual_loop_options *options, ritual_error *err)
{
    ritual_loop_options defaults;
    memset(&defaults, 0, sizeof defaults);
    if (!options)
        options = &defaults;

    ritual_backend choice = options->backend;
    if (choice == RITUAL_BACKEND_AUTO) {
        /* An override for tests and for sandboxes that refuse epoll. */
        const char *env = getenv("RITUAL_BACKEND");
        if (env && strcmp(env, "poll") == 0)
            choice = RITUAL_BACKEND_POLL;
        else if (env && strcmp(env, "epoll") == 0)
            choice = RITUAL_BACKEND_EPOLL;
        else if (env && strcmp(env, "io_uring") == 0)
            choice = RITUAL_BACKEND_IO_URING;
        else if (env && *env && strcmp(env, "auto") != 0) {
            ritual_error_set(err, -EINVAL,
                             "loop: RITUAL_BACKEND=%s: not auto, io_uring, epoll or poll", env);
            return NULL;
        }
    }
    const struct ritual_backend_ops *backend;
    switch (choice) {
    case RITUAL_BACKEND_AUTO:
    case RITUAL_BACKEND_IO_URING:
#ifdef RITUAL_HAVE_URING
        backend = &ritual__backend_uring;
#else
        backend = &ritual__backend_epoll;
#endif
        break;
    case RITUAL_BACKEND_EPOLL:
        backend = &ritual__backend_epoll;
        break;
    case RITUAL_BACKEND_POLL:
        backend = &ritual__backend_poll;
        break;
    default:
        ritual_error_set(err, -EINVAL, "loop: unknown backend %d", (int)options->backend);
        return NULL;
    }

    ritual_loop *loop = calloc(1, sizeof *loop);
    if (!loop) {
        ritual_error_set(err, -ENOMEM, "loop");
        return NULL;
    }
    loop->backend = backend;
    loop->log_level = options->log_level ? options->log_level : RITUAL_LOG_WARN;
    loop->log_fn = options->log_fn;
    loop->log_data = options->log_data;
    loop->data = options->data;
    loop->now = ritual__clock_ns();
    ritual_list_init(&loop->conns);
    ritual_list_init(&loop->closed);
    ritual_list_init(&loop->listeners);
    ritual_list_init(&loop->dead_listeners);
    ritual_list_init(&loop->zombie_conns);
    ritual_list_init(&loop->zombie_listeners);
    ritual_list_init(&loop->timers);
    ritual__timer_node_init(&loop->shutdown_timer, RITUAL_TIMER_LOOP);
    loop->signal_io.fd = -1;
    loop->signal_io.kind = RITUAL_IO_SIGNAL;
    sigemptyset(&loop->signal_mask);

    int rc = backend->init(loop);
    if (rc < 0 && backend->completion) {
        /* io_uring refused (an old kernel, the io_uring_disabled sysctl, a
         * seccomp filter): epoll does the same job. */
        ritual_log(loop, choice == RITUAL_BACKEND_IO_URING ? RITUAL_LOG_WARN : RITUAL_LOG_INFO,
                   "io_uring unavailable (%s): using epoll", ritual_strerror(rc));
        backend = loop->backend = &ritual__backend_epoll;
        rc = backend->init(loop);
    }
    if (rc < 0) {
        ritual_error_set(err, rc, "%s: create", backend->name);
        free(loop);
        return NULL;
    }
    rc = ritual__posts_init(loop);
    if (rc < 0) {
        ritual_error_set(err, rc, "eventfd");
        backend->destroy(loop);
        free(loop);
        return NULL;
    }
    ignore_sigpipe_if_default();
    return loop;
}

int ritual__loop_reserve_rbuf(ritual_loop *loop, size_t size)
{
    if (size <= loop->rbuf_size)
        return 0;
    if (loop->freeing)
        return -ESHUTDOWN;
    char *buf = malloc(size);
    if (!buf)
        return -ENOMEM;
    /* A listener or connection made inside on_data must not pull the
     * buffer the callback is reading from under it: the old one lives on
     * until the iteration ends. (A second swap in the same iteration frees
     * the intermediate buffer, which no callback has seen.) */
    if (!loop->rbuf_retired)
        loop->rbuf_retired = loop->rbuf;
    else
        free(loop->rbuf);
    loop->rbuf = buf;
    loop->rbuf_size = size;
    return 0;
}

void ritual__loop_end_iteration(ritual_loop *loop)
{
    ritual__conns_reap(loop);
    ritual__listeners_reap(loop);
    free(loop->rbuf_retired);
    loop->rbuf_retired = NULL;
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
    }
}

void ritual__io_released(ritual_loop *loop, struct ritual_io *io)
{
    (void)loop;
    if (io->kind == RITUAL_IO_CONN)
        ritual__conn_released(ritual_container_of(io, ritual_conn, io));
    else if (io->kind == RITUAL_IO_LISTENER)
        ritual__listener_released(ritual_container_of(io, ritual_listener, io));
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

int ritual_loop_run(ritual_loop *loop)
{
    int rc = 0;
    loop->now = ritual__clock_ns();
    while (!loop->stopping) {
        rc = loop->backend->poll(loop, ritual__timers_next_timeout(loop));
        if (rc < 0) {
            ritual_log(loop, RITUAL_LOG_ERROR, "%s: wait: %s", loop->backend->name,
                       ritual_strerror(rc));
            break;
        }
        ritual__timers_run(loop);
        ritual__loop_end_iteration(loop);
    }
    if (loop->backend->flush)
        loop->backend->flush(loop);
    loop->stopping = false;
    if (rc == 0 && loop->forced)
        rc = -ECANCELED;
    loop->forced = false;
    return rc;
}

void ritual_loop_stop(ritual_loop *loop)
{
    loop->stopping = true;
}

uint64_t ritual_loop_now(const ritual_loop *loop)
{
    return loop->now / RITUAL_NS_PER_MS;
}

void ritual_loop_stats_get(const ritual_loop *loop, ritual_loop_stats *out)
{
    out->accepted = atomic_load_explicit(&loop->stat_accepted, memory_order_relaxed);
    out->conns = atomic_load_explicit(&loop->stat_conns, memory_order_relaxed);
    out->bytes_read = atomic_load_explicit(&loop->stat_read, memory_order_relaxed);
    out->bytes_written = atomic_load_explicit(&loop->stat_written, memory_order_relaxed);
}

size_t ritual_loop_conn_count(const ritual_loop *loop)
{
    return loop->conn_count;
}

const char *ritual_loop_backend_name(const ritual_loop *loop)
{
    return loop->backend->name;
}

/* ---------------------------------------------------------------- shutdown */

void ritual__loop_check_drained(ritual_loop *loop)
{
    if (loop->shutting_down && loop->conn_count == 0) {
        ritual__timer_node_cancel(loop, &loop->shutdown_timer);
        loop->shutting_down = false; /* done: a later shutdown starts afresh */
        loop->stopping = true;
    }
}

void ritual__loop_drain_deadline(ritual_loop *loop)
{
    ritual_log(loop, RITUAL_LOG_WARN, "drain deadline passed: closing %zu connection%s",
               loop->conn_count, loop->conn_count == 1 ? "" : "s");
    while (!ritual_list_empty(&loop->conns))
        ritual__conn_terminate(ritual_container_of(loop->conns.next, ritual_conn, link),
                               -ECANCELED);
    loop->shutting_down = false;
    loop->stopping = true;
}

void ritual_loop_shutdown(ritual_loop *loop, uint64_t drain_ms)
{
    uint64_t deadline = ritual__clock_ns() + ritual__ms_to_ns(drain_ms);
    if (loop->shutting_down) {
        if (deadline < loop->shutdown_deadline) {
            loop->shutdown_deadline = deadline;
            ritual__timer_node_schedule(loop, &loop->shutdown_timer, deadline);
        }
        return;
    }
    loop->shutting_down = true;
    while (!ritual_list_empty(&loop->listeners))
        ritual__listener_drain_and_close(
            ritual_container_of(loop->listeners.next, ritual_listener, link));
    if (loop->conn_count > 0)
        ritual_log(loop, RITUAL_LOG_INFO,
                   "shutting down: draining %zu connection%s for up to %.1f s", loop->conn_count,
                   loop->conn_count == 1 ? "" : "s", (double)drain_ms / 1000);
    loop->shutdown_deadline = deadline;
    if (ritual__timer_node_schedule(loop, &loop->shutdown_timer, deadline) < 0)
        drain_ms = 0; /* no way to enforce a deadline: do not wait at all */

    /* Tell each connection, on a private list so that callbacks may close
     * any connection, this one or another, while we walk. */
    struct ritual_list pending;
    ritual_list_init(&pending);
    ritual_list_splice(&loop->conns, &pending);
    while (!ritual_list_empty(&pending)) {
        ritual_conn *conn = ritual_container_of(pending.next, ritual_conn, link);
        ritual_list_del(&conn->link);
        ritual_list_add_tail(&loop->conns, &conn->link);
        if (conn->profile->cbs.on_shutdown &&
            !(conn->flags & (CONN_CLOSING | CONN_LINGERING | CONN_CONNECTING)))
            conn->profile->cbs.on_shutdown(conn);
    }
    if (drain_ms == 0 && loop->conn_count > 0)
        ritual__loop_drain_deadline(loop);
    ritual__loop_check_drained(loop);
}

/* -------------------------------------------------------------------- free */

void ritual_loop_set_data(ritual_loop *loop, void *data)
{
    loop->data = data;
}

void *ritual_loop_data(const ritual_loop *loop)
{
    return loop->data;
}

int ritual_loop_on_free(ritual_loop *loop, void (*fn)(void *arg), void *arg)
{
    struct ritual_cleanup *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    c->fn = fn;
    c->arg = arg;
    c->next = loop->cleanups;
    loop->cleanups = c;
    return 0;
}

void ritual_loop_free(ritual_loop *loop)
{
    if (!loop)
        return;
    /* on_close callbacks may try to reconnect or listen again: refused now. */
    loop->freeing = true;
    /* Calls posted from other threads run first, while what they refer to
     * (a connection, an HTTP exchange waiting for its answer) still exists. */
    ritual__posts_free(loop);
    while (!ritual_list_empty(&loop->listeners))
        ritual_listener_close(ritual_container_of(loop->listeners.next, ritual_listener, link));
    do {
        while (!ritual_list_empty(&loop->conns))
            ritual__conn_terminate(ritual_container_of(loop->conns.next, ritual_conn, link),
                                   -ECANCELED);
        ritual__loop_end_iteration(loop); /* on_close, and the listeners' memory */
    } while (!ritual_list_empty(&loop->conns) || !ritual_list_empty(&loop->closed));
    ritual__signals_free(loop); /* its descriptor too has an operation in the kernel */
    if (loop->backend->drain)
        loop->backend->drain(loop); /* hands back what the kernel still holds */
    while (loop->cleanups) {
        struct ritual_cleanup *c = loop->cleanups;
        loop->cleanups = c->next;
        c->fn(c->arg);
        free(c);
    }
    ritual__conns_free_blocks(loop);
    ritual__timers_free(loop);
    ritual__buffers_free(loop);
    free(loop->rbuf);
    loop->backend->destroy(loop);
    free(loop);
}
