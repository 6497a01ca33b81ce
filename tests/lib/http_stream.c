/* The HTTP library's streaming parts, in-process, with a client thread on
 * real sockets: responses written as they go (chunked, with a length,
 * close-delimited for HTTP/1.0, HEAD), their backpressure and a client
 * that leaves mid-stream; request bodies streamed to the handler with
 * pauses; 101 and the connection handed over; bodies dropped by a server
 * that wants none (413 at once, 408 when stalled); HEAD errors without a
 * body; extra header lines on every head; requests pipelined behind a
 * late answer, with the client's FIN after them. */
#include "http/http_internal.h"
#include "libtest.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define FLOOD_TOTAL (4u << 20)
#define FLOOD_PIECE 16000u
#define HIGH (128u << 10)
#define UPLOAD_SIZE ((1u << 20) + 123)

static ritual_loop *loop;
static ritual_listener *listener;
static int port;
static ritual_timer *late_timer, *tick_timer, *answer_timer;
static ritual_http_exchange *late_ex, *answer_ex;
static atomic_int answer_waiting; /* /answer-later's handler has run */
static bool answer_abort;         /* /abort-later: the timer aborts, then answers */

/* What the server saw, read by the test once the loop stopped (or, for
 * the atomics, by the client thread while it runs). */
static struct {
    int fulls, drains, write_errors, closes;
    size_t max_queued;
    uint64_t written;
    int length_overrun, length_short_end;
    int pauses;
    int close_reason; /* the last on_close's */
    int overflow_rc;  /* the first failed write of /overflow */
    int late_rc;      /* /abort-later's answer, given on an aborted connection */
    _Atomic int closed;
} seen;

static bool target_is(const ritual_http_exchange *ex, const char *path)
{
    const ritual_http_request *r = ritual_http_exchange_request(ex);
    return r->target_len == strlen(path) && memcmp(r->target, path, r->target_len) == 0;
}

static void stop_loop(ritual_loop *l, void *arg)
{
    (void)arg;
    ritual_loop_stop(l);
}

/* The byte at `i` of every generated body. */
static char pattern(uint64_t i)
{
    return (char)('a' + (i * 7 + i / 251) % 26);
}

/* ------------------------------------------------------------ handlers */

static void late_closed(ritual_http_exchange *ex, int reason, void *arg)
{
    (void)ex, (void)reason, (void)arg;
    late_ex = NULL;
    ritual_timer_stop(late_timer);
}

static const ritual_http_exchange_callbacks late_cbs = {.on_close = late_closed};

/* The late part of /chunked and /length. */
static void late_fired(ritual_timer *t, void *data)
{
    (void)t, (void)data;
    ritual_http_exchange *ex = late_ex;
    late_ex = NULL;
    ASSERT_EQ(ritual_http_stream_write(ex, "world\n", 6), 0);
    ASSERT_EQ(ritual_http_stream_end(ex), 0);
}

/* Set once the flood's writer has been told the queue is full: the reader
 * waits for it, so the push-back is seen however the threads are timed. */
static atomic_int flood_pushed_back;

/* Writes the flood until the queue is full or all is written. */
static void flood_more(ritual_http_exchange *ex, void *arg)
{
    (void)arg;
    if (seen.written > 0)
        seen.drains++;
    static char piece[FLOOD_PIECE];
    ritual_conn *conn = ritual_http_exchange_conn(ex);
    while (seen.written < FLOOD_TOTAL) {
        size_t n =
            FLOOD_TOTAL - seen.written < FLOOD_PIECE ? FLOOD_TOTAL - seen.written : FLOOD_PIECE;
        for (size_t i = 0; i < n; i++)
            piece[i] = pattern(seen.written + i);
        int rc = ritual_http_stream_write(ex, piece, n);
        ASSERT_GE(rc, 0);
        seen.written += n;
        size_t q = ritual_conn_write_queued(conn);
        if (q > seen.max_queued)
            seen.max_queued = q;
        if (rc == RITUAL_HTTP_STREAM_FULL) {
            seen.fulls++;
            atomic_store(&flood_pushed_back, 1);
            return; /* on_drain calls again */
        }
    }
    ASSERT_EQ(ritual_http_stream_end(ex), 0);
}

static const ritual_http_exchange_callbacks flood_cbs = {.on_drain = flood_more};

/* /endless: a piece every tick until the client leaves. */
static void endless_tick(ritual_timer *t, void *data)
{
    (void)t, (void)data;
    static const char piece[4096] = {'e'};
    if (!late_ex)
        return;
    int rc = ritual_http_stream_write(late_ex, piece, sizeof piece);
    if (rc < 0)
        seen.write_errors++;
}

static void endless_closed(ritual_http_exchange *ex, int reason, void *arg)
{
    (void)ex, (void)reason, (void)arg;
    late_ex = NULL;
    seen.closes++;
    ritual_timer_stop(tick_timer);
    atomic_store(&seen.closed, 1);
}

static const ritual_http_exchange_callbacks endless_cbs = {.on_close = endless_closed};

static const ritual_conn_callbacks echo_cbs;

/* A raw block of header lines (a header without a name). */
#define RAW(lines) ((ritual_http_header){NULL, 0, (lines), sizeof(lines) - 1})

/* /quiet and /pending: the exchange waits, and hears the client leave. */
static void quiet_closed(ritual_http_exchange *ex, int reason, void *arg)
{
    (void)ex, (void)arg;
    seen.closes++;
    seen.close_reason = reason;
    atomic_store(&seen.closed, 1);
}

static const ritual_http_exchange_callbacks quiet_cbs = {.on_close = quiet_closed};

/* /framing: headers that would frame the body a second way are refused by
 * every answer, whatever their case; then a stream with harmless ones. */
static void framing(ritual_http_exchange *ex)
{
    static const ritual_http_header owned[] = {
        RITUAL_HTTP_HEADER("content-LENGTH", "5"),
        RITUAL_HTTP_HEADER("Transfer-Encoding", "chunked"),
        RITUAL_HTTP_HEADER("CONNECTION", "close"),
        RAW("X-A: b\r\ncontent-length: 5\r\n"),
        RAW("Transfer-encoding: gzip\r\n"),
    };
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) {
        ASSERT_EQ(ritual_http_stream_start(ex, 200, &owned[i], 1, RITUAL_HTTP_LENGTH_UNKNOWN),
                  -EINVAL);
        ASSERT_EQ(ritual_http_respond(ex, 200, &owned[i], 1, "x", 1), -EINVAL);
        ASSERT_EQ(ritual_http_respond_ref(ex, 200, &owned[i], 1, "x", 1, NULL, NULL), -EINVAL);
        if (i != 2) /* a 101's Connection: upgrade is the caller's */
            ASSERT_EQ(ritual_http_upgrade(ex, &owned[i], 1, &echo_cbs, NULL), -EINVAL);
    }
    static const ritual_http_header fine[] = {
        RITUAL_HTTP_HEADER("X-Content-Length", "5"),
        RITUAL_HTTP_HEADER("Content-Type", "text/plain"),
        RAW("X-Connection: b\r\nKeep: c\r\n"),
    };
    ASSERT_EQ(ritual_http_stream_start(ex, 200, fine, 3, RITUAL_HTTP_LENGTH_UNKNOWN), 0);
    ASSERT_EQ(ritual_http_stream_write(ex, "hello world\n", 12), 0);
    ASSERT_EQ(ritual_http_stream_end(ex), 0);
}

