/* upgrade.c - nginx's binary upgrade for a ritual_server: a new process
 * (the executable installed now, same arguments) inherits every listening
 * socket, the way systemd passes them (LISTEN_PID, LISTEN_FDS,
 * LISTEN_FDNAMES, each socket named by the address string it was made
 * with), and says READY=1 on a pipe once its workers run. Only then does
 * this process stop accepting and drain: until that moment it serves, and
 * what the kernel queues meanwhile waits in sockets both processes hold,
 * so nothing queued is lost and nothing is refused. If the new process
 * dies or is not ready in time, this one never stopped. */
#include "inherit.h"
#include "listener.h"
#include "loop.h"
#include "server.h"
#include "upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define LISTEN_FDS_START 3
#define COLLECT_WAIT_S 5 /* workers answer a post in microseconds; this is a guard */
#define PID_DIGITS 20

struct passed_socket {
    int fd; /* a dup, close-on-exec, ours */
    char *name;
    dev_t dev;
    ino_t ino;
    uint64_t named_ns;             /* the listener's (listener.h) */
    struct sockaddr_storage bound; /* one port (path) per group */
    unsigned group;                /* 1: the first group of its name, ... */
};

struct ritual_upgrade {
    ritual_server *srv;
    char exe[PATH_MAX];
    /* Filled by the workers' loops while the control thread waits. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool collecting;
    unsigned replies;
    int collect_error;
    struct passed_socket *socks;
    size_t nsocks, cap;
    /* An upgrade under way: control thread only. */
    bool busy;
    pid_t pid;
    int ready_fd;
    ritual_watch *watch;
    ritual_timer *timer;
    char heard[64];
    size_t heard_len;
    uint64_t drain_ms;
    void (*on_done)(ritual_server *server, int pid, int error, void *data);
    void *data;
};

struct ritual_upgrade *ritual__upgrade_new(ritual_server *srv)
{
    struct ritual_upgrade *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    if (pthread_mutex_init(&u->lock, NULL) != 0) {
        free(u);
        return NULL;
    }
    if (pthread_cond_init(&u->cond, NULL) != 0) {
        pthread_mutex_destroy(&u->lock);
        free(u);
        return NULL;
    }
    u->srv = srv;
    u->ready_fd = -1;
    /* The file this process runs: once a new build is installed over it,
     * the link reads "/usr/local/bin/ritual (deleted)", and the new file
     * is at the path without the suffix. */
    ssize_t n = readlink("/proc/self/exe", u->exe, sizeof u->exe - 1);
    if (n < 0)
        n = 0;
    u->exe[n] = '\0';
    static const char deleted[] = " (deleted)";
    size_t dl = sizeof deleted - 1;
    if ((size_t)n > dl && strcmp(u->exe + n - dl, deleted) == 0)
        u->exe[n - dl] = '\0';
    return u;
}

static void drop_sockets(struct ritual_upgrade *u)
{
    for (size_t i = 0; i < u->nsocks; i++) {
        if (u->socks[i].fd >= 0)
            close(u->socks[i].fd);
        free(u->socks[i].name);
    }
    u->nsocks = 0;
}

void ritual__upgrade_free(struct ritual_upgrade *u)
{
    if (!u)
        return;
    drop_sockets(u);
    free(u->socks);
    if (u->ready_fd >= 0)
        close(u->ready_fd); /* the watch and timer went with the control loop */
    pthread_cond_destroy(&u->cond);
    pthread_mutex_destroy(&u->lock);
    free(u);
}

/* ------------------------------------------------------------ collecting */

