/* support.c - see support.h. */
#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ failures */

/* Servers started by this test, so a failure can show their stderr and
 * kill them. */
#define MAX_SERVERS 8
static struct server *servers[MAX_SERVERS];

static void forget_server(const struct server *s)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (servers[i] == s)
            servers[i] = NULL;
}

static void remember_server(struct server *s)
{
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (servers[i] == NULL) {
            servers[i] = s;
            return;
        }
    }
    FAIL("more than %d servers at once", MAX_SERVERS);
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "%s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);

    for (int i = 0; i < MAX_SERVERS; i++) {
        struct server *s = servers[i];
        if (s == NULL)
            continue;
        servers[i] = NULL;
        if (!s->exited) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
        }
        server_dump_stderr(s);
        unlink(s->stderr_path);
    }
    exit(1);
}

long sys_check_(long ret, const char *what, const char *file, int line)
{
    if (ret == -1)
        test_fail(file, line, "%s: %s", what, strerror(errno));
    return ret;
}

void note(const char *fmt, ...)
{
    va_list ap;
    fputs("# ", stdout);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

const char *test_init(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH_TO_RITUAL\n", argv[0]);
        exit(2);
    }
    if (access(argv[1], X_OK) != 0)
        FAIL("%s: not an executable: %s", argv[1], strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    return argv[1];
}

/* ---------------------------------------------------------------- files */

/* Reads a whole file into a NUL-terminated malloc'd buffer. */
char *file_read(const char *path, size_t *len_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *len_out = 0;
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ASSERT(buf != NULL);
    for (;;) {
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            ASSERT(buf != NULL);
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        SYSCHECK(n);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *len_out = len;
    return buf;
}

/* ----------------------------------------------------------- the server */

void server_dump_stderr(const struct server *s)
{
    size_t len;
    char *text = file_read(s->stderr_path, &len);
    if (text == NULL)
        return;
    const char *start = text;
    if (len > 16384)
        start = text + len - 16384;
    fprintf(stderr, "---- stderr of ritual (pid %d) ----\n%s%s---- end of stderr ----\n",
            (int)s->pid, start, len > 0 && text[len - 1] != '\n' ? "\n" : "");
    fflush(stderr);
    free(text);
}

/* Reads the "listening on HOST:PORT\n" line, up to 10 s. */
static void read_listening_line(struct server *s, char *line, size_t cap)
{
    size_t len = 0;
    uint64_t deadline = now_ms() + 10000;
    while (len == 0 || line[len - 1] != '\n') {
        if (!wait_fd(s->stdout_fd, POLLIN, deadline))
            FAIL("no \"listening on\" line on the server's stdout within 10 s");
        if (len + 1 >= cap)
            FAIL("first stdout line of the server is too long: %.*s", (int)len, line);
        /* One byte at a time: nothing after the line may be consumed here. */
        ssize_t n = read(s->stdout_fd, line + len, 1);
        if (n < 0 && errno == EINTR)
            continue;
        SYSCHECK(n);
        if (n == 0) {
            line[len] = '\0';
            if (server_wait(s, 2000) && WIFEXITED(s->status))
                FAIL("server exited with code %d before listening (stdout: \"%s\")",
                     WEXITSTATUS(s->status), line);
            FAIL("server closed stdout before listening (stdout: \"%s\")", line);
        }
        len += (size_t)n;
    }
    line[len - 1] = '\0';
}

void server_start(const char *ritual_path, const char *const extra_args[], rlim_t nofile,
                  struct server *out)
{
    server_start_at(ritual_path, "127.0.0.1:0", extra_args, nofile, out);
}

void server_start_at(const char *ritual_path, const char *listen, const char *const extra_args[],
                     rlim_t nofile, struct server *out)
{
    server_start_cmd(ritual_path, "echo", listen, extra_args, nofile, out);
}

void server_start_cmd(const char *ritual_path, const char *command, const char *listen,
                      const char *const extra_args[], rlim_t nofile, struct server *out)
{
    memset(out, 0, sizeof *out);
    out->stdout_fd = -1;

    const char *argv[64];
    int argc = 0;
    argv[argc++] = ritual_path;
    argv[argc++] = command;
    argv[argc++] = "--listen";
    argv[argc++] = listen;
    for (int i = 0; extra_args != NULL && extra_args[i] != NULL; i++) {
        ASSERT_LT(argc, 62);
        argv[argc++] = extra_args[i];
    }
    argv[argc] = NULL;

    snprintf(out->stderr_path, sizeof out->stderr_path, "/tmp/ritual-test-stderr-XXXXXX");
    int err_fd = SYSCHECK(mkostemp(out->stderr_path, O_CLOEXEC));
    int out_pipe[2];
    SYSCHECK(pipe2(out_pipe, O_CLOEXEC));
    int null_fd = SYSCHECK(open("/dev/null", O_RDONLY | O_CLOEXEC));
    pid_t parent = getpid();

    pid_t pid = SYSCHECK(fork());
    if (pid == 0) {
        /* The child: only async-signal-safe calls until exec. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (dup2(null_fd, 0) < 0 || dup2(out_pipe[1], 1) < 0 || dup2(err_fd, 2) < 0)
            _exit(127);
        if (nofile != 0) {
            struct rlimit rl = {.rlim_cur = nofile, .rlim_max = nofile};
            if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
                static const char msg[] = "test: setrlimit(RLIMIT_NOFILE) failed\n";
                (void)!write(2, msg, sizeof msg - 1);
                _exit(127);
            }
        }
        execv(ritual_path, (char *const *)argv);
        static const char msg[] = "test: execv of the ritual binary failed\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(127);
    }

    close(err_fd);
    close(null_fd);
    close(out_pipe[1]);
    out->pid = pid;
    out->stdout_fd = out_pipe[0];
    remember_server(out);

    char line[256];
    read_listening_line(out, line, sizeof line);
    static const char prefix[] = "listening on ";
    if (strncmp(line, prefix, sizeof prefix - 1) != 0)
        FAIL("server's first stdout line is \"%s\", expected \"listening on HOST:PORT\"", line);
    const char *address = line + sizeof prefix - 1;
    if (strlen(address) >= sizeof out->address)
        FAIL("server printed \"%s\": address too long", line);
    memcpy(out->address, address, strlen(address) + 1);

    /* HOST must be the requested one, PORT a number (the requested one, if any). */
    const char *want_colon = strrchr(listen, ':');
    const char *got_colon = strrchr(out->address, ':');
    ASSERT(want_colon != NULL);
    if (got_colon == NULL || got_colon - out->address != want_colon - listen ||
        strncmp(out->address, listen, (size_t)(want_colon - listen)) != 0)
        FAIL("server printed \"%s\", expected \"listening on %.*s:PORT\"", line,
             (int)(want_colon - listen), listen);
    char *end;
    long port = strtol(got_colon + 1, &end, 10);
    if (*end != '\0' || end == got_colon + 1 || port <= 0 || port > 65535)
        FAIL("server printed \"%s\": bad port", line);
    long want_port = strtol(want_colon + 1, NULL, 10);
    if (want_port != 0)
        ASSERT_EQ(port, want_port);
    out->port = (int)port;
}

/* Waits up to timeout_ms for the child to exit; returns 1 with *status set
 * if it did, 0 if it is still running. */
static int wait_child(pid_t pid, int timeout_ms, int *status)
{
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r < 0 && errno == EINTR)
            continue;
        SYSCHECK(r);
        if (r == pid)
            return 1;
        if (now_ms() >= deadline)
            return 0;
        sleep_ms(5);
    }
}

int server_wait(struct server *s, int timeout_ms)
{
    if (!s->exited && wait_child(s->pid, timeout_ms, &s->status))
        s->exited = 1;
    return s->exited;
}

int server_stop(struct server *s)
{
    if (!s->exited)
        SYSCHECK(kill(s->pid, SIGTERM));
    if (!server_wait(s, 15000))
        FAIL("server (pid %d) still running 15 s after SIGTERM", (int)s->pid);
    return s->status;
}

/* Whatever the server wrote on stdout after its first line (must be nothing). */
static size_t read_rest_of_stdout(struct server *s, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = s->stdout_fd, .events = POLLIN};
        int r = poll(&p, 1, 1000);
        if (r < 0 && errno == EINTR)
            continue;
        SYSCHECK(r);
        if (r == 0)
            break; /* a grandchild holds the pipe open; enough */
        ssize_t n = read(s->stdout_fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        SYSCHECK(n);
        if (n == 0 || (len += (size_t)n) + 1 >= cap)
            break;
    }
    buf[len] = '\0';
    return len;
}

