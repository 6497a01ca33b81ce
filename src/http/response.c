/* response.c - formatting responses and the output stage. Every response of
 * one on_data call is appended to the site's stage and the stage goes out
 * with one write when the call returns, so a batch of pipelined requests
 * costs one system call. Bodies up to STAGE_BODY_MAX are copied into the
 * stage; larger ones and files are written after it. */
#include "http_internal.h"
#include "parser.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#define STAGE_BODY_MAX (16 * 1024)  /* larger bodies are written, not copied */
#define STAGE_FLUSH_AT (256 * 1024) /* send the stage mid-batch beyond this */
#define STAGE_PIECES_MAX 256        /* iovecs in one writev */

void ritual__http_date_refresh(struct http_site *site)
{
    struct timespec ts;
    /* The coarse clock is a memory read; a second's precision is all the
     * Date header has. */
    if (clock_gettime(CLOCK_REALTIME_COARSE, &ts) != 0)
        return;
    if ((int64_t)ts.tv_sec != site->date_sec) {
        site->date_sec = (int64_t)ts.tv_sec;
        ritual_http_date(site->date_sec, site->date);
        /* extra_headers follow, copied once a second: every head pays one
         * memcpy for them, and nothing when there are none. */
        const char *extra = site->opts->extra_headers;
        int n = snprintf(site->common, site->common_cap, "\r\nDate: %s\r\nServer: %.64s\r\n%s",
                         site->date, site->opts->server_name, extra ? extra : "");
        site->common_len = n > 0 && (size_t)n < site->common_cap ? (size_t)n : 0;
    }
}

/* Runs the releases of the referenced bodies and empties the stage. */
static void stage_reset(struct http_site *site)
{
    /* The stage is emptied before any release runs: a release may answer
     * another exchange, which stages (and flushes) again. */
    struct http_piece releases[STAGE_PIECES_MAX];
    size_t n = 0;
    for (size_t i = 0; i < site->npieces; i++)
        if (site->pieces[i].release)
            releases[n++] = site->pieces[i];
    site->npieces = 0;
    site->stage_len = 0;
    site->staged_bytes = 0;
    for (size_t i = 0; i < n; i++)
        releases[i].release(releases[i].arg);
}

void ritual__http_stage_drop(struct http_site *site)
{
    stage_reset(site);
    site->stage_conn = NULL;
}

void ritual__http_stage_flush(struct http_site *site)
{
    struct http_conn *hc = site->stage_conn;
    if (hc && hc->conn && site->npieces > 0) {
        /* One writev for the batch; what the kernel does not take is copied
         * into the connection's queue, so referenced bodies are free after. */
        struct iovec iov[STAGE_PIECES_MAX];
        for (size_t i = 0; i < site->npieces; i++) {
            const struct http_piece *piece = &site->pieces[i];
            iov[i].iov_base = (void *)(piece->ext ? piece->ext : site->stage + piece->off);
            iov[i].iov_len = piece->len;
        }
        ritual_writev(hc->conn, iov, (int)site->npieces); /* a failure closes it */
    }
    stage_reset(site);
}

void ritual__http_stage_claim(struct http_site *site, struct http_conn *hc)
{
    if (site->stage_conn != hc) {
        ritual__http_stage_flush(site);
        site->stage_conn = hc;
    }
}

/* Room for one more piece and for `n` more bytes in the stage, sending what
 * is staged first if the batch is already large. Returns 0 or -ENOMEM. */
static int stage_reserve(struct http_site *site, size_t n)
{
    if (site->npieces + 2 > STAGE_PIECES_MAX || site->staged_bytes >= STAGE_FLUSH_AT)
        ritual__http_stage_flush(site);
    if (site->npieces + 2 > site->pieces_cap) {
        size_t cap = site->pieces_cap ? site->pieces_cap * 2 : 32;
        struct http_piece *pieces = realloc(site->pieces, cap * sizeof *pieces);
        if (!pieces)
            return -ENOMEM;
        site->pieces = pieces;
        site->pieces_cap = cap;
    }
    if (site->stage_len + n <= site->stage_cap)
        return 0;
    size_t cap = site->stage_cap ? site->stage_cap : 4096;
    while (cap < site->stage_len + n)
        cap *= 2;
    char *stage = realloc(site->stage, cap);
    if (!stage)
        return -ENOMEM;
    site->stage = stage;
    site->stage_cap = cap;
    return 0;
}

