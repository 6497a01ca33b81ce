/* The signals an operator or the system sends, besides SIGINT and SIGTERM,
 * lose nothing. A closed terminal sends SIGHUP, logrotate SIGHUP or
 * SIGUSR1; left at their default action these (and SIGUSR2, SIGALRM,
 * SIGQUIT) killed the server at once, with its buffered access log lines
 * unwritten. Now SIGHUP and SIGUSR1 reopen the log, SIGALRM is ignored (it
 * says so in the log), and SIGQUIT drains as SIGTERM does. (SIGUSR2, the
 * binary upgrade, has a test of its own: upgrade.c.)
 *
 * http_signals_and_log_rotation: ritual http, 20 requests, then each signal
 * in turn, a request after each; the log moved away as logrotate does,
 * SIGUSR1, 5 more requests; SIGQUIT: exit 0, and the 24 requests before the
 * rotation are in the moved file, the 5 after it in the new one.
 * echo_signals_with_a_client: ritual echo, the same signals with a client
 * connected, which SIGQUIT's drain waits for. */
#include "support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char get[] = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

static void get_ok(int port)
{
    struct http_response r;
    http_exchange(port, get, &r, 5000);
    HTTP_EXPECT_STATUS(&r, 200);
    http_response_free(&r);
}

static int lines_in(const char *path)
{
    size_t len;
    char *text = file_read(path, &len);
    if (!text)
        return 0;
    int n = count_lines(text);
    free(text);
    return n;
}

static void http_signals_and_log_rotation(void)
{
    const char *ritual = ritual_program();
    char root[64], logs[64], log[128], rotated[140];
    temp_dir_make(root, sizeof root);
    temp_dir_make(logs, sizeof logs);
    file_write_at(root, "index.html", "hello\n", 6);
    snprintf(log, sizeof log, "%s/access.log", logs);
    snprintf(rotated, sizeof rotated, "%s.1", log);
    const char *args[] = {"--access-log", log, "--workers", "2", NULL};
    struct server s;
    http_server_start(ritual, root, args, &s);
    for (int i = 0; i < 20; i++)
        get_ok(s.port);

    static const struct {
        int signum;
        const char *logged;
    } signals[] = {
        {SIGHUP, "SIGHUP: reopening the access log"},
        {SIGUSR1, "SIGUSR1: reopening the access log"},
        {SIGALRM, "SIGALRM: ignored"},
    };
    int reopened = 0;
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        SYSCHECK(kill(s.pid, signals[i].signum));
        server_wait_log(&s, signals[i].logged, 1);
        if (strstr(signals[i].logged, "reopening"))
            server_wait_log(&s, "reopened the access log", ++reopened);
        get_ok(s.port);
    }

    /* logrotate: move the file, then SIGUSR1; once the workers have
     * written out their buffers and the new file is in place, new lines
     * go there. */
    SYSCHECK(rename(log, rotated));
    SYSCHECK(kill(s.pid, SIGUSR1));
    server_wait_log(&s, "reopened the access log", ++reopened);
    for (int i = 0; i < 5; i++)
        get_ok(s.port);

    SYSCHECK(kill(s.pid, SIGQUIT));
    if (!server_wait(&s, 15000))
        FAIL("SIGQUIT: the server did not exit within 15 s");
    server_wait_log(&s, "SIGQUIT: shutting down", 1);
    server_expect_clean_exit(&s);

    int old_lines = lines_in(rotated), new_lines = lines_in(log);
    note("http: %d lines in the rotated log, %d in the new one", old_lines, new_lines);
    ASSERT_EQ(old_lines, 20 + 3);
    ASSERT_EQ(new_lines, 5);
    remove_tree(root);
    remove_tree(logs);
}

static void echo_signals_with_a_client(void)
{
    const char *ritual = ritual_program();
    struct server s;
    server_start(ritual, NULL, 0, &s);
    int fd = tcp_connect(s.port);
    static const struct {
        int signum;
        const char *logged;
    } signals[] = {
        {SIGHUP, "SIGHUP: no log file to reopen"},
        {SIGUSR1, "SIGUSR1: no log file to reopen"},
        {SIGALRM, "SIGALRM: ignored"},
    };
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        SYSCHECK(kill(s.pid, signals[i].signum));
        server_wait_log(&s, signals[i].logged, 1);
        echo_roundtrip(fd, "still here", 10, 5000);
    }
    /* SIGQUIT drains: the open connection goes on until it closes. */
    SYSCHECK(kill(s.pid, SIGQUIT));
    server_wait_log(&s, "SIGQUIT: shutting down", 1);
    echo_roundtrip(fd, "draining", 8, 5000);
    close(fd);
    if (!server_wait(&s, 15000))
        FAIL("SIGQUIT: the server did not exit once its last client left");
    server_expect_clean_exit(&s);
}

TEST_CASES(CASE(http_signals_and_log_rotation), CASE(echo_signals_with_a_client))
