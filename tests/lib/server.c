/* One loop per core: a server of 4 workers, one case per accept mode, and
 * what a drain that ran out of time reports.
 *
 * reuseport_workers (SO_REUSEPORT):
 * - every worker gets some of 400 connections, each worker's counters
 *   (accepted, open, bytes read) agree with the connections that say they
 *   are on it, and all of them echo correctly;
 * - a worker kept busy (its handler blocks for 2 s) delays only its own
 *   connections: the other workers' echo at once;
 * - ritual_server_shutdown from another thread while clients are
 *   mid-stream: every client gets all its bytes back and a clean EOF; run
 *   returns 0.
 * shared_socket_workers (one socket, EPOLLEXCLUSIVE): the same traffic and
 * counters but the busy worker; it reports how it spread the connections.
 * Both end with a clean drain: ritual_server_stats_get sums the workers'
 * counters, none cut.
 * drain_deadline_cut_counted: connections a drain deadline cuts are
 * counted (drain_cut), while ritual_server_run returns 0. */
#include "libtest.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#define WORKERS 4
#define CONNS 400

static ritual_server *srv;

static int worker_of(ritual_conn *conn)
{
    for (unsigned i = 0; i < WORKERS; i++)
        if (ritual_server_loop(srv, i) == ritual_conn_loop(conn))
            return (int)i;
    FAIL("connection on no worker's loop");
}

static size_t on_data(ritual_conn *conn, const char *bytes, size_t len)
{
    if (len >= 4 && memcmp(bytes, "who?", 4) == 0) {
        char id = (char)('0' + worker_of(conn));
        ASSERT_EQ(ritual_write(conn, &id, 1), 0);
        return 4;
    }
    if (len >= 5 && memcmp(bytes, "block", 5) == 0) {
        sleep_ms(2000); /* the test hook: this worker is busy */
        ASSERT_EQ(ritual_write(conn, "ok", 2), 0);
        return 5;
    }
    ASSERT_EQ(ritual_write(conn, bytes, len), 0);
    return len;
}

static void *run_server(void *arg)
{
    (void)arg;
    ASSERT_EQ(ritual_server_run(srv), 0);
    return NULL;
}

static int fds[CONNS];
static int owner[CONNS];

/* Asks every connection which worker it is on; returns how many each has. */
static void map_workers(int counts[WORKERS])
{
    memset(counts, 0, WORKERS * sizeof counts[0]);
    for (int i = 0; i < CONNS; i++) {
        send_all(fds[i], "who?", 4);
        char id;
        recv_exact(fds[i], &id, 1, 5000);
        owner[i] = id - '0';
        ASSERT(owner[i] >= 0 && owner[i] < WORKERS);
        counts[owner[i]]++;
    }
}

static int first_on(int worker, int other_than)
{
    for (int i = 0; i < CONNS; i++)
        if (owner[i] == worker && i != other_than)
            return i;
    return -1;
}

static void busy_worker_delays_only_its_own(void)
{
    int b = 0, k = owner[0];
    send_all(fds[b], "block", 5);
    sleep_ms(100); /* let worker k enter the handler */
    uint64_t slowest = 0;
    int checked = 0;
    for (int i = 0; i < CONNS && checked < 40; i++) {
        if (owner[i] == k)
            continue;
        uint64_t start = now_ms();
        echo_roundtrip(fds[i], "ping", 4, 5000);
        if (now_ms() - start > slowest)
            slowest = now_ms() - start;
        checked++;
    }
    note("worker %d blocked: %d echoes on other workers, slowest %llu ms", k, checked,
         (unsigned long long)slowest);
    ASSERT_LT(slowest, 500);
    int same = first_on(k, b);
    if (same >= 0) {
        uint64_t start = now_ms();
        echo_roundtrip(fds[same], "ping", 4, 5000);
        note("a connection on the blocked worker waited %llu ms",
             (unsigned long long)(now_ms() - start));
        ASSERT_GT(now_ms() - start, 1000);
    }
    char ok[2];
    recv_exact(fds[b], ok, 2, 5000);
    ASSERT_EQ(memcmp(ok, "ok", 2), 0);
}

/* Every client streams 64 KiB; the server is told to shut down while they
 * are at it; each gets all of it back, then EOF, and no reset. */