/* /overflow: a writer that ignores RITUAL_HTTP_STREAM_FULL. */
static void overflow(ritual_http_exchange *ex)
{
    int size = 16 * 1024;
    SYSCHECK(setsockopt(ritual_conn_fd(ritual_http_exchange_conn(ex)), SOL_SOCKET, SO_SNDBUF, &size,
                        sizeof size));
    ritual_http_exchange_set_callbacks(ex, &quiet_cbs, NULL);
    ASSERT_EQ(ritual_http_stream_start(ex, 200, NULL, 0, RITUAL_HTTP_LENGTH_UNKNOWN), 0);
    static char piece[FLOOD_PIECE];
    for (int i = 0; i < 1000; i++) { /* 16 MB: far past the 1 MiB limit */
        int rc = ritual_http_stream_write(ex, piece, sizeof piece);
        if (rc < 0) {
            seen.overflow_rc = rc;
            return;
        }
    }
}

/* /answer-later: answered whole from a timer, while requests pipelined
 * behind it (and maybe the client's FIN) arrive. */
static void answer_closed(ritual_http_exchange *ex, int reason, void *arg)
{
    (void)ex, (void)reason, (void)arg;
    answer_ex = NULL;
    ritual_timer_stop(answer_timer);
}

static const ritual_http_exchange_callbacks answer_cbs = {.on_close = answer_closed};

static void answer_fired(ritual_timer *t, void *data)
{
    (void)t, (void)data;
    ritual_http_exchange *ex = answer_ex;
    answer_ex = NULL;
    ASSERT(ex != NULL);
    if (answer_abort) { /* as a reset seen earlier in this loop turn would */
        ritual_conn_abort(ritual_http_exchange_conn(ex));
        seen.late_rc = ritual_http_respond(ex, 200, NULL, 0, "later\n", 6);
        return;
    }
    ASSERT_EQ(ritual_http_respond(ex, 200, NULL, 0, "later\n", 6), 0);
}

static void stream_handler(ritual_http_exchange *ex)
{
    if (target_is(ex, "/answer-later")) {
        ritual_http_exchange_set_callbacks(ex, &answer_cbs, NULL);
        answer_ex = ex;
        ritual_timer_start(answer_timer, 60, 0);
        atomic_store(&answer_waiting, 1);
        return;
    }
    if (target_is(ex, "/abort-later") || target_is(ex, "/abort-later-nocb")) {
        if (target_is(ex, "/abort-later"))
            ritual_http_exchange_set_callbacks(ex, &quiet_cbs, NULL);
        answer_ex = ex;
        answer_abort = true;
        ritual_timer_start(answer_timer, 10, 0);
        return;
    }
    if (target_is(ex, "/quiet")) {
        ritual_http_exchange_set_callbacks(ex, &quiet_cbs, NULL);
        ASSERT_EQ(ritual_http_stream_start(ex, 200, NULL, 0, RITUAL_HTTP_LENGTH_UNKNOWN), 0);
        /* Quiet for a minute: only the client's leaving ends it early. */
        ritual_conn_set_idle_timeout(ritual_http_exchange_conn(ex), 60000);
        return;
    }
    if (target_is(ex, "/pending")) {
        ritual_http_exchange_set_callbacks(ex, &quiet_cbs, NULL);
        return; /* never answered */
    }
    if (target_is(ex, "/framing")) {
        framing(ex);
        return;
    }
    if (target_is(ex, "/overflow")) {
        overflow(ex);
        return;
    }
    if (target_is(ex, "/nocontent")) {
        ASSERT_EQ(ritual_http_stream_start(ex, 204, NULL, 0, RITUAL_HTTP_LENGTH_UNKNOWN), 0);
        ASSERT_EQ(ritual_http_stream_write(ex, "dropped", 7), 0);
        ASSERT_EQ(ritual_http_stream_end(ex), 0);
        return;
    }
    if (target_is(ex, "/chunked") || target_is(ex, "/length")) {
        bool length = target_is(ex, "/length");
        ritual_http_exchange_set_callbacks(ex, &late_cbs, NULL);
        ASSERT_EQ(ritual_http_stream_start(ex, 200, NULL, 0, length ? 12 : -1), 0);
        ASSERT_EQ(ritual_http_stream_start(ex, 200, NULL, 0, -1), -EALREADY);
        ASSERT_EQ(ritual_http_respond(ex, 200, NULL, 0, "x", 1), -EALREADY);
        ASSERT_EQ(ritual_http_stream_write(ex, "hello ", 6), 0);
        if (length) {
            seen.length_overrun = ritual_http_stream_write(ex, "world!!", 7);
            seen.length_short_end = ritual_http_stream_end(ex);
        }
        late_ex = ex;
        ritual_timer_start(late_timer, 20, 0);
        return;
    }
    if (target_is(ex, "/flood")) {
        /* A small kernel send buffer, so the flood waits in the library's
         * queue rather than in the kernel's autotuned megabytes (which,
         * with a fast enough reader, took all 4 MiB: nothing was ever
         * queued to push back on). */
        int size = 16 * 1024;
        SYSCHECK(setsockopt(ritual_conn_fd(ritual_http_exchange_conn(ex)), SOL_SOCKET, SO_SNDBUF,
                            &size, sizeof size));
        ritual_http_exchange_set_callbacks(ex, &flood_cbs, NULL);
        ASSERT_EQ(ritual_http_stream_start(ex, 200, NULL, 0, -1), 0);
        flood_more(ex, NULL);
        return;
    }
    if (target_is(ex, "/endless")) {
        ritual_http_exchange_set_callbacks(ex, &endless_cbs, NULL);
        ASSERT_EQ(ritual_http_stream_start(ex, 200, NULL, 0, -1), 0);
        late_ex = ex;
        ritual_timer_start(tick_timer, 2, 2);
        return;
    }
    if (target_is(ex, "/error")) {
        ritual_http_respond_error(ex, 404, 0);
        return;
    }
    ASSERT_EQ(ritual_http_stream_write(ex, "x", 1), -EINVAL); /* no stream */
    ASSERT_EQ(ritual_http_stream_end(ex), -EINVAL);
    ritual_http_respond(ex, 200, NULL, 0, "ok\n", 3);
}

/* Uploads (RITUAL_HTTP_BODY_STREAM): counted and hashed as they come,
 * paused every 64 KiB for a millisecond. */
static struct {
    ritual_http_exchange *ex;
    uint64_t count, bad;
    uint64_t next_pause;
    uint64_t pause_ms;      /* how long each pause lasts */
    size_t largest;         /* the largest single delivery */
    atomic_int paused;      /* a pause began: the client may send on */
    bool resume_after_sent; /* the pause lasts until the client says: */
    atomic_int sent;        /* the rest of the body is sent */
} up;

static void upload_body(ritual_http_exchange *ex, const char *data, size_t len, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < len; i++)
        if (data[i] != pattern(up.count + i))
            up.bad++;
    up.count += len;
    if (len > up.largest)
        up.largest = len;
    if (up.count >= up.next_pause) {
        up.next_pause = up.count + 65536;
        ASSERT_EQ(ritual_http_body_pause(ex), 0);
        seen.pauses++;
        atomic_store(&up.paused, 1);
        ritual_timer_start(late_timer, up.pause_ms, 0);
    }
}

static void upload_end(ritual_http_exchange *ex, void *arg)
{
    (void)arg;
    ASSERT_EQ(ritual_http_body_pause(ex), -EALREADY);
    char text[64];
    int n = snprintf(text, sizeof text, "%llu %llu\n", (unsigned long long)up.count,
                     (unsigned long long)up.bad);
    ASSERT_EQ(ritual_http_respond(ex, 201, NULL, 0, text, (size_t)n), 0);
    up.ex = NULL;
}

