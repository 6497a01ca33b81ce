/* server.c - one loop per core: a server runs N loops on N threads. Each
 * worker owns the connections it accepted; nothing on the data path is
 * shared or locked. Workers listen either on sockets of their own with
 * SO_REUSEPORT (the kernel hashes each new connection to one of them) or on
 * one shared socket registered in every worker with EPOLLEXCLUSIVE. They are
 * told to shut down through ritual_loop_post. */
#include "address.h"
#include "inherit.h"
#include "listener.h"
#include "loop.h"
#include "notify.h"
#include "proxy.h"
#include "server.h"
#include "upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct worker {
    ritual_server *server;
    unsigned index;
    ritual_loop *loop;
    pthread_t thread;
    bool started;
    int rc;
};

struct ritual_server {
    unsigned nworkers;
    struct worker *workers;
    /* Runs in the thread that calls ritual_server_run: it reads the signals
     * and learns when workers have stopped, so it outlives every worker. */
    ritual_loop *control;
    unsigned running;
    ritual_accept_mode accept_mode;
    bool pin;
    uint64_t drain_ms; /* for the signal handlers */
    atomic_int signals_seen;
    atomic_bool forced;
    atomic_bool stopping; /* a shutdown or stop began */
    struct ritual_notifier *notifier;
    struct ritual_upgrade *upgrade;
    void (*on_worker_start)(ritual_server *server, ritual_loop *loop);
    void (*on_worker_stop)(ritual_server *server, ritual_loop *loop);
    void *data;
};

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* If io_uring was refused to some workers and not others (a ring is
 * memory: RLIMIT_AS or RLIMIT_MEMLOCK may allow some rings and not one
 * more), every worker runs on epoll: one server behaves one way, with the
 * bounds and costs of one backend, and says which. Returns 0 or a
 * negative errno with `err` filled. */
static int same_backend(ritual_server *srv, ritual_loop_options *loop_options, ritual_error *err)
{
    unsigned refused = 0;
    for (unsigned i = 0; i < srv->nworkers; i++)
        refused += srv->workers[i].loop->uring_refused;
    if (refused == 0 || refused == srv->nworkers)
        return 0;
    ritual_log(srv->control,
               loop_options->backend == RITUAL_BACKEND_IO_URING ? RITUAL_LOG_WARN : RITUAL_LOG_INFO,
               "io_uring refused to %u of %u workers: all of them run on epoll", refused,
               srv->nworkers);
    loop_options->backend = RITUAL_BACKEND_EPOLL;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        if (w->loop->uring_refused)
            continue;
        ritual_loop_free(w->loop);
        w->loop = ritual_loop_new(loop_options, err);
        if (!w->loop)
            return err ? err->code : -ENOMEM;
        w->loop->worker_index = (int)i;
    }
    return 0;
}

ritual_server *ritual_server_new(const ritual_server_options *options, ritual_error *err)
{
    ritual_server_options defaults;
    memset(&defaults, 0, sizeof defaults);
    if (!options)
        options = &defaults;
    if (options->accept_mode != RITUAL_ACCEPT_REUSEPORT &&
        options->accept_mode != RITUAL_ACCEPT_SHARED) {
        ritual_error_set(err, -EINVAL, "server: unknown accept mode %d", (int)options->accept_mode);
        return NULL;
    }
    ritual_server *srv = calloc(1, sizeof *srv);
    unsigned n = options->workers ? options->workers : online_cpus();
    struct worker *workers = srv ? calloc(n, sizeof *workers) : NULL;
    if (!workers) {
        free(srv);
        ritual_error_set(err, -ENOMEM, "server");
        return NULL;
    }
    srv->nworkers = n;
    srv->workers = workers;
    srv->notifier = ritual__notifier_new(srv, options->notify != 0);
    srv->upgrade = srv->notifier ? ritual__upgrade_new(srv) : NULL;
    srv->control = srv->upgrade ? ritual_loop_new(&options->loop, err) : NULL;
    if (!srv->control) {
        if (!srv->upgrade)
            ritual_error_set(err, -ENOMEM, "server");
        ritual__upgrade_free(srv->upgrade);
        ritual__notifier_free(srv->notifier);
        free(workers);
        free(srv);
        return NULL;
    }
    srv->accept_mode = options->accept_mode;
    srv->pin = options->pin;
    srv->on_worker_start = options->on_worker_start;
    srv->on_worker_stop = options->on_worker_stop;
    srv->data = options->data;
    /* The control loop was the probe: if io_uring was refused there, the
     * workers go straight to epoll, without trying (and logging) again. */
    ritual_loop_options loop_options = options->loop;
    if ((loop_options.backend == RITUAL_BACKEND_AUTO ||
         loop_options.backend == RITUAL_BACKEND_IO_URING) &&
        srv->control->uring_refused)
        loop_options.backend = RITUAL_BACKEND_EPOLL;
    for (unsigned i = 0; i < n; i++) {
        workers[i].server = srv;
        workers[i].index = i;
        workers[i].loop = ritual_loop_new(&loop_options, err);
        if (!workers[i].loop) {
            ritual_server_free(srv);
            return NULL;
        }
        workers[i].loop->worker_index = (int)i;
    }
    if (same_backend(srv, &loop_options, err) < 0) {
        ritual_server_free(srv);
        return NULL;
    }
    return srv;
}

