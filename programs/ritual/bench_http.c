/* bench_http.c - the http workload of `ritual bench`: keep-alive GET requests,
 * round-robin over the URLs, `pipeline` of them in flight per connection.
 *
 * Requests are built once (the URL, Host and nothing else) and written
 * straight from those strings. Each response head goes through
 * ritual_http_parse_response; a Content-Length body is skipped where it lies
 * in the read buffer, without copying, and a chunked one is decoded the same
 * way. A response completes the oldest request in flight: its latency counts
 * from when that request was sent (closed loop) or due (open loop).
 *
 * A status other than 2xx is an error, as is anything the parser rejects, a
 * response nobody asked for, or one framed "until close" (it cannot share a
 * keep-alive connection). A server that announces Connection: close and then
 * closes is not in error: the connection is opened again, and the requests
 * still in flight on it are forgotten. Nor is an orderly close of a
 * connection with no request in flight (HTTP lets either side close an idle
 * connection at any time, and a server draining for an upgrade does):
 * counted apart, and opened again. And a GET is idempotent: if the server
 * closes (a FIN, not a reset) before any byte of an answer, the requests in
 * flight go again on a new connection, as RFC 9112 9.3.1 allows a client,
 * counted as retried, their latency still counted from when they were first
 * due or sent. Any other close mid-run is a reset. */
#include "bench.h"
#include "ritual_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define OPEN_LOOP_RING 1024u
#define MAX_HEADERS 64
#define IOV_BATCH 64

enum response_part { PART_HEAD, PART_BODY, PART_CHUNKED };

struct request {
    char *text;
    size_t len;
};

/* Written once before the threads start, read-only after. */
static struct request *requests;
static unsigned nrequests;

struct bench_conn {
    struct bench_thread *t;
    ritual_conn *conn;
    uint64_t *stamps; /* ring: when each request in flight was sent or due */
    uint32_t ring_mask, head, inflight;
    unsigned next_url;
    enum response_part part;
    size_t last_len;    /* head bytes already scanned by the parser */
    uint64_t body_left; /* PART_BODY: bytes still to skip */
    ritual_http_chunked chunked;
    int status;                 /* of the response being read */
    bool open;                  /* connected */
    bool ever_open;             /* settled once: reconnects do not count again */
    bool closing;               /* the server said Connection: close */
    bool dead;                  /* given up on (an error was counted) */
    uint32_t retry, retry_head; /* requests to send again once reconnected */
};

int bench_http_prepare(const struct bench_config *cfg)
{
    requests = calloc(cfg->nurls, sizeof *requests);
    if (!requests)
        return -ENOMEM;
    nrequests = cfg->nurls;
    for (unsigned i = 0; i < cfg->nurls; i++) {
        int n = asprintf(&requests[i].text,
                         "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ritual-bench\r\n%s\r\n",
                         cfg->urls[i], cfg->tls_sni ? cfg->tls_sni : cfg->target,
                         cfg->close ? "Connection: close\r\n" : "");
        if (n < 0) {
            requests[i].text = NULL;
            return -ENOMEM;
        }
        requests[i].len = (size_t)n;
    }
    return 0;
}

void bench_http_cleanup(void)
{
    for (unsigned i = 0; requests && i < nrequests; i++)
        free(requests[i].text);
    free(requests);
    requests = NULL;
}

/* Sends `count` requests, each stamped `stamp`, the URLs taking turns. */
static void send_requests(struct bench_conn *bc, unsigned count, uint64_t stamp)
{
    for (unsigned i = 0; i < count; i++)
        bc->stamps[(bc->head + bc->inflight + i) & bc->ring_mask] = stamp;
    bc->inflight += count;
    while (count > 0) {
        struct iovec iov[IOV_BATCH];
        int cnt = 0;
        for (; count > 0 && cnt < IOV_BATCH; count--, cnt++) {
            const struct request *r = &requests[bc->next_url];
            iov[cnt] = (struct iovec){r->text, r->len};
            bc->next_url = bc->next_url + 1 == nrequests ? 0 : bc->next_url + 1;
        }
        if (ritual_writev(bc->conn, iov, cnt) < 0)
            return; /* the connection is closed; on_close deals with it */
    }
}