static void upload_closed(ritual_http_exchange *ex, int reason, void *arg)
{
    (void)ex, (void)reason, (void)arg;
    up.ex = NULL;
    seen.closes++;
    atomic_store(&seen.closed, 1);
}

static const ritual_http_exchange_callbacks upload_cbs = {
    .on_body = upload_body, .on_body_end = upload_end, .on_close = upload_closed};

static void upload_resume(ritual_timer *t, void *data)
{
    (void)t, (void)data;
    if (up.ex && up.resume_after_sent && !atomic_load(&up.sent)) {
        ASSERT_EQ(ritual_timer_start(late_timer, 5, 0), 0);
        return;
    }
    if (up.ex)
        ASSERT_EQ(ritual_http_body_resume(up.ex), 0);
}

/* Upgrades: the new protocol echoes. */
static size_t echo_data(ritual_conn *conn, const char *bytes, size_t len)
{
    ASSERT(ritual_conn_data(conn) == &up);
    ritual_write(conn, bytes, len);
    return len;
}

static const ritual_conn_callbacks echo_cbs = {.on_data = echo_data};
static const ritual_http_header upgrade_headers[] = {
    RITUAL_HTTP_HEADER("Upgrade", "echo"),
    RITUAL_HTTP_HEADER("Connection", "Upgrade"),
};

static void upgrade_late(ritual_timer *t, void *data)
{
    (void)t, (void)data;
    ASSERT_EQ(ritual_http_upgrade(late_ex, upgrade_headers, 2, &echo_cbs, &up), 0);
    late_ex = NULL;
}

static void handler(ritual_http_exchange *ex, void *data)
{
    (void)data;
    if (target_is(ex, "/upload")) {
        ASSERT_EQ(ritual_http_body_resume(ex), 0); /* not paused: nothing to do */
        up.ex = ex;
        up.count = up.bad = 0;
        up.largest = 0;
        up.next_pause = 65536;
        up.pause_ms = 1;
        ritual_http_exchange_set_callbacks(ex, &upload_cbs, NULL);
        return;
    }
    if (target_is(ex, "/upload-paused")) { /* from on_body, at the first piece */
        up.ex = ex;
        up.count = up.bad = 0;
        up.next_pause = 1;
        up.pause_ms = 300;
        up.resume_after_sent = true; /* a slow client thread is no 408 */
        ritual_http_exchange_set_callbacks(ex, &upload_cbs, NULL);
        return;
    }
    if (target_is(ex, "/upload-held") || target_is(ex, "/refuse")) {
        if (target_is(ex, "/refuse")) { /* answered before any of the body */
            ASSERT_EQ(ritual_http_respond(ex, 403, NULL, 0, "no\n", 3), 0);
            return;
        }
        /* Paused from the handler itself, for three body timeouts. */
        up.ex = ex;
        up.count = up.bad = 0;
        up.next_pause = UINT64_MAX;
        ritual_http_exchange_set_callbacks(ex, &upload_cbs, NULL);
        ASSERT_EQ(ritual_http_body_pause(ex), 0);
        ritual_timer_start(late_timer, 300, 0);
        return;
    }
    if (target_is(ex, "/upgrade")) {
        ASSERT_EQ(ritual_http_upgrade(ex, upgrade_headers, 2, NULL, NULL), -EINVAL);
        ASSERT_EQ(ritual_http_upgrade(ex, upgrade_headers, 2, &echo_cbs, &up), 0);
        return;
    }
    if (target_is(ex, "/upgrade-late")) {
        late_ex = ex;
        ritual_timer_start(late_timer, 10, 0);
        return;
    }
    stream_handler(ex);
}

/* --------------------------------------------------------------- setup */

static void setup(ritual_http_body_mode mode, void (*tweak)(ritual_http_options *))
{
    memset(&seen, 0, sizeof seen);
    answer_abort = false;
    loop = lt_loop();
    ritual_http_options o = {
        .handler = handler,
        .body_mode = mode,
        .conn = {.write_high_watermark = HIGH, .write_low_watermark = HIGH / 4},
    };
    if (tweak)
        tweak(&o);
    ritual_error err;
    listener = ritual_http_listen(loop, "127.0.0.1:0", &o, &err);
    if (!listener)
        FAIL("ritual_http_listen: %s", err.message);
    port = ritual_listener_port(listener);
    ritual_timer_cb late = mode == RITUAL_HTTP_BODY_STREAM ? upload_resume : late_fired;
    late_timer = ritual_timer_new(loop, late, NULL);
    tick_timer = ritual_timer_new(loop, endless_tick, NULL);
    answer_timer = ritual_timer_new(loop, answer_fired, NULL);
}

/* Runs the client story on a thread of its own while the loop runs. */
static void run_story(void *(*story)(void *))
{
    pthread_t client = lt_thread(story, NULL);
    lt_run(loop, 20000);
    lt_join(client);
}

static void stop_when_no_conns(ritual_timer *t, void *data)
{
    (void)t, (void)data;
    if (ritual_loop_conn_count(loop) == 0)
        ritual_loop_stop(loop);
}

static void teardown(void)
{
    /* The clients have gone: so do their connections, on the loop's time. */
    ritual_timer *t = ritual_timer_new(loop, stop_when_no_conns, NULL);
    ASSERT_EQ(ritual_timer_start(t, 0, 1), 0);
    lt_run(loop, 5000);
    ritual_timer_free(t);
    /* Every connection's state is back on the free list: none leaked. */
    struct http_config *cfg = ritual_listener_protocol_data(listener);
    ASSERT(ritual_list_empty(&cfg->sites[0]->all_conns));
    ritual_timer_free(late_timer);
    ritual_timer_free(tick_timer);
    ritual_timer_free(answer_timer);
    ritual_loop_free(loop);
}

static void *story_end(struct http_client *c)
{
    if (c)
        http_client_close(c);
    ASSERT_EQ(ritual_loop_post(loop, stop_loop, NULL), 0);
    return NULL;
}

/* ------------------------------------------------------ client helpers */

/* Reads exactly n bytes; an end of stream before them fails the test. */
static void recv_exactly(struct http_client *c, char *buf, size_t n)
{
    for (size_t got = 0; got < n;) {
        size_t k = http_client_recv(c, buf + got, n - got, 10000);
        if (k == 0)
            FAIL("end of stream after %zu of %zu bytes", got, n);
        got += k;
    }
}

/* Reads a chunked body into out[0..cap); returns its length. Bytes after
 * the last chunk stay in the client for the next response. */
static size_t read_chunked(struct http_client *c, char *out, size_t cap)
{
    static char buf[1 << 16];
    size_t have = 0, total = 0;
    ritual_http_chunked dec = {0};
    while (!ritual_http_chunked_done(&dec)) {
        size_t n = http_client_recv(c, buf + have, sizeof buf - have, 10000);
        if (n == 0)
            FAIL("the stream ended inside a chunked body (%zu bytes in)", total);
        have += n;
        size_t pos = 0;
        while (pos < have && !ritual_http_chunked_done(&dec)) {
            const char *data;
            size_t used, len;
            ASSERT_EQ(ritual_http_chunked_decode(&dec, buf + pos, have - pos, &used, &data, &len),
                      0);
            ASSERT_LE(total + len, cap);
            memcpy(out + total, data, len);
            total += len;
            pos += used;
            if (used == 0)
                break;
        }
        memmove(buf, buf + pos, have - pos);
        have -= pos;
    }
    /* Give back what belongs to the next response. */
    ASSERT_LE(have + c->len, sizeof c->buf);
    memmove(c->buf + have, c->buf, c->len);
    memcpy(c->buf, buf, have);
    c->len += have;
    return total;
}

