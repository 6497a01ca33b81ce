/* server.c - HTTP/1.1 connections on libritual: a small state machine per
 * connection (between requests, receiving a body, waiting for a handler),
 * keep-alive and pipelining, and the timeouts that keep slow or silent
 * clients from holding a connection forever.
 *
 * A request that arrives whole in one read is handled in place: the parser
 * points into the library's buffer and nothing is copied. Only a body that
 * spans reads, or a request whose handler answers later, is copied into a
 * buffer of its own (struct http_owned). */
#include "http_internal.h"
#include "ritual_tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- idle */

void ritual__http_set_idle(struct http_conn *hc, uint64_t ms)
{
    if (hc->conn && hc->idle_ms != ms) {
        hc->idle_ms = (uint32_t)ms;
        ritual_conn_set_idle_timeout(hc->conn, ms);
    }
}

#define set_idle ritual__http_set_idle

/* A drain's wait for a new connection's first request (on_shutdown). */
#define FIRST_REQUEST_GRACE_MS 1000

/* Nothing to send and no request under way: the keep-alive timeout, unless
 * a head has begun. Then the header deadline alone decides, and answers 408:
 * an idle timeout counted from the last byte sent could come first and close
 * the connection without a word. */
static uint64_t idle_between_requests(const struct http_conn *hc)
{
    return hc->last_len > 0 ? 0 : hc->site->opts->keepalive_timeout_ms;
}

/* ------------------------------------------------------- header deadline */

static void wait_start(struct http_conn *hc)
{
    if (!ritual_list_empty(&hc->wait))
        return;
    struct http_site *site = hc->site;
    hc->deadline_ms = ritual_loop_now(site->loop) + site->opts->header_timeout_ms;
    bool first = ritual_list_empty(&site->waiting);
    ritual_list_add_tail(&site->waiting, &hc->wait);
    if (first)
        ritual_timer_start(site->header_timer, site->opts->header_timeout_ms, 0);
}

static void wait_stop(struct http_conn *hc)
{
    if (!ritual_list_empty(&hc->wait))
        ritual_list_del(&hc->wait);
}

/* Every deadline is the same timeout after its start, so the list is in
 * deadline order and the timer only ever needs its head. */
void ritual__http_header_timer_fired(ritual_timer *timer, void *data)
{
    struct http_site *site = data;
    uint64_t now = ritual_loop_now(site->loop);
    while (!ritual_list_empty(&site->waiting)) {
        struct http_conn *hc = ritual_container_of(site->waiting.next, struct http_conn, wait);
        if (hc->deadline_ms > now) {
            ritual_timer_start(timer, hc->deadline_ms - now, 0);
            return;
        }
        wait_stop(hc);
        if (ritual_conn_closing(hc->conn))
            continue; /* already going (reset in this same iteration) */
        hc->ex.head_us = ritual_loop_now_us(site->loop); /* no head: counted from now */
        if (hc->last_len > 0)
            ritual__http_respond_early(hc, 408, true); /* a head begun and never finished */
        else
            ritual_conn_close(hc->conn); /* nothing asked: nothing to answer */
    }
}

/* ------------------------------------------------------------- requests */

static bool is_head(const ritual_http_request *req)
{
    return req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
}

void ritual__http_owned_free(struct http_conn *hc)
{
    if (hc->owned) {
        free(hc->owned->headers);
        free(hc->owned);
        hc->owned = NULL;
    }
}

int ritual__http_owned_new(struct http_conn *hc, const char *head, size_t head_len, size_t body_cap)
{
    struct http_owned *o = malloc(sizeof *o + head_len + body_cap);
    ritual_http_header *headers = calloc(hc->site->opts->max_headers, sizeof *headers);
    if (!o || !headers) {
        free(o);
        free(headers);
        return -ENOMEM;
    }
    memcpy(o->data, head, head_len);
    o->head_len = head_len;
    o->body_len = 0;
    o->cap = head_len + body_cap;
    o->headers = headers;
    hc->owned = o;
    return 0;
}

void ritual__http_reparse_owned(struct http_conn *hc)
{
    struct http_owned *o = hc->owned;
    hc->ex.req.headers = o->headers;
    hc->ex.req.num_headers = hc->site->opts->max_headers;
    ritual_http_parse_request(o->data, o->head_len, &hc->ex.req, &hc->site->opts->limits, 0);
    hc->ex.body = o->body_len ? o->data + o->head_len : NULL;
    hc->ex.body_len = o->body_len;
}

