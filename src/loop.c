/* loop.c - the event loop: create, run, stop, shut down, free. One iteration
 * waits in the backend until I/O is ready or the next timer is due, then runs
 * the ready handlers, the due timers, and the close callbacks, in that order. */
#include "buffer.h"
#include "conn.h"
#include "io.h"
#include "listener.h"
#include "loop.h"
#include "post.h"
#include "proxy.h"
#include "signals.h"
#include "timer.h"
#include "tls/tls.h"
#include "watch.h"

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

    ritual_loop *loop = calloc(1, sizeof *loop);
    if (!loop) {
        ritual_error_set(err, -ENOMEM, "loop");
        return NULL;
    }
    loop->log_level = options->log_level ? options->log_level : RITUAL_LOG_WARN;
    loop->log_fn = options->log_fn;
    loop->log_data = options->log_data;
    loop->data = options->data;
    loop->worker_index = -1;
    loop->now = ritual__clock_ns();
    ritual_list_init(&loop->conns);
    ritual_list_init(&loop->closed);
    ritual_list_init(&loop->listeners);
    ritual_list_init(&loop->dead_listeners);
    ritual_list_init(&loop->zombie_conns);
    ritual_list_init(&loop->zombie_listeners);
    ritual_list_init(&loop->held_listeners);
    ritual_list_init(&loop->timers);
    ritual__timer_node_init(&loop->shutdown_timer, RITUAL_TIMER_LOOP);
    loop->signal_io.fd = -1;
    loop->signal_io.kind = RITUAL_IO_SIGNAL;
    sigemptyset(&loop->signal_mask);

    ritual_list_init(&loop->watches);
    ritual_list_init(&loop->dead_watches);
    ritual_list_init(&loop->zombie_watches);
    int rc = ritual__io_init(loop, options->backend, err);
    if (rc < 0) {
        free(loop);
        return NULL;
    }
    rc = ritual__posts_init(loop);
    if (rc < 0) {
        ritual_error_set(err, rc, "eventfd");
        ritual__io_destroy(loop);
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
    ritual__watches_reap(loop);
    free(loop->rbuf_retired);
    loop->rbuf_retired = NULL;
}

int ritual_loop_run(ritual_loop *loop)
{
    int rc = 0;
    loop->now = ritual__clock_ns();
    while (!loop->stopping) {
        rc = ritual__io_wait(loop, ritual__timers_next_timeout(loop));
        if (rc < 0)
            break;
        ritual__timers_run(loop);
        ritual__loop_end_iteration(loop);
    }
    ritual__io_flush(loop);
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
    out->drain_cut = atomic_load_explicit(&loop->stat_drain_cut, memory_order_relaxed);
    uint64_t *closed[RITUAL__CLOSED_REASONS] = {
        &out->closed_clean,   &out->closed_reset,    &out->closed_timeout, &out->closed_overflow,
        &out->closed_aborted, &out->closed_canceled, &out->closed_other,
    };
    for (unsigned i = 0; i < RITUAL__CLOSED_REASONS; i++)
        *closed[i] = atomic_load_explicit(&loop->stat_closed[i], memory_order_relaxed);
}

uint64_t ritual_loop_now_us(const ritual_loop *loop)
{
    return loop->now / 1000;
}

int ritual_loop_set_layer_state(ritual_loop *loop, ritual_loop_layer layer, void *state)
{
    if ((unsigned)layer >= RITUAL_LOOP_LAYERS)
        return -EINVAL;
    void *none = NULL;
    /* Release: what the layer wrote to its state is seen with the pointer. */
    if (!atomic_compare_exchange_strong_explicit(&loop->layers[layer], &none, state,
                                                 memory_order_release, memory_order_relaxed))
        return -EEXIST;
    return 0;
}

void *ritual_loop_layer_state(const ritual_loop *loop, ritual_loop_layer layer)
{
    if ((unsigned)layer >= RITUAL_LOOP_LAYERS)
        return NULL;
    return atomic_load_explicit(&loop->layers[layer], memory_order_acquire);
}

size_t ritual_loop_conn_count(const ritual_loop *loop)
{
    return loop->conn_count;
}

const char *ritual_loop_backend_name(const ritual_loop *loop)
{
    return ritual__io_backend_name(loop);
}

/* ---------------------------------------------------------------- shutdown */

void ritual__loop_check_drained(ritual_loop *loop)
{
    if (loop->shutting_down && loop->conn_count == 0 && ritual_list_empty(&loop->held_listeners)) {
        ritual__timer_node_cancel(loop, &loop->shutdown_timer);
        loop->shutting_down = false; /* done: a later shutdown starts afresh */
        loop->stopping = true;
    }
}

void ritual__loop_drain_deadline(ritual_loop *loop)
{
    ritual_log(loop, RITUAL_LOG_WARN, "drain deadline passed: closing %zu connection%s",
               loop->conn_count, loop->conn_count == 1 ? "" : "s");
    ritual__stat_add(&loop->stat_drain_cut, loop->conn_count);
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
        if (conn->profile->cbs.on_shutdown && ritual__tls_opened(conn) &&
            !ritual__proxy_pending(conn) &&
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

void ritual_loop_on_fds_short(ritual_loop *loop, ritual_fds_short_fn fn, void *arg)
{
    loop->fds_short = fn;
    loop->fds_short_arg = arg;
}

int ritual_loop_worker(const ritual_loop *loop)
{
    return loop->worker_index;
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
    ritual__watches_free(loop);
    ritual__signals_free(loop); /* its descriptor too has an operation in the kernel */
    ritual__io_drain(loop);     /* hands back what the kernel still holds */
    while (loop->cleanups) {
        struct ritual_cleanup *c = loop->cleanups;
        loop->cleanups = c->next;
        c->fn(c->arg);
        free(c);
    }
    ritual__conns_free_blocks(loop);
    ritual__proxy_pool_free(loop);
    ritual__timers_free(loop);
    ritual__buffers_free(loop);
    free(loop->rbuf);
    ritual__tls_loop_free(loop);
    ritual__io_destroy(loop);
    free(loop);
}
