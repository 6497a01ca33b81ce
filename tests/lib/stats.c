/* The counters a metrics endpoint exports, read from another thread while
 * the loop runs (as a scrape does):
 *
 * closed_by_reason: one connection closed each way (an orderly close, the
 * peer's reset, ritual_conn_abort, the idle timeout, a full read buffer,
 * an outbound connect refused, a drain deadline) lands in its own closed_*
 * counter and in no other, and accepted == open + the sum of closed_*.
 *
 * server_sums: ritual_server_stats_get and ritual_http_server_stats_get
 * add up the workers (and only them).
 *
 * http_counted: 200s and 404s over keep-alive connections, a late answer,
 * a HEAD and a request that does not parse: responses by class exact, the
 * latency buckets sum to the responses, the late answer is in a bucket
 * past its delay, and the body bytes are exactly those sent. A loop that
 * never served HTTP reads as zeros. */
#include "http_client.h"
#include "libtest.h"
#include "ritual_http.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static ritual_loop *loop;
static _Atomic int loop_rc = 1;

static void *run_loop(void *arg)
{
    (void)arg;
    atomic_store(&loop_rc, ritual_loop_run(loop));
    return NULL;
}

/* Starts the loop on a thread, with a watchdog. */
static pthread_t start_loop(void)
{
    ritual_timer *watchdog = ritual_timer_new(loop, lt_watchdog_fired, (void *)(intptr_t)20000);
    ASSERT(watchdog != NULL);
    ASSERT_EQ(ritual_timer_start(watchdog, 20000, 0), 0);
    return lt_thread(run_loop, NULL);
}

/* --------------------------------------------------------- by reason */

static size_t on_data(ritual_conn *conn, const char *bytes, size_t len)
{
    if (len >= 5 && memcmp(bytes, "close", 5) == 0)
        ritual_conn_close(conn);
    else if (len >= 5 && memcmp(bytes, "abort", 5) == 0)
        ritual_conn_abort(conn);
    else
        ASSERT_EQ(ritual_write(conn, bytes, len), 0);
    return len;
}

static size_t hold_everything(ritual_conn *conn, const char *bytes, size_t len)
{
    (void)conn;
    (void)bytes;
    (void)len;
    return 0;
}

static uint64_t *closed_field(ritual_loop_stats *s, int i)
{
    uint64_t *f[] = {&s->closed_clean,    &s->closed_reset,   &s->closed_timeout,
                     &s->closed_overflow, &s->closed_aborted, &s->closed_canceled,
                     &s->closed_other};
    return f[i];
}
static const char *const closed_name[] = {"clean",   "reset",    "timeout", "overflow",
                                          "aborted", "canceled", "other"};

/* Waits (at most 5 s) until the closed_* counters are `want`; then checks
 * that accepted == open + closed. */
static void await_closed(const uint64_t want[7])
{
    ritual_loop_stats s;
    uint64_t deadline = now_ms() + 5000;
    for (;;) {
        ritual_loop_stats_get(loop, &s);
        int same = 1;
        for (int i = 0; i < 7; i++)
            same &= *closed_field(&s, i) == want[i];
        if (same)
            break;
        if (now_ms() > deadline) {
            for (int i = 0; i < 7; i++)
                note("closed_%s %llu, want %llu", closed_name[i],
                     (unsigned long long)*closed_field(&s, i), (unsigned long long)want[i]);
            FAIL("the closed_* counters did not reach the expected values within 5 s");
        }
        sleep_ms(2);
    }
    uint64_t closed = 0;
    for (int i = 0; i < 7; i++)
        closed += *closed_field(&s, i);
    ASSERT_EQ(s.accepted, s.conns + closed);
}

static void connect_refused(ritual_loop *l, void *arg)
{
    ritual_conn_callbacks cbs = {.on_data = on_data};
    ritual_error err;
    ASSERT(ritual_connect(l, arg, NULL, &cbs, &err) != NULL);
}

static void drain_briefly(ritual_loop *l, void *arg)
{
    (void)arg;
    ritual_loop_shutdown(l, 50); /* no on_shutdown: the deadline cuts */
}