void server_expect_exit(struct server *s, int code)
{
    server_stop(s);

    if (!WIFEXITED(s->status)) {
        if (WIFSIGNALED(s->status))
            FAIL("server was killed by signal %d (%s), expected exit code %d", WTERMSIG(s->status),
                 strsignal(WTERMSIG(s->status)), code);
        FAIL("server ended with wait status 0x%x, expected exit code %d", s->status, code);
    }
    if (WEXITSTATUS(s->status) != code)
        FAIL("server exited with code %d, expected %d", WEXITSTATUS(s->status), code);

    size_t len;
    char *text = file_read(s->stderr_path, &len);
    ASSERT(text != NULL);
    static const char *const reports[] = {"AddressSanitizer", "LeakSanitizer", "runtime error",
                                          "ThreadSanitizer"};
    for (size_t i = 0; i < sizeof reports / sizeof reports[0]; i++)
        if (memmem(text, len, reports[i], strlen(reports[i])) != NULL)
            FAIL("the server's stderr holds a sanitizer report (\"%s\")", reports[i]);
    free(text);

    char rest[4096];
    if (read_rest_of_stdout(s, rest, sizeof rest) != 0)
        FAIL("server printed more than its \"listening on\" line on stdout: \"%s\"", rest);

    forget_server(s);
    close(s->stdout_fd);
    s->stdout_fd = -1;
    unlink(s->stderr_path);
}

