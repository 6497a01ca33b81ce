/* idle_cpu: a thousand idle connections cost the server no CPU. A server that
 * polls with a zero timeout, wakes on a fast tick or walks every connection
 * on a timer would show up here. */
#include "support.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CONNS 1000

static void thousand_idle_connections_cost_no_cpu(void)
{
    raise_nofile(CONNS + 256);
    struct server s;
    server_start(ritual_program(), NULL, 0, &s);
    long rss_before = proc_rss_kb(s.pid);

    /* One echo on each, so every connection has been accepted and set up. */
    static int fds[CONNS];
    for (int i = 0; i < CONNS; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "idle client %d", i);
        fds[i] = tcp_connect(s.port);
        echo_roundtrip(fds[i], msg, strlen(msg), 5000);
    }

    long ticks;
    double cpu = proc_cpu_percent(s.pid, 3000, &ticks);
    long rss = proc_rss_kb(s.pid);
    note("server CPU with %d idle connections: %.2f%% of a core (%ld ticks in 3 s)", CONNS, cpu,
         ticks);
    note("server RSS: %ld kB before, %ld kB with %d connections", rss_before, rss, CONNS);
    ASSERT_DBL_LT(cpu, 2.0);

    /* The connections are still open and served. */
    echo_roundtrip(fds[0], "first", 5, 5000);
    echo_roundtrip(fds[CONNS - 1], "last", 4, 5000);

    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    server_expect_clean_exit(&s);
}

TEST_CASES(CASE(thousand_idle_connections_cost_no_cpu))
