/* The HTTP layer used as a library, in-process: handlers that answer late,
 * close instead of answering, or shut the loop down, each with the client
 * behaviour that used to break it (found by review; each story failed
 * before its fix):
 *   1. a late answer bigger than the high watermark, a request pipelined
 *      behind it and a client that never reads: the loop keeps running its
 *      timers (it used to spin in one) and the client is cut at the send
 *      timeout;
 *   2. a handler that aborts the connection instead of answering: nothing
 *      is kept for an answer that cannot come;
 *   3. a handler that shuts the loop down after answering: the answer is
 *      sent before the connection closes;
 *   4. requests pipelined behind a late answer, then a half-close: all
 *      answered;
 *   5. an answer posted from another thread while the loop is being freed:
 *      it runs while its exchange still exists (ASan would see otherwise);
 *   6. heads that would not be heads (CR or LF in a header, a name with a
 *      space or a colon, raw text that is not whole lines, a status outside
 *      100-599) are refused with -EINVAL, nothing sent, and the exchange
 *      can still be answered. */
#include "http/http_internal.h"
#include "libtest.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define BIG (16u << 20)

static ritual_loop *loop;
static ritual_listener *listener;
static int port;
static char *big;
static ritual_http_exchange *pending;
static ritual_timer *late_timer;
static int ticks;
static _Atomic int handled;

static bool target_is(const ritual_http_exchange *ex, const char *path)
{
    const ritual_http_request *r = ritual_http_exchange_request(ex);
    return r->target_len == strlen(path) && memcmp(r->target, path, r->target_len) == 0;
}

static void answer_late(ritual_timer *timer, void *data)
{
    (void)timer;
    bool large = data != NULL;
    ritual_http_respond(pending, 200, NULL, 0, large ? big : "late\n", large ? BIG : 5);
    pending = NULL;
}

static void handler(ritual_http_exchange *ex, void *data)
{
    (void)data;
    atomic_fetch_add(&handled, 1);
    if (target_is(ex, "/late-big") || target_is(ex, "/late")) {
        pending = ex; /* answered from a timer */
        ritual_timer_start(late_timer, 10, 0);
        return;
    }
    if (target_is(ex, "/hold")) {
        pending = ex; /* answered by the test, later */
        return;
    }
    if (target_is(ex, "/abort")) {
        ritual_conn_abort(ritual_http_exchange_conn(ex));
        return;
    }
    if (target_is(ex, "/big")) {
        ritual_http_respond(ex, 200, NULL, 0, big, BIG);
        return;
    }
    if (target_is(ex, "/inject")) {
        static const ritual_http_header bad_value[] = {
            RITUAL_HTTP_HEADER("X-Name", "a\r\nSet-Cookie: evil=1")};
        static const ritual_http_header bad_lf[] = {RITUAL_HTTP_HEADER("X-Name", "a\nb")};
        static const ritual_http_header bad_name[] = {RITUAL_HTTP_HEADER("X Name", "a")};
        static const ritual_http_header no_name[] = {RITUAL_HTTP_HEADER("", "a")};
        static const ritual_http_header colon[] = {RITUAL_HTTP_HEADER("X-Long-Name:", "a")};
        static const ritual_http_header long_value[] = {
            RITUAL_HTTP_HEADER("X-Long-Name", "a value of more than eight bytes\r\n")};
#define RAW(text)                                                                                  \
    {                                                                                              \
        NULL, 0, text, sizeof text - 1                                                             \
    }
        static const ritual_http_header raw_body[] = {RAW("X-A: 1\r\n\r\nbody\r\n")};
        static const ritual_http_header raw_bare[] = {RAW("X-A: 1\nX-B: 2\r\n")};
        static const ritual_http_header raw_ok[] = {RAW("X-A: 1\r\nX-B: 2\r\n")};
#undef RAW
        const struct {
            int status;
            const ritual_http_header *h;
        } refused[] = {{200, bad_value}, {200, bad_lf},     {200, bad_name}, {200, no_name},
                       {200, colon},     {200, long_value}, {200, raw_body}, {200, raw_bare},
                       {99, NULL},       {600, NULL},       {1000, NULL},    {-200, NULL}};
        for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
            if (ritual_http_respond(ex, refused[i].status, refused[i].h, refused[i].h ? 1 : 0,
                                    "no\n", 3) != -EINVAL)
                FAIL("head %zu was not refused", i);
        const ritual_http_header good[] = {
            RITUAL_HTTP_HEADER("X-Tab", "a\tb, and more than eight bytes"),
            RITUAL_HTTP_HEADER("X-Utf8", "caf\xc3\xa9"), raw_ok[0]};
        ASSERT_EQ(ritual_http_respond(ex, 200, good, 3, "fine\n", 5), 0);
        return;
    }
    if (target_is(ex, "/quit")) {
        ritual_http_respond(ex, 200, NULL, 0, "bye\n", 4);
        ritual_loop_shutdown(loop, 1000);
        return;
    }
    ritual_http_respond(ex, 200, NULL, 0, "ok\n", 3);
}

