/* http_client.c - a strict HTTP/1.1 client for the black-box tests. See support.h. */
#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ HTTP */

void http_server_start(const char *ritual_path, const char *root, const char *const extra_args[],
                       struct server *out)
{
    const char *argv[64];
    int argc = 0;
    argv[argc++] = "--root";
    argv[argc++] = root;
    for (int i = 0; extra_args != NULL && extra_args[i] != NULL; i++) {
        ASSERT_LT(argc, 56);
        argv[argc++] = extra_args[i];
    }
    argv[argc] = NULL;
    server_start_cmd(ritual_path, "http", "127.0.0.1:0", argv, 0, out);
}

struct http_client *http_client_open(int port)
{
    struct http_client *c = malloc(sizeof *c);
    ASSERT(c != NULL);
    c->fd = tcp_connect(port);
    c->len = 0;
    return c;
}

void http_client_close(struct http_client *c)
{
    if (c == NULL)
        return;
    close(c->fd);
    free(c);
}

void http_send(struct http_client *c, const char *raw)
{
    send_all(c->fd, raw, strlen(raw));
}

/* Reads more bytes into c->buf, waiting until `deadline`. Returns the count,
 * 0 at the end of the stream. */
static size_t client_fill(struct http_client *c, uint64_t deadline, const char *what)
{
    if (c->len == sizeof c->buf)
        FAIL("%s: more than %zu bytes without an end", what, sizeof c->buf);
    for (;;) {
        if (!wait_fd(c->fd, POLLIN, deadline))
            FAIL("%s: nothing more within the time allowed (%zu bytes buffered: \"%.*s\")", what,
                 c->len, (int)(c->len < 200 ? c->len : 200), c->buf);
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            FAIL("%s: recv: %s", what, strerror(errno));
        c->len += (size_t)n;
        return (size_t)n;
    }
}

static void consume(struct http_client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

static const char *find_head_end(const char *buf, size_t len)
{
    const char *p = memmem(buf, len, "\r\n\r\n", 4);
    return p ? p + 4 : NULL;
}

/* Parses the head in c->buf[0..head_len) into r. */
static void parse_head(const char *buf, size_t head_len, struct http_response *r)
{
    if (head_len + 1 > sizeof r->fields)
        FAIL("response head of %zu bytes is too long", head_len);
    memcpy(r->fields, buf, head_len);
    r->fields[head_len] = '\0';
    r->head_len = head_len;
    char *line = r->fields;
    char *eol = strstr(line, "\r\n");
    *eol = '\0';
    int status = 0, minor = -1, used = 0;
    if (sscanf(line, "HTTP/1.%1d %3d%n", &minor, &status, &used) != 2 || used != 12 ||
        (line[12] != ' ' && line[12] != '\0') || status < 100)
        FAIL("bad status line: \"%s\"", line);
    r->status = status;
    r->minor_version = minor;
    for (line = eol + 2; *line != '\r';) {
        eol = strstr(line, "\r\n");
        *eol = '\0';
        if (memchr(line, '\n', (size_t)(eol - line)) || memchr(line, '\r', (size_t)(eol - line)))
            FAIL("bare CR or LF in the header line \"%s\"", line);
        char *colon = strchr(line, ':');
        if (colon == NULL || colon == line || colon[-1] == ' ' || colon[-1] == '\t')
            FAIL("bad header line: \"%s\"", line);
        *colon = '\0';
        char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        char *end = value + strlen(value);
        while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (r->num_fields == HTTP_MAX_FIELDS)
            FAIL("more than %d header fields in a response", HTTP_MAX_FIELDS);
        r->names[r->num_fields] = line;
        r->values[r->num_fields] = value;
        r->num_fields++;
        line = eol + 2;
    }
    if (http_field_count(r, "Content-Length") > 1)
        FAIL("a response with %d Content-Length headers", http_field_count(r, "Content-Length"));
    const char *te = http_field(r, "Transfer-Encoding");
    if (te != NULL && (strcmp(te, "chunked") != 0 || http_field_count(r, "Transfer-Encoding") > 1 ||
                       http_field(r, "Content-Length") != NULL))
        FAIL("unexpected Transfer-Encoding: %s", te);
    r->chunked = te != NULL;
    const char *cl = http_field(r, "Content-Length");
    if (cl != NULL) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (*cl < '0' || *cl > '9' || *end != '\0' || errno != 0)
            FAIL("bad Content-Length: \"%s\"", cl);
        r->has_length = 1;
        r->content_length = v;
    }
}

int http_read_head(struct http_client *c, struct http_response *r, int timeout_ms)
{
    memset(r, 0, sizeof *r);
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    const char *end;
    while ((end = find_head_end(c->buf, c->len)) == NULL) {
        /* A 1.1 server sends no empty lines between responses. */
        if (c->len > 0 && strncmp(c->buf, "HTTP/1.", c->len < 7 ? c->len : 7) != 0)
            FAIL("the response does not start with \"HTTP/1.\": \"%.*s\"",
                 (int)(c->len < 200 ? c->len : 200), c->buf);
        if (client_fill(c, deadline, "response head") == 0) {
            if (c->len == 0)
                return 0;
            FAIL("end of stream inside a response head: \"%.*s\"", (int)c->len, c->buf);
        }
    }
    size_t head_len = (size_t)(end - c->buf);
    parse_head(c->buf, head_len, r);
    consume(c, head_len);
    return 1;
}