void server_expect_clean_exit(struct server *s)
{
    server_expect_exit(s, 0);
}

/* ------------------------------------------------------------- commands */

void run_command(const char *const argv[], int timeout_ms, struct cmd_result *r)
{
    memset(r, 0, sizeof *r);
    int out_pipe[2], err_pipe[2];
    SYSCHECK(pipe2(out_pipe, O_CLOEXEC));
    SYSCHECK(pipe2(err_pipe, O_CLOEXEC));
    int null_fd = SYSCHECK(open("/dev/null", O_RDONLY | O_CLOEXEC));

    pid_t pid = SYSCHECK(fork());
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        signal(SIGPIPE, SIG_DFL);
        if (dup2(null_fd, 0) < 0 || dup2(out_pipe[1], 1) < 0 || dup2(err_pipe[1], 2) < 0)
            _exit(127);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(null_fd);
    close(out_pipe[1]);
    close(err_pipe[1]);

    struct pollfd p[2] = {{.fd = out_pipe[0], .events = POLLIN},
                          {.fd = err_pipe[0], .events = POLLIN}};
    char *bufs[2] = {r->out, r->err};
    size_t *lens[2] = {&r->out_len, &r->err_len};
    size_t caps[2] = {sizeof r->out, sizeof r->err};
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    int open_pipes = 2;
    while (open_pipes > 0) {
        int64_t left = (int64_t)deadline - (int64_t)now_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            FAIL("%s %s...: still running after %d ms", argv[0], argv[1] ? argv[1] : "",
                 timeout_ms);
        }
        int n = poll(p, 2, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        SYSCHECK(n);
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || p[i].revents == 0)
                continue;
            char chunk[4096];
            ssize_t got = read(p[i].fd, chunk, sizeof chunk);
            if (got < 0 && errno == EINTR)
                continue;
            SYSCHECK(got);
            if (got == 0) {
                close(p[i].fd);
                p[i].fd = -1;
                open_pipes--;
                continue;
            }
            size_t room = caps[i] - 1 - *lens[i];
            size_t keep = (size_t)got < room ? (size_t)got : room;
            memcpy(bufs[i] + *lens[i], chunk, keep);
            *lens[i] += keep;
        }
    }
    r->out[r->out_len] = '\0';
    r->err[r->err_len] = '\0';

    int status;
    if (!wait_child(pid, (int)((int64_t)deadline - (int64_t)now_ms()), &status)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        FAIL("%s: closed its output but did not exit", argv[0]);
    }
    r->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

int find_tool(const char *name, char *path, size_t cap)
{
    const char *dirs = getenv("PATH");
    if (dirs == NULL || *dirs == '\0')
        dirs = "/usr/local/bin:/usr/bin:/bin";
    while (*dirs != '\0') {
        const char *end = strchr(dirs, ':');
        size_t len = end ? (size_t)(end - dirs) : strlen(dirs);
        int n = len ? snprintf(path, cap, "%.*s/%s", (int)len, dirs, name)
                    : snprintf(path, cap, "./%s", name);
        if (n > 0 && (size_t)n < cap && access(path, X_OK) == 0)
            return 1;
        dirs += len + (end != NULL);
    }
    const char *require = getenv("RITUAL_TEST_REQUIRE_TOOLS");
    if (require != NULL && strcmp(require, "1") == 0)
        FAIL("%s is not installed (and RITUAL_TEST_REQUIRE_TOOLS=1)", name);
    note("%s is not installed: what needs it is skipped", name);
    return 0;
}

int count_lines(const char *text)
{
    int lines = 0;
    for (const char *p = text; *p != '\0'; p++)
        if (*p == '\n' || p[1] == '\0')
            lines++;
    return lines;
}

/* --------------------------------------------------------------- sockets */

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

static int tcp_socket(int nonblocking)
{
    int fd = SYSCHECK(
        socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0));
    int one = 1;
    SYSCHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    return fd;
}

int tcp_try_connect(int port)
{
    int fd = tcp_socket(0);
    struct sockaddr_in sa = loopback(port);
    int r;
    do
        r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int tcp_refused(int port)
{
    int fd = tcp_try_connect(port);
    if (fd == -ECONNREFUSED)
        return 1;
    if (fd == -ECONNRESET)
        return 0;
    if (fd < 0)
        FAIL("connect 127.0.0.1:%d: %s", port, strerror(-fd));
    close(fd); /* got in before the listener closed */
    return 0;
}

int tcp_connect(int port)
{
    int fd = tcp_try_connect(port);
    if (fd < 0)
        FAIL("connect 127.0.0.1:%d: %s", port, strerror(-fd));
    return fd;
}

int tcp_connect_rcvbuf(int port, int rcvbuf)
{
    int fd = tcp_socket(0);
    SYSCHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf));
    struct sockaddr_in sa = loopback(port);
    int r;
    do
        r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        FAIL("connect 127.0.0.1:%d: %s", port, strerror(errno));
    return fd;
}

