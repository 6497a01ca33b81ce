/* body.c - request bodies as they arrive, in the three ways a server may
 * want them (ritual_http_body_mode): kept in a buffer that grows with what
 * arrives (never sized from Content-Length, which costs a client nothing to
 * claim), dropped, or handed to the handler piece by piece. And the body
 * deadline: a body that stops arriving is answered 408, not cut silently.
 *
 * A body that arrives with its head in one read is not copied (BUFFER) or
 * not even looked at (DISCARD): see ritual__http_body_begin. */
#include "http_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A buffered body starts this small whatever its Content-Length says. */
#define BODY_FIRST_CAP 16384

/* ------------------------------------------------------- body deadline */

/* Every deadline is the same timeout after the last read, so moving a
 * connection to the end of the list on each read keeps it in order. */
static void body_wait_start(struct http_conn *hc)
{
    struct http_site *site = hc->site;
    uint64_t timeout = site->opts->body_timeout_ms;
    hc->body_deadline_ms = ritual_loop_now(site->loop) + timeout;
    if (!ritual_list_empty(&hc->body_wait))
        ritual_list_del(&hc->body_wait);
    bool first = ritual_list_empty(&site->body_waiting);
    ritual_list_add_tail(&site->body_waiting, &hc->body_wait);
    if (first)
        ritual_timer_start(site->body_timer, timeout, 0);
}

void ritual__http_body_wait_stop(struct http_conn *hc)
{
    if (!ritual_list_empty(&hc->body_wait))
        ritual_list_del(&hc->body_wait);
}

/* The body stopped arriving. Unanswered, it gets 408 and a close, as the
 * head does; answered already (a streamed body the handler had enough of),
 * there is nothing more to say. */
static void body_stalled(struct http_conn *hc)
{
    if (!hc->conn || ritual_conn_closing(hc->conn))
        return;
    if (hc->body_streamed && !hc->ex.held) {
        ritual_conn_close(hc->conn);
        return;
    }
    if (hc->owned) { /* the request line, for the log */
        hc->raw = hc->owned->data;
        hc->raw_len = hc->owned->head_len;
    }
    ritual__http_respond_early(hc, 408, true);
}

void ritual__http_body_timer_fired(ritual_timer *timer, void *data)
{
    struct http_site *site = data;
    uint64_t now = ritual_loop_now(site->loop);
    while (!ritual_list_empty(&site->body_waiting)) {
        struct http_conn *hc =
            ritual_container_of(site->body_waiting.next, struct http_conn, body_wait);
        if (hc->body_deadline_ms > now) {
            ritual_timer_start(timer, hc->body_deadline_ms - now, 0);
            return;
        }
        ritual__http_body_wait_stop(hc);
        body_stalled(hc);
    }
}

/* ------------------------------------------------------------- pieces */

static int owned_append(struct http_conn *hc, const char *p, size_t n)
{
    struct http_owned *o = hc->owned;
    if (o->head_len + o->body_len + n > o->cap) {
        size_t cap = o->cap * 2;
        if (cap < o->head_len + o->body_len + n)
            cap = o->head_len + o->body_len + n;
        struct http_owned *grown = realloc(o, sizeof *o + cap);
        if (!grown)
            return -ENOMEM;
        grown->cap = cap;
        hc->owned = o = grown;
    }
    memcpy(o->data + o->head_len + o->body_len, p, n);
    o->body_len += n;
    return 0;
}

/* `len` decoded body bytes: kept, dropped or handed over. Returns false if
 * the connection is going (then nothing more is read). */
static bool body_piece(struct http_conn *hc, const char *data, size_t len)
{
    struct ritual_http_exchange *ex = &hc->ex;
    hc->body_seen += len;
    if (hc->body_streamed) {
        if (ex->held && ex->cbs && ex->cbs->on_body && len > 0)
            ex->cbs->on_body(ex, data, len, ex->cb_arg);
    } else if (!hc->discard && owned_append(hc, data, len) < 0) {
        ritual_conn_abort(hc->conn);
    }
    return hc->conn && !ritual_conn_closing(hc->conn);
}