/* Records that the stage grew from `from` to stage_len: joined to the last
 * piece when that one ends where these bytes begin. */
static void stage_commit(struct http_site *site, size_t from)
{
    size_t len = site->stage_len - from;
    struct http_piece *last = site->npieces ? &site->pieces[site->npieces - 1] : NULL;
    if (last && !last->ext && last->off + last->len == from)
        last->len += len;
    else
        site->pieces[site->npieces++] = (struct http_piece){NULL, from, len, NULL, NULL};
    site->staged_bytes += len;
}

/* Copies `len` bytes into the stage (room reserved by the caller). */
static void stage_copy(struct http_site *site, const void *bytes, size_t len)
{
    size_t from = site->stage_len;
    memcpy(site->stage + site->stage_len, bytes, len);
    site->stage_len += len;
    stage_commit(site, from);
}

/* Adds a referenced body (a piece was reserved by the caller). */
static void stage_ref(struct http_site *site, const void *body, size_t len,
                      void (*release)(void *arg), void *arg)
{
    site->pieces[site->npieces++] = (struct http_piece){body, 0, len, release, arg};
    site->staged_bytes += len;
}

static char *put(char *p, const void *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LITERAL(p, s) put((p), (s), sizeof(s) - 1)

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* 1xx, 204 and 304 carry no body and no Content-Length. */
static bool status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

/* Stages the head. `headers` with a NULL name are raw lines, already ending
 * in CRLF (a cached block of headers). `content_length` may also be
 * HTTP_LEN_CHUNKED or HTTP_LEN_NONE. Returns 0 or -ENOMEM. */
static int stage_head(struct http_conn *hc, int status, const ritual_http_header *headers,
                      size_t num_headers, uint64_t content_length, bool close, bool http10)
{
    struct http_site *site = hc->site;
    const char *reason;
    size_t reason_len;
    switch (status) { /* the usual answers without a lookup */
    case 200:
        reason = "OK";
        reason_len = 2;
        break;
    case 304:
        reason = "Not Modified";
        reason_len = 12;
        break;
    default:
        reason = ritual_http_reason(status);
        reason_len = strlen(reason);
    }
    size_t need = 64 + reason_len + site->common_len + 40 + 40;
    for (size_t i = 0; i < num_headers; i++)
        need += headers[i].name_len + headers[i].value_len + 4;
    if (stage_reserve(site, need) < 0)
        return -ENOMEM;

    char *p = site->stage + site->stage_len;
    p = PUT_LITERAL(p, "HTTP/1.1 ");
    *p++ = (char)('0' + status / 100);
    *p++ = (char)('0' + status / 10 % 10);
    *p++ = (char)('0' + status % 10);
    *p++ = ' ';
    p = put(p, reason, reason_len);
    p = put(p, site->common, site->common_len);
    for (size_t i = 0; i < num_headers; i++) {
        if (!headers[i].name) {
            p = put(p, headers[i].value, headers[i].value_len);
            continue;
        }
        p = put(p, headers[i].name, headers[i].name_len);
        p = PUT_LITERAL(p, ": ");
        p = put(p, headers[i].value, headers[i].value_len);
        p = PUT_LITERAL(p, "\r\n");
    }
    if (status_has_body(status) && content_length < HTTP_LEN_NONE) {
        p = PUT_LITERAL(p, "Content-Length: ");
        p = put_u64(p, content_length);
        p = PUT_LITERAL(p, "\r\n");
    } else if (status_has_body(status) && content_length == HTTP_LEN_CHUNKED) {
        p = PUT_LITERAL(p, "Transfer-Encoding: chunked\r\n");
    }
    if (close)
        p = PUT_LITERAL(p, "Connection: close\r\n");
    else if (http10)
        p = PUT_LITERAL(p, "Connection: keep-alive\r\n");
    p = PUT_LITERAL(p, "\r\n");
    size_t from = site->stage_len;
    site->stage_len = (size_t)(p - site->stage);
    stage_commit(site, from);
    return 0;
}

/* The hot path's copies stay static (inlined, their arguments trimmed);
 * stream.c and upgrade.c call these. */
int ritual__http_stage_head(struct http_conn *hc, int status, const ritual_http_header *headers,
                            size_t num_headers, uint64_t content_length, bool close, bool http10)
{
    return stage_head(hc, status, headers, num_headers, content_length, close, http10);
}

/* Outside on_data nothing else will send the stage: send it now. */
void ritual__http_flush_unless_delivering(struct http_conn *hc)
{
    if (!hc->in_delivery)
        ritual__http_stage_flush(hc->site);
}

#define flush_unless_delivering ritual__http_flush_unless_delivering

/* A response for a request that is already answered, or whose connection
 * is gone. Returns 0 to go on, or a negative errno. */
static ALWAYS_INLINE int check_exchange(ritual_http_exchange *ex)
{
    if (ex->responded || ex->stream)
        return -EALREADY;
    struct http_conn *hc = ex->hc;
    if (!hc->conn) {
        ritual__http_exchange_done(hc, 0, 0); /* frees what the closed connection kept */
        return -EPIPE;
    }
    if (!hc->in_delivery) { /* answered later, from a timer or a post */
        if (ritual_conn_closing(hc->conn)) {
            /* Failed, reset, timed out or closing, its on_close still to
             * come: nothing can be written. The exchange ends with the
             * connection, as when a handler leaves it closing: one with an
             * on_close hears of it there, one without is freed there. */
            hc->done = true;
            if (!(ex->cbs && ex->cbs->on_close)) {
                ex->responded = true;
                ex->held = false;
            }
            return -EPIPE;
        }
        ritual__http_date_refresh(hc->site); /* a fresh Date */
    }
    ritual__http_stage_claim(hc->site, hc);
    return 0;
}

/* Header names and values pass here on every answer, so they are read
 * eight bytes at a time (the last word overlapping the one before it):
 * with ones = 0x01 in every byte and highs = 0x80, a word has a byte below
 * c when (x - c * ones) & ~x & highs is not 0, and a byte equal to c when
 * the same holds of x ^ (c * ones) below 1. */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static inline uint64_t byte_below(uint64_t x, uint64_t c)
{
    return (x - c * ONES) & ~x & HIGHS;
}

static inline uint64_t byte_equal(uint64_t x, uint64_t c)
{
    return byte_below(x ^ (c * ONES), 1);
}

/* No byte of `n` at `p` is a control character (but HTAB in a value: it
 * is the one a value may hold), and in a name none is a space or a colon:
 * what would end the line or the name where the caller did not mean to. */
static ALWAYS_INLINE bool field_ok(const char *p, size_t n, bool name)
{
    if (n < 8) {
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            if (name ? (c <= ' ' || c == ':') : (c < ' ' && c != '\t'))
                return false;
        }
        return true;
    }
    for (size_t i = 0;; i += 8) {
        if (i > n - 8)
            i = n - 8; /* the last word overlaps the one before */
        uint64_t x;
        memcpy(&x, p + i, 8);
        if (name ? (byte_below(x, 0x21) | byte_equal(x, ':')) != 0 : byte_below(x, 0x20) != 0)
            for (size_t k = i; k < i + 8; k++) { /* a suspect: look closer */
                unsigned char c = (unsigned char)p[k];
                if (name || (c < ' ' && c != '\t'))
                    return false;
            }
        if (i == n - 8)
            return true;
    }
}