/* Takes a descriptor of every listening socket of `loop`, on its thread. */
static int collect_loop(struct ritual_upgrade *u, ritual_loop *loop)
{
    int rc = 0;
    for (struct ritual_list *pos = loop->listeners.next; pos != &loop->listeners; pos = pos->next) {
        ritual_listener *l = ritual_container_of(pos, ritual_listener, link);
        if (l->closed || l->io.fd < 0)
            continue;
        char shown[128];
        const char *name = l->address;
        if (!name) {
            if (ritual_listener_address(l, shown, sizeof shown) < 0)
                continue; /* nothing to call it by: the new process would not ask */
            name = shown;
        }
        struct passed_socket s = {.fd = fcntl(l->io.fd, F_DUPFD_CLOEXEC, 0)};
        struct stat st;
        if (s.fd < 0 || fstat(s.fd, &st) < 0 || !(s.name = strdup(name))) {
            rc = s.fd < 0 || errno != 0 ? -errno : -ENOMEM;
            if (s.fd >= 0)
                close(s.fd);
            break;
        }
        s.dev = st.st_dev;
        s.ino = st.st_ino;
        s.named_ns = l->named_ns;
        socklen_t len = sizeof s.bound;
        memset(&s.bound, 0, sizeof s.bound);
        (void)getsockname(s.fd, (struct sockaddr *)&s.bound, &len); /* zeros: one group */
        if (u->nsocks == u->cap) {
            size_t cap = u->cap ? u->cap * 2 : 16;
            struct passed_socket *grown = realloc(u->socks, cap * sizeof *grown);
            if (!grown) {
                close(s.fd);
                free(s.name);
                rc = -ENOMEM;
                break;
            }
            u->socks = grown;
            u->cap = cap;
        }
        u->socks[u->nsocks++] = s;
    }
    return rc;
}

static void collect_posted(ritual_loop *loop, void *arg)
{
    struct ritual_upgrade *u = arg;
    pthread_mutex_lock(&u->lock);
    if (u->collecting) { /* else the control thread gave up waiting */
        int rc = collect_loop(u, loop);
        if (rc < 0 && u->collect_error == 0)
            u->collect_error = rc;
        u->replies++;
        pthread_cond_signal(&u->cond);
    }
    pthread_mutex_unlock(&u->lock);
}

static bool same_group(const struct passed_socket *a, const struct passed_socket *b)
{
    return strcmp(a->name, b->name) == 0 && memcmp(&a->bound, &b->bound, sizeof a->bound) == 0;
}

/* When the group of socks[i] was made: its first socket's time. */
static uint64_t group_made(const struct ritual_upgrade *u, size_t i)
{
    uint64_t first = UINT64_MAX;
    for (size_t j = 0; j < u->nsocks; j++)
        if (same_group(&u->socks[i], &u->socks[j]) && u->socks[j].named_ns < first)
            first = u->socks[j].named_ns;
    return first;
}

/* Sockets of one name and one bound address are one group (a
 * SO_REUSEPORT set, one per worker). Two groups share a name only when an
 * address string was used twice ("127.0.0.1:0" for the site and for the
 * metrics): numbered in the order they were made, they are taken in that
 * order by the new process, whose calls come in the same order. */
static void number_groups(struct ritual_upgrade *u)
{
    for (size_t i = 0; i < u->nsocks; i++) {
        uint64_t made = group_made(u, i);
        u->socks[i].group = 1;
        for (size_t j = 0; j < u->nsocks; j++) {
            bool leader = strcmp(u->socks[j].name, u->socks[i].name) == 0 &&
                          !same_group(&u->socks[i], &u->socks[j]);
            for (size_t k = 0; k < j && leader; k++)
                leader = !same_group(&u->socks[k], &u->socks[j]);
            if (leader && group_made(u, j) < made)
                u->socks[i].group++;
        }
    }
}

/* Every listening socket of the server, once each (a shared socket has a
 * descriptor per worker). Returns 0 or a negative errno. */
static int collect(struct ritual_upgrade *u)
{
    ritual_server *srv = u->srv;
    unsigned n = ritual_server_workers(srv);
    drop_sockets(u);
    pthread_mutex_lock(&u->lock);
    u->collecting = true;
    u->replies = 0;
    u->collect_error = collect_loop(u, ritual_server_control_loop(srv));
    if (!ritual__server_threads_running(srv)) {
        for (unsigned i = 0; i < n && u->collect_error == 0; i++)
            u->collect_error = collect_loop(u, ritual_server_loop(srv, i));
        u->replies = n;
    } else {
        /* Each loop's listener list is its own thread's: ask, and wait. */
        for (unsigned i = 0; i < n; i++)
            if (ritual_loop_post(ritual_server_loop(srv, i), collect_posted, u) < 0)
                u->replies++; /* a loop being freed has nothing to pass on */
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += COLLECT_WAIT_S;
        while (u->replies < n)
            if (pthread_cond_timedwait(&u->cond, &u->lock, &deadline) == ETIMEDOUT)
                break;
    }
    int rc = u->replies < n ? -ETIMEDOUT : u->collect_error;
    u->collecting = false;
    pthread_mutex_unlock(&u->lock);
    if (rc < 0)
        return rc;
    /* A socket shared by the workers has a descriptor in each. */
    size_t kept = 0;
    for (size_t i = 0; i < u->nsocks; i++) {
        bool seen = false;
        for (size_t j = 0; j < kept && !seen; j++)
            seen = u->socks[j].dev == u->socks[i].dev && u->socks[j].ino == u->socks[i].ino;
        if (seen) {
            close(u->socks[i].fd);
            free(u->socks[i].name);
        } else {
            u->socks[kept++] = u->socks[i];
        }
    }
    u->nsocks = kept;
    number_groups(u);
    return u->nsocks > 0 ? 0 : -ENOENT;
}