int tcp_connect_start(int port)
{
    int fd = tcp_socket(1);
    struct sockaddr_in sa = loopback(port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
        FAIL("connect 127.0.0.1:%d: %s", port, strerror(errno));
    return fd;
}

int tcp_socket_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    SYSCHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len));
    return err;
}

size_t connect_many(int port, int *fds, size_t n, int timeout_ms)
{
    struct pollfd *p = calloc(n, sizeof *p);
    ASSERT(p != NULL);
    for (size_t i = 0; i < n; i++) {
        fds[i] = tcp_connect_start(port);
        p[i].fd = fds[i];
        p[i].events = POLLOUT;
    }
    size_t done = 0;
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (done < n) {
        int64_t left = (int64_t)deadline - (int64_t)now_ms();
        if (left <= 0)
            break;
        int r = poll(p, n, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        SYSCHECK(r);
        for (size_t i = 0; i < n; i++) {
            if (p[i].fd < 0 || p[i].revents == 0)
                continue;
            int err = tcp_socket_error(fds[i]);
            if (err != 0)
                FAIL("connection %zu of %zu to port %d failed: %s", i, n, port, strerror(err));
            p[i].fd = -1; /* connected: poll ignores negative fds */
            done++;
        }
    }
    free(p);
    return done;
}

void set_nonblocking(int fd, int on)
{
    int flags = SYSCHECK(fcntl(fd, F_GETFL));
    flags = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
    SYSCHECK(fcntl(fd, F_SETFL, flags));
}

int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        int64_t left = (int64_t)deadline - (int64_t)now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        SYSCHECK(r);
        if (r > 0)
            return 1;
    }
}

void send_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    size_t sent = 0;
    uint64_t deadline = now_ms() + 10000;
    while (sent < n) {
        ssize_t w = send(fd, p + sent, n - sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            if (!wait_fd(fd, POLLOUT, deadline))
                FAIL("send: %zu of %zu bytes sent, then no room for 10 s", sent, n);
            continue;
        }
        if (w < 0)
            FAIL("send (%zu of %zu bytes sent): %s", sent, n, strerror(errno));
        sent += (size_t)w;
    }
}

void recv_exact(int fd, void *buf, size_t n, int timeout_ms)
{
    char *p = buf;
    size_t got = 0;
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (got < n) {
        if (!wait_fd(fd, POLLIN, deadline))
            FAIL("recv: %zu of %zu bytes within %d ms", got, n, timeout_ms);
        ssize_t r = recv(fd, p + got, n - got, MSG_DONTWAIT);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r < 0)
            FAIL("recv (%zu of %zu bytes received): %s", got, n, strerror(errno));
        if (r == 0)
            FAIL("recv: end of stream after %zu of %zu bytes", got, n);
        got += (size_t)r;
    }
}

void expect_eof(int fd, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (!wait_fd(fd, POLLIN, deadline))
            FAIL("no end of stream within %d ms", timeout_ms);
        char c;
        ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r < 0)
            FAIL("recv: %s (expected an orderly end of stream)", strerror(errno));
        if (r > 0)
            FAIL("recv: got data (0x%02x), expected end of stream", (unsigned char)c);
        return;
    }
}

void echo_roundtrip(int fd, const void *msg, size_t n, int timeout_ms)
{
    char *back = malloc(n ? n : 1);
    ASSERT(back != NULL);
    send_all(fd, msg, n);
    recv_exact(fd, back, n, timeout_ms);
    if (memcmp(back, msg, n) != 0)
        FAIL("echo of %zu bytes differs from what was sent", n);
    free(back);
}

#define ECHO_MANY_LEN 32

static void echo_many_message(size_t id, char msg[ECHO_MANY_LEN])
{
    char text[64];
    snprintf(text, sizeof text, "client %08zu of a crowd.........", id);
    memcpy(msg, text, ECHO_MANY_LEN);
}