static void expect_chunked(struct http_client *c, const char *want)
{
    struct http_response r;
    ASSERT_EQ(http_read_head(c, &r, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 200);
    HTTP_EXPECT_FIELD(&r, "Transfer-Encoding", "chunked");
    HTTP_EXPECT_FIELD(&r, "Content-Length", NULL);
    char body[256];
    size_t n = read_chunked(c, body, sizeof body);
    ASSERT_EQ(n, strlen(want));
    ASSERT(memcmp(body, want, n) == 0);
    http_response_free(&r);
}

static void expect_ok(struct http_client *c)
{
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 200);
    ASSERT_EQ(r.body_len, 3);
    http_response_free(&r);
}

/* ------------------------------------------------- streamed responses */

static void *chunked_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    http_send(c, "GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_chunked(c, "hello world\n");
    http_send(c, "GET /small HTTP/1.1\r\nHost: a\r\n\r\n"); /* the connection is reused */
    expect_ok(c);
    return story_end(c);
}

/* A response without a length, chunked, partly written after the handler
 * returned; the connection serves another request after it. */
static void stream_chunked(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, NULL);
    run_story(chunked_story);
    note("chunked: written in the handler and from a timer, then the connection reused");
    teardown();
}

static void *length_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    http_send(c, "GET /length HTTP/1.1\r\nHost: a\r\n\r\n");
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 200);
    HTTP_EXPECT_FIELD(&r, "Content-Length", "12");
    HTTP_EXPECT_FIELD(&r, "Transfer-Encoding", NULL);
    ASSERT_EQ(r.body_len, 12);
    ASSERT(memcmp(r.body, "hello world\n", 12) == 0);
    http_response_free(&r);
    return story_end(c);
}

/* A length given up front: more than it is refused, an end before it too. */
static void stream_length(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, NULL);
    run_story(length_story);
    ASSERT_EQ(seen.length_overrun, -EINVAL);
    ASSERT_EQ(seen.length_short_end, -EINVAL);
    note("length: 12 bytes announced and sent; 13 refused, an early end refused");
    teardown();
}

static void *http10_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    http_send(c, "GET /chunked HTTP/1.0\r\n\r\n");
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1); /* no length: until the close */
    HTTP_EXPECT_STATUS(&r, 200);
    HTTP_EXPECT_FIELD(&r, "Transfer-Encoding", NULL);
    HTTP_EXPECT_FIELD(&r, "Content-Length", NULL);
    HTTP_EXPECT_FIELD(&r, "Connection", "close");
    ASSERT_EQ(r.body_len, 12);
    ASSERT(memcmp(r.body, "hello world\n", 12) == 0);
    http_response_free(&r);
    return story_end(c);
}

/* HTTP/1.0 has no chunks: the body ends with the connection. */
static void stream_http10(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, NULL);
    run_story(http10_story);
    note("HTTP/1.0: no framing, the body ends with the close");
    teardown();
}

static void *head_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    http_send(c, "HEAD /chunked HTTP/1.1\r\nHost: a\r\n\r\n"
                 "HEAD /length HTTP/1.1\r\nHost: a\r\n\r\n"
                 "GET /small HTTP/1.1\r\nHost: a\r\n\r\n");
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 1, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 200);
    HTTP_EXPECT_FIELD(&r, "Transfer-Encoding", NULL);
    http_response_free(&r);
    ASSERT_EQ(http_read_response(c, &r, 1, 10000), 1);
    HTTP_EXPECT_FIELD(&r, "Content-Length", "12");
    http_response_free(&r);
    expect_ok(c); /* no body bytes came between: this parses */
    return story_end(c);
}

/* HEAD: the head a GET would get, nothing after it. */
static void stream_head(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, NULL);
    run_story(head_story);
    note("HEAD: heads only, and the next response follows at once");
    teardown();
}

static void *flood_story(void *arg)
{
    (void)arg;
    int fd = tcp_connect_rcvbuf(port, 16384);
    static const char req[] = "GET /flood HTTP/1.1\r\nHost: a\r\n\r\nGET /small HTTP/1.1\r\n"
                              "Host: a\r\n\r\n";
    send_all(fd, req, sizeof req - 1);
    /* A slow reader: it reads nothing until the writer has had to wait. */
    for (int waited = 0; !atomic_load(&flood_pushed_back); waited++) {
        if (waited == 10000)
            FAIL("the writer was never told to wait for its reader in 10 s");
        sleep_ms(1);
    }
    struct http_client *c = calloc(1, sizeof *c);
    ASSERT(c != NULL);
    c->fd = fd;
    struct http_response r;
    ASSERT_EQ(http_read_head(c, &r, 10000), 1);
    http_response_free(&r);
    char *body = malloc(FLOOD_TOTAL);
    ASSERT(body != NULL);
    ASSERT_EQ(read_chunked(c, body, FLOOD_TOTAL), FLOOD_TOTAL);
    for (uint64_t i = 0; i < FLOOD_TOTAL; i++)
        if (body[i] != pattern(i))
            FAIL("byte %llu differs", (unsigned long long)i);
    free(body);
    expect_ok(c); /* the request pipelined behind it, answered after it */
    return story_end(c);
}

/* A writer faster than its reader: it is told to wait, the queue stays
 * near the high watermark, and every byte arrives in order. */
static void stream_backpressure(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, NULL);
    run_story(flood_story);
    note("backpressure: %d times full, %d drains, queue at most %zu bytes (high %u)", seen.fulls,
         seen.drains, seen.max_queued, HIGH);
    ASSERT_GE(seen.fulls, 1);
    ASSERT_GE(seen.drains, 1);
    ASSERT_LE(seen.max_queued, HIGH + 2 * FLOOD_PIECE);
    teardown();
}

static void *leaves_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    http_send(c, "GET /endless HTTP/1.1\r\nHost: a\r\n\r\n");
    struct http_response r;
    ASSERT_EQ(http_read_head(c, &r, 10000), 1);
    http_response_free(&r);
    char buf[4096];
    ASSERT_GT(http_client_recv(c, buf, sizeof buf, 10000), 0);
    http_client_close(c); /* mid-stream */
    for (int i = 0; i < 5000 && !atomic_load(&seen.closed); i++)
        sleep_ms(1);
    ASSERT(atomic_load(&seen.closed));
    return story_end(NULL);
}

/* The client leaves mid-stream: the writer hears it (on_close), and the
 * exchange is freed. */
static void stream_client_leaves(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, NULL);
    run_story(leaves_story);
    note("client gone mid-stream: on_close once, %d writes failed before it", seen.write_errors);
    ASSERT_EQ(seen.closes, 1);
    teardown();
}

static void *pipelined_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    http_send(c, "GET /chunked HTTP/1.1\r\nHost: a\r\n\r\nGET /length HTTP/1.1\r\nHost: a\r\n\r\n"
                 "GET /small HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_chunked(c, "hello world\n");
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    ASSERT_EQ(r.body_len, 12);
    http_response_free(&r);
    expect_ok(c);
    return story_end(c);
}

/* Requests pipelined behind streams wait for them, in order. */
static void stream_pipelined(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, NULL);
    run_story(pipelined_story);
    note("pipelined: a stream, a stream, a plain answer, in order");
    teardown();
}