static void shutdown_mid_stream(pthread_t server_thread)
{
    static char out[CONNS][65536];
    struct prng r;
    prng_seed(&r, 99);
    for (int i = 0; i < CONNS; i++) {
        prng_fill(&r, out[i], sizeof out[i]);
        set_nonblocking(fds[i], 1);
    }
    for (int i = 0; i < CONNS; i++)
        send_all(fds[i], out[i], 16384); /* a quarter now */
    ritual_server_shutdown(srv, 10000);
    for (int i = 0; i < CONNS; i++)
        send_all(fds[i], out[i] + 16384, sizeof out[i] - 16384);
    static char back[65536];
    for (int i = 0; i < CONNS; i++) {
        SYSCHECK(shutdown(fds[i], SHUT_WR));
        recv_exact(fds[i], back, sizeof back, 10000);
        ASSERT_EQ(memcmp(back, out[i], sizeof back), 0);
        expect_eof(fds[i], 10000);
        close(fds[i]);
    }
    lt_join(server_thread);
    /* A clean drain, said so by the server's summed counters. */
    ritual_loop_stats sum;
    ritual_server_stats_get(srv, &sum);
    ASSERT_EQ(sum.accepted, CONNS);
    ASSERT_EQ(sum.conns, 0);
    ASSERT_EQ(sum.drain_cut, 0);
}

static void run_mode(ritual_accept_mode mode, const char *name)
{
    raise_nofile(4 * CONNS);
    ritual_error err;
    ritual_server_options so = {.workers = WORKERS, .accept_mode = mode};
    srv = ritual_server_new(&so, &err);
    ASSERT(srv != NULL);
    ASSERT_EQ(ritual_server_workers(srv), WORKERS);
    ritual_conn_callbacks cbs = {.on_data = on_data};
    ritual_listener *l = ritual_server_listen(srv, "127.0.0.1:0", NULL, &cbs, &err);
    if (!l)
        FAIL("ritual_server_listen: %s", err.message);
    int port = ritual_listener_port(l);
    pthread_t t = lt_thread(run_server, NULL);

    ASSERT_EQ(connect_many(port, fds, CONNS, 10000), CONNS);
    int counts[WORKERS];
    map_workers(counts);
    /* Each worker's counters against the connections that answered from
     * it: every one of them sent 4 bytes ("who?"), which its worker read
     * (and counted) before it answered. */
    for (int w = 0; w < WORKERS; w++) {
        ritual_loop_stats st;
        ritual_loop_stats_get(ritual_server_loop(srv, (unsigned)w), &st);
        ASSERT_EQ(st.accepted, (uint64_t)counts[w]);
        ASSERT_EQ(st.conns, (uint64_t)counts[w]);
        ASSERT_EQ(st.bytes_read, 4 * (uint64_t)counts[w]);
    }
    note("%s: connections per worker %d %d %d %d", name, counts[0], counts[1], counts[2],
         counts[3]);
    if (mode == RITUAL_ACCEPT_REUSEPORT)
        for (int w = 0; w < WORKERS; w++)
            ASSERT_GT(counts[w], 0);

    echo_many(fds, CONNS, 0, 10000);
    if (mode == RITUAL_ACCEPT_REUSEPORT)
        busy_worker_delays_only_its_own();
    shutdown_mid_stream(t);
    ritual_server_free(srv);
}

static void reuseport_workers(void)
{
    run_mode(RITUAL_ACCEPT_REUSEPORT, "SO_REUSEPORT");
}

static void shared_socket_workers(void)
{
    run_mode(RITUAL_ACCEPT_SHARED, "EPOLLEXCLUSIVE");
}

/* Two idle clients and no on_shutdown: the drain deadline cuts both, and
 * ritual_server_run still returns 0; drain_cut is how the caller knows. */
static void drain_deadline_cut_counted(void)
{
    ritual_error err;
    ritual_server_options so = {.workers = 2};
    srv = ritual_server_new(&so, &err);
    ASSERT(srv != NULL);
    ritual_conn_callbacks cbs = {.on_data = on_data};
    ritual_listener *l = ritual_server_listen(srv, "127.0.0.1:0", NULL, &cbs, &err);
    if (!l)
        FAIL("ritual_server_listen: %s", err.message);
    int port = ritual_listener_port(l);
    pthread_t t = lt_thread(run_server, NULL);
    int idle[2];
    for (int i = 0; i < 2; i++) {
        idle[i] = tcp_connect(port);
        echo_roundtrip(idle[i], "here", 4, 5000); /* accepted and open */
    }
    uint64_t start = now_ms();
    ritual_server_shutdown(srv, 200);
    lt_join(t); /* run_server asserts that it returned 0 */
    ritual_loop_stats sum;
    ritual_server_stats_get(srv, &sum);
    note("the drain took %llu ms and cut %llu connections", (unsigned long long)(now_ms() - start),
         (unsigned long long)sum.drain_cut);
    ASSERT_EQ(sum.drain_cut, 2);
    ASSERT_EQ(sum.conns, 0);
    ASSERT_GE(now_ms() - start, 199); /* not before the deadline */
    for (int i = 0; i < 2; i++)
        close(idle[i]);
    ritual_server_free(srv);
}

TEST_CASES(CASE(reuseport_workers), CASE(shared_socket_workers), CASE(drain_deadline_cut_counted))