/* The whole body is in. */
static void body_end(struct http_conn *hc)
{
    struct ritual_http_exchange *ex = &hc->ex;
    ritual__http_body_wait_stop(hc);
    hc->state = HTTP_IDLE;
    if (!hc->body_streamed) { /* kept or dropped: now the handler */
        hc->discard = false;
        ritual__http_reparse_owned(hc);
        ritual__http_dispatch(hc, NULL, 0);
        if (hc->state != HTTP_WAITING)
            ritual__http_owned_free(hc);
        return;
    }
    hc->body_streamed = false;
    if (hc->body_paused) { /* paused at the last piece: what follows is not the body's */
        hc->body_paused = false;
        ritual_conn_resume(hc->conn);
    }
    if (ex->held && ex->cbs && ex->cbs->on_body_end)
        ex->cbs->on_body_end(ex, ex->cb_arg);
    if (ex->held && hc->conn && !ritual_conn_closing(hc->conn)) {
        hc->state = HTTP_WAITING; /* the answer is still to come (on_data pauses) */
        ritual__http_set_idle(hc, hc->site->opts->send_timeout_ms);
        return;
    }
    if (ex->held && hc->conn && !(ex->cbs && ex->cbs->on_close)) {
        /* Closed or aborted by on_body_end instead of an answer: the
         * exchange ends with the connection, as from a handler (one with an
         * on_close is kept to hear of it). */
        ex->held = false;
        ex->responded = true;
        hc->done = true;
    }
    if (!ex->held)
        ritual__http_owned_free(hc);
}

/* -------------------------------------------------------------- begin */

/* RITUAL_HTTP_BODY_STREAM: the handler runs now, before the body. */
static size_t begin_streamed(struct http_conn *hc, const char *p, size_t n, size_t head_len)
{
    struct ritual_http_exchange *ex = &hc->ex;
    hc->state = HTTP_BODY;
    hc->body_streamed = true;
    /* Content-Length: 0 is a body that has ended: no bytes will come to
     * end it, so it ends once the handler has run, with no 100 asked for. */
    bool empty = hc->body_kind == RITUAL_HTTP_BODY_LENGTH && hc->body_left == 0;
    /* A client that sent body bytes with the head did not wait for a 100. */
    hc->expect_unmet = !empty && (ex->req.flags & RITUAL_HTTP_EXPECT_CONTINUE) && n == head_len;
    if (ritual__http_run_handler(hc)) {
        /* Kept: the request must outlive the read buffer. */
        if (ritual__http_owned_new(hc, p, head_len, 0) < 0) {
            ritual_conn_abort(hc->conn);
            return head_len;
        }
        ritual__http_reparse_owned(hc);
        /* Asked to wait for a go-ahead: given only if the handler wants
         * the body. One that answered at once spares the client sending
         * it (what is sent anyway is dropped). */
        if (!empty && (ex->req.flags & RITUAL_HTTP_EXPECT_CONTINUE) && ex->cbs &&
            ex->cbs->on_body && !ritual_conn_closing(hc->conn))
            ritual__http_send_continue(hc);
    }
    if (empty) {
        if (hc->conn && !ritual_conn_closing(hc->conn) && hc->state == HTTP_BODY)
            body_end(hc);
        return head_len;
    }
    /* Not while paused (the handler may have paused it): the body timeout
     * waits for the resume. */
    if (hc->conn && !ritual_conn_closing(hc->conn) && hc->state == HTTP_BODY && !hc->body_paused)
        body_wait_start(hc);
    return head_len;
}

