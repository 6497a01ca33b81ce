/* listener.c - the listening ritual (socket, SO_REUSEADDR, bind, listen),
 * done once and checked at every step, and the accept loop with its guards:
 * a per-wake-up cap, retries for transient errors, and a pause with backoff
 * when file descriptors run out. */
#include "address.h"
#include "conn.h"
#include "inherit.h"
#include "io.h"
#include "listener.h"
#include "loop.h"
#include "proxy.h"
#include "tls/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ACCEPT_BATCH 64 /* accepts per wake-up, so open connections are not starved */
#define EMFILE_BACKOFF_MIN_NS (50 * RITUAL_NS_PER_MS)
#define EMFILE_BACKOFF_MAX_NS (1000 * RITUAL_NS_PER_MS)

/* net.core.somaxconn is the kernel's cap on any backlog: asking for it gets
 * the largest queue the administrator allows, not the 5 of old examples. */
static int system_backlog(void)
{
    int backlog = SOMAXCONN;
    FILE *f = fopen("/proc/sys/net/core/somaxconn", "re");
    if (f) {
        int v;
        if (fscanf(f, "%d", &v) == 1 && v > 0)
            backlog = v;
        fclose(f);
    }
    return backlog;
}

/* socket + options + bind + listen; returns the fd or a negative errno with
 * `err` naming the call and the address. */
static int open_listening_socket(const struct sockaddr_storage *addr, bool any_host, int backlog,
                                 bool reuseport, ritual_error *err)
{
    char where[80];
    socklen_t len =
        addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    ritual__address_format((const struct sockaddr *)addr, where, sizeof where);

    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ritual_error_set(err, -errno, "socket %s", where);
    int one = 1, zero = 0;
    /* A restart must bind while old connections sit in TIME_WAIT. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        goto fail_setsockopt;
    /* Several sockets on one port, the kernel spreading connections over them. */
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        goto fail_setsockopt;
    /* "All addresses" on [::] takes IPv4 too, whatever the sysctl default. */
    if (any_host && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0)
        goto fail_setsockopt;
    if (bind(fd, (const struct sockaddr *)addr, len) < 0) {
        int e = -errno;
        close(fd);
        return ritual_error_set(err, e, "bind %s", where);
    }
    if (listen(fd, backlog) < 0) {
        int e = -errno;
        close(fd);
        return ritual_error_set(err, e, "listen %s", where);
    }
    return fd;

fail_setsockopt : {
    int e = -errno;
    close(fd);
    return ritual_error_set(err, e, "setsockopt %s", where);
}
}

int ritual__listen_socket(ritual_loop *loop, const char *address,
                          const ritual_listen_options *options,
                          const ritual_conn_callbacks *callbacks, ritual_error *err)
{
    struct sockaddr_storage addr;
    socklen_t addr_len;
    bool any_host;
    int rc = ritual__endpoint_prepare(loop, "listen", address, callbacks, &addr, &addr_len,
                                      &any_host, err);
    if (rc < 0)
        return rc;
    int backlog = options->backlog > 0 ? options->backlog : system_backlog();
    if (addr.ss_family == AF_UNIX)
        return ritual__unix_listen_socket(&addr, addr_len, backlog, options, err);
    bool reuseport = options->flags & RITUAL_LISTEN_REUSEPORT;
    int fd = open_listening_socket(&addr, any_host, backlog, reuseport, err);
    if (fd == -EAFNOSUPPORT && any_host) {
        /* No IPv6 in this kernel: all IPv4 addresses it is. */
        struct sockaddr_in *sin = (struct sockaddr_in *)&addr;
        uint16_t port = ((struct sockaddr_in6 *)&addr)->sin6_port;
        memset(&addr, 0, sizeof addr);
        sin->sin_family = AF_INET;
        sin->sin_port = port;
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        fd = open_listening_socket(&addr, false, backlog, reuseport, err);
    }
    return fd;
}