size_t http_client_recv(struct http_client *c, void *buf, size_t cap, int timeout_ms)
{
    if (c->len > 0) {
        size_t n = c->len < cap ? c->len : cap;
        memcpy(buf, c->buf, n);
        consume(c, n);
        return n;
    }
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (!wait_fd(c->fd, POLLIN, deadline))
            FAIL("recv: nothing within %d ms", timeout_ms);
        ssize_t n = recv(c->fd, buf, cap, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            FAIL("recv: %s", strerror(errno));
        return (size_t)n;
    }
}

static int status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

int http_read_response(struct http_client *c, struct http_response *r, int head_request,
                       int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    if (!http_read_head(c, r, timeout_ms))
        return 0;
    if (r->chunked && !head_request)
        FAIL("a chunked response: read its head alone (http_read_head), then the chunks");
    int until_close = 0;
    uint64_t want = 0;
    if (!head_request && status_has_body(r->status)) {
        if (r->has_length)
            want = r->content_length;
        else
            until_close = 1;
    }
    size_t cap = until_close ? 1u << 20 : (size_t)want;
    if ((uint64_t)cap != want && !until_close)
        FAIL("body of %llu bytes is too large to read whole", (unsigned long long)want);
    r->body = malloc(cap + 1);
    ASSERT(r->body != NULL);
    while (until_close || r->body_len < want) {
        if (r->body_len == cap) {
            cap *= 2;
            r->body = realloc(r->body, cap + 1);
            ASSERT(r->body != NULL);
        }
        int64_t left = (int64_t)deadline - (int64_t)now_ms();
        if (left <= 0)
            FAIL("HTTP %d: %zu of %llu body bytes within %d ms", r->status, r->body_len,
                 (unsigned long long)want, timeout_ms);
        size_t n = http_client_recv(c, r->body + r->body_len, cap - r->body_len, (int)left);
        if (n == 0 && until_close)
            break;
        if (n == 0)
            FAIL("HTTP %d: end of stream after %zu of %llu body bytes", r->status, r->body_len,
                 (unsigned long long)want);
        r->body_len += n;
    }
    r->body[r->body_len] = '\0';
    return 1;
}

void http_expect_eof(struct http_client *c, int timeout_ms)
{
    if (c->len > 0)
        FAIL("expected the end of the stream, got %zu more bytes: \"%.*s\"", c->len,
             (int)(c->len < 200 ? c->len : 200), c->buf);
    expect_eof(c->fd, timeout_ms);
}

void http_exchange(int port, const char *raw, struct http_response *r, int timeout_ms)
{
    struct http_client *c = http_client_open(port);
    http_send(c, raw);
    if (!http_read_response(c, r, strncmp(raw, "HEAD ", 5) == 0, timeout_ms))
        FAIL("connection closed without a response to \"%.60s\"", raw);
    http_client_close(c);
}

const char *http_field(const struct http_response *r, const char *name)
{
    for (size_t i = 0; i < r->num_fields; i++)
        if (strcasecmp(r->names[i], name) == 0)
            return r->values[i];
    return NULL;
}

int http_field_count(const struct http_response *r, const char *name)
{
    int n = 0;
    for (size_t i = 0; i < r->num_fields; i++)
        if (strcasecmp(r->names[i], name) == 0)
            n++;
    return n;
}

void http_response_free(struct http_response *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

void http_expect_status_(const struct http_response *r, int want, const char *file, int line)
{
    if (r->status == want)
        return;
    char shown[4096];
    size_t n = 0;
    for (size_t i = 0; i < r->num_fields && n < sizeof shown; i++)
        n += (size_t)snprintf(shown + n, sizeof shown - n, "\n  %s: %s", r->names[i], r->values[i]);
    test_fail(file, line, "HTTP status %d, expected %d; headers:%s\n  body: \"%.*s\"", r->status,
              want, shown, (int)(r->body_len < 200 ? r->body_len : 200), r->body ? r->body : "");
}

void http_expect_field_(const struct http_response *r, const char *name, const char *want,
                        const char *file, int line)
{
    const char *got = http_field(r, name);
    if (want == NULL && got != NULL)
        test_fail(file, line, "HTTP %d: unexpected header %s: %s", r->status, name, got);
    if (want != NULL && (got == NULL || strcmp(got, want) != 0))
        test_fail(file, line, "HTTP %d: header %s is %s%s%s, expected \"%s\"", r->status, name,
                  got ? "\"" : "", got ? got : "absent", got ? "\"" : "", want);
}

void http_ask(struct http_client *c, struct http_response *r, const char *method,
              const char *target, const char *fmt, ...)
{
    char extra[512], req[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(extra, sizeof extra, fmt, ap);
    va_end(ap);
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n", method, target, extra);
    http_send(c, req);
    if (!http_read_response(c, r, strcmp(method, "HEAD") == 0, 5000))
        FAIL("connection closed instead of answering \"%s %s\" with %s", method, target, extra);
}