static void *framing_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    http_send(c, "GET /framing HTTP/1.1\r\nHost: a\r\n\r\n");
    struct http_response r;
    ASSERT_EQ(http_read_head(c, &r, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 200);
    ASSERT_EQ(http_field_count(&r, "Transfer-Encoding"), 1);
    ASSERT_EQ(http_field_count(&r, "Content-Length"), 0);
    ASSERT_EQ(http_field_count(&r, "Connection"), 0);
    HTTP_EXPECT_FIELD(&r, "X-Content-Length", "5");
    http_response_free(&r);
    char body[64];
    ASSERT_EQ(read_chunked(c, body, sizeof body), 12);
    http_send(c, "GET /small HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_ok(c);
    return story_end(c);
}

/* Content-Length, Transfer-Encoding and Connection are the layer's: a
 * caller's is -EINVAL (a 101 may say Connection), in any case, named or
 * in a raw block; nothing is sent for them. */
static void framing_headers_refused(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, NULL);
    run_story(framing_story);
    note("framing headers of the caller's refused; one Transfer-Encoding on the stream");
    teardown();
}

/* Waits (the loop's thread sets it) for the server's on_close. */
static void await_closed(void)
{
    for (int i = 0; i < 5000 && !atomic_load(&seen.closed); i++)
        sleep_ms(1);
    ASSERT(atomic_load(&seen.closed));
}

static void *quiet_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    http_send(c, "GET /quiet HTTP/1.1\r\nHost: a\r\n\r\n");
    struct http_response r;
    ASSERT_EQ(http_read_head(c, &r, 10000), 1);
    http_response_free(&r);
    uint64_t start = now_ms();
    http_client_close(c); /* the stream has said nothing yet */
    await_closed();
    note("a quiet stream's client gone: on_close after %llu ms",
         (unsigned long long)(now_ms() - start));
    atomic_store(&seen.closed, 0);
    /* A request whose handler has not answered at all. */
    c = http_client_open(port);
    http_send(c, "GET /pending HTTP/1.1\r\nHost: a\r\n\r\n");
    http_client_close(c);
    await_closed();
    return story_end(NULL);
}

/* A client that leaves while its answer is pending (a quiet stream, a
 * handler still at work) is noticed at once, not at the next write or at
 * the idle timeout (a minute here: the test's own limit is 20 s). */
static void stream_client_leaves_quiet(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, NULL);
    run_story(quiet_story);
    ASSERT_EQ(seen.closes, 2);
    ASSERT_EQ(seen.close_reason, -EPIPE);
    note("a client gone from a quiet stream and from a pending answer: on_close(-EPIPE) each");
    teardown();
}

static void *abort_later_story(void *arg)
{
    (void)arg;
    static const char *const targets[] = {"/abort-later", "/abort-later-nocb"};
    for (int i = 0; i < 2; i++) {
        int fd = tcp_connect(port);
        char req[80], got[256];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", targets[i]);
        send_all(fd, req, (size_t)n);
        size_t len;
        ASSERT_EQ(recv_to_end(fd, got, sizeof got, &len, 10000), STREAM_RESET);
        ASSERT_EQ(len, 0); /* nothing answered: the connection was aborted */
        close(fd);
    }
    return story_end(NULL);
}

/* An answer given from a timer to a connection that failed earlier in the
 * same loop turn (its on_close not yet run) cannot be sent: -EPIPE, and
 * the exchange ends with the connection, its on_close told if it has one,
 * freed either way (the leak check in teardown). */
static void answer_after_abort(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, NULL);
    run_story(abort_later_story);
    ASSERT_EQ(seen.late_rc, -EPIPE);
    ASSERT_EQ(seen.closes, 1);
    note("an answer to an aborted connection: -EPIPE, on_close once, nothing kept");
    teardown();
}

static void *nocontent_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    http_send(c, "GET /nocontent HTTP/1.1\r\nHost: a\r\n\r\n"
                 "GET /small HTTP/1.1\r\nHost: a\r\n\r\n");
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 204);
    HTTP_EXPECT_FIELD(&r, "Content-Length", NULL);
    HTTP_EXPECT_FIELD(&r, "Transfer-Encoding", NULL);
    http_response_free(&r);
    expect_ok(c); /* no byte of the dropped write came between */
    return story_end(c);
}

/* A streamed 204: the head alone, writes dropped, the next request answered. */
static void stream_no_content(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, NULL);
    run_story(nocontent_story);
    note("a streamed 204: no length, no body, the pipelined request answered after it");
    teardown();
}

static void *overflow_story(void *arg)
{
    (void)arg;
    int fd = tcp_connect_rcvbuf(port, 16384);
    static const char req[] = "GET /overflow HTTP/1.1\r\nHost: a\r\n\r\n";
    send_all(fd, req, sizeof req - 1);
    await_closed(); /* reading nothing meanwhile */
    close(fd);
    return story_end(NULL);
}

static void overflow_tweak(ritual_http_options *o)
{
    o->conn.write_limit = 1u << 20;
}

/* A writer that goes on past RITUAL_HTTP_STREAM_FULL: at write_limit its
 * write fails with -ENOBUFS and the connection closes (on_close says so). */
static void stream_past_write_limit(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, overflow_tweak);
    run_story(overflow_story);
    ASSERT_EQ(seen.overflow_rc, -ENOBUFS);
    ASSERT_EQ(seen.close_reason, -ENOBUFS);
    note("past write_limit: the write -ENOBUFS, on_close(-ENOBUFS)");
    teardown();
}

static void start_shutdown(ritual_loop *l, void *arg)
{
    (void)arg;
    ritual_loop_shutdown(l, 100);
}

static void *drain_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    http_send(c, "GET /quiet HTTP/1.1\r\nHost: a\r\n\r\n");
    struct http_response r;
    ASSERT_EQ(http_read_head(c, &r, 10000), 1);
    HTTP_EXPECT_FIELD(&r, "Connection", NULL); /* it began before the drain */
    http_response_free(&r);
    ASSERT_EQ(ritual_loop_post(loop, start_shutdown, NULL), 0);
    await_closed();
    http_client_close(c);
    return NULL; /* the shutdown stops the loop */
}

/* A stream still going at the drain deadline is cut: on_close(-ECANCELED). */
static void stream_cut_at_drain_deadline(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, NULL);
    pthread_t client = lt_thread(drain_story, NULL);
    lt_run(loop, 20000);
    lt_join(client);
    ASSERT_EQ(seen.closes, 1);
    ASSERT_EQ(seen.close_reason, -ECANCELED);
    note("a stream at the drain deadline: cut, on_close(-ECANCELED)");
    ASSERT_EQ(ritual_loop_conn_count(loop), 0); /* the shutdown freed the listener too */
    ritual_timer_free(late_timer);
    ritual_timer_free(tick_timer);
    ritual_timer_free(answer_timer);
    ritual_loop_free(loop);
}

static void *http10_keepalive_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    http_send(c, "GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1); /* until the close */
    HTTP_EXPECT_STATUS(&r, 200);
    HTTP_EXPECT_FIELD(&r, "Transfer-Encoding", NULL);
    HTTP_EXPECT_FIELD(&r, "Content-Length", NULL);
    HTTP_EXPECT_FIELD(&r, "Connection", "close");
    ASSERT_EQ(r.body_len, 12);
    http_response_free(&r);
    http_expect_eof(c, 5000);
    return story_end(c);
}

/* HTTP/1.0 asking for keep-alive, answered by a stream of unknown length:
 * only the close can end that body, so it says Connection: close. */
static void stream_http10_keepalive(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, NULL);
    run_story(http10_keepalive_story);
    note("HTTP/1.0 keep-alive and a stream: close-delimited, Connection: close");
    teardown();
}

#define PIPELINED_MANY 100 /* of about 1 KiB each: past read_buffer_size */