/* ------------------------------------------------------- the new process */

/* What the child is given, all made before fork: after fork only
 * async-signal-safe calls run in it. */
struct spawn {
    const char *path;
    char *const *argv;
    char **own_argv; /* this process's, from /proc/self/cmdline */
    char *argv_buf;
    char **envp;
    char *listen_pid;   /* "LISTEN_PID=" and PID_DIGITS spaces, filled in the child */
    char *listen_fds;   /* "LISTEN_FDS=k" */
    char *listen_names; /* "LISTEN_FDNAMES=..." */
    char *upgrade_fd;   /* "RITUAL_UPGRADE_FD=n" */
    int *high;          /* the sockets above where they go, then the pipe */
    size_t k;
};

static void spawn_free(struct spawn *s)
{
    if (s->high)
        for (size_t i = 0; i <= s->k; i++)
            if (s->high[i] >= 0)
                close(s->high[i]);
    free(s->high);
    free(s->own_argv);
    free(s->argv_buf);
    free(s->envp);
    free(s->listen_pid);
    free(s->listen_fds);
    free(s->listen_names);
    free(s->upgrade_fd);
}

/* This process's arguments, from /proc/self/cmdline. */
static int own_argv(struct spawn *s)
{
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) {
            close(fd);
            return -ENOMEM;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == cap) {
            cap *= 2;
            char *grown = realloc(buf, cap + 1);
            if (!grown)
                free(buf);
            buf = grown;
        }
    }
    close(fd);
    if (!buf)
        return -ENOMEM;
    buf[len] = '\0';
    size_t count = 0;
    for (size_t i = 0; i < len; i++)
        count += buf[i] == '\0';
    s->own_argv = calloc(count + 1, sizeof *s->own_argv);
    s->argv_buf = buf;
    if (!s->own_argv || count == 0)
        return s->own_argv ? -ENOENT : -ENOMEM;
    for (size_t i = 0, at = 0; i < count; i++) {
        s->own_argv[i] = buf + at;
        at += strlen(buf + at) + 1;
    }
    s->argv = s->own_argv;
    return 0;
}

static bool replaced(const char *entry)
{
    static const char *const names[] = {
        "LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES=", "RITUAL_UPGRADE_FD=", "WATCHDOG_PID="};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strncmp(entry, names[i], strlen(names[i])) == 0)
            return true;
    return false;
}

/* The environment with this upgrade's LISTEN_* in place of any others.
 * WATCHDOG_USEC stays (the new process takes the pings over); WATCHDOG_PID
 * goes (it would name this one). */
