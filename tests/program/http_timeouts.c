/* http_timeouts: slow or silent clients cannot hold a connection.
 *   - slowloris: a head trickling in one byte every 200 ms gets 408 and the
 *     close once --header-timeout (1 s) has passed since the connect;
 *     slow_head_in_time: one that takes 400 ms is answered;
 *   - abandoned_heads: a head begun and abandoned gets 408 too, also on a
 *     kept-alive connection; a connection that never sends a byte is
 *     closed silently;
 *   - keepalive_timeout: with --keepalive-timeout 1, an idle connection
 *     closes silently ~1 s after its last response, but one that keeps
 *     asking stays open;
 *   - body_timeout: with --body-timeout 1, a body that stops arriving ends
 *     the connection;
 *   - busy_pipeline: with every timeout 1 s, a pipeline of 1 MiB answers
 *     read slowly is not cut while the server is the one sending;
 *   - with --send-timeout 1, send_timeout_stalled_reader: a client that
 *     asks for 64 MB and never reads is dropped within a few seconds, and
 *     the server's memory stays flat; send_timeout_steady_reader: one that
 *     reads slowly but steadily gets every byte. */
#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TIMEOUT 5000
#define BIG_SIZE (64u << 20)
#define BIG_SEED 31

static char root[64];
static struct server server;

static void make_tree(void)
{
    temp_dir_make(root, sizeof root);
    file_write_at(root, "index.html", "<h1>home</h1>\n", 14);
    file_write_pattern_at(root, "big.bin", BIG_SEED, BIG_SIZE);
    file_write_pattern_at(root, "mib.bin", BIG_SEED, 1u << 20); /* big.bin's first MiB */
}

static void stop_and_remove_tree(void)
{
    server_expect_clean_exit(&server);
    remove_tree(root);
}

/* The servers of the three groups of cases; each returns the port. */

/* Head timeout 1 s; keep-alive long, so it cannot be what closes. */
static int serve_header_timeout(void)
{
    http_server_start(
        ritual_program(), root,
        (const char *const[]){"--header-timeout", "1", "--keepalive-timeout", "30", NULL}, &server);
    return server.port;
}

/* Keep-alive and body timeouts 1 s; heads may take long. */
static int serve_idle_timeouts(void)
{
    http_server_start(ritual_program(), root,
                      (const char *const[]){"--keepalive-timeout", "1", "--header-timeout", "30",
                                            "--body-timeout", "1", NULL},
                      &server);
    return server.port;
}

/* Every timeout 1 s, send included; one worker, whose sockets are counted. */
static int serve_send_timeout(void)
{
    http_server_start(ritual_program(), root,
                      (const char *const[]){"--send-timeout", "1", "--header-timeout", "1",
                                            "--keepalive-timeout", "1", "--workers", "1", NULL},
                      &server);
    return server.port;
}

/* Seconds since `start`, as a double, for the notes. */
static double since(uint64_t start)
{
    return (double)(now_ms() - start) / 1000.0;
}

/* Expects the 408 and the close on c, the 408 within [lo_ms, hi_ms] of start. */
static void expect_408(struct http_client *c, uint64_t start, int lo_ms, int hi_ms,
                       const char *what)
{
    struct http_response r;
    if (!http_read_response(c, &r, 0, hi_ms + 2000))
        FAIL("%s: closed without a 408", what);
    uint64_t took = now_ms() - start;
    HTTP_EXPECT_STATUS(&r, 408);
    HTTP_EXPECT_FIELD(&r, "Connection", "close");
    http_response_free(&r);
    http_expect_eof(c, TIMEOUT);
    note("%s: 408 after %.2f s", what, (double)took / 1000.0);
    ASSERT_GE(took, lo_ms);
    ASSERT_LE(took, hi_ms);
}