ritual_listener *ritual__listener_attach(ritual_loop *loop, int fd, bool exclusive,
                                         const ritual_listen_options *options,
                                         const ritual_conn_callbacks *callbacks, ritual_error *err)
{
    ritual_listener *l = calloc(1, sizeof *l);
    socklen_t len = sizeof l->addr;
    int rc = l ? 0 : -ENOMEM;
    if (rc == 0 && getsockname(fd, (struct sockaddr *)&l->addr, &len) < 0)
        rc = -errno;
    if (rc == 0) {
        l->profile.opts = options->conn;
        ritual__conn_options_defaults(&l->profile.opts);
        rc = ritual__loop_reserve_rbuf(loop, l->profile.opts.read_buffer_size);
    }
    if (rc == 0) {
        rc = ritual__proxy_trust_parse(options->proxy_from, options->proxy_timeout_ms, &l->proxy,
                                       err);
        if (rc == -EINVAL) { /* `err` says which entry */
            close(fd);
            free(l);
            return NULL;
        }
    }
    if (rc == 0) {
        l->io.fd = fd;
        l->io.kind = RITUAL_IO_LISTENER;
        l->io.exclusive = exclusive;
        rc = ritual__io_set(loop, &l->io, RITUAL_IO_READ);
    }
    if (rc < 0) {
        char where[80] = "?";
        if (l)
            ritual__address_format((const struct sockaddr *)&l->addr, where, sizeof where);
        ritual_error_set(err, rc, "listen %s", where);
        close(fd);
        if (l)
            free(l->proxy);
        free(l);
        return NULL;
    }
    l->loop = loop;
    l->profile.cbs = *callbacks;
    l->profile.loop = loop;
    l->profile.listener = l;
    l->data = options->data;
    l->protocol_data = options->protocol_data;
    if (options->tls) {
        ritual__tls_use(options->tls);
        l->profile.tls = options->tls;
        l->profile.tls_plaintext = (options->flags & RITUAL_LISTEN_TLS_PLAINTEXT) != 0;
    }
    l->profile.local = l->addr.ss_family == AF_UNIX;
    l->max_conns = options->max_conns;
    l->io.accept_all = options->max_conns == 0;
    l->refs = 1;
    ritual__timer_node_init(&l->retry_timer, RITUAL_TIMER_LOOP);
    ritual_list_add_tail(&loop->listeners, &l->link);
    if (ritual__log_enabled(loop, RITUAL_LOG_DEBUG)) {
        char where[80];
        ritual_listener_address(l, where, sizeof where);
        ritual_log(loop, RITUAL_LOG_DEBUG, "listening on %s", where);
    }
    return l;
}

ritual_listener *ritual_listen(ritual_loop *loop, const char *address,
                               const ritual_listen_options *options,
                               const ritual_conn_callbacks *callbacks, ritual_error *err)
{
    ritual_listen_options defaults;
    memset(&defaults, 0, sizeof defaults);
    if (!options)
        options = &defaults;
    if (ritual__proxy_trust_check(options, err) < 0)
        return NULL; /* before any socket is made */
    ritual_listener *l;
    if (ritual__listen_inherited(loop, address, options, callbacks, &l, err))
        return l; /* fd:N, systemd:NAME, or sockets an upgrade passed on */
    int fd = ritual__listen_socket(loop, address, options, callbacks, err);
    if (fd < 0)
        return NULL;
    l = ritual__listener_attach_new(loop, fd, false, options, callbacks, err);
    if (l && ritual__listener_set_name(l, address, err) < 0) {
        ritual_listener_close(l);
        return NULL;
    }
    return l;
}

ritual_listener *ritual__listener_attach_new(ritual_loop *loop, int fd, bool exclusive,
                                             const ritual_listen_options *options,
                                             const ritual_conn_callbacks *callbacks,
                                             ritual_error *err)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    memset(&addr, 0, sizeof addr);
    if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0)
        addr.ss_family = AF_UNSPEC;
    ritual_listener *l = ritual__listener_attach(loop, fd, exclusive, options, callbacks, err);
    if (l)
        ritual__unix_file_claim(l);
    else
        ritual__unix_file_unlink(&addr); /* bound just now, by us */
    return l;
}

