/* access_log.c - one line per response in the combined log format:
 *   127.0.0.1 - - [26/Nov/2026:13:29:55 +0000] "GET / HTTP/1.1" 200 512 "-" "curl/7.88.1"
 * Lines collect in a per-worker buffer written whole (each write ends on a
 * line boundary, and the fd is O_APPEND, so workers' lines never mix). */
#include "http_app.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_BUFFER (64 * 1024)
#define LOG_LINE_MAX 4096

struct access_log {
    int fd;
    ritual_timer *timer;
    int64_t stamp_sec;
    char stamp[32]; /* "26/Nov/2026:13:29:55 +0000" */
    size_t len;
    char buf[LOG_BUFFER];
};

static void flush_log(struct access_log *log)
{
    size_t off = 0;
    while (off < log->len) {
        ssize_t n = write(log->fd, log->buf + off, log->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* a full disk drops log lines, never requests */
        off += (size_t)n;
    }
    log->len = 0;
}

static void timer_fired(ritual_timer *timer, void *data)
{
    (void)timer;
    flush_log(data);
}

struct access_log *access_log_new(ritual_loop *loop, int fd)
{
    struct access_log *log = malloc(sizeof *log);
    if (!log)
        return NULL;
    log->fd = fd;
    log->len = 0;
    log->stamp_sec = -1;
    log->timer = ritual_timer_new(loop, timer_fired, log);
    if (!log->timer || ritual_timer_start(log->timer, 1000, 1000) < 0) {
        if (log->timer)
            ritual_timer_free(log->timer);
        free(log);
        return NULL;
    }
    return log;
}

/* Called after the loop is gone (its timers with it): only flushes. */
void access_log_free(struct access_log *log)
{
    if (!log)
        return;
    flush_log(log);
    free(log);
}

/* Copies `s` quoted-safe: '"', '\\' and control bytes become \xHH, so a
 * client cannot forge log lines. Returns the new end. */
static char *put_escaped(char *p, char *end, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len && p + 4 < end; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x7f) {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        } else {
            *p++ = (char)c;
        }
    }
    return p;
}

static char *put_header(char *p, char *end, const ritual_http_request *req, const char *name)
{
    const ritual_http_header *h =
        req ? ritual_http_find_header(req->headers, req->num_headers, name) : NULL;
    if (p + 3 >= end)
        return p;
    *p++ = '"';
    if (h)
        p = put_escaped(p, end - 1, h->value, h->value_len);
    else
        *p++ = '-';
    *p++ = '"';
    return p;
}

void access_log_write(const ritual_http_log_entry *e, void *data)
{
    struct http_worker *w = http_app_worker(data, ritual_conn_loop(e->conn));
    struct access_log *log = w ? w->log : NULL;
    if (!log)
        return;
    if (e->unix_time != log->stamp_sec) {
        time_t t = (time_t)e->unix_time;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(log->stamp, sizeof log->stamp, "%d/%b/%Y:%H:%M:%S +0000", &tm);
        log->stamp_sec = e->unix_time;
    }
    if (log->len + LOG_LINE_MAX > LOG_BUFFER)
        flush_log(log);
    char *p = log->buf + log->len;
    char *end = p + LOG_LINE_MAX - 2;
    const char *host = e->peer;
    const char *colon = strrchr(host, ':');
    size_t host_len = colon ? (size_t)(colon - host) : strlen(host);
    if (host_len >= 2 && host[0] == '[') { /* "[::1]:5555" logs as ::1 */
        host++;
        host_len -= 2;
    }
    int n = snprintf(p, (size_t)(end - p), "%.*s - - [%s] \"", (int)host_len, host, log->stamp);
    p += n;
    if (e->request_line_len > 0)
        p = put_escaped(p, end - 64, e->request_line, e->request_line_len);
    else
        *p++ = '-';
    n = snprintf(p, (size_t)(end - p), "\" %d %llu ", e->status, (unsigned long long)e->body_bytes);
    if (n > 0 && p + n < end)
        p += n;
    p = put_header(p, end, e->req, "Referer");
    if (p < end)
        *p++ = ' ';
    p = put_header(p, end, e->req, "User-Agent");
    *p++ = '\n';
    log->len = (size_t)(p - log->buf);
}