static void give_up(struct bench_conn *bc)
{
    bc->dead = true;
    ritual_conn_abort(bc->conn);
}

static void protocol_error(struct bench_conn *bc, const char *what, long detail)
{
    struct bench_thread *t = bc->t;
    t->errors.protocol++;
    bench_note_error(t, "connection %u: %s (%ld)", (unsigned)(bc - t->conns) + t->first_id, what,
                     detail);
    give_up(bc);
}

/* The response just read answers the oldest request in flight. */
static void complete(struct bench_conn *bc, uint64_t now)
{
    struct bench_thread *t = bc->t;
    uint64_t stamp = bc->stamps[bc->head];
    unsigned url = (bc->next_url + nrequests - bc->inflight % nrequests) % nrequests;
    bc->head = (bc->head + 1) & bc->ring_mask;
    bc->inflight--;
    bc->part = PART_HEAD;
    if (bc->status < 200 || bc->status > 299) {
        t->errors.status++;
        bench_note_error(t, "GET %s: status %d", t->cfg->urls[url], bc->status);
    }
    if (t->running) {
        hist_record(&t->hist, now > stamp ? now - stamp : 0);
        atomic_fetch_add_explicit(&t->messages, 1, memory_order_relaxed);
        t->status_class[bc->status >= 100 && bc->status < 600 ? bc->status / 100 : 0]++;
    }
}

/* Parses one response head at bytes[0..len). Returns the bytes it took, 0 if
 * the head is not complete, or -1 after a protocol error. */
static long read_head(struct bench_conn *bc, const char *bytes, size_t len, uint64_t now)
{
    ritual_http_header headers[MAX_HEADERS];
    ritual_http_response res = {.headers = headers, .num_headers = MAX_HEADERS};
    if (bc->inflight == 0) {
        protocol_error(bc, "a response to no request", (long)len);
        return -1;
    }
    int n = ritual_http_parse_response(bytes, len, &res, 0, bc->last_len);
    if (n == RITUAL_HTTP_PARTIAL) {
        bc->last_len = len;
        return 0;
    }
    if (n < 0) {
        protocol_error(bc, "malformed response head", n);
        return -1;
    }
    bc->last_len = 0;
    if (res.status < 200) /* 1xx: an interim response, the final one follows */
        return n;
    bc->status = res.status;
    if ((res.flags & RITUAL_HTTP_CONN_CLOSE) ||
        (res.minor_version == 0 && !(res.flags & RITUAL_HTTP_CONN_KEEP_ALIVE)))
        bc->closing = true;
    switch (res.body) {
    case RITUAL_HTTP_BODY_NONE:
        complete(bc, now);
        break;
    case RITUAL_HTTP_BODY_LENGTH:
        bc->body_left = res.content_length;
        bc->part = PART_BODY;
        if (bc->body_left == 0)
            complete(bc, now);
        break;
    case RITUAL_HTTP_BODY_CHUNKED:
        memset(&bc->chunked, 0, sizeof bc->chunked);
        bc->part = PART_CHUNKED;
        break;
    case RITUAL_HTTP_BODY_UNTIL_CLOSE:
    default:
        protocol_error(bc, "a response body framed by the close of the connection",
                       (long)res.status);
        return -1;
    }
    return n;
}

/* Reads what it can of bytes[0..len): heads, skipped bodies. Returns the bytes
 * taken (the rest waits for more input) or -1 after a protocol error. */