static void tick(ritual_timer *timer, void *data)
{
    (void)timer;
    (void)data;
    ticks++;
}

static void stop_loop(ritual_loop *l, void *arg)
{
    (void)arg;
    ritual_loop_stop(l);
}

static void setup(uint64_t timeouts_ms)
{
    loop = lt_loop();
    ritual_http_options o = {
        .handler = handler,
        .keepalive_timeout_ms = timeouts_ms,
        .send_timeout_ms = timeouts_ms,
        .max_body = 1u << 20,
        .data = &port,
    };
    ritual_error err;
    listener = ritual_http_listen(loop, "127.0.0.1:0", &o, &err);
    if (!listener)
        FAIL("ritual_http_listen: %s", err.message);
    port = ritual_listener_port(listener);
    /* The layer keeps its state beside the application's pointer. */
    ASSERT(ritual_listener_data(listener) == &port);
}

static void send_str(int fd, const char *text)
{
    send_all(fd, text, strlen(text));
}

/* Reads until the stream ends as `end` says it must (within 10 s); returns
 * the bytes read (malloc'd, NUL-ended). */
static char *read_all(int fd, size_t *len, enum stream_end end)
{
    size_t cap = BIG + (1u << 20);
    char *buf = malloc(cap + 1);
    ASSERT(buf != NULL);
    int got = recv_to_end(fd, buf, cap, len, 10000);
    if (got != (int)end)
        FAIL("the stream ended with %s, expected %s", got == STREAM_EOF ? "a FIN" : "a reset",
             end == STREAM_EOF ? "a FIN" : "a reset");
    buf[*len] = '\0';
    return buf;
}

static int count_of(const char *text, size_t len, const char *what)
{
    int count = 0;
    for (const char *p = text; (p = memmem(p, len - (size_t)(p - text), what, strlen(what))); p++)
        count++;
    return count;
}

/* 1 ------------------------------------------------------------------ */

static void *never_reads(void *arg)
{
    (void)arg;
    int fd = tcp_connect(port);
    int small = 4096;
    SYSCHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small));
    send_str(fd, "GET /late-big HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n");
    /* Never reads: waits for the server to give up (a reset or EOF). */
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    uint64_t start = now_ms();
    while (now_ms() - start < 8000) {
        p.revents = 0;
        SYSCHECK(poll(&p, 1, 100));
        if (p.revents & (POLLHUP | POLLERR | POLLRDHUP))
            break;
    }
    note("1. late 16 MiB answer, a pipelined request, no reading: cut after %llu ms",
         (unsigned long long)(now_ms() - start));
    ASSERT_LT(now_ms() - start, 8000);
    close(fd);
    ASSERT_EQ(ritual_loop_post(loop, stop_loop, NULL), 0);
    return NULL;
}

