/* files.c - the static file handler of `ritual http`: GET and HEAD of files
 * under the root, directories by their index file (or a listing), and the
 * conditional and range requests that caches and download tools send. */
#include "conditional.h"
#include "http_app.h"
#include "http_path.h"
#include "multipart.h"
#include "ranges.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct http_worker *http_app_worker(struct http_app *app, ritual_loop *loop)
{
    for (unsigned i = 0; i < app->nworkers; i++)
        if (app->workers[i].loop == loop)
            return &app->workers[i];
    return NULL;
}

static struct http_worker *worker_of(ritual_http_exchange *ex, struct http_app *app)
{
    return http_app_worker(app, ritual_conn_loop(ritual_http_exchange_conn(ex)));
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

/* The entry's head is its Content-Type line and then its validators; a
 * multipart answer and an error page send them apart. */
static void split_head(const struct file_entry *e, ritual_http_header *type,
                       ritual_http_header *rest)
{
    static const char prefix[] = "Content-Type: ";
    const char *eol = memchr(e->head, '\r', e->head_len);
    *type = (ritual_http_header){"Content-Type", 12, "application/octet-stream", 24};
    *rest = (ritual_http_header){NULL, 0, e->head, e->head_len};
    if (eol && e->head_len > sizeof prefix && memcmp(e->head, prefix, sizeof prefix - 1) == 0) {
        type->value = e->head + sizeof prefix - 1;
        type->value_len = (size_t)(eol - type->value);
        rest->value = eol + 2;
        rest->value_len = e->head_len - (size_t)(rest->value - e->head);
    }
}

/* The Cache-Control of the first --cache-control rule that matches the
 * path (a glob without '/' is matched against the last segment; a path
 * ending in '/' as its index file), or NULL. */
static const char *cache_control(const struct http_app *app, const char *path, size_t len)
{
    if (app->ncache_rules == 0)
        return NULL;
    char name[PATH_MAX_BYTES + 256];
    if (len > 0 && path[len - 1] == '/') {
        if ((size_t)snprintf(name, sizeof name, "%.*s%s", (int)len, path, app->index) >=
            sizeof name)
            return NULL;
        path = name;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (size_t i = 0; i < app->ncache_rules; i++) {
        const struct header_rule *r = &app->cache_rules[i];
        if (fnmatch(r->glob, strchr(r->glob, '/') ? path : base, FNM_PERIOD) == 0)
            return r->value;
    }
    return NULL;
}

static size_t add_cache_control(const struct http_app *app, const char *path, size_t len,
                                ritual_http_header *h)
{
    const char *value = cache_control(app, path, len);
    if (!value)
        return 0;
    *h = (ritual_http_header){"Cache-Control", 13, value, strlen(value)};
    return 1;
}

static bool is_method(const ritual_http_request *req, const char *name)
{
    size_t len = strlen(name);
    return req->method_len == len && memcmp(req->method, name, len) == 0;
}

/* The one Range header of a GET; two or more mean no range. */
static const ritual_http_header *range_header(const ritual_http_request *req)
{
    if (!is_method(req, "GET"))
        return NULL; /* HEAD answers as the GET without Range would */
    const ritual_http_header *end = req->headers + req->num_headers;
    const ritual_http_header *h = ritual_http_find_header(req->headers, req->num_headers, "Range");
    if (h && ritual_http_find_header(h + 1, (size_t)(end - h - 1), "Range"))
        return NULL;
    return h;
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

static int errno_status(int err)
{
    switch (err) {
    case -ENOENT:
    case -ENOTDIR:
    case -ENAMETOOLONG:
        return 404;
    case -EACCES:
    case -EPERM:
    case -EXDEV: /* a symlink out of the root */
    case -ELOOP:
        return 403;
    case -EMFILE:
    case -ENFILE:
    case -ENOMEM:
    case -EAGAIN:
        return 503;
    default:
        return 500;
    }
}

static struct file_entry *lookup(ritual_http_exchange *ex, struct http_app *app, const char *path,
                                 size_t len, int *rc, int *dir_fd)
{
    ritual_loop *loop = ritual_conn_loop(ritual_http_exchange_conn(ex));
    struct file_entry *e = NULL;
    *rc = file_cache_get(worker_of(ex, app)->cache, path, len, ritual_loop_now(loop), &e, dir_fd);
    return *rc == 0 ? e : NULL;
}

const int files_error_statuses[FILES_ERROR_STATUSES] = {400, 403, 404, 405, 412,
                                                        414, 416, 500, 503};

#define ERROR_EXTRA_MAX 3

/* An error answer with the lines `extra` (Allow, Content-Range, Vary; at
 * most ERROR_EXTRA_MAX): the --error-page for its status if there is one and it can be
 * read (sent with the error's status and the page's type, as nginx's
 * error_page does), else a short text. */
static void respond_status(ritual_http_exchange *ex, struct http_app *app, int status,
                           const ritual_http_header *extra, size_t nextra)
{
    const char *page = NULL;
    for (size_t i = 0; i < app->nerror_pages; i++)
        if (app->error_pages[i].status == status)
            page = app->error_pages[i].path;
    int rc, dir_fd = -1;
    struct file_entry *e = page ? lookup(ex, app, page, strlen(page), &rc, &dir_fd) : NULL;
    if (dir_fd >= 0)
        close(dir_fd);
    ritual_http_header h[1 + ERROR_EXTRA_MAX], rest;
    assert(nextra <= ERROR_EXTRA_MAX);
    if (e) {
        split_head(e, &h[0], &rest);
        for (size_t i = 0; i < nextra; i++)
            h[1 + i] = extra[i];
        send_body(ex, status, h, 1 + nextra, e, 0, e->size);
        file_entry_unref(e);
        return;
    }
    if (nextra == 0) {
        ritual_http_respond_error(ex, status, 0);
        return;
    }
    char body[64];
    int len = snprintf(body, sizeof body, "%d %s\n", status, ritual_http_reason(status));
    for (size_t i = 0; i < nextra; i++)
        h[i] = extra[i];
    h[nextra] = RITUAL_HTTP_HEADER("Content-Type", "text/plain; charset=utf-8");
    ritual_http_respond(ex, status, h, nextra + 1, body, (size_t)len);
}

static const ritual_http_header vary_header = RITUAL_HTTP_HEADER("Vary", "Accept-Encoding");

/* The head of a 304: what a cache refreshes its stored answer with (the
 * validators, Vary; Cache-Control is added by the caller), without the
 * representation's Content-Type, Content-Encoding and Accept-Ranges, which
 * RFC 9110 15.4.5 says not to send and nginx's not_modified filter removes.
 * The entry's head is Content-Type, then Content-Encoding where there is
 * one, ..., Accept-Ranges last (file_cache.c); a line not where it is
 * expected is kept, never cut short. */
static ritual_http_header not_modified_head(const struct file_entry *e)
{
    static const char encoding[] = "Content-Encoding: ";
    static const char ranges[] = "Accept-Ranges: bytes\r\n";
    ritual_http_header type, rest;
    split_head(e, &type, &rest);
    const char *eol = memchr(rest.value, '\n', rest.value_len);
    if (eol && rest.value_len > sizeof encoding &&
        memcmp(rest.value, encoding, sizeof encoding - 1) == 0) {
        rest.value_len -= (size_t)(eol + 1 - rest.value);
        rest.value = eol + 1;
    }
    size_t n = sizeof ranges - 1;
    if (rest.value_len > n && memcmp(rest.value + rest.value_len - n, ranges, n) == 0)
        rest.value_len -= n;
    return rest;
}

/* 416 with the size the ranges were checked against (the sibling's, when
 * one was chosen: hence Vary). */
static void respond_unsatisfiable(ritual_http_exchange *ex, struct http_app *app,
                                  const struct file_entry *e, bool varies)
{
    char content_range[48];
    int n =
        snprintf(content_range, sizeof content_range, "bytes */%llu", (unsigned long long)e->size);
    ritual_http_header h[2] = {{"Content-Range", 13, content_range, (size_t)n}, vary_header};
    respond_status(ex, app, 416, h, varies ? 2 : 1);
}

/* Answers with the file of `e` (asked for as `path`), honouring the
 * request's conditions and ranges. */
static void serve(ritual_http_exchange *ex, struct http_app *app, struct file_entry *e,
                  const char *path, size_t path_len)
{
    const ritual_http_request *req = ritual_http_exchange_request(ex);
    const ritual_http_header *range = range_header(req);
    /* A file with siblings: Accept-Encoding chose what follows, whatever
     * the answer (200, 206, 304, 412, 416), so each says Vary. The chosen
     * bytes are the representation: ranges, one or several, are of them,
     * and a multipart answer's parts are ranges of the encoded bytes with
     * Content-Encoding on the whole (RFC 9110 8.4, 14.6). */
    bool varies = e->codings != 0;
    e = file_entry_for(worker_of(ex, app)->cache, e, req);
    ritual_http_header headers[4] = {{NULL, 0, e->head, e->head_len}};
    size_t n = 1 + add_cache_control(app, path, path_len, &headers[1]);
    if (conditional_failed(req, e)) {
        respond_status(ex, app, 412, &vary_header, varies ? 1 : 0);
        return;
    }
    if (conditional_not_modified(req, e)) {
        headers[0] = not_modified_head(e);
        ritual_http_respond(ex, 304, headers, n, NULL, 0);
        return;
    }
    struct byte_range r[RANGES_MAX];
    size_t count = 0;
    enum range_result result = RANGE_NONE;
    if (range && conditional_range_allowed(req, e))
        result = ranges_parse(range->value, range->value_len, e->size, r, &count);
    if (result == RANGE_UNSATISFIABLE) {
        respond_unsatisfiable(ex, app, e, varies);
        return;
    }
    if (result == RANGE_SATISFIABLE && count > 1) {
        ritual_http_header type;
        split_head(e, &type, &headers[0]);
        ritual_loop *loop = ritual_conn_loop(ritual_http_exchange_conn(ex));
        uint64_t seed = ritual_loop_now(loop) ^ ((uint64_t)(uintptr_t)ex << 16) ^ e->size;
        if (multipart_respond(ex, e, type.value, type.value_len, headers, n, r, count, seed) == 0)
            return;
        headers[0] = (ritual_http_header){NULL, 0, e->head, e->head_len};
        result = RANGE_NONE; /* too large to build: the whole file instead */
    }
    if (result == RANGE_SATISFIABLE) {
        char content_range[80];
        int len = snprintf(content_range, sizeof content_range, "bytes %llu-%llu/%llu",
                           (unsigned long long)r[0].first, (unsigned long long)r[0].last,
                           (unsigned long long)e->size);
        headers[n++] = (ritual_http_header){"Content-Range", 13, content_range, (size_t)len};
        send_body(ex, 206, headers, n, e, r[0].first, r[0].last - r[0].first + 1);
        return;
    }
    send_body(ex, 200, headers, n, e, 0, e->size);
}

void files_listing_done(ritual_http_exchange *ex, struct file_entry *listing, int err, void *app)
{
    if (!ritual_http_exchange_conn(ex)) {
        /* The client left while the listing was built: this ends the
         * exchange (-EPIPE); there is no worker to find by its loop. */
        ritual_http_respond_error(ex, 503, 0);
        if (listing)
            file_entry_unref(listing);
        return;
    }
    if (err < 0) {
        respond_status(ex, app, errno_status(err), NULL, 0);
        return;
    }
    serve(ex, app, listing, listing->path, listing->path_len);
    file_entry_unref(listing);
}

/* A directory asked for: its listing, a redirect to its name with a
 * slash, or 403. Takes dir_fd. */
static void serve_directory(ritual_http_exchange *ex, struct http_app *app, const char *path,
                            size_t len, const char *query, size_t query_len, int dir_fd)
{
    int rc;
    if (dir_fd < 0)
        redirect_to_slash(ex, path, len, query, query_len);
    else if (!app->autoindex)
        respond_status(ex, app, 403, NULL, 0);
    else if ((rc = listing_request(worker_of(ex, app)->listings, ex, dir_fd, path, len)) < 0)
        respond_status(ex, app, errno_status(rc), NULL, 0);
    if (dir_fd >= 0)
        close(dir_fd);
}

void files_handle(ritual_http_exchange *ex, void *data)
{
    struct http_app *app = data;
    const ritual_http_request *req = ritual_http_exchange_request(ex);
    if (!is_method(req, "GET") && !is_method(req, "HEAD")) {
        static const ritual_http_header allow = RITUAL_HTTP_HEADER("Allow", "GET, HEAD");
        respond_status(ex, app, 405, &allow, 1);
        return;
    }
    char path[PATH_MAX_BYTES];
    const char *query;
    size_t query_len;
    long len =
        http_path_decode(req->target, req->target_len, path, sizeof path, &query, &query_len);
    if (len < 0) {
        /* -2: longer than any path that could be opened */
        respond_status(ex, app, len == -2 ? 414 : 400, NULL, 0);
        return;
    }
    if (!app->allow_dotfiles && http_path_is_hidden(path, (size_t)len)) {
        respond_status(ex, app, 404, NULL, 0);
        return;
    }
    int rc, dir_fd = -1;
    struct file_entry *e = lookup(ex, app, path, (size_t)len, &rc, &dir_fd);
    if (rc == -EISDIR) {
        serve_directory(ex, app, path, (size_t)len, query, query_len, dir_fd);
        return;
    }
    if ((rc == -ENOENT || rc == -ENOTDIR) && app->fallback) {
        /* a single-page app's routes: its index answers them (try_files) */
        e = lookup(ex, app, app->fallback, strlen(app->fallback), &rc, &dir_fd);
        if (dir_fd >= 0)
            close(dir_fd);
        if (rc == -EISDIR)
            rc = -ENOENT;
        if (e) {
            serve(ex, app, e, app->fallback, strlen(app->fallback));
            file_entry_unref(e);
            return;
        }
    }
    if (!e) {
        respond_status(ex, app, errno_status(rc), NULL, 0);
        return;
    }
    serve(ex, app, e, path, (size_t)len);
    file_entry_unref(e);
}
