/* upgrade: SIGUSR2 starts a new `ritual http` on the same sockets and the
 * old one drains once the new one is ready (nginx's binary upgrade).
 *
 * ten_upgrades_under_load: `ritual bench http --close --rate 300` (every
 *   request a new connection, so the accept queue is always in use) runs
 *   while the serving process is told SIGUSR2 ten times in succession, each
 *   time waiting for the new PID to say it is ready and for the old one to
 *   exit 0. The bench must see no error of any kind (no refused or reset
 *   connection, no timeout, no failed request: nothing queued was lost)
 *   and as many requests as the rate and duration make; every new process
 *   serves the same address, and exactly one process is left, which exits
 *   0 on SIGTERM. The test is a subreaper, so it reaps the processes the
 *   old ones started.
 * ten_upgrades_keep_alive: the same with keep-alive connections, which a
 *   draining process closes between requests: the bench opens them again
 *   (idle_closed), and sends again a GET the server closed on before any
 *   byte of an answer (retried, RFC 9112 9.3.1); nothing is an error.
 * every_socket_passed_on: a site on TCP port 0 and on a unix socket, and
 *   metrics on another TCP port 0 (the same address string as the site's):
 *   after two upgrades each address still answers what it answered before,
 *   and the unix socket file is still there to connect to. */
#include "bench_support.h"
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define UPGRADES 10
#define RATE 300
#define DURATION_S 8

static char root[64];

static void make_tree(void)
{
    temp_dir_make(root, sizeof root);
    file_write_at(root, "index.html", "hello, upgrade\n", 15);
}

static void remove_root(void)
{
    remove_tree(root);
}

/* Waits up to timeout_ms for `pid` (a child, or an orphan this subreaper
 * adopted) to exit. Returns its wait status. */
static int reap(pid_t pid, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            FAIL("waitpid %d: %s", (int)pid, strerror(errno));
        if (now_ms() > deadline)
            FAIL("PID %d did not exit within %d ms", (int)pid, timeout_ms);
        sleep_ms(5);
    }
}

/* The PID of the n-th (from 1) "SIGUSR2: started PID " line in the log. */
static pid_t started_pid(const char *log_path, int nth)
{
    size_t len;
    char *text = file_read(log_path, &len);
    ASSERT(text != NULL);
    const char *at = text;
    static const char needle[] = "SIGUSR2: started PID ";
    for (int i = 0; i < nth; i++) {
        at = strstr(at, needle);
        if (!at)
            FAIL("no \"%s\" line number %d in the log", needle, nth);
        at += sizeof needle - 1;
    }
    pid_t pid = (pid_t)atoi(at);
    free(text);
    ASSERT(pid > 0);
    return pid;
}

/* One line from the servers' shared stdout, within 10 s. */
static void read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    uint64_t deadline = now_ms() + 10000;
    while (n + 1 < cap) {
        if (!wait_fd(fd, POLLIN, deadline))
            FAIL("no line on stdout within 10 s");
        ssize_t r = read(fd, buf + n, 1);
        if (r <= 0)
            FAIL("stdout ended");
        if (buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = '\0';
}

static void ten_upgrades(bool close_each)
{
    SYSCHECK(prctl(PR_SET_CHILD_SUBREAPER, 1));
    const char *ritual = ritual_program();
    struct server s;
    const char *extra[] = {"--workers", "2", "--drain-timeout", "10", NULL};
    http_server_start(ritual, root, extra, &s);

    /* The bench, its JSON report into a file. */
    char out_path[64];
    snprintf(out_path, sizeof out_path, "/tmp/ritual-upgrade-bench-%d.json", (int)getpid());
    char duration[16], rate[16];
    snprintf(duration, sizeof duration, "%d", DURATION_S);
    snprintf(rate, sizeof rate, "%d", RATE);
    pid_t bench = SYSCHECK(fork());
    if (bench == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || dup2(fd, 1) < 0)
            _exit(126);
        execl(ritual, ritual, "bench", "http", "--connect", s.address, "--rate", rate, "--duration",
              duration, "--connections", "50", "--json", close_each ? "--close" : (char *)NULL,
              (char *)NULL);
        _exit(127);
    }
    sleep_ms(1000); /* load before the first upgrade, as after the last */

    pid_t current = s.pid;
    uint64_t worst = 0, total = 0;
    for (int i = 1; i <= UPGRADES; i++) {
        uint64_t start = now_ms();
        SYSCHECK(kill(current, SIGUSR2));
        server_wait_log(&s, "is ready; draining", i);
        uint64_t ready = now_ms();
        pid_t next = started_pid(s.stderr_path, i);
        int status = reap(current, 15000);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            FAIL("old PID %d ended with status %#x", (int)current, status);
        if (current == s.pid)
            s.exited = 0; /* the struct now follows the newest process */
        uint64_t gone = now_ms();
        char line[160], want[160];
        read_line(s.stdout_fd, line, sizeof line);
        snprintf(want, sizeof want, "listening on %s", s.address);
        if (strcmp(line, want) != 0)
            FAIL("PID %d printed '%s', expected '%s'", (int)next, line, want);
        note("upgrade %d: PID %d -> %d, ready in %llu ms, old one gone in %llu ms", i, (int)current,
             (int)next, (unsigned long long)(ready - start), (unsigned long long)(gone - start));
        /* Its connections are short: it must not wait out --drain-timeout. */
        if (gone - start > 5000)
            FAIL("upgrade %d: the old process took %llu ms to exit", i,
                 (unsigned long long)(gone - start));
        worst = gone - start > worst ? gone - start : worst;
        total += gone - start;
        current = next;
        s.pid = next;
        sleep_ms(200); /* a spell of steady load between upgrades */
    }
    note("%d upgrades: %llu ms on average, %llu ms at worst", UPGRADES,
         (unsigned long long)(total / UPGRADES), (unsigned long long)worst);

    int status = reap(bench, (DURATION_S + 30) * 1000);
    size_t len;
    char *json = file_read(out_path, &len);
    ASSERT(json != NULL);
    unlink(out_path);
    note("bench: %s", json);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FAIL("the bench exited with status %#x", status);
    static const char *const errors[] = {"connect", "reset",    "timeout", "protocol",
                                         "status",  "overload", "total"};
    const char *counts = strstr(json, "\"errors\":");
    ASSERT(counts != NULL);
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (json_number(counts, errors[i]) != 0)
            FAIL("the bench counted %s errors", errors[i]);
    double requests = json_number(json, "requests"), want = (double)RATE * DURATION_S;
    if (requests < want * 0.98 || requests > want * 1.02 + 2)
        FAIL("%.0f requests, expected %.0f", requests, want);
    ASSERT_EQ(json_number(json, "2xx"), requests);
    free(json);

    /* The newest serves, and is the only process left. */
    struct http_response r;
    http_exchange(s.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r, 5000);
    HTTP_EXPECT_STATUS(&r, 200);
    http_response_free(&r);
    ASSERT_EQ(waitpid(-1, &status, WNOHANG), 0); /* one child left, running */
    server_expect_clean_exit(&s);
    errno = 0;
    ASSERT(waitpid(-1, &status, WNOHANG) < 0 && errno == ECHILD);
}