unsigned ritual_server_workers(const ritual_server *srv)
{
    return srv->nworkers;
}

ritual_loop *ritual_server_loop(const ritual_server *srv, unsigned index)
{
    return index < srv->nworkers ? srv->workers[index].loop : NULL;
}

void *ritual_server_data(const ritual_server *srv)
{
    return srv->data;
}

ritual_loop *ritual_server_control_loop(const ritual_server *srv)
{
    return srv->control;
}

int ritual_server_post_all(ritual_server *srv, ritual_post_fn fn, void *arg)
{
    for (unsigned i = 0; i < srv->nworkers; i++) {
        int rc = ritual_loop_post(srv->workers[i].loop, fn, arg);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void ritual_server_stats_get(const ritual_server *srv, ritual_loop_stats *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < srv->nworkers; i++) {
        ritual_loop_stats w;
        ritual_loop_stats_get(srv->workers[i].loop, &w);
        out->accepted += w.accepted;
        out->conns += w.conns;
        out->bytes_read += w.bytes_read;
        out->bytes_written += w.bytes_written;
        out->drain_cut += w.drain_cut;
        out->closed_clean += w.closed_clean;
        out->closed_reset += w.closed_reset;
        out->closed_timeout += w.closed_timeout;
        out->closed_overflow += w.closed_overflow;
        out->closed_aborted += w.closed_aborted;
        out->closed_canceled += w.closed_canceled;
        out->closed_other += w.closed_other;
    }
}

/* ------------------------------------------------------------- listening */

/* Every listener of a server is named by the address the application gave
 * (not "*:41234" for the later ones of "*:0"): an upgrade passes them all
 * on under that name, which the new process asks for. */
static bool named(ritual_listener *l, const char *address, ritual_error *err)
{
    if (ritual__listener_set_name(l, address, err) == 0)
        return true;
    ritual_listener_close(l);
    return false;
}

/* SO_REUSEPORT: a socket per worker, all on the port the first one got. */
static ritual_listener *listen_reuseport(ritual_server *srv, const char *address,
                                         const ritual_listen_options *options,
                                         const ritual_conn_callbacks *callbacks, ritual_error *err)
{
    ritual_listen_options opts = *options;
    opts.flags |= RITUAL_LISTEN_REUSEPORT;
    ritual_listener *first = ritual_listen(srv->workers[0].loop, address, &opts, callbacks, err);
    if (!first)
        return NULL;
    /* The others bind the same host on the port the first one got ("*:0"
     * becomes "*:41234", so they get the same dual-stack socket options). */
    char bound[300];
    const char *colon = strrchr(address, ':');
    snprintf(bound, sizeof bound, "%.*s:%d", (int)(colon - address), address,
             ritual_listener_port(first));
    for (unsigned i = 1; i < srv->nworkers; i++) {
        ritual_listener *l = ritual_listen(srv->workers[i].loop, bound, &opts, callbacks, err);
        if (!l || !named(l, address, err))
            return NULL; /* the listeners made so far go with the loops */
    }
    return first;
}

/* One socket `fd`, a descriptor of it per worker, each registered
 * exclusively. Takes the fd; `created`: this process bound it. */
static ritual_listener *share(ritual_server *srv, int fd, bool created, const char *address,
                              const ritual_listen_options *options,
                              const ritual_conn_callbacks *callbacks, ritual_error *err)
{
    ritual_listener *first = NULL;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        int own = i + 1 < srv->nworkers ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : fd;
        if (own < 0) {
            ritual_error_set(err, -errno, "listen %s: dup", address);
            close(fd);
            return NULL;
        }
        /* The first one made owns what this process bound (a unix socket
         * file); an inherited socket's file is not ours to remove. */
        ritual_listener *l =
            created && i == 0
                ? ritual__listener_attach_new(srv->workers[i].loop, own, true, options, callbacks,
                                              err)
                : ritual__listener_attach(srv->workers[i].loop, own, true, options, callbacks, err);
        if (!l || !named(l, address, err)) {
            if (own != fd)
                close(fd);
            return NULL;
        }
        if (!first)
            first = l;
    }
    return first;
}