static bool keep_alive_allowed(const struct http_conn *hc, const ritual_http_request *req)
{
    if (req->flags & RITUAL_HTTP_CONN_CLOSE)
        return false;
    if (req->minor_version == 0 && !(req->flags & RITUAL_HTTP_CONN_KEEP_ALIVE))
        return false;
    return hc->requests + 1 < hc->site->opts->max_requests;
}

static bool run_handler(struct http_conn *hc)
{
    struct ritual_http_exchange *ex = &hc->ex;
    ex->hc = hc;
    ex->responded = false;
    ex->cbs = NULL;
    ex->stream_bytes = 0;
    ex->keep_alive = keep_alive_allowed(hc, &ex->req);
    ex->unix_time = hc->site->date_sec;
    ex->held = true; /* until answered (ritual__http_exchange_done) */
    hc->site->opts->handler(ex, hc->site->opts->data);
    if (ex->responded || !hc->conn || hc->state == HTTP_UPGRADED)
        return false;
    if (ritual_conn_closing(hc->conn)) {
        /* The handler closed or aborted the connection instead of answering,
         * or a write of its failed (a stream past write_limit): the exchange
         * ends with it (an answer now could never be sent). One with an
         * on_close is kept to hear of it, as a stream's writer is promised. */
        hc->done = true;
        if (ex->cbs && ex->cbs->on_close)
            return true;
        ex->responded = true;
        ex->held = false;
        return false;
    }
    return true;
}

bool ritual__http_run_handler(struct http_conn *hc)
{
    return run_handler(hc);
}

/* The exchange kept by its handler (the slow path of dispatch). */
static void keep_exchange(struct http_conn *hc, const char *head, size_t head_len)
{
    struct ritual_http_exchange *ex = &hc->ex;
    /* A streamed body's end, for a request that had none. */
    if (hc->site->opts->body_mode == RITUAL_HTTP_BODY_STREAM && ex->cbs && ex->cbs->on_body_end &&
        ex->req.body == RITUAL_HTTP_BODY_NONE && !ritual_conn_closing(hc->conn)) {
        ex->cbs->on_body_end(ex, ex->cb_arg);
        if (!ex->held || !hc->conn || hc->state == HTTP_UPGRADED)
            return;
        if (ritual_conn_closing(hc->conn)) {
            ex->held = false;
            ex->responded = true;
            hc->done = true;
            return;
        }
    }
    /* Answered later: the request must outlive the read buffer. */
    if (!hc->owned) {
        if (ritual__http_owned_new(hc, head, head_len, ex->body_len) < 0) {
            ritual_conn_abort(hc->conn);
            return;
        }
        if (ex->body_len > 0)
            memcpy(hc->owned->data + head_len, ex->body, ex->body_len); /* room reserved */
        hc->owned->body_len = ex->body_len;
        ritual__http_reparse_owned(hc);
    }
    /* Reading goes on while nothing is held (on_data): a client leaving is
     * noticed at once (on_eof), not at the next write or timeout. */
    hc->state = HTTP_WAITING;
}

static void dispatch(struct http_conn *hc, const char *head, size_t head_len)
{
    if (run_handler(hc))
        keep_exchange(hc, head, head_len);
}

void ritual__http_dispatch(struct http_conn *hc, const char *head, size_t head_len)
{
    dispatch(hc, head, head_len);
}

static void log_entry(struct http_conn *hc, const char *line, size_t line_len,
                      const ritual_http_request *req, int status, uint64_t body_bytes)
{
    const ritual_http_options *o = hc->site->opts;
    char peer[64] = "-";
    ritual_conn_peer(hc->conn, peer, sizeof peer);
    ritual_http_log_entry entry = {
        hc->conn, line, line_len, req, peer, status, body_bytes, hc->site->date_sec,
    };
    o->log(&entry, o->data);
}

void ritual__http_log_early(struct http_conn *hc, int status, uint64_t body_bytes)
{
    if (!hc->conn)
        return;
    ritual__http_count(hc->site, status, body_bytes, hc->ex.head_us);
    if (!hc->site->opts->log)
        return;
    size_t n = 0;
    const char *line = hc->raw;
    if (line) {
        while (n < hc->raw_len && (line[n] == '\r' || line[n] == '\n'))
            n++; /* empty lines before a request */
        line += n;
        size_t max = hc->raw_len - n < 1024 ? hc->raw_len - n : 1024;
        for (n = 0; n < max && line[n] != '\r' && line[n] != '\n';)
            n++;
    }
    log_entry(hc, line, n, NULL, status, body_bytes);
    hc->raw = NULL;
}