static long read_responses(struct bench_conn *bc, const char *bytes, size_t len, uint64_t now)
{
    size_t used = 0;
    while (used < len) {
        const char *at = bytes + used;
        size_t left = len - used;
        long n;
        if (bc->part == PART_HEAD) {
            if ((n = read_head(bc, at, left, now)) <= 0)
                return n < 0 ? -1 : (long)used;
        } else if (bc->part == PART_BODY) {
            n = (long)(left < bc->body_left ? left : bc->body_left);
            if ((bc->body_left -= (uint64_t)n) == 0)
                complete(bc, now);
        } else {
            const char *data;
            size_t data_len;
            size_t took;
            int rc = ritual_http_chunked_decode(&bc->chunked, at, left, &took, &data, &data_len);
            if (rc < 0) {
                protocol_error(bc, "malformed chunked body", rc);
                return -1;
            }
            n = (long)took;
            if (ritual_http_chunked_done(&bc->chunked))
                complete(bc, now);
            else if (n == 0)
                return (long)used;
        }
        used += (size_t)n;
    }
    return (long)used;
}

static size_t on_data(ritual_conn *conn, const char *bytes, size_t len)
{
    struct bench_conn *bc = ritual_conn_data(conn);
    struct bench_thread *t = bc->t;
    if (bc->dead)
        return len;
    uint32_t before = bc->inflight;
    long used = read_responses(bc, bytes, len, bench_clock_ns());
    if (used < 0)
        return len;
    if (t->running)
        t->bytes += (uint64_t)used;
    /* Closed loop: replace every answered request with a new one, unless the
     * server is about to close this connection. */
    unsigned done = before - bc->inflight;
    if (done && t->running && t->cfg->rate == 0 && !bc->closing)
        send_requests(bc, done, bench_clock_ns());
    return (size_t)used;
}

/* After a reconnect: the requests that went unanswered, again, with the
 * stamps they had (copied first: sending stamps the ring afresh). */
static unsigned resend(struct bench_conn *bc)
{
    uint64_t stamps[OPEN_LOOP_RING];
    unsigned n = bc->retry;
    bc->retry = 0;
    for (unsigned i = 0; i < n; i++)
        stamps[i] = bc->stamps[(bc->retry_head + i) & bc->ring_mask];
    bc->next_url = (bc->next_url + nrequests - n % nrequests) % nrequests;
    for (unsigned i = 0; i < n; i++)
        send_requests(bc, 1, stamps[i]);
    return n;
}

static void on_open(ritual_conn *conn)
{
    struct bench_conn *bc = ritual_conn_data(conn);
    struct bench_thread *t = bc->t;
    bc->open = true;
    bench_count_handshake(t, conn);
    if (!bc->ever_open) {
        bc->ever_open = true;
        bench_conn_settled(t);
        return;
    }
    unsigned again = bc->retry ? resend(bc) : 0;
    if (t->running && t->cfg->rate == 0 && again < t->cfg->pipeline)
        send_requests(bc, t->cfg->pipeline - again, bench_clock_ns()); /* a reconnect */
}

static void on_shutdown(ritual_conn *conn)
{
    ritual_conn_close(conn);
}

static void on_close(ritual_conn *conn, int reason);

static const ritual_conn_callbacks callbacks = {
    .on_open = on_open,
    .on_data = on_data,
    .on_shutdown = on_shutdown,
    .on_close = on_close,
};

/* Opens bc's connection, afresh. Returns 0, or -1 after counting a connect
 * error. */
static int connect_one(struct bench_conn *bc)
{
    struct bench_thread *t = bc->t;
    ritual_connect_options opts = {
        .timeout_ms = 10000, .data = bc, .tls = t->cfg->tls, .server_name = t->cfg->tls_sni};
    opts.conn.read_buffer_size = 64 * 1024;
    ritual_error err;
    bc->part = PART_HEAD;
    bc->last_len = 0;
    bc->head = bc->inflight = 0;
    bc->closing = false;
    bc->conn = ritual_connect(t->loop, t->cfg->target, &opts, &callbacks, &err);
    if (bc->conn)
        return 0;
    bc->dead = true;
    t->errors.connect++;
    bench_note_error(t, "%s", err.message);
    return -1;
}

