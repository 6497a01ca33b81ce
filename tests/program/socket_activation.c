/* Socket activation and the notify protocol, as systemd runs ritual http.
 *
 * systemd_socket_and_notify: systemd-socket-activate (Debian's systemd
 *   package) listens on 127.0.0.1:PORT and hands the socket, named "web",
 *   to `ritual http --listen systemd:web` when the first client connects;
 *   that client is served from the queue. A datagram socket standing for
 *   systemd's ($NOTIFY_SOCKET) hears READY=1 with the server's MAINPID,
 *   WATCHDOG=1 (WATCHDOG_USEC), RELOADING=1 then READY=1 around SIGHUP, and
 *   STOPPING=1 on SIGTERM, after which the server exits 0.
 * given_socket_refused: --listen fd:9 where 9 is a pipe, fd:900 (closed), and
 *   systemd:web with another process's LISTEN_PID or none passed: exit 1
 *   with the reason in one line; a malformed fd: form is a usage error. */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char root[64];

static void make_tree(void)
{
    temp_dir_make(root, sizeof root);
    file_write_at(root, "index.html", "activated\n", 10);
}

static void remove_root(void)
{
    remove_tree(root);
}

/* A free port: bound, read, closed (another process could take it before
 * systemd-socket-activate binds it; on a test machine it does not). */
static int free_port(void)
{
    int fd = SYSCHECK(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    SYSCHECK(bind(fd, (struct sockaddr *)&sin, sizeof sin));
    int port = socket_port(fd);
    close(fd);
    return port;
}

struct first_client {
    int port;
    int status;
};

/* Connects as soon as the activator listens: the connection that makes it
 * start the server, which must answer it. */
static void *first_client(void *arg)
{
    struct first_client *c = arg;
    uint64_t deadline = now_ms() + 10000;
    int fd;
    while ((fd = tcp_try_connect(c->port)) == -ECONNREFUSED && now_ms() < deadline)
        sleep_ms(10);
    if (fd < 0)
        FAIL("connect to the activator's port: %s", strerror(-fd));
    static const char get[] = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    send_all(fd, get, sizeof get - 1);
    char buf[1024];
    size_t len;
    recv_to_end(fd, buf, sizeof buf - 1, &len, 10000);
    buf[len] = '\0';
    c->status = strncmp(buf, "HTTP/1.1 200", 12) == 0 && strstr(buf, "activated") ? 200 : -1;
    close(fd);
    return NULL;
}

/* The next datagram on the fake $NOTIFY_SOCKET that is not a watchdog
 * ping (counted in *pings), within 10 s. */
static void next_state(int fd, char *buf, size_t cap, int *pings)
{
    for (;;) {
        if (!wait_fd(fd, POLLIN, now_ms() + 10000))
            FAIL("no notification within 10 s");
        ssize_t n = SYSCHECK(recv(fd, buf, cap - 1, 0));
        buf[n] = '\0';
        if (strcmp(buf, "WATCHDOG=1") != 0)
            return;
        ++*pings;
    }
}

static void systemd_socket_and_notify(void)
{
    char activate[256];
    if (!find_tool("systemd-socket-activate", activate, sizeof activate))
        return;
    char path[108], env_notify[160], listen[64];
    snprintf(path, sizeof path, "/tmp/ritual-notify-%d.sock", (int)getpid());
    unlink(path);
    int nfd = SYSCHECK(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    SYSCHECK(bind(nfd, (struct sockaddr *)&sun, sizeof sun));
    snprintf(env_notify, sizeof env_notify, "NOTIFY_SOCKET=%s", path);
    int port = free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);

    /* The activator passes on only the environment it is given with -E. */
    const char *asan = getenv("ASAN_OPTIONS"), *ubsan = getenv("UBSAN_OPTIONS"),
               *tsan = getenv("TSAN_OPTIONS"), *backend = getenv("RITUAL_BACKEND");
    char e_asan[512], e_ubsan[512], e_tsan[512], e_backend[64];
    snprintf(e_backend, sizeof e_backend, "RITUAL_BACKEND=%s", backend ? backend : "");
    snprintf(e_asan, sizeof e_asan, "ASAN_OPTIONS=%s", asan ? asan : "");
    snprintf(e_ubsan, sizeof e_ubsan, "UBSAN_OPTIONS=%s", ubsan ? ubsan : "");
    snprintf(e_tsan, sizeof e_tsan, "TSAN_OPTIONS=%s", tsan ? tsan : "");
    const char *argv[] = {activate,
                          "-l",
                          listen,
                          "--fdname=web",
                          "-E",
                          env_notify,
                          "-E",
                          "WATCHDOG_USEC=200000",
                          "-E",
                          e_asan,
                          "-E",
                          e_ubsan,
                          "-E",
                          e_tsan,
                          ritual_program(),
                          "http",
                          "--listen",
                          "systemd:web",
                          "--root",
                          root,
                          "--workers",
                          "2",
                          NULL};
    struct first_client client = {.port = port};
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, first_client, &client), 0);
    struct server s;
    server_start_argv(argv, 0, &s);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT_EQ(client.status, 200);
    ASSERT_EQ(s.port, port);

    char got[256], want[64];
    int pings = 0;
    next_state(nfd, got, sizeof got, &pings);
    snprintf(want, sizeof want, "READY=1\nMAINPID=%d", (int)s.pid); /* activate execs in place */
    if (strcmp(got, want) != 0)
        FAIL("first notification '%s', expected '%s'", got, want);
    /* The watchdog: pings every 100 ms. */
    uint64_t deadline = now_ms() + 10000;
    while (pings < 3 && now_ms() < deadline) {
        if (!wait_fd(nfd, POLLIN, deadline))
            break;
        ssize_t n = SYSCHECK(recv(nfd, got, sizeof got - 1, 0));
        got[n] = '\0';
        ASSERT(strcmp(got, "WATCHDOG=1") == 0);
        pings++;
    }
    ASSERT(pings >= 3);

    SYSCHECK(kill(s.pid, SIGHUP));
    next_state(nfd, got, sizeof got, &pings);
    if (strncmp(got, "RELOADING=1\nMONOTONIC_USEC=", 27) != 0)
        FAIL("on SIGHUP: '%s'", got);
    next_state(nfd, got, sizeof got, &pings);
    ASSERT(strcmp(got, "READY=1") == 0);

    struct http_response r;
    http_exchange(port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r, 5000);
    HTTP_EXPECT_STATUS(&r, 200);
    http_response_free(&r);

    SYSCHECK(kill(s.pid, SIGTERM));
    next_state(nfd, got, sizeof got, &pings);
    ASSERT(strcmp(got, "STOPPING=1") == 0);
    note("READY, %d watchdog pings, RELOADING/READY, STOPPING", pings);
    if (!server_wait(&s, 15000))
        FAIL("SIGTERM: the server did not exit within 15 s");
    server_expect_clean_exit(&s);
    close(nfd);
    unlink(path);
}