/* Is the header name at p[0..n) one whose header the layer writes itself
 * (Content-Length, Transfer-Encoding, Connection)? A caller's copy would
 * contradict it: two framings of one body (a Content-Length beside chunked
 * coding, which a proxy may read one way and the client the other: request
 * smuggling), or a keep-alive the layer does not keep. Only `connection`
 * decides whether Connection is among them: a 101 needs the caller's
 * "Connection: upgrade". Lengths are compared first: the usual names pass
 * with one comparison. */
static inline bool layer_owns(const char *p, size_t n, bool connection)
{
    switch (n) {
    case 10:
        return connection && http_lower_equals(p, 10, "connection");
    case 14:
        return http_lower_equals(p, 14, "content-length");
    case 17:
        return http_lower_equals(p, 17, "transfer-encoding");
    default:
        return false;
    }
}

/* The same for a raw line of `len` bytes: its name ends at the first
 * colon, so three bytes tell whether it could be one of those names. */
static inline bool line_owned(const char *line, size_t len, bool connection)
{
    return (len > 14 && line[14] == ':' && layer_owns(line, 14, connection)) ||
           (len > 17 && line[17] == ':' && layer_owns(line, 17, connection)) ||
           (len > 10 && line[10] == ':' && layer_owns(line, 10, connection));
}