static void on_close(ritual_conn *conn, int reason)
{
    struct bench_conn *bc = ritual_conn_data(conn);
    struct bench_thread *t = bc->t;
    bool was_open = bc->open;
    bc->conn = NULL;
    bc->open = false;
    if (!was_open) {
        t->errors.connect++;
        bench_note_error(t, "connect %s: %s", t->cfg->target, ritual_strerror(reason));
        bc->dead = true;
        if (!bc->ever_open) {
            bc->ever_open = true;
            bench_conn_settled(t);
        }
    } else if (!t->ended && !bc->dead && bc->closing) {
        t->reconnects++;
        connect_one(bc);
    } else if (!t->ended && !bc->dead && reason == 0 && bc->inflight == 0) {
        t->idle_closed++;
        connect_one(bc);
    } else if (!t->ended && !bc->dead && reason == 0 && bc->part == PART_HEAD &&
               bc->last_len == 0 && bc->inflight <= OPEN_LOOP_RING) {
        t->retried += bc->inflight;
        uint32_t n = bc->inflight, head = bc->head;
        if (connect_one(bc) == 0) {
            bc->retry = n;
            bc->retry_head = head;
        }
    } else if (!t->ended && !bc->dead) {
        t->errors.reset++;
        bench_note_error(t, "connection closed mid-run: %s",
                         reason ? ritual_strerror(reason) : "closed by the server");
        bc->dead = true;
    }
}

int bench_http_start_thread(struct bench_thread *t)
{
    const struct bench_config *cfg = t->cfg;
    uint32_t ring = OPEN_LOOP_RING;
    if (cfg->rate == 0) {
        ring = 1;
        while (ring < cfg->pipeline)
            ring <<= 1;
    }
    t->conns = calloc(t->nconns, sizeof *t->conns);
    uint64_t *stamps = calloc((size_t)t->nconns * ring, sizeof *stamps);
    if (!t->conns || !stamps) {
        free(stamps);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < t->nconns; i++) {
        struct bench_conn *bc = &t->conns[i];
        bc->t = t;
        bc->stamps = stamps + (size_t)i * ring;
        bc->ring_mask = ring - 1;
        bc->next_url = (t->first_id + i) % nrequests;
        if (connect_one(bc) < 0) {
            bc->ever_open = true;
            bench_conn_settled(t);
        }
    }
    return 0;
}

void bench_http_window_opened(struct bench_thread *t)
{
    if (t->cfg->rate > 0)
        return; /* the tick timer sends */
    uint64_t now = bench_clock_ns();
    for (unsigned i = 0; i < t->nconns; i++)
        if (t->conns[i].open && !t->conns[i].dead)
            send_requests(&t->conns[i], t->cfg->pipeline, now);
}

void bench_http_tick(struct bench_thread *t)
{
    uint64_t now = bench_clock_ns();
    for (;;) {
        uint64_t due = t->start_ns + (uint64_t)((double)t->next_k * t->step_ns);
        if (due > now)
            break;
        struct bench_conn *bc = &t->conns[t->next_k % t->nconns];
        t->next_k++;
        if (!bc->open || bc->dead || bc->closing)
            continue;
        if (bc->inflight > bc->ring_mask) {
            t->errors.overload++;
            bench_note_error(t, "more than %u requests in flight on one connection",
                             bc->ring_mask + 1);
            give_up(bc);
            continue;
        }
        send_requests(bc, 1, due);
    }
}

void bench_http_check(struct bench_thread *t)
{
    uint64_t now = bench_clock_ns();
    uint64_t limit = t->cfg->timeout_ms * 1000000ull;
    for (unsigned i = 0; i < t->nconns; i++) {
        struct bench_conn *bc = &t->conns[i];
        if (bc->open && !bc->dead && bc->inflight && now - bc->stamps[bc->head] > limit) {
            t->errors.timeout++;
            bench_note_error(t, "no response for %.1f s", (double)t->cfg->timeout_ms / 1000);
            give_up(bc);
        }
    }
}

void bench_http_stop_thread(struct bench_thread *t)
{
    if (t->conns)
        free(t->conns[0].stamps);
    free(t->conns);
    t->conns = NULL;
}