/* Sends "GET /answer-later", then `count` requests for /small (each
 * padded to about `pad` bytes), then the client's FIN; expects every
 * answer, in order, then the server's close. `apart`: the rest is sent
 * once the first request's handler waits (held input then fills a whole
 * read buffer if there is that much), else all is sent at once. */
static void pipelined_then_fin(int count, size_t pad, bool apart)
{
    struct http_client *c = http_client_open(port);
    static const char first[] = "GET /answer-later HTTP/1.1\r\nHost: a\r\n\r\n";
    static char all[PIPELINED_MANY * 1100];
    size_t len = 0;
    atomic_store(&answer_waiting, 0);
    if (apart) {
        send_all(c->fd, first, sizeof first - 1);
        for (int i = 0; i < 5000 && !atomic_load(&answer_waiting); i++)
            sleep_ms(1);
        ASSERT(atomic_load(&answer_waiting));
    } else {
        memcpy(all, first, sizeof first - 1);
        len = sizeof first - 1;
    }
    for (int i = 0; i < count; i++) {
        int n = snprintf(all + len, sizeof all - len, "GET /small HTTP/1.1\r\nHost: a\r\nX-Pad: ");
        ASSERT(n > 0 && len + (size_t)n + pad + 4 <= sizeof all);
        len += (size_t)n;
        memset(all + len, 'p', pad);
        len += pad;
        memcpy(all + len, "\r\n\r\n", 4);
        len += 4;
    }
    send_all(c->fd, all, len);
    SYSCHECK(shutdown(c->fd, SHUT_WR));
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 200);
    ASSERT(r.body_len == 6 && memcmp(r.body, "later\n", 6) == 0);
    http_response_free(&r);
    for (int i = 0; i < count; i++) {
        if (http_read_response(c, &r, 0, 10000) != 1)
            FAIL("answer %d of %d pipelined requests missing", i + 1, count);
        HTTP_EXPECT_STATUS(&r, 200);
        ASSERT_EQ(r.body_len, 3);
        http_response_free(&r);
    }
    http_expect_eof(c, 5000);
    http_client_close(c);
}

static void *pipelined_fin_story(void *arg)
{
    (void)arg;
    pipelined_then_fin(3, 0, false);
    pipelined_then_fin(3, 0, true);
    return story_end(NULL);
}

/* Requests pipelined behind one whose handler answers later, then the
 * client's FIN: all answered in order, then the close (the FIN read past
 * the held requests once dropped them on epoll and poll). */
static void pipelined_behind_waiting_then_fin(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, NULL);
    run_story(pipelined_fin_story);
    note("3 requests and a FIN behind a late answer: 4 answers in order, then the close");
    teardown();
}

static void *pipelined_many_story(void *arg)
{
    (void)arg;
    pipelined_then_fin(PIPELINED_MANY, 1000, true);
    pipelined_then_fin(PIPELINED_MANY, 1000, false);
    return story_end(NULL);
}

static void read_buffer_tweak(ritual_http_options *o)
{
    o->conn.read_buffer_size = 64 * 1024; /* the default, said here */
}

/* More pipelined behind a waiting answer than read_buffer_size holds: the
 * full buffer is not a client sending what nobody consumes (once reset
 * with -ENOBUFS on epoll and poll); the rest waits in the kernel. */
static void pipelined_past_read_buffer(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, read_buffer_tweak);
    run_story(pipelined_many_story);
    note("%d requests (~%d KiB) behind a late answer, then a FIN: all answered, no reset",
         PIPELINED_MANY, PIPELINED_MANY * 1050 / 1024);
    teardown();
}

/* ---------------------------------------------------- streamed bodies */

static void *upload_story(void *arg)
{
    bool chunked = arg != NULL;
    struct http_client *c = http_client_open(port);
    char head[160];
    if (chunked)
        snprintf(head, sizeof head,
                 "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    else
        snprintf(head, sizeof head,
                 "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %u\r\n\r\n", UPLOAD_SIZE);
    http_send(c, head);
    static char piece[40000];
    uint64_t sent = 0;
    for (size_t size = 1; sent < UPLOAD_SIZE; size = size * 3 % 39989 + 1) {
        size_t n = UPLOAD_SIZE - sent < size ? UPLOAD_SIZE - sent : size;
        for (size_t i = 0; i < n; i++)
            piece[i] = pattern(sent + i);
        if (chunked) {
            char line[32];
            int len = snprintf(line, sizeof line, "%zx\r\n", n);
            send_all(c->fd, line, (size_t)len);
        }
        send_all(c->fd, piece, n);
        if (chunked)
            send_all(c->fd, "\r\n", 2);
        sent += n;
    }
    if (chunked)
        send_all(c->fd, "0\r\n\r\n", 5);
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 201);
    char want[64];
    snprintf(want, sizeof want, "%u 0\n", UPLOAD_SIZE);
    ASSERT(r.body_len == strlen(want) && memcmp(r.body, want, r.body_len) == 0);
    http_response_free(&r);
    http_send(c, "GET /small HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_ok(c);
    return story_end(c);
}

static void upload_tweak(ritual_http_options *o)
{
    o->max_body = 16u << 20;
}

/* The body came in pieces no larger than a read, not buffered whole, and
 * every 64 KiB crossed paused it: one pause per 64 KiB plus at most one
 * delivery, however the kernel split the stream. */
static void expect_paced_deliveries(void)
{
    note("largest delivery %zu bytes", up.largest);
    ASSERT(up.largest > 0 && up.largest <= 64 * 1024); /* read_buffer_size */
    ASSERT_GE((uint64_t)seen.pauses, (uint64_t)UPLOAD_SIZE / (65536 + up.largest));
    ASSERT_GE(seen.pauses, 2);
}

/* A body handed over as it arrives, byte-exact, with pauses. */
static void body_stream_length(void)
{
    setup(RITUAL_HTTP_BODY_STREAM, upload_tweak);
    run_story(upload_story);
    note("streamed body, Content-Length: %u bytes exact, %d pauses", UPLOAD_SIZE, seen.pauses);
    expect_paced_deliveries();
    teardown();
}

static void body_stream_chunked(void)
{
    setup(RITUAL_HTTP_BODY_STREAM, upload_tweak);
    pthread_t client = lt_thread(upload_story, (void *)1);
    lt_run(loop, 20000);
    lt_join(client);
    note("streamed body, chunked: %u bytes exact, %d pauses", UPLOAD_SIZE, seen.pauses);
    expect_paced_deliveries();
    teardown();
}

static void *empty_body_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    http_send(c, "PUT /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 0, 5000), 1);
    HTTP_EXPECT_STATUS(&r, 201); /* from on_body_end */
    ASSERT(r.body_len == 4 && memcmp(r.body, "0 0\n", 4) == 0);
    http_response_free(&r);
    /* Asked to wait for a 100: nothing to wait for, so no 100. */
    http_send(c, "PUT /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n"
                 "Expect: 100-continue\r\n\r\n");
    ASSERT_EQ(http_read_response(c, &r, 0, 5000), 1);
    HTTP_EXPECT_STATUS(&r, 201);
    ASSERT(r.body_len == 4 && memcmp(r.body, "0 0\n", 4) == 0);
    http_response_free(&r);
    http_send(c, "GET /small HTTP/1.1\r\nHost: a\r\n\r\n"); /* still in step */
    expect_ok(c);
    return story_end(c);
}

/* A streamed Content-Length: 0 body ends at once: on_body_end runs (it
 * answers), no 100 is sent for it, the connection goes on. */
static void body_stream_empty(void)
{
    setup(RITUAL_HTTP_BODY_STREAM, upload_tweak);
    run_story(empty_body_story);
    ASSERT_EQ(up.count, 0);
    ASSERT_EQ(seen.closes, 0);
    note("streamed Content-Length: 0, with and without Expect: 100-continue: ended, 201");
    teardown();
}

static void *stalled_upload_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    http_send(c, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nsome");
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 408);
    HTTP_EXPECT_FIELD(&r, "Connection", "close");
    http_response_free(&r);
    http_expect_eof(c, 5000);
    http_client_close(c);
    for (int i = 0; i < 5000 && !atomic_load(&seen.closed); i++)
        sleep_ms(1); /* the server's on_close */
    ASSERT(atomic_load(&seen.closed));
    return story_end(NULL);
}