/* A head the caller asked for that would not be one: a status outside
 * 100-599; a header name that is empty or holds a control character, a
 * space or a colon; a value with CR, LF, NUL or another control character
 * but HTAB (header injection: a second header, or a body of the caller's
 * choosing); a raw block that is not whole CRLF-ended lines; or a header
 * the layer writes itself (layer_owns: Connection too unless `connection`).
 * Returns 0 or -EINVAL. */
static ALWAYS_INLINE int check_head(int status, const ritual_http_header *headers,
                                    size_t num_headers, bool connection)
{
    if (status < 100 || status > 599)
        return -EINVAL;
    for (size_t i = 0; i < num_headers; i++) {
        const ritual_http_header *h = &headers[i];
        if (!h->name) { /* raw lines: CRLF-ended, none empty, no bare CR or LF */
            size_t n = h->value_len;
            const char *p = h->value, *end = p + n, *c;
            if (n < 2 || end[-1] != '\n' || p[0] == '\r')
                return -EINVAL;
            const char *line = p;
            for (c = p; (c = memchr(c, '\n', (size_t)(end - c))) != NULL; c++) {
                if (c == p || c[-1] != '\r' || (c + 1 < end && c[1] == '\r') ||
                    line_owned(line, (size_t)(c - line), connection))
                    return -EINVAL;
                line = c + 1;
            }
            for (c = p; (c = memchr(c, '\r', (size_t)(end - c))) != NULL; c++)
                if (c + 1 == end || c[1] != '\n')
                    return -EINVAL;
            continue;
        }
        if (h->name_len == 0 || !field_ok(h->name, h->name_len, true) ||
            !field_ok(h->value, h->value_len, false) ||
            layer_owns(h->name, h->name_len, connection))
            return -EINVAL;
    }
    return 0;
}

int ritual__http_check_exchange(ritual_http_exchange *ex)
{
    return check_exchange(ex);
}

int ritual__http_check_head(int status, const ritual_http_header *headers, size_t num_headers)
{
    return check_head(status, headers, num_headers, status != 101);
}

/* How every answer starts: the exchange checked and the head staged.
 * Returns false (with *rc the error, and `release` run) when there is no
 * answer to give; else true, with *rc the result of staging the head. */
static bool start_answer(ritual_http_exchange *ex, int status, const ritual_http_header *headers,
                         size_t num_headers, uint64_t len, void (*release)(void *arg), void *arg,
                         int *rc)
{
    *rc = check_head(status, headers, num_headers, true);
    if (*rc == 0)
        *rc = check_exchange(ex);
    if (*rc < 0) {
        if (release)
            release(arg);
        return false;
    }
    *rc = stage_head(ex->hc, status, headers, num_headers, len,
                     ritual__http_settle_close(ex->hc, ex), ex->req.minor_version == 0);
    return true;
}

/* How every answer ends: out of memory halfway leaves an answer that
 * cannot be completed (abort); the stage goes out unless on_data sends it;
 * the exchange is done. */
static int finish_answer(struct http_conn *hc, int rc, int status, uint64_t body_bytes)
{
    if (rc == -ENOMEM)
        ritual_conn_abort(hc->conn);
    flush_unless_delivering(hc);
    ritual__http_exchange_done(hc, status, body_bytes);
    return rc < 0 ? rc : 0;
}

static bool sends_body(const ritual_http_exchange *ex, int status, uint64_t len)
{
    return !ex->head_method && status_has_body(status) && len > 0;
}

/* The body part of the answers from memory: copied into the stage when
 * small, referenced (release given) or written after the stage when large. */
static int respond_memory(ritual_http_exchange *ex, int status, const ritual_http_header *headers,
                          size_t num_headers, const void *body, size_t len,
                          void (*release)(void *arg), void *arg)
{
    int rc;
    if (!start_answer(ex, status, headers, num_headers, len, release, arg, &rc))
        return rc;
    struct http_conn *hc = ex->hc;
    struct http_site *site = hc->site;
    bool send_body = sends_body(ex, status, len);
    if (rc == 0 && send_body && release) {
        if ((rc = stage_reserve(site, 0)) == 0) {
            stage_ref(site, body, len, release, arg);
            release = NULL; /* the stage runs it */
        }
    } else if (rc == 0 && send_body) {
        if (len <= STAGE_BODY_MAX && stage_reserve(site, len) == 0) {
            stage_copy(site, body, len);
        } else {
            ritual__http_stage_flush(site);
            rc = ritual_write(hc->conn, body, len);
        }
    }
    if (release)
        release(arg);
    return finish_answer(hc, rc, status, send_body ? len : 0);
}