static void late_big(void)
{
    setup(1000);
    late_timer = ritual_timer_new(loop, answer_late, big);
    ritual_timer *t = ritual_timer_new(loop, tick, NULL);
    ASSERT_EQ(ritual_timer_start(t, 50, 50), 0);
    pthread_t client = lt_thread(never_reads, NULL);
    uint64_t start = now_ms();
    lt_run(loop, 15000);
    pthread_join(client, NULL);
    /* A loop spinning in one timer runs no other: the tick proves it ran. */
    uint64_t ran = now_ms() - start;
    note("   the 50 ms tick fired %d times in %llu ms", ticks, (unsigned long long)ran);
    ASSERT_GE(ticks, (int)(ran / 50) / 2);
    ritual_timer_free(t);
    ritual_loop_free(loop);
}

/* 2 ------------------------------------------------------------------ */

static void *posts_then_aborted(void *arg)
{
    (void)arg;
    static char req[600 * 1024];
    int head = snprintf(req, sizeof req,
                        "POST /abort HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", 500000);
    memset(req + head, 'p', 500000);
    for (int i = 0; i < 20; i++) {
        int fd = tcp_connect(port);
        send_all(fd, req, (size_t)head + 500000);
        size_t len;
        free(read_all(fd, &len, STREAM_RESET));
        ASSERT_EQ(len, 0); /* aborted: nothing, then a reset */
        close(fd);
    }
    ASSERT_EQ(ritual_loop_post(loop, stop_loop, NULL), 0);
    return NULL;
}

static void abort_instead_of_answer(void)
{
    setup(0);
    pthread_t client = lt_thread(posts_then_aborted, NULL);
    lt_run(loop, 20000);
    pthread_join(client, NULL);
    /* Everything the connections had is back on the free list. */
    struct http_config *cfg = ritual_listener_protocol_data(listener);
    ASSERT(ritual_list_empty(&cfg->sites[0]->all_conns));
    note("2. 20 bodies of 500 KB whose handler aborted: no exchange kept");
    ritual_loop_free(loop);
}

/* 3 ------------------------------------------------------------------ */

static void *asks_to_quit(void *arg)
{
    (void)arg;
    int fd = tcp_connect(port);
    send_str(fd, "GET /quit HTTP/1.1\r\nHost: a\r\n\r\n");
    size_t len;
    char *text = read_all(fd, &len, STREAM_EOF);
    ASSERT_EQ(count_of(text, len, "HTTP/1.1 200 OK"), 1);
    ASSERT(len > 4 && memcmp(text + len - 4, "bye\n", 4) == 0);
    free(text);
    close(fd);
    return NULL;
}

static void shutdown_after_answer(void)
{
    setup(0);
    pthread_t client = lt_thread(asks_to_quit, NULL);
    lt_run(loop, 10000); /* the shutdown ends the run */
    pthread_join(client, NULL);
    note("3. a handler that shuts the loop down: its answer arrives whole, then EOF");
    ritual_loop_free(loop);
}

/* 4 ------------------------------------------------------------------ */

static void *pipelines_then_half_closes(void *arg)
{
    (void)arg;
    int fd = tcp_connect(port);
    static const char reqs[] = "GET /big HTTP/1.1\r\nHost: a\r\n\r\n"
                               "GET /late HTTP/1.1\r\nHost: a\r\n\r\n"
                               "GET /small HTTP/1.1\r\nHost: a\r\n\r\n";
    send_all(fd, reqs, sizeof reqs - 1);
    SYSCHECK(shutdown(fd, SHUT_WR));
    size_t len;
    char *text = read_all(fd, &len, STREAM_EOF);
    ASSERT_EQ(count_of(text, len, "HTTP/1.1 200 OK"), 3);
    ASSERT(len > 3 && memcmp(text + len - 3, "ok\n", 3) == 0);
    free(text);
    close(fd);
    ASSERT_EQ(ritual_loop_post(loop, stop_loop, NULL), 0);
    return NULL;
}

