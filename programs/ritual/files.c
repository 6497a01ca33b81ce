/* files.c - the static file handler of `ritual http`: GET and HEAD of files
 * under the root, directories by their index file (or a listing), and the
 * conditional and range requests that caches and download tools send. */
#include "http_app.h"
#include "http_path.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define PATH_MAX_BYTES 4096

struct http_worker *http_app_worker(struct http_app *app, ritual_loop *loop)
{
    for (unsigned i = 0; i < app->nworkers; i++)
        if (app->workers[i].loop == loop)
            return &app->workers[i];
    return NULL;
}

static const ritual_http_header *find(const ritual_http_request *req, const char *name)
{
    return ritual_http_find_header(req->headers, req->num_headers, name);
}

/* ------------------------------------------------------------ conditions */

/* If-None-Match: "*" or a list of entity tags, compared weakly (W/ ignored);
 * If-Match compares strongly: a weak tag never matches. */
static bool etag_matches(const ritual_http_header *h, const struct file_entry *e, bool strong)
{
    const char *p = h->value, *end = h->value + h->value_len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p < end && *p == '*')
            return true;
        bool weak = end - p >= 2 && p[0] == 'W' && p[1] == '/';
        if (weak)
            p += 2;
        const char *tag = p;
        if (p < end && *p == '"') {
            const char *close = memchr(p + 1, '"', (size_t)(end - p - 1));
            p = close ? close + 1 : end;
        } else {
            while (p < end && *p != ',')
                p++;
        }
        if ((size_t)(p - tag) == e->etag_len && memcmp(tag, e->etag, e->etag_len) == 0 &&
            !(weak && strong))
            return true;
    }
    return false;
}

/* If-Match and If-Unmodified-Since (RFC 9110 13.2.2, steps 1 and 2). */
static bool precondition_failed(const ritual_http_request *req, const struct file_entry *e)
{
    const ritual_http_header *im = find(req, "If-Match");
    if (im)
        return !etag_matches(im, e, true);
    const ritual_http_header *ius = find(req, "If-Unmodified-Since");
    int64_t since;
    return ius && ritual_http_parse_date(ius->value, ius->value_len, &since) == 0 &&
           e->mtime > since;
}

static bool not_modified(const ritual_http_request *req, const struct file_entry *e)
{
    const ritual_http_header *inm = find(req, "If-None-Match");
    if (inm)
        return etag_matches(inm, e, false); /* If-Modified-Since is then ignored (13.1.3) */
    const ritual_http_header *ims = find(req, "If-Modified-Since");
    int64_t since;
    return ims && ritual_http_parse_date(ims->value, ims->value_len, &since) == 0 &&
           e->mtime <= since;
}

/* ---------------------------------------------------------------- ranges */

enum range_result { RANGE_NONE, RANGE_ONE, RANGE_UNSATISFIABLE };

/* Digits into *out, refusing anything past 2^62: no arithmetic below can
 * overflow (the mistake behind nginx's CVE-2017-7529). */
static const char *parse_offset(const char *p, const char *end, uint64_t *out)
{
    if (p == end || *p < '0' || *p > '9')
        return NULL;
    uint64_t v = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (v > ((uint64_t)1 << 62) / 10)
            return NULL;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return p;
}

/* "bytes=first-last", "bytes=first-" or "bytes=-suffix". Several ranges are
 * answered with the whole file (200), which RFC 9110 allows; so is a
 * header we cannot read. */
static enum range_result parse_range(const ritual_http_header *h, uint64_t size, uint64_t *first,
                                     uint64_t *last)
{
    const char *p = h->value, *end = h->value + h->value_len;
    if (end - p < 6 || strncasecmp(p, "bytes=", 6) != 0)
        return RANGE_NONE;
    p += 6;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (memchr(p, ',', (size_t)(end - p)))
        return RANGE_NONE;
    uint64_t a = 0, b = 0;
    bool suffix = p < end && *p == '-';
    if (suffix) {
        if (!(p = parse_offset(p + 1, end, &b)))
            return RANGE_NONE;
    } else {
        if (!(p = parse_offset(p, end, &a)) || p == end || *p != '-')
            return RANGE_NONE;
        p++;
        b = UINT64_MAX;
        if (p < end && !(p = parse_offset(p, end, &b)))
            return RANGE_NONE;
        if (b < a)
            return RANGE_NONE;
    }
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p != end)
        return RANGE_NONE;
    if (suffix) {
        if (b == 0 || size == 0)
            return RANGE_UNSATISFIABLE;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return RANGE_ONE;
    }
    if (a >= size)
        return RANGE_UNSATISFIABLE;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return RANGE_ONE;
}

/* If-Range: the range applies only if the validator still matches. */
static bool if_range_allows(const ritual_http_request *req, const struct file_entry *e)
{
    const ritual_http_header *h = find(req, "If-Range");
    if (!h)
        return true;
    if (h->value_len > 0 && h->value[0] == '"') /* strong comparison */
        return h->value_len == e->etag_len && memcmp(h->value, e->etag, e->etag_len) == 0;
    int64_t when;
    return ritual_http_parse_date(h->value, h->value_len, &when) == 0 && when == e->mtime;
}

/* ------------------------------------------------------------- answering */

static void send_body(ritual_http_exchange *ex, int status, const ritual_http_header *headers,
                      size_t n, struct file_entry *e, uint64_t first, uint64_t len)
{
    e->refs++; /* until the bytes or the descriptor are no longer needed */
    if (e->body) {
        ritual_http_respond_ref(ex, status, headers, n, e->body + first, (size_t)len,
                                file_entry_release, e);
        return;
    }
    ritual_http_respond_file(ex, status, headers, n, e->fd, first, len, file_entry_release, e);
}

