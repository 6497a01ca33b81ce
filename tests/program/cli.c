/* cli: the command line. Usage errors exit 2 with one line on stderr and
 * nothing on stdout; --help prints usage on stdout and exits 0; a port in
 * use exits 1 naming the failed bind; an IPv6 listen address works;
 * --backend names the choices when it knows none, and io_uring refused by
 * the kernel falls back to epoll with a warning. */
#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *ritual;

/* Runs `ritual ARGS...` (args NULL-terminated) and returns its result. */
static void run_ritual(const char *const args[], struct cmd_result *r)
{
    const char *argv[16];
    int argc = 0;
    argv[argc++] = ritual;
    for (int i = 0; args[i] != NULL; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    run_command(argv, 10000, r);
}

static void describe(const char *const args[], char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "ritual");
    for (int i = 0; args[i] != NULL && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, " %s", args[i]);
}

/* Exits with `code`, prints nothing on stdout and one line on stderr that
 * starts with "ritual"; returns that line in r->err. */
static void expect_one_line_error(const char *const args[], int code, struct cmd_result *r)
{
    char cmd[256];
    describe(args, cmd, sizeof cmd);
    run_ritual(args, r);
    if (r->exit_code != code)
        FAIL("`%s`: exit code %d (signal %d), expected %d; stderr: %s", cmd, r->exit_code,
             r->term_signal, code, r->err);
    if (r->out_len != 0)
        FAIL("`%s`: expected nothing on stdout, got: %s", cmd, r->out);
    if (count_lines(r->err) != 1 || r->err[r->err_len - 1] != '\n' || r->err[0] == '\n')
        FAIL("`%s`: expected one line on stderr, got %d: \"%s\"", cmd, count_lines(r->err), r->err);
    if (strncmp(r->err, "ritual", 6) != 0)
        FAIL("`%s`: the stderr line does not start with \"ritual\": %s", cmd, r->err);
    note("`%s` -> %d: %.*s", cmd, code, (int)r->err_len - 1, r->err);
}

static void usage_errors(void)
{
    static const char *const cases[][4] = {
        {"echo", "--listen", ":", NULL},
        {"echo", "--listen", "1.2.3.4:99999", NULL},
        {"echo", "--listen", "[::1", NULL},
        {"echo", "--listen", "abc:80", NULL},
        {"echo", "--bogus", NULL},
        {"echo", "--backlog", NULL},
        {"echo", "--backlog", "-3", NULL},
        {"echo", "--backlog", "12x", NULL},
        {"echo", "--idle-timeout", "x", NULL},
        {"echo", "--drain-timeout", "x", NULL},
        {"echo", "--max-conns", "abc", NULL},
        {"echo", "--buffer-size", "abc", NULL},
        {"echo", "--log-level", "loud", NULL},
        {"nosuchcommand", NULL},
    };
    struct cmd_result r;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_one_line_error(cases[i], 2, &r);
}

static void help(const char *const args[])
{
    char cmd[256];
    describe(args, cmd, sizeof cmd);
    struct cmd_result r;
    run_ritual(args, &r);
    if (r.exit_code != 0)
        FAIL("`%s`: exit code %d, expected 0; stderr: %s", cmd, r.exit_code, r.err);
    if (strstr(r.out, "--listen") == NULL)
        FAIL("`%s`: the usage on stdout does not mention --listen: \"%s\"", cmd, r.out);
    if (r.err_len != 0)
        FAIL("`%s`: expected nothing on stderr, got: %s", cmd, r.err);
    note("`%s` -> 0, %d lines of usage", cmd, count_lines(r.out));
}

static void port_in_use(void)
{
    int fd = SYSCHECK(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    SYSCHECK(bind(fd, (struct sockaddr *)&sa, sizeof sa));
    SYSCHECK(listen(fd, 16));
    int port = socket_port(fd);

    char listen_at[32], expected[64];
    snprintf(listen_at, sizeof listen_at, "127.0.0.1:%d", port);
    snprintf(expected, sizeof expected, "bind 127.0.0.1:%d: Address already in use", port);
    struct cmd_result r;
    expect_one_line_error((const char *const[]){"echo", "--listen", listen_at, NULL}, 1, &r);
    if (strstr(r.err, expected) == NULL)
        FAIL("stderr \"%s\" does not contain \"%s\"", r.err, expected);
    close(fd);
}

/* Returns 1 if this machine has an IPv6 loopback we can listen on. */
static int have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static void ipv6_listen(void)
{
    if (!have_ipv6_loopback()) {
        note("SKIP ipv6: no IPv6 loopback on this machine");
        return;
    }
    struct server s;
    server_start_at(ritual, "[::1]:0", NULL, 0, &s);
    note("`ritual echo --listen [::1]:0` printed \"listening on %s\"", s.address);

    int fd = SYSCHECK(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
                              .sin6_port = htons((uint16_t)s.port),
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    SYSCHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa));
    echo_roundtrip(fd, "over IPv6", 9, 5000);
    close(fd);
    server_expect_clean_exit(&s);
}