size_t ritual__http_body_begin(struct http_conn *hc, const char *p, size_t n, size_t head_len)
{
    const ritual_http_options *o = hc->site->opts;
    const ritual_http_request *req = &hc->ex.req;
    if (req->body == RITUAL_HTTP_BODY_LENGTH && req->content_length > o->max_body) {
        /* Refused before a byte of it is read, and closed: the rest of the
         * body is never looked at. */
        hc->raw = p;
        hc->raw_len = head_len;
        ritual__http_respond_early(hc, 413, true);
        return n;
    }
    hc->body_kind = req->body;
    hc->body_left = req->content_length;
    hc->body_seen = 0;
    hc->body_paused = false;
    hc->discard = o->body_mode == RITUAL_HTTP_BODY_DISCARD;
    memset(&hc->chunked, 0, sizeof hc->chunked);
    if (o->body_mode == RITUAL_HTTP_BODY_STREAM)
        return begin_streamed(hc, p, n, head_len);
    if (req->body == RITUAL_HTTP_BODY_LENGTH && n - head_len >= req->content_length) {
        if (!hc->discard) { /* all here: zero-copy */
            hc->ex.body = p + head_len;
            hc->ex.body_len = (size_t)req->content_length;
        }
        hc->discard = false;
        ritual__http_dispatch(hc, p, head_len);
        return head_len + (size_t)req->content_length;
    }
    size_t cap = 0;
    if (!hc->discard)
        cap = req->body == RITUAL_HTTP_BODY_LENGTH && req->content_length < BODY_FIRST_CAP
                  ? (size_t)req->content_length
                  : BODY_FIRST_CAP;
    if (ritual__http_owned_new(hc, p, head_len, cap) < 0) {
        ritual_conn_abort(hc->conn);
        return n;
    }
    hc->state = HTTP_BODY;
    if (req->flags & RITUAL_HTTP_EXPECT_CONTINUE)
        ritual__http_send_continue(hc);
    body_wait_start(hc);
    return head_len;
}

/* --------------------------------------------------------------- feed */

size_t ritual__http_body_feed(struct http_conn *hc, const char *p, size_t n)
{
    if (n > 0)
        hc->expect_unmet = false; /* the body comes: it can be read to its end */
    if (hc->body_kind == RITUAL_HTTP_BODY_LENGTH) {
        size_t take = n < hc->body_left ? n : (size_t)hc->body_left;
        hc->body_left -= take;
        if (!body_piece(hc, p, take))
            return n;
        if (hc->body_left == 0)
            body_end(hc);
        else if (!hc->body_paused)
            body_wait_start(hc);
        return take;
    }
    size_t used = 0;
    while (used < n && !ritual_http_chunked_done(&hc->chunked)) {
        const char *data;
        size_t data_len, r;
        if (ritual_http_chunked_decode(&hc->chunked, p + used, n - used, &r, &data, &data_len) <
            0) {
            ritual__http_respond_early(hc, 400, true);
            return n;
        }
        if (data_len > hc->site->opts->max_body - hc->body_seen) {
            ritual__http_respond_early(hc, 413, true);
            return n;
        }
        used += r;
        if (!body_piece(hc, data, data_len))
            return n;
        if (r == 0 || hc->body_paused)
            break;
    }
    if (ritual_http_chunked_done(&hc->chunked))
        body_end(hc);
    else if (!hc->body_paused)
        body_wait_start(hc);
    return used;
}

/* ------------------------------------------------------------ the API */

/* A streamed body still arriving for a handler that kept its exchange:
 * returns 0, or what pausing and resuming return otherwise. */
static int check_streaming(const ritual_http_exchange *ex)
{
    const struct http_conn *hc = ex->hc;
    if (hc->site->opts->body_mode != RITUAL_HTTP_BODY_STREAM)
        return -EINVAL;
    if (!hc->conn || ritual_conn_closing(hc->conn))
        return -EPIPE;
    if (hc->state != HTTP_BODY || !hc->body_streamed || !ex->held)
        return -EALREADY;
    return 0;
}

int ritual_http_body_pause(ritual_http_exchange *ex)
{
    int rc = check_streaming(ex);
    struct http_conn *hc = ex->hc;
    if (rc == 0 && !hc->body_paused) {
        hc->body_paused = true;
        ritual__http_body_wait_stop(hc);
        ritual_conn_pause(hc->conn);
    }
    return rc;
}

int ritual_http_body_resume(ritual_http_exchange *ex)
{
    int rc = check_streaming(ex);
    struct http_conn *hc = ex->hc;
    if (rc == 0 && hc->body_paused) {
        hc->body_paused = false;
        body_wait_start(hc);
        ritual_conn_resume(hc->conn); /* what is held comes from the loop */
    }
    return rc;
}

void ritual_http_exchange_set_callbacks(ritual_http_exchange *ex,
                                        const ritual_http_exchange_callbacks *cbs, void *arg)
{
    ex->cbs = cbs;
    ex->cb_arg = arg;
}

void ritual__http_body_answered(struct http_conn *hc)
{
    /* The rest of the body is dropped as it comes, paused or not. */
    if (hc->body_paused && hc->conn) {
        hc->body_paused = false;
        body_wait_start(hc);
        ritual_conn_resume(hc->conn);
    }
}