static ritual_listener *listen_shared(ritual_server *srv, const char *address,
                                      const ritual_listen_options *options,
                                      const ritual_conn_callbacks *callbacks, ritual_error *err)
{
    int fd = ritual__listen_socket(srv->workers[0].loop, address, options, callbacks, err);
    if (fd < 0)
        return NULL;
    return share(srv, fd, true, address, options, callbacks, err);
}

struct server_attach {
    ritual_server *srv;
    const char *address;
    const ritual_listen_options *options;
    const ritual_conn_callbacks *callbacks;
};

static ritual_listener *share_given(void *ctx, int fd, ritual_error *err)
{
    struct server_attach *a = ctx;
    return share(a->srv, fd, false, a->address, a->options, a->callbacks, err);
}

/* Sockets given to the process (fd:N, systemd:NAME, an upgrade's): not
 * ours to make one per worker, so each is shared by every worker. Returns
 * 1 with *out set (NULL on failure) if `address` names such sockets. */
static int listen_inherited(ritual_server *srv, const char *address,
                            const ritual_listen_options *options,
                            const ritual_conn_callbacks *callbacks, ritual_listener **out,
                            ritual_error *err)
{
    *out = NULL;
    if (!address || !callbacks || !callbacks->on_data)
        return 0; /* the bind path says what is wrong */
    struct server_attach a = {srv, address, options, callbacks};
    return ritual__inherit_listen(address, share_given, &a, out, err);
}

ritual_listener *ritual_server_listen(ritual_server *srv, const char *address,
                                      const ritual_listen_options *options,
                                      const ritual_conn_callbacks *callbacks, ritual_error *err)
{
    ritual_listen_options defaults;
    memset(&defaults, 0, sizeof defaults);
    if (!options)
        options = &defaults;
    if (ritual__proxy_trust_check(options, err) < 0)
        return NULL; /* before any socket is made */
    ritual_listener *inherited;
    if (listen_inherited(srv, address, options, callbacks, &inherited, err))
        return inherited;
    /* SO_REUSEPORT does not apply to unix sockets: one socket for all. */
    if (srv->accept_mode == RITUAL_ACCEPT_SHARED ||
        ritual__address_form_of(address) == RITUAL_ADDRESS_UNIX)
        return listen_shared(srv, address, options, callbacks, err);
    return listen_reuseport(srv, address, options, callbacks, err);
}

/* -------------------------------------------------------------- running */

static void worker_stopped(ritual_loop *control, void *arg)
{
    ritual_server *srv = arg;
    if (--srv->running == 0)
        ritual_loop_stop(control);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    if (w->server->pin) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(w->index % online_cpus(), &set);
        int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
        if (rc != 0)
            ritual_log(w->loop, RITUAL_LOG_WARN, "worker %u: pin to CPU %u: %s", w->index,
                       w->index % online_cpus(), strerror(rc));
    }
    ritual_server *srv = w->server;
    if (srv->on_worker_start)
        srv->on_worker_start(srv, w->loop);
    w->rc = ritual_loop_run(w->loop);
    if (srv->on_worker_stop)
        srv->on_worker_stop(srv, w->loop);
    ritual_loop_post(srv->control, worker_stopped, srv);
    return NULL;
}