void ritual__http_conn_recycle(struct http_conn *hc)
{
    struct http_site *site = hc->site;
    ritual__http_owned_free(hc);
    hc->state = HTTP_IDLE;
    ritual_list_del(&hc->all);
    hc->next_free = site->free_conns;
    site->free_conns = hc;
}

/* Where a response is complete (its last byte queued): counted, and
 * logged if there is a log, so the two always agree. */
void ritual__http_log_exchange(struct http_conn *hc, int status, uint64_t body_bytes)
{
    ritual__http_count(hc->site, status, body_bytes, hc->ex.head_us);
    if (hc->site->opts->log) {
        const ritual_http_request *r = &hc->ex.req;
        /* method SP target SP "HTTP/1.x": contiguous in the parsed head */
        size_t line_len = (size_t)(r->target + r->target_len + 9 - r->method);
        log_entry(hc, r->method, line_len, r, status, body_bytes);
    }
}

void ritual__http_exchange_done(struct http_conn *hc, int status, uint64_t body_bytes)
{
    struct ritual_http_exchange *ex = &hc->ex;
    ex->responded = true;
    ex->held = false;
    ex->stream = STREAM_NONE;
    if (!hc->conn) { /* answered after the connection closed */
        ritual__http_conn_recycle(hc);
        return;
    }
    hc->requests++;
    ritual__http_log_exchange(hc, status, body_bytes);
    if (hc->state == HTTP_BODY)
        ritual__http_body_answered(hc);
    if (!ex->keep_alive)
        hc->close_after = true;
    if (hc->close_after)
        hc->done = true; /* the response said Connection: close */
    if (hc->state == HTTP_WAITING) {
        ritual__http_owned_free(hc);
        hc->state = HTTP_IDLE;
        bool buffered = ritual_conn_input_held(hc->conn) > 0;
        if (hc->done || (hc->eof && !buffered))
            ritual_conn_close(hc->conn);
        else
            ritual_conn_resume(hc->conn); /* pipelined requests are handed over again */
        return;
    }
    if (!hc->in_delivery && hc->done)
        ritual_conn_close(hc->conn);
}

/* Is the request at p[0..n), parsed or not, a HEAD? Then the layer's own
 * errors carry no body either. Empty lines before it are skipped. */
static bool raw_is_head(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && (p[i] == '\r' || p[i] == '\n'))
        i++;
    return n - i >= 5 && memcmp(p + i, "HEAD ", 5) == 0;
}

/* Handles the request at p[0..n). Returns the bytes consumed, 0 if the head
 * is not complete yet. */
static size_t handle_request(struct http_conn *hc, const char *p, size_t n)
{
    struct http_site *site = hc->site;
    const ritual_http_options *o = site->opts;
    ritual_http_request *req = &hc->ex.req;
    req->headers = site->headers;
    req->num_headers = o->max_headers;
    int rc = ritual_http_parse_request(p, n, req, &o->limits, hc->last_len);
    if (rc == RITUAL_HTTP_PARTIAL) {
        hc->last_len = n;
        hc->ex.head_method = raw_is_head(p, n); /* for a 408 */
        wait_start(hc);
        return 0;
    }
    wait_stop(hc);
    hc->last_len = 0;
    hc->ex.head_us = ritual_loop_now_us(site->loop); /* the response's latency counts from here */
    if (rc < 0) {
        hc->ex.head_method = raw_is_head(p, n);
        hc->raw = p;
        hc->raw_len = n;
        ritual__http_respond_early(hc, req->status, true);
        return n;
    }
    size_t head_len = (size_t)rc;
    hc->ex.head_method = is_head(req);
    hc->ex.body = NULL;
    hc->ex.body_len = 0;
    if (req->body == RITUAL_HTTP_BODY_NONE) {
        dispatch(hc, p, head_len);
        return head_len;
    }
    return ritual__http_body_begin(hc, p, n, head_len);
}