/* What the server has written on its stderr so far (NUL-terminated). */
static void server_stderr(const struct server *s, char *buf, size_t cap)
{
    size_t len;
    char *text = file_read(s->stderr_path, &len);
    ASSERT(text != NULL);
    snprintf(buf, cap, "%s", text);
    free(text);
}

/* The line of `text` that contains `what`, into line[cap]; 0 if none. */
static int line_with(const char *text, const char *what, char *line, size_t cap)
{
    const char *hit = strstr(text, what);
    if (hit == NULL)
        return 0;
    const char *start = hit;
    while (start > text && start[-1] != '\n')
        start--;
    size_t len = strcspn(start, "\n");
    snprintf(line, cap, "%.*s", (int)len, start);
    return 1;
}

static int says_workers_on(const char *text, const char *backend)
{
    char one[64], many[64];
    snprintf(one, sizeof one, "1 worker on %s", backend);
    snprintf(many, sizeof many, "workers on %s", backend);
    return strstr(text, one) != NULL || strstr(text, many) != NULL;
}

/* --backend. An unknown name is a usage error naming the valid ones. Asked
 * for io_uring, the server runs on it where the machine allows it; when
 * the kernel refuses it (RITUAL_URING_FAIL=1 plays such a kernel) the
 * server warns, runs on epoll, prints its "listening on" line and echoes.
 * --backend beats RITUAL_BACKEND, so this holds in the _epoll and _poll
 * runs too. */
static void backend_choice(void)
{
    struct cmd_result r;
    expect_one_line_error((const char *const[]){"echo", "--backend", "bogus", NULL}, 2, &r);
    static const char *const names[] = {"'bogus'", "auto", "io_uring", "epoll", "poll"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strstr(r.err, names[i]) == NULL)
            FAIL("`ritual echo --backend bogus`: the message does not name %s: %s", names[i],
                 r.err);

    char err[16384], line[512];
    struct server s;
    server_start(ritual, (const char *const[]){"--backend", "io_uring", "--workers", "1", NULL}, 0,
                 &s);
    int fd = tcp_connect(s.port);
    echo_roundtrip(fd, "on io_uring?", 12, 5000);
    close(fd);
    server_stderr(&s, err, sizeof err);
    int have_uring = says_workers_on(err, "io_uring");
    int refused = strstr(err, "io_uring unavailable") != NULL;
    server_expect_clean_exit(&s);
    if (!have_uring) {
        const char *why = refused ? "the kernel refuses it" : "ritual was built without liburing";
        const char *require = getenv("RITUAL_TEST_REQUIRE_URING");
        if (require != NULL && strcmp(require, "1") == 0)
            FAIL("`ritual echo --backend io_uring` did not run on io_uring (%s; stderr: %s) "
                 "and RITUAL_TEST_REQUIRE_URING=1",
                 why, err);
        note("io_uring is not available (%s): the fallback warning is not checked", why);
    }

#ifndef RITUAL_TEST_HOOKS
    note("the fallback: skipped, built without RITUAL_TEST_HOOKS (RITUAL_URING_FAIL)");
    return;
#endif
    ASSERT_EQ(setenv("RITUAL_URING_FAIL", "1", 1), 0);
    server_start(ritual, (const char *const[]){"--backend", "io_uring", NULL}, 0, &s);
    ASSERT_EQ(unsetenv("RITUAL_URING_FAIL"), 0);
    fd = tcp_connect(s.port);
    echo_roundtrip(fd, "through the fallback", 20, 5000);
    close(fd);
    server_stderr(&s, err, sizeof err);
    if (have_uring || refused) {
        if (!line_with(err, "io_uring unavailable", line, sizeof line))
            FAIL("RITUAL_URING_FAIL=1 ritual echo --backend io_uring: no \"io_uring "
                 "unavailable\" on stderr: %s",
                 err);
        if (strstr(line, "warn") == NULL || strstr(line, "using epoll") == NULL)
            FAIL("the fallback line is not a warning naming epoll: %s", line);
        note("RITUAL_URING_FAIL=1 `ritual echo --backend io_uring`: %s", line);
    }
    if (!says_workers_on(err, "epoll"))
        FAIL("RITUAL_URING_FAIL=1 ritual echo --backend io_uring: not on epoll; stderr: %s", err);
    server_expect_clean_exit(&s);
}

static void no_command(void)
{
    struct cmd_result r;
    expect_one_line_error((const char *const[]){NULL}, 2, &r);
}

static void help_for_echo(void)
{
    help((const char *const[]){"echo", "--help", NULL});
}

static void help_at_top_level(void)
{
    help((const char *const[]){"--help", NULL});
}

static void find_ritual(void)
{
    ritual = ritual_program();
}

TEST_CASES_WITH(find_ritual, NULL, CASE(usage_errors), CASE(no_command), CASE(help_for_echo),
                CASE(port_in_use), CASE(ipv6_listen), CASE(backend_choice), CASE(help_at_top_level))