int ritual__listener_set_name(ritual_listener *l, const char *address, ritual_error *err)
{
    char *copy = strdup(address);
    if (!copy)
        return ritual_error_set(err, -ENOMEM, "listen %s", address);
    free(l->address);
    l->address = copy;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    l->named_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    return 0;
}

/* ------------------------------------------------------------------ accept */

static bool at_max_conns(const ritual_listener *l)
{
    return l->max_conns && l->conns >= l->max_conns;
}

/* Listen for new connections unless closed, out of fds or full. */
static void update_interest(ritual_listener *l)
{
    if (l->closed)
        return;
    unsigned want = (l->emfile_paused || at_max_conns(l)) ? 0 : RITUAL_IO_READ;
    int rc = ritual__io_set(l->loop, &l->io, want);
    if (rc < 0)
        ritual_log(l->loop, RITUAL_LOG_ERROR, "listener: %s", ritual_strerror(rc));
}

/* Out of file descriptors (or kernel memory). Accepting again at once would
 * spin, since the pending connection stays ready; instead stop watching the
 * socket, and try again when one of our connections closes or after a
 * backoff, whichever comes first. Clients wait in the backlog meanwhile. */
static void pause_for_fds(ritual_listener *l, int error)
{
    ritual_loop *loop = l->loop;
    /* Ask the application once per shortage: had it closed descriptors and
     * its own requests taken them again before the retry, asking again at
     * once would trade a failed accept for reopened files, round after
     * round, with the backlog unserved. A second shortage before an accept
     * succeeds takes the backoff below. */
    bool ask = (error == -EMFILE || error == -ENFILE) && loop->fds_short && !l->shed_asked;
    size_t freed = ask ? loop->fds_short(loop, loop->fds_short_arg) : 0;
    if (l->closed) /* a hook that broke its contract and closed this listener */
        return;
    if (freed > 0) {
        /* The application closed descriptors it kept only as a cache:
         * accept again at the next iteration. Through the same pause and
         * timer on every backend (a completion backend's accept must be
         * submitted again). */
        l->shed_asked = true;
        l->emfile_paused = true;
        if (ritual__timer_node_schedule(loop, &l->retry_timer, loop->now) < 0)
            l->emfile_paused = false;
        update_interest(l);
        return;
    }
    if (l->emfile_backoff_ns == 0) {
        char where[80];
        ritual_listener_address(l, where, sizeof where);
        ritual_log(loop, RITUAL_LOG_WARN, "accept %s: %s; pausing accepts until a descriptor frees",
                   where, ritual_strerror(error));
        l->emfile_backoff_ns = EMFILE_BACKOFF_MIN_NS;
    } else {
        /* Still short: wait longer before the next try, up to the cap. */
        l->emfile_backoff_ns = l->emfile_backoff_ns * 2 < EMFILE_BACKOFF_MAX_NS
                                   ? l->emfile_backoff_ns * 2
                                   : EMFILE_BACKOFF_MAX_NS;
    }
    l->emfile_paused = true;
    if (ritual__timer_node_schedule(loop, &l->retry_timer, loop->now + l->emfile_backoff_ns) < 0)
        l->emfile_paused = false; /* no timer to wake us: keep polling rather than stall */
    update_interest(l);
}

static void resume_after_fds(ritual_listener *l)
{
    if (!l->emfile_paused)
        return;
    l->emfile_paused = false;
    ritual__timer_node_cancel(l->loop, &l->retry_timer);
    update_interest(l);
}

void ritual__listener_retry_fired(ritual_listener *l)
{
    /* Watch the socket again; if fds are still short the next accept says
     * so and pauses again with a longer backoff. */
    l->emfile_paused = false;
    update_interest(l);
}

