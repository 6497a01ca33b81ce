/* scale: 10,000 concurrent connections, each doing one 32-byte round trip,
 * all served (a select()-based server stops at 1,024). Reports what an open
 * connection costs the server in resident memory. */
#include "support.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONNS 10000
#define BATCH 500
#define NOFILE 25000

static int fds[CONNS];

static void ten_thousand_connections(void)
{
    rlim_t nofile = raise_nofile_up_to(NOFILE, CONNS + 512);
    note("RLIMIT_NOFILE %llu for the test and the server", (unsigned long long)nofile);
    struct server s;
    server_start(ritual_program(), NULL, nofile, &s);

    /* Warm up with one connection, then take the baseline. */
    int fd = tcp_connect(s.port);
    echo_roundtrip(fd, "warm-up", 7, 5000);
    close(fd);
    long rss_before = proc_rss_kb(s.pid);

    uint64_t start = now_ms();
    for (int first = 0; first < CONNS; first += BATCH) {
        size_t connected = connect_many(s.port, fds + first, BATCH, 10000);
        if (connected != BATCH)
            FAIL("connections %d..%d: only %zu of %d connects completed within 10 s", first,
                 first + BATCH - 1, connected, BATCH);
        echo_many(fds + first, BATCH, (size_t)first, 20000);
    }
    long rss_after = proc_rss_kb(s.pid);
    note("%d connections open, one round trip each, in %llu ms", CONNS,
         (unsigned long long)(now_ms() - start));
    note("server RSS: %ld kB before, %ld kB with %d connections open", rss_before, rss_after,
         CONNS);
    long per_conn = (rss_after - rss_before) * 1024 / CONNS;
    note("rss per connection: %ld bytes", per_conn);
    /* Generous: an idle connection must not pin a whole 64 KiB read buffer. */
    ASSERT_LT(per_conn, 64 * 1024);

    /* The first and the last are both still served. */
    echo_roundtrip(fds[0], "still open", 10, 5000);
    echo_roundtrip(fds[CONNS - 1], "still open", 10, 5000);

    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    server_expect_clean_exit(&s);
}

TEST_CASES(CASE(ten_thousand_connections))
