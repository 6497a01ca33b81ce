/* notify.c - systemd's notify protocol without libsystemd: one datagram of
 * "KEY=VALUE" lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a path,
 * or "@name" for an abstract one). A server says READY=1 once every worker
 * runs, STOPPING=1 when it begins to stop, and WATCHDOG=1 while every
 * worker's loop still answers a post. A process started by an upgrade also
 * writes READY=1 to the pipe named by RITUAL_UPGRADE_FD, which the old
 * process waits on. */
#include "notify.h"
#include "inherit.h"
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int ritual_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof sun.sun_path)
        return -EINVAL;
    memcpy(sun.sun_path, path, len);
    if (path[0] == '@')
        sun.sun_path[0] = '\0'; /* abstract: no file, no trailing NUL */
    socklen_t addr_len =
        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ssize_t n;
    do
        n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, addr_len);
    while (n < 0 && errno == EINTR);
    int rc = n < 0 ? -errno : 1;
    close(fd);
    return rc;
}

struct ritual_notifier {
    ritual_server *srv;
    bool notify;
    /* control thread only: */
    unsigned ready_answers, watchdog_answers;
    bool ready;
    ritual_timer *watchdog;
    uint64_t watchdog_us;
    /* any thread: */
    atomic_bool stopping_said, handed_over;
};

struct ritual_notifier *ritual__notifier_new(ritual_server *srv, bool notify)
{
    struct ritual_notifier *n = calloc(1, sizeof *n);
    if (n) {
        n->srv = srv;
        n->notify = notify;
    }
    return n;
}

void ritual__notifier_free(struct ritual_notifier *n)
{
    /* The watchdog timer goes with the control loop. */
    free(n);
}

static void log_failure(struct ritual_notifier *n, const char *what, int rc)
{
    if (rc < 0)
        ritual_log(ritual_server_control_loop(n->srv), RITUAL_LOG_WARN, "notify %s: %s", what,
                   ritual_strerror(rc));
}

/* $WATCHDOG_USEC, if it is meant for this process ($WATCHDOG_PID unset or
 * ours). 0: no watchdog. */
static uint64_t watchdog_usec(void)
{
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    char *end;
    if (!usec || !*usec)
        return 0;
    errno = 0;
    unsigned long long v = strtoull(usec, &end, 10);
    if (errno || *end || v == 0)
        return 0;
    if (pid && *pid) {
        long p = strtol(pid, &end, 10);
        if (*end || p != (long)getpid())
            return 0;
    }
    return (uint64_t)v;
}

/* The process that started this one by an upgrade waits for this line. */
static void tell_upgrader(struct ritual_notifier *n)
{
    const char *fd_text = getenv("RITUAL_UPGRADE_FD"), *pid = getenv("LISTEN_PID");
    char *end;
    if (!fd_text || !*fd_text || !pid || strtol(pid, &end, 10) != (long)getpid() || *end)
        return; /* not started by an upgrade (or the variable is a grandparent's) */
    long fd = strtol(fd_text, &end, 10);
    struct stat st;
    if (*end || fd < 3 || fd > 1 << 20 || fstat((int)fd, &st) < 0 || !S_ISFIFO(st.st_mode))
        return; /* told once already (closed), or not ours */
    ritual__inherit_close_unclaimed(ritual_server_control_loop(n->srv));
    static const char line[] = "READY=1\n";
    ssize_t w;
    do
        w = write((int)fd, line, sizeof line - 1);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        log_failure(n, "upgrade pipe", -errno); /* the old process went away */
    close((int)fd);
}

static void watchdog_pong(ritual_loop *control, void *arg)
{
    (void)control;
    struct ritual_notifier *n = arg;
    n->watchdog_answers++;
}

static void watchdog_ping(ritual_loop *worker, void *arg)
{
    (void)worker;
    struct ritual_notifier *n = arg;
    ritual_loop_post(ritual_server_control_loop(n->srv), watchdog_pong, n);
}

/* Every half period: WATCHDOG=1 if every worker answered the last round,
 * then a new round. A worker stuck in a callback never answers, the pings
 * stop, and the service manager acts. */
static void watchdog_fired(ritual_timer *timer, void *arg)
{
    (void)timer;
    struct ritual_notifier *n = arg;
    if (n->watchdog_answers >= ritual_server_workers(n->srv))
        log_failure(n, "WATCHDOG=1", ritual_notify("WATCHDOG=1"));
    n->watchdog_answers = 0;
    (void)ritual_server_post_all(n->srv, watchdog_ping, n);
}

static void all_running(struct ritual_notifier *n)
{
    ritual_loop *control = ritual_server_control_loop(n->srv);
    n->ready = true;
    if (n->notify) {
        char state[64];
        snprintf(state, sizeof state, "READY=1\nMAINPID=%ld", (long)getpid());
        log_failure(n, "READY=1", ritual_notify(state));
        n->watchdog_us = watchdog_usec();
    }
    tell_upgrader(n);
    if (n->watchdog_us == 0)
        return;
    n->watchdog_answers = ritual_server_workers(n->srv); /* the first ping is free */
    n->watchdog = ritual_timer_new(control, watchdog_fired, n);
    if (!n->watchdog || ritual_timer_start_us(n->watchdog, 0, n->watchdog_us / 2) < 0)
        log_failure(n, "watchdog", -ENOMEM);
}

static void ready_pong(ritual_loop *control, void *arg)
{
    (void)control;
    struct ritual_notifier *n = arg;
    if (++n->ready_answers == ritual_server_workers(n->srv))
        all_running(n);
}

static void ready_ping(ritual_loop *worker, void *arg)
{
    (void)worker;
    struct ritual_notifier *n = arg;
    ritual_loop_post(ritual_server_control_loop(n->srv), ready_pong, n);
}

int ritual__notifier_start(struct ritual_notifier *n)
{
    /* A post runs once its loop runs: every worker answering is every
     * worker's loop running, its listeners registered. */
    n->ready_answers = 0;
    return ritual_server_post_all(n->srv, ready_ping, n);
}

void ritual__notifier_stopping(struct ritual_notifier *n)
{
    if (!n->notify || atomic_load(&n->handed_over) || atomic_exchange(&n->stopping_said, true))
        return;
    int rc = ritual_notify("STOPPING=1");
    if (rc < 0)
        log_failure(n, "STOPPING=1", rc);
}

void ritual__notifier_handed_over(struct ritual_notifier *n)
{
    atomic_store(&n->handed_over, true);
}
