/* Sockets given rather than made, and the word to a service manager.
 *
 * fd_listening: fd:N takes a listening socket as it is, made non-blocking
 *   and close-on-exec, and serves it.
 * fd_refused: fd:N on a pipe, a socket that does not listen, a UDP socket
 *   or a closed descriptor is refused with a message naming why; malformed
 *   forms are -EINVAL from ritual_address_parse.
 * systemd_names: LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES (fds 3 and 4, in a
 *   child process): systemd:NAME takes the socket of that name, a server
 *   shares it among its workers, an address string named as an upgrade
 *   names it is taken instead of bound; a missing name, another process's
 *   LISTEN_PID and no LISTEN_FDS are clear errors.
 * upgraded_child_reports_ready: a process started as an upgrade starts it
 *   (fds 3 and 4 named by address, RITUAL_UPGRADE_FD a pipe at 5) takes
 *   the socket it asks for, and once its workers run writes READY=1 to the
 *   pipe, closes it, and closes the socket nobody asked for.
 * notify_datagram: ritual_notify sends one datagram to $NOTIFY_SOCKET, a
 *   path or an abstract "@name"; without it, nothing (0).
 * server_notify_watchdog: a server with .notify says READY=1 with MAINPID
 *   once its workers run, WATCHDOG=1 every half of WATCHDOG_USEC, and
 *   STOPPING=1 once when it shuts down.
 * upgrade_fails_serves_on: ritual_server_upgrade to a program that exits
 *   at once, to one that does not exist, and to one that never says READY
 *   (timeout): each reports why, the child is reaped, and the server serves
 *   on; a second call while one is under way is -EALREADY. */
#include "libtest.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static size_t echo(ritual_conn *conn, const char *bytes, size_t len)
{
    ASSERT_EQ(ritual_write(conn, bytes, len), 0);
    return len;
}

static const ritual_conn_callbacks echo_cbs = {.on_data = echo};

/* A socket of `type` bound to 127.0.0.1:0, listening if asked. */
static int make_socket(int type, int do_listen)
{
    int fd = SYSCHECK(socket(AF_INET, type, 0));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    SYSCHECK(bind(fd, (struct sockaddr *)&sin, sizeof sin));
    if (do_listen)
        SYSCHECK(listen(fd, 16));
    return fd;
}

struct stopper {
    ritual_loop *loop;
    int port;
};

static void stop_loop(ritual_loop *loop, void *arg)
{
    (void)arg;
    ritual_loop_stop(loop);
}

static void *client_then_stop(void *arg)
{
    struct stopper *s = arg;
    int fd = tcp_connect(s->port);
    echo_roundtrip(fd, "ping", 4, 5000);
    close(fd);
    ritual_loop_post(s->loop, stop_loop, NULL);
    return NULL;
}

/* Serves one echo round trip on `l`'s loop. */
static void serve_once(ritual_loop *loop, ritual_listener *l)
{
    struct stopper s = {loop, ritual_listener_port(l)};
    pthread_t t = lt_thread(client_then_stop, &s);
    lt_run(loop, 5000);
    lt_join(t);
}