/* GET / over a connected socket: the status line and the body. */
static void expect_get(int fd, const char *target, const char *status, const char *body)
{
    char request[128];
    snprintf(request, sizeof request, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", target);
    send_all(fd, request, strlen(request));
    char answer[4096];
    size_t n = 0;
    uint64_t deadline = now_ms() + 5000;
    for (;;) {
        ASSERT(wait_fd(fd, POLLIN, deadline));
        ssize_t r = read(fd, answer + n, sizeof answer - 1 - n);
        ASSERT(r >= 0);
        if (r == 0 || (n += (size_t)r) == sizeof answer - 1)
            break;
    }
    answer[n] = '\0';
    close(fd);
    if (strncmp(answer, status, strlen(status)) != 0 || !strstr(answer, body))
        FAIL("GET %s: expected '%s' and '%s', got: %.200s", target, status, body, answer);
}

static void expect_same_line(const char *line, const char *want)
{
    if (strcmp(line, want) != 0)
        FAIL("the new process printed '%s', expected '%s'", line, want);
}

static void every_socket_passed_on(void)
{
    SYSCHECK(prctl(PR_SET_CHILD_SUBREAPER, 1));
    char sock[128], listen_unix[160];
    snprintf(sock, sizeof sock, "%s/site.sock", root);
    snprintf(listen_unix, sizeof listen_unix, "unix:%s", sock);
    const char *extra[] = {"--workers",        "2",           "--listen", listen_unix,
                           "--metrics-listen", "127.0.0.1:0", NULL};
    struct server s;
    http_server_start(ritual_program(), root, extra, &s);
    char unix_line[200], metrics_line[200], line[200];
    read_line(s.stdout_fd, unix_line, sizeof unix_line);
    read_line(s.stdout_fd, metrics_line, sizeof metrics_line);
    const char *colon = strrchr(metrics_line, ':');
    ASSERT(strncmp(metrics_line, "metrics on 127.0.0.1:", 21) == 0 && colon);
    int metrics_port = atoi(colon + 1);
    for (int i = 1; i <= 2; i++) {
        SYSCHECK(kill(s.pid, SIGUSR2));
        server_wait_log(&s, "is ready; draining", i);
        pid_t next = started_pid(s.stderr_path, i);
        int status = reap(s.pid, 15000);
        ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (i == 1)
            s.exited = 0;
        s.pid = next;
        char want[200];
        snprintf(want, sizeof want, "listening on %s", s.address);
        read_line(s.stdout_fd, line, sizeof line);
        expect_same_line(line, want);
        read_line(s.stdout_fd, line, sizeof line);
        expect_same_line(line, unix_line);
        read_line(s.stdout_fd, line, sizeof line);
        expect_same_line(line, metrics_line);
        expect_get(tcp_connect(s.port), "/", "HTTP/1.1 200", "hello, upgrade");
        expect_get(unix_connect(sock), "/", "HTTP/1.1 200", "hello, upgrade");
        expect_get(tcp_connect(metrics_port), "/metrics", "HTTP/1.1 200",
                   "ritual_connections_accepted_total");
        note("upgrade %d: the site on %s and %s, the metrics on port %d, all served", i, s.address,
             sock, metrics_port);
    }
    server_expect_clean_exit(&s);
    /* The socket file passed on with the socket: the last process removed it. */
    if (access(sock, F_OK) == 0)
        FAIL("%s is still there after the last process exited", sock);
}

static void ten_upgrades_under_load(void)
{
    ten_upgrades(true);
}

static void ten_upgrades_keep_alive(void)
{
    ten_upgrades(false);
}

TEST_CASES_WITH(make_tree, remove_root, CASE(ten_upgrades_under_load),
                CASE(ten_upgrades_keep_alive), CASE(every_socket_passed_on))
