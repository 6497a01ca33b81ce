/* access_log.c - one line per response in the combined log format:
 *   127.0.0.1 - - [26/Nov/2026:13:29:55 +0000] "GET / HTTP/1.1" 200 512 "-" "curl/7.88.1"
 * or in JSON (access_log_json.c). Lines collect in a per-worker buffer
 * written whole (each write ends on a line boundary, and the fd is
 * O_APPEND, so workers' lines never mix). */
#include "access_log.h"
#include "http_app.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_BUFFER (64 * 1024)
#define COMBINED_LINE_MAX 4096

struct access_log {
    int fd;
    bool json;
    ritual_timer *timer;
    int64_t stamp_sec;
    char stamp[32]; /* "26/Nov/2026:13:29:55 +0000", "2026-11-26T13:29:55+00:00" */
    size_t stamp_len;
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

struct access_log *access_log_new(ritual_loop *loop, int fd, bool json)
{
    struct access_log *log = malloc(sizeof *log);
    if (!log)
        return NULL;
    log->fd = fd;
    log->json = json;
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

/* ------------------------------------------------------------- reopening */

/* SIGHUP and SIGUSR1, once logrotate has moved the file: each worker first
 * writes what it buffered to the old file, on its own thread; once every
 * worker has, the new file takes the old one's descriptor number (dup3), so
 * that no worker needs to be told of a new descriptor and none ever writes
 * to a closed one. Lines logged before the signal stay in the moved file. */
struct reopen {
    struct http_app *app;
    int new_fd;
    atomic_uint pending; /* workers yet to flush, plus the caller's share */
};

static void reopen_step(struct reopen *r, ritual_loop *loop)
{
    if (atomic_fetch_sub(&r->pending, 1) != 1)
        return;
    if (dup3(r->new_fd, r->app->log_fd, O_CLOEXEC) < 0)
        ritual_log(loop, RITUAL_LOG_ERROR, "--access-log %s: %s (still writing to the old file)",
                   r->app->log_path, strerror(errno));
    else
        ritual_log(loop, RITUAL_LOG_INFO, "reopened the access log %s", r->app->log_path);
    close(r->new_fd);
    atomic_store(&r->app->log_reopening, false);
    free(r);
}

static void reopen_flush(ritual_loop *loop, void *arg)
{
    struct reopen *r = arg;
    struct http_worker *w = http_app_worker(r->app, loop);
    if (w && w->log)
        flush_log(w->log);
    reopen_step(r, loop);
}

int access_log_reopen(struct http_app *app, char *msg, size_t cap)
{
    if (app->log_fd == STDOUT_FILENO) {
        snprintf(msg, cap, "the access log goes to stdout: nothing to reopen");
        return 0;
    }
    if (atomic_exchange(&app->log_reopening, true)) {
        snprintf(msg, cap, "the access log is being reopened already");
        return 0;
    }
    struct reopen *r = malloc(sizeof *r);
    int fd = r ? open(app->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
    if (fd < 0) {
        int e = r ? errno : ENOMEM;
        free(r);
        atomic_store(&app->log_reopening, false);
        snprintf(msg, cap, "--access-log %s: %s (still writing to the old file)", app->log_path,
                 strerror(e));
        return -e;
    }
    r->app = app;
    r->new_fd = fd;
    atomic_init(&r->pending, app->nworkers + 1);
    for (unsigned i = 0; i < app->nworkers; i++)
        if (ritual_loop_post(app->workers[i].loop, reopen_flush, r) < 0)
            reopen_step(r, app->workers[i].loop); /* cannot ask: its lines go to the new file */
    snprintf(msg, cap, "reopening the access log %s", app->log_path);
    reopen_step(r, app->workers[0].loop);
    return 0;
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

/* The combined format's line; `end` leaves room for the '\n'. */
static char *combined_line(char *p, char *end, const ritual_http_log_entry *e,
                           const struct access_log_fields *f)
{
    int n = snprintf(p, (size_t)(end - p), "%.*s - - [%s] \"", (int)f->addr_len, f->addr, f->stamp);
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
        log->stamp_len =
            strftime(log->stamp, sizeof log->stamp,
                     log->json ? "%Y-%m-%dT%H:%M:%S+00:00" : "%d/%b/%Y:%H:%M:%S +0000", &tm);
        log->stamp_sec = e->unix_time;
    }
    if (log->len + ACCESS_LOG_LINE_MAX > LOG_BUFFER)
        flush_log(log);
    struct access_log_fields f = {
        .addr = e->peer, .stamp = log->stamp, .stamp_len = log->stamp_len};
    const char *colon = strrchr(f.addr, ':');
    /* The port goes; a unix-socket peer, "unix:", has none and logs whole,
     * as nginx logs it. */
    f.addr_len = colon && colon[1] ? (size_t)(colon - f.addr) : strlen(f.addr);
    if (f.addr_len >= 2 && f.addr[0] == '[') { /* "[::1]:5555" logs as ::1 */
        f.addr++;
        f.addr_len -= 2;
    }
    char *p = log->buf + log->len;
    if (log->json)
        p = access_log_json_line(p, e, &f);
    else
        p = combined_line(p, p + COMBINED_LINE_MAX - 2, e, &f);
    log->len = (size_t)(p - log->buf);
}