/* A port nothing listens on: bound, never listened, then closed. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    SYSCHECK(fd);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    SYSCHECK(bind(fd, (struct sockaddr *)&a, sizeof a));
    int port = socket_port(fd);
    close(fd);
    return port;
}

static void closed_by_reason(void)
{
    loop = lt_loop();
    ritual_conn_callbacks cbs = {.on_data = on_data};
    ritual_conn_callbacks hold = {.on_data = hold_everything};
    int plain = ritual_listener_port(lt_listen(loop, NULL, &cbs));
    ritual_listen_options idle_opts = {.conn.idle_timeout_ms = 100};
    int idle = ritual_listener_port(lt_listen(loop, &idle_opts, &cbs));
    ritual_listen_options small_opts = {.conn.read_buffer_size = 64};
    int small = ritual_listener_port(lt_listen(loop, &small_opts, &hold));
    pthread_t t = start_loop();
    uint64_t want[7] = {0};

    note("clean");
    int fd = tcp_connect(plain); /* clean: the server closes, we answer the FIN */
    send_all(fd, "close", 5);
    expect_eof(fd, 5000);
    close(fd);
    want[0]++;
    await_closed(want);

    note("reset");
    fd = tcp_connect(plain); /* reset: SO_LINGER 0 */
    echo_roundtrip(fd, "hi", 2, 5000);
    struct linger lin = {.l_onoff = 1, .l_linger = 0};
    SYSCHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin));
    close(fd);
    want[1]++;
    await_closed(want);

    char buf[256];
    size_t len;
    note("timeout");
    fd = tcp_connect(idle); /* timeout: idle for 100 ms */
    expect_eof(fd, 5000);
    close(fd);
    want[2]++;
    await_closed(want);

    note("overflow");
    fd = tcp_connect(small); /* overflow: 200 bytes, none consumed, room for 64 */
    memset(buf, 'x', 200);
    send_all(fd, buf, 200);
    recv_to_end(fd, buf, sizeof buf, &len, 5000);
    close(fd);
    want[3]++;
    await_closed(want);

    note("aborted");
    fd = tcp_connect(plain); /* aborted */
    send_all(fd, "abort", 5);
    ASSERT_EQ(recv_to_end(fd, buf, sizeof buf, &len, 5000), STREAM_RESET);
    close(fd);
    want[4]++;
    await_closed(want);

    note("other");
    char target[32]; /* other: an outbound connection refused */
    snprintf(target, sizeof target, "127.0.0.1:%d", closed_port());
    ASSERT_EQ(ritual_loop_post(loop, connect_refused, target), 0);
    want[6]++;
    await_closed(want);

    note("canceled");
    fd = tcp_connect(plain); /* canceled: cut by a drain deadline */
    echo_roundtrip(fd, "hi", 2, 5000);
    ASSERT_EQ(ritual_loop_post(loop, drain_briefly, NULL), 0);
    lt_join(t);
    ASSERT_EQ(atomic_load(&loop_rc), 0);
    want[5]++;
    await_closed(want);
    ritual_loop_stats s;
    ritual_loop_stats_get(loop, &s);
    ASSERT_EQ(s.accepted, 7);
    ASSERT_EQ(s.conns, 0);
    ASSERT_EQ(s.drain_cut, 1);
    close(fd);
    ritual_loop_free(loop);
}

/* -------------------------------------------------------------- HTTP */

#define SLOW_MS 30

static ritual_http_exchange *slow;
static ritual_timer *slow_timer;

static void answer_slow(ritual_timer *timer, void *data)
{
    (void)timer;
    (void)data;
    ASSERT_EQ(ritual_http_respond(slow, 200, NULL, 0, "slow", 4), 0);
    slow = NULL;
}

static void handler(ritual_http_exchange *ex, void *data)
{
    (void)data;
    const ritual_http_request *r = ritual_http_exchange_request(ex);
    if (r->target_len == 3 && memcmp(r->target, "/ok", 3) == 0) {
        ASSERT_EQ(ritual_http_respond(ex, 200, NULL, 0, "hello", 5), 0);
    } else if (r->target_len == 5 && memcmp(r->target, "/slow", 5) == 0) {
        slow = ex; /* answered SLOW_MS later */
        ASSERT_EQ(ritual_timer_start(slow_timer, SLOW_MS, 0), 0);
    } else {
        ASSERT_EQ(ritual_http_respond(ex, 404, NULL, 0, "missing", 7), 0);
    }
}

static void ask(struct http_client *c, const char *method, const char *target, int status)
{
    struct http_response r;
    http_ask(c, &r, method, target, "%s", "");
    ASSERT_EQ(r.status, status);
    http_response_free(&r);
}