/* Enough is queued for this connection: leave the rest of its pipeline in
 * the library's buffer; it is handed over again once the queue drains. A
 * file segment waiting in the queue holds the pipeline too: what would
 * follow it is memory, 16 KiB a chunk, however short the answer. */
static bool output_full(const struct http_conn *hc)
{
    return ritual_conn_write_blocked(hc->conn);
}

static size_t on_data(ritual_conn *conn, const char *bytes, size_t len)
{
    struct http_conn *hc = ritual_conn_data(conn);
    struct http_site *site = hc->site;
    if (hc->state >= HTTP_WAITING) {
        /* A request pipelined behind the one waiting: kept, and reading
         * paused until the answer (exchange_done resumes it). */
        if (hc->state == HTTP_WAITING)
            ritual_conn_pause(conn);
        return 0;
    }
    hc->in_delivery = true;
    hc->held = false;
    ritual__http_stage_claim(site, hc);
    ritual__http_date_refresh(site);
    if (hc->plain_on_tls) { /* what nginx says, before parsing anything */
        hc->in_delivery = false;
        hc->ex.head_method = raw_is_head(bytes, len);
        hc->ex.head_us = ritual_loop_now_us(site->loop);
        ritual__http_respond_early_text(hc, 400, true,
                                        "400 The plain HTTP request was sent to HTTPS port\n");
        return len;
    }
    size_t pos = 0;
    while (pos < len && hc->conn && !hc->done && hc->state <= HTTP_BODY) {
        size_t used;
        if (hc->state == HTTP_BODY) {
            if (hc->body_paused)
                break;
            used = ritual__http_body_feed(hc, bytes + pos, len - pos);
        } else {
            if (output_full(hc)) {
                hc->held = true;
                break;
            }
            used = handle_request(hc, bytes + pos, len - pos);
        }
        if (used == 0)
            break;
        pos += used;
    }
    hc->in_delivery = false;
    ritual__http_stage_flush(site);
    if (hc->state == HTTP_WAITING) {
        /* Waiting for the answer: bytes after the request are the next
         * one's, kept until then; with none, reading goes on, to hear of
         * a client that leaves (on_eof). */
        if (pos < len)
            ritual_conn_pause(conn);
        return pos;
    }
    if (hc->state == HTTP_UPGRADED) {
        /* What followed the head is the new protocol's. */
        size_t (*next)(ritual_conn *, const char *, size_t) = hc->upgraded_on_data;
        ritual__http_conn_recycle(hc);
        if (pos < len && !ritual_conn_closing(conn))
            pos += next(conn, bytes + pos, len - pos);
        return pos;
    }
    /* After the peer's FIN, whatever is not complete by now never will be. */
    if (hc->done || (hc->eof && !hc->held)) {
        ritual_conn_close(conn);
        return pos;
    }
    if (hc->state == HTTP_BODY)
        set_idle(hc, 0); /* the body deadline answers 408 instead */
    else if (ritual_conn_write_queued(conn) > 0)
        set_idle(hc, site->opts->send_timeout_ms);
    else
        set_idle(hc, idle_between_requests(hc));
    return pos;
}

/* ----------------------------------------------------------- connections */

static struct http_site *site_of(ritual_conn *conn)
{
    struct http_config *cfg = ritual_listener_protocol_data(ritual_conn_listener(conn));
    ritual_loop *loop = ritual_conn_loop(conn);
    for (unsigned i = 0; i < cfg->nsites; i++)
        if (cfg->sites[i]->loop == loop)
            return cfg->sites[i];
    return NULL;
}

static void on_open(ritual_conn *conn)
{
    struct http_site *site = site_of(conn);
    struct http_conn *hc = site ? site->free_conns : NULL;
    if (hc) {
        site->free_conns = hc->next_free;
    } else if (site) {
        hc = malloc(sizeof *hc);
    }
    if (!hc) {
        ritual_conn_abort(conn);
        return;
    }
    memset(hc, 0, sizeof *hc);
    hc->conn = conn;
    hc->site = site;
    ritual_list_init(&hc->wait);
    ritual_list_init(&hc->body_wait);
    ritual_list_add_tail(&site->all_conns, &hc->all);
    ritual_conn_set_data(conn, hc);
    set_idle(hc, site->opts->keepalive_timeout_ms);
    wait_start(hc); /* the first request has the header timeout too */
    ritual_tls_info info;
    hc->plain_on_tls =
        ritual_listener_tls(ritual_conn_listener(conn)) && ritual_conn_tls_info(conn, &info) < 0;
}