static void fd_listening(void)
{
    int fd = make_socket(SOCK_STREAM, 1);
    int port = socket_port(fd);
    char address[32];
    snprintf(address, sizeof address, "fd:%d", fd);
    ASSERT_EQ(ritual_address_parse(address, NULL, NULL, NULL), 0);
    ritual_loop *loop = lt_loop();
    ritual_error err;
    ritual_listener *l = ritual_listen(loop, address, NULL, &echo_cbs, &err);
    if (!l)
        FAIL("ritual_listen %s: %s", address, err.message);
    ASSERT_EQ(ritual_listener_port(l), port);
    ASSERT(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ASSERT(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    serve_once(loop, l);
    ritual_loop_free(loop); /* closes fd with the listener */
    ASSERT(fcntl(fd, F_GETFD) < 0);
}

static void expect_refused(ritual_loop *loop, const char *address, int code, const char *message)
{
    ritual_error err;
    ASSERT(ritual_listen(loop, address, NULL, &echo_cbs, &err) == NULL);
    note("%s: %s", address, err.message);
    ASSERT_EQ(err.code, code);
    if (strcmp(err.message, message) != 0)
        FAIL("%s: message '%s', expected '%s'", address, err.message, message);
}

static void fd_refused(void)
{
    ritual_loop *loop = lt_loop();
    char address[32], message[128];
    int pipefd[2];
    SYSCHECK(pipe(pipefd));
    snprintf(address, sizeof address, "fd:%d", pipefd[0]);
    snprintf(message, sizeof message, "%s: not a listening socket (not a socket at all)", address);
    expect_refused(loop, address, -ENOTSOCK, message);
    int unbound = SYSCHECK(socket(AF_INET, SOCK_STREAM, 0));
    snprintf(address, sizeof address, "fd:%d", unbound);
    snprintf(message, sizeof message, "%s: not a listening socket", address);
    expect_refused(loop, address, -EINVAL, message);
    int udp = make_socket(SOCK_DGRAM, 0);
    snprintf(address, sizeof address, "fd:%d", udp);
    snprintf(message, sizeof message, "%s: not a listening socket (not a stream socket)", address);
    expect_refused(loop, address, -EPROTOTYPE, message);
    expect_refused(loop, "fd:999", -EBADF, "fd:999: Bad file descriptor");
    /* Refused descriptors stay the caller's, untouched. */
    ASSERT(fcntl(pipefd[0], F_GETFD) == 0);
    close(pipefd[0]);
    close(pipefd[1]);
    close(unbound);
    close(udp);
    ritual_error err;
    static const char *const malformed[] = {"fd:",      "fd:x",        "fd:-1",
                                            "systemd:", "systemd:a:b", "systemd:a\nb"};
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        ASSERT_EQ(ritual_address_parse(malformed[i], NULL, NULL, &err), -EINVAL);
        ASSERT(ritual_listen(loop, malformed[i], NULL, &echo_cbs, &err) == NULL);
        ASSERT_EQ(err.code, -EINVAL);
    }
    ASSERT_EQ(ritual_address_parse("systemd:web", NULL, NULL, &err), 0);
    ritual_loop_free(loop);
}

/* ---------------------------------------------------------- systemd_names */

static void expect_message(const char *address, const char *want)
{
    ritual_loop *loop = lt_loop();
    ritual_error err;
    ASSERT(ritual_listen(loop, address, NULL, &echo_cbs, &err) == NULL);
    if (!strstr(err.message, want))
        FAIL("%s: message '%s', expected '%s'", address, err.message, want);
    note("%s: %s", address, err.message);
    ritual_loop_free(loop);
}

static void *server_thread(void *arg)
{
    ASSERT_EQ(ritual_server_run(arg), 0);
    return NULL;
}

static void systemd_child(void)
{
    /* fds 3 and 4 as systemd passes them: "web", then an upgrade's
     * "127.0.0.1:0". */
    int web = make_socket(SOCK_STREAM, 1), byaddr = make_socket(SOCK_STREAM, 1);
    int web_port = socket_port(web), byaddr_port = socket_port(byaddr);
    int moved_web = SYSCHECK(fcntl(web, F_DUPFD, 100)),
        moved_addr = SYSCHECK(fcntl(byaddr, F_DUPFD, 100));
    close(web);
    close(byaddr);
    SYSCHECK(dup2(moved_web, 3));
    SYSCHECK(dup2(moved_addr, 4));
    close(moved_web);
    close(moved_addr);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
    setenv("LISTEN_FDNAMES", "web:127.0.0.1%3A0", 1);

    expect_message("systemd:nope",
                   "systemd:nope: no socket of that name (LISTEN_FDNAMES: web:127.0.0.1%3A0)");

    /* A server: the socket shared by both workers, whatever the mode. */
    ritual_error err;
    ritual_server_options so = {.workers = 2};
    ritual_server *srv = ritual_server_new(&so, &err);
    ASSERT(srv != NULL);
    ritual_listener *l = ritual_server_listen(srv, "systemd:web", NULL, &echo_cbs, &err);
    if (!l)
        FAIL("systemd:web: %s", err.message);
    ASSERT_EQ(ritual_listener_port(l), web_port);
    /* By address: the inherited socket, not a new one on another port. */
    ritual_listener *a = ritual_server_listen(srv, "127.0.0.1:0", NULL, &echo_cbs, &err);
    if (!a)
        FAIL("127.0.0.1:0: %s", err.message);
    ASSERT_EQ(ritual_listener_port(a), byaddr_port);
    pthread_t t = lt_thread(server_thread, srv);
    for (int i = 0; i < 8; i++) {
        int fd = tcp_connect(i % 2 ? web_port : byaddr_port);
        echo_roundtrip(fd, "ping", 4, 5000);
        close(fd);
    }
    ritual_server_shutdown(srv, 1000);
    lt_join(t);
    ritual_server_free(srv);

    setenv("LISTEN_PID", "1", 1);
    char want[96];
    snprintf(want, sizeof want, "systemd:web: LISTEN_PID is 1, not this process (%d)",
             (int)getpid());
    expect_message("systemd:web", want);
    unsetenv("LISTEN_FDS");
    expect_message("systemd:web", "systemd:web: no sockets passed (LISTEN_FDS unset)");
}

static void systemd_names(void)
{
    pid_t pid = SYSCHECK(fork());
    if (pid == 0) {
        systemd_child();
        _exit(0);
    }
    int status;
    SYSCHECK(waitpid(pid, &status, 0));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FAIL("the child failed (status %#x)", status);
}

static void upgraded_child(void)
{
    int kept = make_socket(SOCK_STREAM, 1), dropped = make_socket(SOCK_STREAM, 1);
    int kept_port = socket_port(kept), pipefd[2];
    SYSCHECK(pipe(pipefd));
    int high[3] = {SYSCHECK(fcntl(kept, F_DUPFD, 100)), SYSCHECK(fcntl(dropped, F_DUPFD, 100)),
                   SYSCHECK(fcntl(pipefd[1], F_DUPFD, 100))};
    close(kept);
    close(dropped);
    close(pipefd[1]);
    int reader = SYSCHECK(fcntl(pipefd[0], F_DUPFD_CLOEXEC, 100));
    close(pipefd[0]);
    for (int i = 0; i < 3; i++) {
        SYSCHECK(dup2(high[i], 3 + i));
        close(high[i]);
    }
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
    setenv("LISTEN_FDNAMES", "127.0.0.1%3A0:127.0.0.1%3A1", 1);
    setenv("RITUAL_UPGRADE_FD", "5", 1);

    ritual_error err;
    ritual_server_options so = {.workers = 2};
    ritual_server *srv = ritual_server_new(&so, &err);
    ASSERT(srv != NULL);
    ritual_listener *l = ritual_server_listen(srv, "127.0.0.1:0", NULL, &echo_cbs, &err);
    ASSERT(l != NULL);
    ASSERT_EQ(ritual_listener_port(l), kept_port);
    pthread_t t = lt_thread(server_thread, srv);
    char got[32];
    size_t n = 0;
    while (n < 8) {
        if (!wait_fd(reader, POLLIN, now_ms() + 5000))
            FAIL("no READY=1 on the upgrade pipe within 5 s");
        ssize_t r = SYSCHECK(read(reader, got + n, sizeof got - 1 - n));
        ASSERT(r > 0);
        n += (size_t)r;
    }
    got[n] = '\0';
    ASSERT(strcmp(got, "READY=1\n") == 0);
    ASSERT(wait_fd(reader, POLLIN, now_ms() + 5000));
    ASSERT_EQ(read(reader, got, sizeof got), 0);     /* the pipe closed: EOF */
    ASSERT(fcntl(4, F_GETFD) < 0 && errno == EBADF); /* the socket nobody asked for */
    int fd = tcp_connect(kept_port);
    echo_roundtrip(fd, "ping", 4, 5000);
    close(fd);
    ritual_server_shutdown(srv, 1000);
    lt_join(t);
    ritual_server_free(srv);
    close(reader);
}

static void upgraded_child_reports_ready(void)
{
    pid_t pid = SYSCHECK(fork());
    if (pid == 0) {
        upgraded_child();
        _exit(0);
    }
    int status;
    SYSCHECK(waitpid(pid, &status, 0));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FAIL("the child failed (status %#x)", status);
}

/* -------------------------------------------------------------- notifying */

/* A datagram socket standing for systemd's, at a path of its own. */
static int notify_socket(char *path, size_t cap)
{
    int fd = SYSCHECK(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(path, cap, "/tmp/ritual-notify-%d.sock", (int)getpid());
    unlink(path);
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    SYSCHECK(bind(fd, (struct sockaddr *)&sun, sizeof sun));
    setenv("NOTIFY_SOCKET", path, 1);
    return fd;
}

/* The next datagram, within timeout_ms (NUL-terminated). */
static void recv_state(int fd, char *buf, size_t cap, int timeout_ms)
{
    if (!wait_fd(fd, POLLIN, now_ms() + (uint64_t)timeout_ms))
        FAIL("no notification within %d ms", timeout_ms);
    ssize_t n = SYSCHECK(recv(fd, buf, cap - 1, 0));
    buf[n] = '\0';
}

static void notify_datagram(void)
{
    char path[108], got[256];
    int fd = notify_socket(path, sizeof path);
    ASSERT_EQ(ritual_notify("READY=1"), 1);
    recv_state(fd, got, sizeof got, 2000);
    ASSERT(strcmp(got, "READY=1") == 0);
    close(fd);
    unlink(path);

    /* Abstract: "@name". */
    fd = SYSCHECK(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int len =
        snprintf(sun.sun_path + 1, sizeof sun.sun_path - 1, "ritual-notify-%d", (int)getpid());
    SYSCHECK(bind(fd, (struct sockaddr *)&sun,
                  (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)));
    char at[108];
    snprintf(at, sizeof at, "@%s", sun.sun_path + 1);
    setenv("NOTIFY_SOCKET", at, 1);
    ASSERT_EQ(ritual_notify("STATUS=abstract"), 1);
    recv_state(fd, got, sizeof got, 2000);
    ASSERT(strcmp(got, "STATUS=abstract") == 0);
    close(fd);

    unsetenv("NOTIFY_SOCKET");
    ASSERT_EQ(ritual_notify("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "/nonexistent/notify.sock", 1);
    ASSERT_EQ(ritual_notify("READY=1"), -ENOENT);
    unsetenv("NOTIFY_SOCKET");
}

static void server_notify_watchdog(void)
{
    char path[108], got[256], want[64];
    int fd = notify_socket(path, sizeof path);
    setenv("WATCHDOG_USEC", "100000", 1);
    ritual_error err;
    ritual_server_options so = {.workers = 2, .notify = 1};
    ritual_server *srv = ritual_server_new(&so, &err);
    ASSERT(srv != NULL);
    ASSERT(ritual_server_listen(srv, "127.0.0.1:0", NULL, &echo_cbs, &err) != NULL);
    pthread_t t = lt_thread(server_thread, srv);
    recv_state(fd, got, sizeof got, 5000);
    snprintf(want, sizeof want, "READY=1\nMAINPID=%d", (int)getpid());
    if (strcmp(got, want) != 0)
        FAIL("first notification '%s'", got);
    /* Every 50 ms: ten within 2 s, whatever the machine's load. */
    uint64_t start = now_ms();
    for (int i = 0; i < 10; i++) {
        recv_state(fd, got, sizeof got, 2000);
        ASSERT(strcmp(got, "WATCHDOG=1") == 0);
    }
    note("10 watchdog pings in %llu ms", (unsigned long long)(now_ms() - start));
    ritual_server_shutdown(srv, 1000);
    ritual_server_shutdown(srv, 1000); /* said once */
    for (;;) {
        recv_state(fd, got, sizeof got, 2000);
        if (strcmp(got, "STOPPING=1") == 0)
            break;
        ASSERT(strcmp(got, "WATCHDOG=1") == 0);
    }
    lt_join(t);
    ritual_server_free(srv);
    while (wait_fd(fd, POLLIN, now_ms() + 100)) {
        SYSCHECK(recv(fd, got, sizeof got - 1, 0));
        got[sizeof got - 1] = '\0';
        ASSERT(strncmp(got, "STOPPING", 8) != 0);
    }
    close(fd);
    unlink(path);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
}

/* ---------------------------------------------------------------- upgrade */

struct attempt {
    const char *path;
    char *const *argv;
    uint64_t timeout_ms;
    int want;
};

static ritual_server *up_srv;
static int up_port;
static const struct attempt *up_now;
static size_t up_index;
static const struct attempt up_attempts[] = {
    {"/bin/false", (char *const[]){"false", NULL}, 0, -ECHILD},
    {"/nonexistent/ritual", (char *const[]){"ritual", NULL}, 0, -ECHILD},
    {"/bin/sleep", (char *const[]){"sleep", "30", NULL}, 300, -ETIMEDOUT},
};

static void start_attempt(ritual_loop *control, void *arg);

static void up_done(ritual_server *server, int pid, int error, void *data)
{
    (void)data;
    ASSERT(server == up_srv);
    note("%s: PID %d: %s", up_now->path, pid, ritual_strerror(error));
    ASSERT_EQ(error, up_now->want);
    /* Reaped: no zombie left behind. */
    ASSERT(kill(pid, 0) < 0 && errno == ESRCH);
    /* Still serving. */
    int fd = tcp_connect(up_port);
    echo_roundtrip(fd, "still", 5, 5000);
    close(fd);
    up_index++;
    if (up_index < sizeof up_attempts / sizeof up_attempts[0])
        ASSERT_EQ(ritual_loop_post(ritual_server_control_loop(server), start_attempt, NULL), 0);
    else
        ritual_server_shutdown(server, 1000);
}

static void start_attempt(ritual_loop *control, void *arg)
{
    (void)control;
    (void)arg;
    up_now = &up_attempts[up_index];
    ritual_upgrade_options opts = {.path = up_now->path,
                                   .argv = up_now->argv,
                                   .ready_timeout_ms = up_now->timeout_ms,
                                   .on_done = up_done};
    ritual_error err;
    int pid = ritual_server_upgrade(up_srv, &opts, &err);
    if (pid <= 0)
        FAIL("ritual_server_upgrade: %s", err.message);
    ASSERT_EQ(ritual_server_upgrade(up_srv, &opts, &err), -EALREADY);
    note("while one is under way: %s", err.message);
}

static void upgrade_fails_serves_on(void)
{
    ritual_error err;
    ritual_server_options so = {.workers = 2};
    up_srv = ritual_server_new(&so, &err);
    ASSERT(up_srv != NULL);
    ritual_listener *l = ritual_server_listen(up_srv, "127.0.0.1:0", NULL, &echo_cbs, &err);
    ASSERT(l != NULL);
    up_port = ritual_listener_port(l);
    ASSERT_EQ(ritual_loop_post(ritual_server_control_loop(up_srv), start_attempt, NULL), 0);
    pthread_t t = lt_thread(server_thread, up_srv);
    lt_join(t);
    ASSERT_EQ(up_index, sizeof up_attempts / sizeof up_attempts[0]);
    ritual_server_free(up_srv);
}

TEST_CASES(CASE(fd_listening), CASE(fd_refused), CASE(systemd_names),
           CASE(upgraded_child_reports_ready), CASE(notify_datagram), CASE(server_notify_watchdog),
           CASE(upgrade_fails_serves_on))