static int build_env(struct spawn *s, struct ritual_upgrade *u)
{
    size_t names_len = 32;
    for (size_t i = 0; i < u->nsocks; i++)
        names_len += strlen(u->socks[i].name) * 3 + 12;
    s->listen_names = malloc(names_len);
    s->listen_pid = malloc(sizeof "LISTEN_PID=" + PID_DIGITS);
    s->listen_fds = malloc(48);
    s->upgrade_fd = malloc(48);
    size_t n = 0;
    for (char **e = environ; *e; e++)
        n++;
    s->envp = calloc(n + 5, sizeof *s->envp);
    if (!s->listen_names || !s->listen_pid || !s->listen_fds || !s->upgrade_fd || !s->envp)
        return -ENOMEM;
    size_t at = (size_t)snprintf(s->listen_names, names_len, "LISTEN_FDNAMES=");
    for (size_t i = 0; i < u->nsocks; i++) {
        if (i > 0)
            s->listen_names[at++] = ':';
        if (ritual__inherit_encode(u->socks[i].name, s->listen_names + at, names_len - at) < 0)
            return -ENOSPC;
        at += strlen(s->listen_names + at);
        if (u->socks[i].group > 1) /* '#' is encoded in names: this one is ours */
            at += (size_t)snprintf(s->listen_names + at, names_len - at, "#%u", u->socks[i].group);
    }
    memset(s->listen_pid, ' ', sizeof "LISTEN_PID=" + PID_DIGITS);
    memcpy(s->listen_pid, "LISTEN_PID=", sizeof "LISTEN_PID=" - 1);
    s->listen_pid[sizeof "LISTEN_PID=" - 1 + PID_DIGITS] = '\0';
    snprintf(s->listen_fds, 48, "LISTEN_FDS=%zu", u->nsocks);
    snprintf(s->upgrade_fd, 48, "RITUAL_UPGRADE_FD=%zu", LISTEN_FDS_START + u->nsocks);
    size_t j = 0;
    for (char **e = environ; *e; e++)
        if (!replaced(*e))
            s->envp[j++] = *e;
    s->envp[j++] = s->listen_pid;
    s->envp[j++] = s->listen_fds;
    s->envp[j++] = s->listen_names;
    s->envp[j++] = s->upgrade_fd;
    s->envp[j] = NULL;
    return 0;
}

/* In the child, between fork and execve: async-signal-safe calls only. */
__attribute__((noreturn)) static void child(struct spawn *s)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* the server's signals were blocked */
    for (size_t i = 0; i <= s->k; i++)
        while (dup2(s->high[i], (int)(LISTEN_FDS_START + i)) < 0)
            if (errno != EINTR)
                _exit(127);
    char digits[PID_DIGITS];
    size_t n = 0;
    for (long pid = (long)getpid(); pid > 0 && n < sizeof digits; pid /= 10)
        digits[n++] = (char)('0' + pid % 10);
    char *out = s->listen_pid + sizeof "LISTEN_PID=" - 1;
    while (n > 0)
        *out++ = digits[--n];
    *out = '\0';
    execve(s->path, s->argv, s->envp);
    _exit(127);
}

/* ------------------------------------------------------ waiting for READY */