/* `ritual http --listen ADDRESS` must fail with `code` and say `message`. */
static void expect_failure(const char *address, int code, const char *message)
{
    const char *argv[] = {ritual_program(), "http", "--listen", address, "--root", root, NULL};
    struct cmd_result r;
    run_command(argv, 10000, &r);
    note("--listen %s: exit %d: %s", address, r.exit_code, r.err);
    ASSERT_EQ(r.exit_code, code);
    if (!strstr(r.err, message))
        FAIL("--listen %s: stderr '%s', expected '%s'", address, r.err, message);
}

static void given_socket_refused(void)
{
    /* fd 9: a pipe, inherited by the command. */
    int p[2];
    SYSCHECK(pipe(p));
    SYSCHECK(dup2(p[0], 9));
    close(p[0]);
    close(p[1]);
    expect_failure("fd:9", 1, "ritual: fd:9: not a listening socket (not a socket at all)\n");
    close(9);
    /* (not fd:9 again: ritual's own descriptors may have taken 9 by then) */
    expect_failure("fd:900", 1, "ritual: fd:900: Bad file descriptor\n");
    expect_failure("fd:nine", 2, "fd:N must be a descriptor number");

    setenv("LISTEN_PID", "1", 1);
    setenv("LISTEN_FDS", "1", 1);
    setenv("LISTEN_FDNAMES", "web", 1);
    expect_failure("systemd:web", 1, "ritual: systemd:web: LISTEN_PID is 1, not this process (");
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    expect_failure("systemd:web", 1, "ritual: systemd:web: no sockets passed (LISTEN_FDS unset)\n");
}

TEST_CASES_WITH(make_tree, remove_root, CASE(systemd_socket_and_notify), CASE(given_socket_refused))