static void serve(ritual_http_exchange *ex, struct file_entry *e)
{
    const ritual_http_request *req = ritual_http_exchange_request(ex);
    ritual_http_header headers[2] = {{NULL, 0, e->head, e->head_len}};
    if (precondition_failed(req, e)) {
        ritual_http_respond_error(ex, 412, 0);
        return;
    }
    if (not_modified(req, e)) {
        ritual_http_respond(ex, 304, headers, 1, NULL, 0);
        return;
    }
    const ritual_http_header *range = find(req, "Range");
    uint64_t first = 0, last = 0;
    enum range_result r = RANGE_NONE;
    if (range && if_range_allows(req, e))
        r = parse_range(range, e->size, &first, &last);
    char content_range[80];
    if (r == RANGE_UNSATISFIABLE) {
        int n = snprintf(content_range, sizeof content_range, "bytes */%llu",
                         (unsigned long long)e->size);
        headers[1] = (ritual_http_header){"Content-Range", 13, content_range, (size_t)n};
        static const char body[] = "416 Range Not Satisfiable\n";
        ritual_http_respond(ex, 416, headers, 2, body, sizeof body - 1);
        return;
    }
    if (r == RANGE_ONE) {
        int n = snprintf(content_range, sizeof content_range, "bytes %llu-%llu/%llu",
                         (unsigned long long)first, (unsigned long long)last,
                         (unsigned long long)e->size);
        headers[1] = (ritual_http_header){"Content-Range", 13, content_range, (size_t)n};
        send_body(ex, 206, headers, 2, e, first, last - first + 1);
        return;
    }
    send_body(ex, 200, headers, 1, e, 0, e->size);
}

static void redirect_to_slash(ritual_http_exchange *ex, const char *path, size_t len,
                              const char *query, size_t query_len)
{
    char location[PATH_MAX_BYTES * 3 + 8];
    long n = http_path_encode(path, len, location, sizeof location - query_len - 2);
    if (n < 0 || (size_t)n + 1 + query_len >= sizeof location) {
        ritual_http_respond_error(ex, 414, 0);
        return;
    }
    location[n++] = '/';
    memcpy(location + n, query, query_len);
    n += (long)query_len;
    ritual_http_header h[2] = {
        {"Location", 8, location, (size_t)n},
        RITUAL_HTTP_HEADER("Content-Type", "text/plain; charset=utf-8"),
    };
    static const char body[] = "301 Moved Permanently\n";
    ritual_http_respond(ex, 301, h, 2, body, sizeof body - 1);
}

static void respond_errno(ritual_http_exchange *ex, int err)
{
    switch (err) {
    case -ENOENT:
    case -ENOTDIR:
    case -ENAMETOOLONG:
        ritual_http_respond_error(ex, 404, 0);
        break;
    case -EACCES:
    case -EPERM:
    case -EXDEV: /* a symlink out of the root */
    case -ELOOP:
        ritual_http_respond_error(ex, 403, 0);
        break;
    case -EMFILE:
    case -ENFILE:
    case -ENOMEM:
    case -EAGAIN:
        ritual_http_respond_error(ex, 503, 0);
        break;
    default:
        ritual_http_respond_error(ex, 500, 0);
    }
}

void files_listing_done(ritual_http_exchange *ex, struct file_entry *listing, int err)
{
    if (err < 0) {
        respond_errno(ex, err);
        return;
    }
    serve(ex, listing);
    file_entry_unref(listing);
}

void files_handle(ritual_http_exchange *ex, void *data)
{
    struct http_app *app = data;
    const ritual_http_request *req = ritual_http_exchange_request(ex);
    bool get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
    bool head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
    if (!get && !head) {
        static const ritual_http_header allow[] = {
            RITUAL_HTTP_HEADER("Allow", "GET, HEAD"),
            RITUAL_HTTP_HEADER("Content-Type", "text/plain; charset=utf-8"),
        };
        static const char body[] = "405 Method Not Allowed\n";
        ritual_http_respond(ex, 405, allow, 2, body, sizeof body - 1);
        return;
    }
    char path[PATH_MAX_BYTES];
    const char *query;
    size_t query_len;
    long len =
        http_path_decode(req->target, req->target_len, path, sizeof path, &query, &query_len);
    if (len < 0) {
        /* -2: longer than any path that could be opened */
        ritual_http_respond_error(ex, len == -2 ? 414 : 400, 0);
        return;
    }
    ritual_loop *loop = ritual_conn_loop(ritual_http_exchange_conn(ex));
    struct http_worker *w = http_app_worker(app, loop);
    struct file_entry *e;
    int dir_fd = -1;
    int rc = file_cache_get(w->cache, path, (size_t)len, ritual_loop_now(loop), &e, &dir_fd);
    if (rc == -EISDIR) {
        if (dir_fd < 0)
            redirect_to_slash(ex, path, (size_t)len, query, query_len);
        else if (!app->autoindex)
            ritual_http_respond_error(ex, 403, 0);
        else if ((rc = listing_request(w->listings, ex, dir_fd, path, (size_t)len)) < 0)
            respond_errno(ex, rc);
        if (dir_fd >= 0)
            close(dir_fd);
        return;
    }
    if (rc < 0) {
        respond_errno(ex, rc);
        return;
    }
    serve(ex, file_entry_for(w->cache, e, req)); /* or its precompressed sibling */
    file_entry_unref(e);
}