static void finish(struct ritual_upgrade *u, int error)
{
    ritual_watch_free(u->watch);
    ritual_timer_free(u->timer);
    u->watch = NULL;
    u->timer = NULL;
    close(u->ready_fd);
    u->ready_fd = -1;
    u->busy = false;
    if (error < 0) {
        /* It will not serve: make sure it is gone, and reap it. SIGKILL,
         * not SIGTERM: a half-started server draining would remove the
         * socket files it inherited from under this one. */
        int status = 0;
        pid_t r;
        while ((r = waitpid(u->pid, &status, WNOHANG)) < 0 && errno == EINTR)
            ;
        if (r == 0) {
            kill(u->pid, SIGKILL);
            while ((r = waitpid(u->pid, &status, 0)) < 0 && errno == EINTR)
                ;
        }
        if (r == u->pid && error == -ECHILD)
            ritual_log(ritual_server_control_loop(u->srv), RITUAL_LOG_INFO,
                       "upgrade: PID %d %s %d before it was ready", (int)u->pid,
                       WIFEXITED(status) ? "exited with status" : "was killed by signal",
                       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    if (u->on_done)
        u->on_done(u->srv, (int)u->pid, error, u->data);
}

static void mark_passed_on(ritual_loop *loop, void *arg)
{
    (void)arg;
    for (struct ritual_list *pos = loop->listeners.next; pos != &loop->listeners; pos = pos->next)
        ritual_container_of(pos, ritual_listener, link)->passed_on = true;
}

static void ready(struct ritual_upgrade *u)
{
    ritual_server *srv = u->srv;
    mark_passed_on(ritual_server_control_loop(srv), NULL);
    (void)ritual_server_post_all(srv, mark_passed_on, NULL); /* before the shutdown's posts */
    finish(u, 0);
    ritual__server_hand_over(srv, u->drain_ms);
}

static void ready_readable(ritual_watch *watch, unsigned events, void *data)
{
    (void)watch;
    (void)events;
    struct ritual_upgrade *u = data;
    for (;;) {
        ssize_t n = read(u->ready_fd, u->heard + u->heard_len, sizeof u->heard - 1 - u->heard_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            finish(u, -ECHILD); /* it exited (or closed the pipe) without a word */
            return;
        }
        u->heard_len += (size_t)n;
        u->heard[u->heard_len] = '\0';
        if (strstr(u->heard, "READY=1")) {
            ready(u);
            return;
        }
        if (u->heard_len == sizeof u->heard - 1) {
            finish(u, -EPROTO);
            return;
        }
    }
}

static void ready_timeout(ritual_timer *timer, void *data)
{
    (void)timer;
    finish(data, -ETIMEDOUT);
}

/* --------------------------------------------------------------- the call */

int ritual_server_upgrade(ritual_server *srv, const ritual_upgrade_options *options,
                          ritual_error *err)
{
    struct ritual_upgrade *u = ritual__server_upgrade(srv);
    ritual_upgrade_options defaults;
    memset(&defaults, 0, sizeof defaults);
    if (!options)
        options = &defaults;
    if (u->busy)
        return ritual_error_set(err, -EALREADY, "upgrade: PID %d is starting", (int)u->pid);
    if (ritual__server_stopping(srv))
        return ritual_error_set(err, -ESHUTDOWN, "upgrade");
    struct spawn s = {.path = options->path ? options->path : u->exe, .argv = options->argv};
    if (!*s.path)
        return ritual_error_set(err, -ENOENT, "upgrade: this process's executable");
    int rc = collect(u);
    if (rc < 0) {
        drop_sockets(u);
        return ritual_error_set(err, rc, "upgrade: %s",
                                rc == -ENOENT ? "no listening socket" : "listening sockets");
    }
    s.k = u->nsocks;
    int pipefd[2] = {-1, -1};
    if (!s.argv)
        rc = own_argv(&s);
    if (rc == 0)
        rc = build_env(&s, u);
    if (rc == 0 && !(s.high = malloc((s.k + 1) * sizeof *s.high)))
        rc = -ENOMEM;
    if (rc == 0 && pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
        rc = -errno;
    if (rc == 0) {
        /* Above 3..3+k, where they go in the child, so no dup2 there
         * overwrites one not yet moved. */
        int floor = (int)(LISTEN_FDS_START + s.k + 1);
        for (size_t i = 0; i <= s.k; i++) {
            int from = i < s.k ? u->socks[i].fd : pipefd[1];
            s.high[i] = rc == 0 ? fcntl(from, F_DUPFD_CLOEXEC, floor) : -1;
            if (s.high[i] < 0 && rc == 0)
                rc = -errno;
        }
    }
    pid_t pid = -1;
    if (rc == 0) {
        pid = fork();
        if (pid == 0)
            child(&s);
        if (pid < 0)
            rc = -errno;
    }
    spawn_free(&s);
    drop_sockets(u);
    if (pipefd[1] >= 0)
        close(pipefd[1]); /* the child's copy is the only writer: its exit is EOF */
    if (rc < 0) {
        if (pipefd[0] >= 0)
            close(pipefd[0]);
        return ritual_error_set(err, rc, "upgrade: start %s", s.path);
    }
    u->pid = pid;
    u->ready_fd = pipefd[0];
    u->heard_len = 0;
    u->drain_ms = options->drain_ms;
    u->on_done = options->on_done;
    u->data = options->data;
    u->busy = true;
    ritual_loop *control = ritual_server_control_loop(srv);
    uint64_t timeout = options->ready_timeout_ms ? options->ready_timeout_ms : 60 * 1000;
    u->watch = ritual_watch_new(control, u->ready_fd, ready_readable, u, err);
    u->timer = ritual_timer_new(control, ready_timeout, u);
    if (!u->watch || !u->timer || ritual_watch_start(u->watch, RITUAL_WATCH_READABLE) < 0 ||
        ritual_timer_start(u->timer, timeout, 0) < 0) {
        u->on_done = NULL;
        finish(u, -ENOMEM);
        return ritual_error_set(err, -ENOMEM, "upgrade: waiting for PID %d", (int)pid);
    }
    return pid;
}