static void half_close_after_pipeline(void)
{
    setup(0);
    late_timer = ritual_timer_new(loop, answer_late, NULL);
    pthread_t client = lt_thread(pipelines_then_half_closes, NULL);
    lt_run(loop, 20000);
    pthread_join(client, NULL);
    note("4. a 16 MiB answer, a late one and a small one, then a FIN: all three answered");
    ritual_loop_free(loop);
}

/* 5 ------------------------------------------------------------------ */

static int posted_answer_runs, posted_answer_result = 1;

static void answer_from_post(ritual_loop *l, void *arg)
{
    (void)l;
    posted_answer_runs++;
    posted_answer_result = ritual_http_respond(arg, 200, NULL, 0, "posted\n", 7);
}

static void *asks_late(void *arg)
{
    (void)arg;
    int fd = tcp_connect(port);
    send_str(fd, "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n");
    while (atomic_load(&handled) == 0)
        sleep_ms(1);
    ASSERT_EQ(ritual_loop_post(loop, stop_loop, NULL), 0);
    return (void *)(intptr_t)fd;
}

static void answer_posted_at_free(void)
{
    setup(0);
    atomic_store(&handled, 0);
    pthread_t client = lt_thread(asks_late, NULL);
    lt_run(loop, 10000);
    void *ret;
    pthread_join(client, &ret);
    /* Post the answer, and free the loop before it has a chance to run. */
    ASSERT(pending != NULL);
    ASSERT_EQ(ritual_loop_post(loop, answer_from_post, pending), 0);
    pending = NULL;
    ritual_loop_free(loop);
    close((int)(intptr_t)ret);
    note("5. an answer posted while the loop is freed: run while its exchange exists, %s",
         ritual_strerror(posted_answer_result));
    ASSERT_EQ(posted_answer_runs, 1);
    ASSERT_EQ(posted_answer_result, 0);
}

/* 6 ------------------------------------------------------------------ */

static void *asks_to_inject(void *arg)
{
    (void)arg;
    int fd = tcp_connect(port);
    send_str(fd, "GET /inject HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    size_t len;
    char *text = read_all(fd, &len, STREAM_EOF);
    ASSERT_EQ(count_of(text, len, "HTTP/1.1 "), 1);
    ASSERT_EQ(count_of(text, len, "HTTP/1.1 200 OK\r\n"), 1);
    ASSERT_EQ(count_of(text, len, "\r\nX-A: 1\r\nX-B: 2\r\n"), 1);
    ASSERT_EQ(count_of(text, len, "\r\nX-Tab: a\tb, and more than eight bytes\r\n"), 1);
    ASSERT_EQ(count_of(text, len, "evil"), 0);
    ASSERT_EQ(count_of(text, len, "no\n"), 0);
    ASSERT(len > 5 && memcmp(text + len - 5, "fine\n", 5) == 0);
    free(text);
    close(fd);
    ASSERT_EQ(ritual_loop_post(loop, stop_loop, NULL), 0);
    return NULL;
}

static void header_injection(void)
{
    setup(0);
    pthread_t client = lt_thread(asks_to_inject, NULL);
    lt_run(loop, 10000);
    pthread_join(client, NULL);
    note("6. twelve heads that would not be heads: refused, then a good answer, alone");
    ritual_loop_free(loop);
}

static void make_big(void)
{
    big = malloc(BIG);
    ASSERT(big != NULL);
    memset(big, 'x', BIG);
}

static void free_big(void)
{
    free(big);
}

TEST_CASES_WITH(make_big, free_big, CASE(late_big), CASE(abort_instead_of_answer),
                CASE(shutdown_after_answer), CASE(half_close_after_pipeline),
                CASE(answer_posted_at_free), CASE(header_injection))