static void slowloris(void)
{
    int port = serve_header_timeout();
    static const char head[] = "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaa";
    struct http_client *c = http_client_open(port);
    uint64_t start = now_ms();
    /* One byte every 200 ms (the pace of the attack, not a wait for the
     * server), until the server answers; never the end of the head. */
    size_t sent = 0;
    for (;;) {
        if (sent == sizeof head - 1)
            FAIL("sent %zu bytes over %.2f s without a 408", sent, since(start));
        send_all(c->fd, head + sent, 1);
        sent++;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int r = poll(&p, 1, 200);
        if (r < 0 && errno == EINTR)
            continue;
        SYSCHECK(r);
        if (r > 0)
            break;
    }
    expect_408(c, start, 900, 3000, "slowloris (1 byte every 200 ms)");
    note("slowloris sent %zu bytes before the 408", sent);
    http_client_close(c);
}

/* A head that takes 400 ms, well within the 1 s: answered. */
static void slow_head_in_time(void)
{
    int port = serve_header_timeout();
    static const char head[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    struct http_client *c = http_client_open(port);
    for (size_t i = 0; i < 5; i++) {
        send_all(c->fd, head + i * 6, i < 4 ? 6 : sizeof head - 1 - 24);
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (i < 4 && poll(&p, 1, 100) != 0) /* the client's pace */
            FAIL("an answer or a close before the head was complete");
    }
    struct http_response r;
    ASSERT(http_read_response(c, &r, 0, TIMEOUT));
    HTTP_EXPECT_STATUS(&r, 200);
    http_response_free(&r);
    http_client_close(c);
    note("a head sent in 5 pieces over 400 ms: answered");
}

static void abandoned_heads(void)
{
    int port = serve_header_timeout();
    /* A head begun and abandoned. */
    struct http_client *c = http_client_open(port);
    uint64_t start = now_ms();
    http_send(c, "GET / HTTP/1.1\r\nHost: x\r\n");
    expect_408(c, start, 900, 3000, "half a head, then silence");
    http_client_close(c);

    /* The same on a connection that already had an answer: the deadline
     * counts from the new head's first byte. */
    c = http_client_open(port);
    http_send(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    struct http_response r;
    ASSERT(http_read_response(c, &r, 0, TIMEOUT));
    HTTP_EXPECT_STATUS(&r, 200);
    http_response_free(&r);
    start = now_ms();
    http_send(c, "GET / HT");
    expect_408(c, start, 900, 3000, "a second head begun, then silence");
    http_client_close(c);

    /* Nothing at all: closed, with nothing to answer. */
    c = http_client_open(port);
    start = now_ms();
    http_expect_eof(c, TIMEOUT);
    uint64_t took = now_ms() - start;
    note("a connection that sends nothing: closed silently after %.2f s", (double)took / 1000.0);
    ASSERT_GE(took, 900);
    ASSERT_LE(took, 3000);
    http_client_close(c);
}

static void keepalive_timeout(void)
{
    int port = serve_idle_timeouts();
    /* Idle after a response: closed silently after ~1 s. */
    struct http_client *c = http_client_open(port);
    http_send(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    struct http_response r;
    ASSERT(http_read_response(c, &r, 0, TIMEOUT));
    HTTP_EXPECT_STATUS(&r, 200);
    http_response_free(&r);
    uint64_t start = now_ms();
    http_expect_eof(c, TIMEOUT);
    uint64_t took = now_ms() - start;
    note("idle keep-alive connection closed silently after %.2f s", (double)took / 1000.0);
    ASSERT_GE(took, 900);
    ASSERT_LE(took, 3000);
    http_client_close(c);

    /* A request every 500 ms for 3 s: never idle for 1 s, never closed. The
     * server reads each request after it was sent, so a close that comes
     * under 1 s after a send is the server's mistake; one that comes later
     * means this client stalled (a loaded machine): it proves nothing, and
     * the case goes on with a new connection. */
    c = http_client_open(port);
    start = now_ms();
    int stalls = 0;
    for (int i = 0; i < 6; i++) {
        uint64_t sent_at = now_ms();
        http_send(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        if (!http_read_response(c, &r, 0, TIMEOUT))
            FAIL("request %d (%.2f s in): the connection was closed", i, since(start));
        HTTP_EXPECT_STATUS(&r, 200);
        http_response_free(&r);
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 500) > 0) { /* the pause between requests */
            uint64_t idle = now_ms() - sent_at;
            http_expect_eof(c, TIMEOUT); /* readable: the FIN, not stray bytes or a reset */
            if (idle < 1000)
                FAIL("request %d: the server closed a connection idle for %llu ms", i,
                     (unsigned long long)idle);
            ASSERT_LT(++stalls, 3);
            http_client_close(c);
            c = http_client_open(port);
        }
    }
    note("a request every 500 ms kept the connection open for %.2f s (%d client stalls)",
         since(start), stalls);
    http_client_close(c);
}

static void body_timeout(void)
{
    int port = serve_idle_timeouts();
    struct http_client *c = http_client_open(port);
    uint64_t start = now_ms();
    http_send(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello");
    struct http_response r;
    int answered = http_read_response(c, &r, 0, TIMEOUT);
    uint64_t took = now_ms() - start;
    if (answered) {
        HTTP_EXPECT_STATUS(&r, 408);
        http_response_free(&r);
        http_expect_eof(c, TIMEOUT);
    }
    note("a body that stops arriving: %s after %.2f s", answered ? "408 and closed" : "closed",
         (double)took / 1000.0);
    ASSERT_GE(took, 900);
    ASSERT_LE(took, 3000);
    http_client_close(c);
}

/* Eight 1 MiB answers to a pipeline, read at about 4 MiB/s: the head
 * behind them and the idle timeouts (all 1 s here) must not cut the
 * connection while the server is the one busy sending. The partial head
 * at the end of the pipeline gets its 408 once everything before it is
 * answered. */
static void busy_pipeline(void)
{
    int port = serve_send_timeout();
    enum { N = 8, SIZE = 1 << 20 };
    struct http_client *c = http_client_open(port);
    static char reqs[N * 64 + 64];
    size_t len = 0;
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(reqs + len, sizeof reqs - len,
                                "GET /mib.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    len += (size_t)snprintf(reqs + len, sizeof reqs - len, "GET / HTTP/1.1\r\nHo");
    send_all(c->fd, reqs, len);
    uint64_t start = now_ms();
    static char buf[1 << 18];
    for (int i = 0; i < N; i++) {
        struct http_response r;
        if (!http_read_head(c, &r, TIMEOUT))
            FAIL("pipelined answer %d (%.2f s in): the connection was closed", i, since(start));
        HTTP_EXPECT_STATUS(&r, 200);
        ASSERT_EQ(r.content_length, SIZE);
        for (size_t got = 0; got < SIZE;) {
            size_t want = SIZE - got < sizeof buf ? SIZE - got : sizeof buf;
            size_t n = http_client_recv(c, buf, want, TIMEOUT);
            if (n == 0)
                FAIL("answer %d cut after %zu bytes (%.2f s in)", i, got, since(start));
            if (pattern_mismatch(BIG_SEED, got, buf, n) != n)
                FAIL("answer %d: wrong bytes at %zu", i, got);
            got += n;
            if (got % (256u << 10) < n) {
                struct pollfd p = {.fd = c->fd, .events = 0};
                (void)poll(&p, 1, 60); /* the reader's pace */
            }
        }
    }
    note("8 pipelined 1 MiB answers read slowly over %.2f s: none cut", since(start));
    uint64_t last = now_ms();
    expect_408(c, last, 0, 3000, "the partial head behind them");
    http_client_close(c);
}

/* Sockets the process holds open (listeners and connections). */
static int count_sockets(pid_t pid)
{
    char dir_path[64];
    snprintf(dir_path, sizeof dir_path, "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(dir_path);
    if (dir == NULL)
        FAIL("opendir %s: %s", dir_path, strerror(errno));
    int n = 0;
    for (struct dirent *d; (d = readdir(dir)) != NULL;) {
        char path[384], target[64];
        snprintf(path, sizeof path, "%s/%s", dir_path, d->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len > 0) {
            target[len] = '\0';
            n += strncmp(target, "socket:", 7) == 0;
        }
    }
    closedir(dir);
    return n;
}

/* A client that reads nothing is dropped, and costs the server no memory. */
static void send_timeout_stalled_reader(void)
{
    int port = serve_send_timeout();
    int baseline = count_sockets(server.pid); /* the listeners */
    long rss_before = proc_rss_kb(server.pid);

    struct http_client *c = http_client_open(port);
    int small = 4096; /* a small receive window: the server stalls sooner */
    SYSCHECK(setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small));
    http_send(c, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    uint64_t start = now_ms();
    /* The response has begun: the server holds the connection now. */
    struct pollfd ready = {.fd = c->fd, .events = POLLIN};
    ASSERT_EQ(poll(&ready, 1, TIMEOUT), 1);
    ASSERT_EQ(count_sockets(server.pid), baseline + 1);
    /* Never read. The server's socket goes away once it gives up. */
    while (count_sockets(server.pid) > baseline) {
        if (now_ms() - start > 15000)
            FAIL("the server still holds the connection of a client that reads nothing, "
                 "15 s on (--send-timeout 1)");
        /* A reset wakes this at once; a close behind unsent data does not
         * reach the client at all, so /proc is sampled too. */
        struct pollfd p = {.fd = c->fd, .events = 0};
        (void)poll(&p, 1, 20);
    }
    uint64_t took = now_ms() - start;
    long rss_after = proc_rss_kb(server.pid);
    struct tcp_info info;
    socklen_t len = sizeof info;
    SYSCHECK(getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &info, &len));
    note("a client reading nothing: dropped after %.2f s (client socket state %d); "
         "server RSS %ld kB before, %ld kB after",
         (double)took / 1000.0, info.tcpi_state, rss_before, rss_after);
    ASSERT_GE(took, 900);
    ASSERT_LE(took, 5000);
    ASSERT_LT(rss_after - rss_before, 20 * 1024);
    http_client_close(c);
}

static void send_timeout_steady_reader(void)
{
    int port = serve_send_timeout();
    /* Reads 256 KiB every 600 ms for 3 s (slow, but never stalled for the
     * 1 s of the timeout), then the rest at full speed: every byte arrives. */
    struct http_client *c = http_client_open(port);
    http_send(c, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    struct http_response r;
    ASSERT(http_read_head(c, &r, TIMEOUT));
    HTTP_EXPECT_STATUS(&r, 200);
    ASSERT_EQ(r.content_length, BIG_SIZE);
    static char buf[1 << 16];
    uint64_t got = 0;
    uint64_t start = now_ms();
    for (int round = 0; round < 5; round++) {
        uint64_t goal = got + (256u << 10);
        while (got < goal) {
            size_t n = http_client_recv(c, buf, sizeof buf, TIMEOUT);
            if (n == 0)
                FAIL("a slow reader was cut off after %llu bytes", (unsigned long long)got);
            if (pattern_mismatch(BIG_SEED, got, buf, n) != n)
                FAIL("wrong bytes at %llu", (unsigned long long)got);
            got += n;
        }
        struct pollfd p = {.fd = c->fd, .events = 0};
        (void)poll(&p, 1, 600); /* the reader's pause; POLLHUP would end it early */
        if (p.revents & (POLLHUP | POLLERR))
            FAIL("the server dropped a reader that paused 600 ms (%llu bytes read)",
                 (unsigned long long)got);
    }
    while (got < BIG_SIZE) {
        size_t n = http_client_recv(c, buf, sizeof buf, TIMEOUT);
        if (n == 0)
            FAIL("end of stream after %llu of %u bytes", (unsigned long long)got, BIG_SIZE);
        if (pattern_mismatch(BIG_SEED, got, buf, n) != n)
            FAIL("wrong bytes at %llu", (unsigned long long)got);
        got += n;
    }
    note("a slow but steady reader got all 64 MiB (%.2f s)", since(start));
    http_response_free(&r);
    http_client_close(c);
}

TEST_CASES_WITH(make_tree, stop_and_remove_tree, CASE(slowloris), CASE(slow_head_in_time),
                CASE(abandoned_heads), CASE(keepalive_timeout), CASE(body_timeout),
                CASE(busy_pipeline), CASE(send_timeout_steady_reader),
                CASE(send_timeout_stalled_reader))