uint64_t echo_many(const int *fds, size_t n, size_t first_id, int timeout_ms)
{
    struct pollfd *p = calloc(n, sizeof *p);
    char(*back)[ECHO_MANY_LEN] = calloc(n, sizeof *back);
    size_t *got = calloc(n, sizeof *got);
    if (!p || !back || !got)
        FAIL("echo_many: out of memory");
    for (size_t k = 0; k < n; k++) {
        char msg[ECHO_MANY_LEN];
        echo_many_message(first_id + k, msg);
        send_all(fds[k], msg, ECHO_MANY_LEN);
        p[k].fd = fds[k];
        p[k].events = POLLIN;
    }
    size_t served = 0;
    uint64_t start = now_ms(), deadline = start + (uint64_t)timeout_ms;
    while (served < n) {
        int64_t left = (int64_t)deadline - (int64_t)now_ms();
        if (left <= 0)
            FAIL("clients %zu..%zu: only %zu of %zu echoes within %d ms", first_id,
                 first_id + n - 1, served, n, timeout_ms);
        int r = poll(p, (nfds_t)n, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        SYSCHECK(r);
        for (size_t k = 0; k < n; k++) {
            if (p[k].fd < 0 || p[k].revents == 0)
                continue;
            ssize_t got_now = recv(fds[k], back[k] + got[k], ECHO_MANY_LEN - got[k], MSG_DONTWAIT);
            if (got_now < 0 && errno == EAGAIN)
                continue;
            if (got_now < 0)
                FAIL("client %zu: recv: %s", first_id + k, strerror(errno));
            if (got_now == 0)
                FAIL("client %zu: end of stream after %zu bytes", first_id + k, got[k]);
            got[k] += (size_t)got_now;
            if (got[k] == ECHO_MANY_LEN) {
                char msg[ECHO_MANY_LEN];
                echo_many_message(first_id + k, msg);
                if (memcmp(msg, back[k], ECHO_MANY_LEN) != 0)
                    FAIL("client %zu: echo \"%.32s\" differs from \"%.32s\"", first_id + k, back[k],
                         msg);
                p[k].fd = -1; /* done: poll ignores negative fds */
                served++;
            }
        }
    }
    free(p);
    free(back);
    free(got);
    return now_ms() - start;
}

int socket_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    SYSCHECK(getsockname(fd, (struct sockaddr *)&ss, &len));
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ------------------------------------------------ processes and the clock */

uint64_t now_ms(void)
{
    struct timespec ts;
    SYSCHECK(clock_gettime(CLOCK_MONOTONIC, &ts));
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Reads /proc/PID/stat and returns a pointer just after the last ')': the
 * command name may hold spaces and parentheses. */
static const char *proc_stat_fields(pid_t pid, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = SYSCHECK(open(path, O_RDONLY | O_CLOEXEC));
    ssize_t n = SYSCHECK(read(fd, buf, cap - 1));
    close(fd);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    if (paren == NULL)
        FAIL("%s: unexpected format", path);
    return paren + 1;
}

long proc_cpu_ticks(pid_t pid)
{
    char buf[1024];
    const char *p = proc_stat_fields(pid, buf, sizeof buf);
    /* After ')': state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt
     * majflt cmajflt utime(14) stime(15). */
    char state;
    unsigned long utime, stime;
    if (sscanf(p, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &state, &utime, &stime) !=
        3)
        FAIL("/proc/%d/stat: cannot parse utime and stime", (int)pid);
    return (long)(utime + stime);
}

char proc_state(pid_t pid)
{
    char buf[1024];
    const char *p = proc_stat_fields(pid, buf, sizeof buf);
    char state;
    if (sscanf(p, " %c", &state) != 1)
        FAIL("/proc/%d/stat: cannot parse the state", (int)pid);
    return state;
}

long proc_status_kb(pid_t pid, const char *field)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    size_t len;
    char *text = file_read(path, &len);
    if (text == NULL)
        FAIL("%s: %s", path, strerror(errno));
    size_t flen = strlen(field);
    long kb = -1;
    for (char *line = text; line != NULL && *line != '\0';) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            kb = strtol(line + flen + 1, NULL, 10);
            break;
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    free(text);
    if (kb < 0)
        FAIL("%s: no %s field", path, field);
    return kb;
}

long proc_rss_kb(pid_t pid)
{
    return proc_status_kb(pid, "VmRSS");
}

double proc_cpu_percent(pid_t pid, int window_ms, long *ticks)
{
    long before = proc_cpu_ticks(pid);
    uint64_t start = now_ms();
    sleep_ms(window_ms);
    long used = proc_cpu_ticks(pid) - before;
    uint64_t elapsed = now_ms() - start;
    if (ticks != NULL)
        *ticks = used;
    return 100.0 * (double)used / (double)sysconf(_SC_CLK_TCK) / ((double)elapsed / 1000.0);
}

rlim_t raise_nofile_up_to(rlim_t want, rlim_t need)
{
    struct rlimit rl;
    SYSCHECK(getrlimit(RLIMIT_NOFILE, &rl));
    if (rl.rlim_cur >= want)
        return rl.rlim_cur;
    struct rlimit raised = {.rlim_cur = want, .rlim_max = rl.rlim_max > want ? rl.rlim_max : want};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
        return want;
    /* Without CAP_SYS_RESOURCE the hard limit is as far as we go. */
    if (errno != EPERM || rl.rlim_max < need)
        FAIL("setrlimit(RLIMIT_NOFILE, %llu): %s (hard limit %llu, need %llu)",
             (unsigned long long)want, strerror(errno), (unsigned long long)rl.rlim_max,
             (unsigned long long)need);
    rl.rlim_cur = rl.rlim_max;
    SYSCHECK(setrlimit(RLIMIT_NOFILE, &rl));
    return rl.rlim_cur;
}

void raise_nofile(rlim_t n)
{
    raise_nofile_up_to(n, n);
}

/* ------------------------------------------------------------- payloads */

void prng_seed(struct prng *r, uint64_t seed)
{
    r->state = seed ? seed : 0x9E3779B97F4A7C15ull;
}

uint64_t prng_next(struct prng *r)
{
    uint64_t x = r->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

uint64_t prng_range(struct prng *r, uint64_t lo, uint64_t hi)
{
    return lo + prng_next(r) % (hi - lo + 1);
}

void prng_fill(struct prng *r, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        uint64_t v = prng_next(r);
        size_t k = n < sizeof v ? n : sizeof v;
        memcpy(p, &v, k);
        p += k;
        n -= k;
    }
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void pattern_fill(uint64_t seed, uint64_t offset, void *buf, size_t n)
{
    unsigned char *p = buf;
    uint64_t key = splitmix64(seed);
    while (n > 0) {
        uint64_t word = splitmix64(key ^ (offset / 8));
        unsigned char bytes[8];
        memcpy(bytes, &word, sizeof bytes);
        size_t skip = (size_t)(offset % 8);
        size_t k = 8 - skip < n ? 8 - skip : n;
        memcpy(p, bytes + skip, k);
        p += k;
        n -= k;
        offset += k;
    }
}

size_t pattern_mismatch(uint64_t seed, uint64_t offset, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    unsigned char expect[16384];
    size_t done = 0;
    while (done < n) {
        size_t k = n - done < sizeof expect ? n - done : sizeof expect;
        pattern_fill(seed, offset + done, expect, k);
        if (memcmp(expect, p + done, k) != 0) {
            for (size_t i = 0; i < k; i++)
                if (expect[i] != p[done + i])
                    return done + i;
        }
        done += k;
    }
    return n;
}

/* ---------------------------------------------------------------- files */

/* Directories made by temp_dir_make, removed at exit if the test fails
 * before it removes them itself. */
#define MAX_TEMP_DIRS 8
static char temp_dirs[MAX_TEMP_DIRS][32];

static int remove_quietly(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_temp_dirs(void)
{
    for (int i = 0; i < MAX_TEMP_DIRS; i++)
        if (temp_dirs[i][0] != '\0')
            nftw(temp_dirs[i], remove_quietly, 16, FTW_DEPTH | FTW_PHYS);
}

void temp_dir_make(char *path, size_t cap)
{
    static const char pattern[] = "/tmp/ritual-test-XXXXXX";
    static int registered;
    ASSERT_GE(cap, sizeof pattern);
    memcpy(path, pattern, sizeof pattern);
    if (mkdtemp(path) == NULL)
        FAIL("mkdtemp(%s): %s", pattern, strerror(errno));
    if (!registered) {
        atexit(remove_temp_dirs);
        registered = 1;
    }
    for (int i = 0; i < MAX_TEMP_DIRS; i++) {
        if (temp_dirs[i][0] == '\0') {
            memcpy(temp_dirs[i], path, sizeof pattern);
            break;
        }
    }
}

static void join_path(char *out, size_t cap, const char *dir, const char *rel)
{
    int n = snprintf(out, cap, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= cap)
        FAIL("path too long: %s/%s", dir, rel);
}

void file_write_at(const char *dir, const char *rel, const void *data, size_t len)
{
    char path[4096];
    join_path(path, sizeof path, dir, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        FAIL("open %s: %s", path, strerror(errno));
    const char *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            FAIL("write %s: %s", path, strerror(errno));
        done += (size_t)n;
    }
    SYSCHECK(close(fd));
}

void file_write_pattern_at(const char *dir, const char *rel, uint64_t seed, size_t len)
{
    char *data = malloc(len ? len : 1);
    ASSERT(data != NULL);
    pattern_fill(seed, 0, data, len);
    file_write_at(dir, rel, data, len);
    free(data);
}

void dir_make_at(const char *dir, const char *rel)
{
    char path[4096];
    join_path(path, sizeof path, dir, rel);
    if (mkdir(path, 0755) < 0)
        FAIL("mkdir %s: %s", path, strerror(errno));
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    if (remove(path) < 0)
        FAIL("remove %s: %s", path, strerror(errno));
    return 0;
}

void remove_tree(const char *path)
{
    if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
        FAIL("nftw %s: %s", path, strerror(errno));
    for (int i = 0; i < MAX_TEMP_DIRS; i++)
        if (strcmp(temp_dirs[i], path) == 0)
            temp_dirs[i][0] = '\0';
}

/* ------------------------------------------------------------------ HTTP */

void http_server_start(const char *ritual_path, const char *root, const char *const extra_args[],
                       struct server *out)
{
    const char *argv[64];
    int argc = 0;
    argv[argc++] = "--root";
    argv[argc++] = root;
    for (int i = 0; extra_args != NULL && extra_args[i] != NULL; i++) {
        ASSERT_LT(argc, 56);
        argv[argc++] = extra_args[i];
    }
    argv[argc] = NULL;
    server_start_cmd(ritual_path, "http", "127.0.0.1:0", argv, 0, out);
}

struct http_client *http_client_open(int port)
{
    struct http_client *c = malloc(sizeof *c);
    ASSERT(c != NULL);
    c->fd = tcp_connect(port);
    c->len = 0;
    return c;
}

void http_client_close(struct http_client *c)
{
    if (c == NULL)
        return;
    close(c->fd);
    free(c);
}

void http_send(struct http_client *c, const char *raw)
{
    send_all(c->fd, raw, strlen(raw));
}

/* Reads more bytes into c->buf, waiting until `deadline`. Returns the count,
 * 0 at the end of the stream. */
static size_t client_fill(struct http_client *c, uint64_t deadline, const char *what)
{
    if (c->len == sizeof c->buf)
        FAIL("%s: more than %zu bytes without an end", what, sizeof c->buf);
    for (;;) {
        if (!wait_fd(c->fd, POLLIN, deadline))
            FAIL("%s: nothing more within the time allowed (%zu bytes buffered: \"%.*s\")", what,
                 c->len, (int)(c->len < 200 ? c->len : 200), c->buf);
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            FAIL("%s: recv: %s", what, strerror(errno));
        c->len += (size_t)n;
        return (size_t)n;
    }
}

static void consume(struct http_client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

static const char *find_head_end(const char *buf, size_t len)
{
    const char *p = memmem(buf, len, "\r\n\r\n", 4);
    return p ? p + 4 : NULL;
}

/* Parses the head in c->buf[0..head_len) into r. */
static void parse_head(const char *buf, size_t head_len, struct http_response *r)
{
    if (head_len + 1 > sizeof r->fields)
        FAIL("response head of %zu bytes is too long", head_len);
    memcpy(r->fields, buf, head_len);
    r->fields[head_len] = '\0';
    r->head_len = head_len;
    char *line = r->fields;
    char *eol = strstr(line, "\r\n");
    *eol = '\0';
    int status = 0, minor = -1, used = 0;
    if (sscanf(line, "HTTP/1.%1d %3d%n", &minor, &status, &used) != 2 || used != 12 ||
        (line[12] != ' ' && line[12] != '\0') || status < 100)
        FAIL("bad status line: \"%s\"", line);
    r->status = status;
    r->minor_version = minor;
    for (line = eol + 2; *line != '\r';) {
        eol = strstr(line, "\r\n");
        *eol = '\0';
        if (memchr(line, '\n', (size_t)(eol - line)) || memchr(line, '\r', (size_t)(eol - line)))
            FAIL("bare CR or LF in the header line \"%s\"", line);
        char *colon = strchr(line, ':');
        if (colon == NULL || colon == line || colon[-1] == ' ' || colon[-1] == '\t')
            FAIL("bad header line: \"%s\"", line);
        *colon = '\0';
        char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        char *end = value + strlen(value);
        while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (r->num_fields == HTTP_MAX_FIELDS)
            FAIL("more than %d header fields in a response", HTTP_MAX_FIELDS);
        r->names[r->num_fields] = line;
        r->values[r->num_fields] = value;
        r->num_fields++;
        line = eol + 2;
    }
    if (http_field_count(r, "Content-Length") > 1)
        FAIL("a response with %d Content-Length headers", http_field_count(r, "Content-Length"));
    if (http_field(r, "Transfer-Encoding") != NULL)
        FAIL("unexpected Transfer-Encoding: %s", http_field(r, "Transfer-Encoding"));
    const char *cl = http_field(r, "Content-Length");
    if (cl != NULL) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (*cl < '0' || *cl > '9' || *end != '\0' || errno != 0)
            FAIL("bad Content-Length: \"%s\"", cl);
        r->has_length = 1;
        r->content_length = v;
    }
}

int http_read_head(struct http_client *c, struct http_response *r, int timeout_ms)
{
    memset(r, 0, sizeof *r);
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    const char *end;
    while ((end = find_head_end(c->buf, c->len)) == NULL) {
        /* A 1.1 server sends no empty lines between responses. */
        if (c->len > 0 && strncmp(c->buf, "HTTP/1.", c->len < 7 ? c->len : 7) != 0)
            FAIL("the response does not start with \"HTTP/1.\": \"%.*s\"",
                 (int)(c->len < 200 ? c->len : 200), c->buf);
        if (client_fill(c, deadline, "response head") == 0) {
            if (c->len == 0)
                return 0;
            FAIL("end of stream inside a response head: \"%.*s\"", (int)c->len, c->buf);
        }
    }
    size_t head_len = (size_t)(end - c->buf);
    parse_head(c->buf, head_len, r);
    consume(c, head_len);
    return 1;
}

size_t http_client_recv(struct http_client *c, void *buf, size_t cap, int timeout_ms)
{
    if (c->len > 0) {
        size_t n = c->len < cap ? c->len : cap;
        memcpy(buf, c->buf, n);
        consume(c, n);
        return n;
    }
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (!wait_fd(c->fd, POLLIN, deadline))
            FAIL("recv: nothing within %d ms", timeout_ms);
        ssize_t n = recv(c->fd, buf, cap, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            FAIL("recv: %s", strerror(errno));
        return (size_t)n;
    }
}

static int status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

int http_read_response(struct http_client *c, struct http_response *r, int head_request,
                       int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    if (!http_read_head(c, r, timeout_ms))
        return 0;
    int until_close = 0;
    uint64_t want = 0;
    if (!head_request && status_has_body(r->status)) {
        if (r->has_length)
            want = r->content_length;
        else
            until_close = 1;
    }
    size_t cap = until_close ? 1u << 20 : (size_t)want;
    if ((uint64_t)cap != want && !until_close)
        FAIL("body of %llu bytes is too large to read whole", (unsigned long long)want);
    r->body = malloc(cap + 1);
    ASSERT(r->body != NULL);
    while (until_close || r->body_len < want) {
        if (r->body_len == cap) {
            cap *= 2;
            r->body = realloc(r->body, cap + 1);
            ASSERT(r->body != NULL);
        }
        int64_t left = (int64_t)deadline - (int64_t)now_ms();
        if (left <= 0)
            FAIL("HTTP %d: %zu of %llu body bytes within %d ms", r->status, r->body_len,
                 (unsigned long long)want, timeout_ms);
        size_t n = http_client_recv(c, r->body + r->body_len, cap - r->body_len, (int)left);
        if (n == 0 && until_close)
            break;
        if (n == 0)
            FAIL("HTTP %d: end of stream after %zu of %llu body bytes", r->status, r->body_len,
                 (unsigned long long)want);
        r->body_len += n;
    }
    r->body[r->body_len] = '\0';
    return 1;
}

void http_expect_eof(struct http_client *c, int timeout_ms)
{
    if (c->len > 0)
        FAIL("expected the end of the stream, got %zu more bytes: \"%.*s\"", c->len,
             (int)(c->len < 200 ? c->len : 200), c->buf);
    expect_eof(c->fd, timeout_ms);
}

void http_exchange(int port, const char *raw, struct http_response *r, int timeout_ms)
{
    struct http_client *c = http_client_open(port);
    http_send(c, raw);
    if (!http_read_response(c, r, strncmp(raw, "HEAD ", 5) == 0, timeout_ms))
        FAIL("connection closed without a response to \"%.60s\"", raw);
    http_client_close(c);
}

const char *http_field(const struct http_response *r, const char *name)
{
    for (size_t i = 0; i < r->num_fields; i++)
        if (strcasecmp(r->names[i], name) == 0)
            return r->values[i];
    return NULL;
}

int http_field_count(const struct http_response *r, const char *name)
{
    int n = 0;
    for (size_t i = 0; i < r->num_fields; i++)
        if (strcasecmp(r->names[i], name) == 0)
            n++;
    return n;
}

void http_response_free(struct http_response *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

void http_expect_status_(const struct http_response *r, int want, const char *file, int line)
{
    if (r->status == want)
        return;
    char shown[4096];
    size_t n = 0;
    for (size_t i = 0; i < r->num_fields && n < sizeof shown; i++)
        n += (size_t)snprintf(shown + n, sizeof shown - n, "\n  %s: %s", r->names[i], r->values[i]);
    test_fail(file, line, "HTTP status %d, expected %d; headers:%s\n  body: \"%.*s\"", r->status,
              want, shown, (int)(r->body_len < 200 ? r->body_len : 200), r->body ? r->body : "");
}

void http_expect_field_(const struct http_response *r, const char *name, const char *want,
                        const char *file, int line)
{
    const char *got = http_field(r, name);
    if (want == NULL && got != NULL)
        test_fail(file, line, "HTTP %d: unexpected header %s: %s", r->status, name, got);
    if (want != NULL && (got == NULL || strcmp(got, want) != 0))
        test_fail(file, line, "HTTP %d: header %s is %s%s%s, expected \"%s\"", r->status, name,
                  got ? "\"" : "", got ? got : "absent", got ? "\"" : "", want);
}
