/* server.c - the ritual program as a child process, and commands run to completion. See support.h.
 */
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

/* Kills the servers still running and shows their stderr: a failing test
 * leaves no process behind and says what the server said. */
void servers_kill_on_failure(void)
{
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

/* Starts argv[0] with its stdout on a pipe and its stderr in a file, and
 * reads its first stdout line into line[cap]. */
static void spawn(const char *const argv[], rlim_t nofile, struct server *out, char *line,
                  size_t cap)
{
    memset(out, 0, sizeof *out);
    out->stdout_fd = -1;

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
        execv(argv[0], (char *const *)argv);
        static const char msg[] = "test: execv of the server failed\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(127);
    }

    close(err_fd);
    close(null_fd);
    close(out_pipe[1]);
    out->pid = pid;
    out->stdout_fd = out_pipe[0];
    remember_server(out);
    read_listening_line(out, line, cap);
}

void server_start_argv(const char *const argv[], rlim_t nofile, struct server *out)
{
    char line[256];
    spawn(argv, nofile, out, line, sizeof line);
    const char *colon = strrchr(line, ':');
    const char *digits = strncmp(line, "listening on port ", 18) == 0       ? line + 18
                         : strncmp(line, "listening on ", 13) == 0 && colon ? colon + 1
                                                                            : NULL;
    char *end;
    long port = digits ? strtol(digits, &end, 10) : 0;
    if (!digits || *end != '\0' || end == digits || port <= 0 || port > 65535)
        FAIL("%s's first stdout line is \"%s\", expected \"listening on port N\"", argv[0], line);
    snprintf(out->address, sizeof out->address, "127.0.0.1:%ld", port);
    out->port = (int)port;
}

void server_start_cmd(const char *ritual_path, const char *command, const char *listen,
                      const char *const extra_args[], rlim_t nofile, struct server *out)
{
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
    char line[256];
    spawn(argv, nofile, out, line, sizeof line);
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

void server_wait_log(struct server *s, const char *needle, int count)
{
    uint64_t deadline = now_ms() + 10000;
    for (;;) {
        size_t len;
        char *text = file_read(s->stderr_path, &len);
        int seen = 0;
        for (const char *p = text; p && (p = strstr(p, needle)); p++)
            seen++;
        free(text);
        if (seen >= count)
            return;
        if (server_wait(s, 0))
            FAIL("the server ended (wait status 0x%x) before logging \"%s\"", s->status, needle);
        if (now_ms() > deadline) {
            server_dump_stderr(s);
            FAIL("no \"%s\" in the server's log", needle);
        }
        sleep_ms(10);
    }
}