int ritual_http_respond(ritual_http_exchange *ex, int status, const ritual_http_header *headers,
                        size_t num_headers, const void *body, size_t len)
{
    return respond_memory(ex, status, headers, num_headers, body, len, NULL, NULL);
}

int ritual_http_respond_ref(ritual_http_exchange *ex, int status, const ritual_http_header *headers,
                            size_t num_headers, const void *body, size_t len,
                            void (*release)(void *arg), void *arg)
{
    static const char nothing[1];
    if (!release) /* the contract is the release: without one, copy */
        return ritual_http_respond(ex, status, headers, num_headers, body, len);
    return respond_memory(ex, status, headers, num_headers, len ? body : nothing, len, release,
                          arg);
}

int ritual_http_respond_file(ritual_http_exchange *ex, int status,
                             const ritual_http_header *headers, size_t num_headers, int fd,
                             uint64_t offset, uint64_t len, void (*release)(void *arg), void *arg)
{
    int rc;
    if (!start_answer(ex, status, headers, num_headers, len, release, arg, &rc))
        return rc;
    struct http_conn *hc = ex->hc;
    bool send_body = sends_body(ex, status, len);
    if (rc == 0 && send_body) {
        ritual__http_stage_flush(hc->site);
        rc = ritual_write_file(hc->conn, fd, offset, len, release, arg);
    } else if (release) {
        release(arg);
    }
    return finish_answer(hc, rc, status, send_body ? len : 0);
}

/* "404 Not Found\n" */
static size_t error_body(int status, char *buf, size_t size)
{
    const char *reason = ritual_http_reason(status);
    size_t n = strlen(reason);
    if (n + 6 > size)
        n = size - 6;
    buf[0] = (char)('0' + status / 100 % 10);
    buf[1] = (char)('0' + status / 10 % 10);
    buf[2] = (char)('0' + status % 10);
    buf[3] = ' ';
    memcpy(buf + 4, reason, n);
    buf[4 + n] = '\n';
    return n + 5;
}

static const ritual_http_header text_plain[] = {
    RITUAL_HTTP_HEADER("Content-Type", "text/plain; charset=utf-8"),
};

int ritual_http_respond_error(ritual_http_exchange *ex, int status, int close)
{
    if (close && !ex->responded)
        ex->hc->close_after = true;
    char body[64];
    size_t len = error_body(status, body, sizeof body);
    return ritual_http_respond(ex, status, text_plain, 1, body, len);
}

void ritual__http_respond_early(struct http_conn *hc, int status, bool close)
{
    ritual__http_respond_early_text(hc, status, close, NULL);
}

void ritual__http_respond_early_text(struct http_conn *hc, int status, bool close, const char *text)
{
    if (!hc->conn)
        return;
    if (close)
        hc->close_after = true;
    if (!hc->in_delivery) /* the header timer's 408 */
        ritual__http_date_refresh(hc->site);
    ritual__http_stage_claim(hc->site, hc);
    char body[96];
    size_t len = error_body(status, body, sizeof body);
    if (text) {
        len = strlen(text);
        if (len > sizeof body)
            len = sizeof body;
        memcpy(body, text, len);
    }
    /* A HEAD gets the head a GET would (nginx does the same), no body. */
    if (stage_head(hc, status, text_plain, 1, len, hc->close_after, false) == 0 &&
        !hc->ex.head_method && stage_reserve(hc->site, len) == 0)
        stage_copy(hc->site, body, len);
    if (hc->close_after)
        hc->done = true;
    ritual__http_log_early(hc, status, hc->ex.head_method ? 0 : len);
    flush_unless_delivering(hc);
    if (!hc->in_delivery && hc->done && hc->conn)
        ritual_conn_close(hc->conn);
}

void ritual__http_send_continue(struct http_conn *hc)
{
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    hc->expect_unmet = false;
    ritual__http_stage_claim(hc->site, hc);
    if (stage_reserve(hc->site, sizeof line - 1) == 0)
        stage_copy(hc->site, line, sizeof line - 1);
    /* The client waits for it before sending the body: send it now. */
    ritual__http_stage_flush(hc->site);
}