/* What accept gave: a new connection's fd, or minus errno. Returns true if
 * accepting should go on. */
static bool take_accepted(ritual_listener *l, int fd)
{
    if (fd >= 0) {
        l->shed_asked = false;
        if (l->emfile_backoff_ns) {
            l->emfile_backoff_ns = 0;
            ritual_log(l->loop, RITUAL_LOG_INFO, "accept: descriptors available again");
        }
        ritual_conn *conn;
        int rc = ritual__conn_open(l->loop, &l->profile, fd, false, &conn);
        if (rc < 0)
            ritual_log(l->loop, RITUAL_LOG_ERROR, "accept: %s", ritual_strerror(rc));
        return true;
    }
    switch (-fd) {
    case EAGAIN:
        return false;
    case EINTR:
    case ECONNABORTED: /* the client gave up while queued */
    case EPROTO:
    case EPERM:     /* a firewall rule refused it */
    case ECANCELED: /* a completion backend stopped accepting */
        return true;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        pause_for_fds(l, fd);
        return false;
    default:
        /* Network errors pending on the new socket (ENETDOWN, EHOSTUNREACH,
         * ...) belong to that connection, not to us; Linux hands them out
         * through accept. Log and go on. */
        ritual_log(l->loop, RITUAL_LOG_DEBUG, "accept: %s", strerror(-fd));
        return true;
    }
}