static void http_counted(void)
{
    ritual_loop *never = lt_loop();
    ritual_http_stats st;
    memset(&st, 0xff, sizeof st);
    ritual_http_stats_get(never, &st);
    ASSERT_EQ(st.responses, 0);
    ASSERT_EQ(st.latency[0], 0);
    ASSERT_EQ(st.body_bytes, 0);
    ritual_loop_free(never);

    loop = lt_loop();
    slow_timer = ritual_timer_new(loop, answer_slow, NULL);
    ASSERT(slow_timer != NULL);
    ritual_http_options o = {.handler = handler};
    ritual_error err;
    ritual_listener *l = ritual_http_listen(loop, "127.0.0.1:0", &o, &err);
    if (!l)
        FAIL("ritual_http_listen: %s", err.message);
    int port = ritual_listener_port(l);
    pthread_t t = start_loop();
    ritual_http_stats_get(loop, &st); /* while it runs, before any request */
    ASSERT_EQ(st.responses, 0);

    enum { OK = 23, MISSING = 7, CONNS = 3 };
    struct http_client *c[CONNS];
    for (int i = 0; i < CONNS; i++)
        c[i] = http_client_open(port);
    for (int i = 0; i < OK + MISSING; i++)
        ask(c[i % CONNS], "GET", i < OK ? "/ok" : "/nope", i < OK ? 200 : 404);
    ask(c[0], "HEAD", "/ok", 200);
    uint64_t start = now_ms();
    ask(c[1], "GET", "/slow", 200);
    ASSERT_GE(now_ms() - start, SLOW_MS);
    struct http_response bad; /* the layer's own 400 */
    http_exchange(port, "NOT A REQUEST\r\n\r\n", &bad, 5000);
    ASSERT_EQ(bad.status, 400);
    uint64_t bad_len = bad.body_len;
    http_response_free(&bad);
    for (int i = 0; i < CONNS; i++)
        http_client_close(c[i]);

    /* The late answer is counted once its bytes are queued: just after the
     * client may have read them. */
    uint64_t responses = OK + MISSING + 3, deadline = now_ms() + 5000;
    do {
        ritual_http_stats_get(loop, &st);
        if (st.responses == responses)
            break;
        sleep_ms(2);
    } while (now_ms() < deadline);
    ASSERT_EQ(st.responses, responses);
    ASSERT_EQ(st.status[0], 0);
    ASSERT_EQ(st.status[1], 0);
    ASSERT_EQ(st.status[2], OK + 2);
    ASSERT_EQ(st.status[3], 0);
    ASSERT_EQ(st.status[4], MISSING + 1);
    ASSERT_EQ(st.status[5], 0);
    uint64_t in_buckets = 0, past_slow = 0;
    for (int i = 0; i <= RITUAL_HTTP_LATENCY_BUCKETS; i++) {
        in_buckets += st.latency[i];
        if (i == RITUAL_HTTP_LATENCY_BUCKETS || ritual_http_latency_bounds_us[i] >= SLOW_MS * 1000u)
            past_slow += st.latency[i];
    }
    ASSERT_EQ(in_buckets, responses);
    ASSERT_GE(past_slow, 1);
    ASSERT_GE(st.latency_sum_us, SLOW_MS * 1000u);
    ASSERT_EQ(st.body_bytes, OK * 5 + MISSING * 7 + 4 + bad_len);
    note("latency sum %llu us over %llu responses", (unsigned long long)st.latency_sum_us,
         (unsigned long long)st.responses);

    ASSERT_EQ(ritual_loop_post(loop, drain_briefly, NULL), 0);
    lt_join(t);
    ritual_loop_free(loop);
}

/* ------------------------------------------------------ server sums */

static ritual_server *srv;

static void *run_server(void *arg)
{
    (void)arg;
    ASSERT_EQ(ritual_server_run(srv), 0);
    return NULL;
}

/* ritual_server_stats_get and ritual_http_server_stats_get: the sums of
 * the workers' counters, the control loop's left out. */
static void server_sums(void)
{
    enum { WORKERS = 2, CONNS = 8 };
    ritual_error err;
    ritual_server_options so = {.workers = WORKERS};
    srv = ritual_server_new(&so, &err);
    ASSERT(srv != NULL);
    slow_timer = NULL;
    ritual_http_options o = {.handler = handler};
    ritual_listener *l = ritual_http_server_listen(srv, "127.0.0.1:0", &o, &err);
    if (!l)
        FAIL("ritual_http_server_listen: %s", err.message);
    int port = ritual_listener_port(l);
    pthread_t t = lt_thread(run_server, NULL);
    for (int i = 0; i < CONNS; i++) {
        struct http_response r;
        http_exchange(port,
                      i % 2 ? "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n"
                            : "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n",
                      &r, 5000);
        http_response_free(&r);
    }
    ritual_loop_stats sum;
    uint64_t deadline = now_ms() + 5000;
    do {
        ritual_server_stats_get(srv, &sum);
        if (sum.closed_clean == CONNS)
            break;
        sleep_ms(2);
    } while (now_ms() < deadline);
    ASSERT_EQ(sum.closed_clean, CONNS);
    ASSERT_EQ(sum.accepted, CONNS);
    ASSERT_EQ(sum.conns, 0);
    ritual_http_stats h, w;
    ritual_http_server_stats_get(srv, &h);
    ASSERT_EQ(h.responses, CONNS);
    ASSERT_EQ(h.status[2], CONNS / 2);
    ASSERT_EQ(h.status[4], CONNS / 2);
    ASSERT_EQ(h.body_bytes, CONNS / 2 * (5 + 7));
    uint64_t responses = 0;
    for (unsigned i = 0; i < WORKERS; i++) {
        ritual_http_stats_get(ritual_server_loop(srv, i), &w);
        responses += w.responses;
    }
    ASSERT_EQ(responses, CONNS);
    ritual_http_stats_get(ritual_server_control_loop(srv), &w);
    ASSERT_EQ(w.responses, 0);
    ritual_server_shutdown(srv, 1000);
    lt_join(t);
    ritual_server_free(srv);
}

TEST_CASES(CASE(closed_by_reason), CASE(http_counted), CASE(server_sums))