int ritual_server_run(ritual_server *srv)
{
    int rc = 0;
    srv->running = 0;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        int e = pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]);
        if (e != 0) {
            ritual_log(srv->control, RITUAL_LOG_ERROR, "worker %u: pthread_create: %s", i,
                       strerror(e));
            rc = -e;
            ritual_server_stop(srv);
            break;
        }
        srv->workers[i].started = true;
        srv->running++;
    }
    /* Signals and word of stopped workers arrive here, until none runs. */
    if (srv->running > 0) {
        if (rc == 0 && ritual__notifier_start(srv->notifier) < 0)
            ritual_log(srv->control, RITUAL_LOG_WARN, "server: no readiness round");
        ritual_loop_run(srv->control);
    }
    srv->running = 0;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        if (!srv->workers[i].started)
            continue;
        pthread_join(srv->workers[i].thread, NULL);
        srv->workers[i].started = false;
        if (rc == 0 && srv->workers[i].rc < 0 && srv->workers[i].rc != -ECANCELED)
            rc = srv->workers[i].rc;
    }
    if (rc == 0 && atomic_load(&srv->forced))
        rc = -ECANCELED;
    return rc;
}

static void post_shutdown(ritual_loop *loop, void *arg)
{
    ritual_loop_shutdown(loop, (uint64_t)(uintptr_t)arg);
}

static void post_stop(ritual_loop *loop, void *arg)
{
    (void)arg;
    ritual_loop_stop(loop);
}

void ritual_server_shutdown(ritual_server *srv, uint64_t drain_ms)
{
    atomic_store(&srv->stopping, true);
    ritual__notifier_stopping(srv->notifier);
    for (unsigned i = 0; i < srv->nworkers; i++)
        ritual_loop_post(srv->workers[i].loop, post_shutdown, (void *)(uintptr_t)drain_ms);
}

void ritual_server_stop(ritual_server *srv)
{
    atomic_store(&srv->forced, true);
    atomic_store(&srv->stopping, true);
    ritual__notifier_stopping(srv->notifier);
    for (unsigned i = 0; i < srv->nworkers; i++)
        ritual_loop_post(srv->workers[i].loop, post_stop, NULL);
}

/* First SIGINT/SIGTERM: every worker drains. Second: every worker stops. */
static void on_server_signal(ritual_signal *sig, int signum, void *data)
{
    ritual_server *srv = data;
    (void)sig;
    if (atomic_fetch_add(&srv->signals_seen, 1) == 0) {
        ritual_log(srv->control, RITUAL_LOG_INFO,
                   "SIG%s: shutting down %u worker%s (send it again to stop at once)",
                   sigabbrev_np(signum), srv->nworkers, srv->nworkers == 1 ? "" : "s");
        ritual_server_shutdown(srv, srv->drain_ms);
        return;
    }
    ritual_log(srv->control, RITUAL_LOG_WARN, "SIG%s again: stopping now", sigabbrev_np(signum));
    ritual_server_stop(srv);
}

int ritual_server_shutdown_on_signals(ritual_server *srv, uint64_t drain_ms)
{
    static const int signums[] = {SIGINT, SIGTERM};
    ritual_error err;
    srv->drain_ms = drain_ms;
    /* The control loop reads the signalfd; the signals are blocked in this
     * thread, so the workers, started from it, inherit the mask. */
    for (size_t i = 0; i < 2; i++)
        if (!ritual_signal_new(srv->control, signums[i], on_server_signal, srv, &err))
            return err.code;
    return 0;
}

ritual_signal *ritual_server_signal_new(ritual_server *srv, int signum, ritual_signal_cb cb,
                                        void *data, ritual_error *err)
{
    return ritual_signal_new(srv->control, signum, cb, data, err);
}

void ritual_server_free(ritual_server *srv)
{
    if (!srv)
        return;
    for (unsigned i = 0; i < srv->nworkers; i++)
        ritual_loop_free(srv->workers[i].loop);
    ritual_loop_free(srv->control);
    ritual__upgrade_free(srv->upgrade);
    ritual__notifier_free(srv->notifier);
    free(srv->workers);
    free(srv);
}

/* ------------------------------------------------------ for upgrade.c */

struct ritual_upgrade *ritual__server_upgrade(ritual_server *srv)
{
    return srv->upgrade;
}

bool ritual__server_threads_running(const ritual_server *srv)
{
    return srv->running > 0;
}

bool ritual__server_stopping(const ritual_server *srv)
{
    return atomic_load(&srv->stopping);
}

void ritual__server_hand_over(ritual_server *srv, uint64_t drain_ms)
{
    ritual__notifier_handed_over(srv->notifier);
    ritual_server_shutdown(srv, drain_ms);
}