static void stall_tweak(ritual_http_options *o)
{
    o->body_timeout_ms = 200;
}

/* A streamed body that stops: 408 for the client, on_close for the
 * handler holding the exchange. */
static void body_stream_stalls(void)
{
    setup(RITUAL_HTTP_BODY_STREAM, stall_tweak);
    run_story(stalled_upload_story);
    ASSERT_EQ(seen.closes, 1);
    note("a streamed body that stalls: 408, and the handler told (on_close)");
    teardown();
}

static void *held_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    static char req[2048];
    int n = snprintf(req, sizeof req,
                     "POST /upload-held HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n");
    for (int i = 0; i < 1000; i++)
        req[n + i] = pattern((uint64_t)i);
    req[n + 1000] = '\0';
    http_send(c, req);
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 201); /* not 408 */
    ASSERT(r.body_len == 7 && memcmp(r.body, "1000 0\n", 7) == 0);
    http_response_free(&r);

    /* Paused from on_body at the first piece; the rest sent meanwhile. */
    n = snprintf(req, sizeof req,
                 "POST /upload-paused HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n");
    for (int i = 0; i < 500; i++)
        req[n + i] = pattern((uint64_t)i);
    req[n + 500] = '\0';
    http_send(c, req);
    for (int i = 0; i < 5000 && !atomic_load(&up.paused); i++)
        sleep_ms(1);
    ASSERT(atomic_load(&up.paused));
    for (int i = 0; i < 500; i++)
        req[i] = pattern((uint64_t)(500 + i));
    req[500] = '\0';
    http_send(c, req);
    atomic_store(&up.sent, 1);
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 201); /* not 408 */
    ASSERT(r.body_len == 7 && memcmp(r.body, "1000 0\n", 7) == 0);
    http_response_free(&r);
    return story_end(c);
}

static void held_tweak(ritual_http_options *o)
{
    o->body_timeout_ms = 100;
}

/* A body paused from the handler itself, and one paused from on_body, each
 * for three body timeouts: no 408; once resumed it arrives whole. */
static void body_pause_outlasts_timeout(void)
{
    setup(RITUAL_HTTP_BODY_STREAM, held_tweak);
    run_story(held_story);
    note("paused in the handler, then in on_body, for 300 ms (body timeout 100 ms): no 408");
    teardown();
}

static void *expect_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    http_send(c, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n"
                 "Expect: 100-continue\r\n\r\n");
    struct http_response r;
    ASSERT_EQ(http_read_head(c, &r, 10000), 1); /* the body is held back for it */
    HTTP_EXPECT_STATUS(&r, 100);
    http_response_free(&r);
    static char body[1001];
    for (int i = 0; i < 1000; i++)
        body[i] = pattern((uint64_t)i);
    http_send(c, body);
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 201);
    ASSERT(r.body_len == 7 && memcmp(r.body, "1000 0\n", 7) == 0);
    http_response_free(&r);

    /* Answered before the body: no 100 was sent, so the client may never
     * send it; what it sends next could not be told from it. Closed. */
    http_send(c, "POST /refuse HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n"
                 "Expect: 100-continue\r\n\r\n");
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 403);
    HTTP_EXPECT_FIELD(&r, "Connection", "close");
    http_response_free(&r);
    http_expect_eof(c, 5000);
    http_client_close(c);

    /* The same with the body sent at once: read and dropped, kept open. */
    c = http_client_open(port);
    http_send(c, "POST /refuse HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                 "Expect: 100-continue\r\n\r\nabcGET /small HTTP/1.1\r\nHost: a\r\n\r\n");
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 403);
    HTTP_EXPECT_FIELD(&r, "Connection", NULL);
    http_response_free(&r);
    expect_ok(c);
    return story_end(c);
}

/* Expect: 100-continue with a streamed body: 100 for a handler that wants
 * the body, then the body; an answer before it closes the connection. */
static void body_stream_expect_continue(void)
{
    setup(RITUAL_HTTP_BODY_STREAM, upload_tweak);
    run_story(expect_story);
    note("100-continue: 100 then the body; answered before the body: Connection: close");
    teardown();
}

static void *too_large_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    http_send(c, "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n");
    static char big[2048];
    memset(big, 'b', sizeof big);
    send_all(c->fd, big, sizeof big);
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 413);
    HTTP_EXPECT_FIELD(&r, "Connection", "close");
    http_response_free(&r);
    http_expect_eof(c, 5000);
    http_client_close(c);
    await_closed();
    return story_end(NULL);
}

static void too_large_tweak(ritual_http_options *o)
{
    o->max_body = 1024;
}

/* A chunked body streamed to the handler grows past max_body: 413, and
 * the handler holding the exchange is told (on_close). */
static void body_stream_too_large(void)
{
    setup(RITUAL_HTTP_BODY_STREAM, too_large_tweak);
    run_story(too_large_story);
    ASSERT_EQ(seen.closes, 1);
    note("a streamed chunked body past max_body: 413, on_close");
    teardown();
}

/* -------------------------------------------------------------- upgrade */

static void *upgrade_story(void *arg)
{
    const char *path = arg;
    struct http_client *c = http_client_open(port);
    char req[160];
    /* The new protocol's first bytes in the same packet as the head. */
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello",
             path);
    http_send(c, req);
    struct http_response r;
    ASSERT_EQ(http_read_head(c, &r, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 101);
    HTTP_EXPECT_FIELD(&r, "Upgrade", "echo");
    HTTP_EXPECT_FIELD(&r, "Content-Length", NULL);
    http_response_free(&r);
    char buf[16];
    recv_exactly(c, buf, 5);
    ASSERT(memcmp(buf, "hello", 5) == 0);
    http_send(c, "GET / HTTP/1.1\r\n\r\n"); /* not HTTP any more: echoed */
    char echo[32];
    recv_exactly(c, echo, 18);
    ASSERT(memcmp(echo, "GET / HTTP/1.1\r\n\r\n", 18) == 0);
    return story_end(c);
}

/* 101, then the bytes that followed the head and all later ones go to
 * the new protocol, over the same connection. */
static void upgrade(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, NULL);
    pthread_t client = lt_thread(upgrade_story, "/upgrade");
    lt_run(loop, 20000);
    lt_join(client);
    note("upgrade from the handler: 101, then raw echo with the pipelined bytes");
    teardown();
}

static void *upgrade_body_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    http_send(c, "POST /upgrade HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n"
                 "Content-Length: 5\r\n\r\nBODY!hello");
    struct http_response r;
    ASSERT_EQ(http_read_head(c, &r, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 101);
    http_response_free(&r);
    char buf[16];
    recv_exactly(c, buf, 5);
    ASSERT(memcmp(buf, "hello", 5) == 0); /* the body was HTTP's, not echoed */
    return story_end(c);
}

/* 101 for a request with a body: the body is the request's; only what
 * follows it goes to the new protocol. */
