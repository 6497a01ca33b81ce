/* stream.c - responses written as they go (ritual_http_stream_*): the head
 * first, framed by a length given up front, by chunks, or (HTTP/1.0) by
 * the close; then the pieces, each sent at once behind what is staged;
 * then the end. The connection's watermarks are the backpressure: a write
 * past the high one says so, and on_drain says when to go on. */
#include "http_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

static bool status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

int ritual_http_stream_start(ritual_http_exchange *ex, int status,
                             const ritual_http_header *headers, size_t num_headers, int64_t length)
{
    if (status < 200) /* 1xx are interim: 101 is ritual_http_upgrade's */
        return -EINVAL;
    int rc = ritual__http_check_head(status, headers, num_headers);
    if (rc == 0)
        rc = ritual__http_check_exchange(ex);
    if (rc < 0)
        return rc;
    struct http_conn *hc = ex->hc;
    bool http10 = ex->req.minor_version == 0;
    uint64_t framing;
    if (!status_has_body(status) || ex->head_method) {
        ex->stream = STREAM_DROP;
        /* HEAD: the length a GET would have, if known; nginx sends no
         * Transfer-Encoding for HEAD, and neither do we. */
        framing = length >= 0 ? (uint64_t)length : HTTP_LEN_NONE;
    } else if (length >= 0) {
        ex->stream = STREAM_LENGTH;
        framing = (uint64_t)length;
    } else if (!http10) {
        ex->stream = STREAM_CHUNKED;
        framing = HTTP_LEN_CHUNKED;
    } else {
        ex->stream = STREAM_CLOSE; /* the body ends with the connection */
        framing = HTTP_LEN_NONE;
        hc->close_after = true;
    }
    ex->stream_status = (uint16_t)status;
    ex->stream_left = length >= 0 ? (uint64_t)length : 0;
    ex->stream_bytes = 0;
    ex->drain_wanted = false;
    bool close = ritual__http_settle_close(hc, ex);
    rc = ritual__http_stage_head(hc, status, headers, num_headers, framing, close, http10);
    if (rc < 0) {
        ritual_conn_abort(hc->conn);
        return rc;
    }
    ritual__http_flush_unless_delivering(hc);
    ritual__http_set_idle(hc, hc->site->opts->send_timeout_ms);
    return 0;
}

/* Sends iov[0..n) behind what is staged. Returns 0, RITUAL_HTTP_STREAM_FULL
 * or the connection's error. */
static int stream_send(ritual_http_exchange *ex, const struct iovec *iov, int n)
{
    struct http_conn *hc = ex->hc;
    struct http_site *site = hc->site;
    ritual__http_stage_claim(site, hc);
    ritual__http_stage_flush(site); /* the head, and answers before it */
    int rc = ritual_writev(hc->conn, iov, n);
    if (rc < 0)
        return rc;
    if (ritual_conn_write_blocked(hc->conn)) {
        ex->drain_wanted = true;
        return RITUAL_HTTP_STREAM_FULL;
    }
    return 0;
}

/* The stream under way, or why there is none. */
static int check_stream(const ritual_http_exchange *ex)
{
    if (ex->responded)
        return -EALREADY;
    if (!ex->stream)
        return -EINVAL;
    const struct http_conn *hc = ex->hc;
    if (!hc->conn || ritual_conn_closing(hc->conn))
        return -EPIPE;
    return 0;
}

int ritual_http_stream_write(ritual_http_exchange *ex, const void *data, size_t len)
{
    int rc = check_stream(ex);
    if (rc < 0 || len == 0)
        return rc;
    switch (ex->stream) {
    case STREAM_DROP:
        return 0;
    case STREAM_LENGTH:
        if (len > ex->stream_left)
            return -EINVAL;
        ex->stream_left -= len;
        break;
    case STREAM_CHUNKED: {
        /* size CRLF data CRLF */
        char line[20];
        size_t n = 0;
        for (int shift = 60; shift >= 0; shift -= 4)
            if (n > 0 || (len >> shift) != 0 || shift == 0)
                line[n++] = "0123456789abcdef"[(len >> shift) & 0xf];
        line[n++] = '\r';
        line[n++] = '\n';
        struct iovec iov[3] = {{line, n}, {(void *)data, len}, {(void *)"\r\n", 2}};
        ex->stream_bytes += len;
        return stream_send(ex, iov, 3);
    }
    default:
        break;
    }
    ex->stream_bytes += len;
    struct iovec iov = {(void *)data, len};
    return stream_send(ex, &iov, 1);
}

int ritual_http_stream_end(ritual_http_exchange *ex)
{
    int rc = check_stream(ex);
    if (rc == -EINVAL || rc == -EALREADY)
        return rc;
    struct http_conn *hc = ex->hc;
    if (rc == 0 && ex->stream == STREAM_LENGTH && ex->stream_left > 0)
        return -EINVAL;
    if (rc == 0 && ex->stream == STREAM_CHUNKED) {
        struct iovec last = {(void *)"0\r\n\r\n", 5};
        rc = stream_send(ex, &last, 1);
        if (rc > 0)
            rc = 0;
    }
    if (!hc->conn) { /* gone: the exchange goes too */
        ritual__http_exchange_done(hc, 0, 0);
        return -EPIPE;
    }
    int status = ex->stream_status;
    uint64_t bytes = ex->stream == STREAM_DROP ? 0 : ex->stream_bytes;
    ritual__http_flush_unless_delivering(hc);
    ritual__http_exchange_done(hc, status, bytes);
    return rc < 0 ? rc : 0;
}