void ritual__listener_ready(ritual_listener *l, unsigned events)
{
    (void)events;
    for (int i = 0; i < ACCEPT_BATCH && !l->closed; i++) {
        if (at_max_conns(l)) {
            update_interest(l); /* clients wait in the backlog until one closes */
            return;
        }
        int fd = accept4(l->io.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (!take_accepted(l, fd < 0 ? -errno : fd))
            return;
    }
}

void ritual__listener_accepted(ritual_listener *l, int fd)
{
    if (fd >= 0 && (l->closed || l->loop->freeing)) {
        /* The kernel accepted it before the close took effect. A graceful
         * shutdown serves it, as it serves what the backlog held (while the
         * listener lives on through its connections); an explicit close
         * or a loop being freed drops it. */
        ritual_conn *conn;
        if (!l->drained || l->refs == 0 || l->loop->freeing) {
            close(fd);
        } else if (ritual__conn_open(l->loop, &l->profile, fd, false, &conn) == 0 &&
                   l->loop->shutting_down && l->profile.cbs.on_shutdown &&
                   ritual__tls_opened(conn) && !ritual__proxy_pending(conn) &&
                   !(conn->flags & (CONN_CLOSED | CONN_CLOSING | CONN_LINGERING))) {
            l->profile.cbs.on_shutdown(conn); /* told like the others were */
        }
        return;
    }
    if (fd >= 0 || !l->closed)
        (void)take_accepted(l, fd);
}

void ritual__listener_conn_closed(ritual_listener *l)
{
    bool was_full = at_max_conns(l);
    l->conns--;
    if (l->emfile_paused)
        resume_after_fds(l); /* a descriptor just came free */
    else if (was_full)
        update_interest(l);
}

/* -------------------------------------------------------------- lifetime */

/* The listener's memory, and its reference on a TLS configuration. */
static void listener_free(ritual_listener *l)
{
    ritual_tls_free(l->profile.tls);
    free(l->proxy);
    free(l->address);
    free(l);
}

void ritual__listener_unref(ritual_listener *l)
{
    if (--l->refs == 0) {
        /* Freed at the end of the iteration: an event for it may still be
         * waiting in this iteration's batch. */
        ritual_list_add_tail(&l->loop->dead_listeners, &l->link);
    }
}

void ritual__listeners_reap(ritual_loop *loop)
{
    while (!ritual_list_empty(&loop->dead_listeners)) {
        ritual_listener *l = ritual_container_of(loop->dead_listeners.next, ritual_listener, link);
        ritual_list_del(&l->link);
        if (l->io.busy) { /* the kernel still has its accept: freed when that ends */
            l->reaped = true;
            ritual_list_add_tail(&loop->zombie_listeners, &l->link);
            continue;
        }
        listener_free(l);
    }
}

static void wake_only(ritual_loop *loop, void *arg)
{
    (void)loop;
    (void)arg;
}

void ritual__listener_released(ritual_listener *l)
{
    if (l->held) {
        /* The kernel's last accept for it is done (each it completed was
         * served): the drain may end now. */
        ritual_loop *loop = l->loop;
        l->held = false;
        ritual_list_del(&l->link);
        ritual__listener_unref(l);
        ritual__loop_check_drained(loop);
        /* The backend may let go while it prepares a wait (io_uring's
         * walk), which would then sleep until the next timer: the drain's
         * deadline. A post wakes it to see that the loop stops. */
        if (loop->stopping)
            (void)ritual_loop_post(loop, wake_only, NULL);
        return;
    }
    if (!l->reaped)
        return; /* still open, or reaped later */
    ritual_list_del(&l->link);
    listener_free(l);
}

void ritual__listener_drain_and_close(ritual_listener *l)
{
    /* Connections the kernel completed are in our queue: take them before
     * closing, or close() would reset them. With SO_REUSEPORT this is what
     * keeps a worker's shutdown from dropping the clients hashed to it.
     * Unless an upgrade's new process holds the socket too: the queue is
     * its to serve, and taking it here would only close those connections
     * again at once, unanswered. */
    while (!l->closed && !l->passed_on && !l->emfile_paused && !at_max_conns(l)) {
        int fd = accept4(l->io.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break;
        }
        ritual_conn *conn;
        int rc = ritual__conn_open(l->loop, &l->profile, fd, false, &conn);
        if (rc < 0)
            ritual_log(l->loop, RITUAL_LOG_ERROR, "accept: %s", ritual_strerror(rc));
    }
    l->drained = true;
    ritual_listener_close(l);
}

int ritual_listener_adopt(ritual_listener *l, int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (l->closed || l->loop->freeing || flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        int rc = flags < 0 || !(l->closed || l->loop->freeing) ? -errno : -EINVAL;
        close(fd);
        return rc;
    }
    ritual_conn *conn;
    return ritual__conn_open(l->loop, &l->profile, fd, false, &conn);
}

void ritual_listener_close(ritual_listener *l)
{
    if (l->closed)
        return;
    l->closed = true;
    ritual__timer_node_cancel(l->loop, &l->retry_timer);
    ritual__io_forget(l->loop, &l->io);
    close(l->io.fd);
    l->io.fd = -1;
    ritual__unix_file_release(l);
    ritual_list_del(&l->link);
    if (l->drained && l->io.busy && !l->loop->freeing) {
        /* A completion backend's accept may still complete, and take a
         * client off a queue another process (an upgrade's) or another
         * worker serves on: the listener lives on, serving what it takes,
         * and the drain waits, until the backend lets go of it. */
        l->held = true;
        ritual_list_add_tail(&l->loop->held_listeners, &l->link);
        return;
    }
    ritual__listener_unref(l);
}

int ritual_listener_address(const ritual_listener *l, char *buf, size_t len)
{
    return ritual__address_format((const struct sockaddr *)&l->addr, buf, len);
}

int ritual_listener_port(const ritual_listener *l)
{
    if (l->addr.ss_family == AF_UNIX)
        return 0;
    if (l->addr.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&l->addr)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&l->addr)->sin_port);
}

ritual_tls *ritual_listener_tls(const ritual_listener *l)
{
    return l->profile.tls;
}

void *ritual_listener_data(const ritual_listener *l)
{
    return l->data;
}

void *ritual_listener_protocol_data(const ritual_listener *l)
{
    return l->protocol_data;
}

size_t ritual_listener_conn_count(const ritual_listener *l)
{
    return l->conns;
}