static void upgrade_after_body(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, NULL);
    run_story(upgrade_body_story);
    note("upgrade after a Content-Length body: only the bytes after it are echoed");
    teardown();
}

static void upgrade_later(void)
{
    setup(RITUAL_HTTP_BODY_BUFFER, NULL);
    ritual_timer_free(late_timer);
    late_timer = ritual_timer_new(loop, upgrade_late, NULL);
    pthread_t client = lt_thread(upgrade_story, "/upgrade-late");
    lt_run(loop, 20000);
    lt_join(client);
    note("upgrade from a timer: the held bytes go to the new protocol");
    teardown();
}

/* -------------------------------------------------------------- discard */

static void discard_tweak(ritual_http_options *o)
{
    o->max_body = 1024;
    o->body_timeout_ms = 300;
    o->header_timeout_ms = 300;
    o->extra_headers = "X-Content-Type-Options: nosniff\r\nX-Extra: yes\r\n";
}

static void expect_extra(const struct http_response *r)
{
    HTTP_EXPECT_FIELD(r, "X-Content-Type-Options", "nosniff");
    HTTP_EXPECT_FIELD(r, "X-Extra", "yes");
}

static void *discard_story(void *arg)
{
    (void)arg;
    struct http_client *c = http_client_open(port);
    /* A small body with the head, another in a later packet: dropped, the
     * connection reused. */
    http_send(c, "GET /small HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789"
                 "GET /small HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234");
    expect_ok(c);
    sleep_ms(20);
    http_send(c, "56789GET /small HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nabcde\r\n0\r\n\r\n");
    expect_ok(c);
    expect_ok(c);
    http_client_close(c);

    /* Too large: 413 at once, without the body being sent, then closed. */
    c = http_client_open(port);
    http_send(c, "POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n");
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 413);
    HTTP_EXPECT_FIELD(&r, "Connection", "close");
    expect_extra(&r);
    http_response_free(&r);
    http_expect_eof(c, 5000);
    http_client_close(c);

    /* A chunked body that grows past max_body: 413. */
    c = http_client_open(port);
    http_send(c, "POST /small HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n");
    char big[2048];
    memset(big, 'b', sizeof big);
    send_all(c->fd, big, sizeof big);
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 413);
    http_response_free(&r);
    http_client_close(c);

    /* Trickled, then stopped: 408 after body_timeout, then closed. */
    c = http_client_open(port);
    http_send(c, "POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789");
    uint64_t start = now_ms();
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 408);
    HTTP_EXPECT_FIELD(&r, "Connection", "close");
    expect_extra(&r);
    note("408 for a stalled body after %llu ms", (unsigned long long)(now_ms() - start));
    ASSERT_GE(now_ms() - start, 250);
    http_response_free(&r);
    http_expect_eof(c, 5000);
    return story_end(c);
}

/* A server that takes no bodies: small ones dropped as they arrive, large
 * ones refused at once, stalled ones answered 408. */
static void discard(void)
{
    setup(RITUAL_HTTP_BODY_DISCARD, discard_tweak);
    run_story(discard_story);
    note("discard: small bodies dropped, the connection reused; 413 at once; 408 when stalled");
    teardown();
}

/* ---------------------------------------------------------- HEAD errors */

static void head_error(const char *raw, int status)
{
    struct http_client *c = http_client_open(port);
    http_send(c, raw);
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 1, 10000), 1);
    HTTP_EXPECT_STATUS(&r, status);
    ASSERT(http_field(&r, "Content-Length") != NULL);
    expect_extra(&r);
    http_response_free(&r);
    http_expect_eof(c, 5000); /* a body byte would be data here */
    http_client_close(c);
}

static void *head_errors_story(void *arg)
{
    (void)arg;
    head_error("HEAD / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    head_error("HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n", 413);
    head_error("HEAD / HTTP/1.1\r\nHost: a\r\n", 408); /* never finished */
    head_error("HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01", 408);
    head_error("HEAD / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    static char longline[10000];
    int n = snprintf(longline, sizeof longline, "HEAD /");
    memset(longline + n, 'a', 9000);
    memcpy(longline + n + 9000, " HTTP/1.1\r\n\r\n", 14);
    head_error(longline, 414);
    static char many[40000];
    n = snprintf(many, sizeof many, "HEAD / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 1000; i++)
        n += snprintf(many + n, sizeof many - (size_t)n, "X-%d: y\r\n", i);
    snprintf(many + n, sizeof many - (size_t)n, "\r\n");
    head_error(many, 431);
    /* A handler's error, and the connection goes on. */
    struct http_client *c = http_client_open(port);
    http_send(c, "HEAD /error HTTP/1.1\r\nHost: a\r\n\r\nGET /small HTTP/1.1\r\nHost: a\r\n\r\n");
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 1, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 404);
    HTTP_EXPECT_FIELD(&r, "Content-Length", "14");
    expect_extra(&r);
    http_response_free(&r);
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 200);
    expect_extra(&r);
    http_response_free(&r);
    return story_end(c);
}

/* Errors to HEAD, the layer's own and a handler's: heads only, with the
 * extra header lines. */
static void head_errors(void)
{
    setup(RITUAL_HTTP_BODY_DISCARD, discard_tweak);
    run_story(head_errors_story);
    note("HEAD errors 400 408 408 413 414 431 505 404: no body bytes, extra headers on each");
    teardown();
}

/* ------------------------------------------------------- extra headers */

/* Lines that would not be header lines are refused when listening. */
static void extra_headers_checked(void)
{
    loop = lt_loop();
    static const char *const bad[] = {
        "X-A nosniff\r\n",
        "X-A: b\n",
        "X-A: b\r\nbad",
        "X-A: \x01\r\n",
        ": b\r\n",
        "X A: b\r\n",
        "X-A: b\r\n\r\n",
        "X-A: b\rX-B: c\r\n",
        "content-length: 5\r\n",
        "X-A: b\r\nTransfer-Encoding: chunked\r\n",
        "Connection: close\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ritual_http_options o = {.handler = handler, .extra_headers = bad[i]};
        ritual_error err;
        ASSERT(ritual_http_listen(loop, "127.0.0.1:0", &o, &err) == NULL);
        ASSERT_EQ(err.code, -EINVAL);
    }
    ritual_http_options o = {.handler = handler, .extra_headers = "X-A: b\tc d\r\nX-B:\r\n"};
    ritual_error err;
    ASSERT(ritual_http_listen(loop, "127.0.0.1:0", &o, &err) != NULL);
    note("extra headers: %zu malformed blocks refused at listen time", sizeof bad / sizeof bad[0]);
    ritual_loop_free(loop);
}

TEST_CASES(CASE(stream_chunked), CASE(stream_length), CASE(stream_http10), CASE(stream_head),
           CASE(stream_backpressure), CASE(stream_client_leaves), CASE(stream_pipelined),
           CASE(body_stream_length), CASE(body_stream_chunked), CASE(body_stream_stalls),
           CASE(upgrade), CASE(upgrade_later), CASE(discard), CASE(head_errors),
           CASE(extra_headers_checked), CASE(framing_headers_refused),
           CASE(stream_client_leaves_quiet), CASE(stream_no_content), CASE(stream_past_write_limit),
           CASE(stream_cut_at_drain_deadline), CASE(stream_http10_keepalive),
           CASE(body_pause_outlasts_timeout), CASE(body_stream_expect_continue),
           CASE(body_stream_too_large), CASE(upgrade_after_body),
           CASE(pipelined_behind_waiting_then_fin), CASE(pipelined_past_read_buffer),
           CASE(body_stream_empty), CASE(answer_after_abort))