static void on_eof(ritual_conn *conn)
{
    struct http_conn *hc = ritual_conn_data(conn);
    hc->eof = true;
    /* Answer what was asked before the FIN; a half-sent request never ends. */
    if (hc->held)
        return;
    if (hc->state == HTTP_WAITING) {
        /* Requests pipelined behind the one waiting: all are answered, as
         * asked. None: the FIN came while the answer was pending (reading
         * goes on then), and is taken as the client leaving, as nginx does
         * (its 499): the exchange ends, on_close told -EPIPE. A client that
         * only half-closed loses an answer given later; one given in the
         * handler was sent already. */
        if (ritual_conn_input_held(conn) > 0)
            return;
        hc->client_left = true;
    }
    ritual_conn_close(conn);
}

static void on_drain(ritual_conn *conn)
{
    struct http_conn *hc = ritual_conn_data(conn);
    struct ritual_http_exchange *ex = &hc->ex;
    if (ex->stream && ex->drain_wanted && !ritual_conn_write_blocked(conn)) {
        ex->drain_wanted = false;
        if (ex->cbs && ex->cbs->on_drain)
            ex->cbs->on_drain(ex, ex->cb_arg);
        return;
    }
    if (hc->state == HTTP_IDLE && ritual_conn_write_queued(conn) == 0)
        set_idle(hc, idle_between_requests(hc));
}

static void on_shutdown(ritual_conn *conn)
{
    struct http_conn *hc = ritual_conn_data(conn);
    hc->close_after = true; /* the response under way says Connection: close */
    if (hc->in_delivery) {
        /* From a handler of this connection: its answer may be staged and
         * not sent yet. on_data closes once the stage is out. */
        hc->done = true;
        return;
    }
    /* Between requests: close now; a response still being sent is flushed
     * first (a graceful close), then the FIN. A request half-received or
     * with a handler at work finishes, answered with Connection: close.
     * So does the first request of a connection that has sent nothing yet:
     * its client connected (the drain took it from the backlog) and is
     * about to ask, likely already has; closing it would fail a request
     * no client could have known to hold back. It gets a second to ask, as
     * a quiet echo connection does: a browser's preconnect that never
     * asks must not hold the drain to its deadline. */
    if (hc->state != HTTP_IDLE || hc->last_len != 0 || hc->held)
        return;
    if (hc->requests > 0)
        ritual_conn_close(conn);
    else if (hc->idle_ms == 0 || hc->idle_ms > FIRST_REQUEST_GRACE_MS)
        set_idle(hc, FIRST_REQUEST_GRACE_MS);
}

static void on_close(ritual_conn *conn, int reason)
{
    struct http_conn *hc = ritual_conn_data(conn);
    if (!hc)
        return;
    struct http_site *site = hc->site;
    wait_stop(hc);
    ritual__http_body_wait_stop(hc);
    if (site->stage_conn == hc)
        ritual__http_stage_drop(site);
    hc->conn = NULL;
    struct ritual_http_exchange *ex = &hc->ex;
    if (ex->held && !(ex->cbs && ex->cbs->on_close))
        return; /* the handler still holds the exchange: freed when it answers */
    if (hc->client_left && reason == 0)
        reason = -EPIPE; /* it closed while the answer was pending (on_eof) */
    if (ex->held) {
        ex->held = false;
        ex->responded = true; /* an answer from on_close is -EALREADY */
        ex->cbs->on_close(ex, reason, ex->cb_arg);
    }
    ritual__http_conn_recycle(hc);
}

const ritual_conn_callbacks ritual__http_callbacks = {
    .on_open = on_open,
    .on_data = on_data,
    .on_eof = on_eof,
    .on_drain = on_drain,
    .on_shutdown = on_shutdown,
    .on_close = on_close,
};

/* ------------------------------------------------------------- accessors */

const ritual_http_request *ritual_http_exchange_request(const ritual_http_exchange *ex)
{
    return &ex->req;
}

const char *ritual_http_exchange_body(const ritual_http_exchange *ex, size_t *len)
{
    if (len)
        *len = ex->body_len;
    return ex->body;
}

ritual_conn *ritual_http_exchange_conn(const ritual_http_exchange *ex)
{
    return ex->hc->conn;
}
