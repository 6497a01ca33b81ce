/* http_app.h - `ritual http`: what the static file handler, the access log
 * and the command share. One http_worker per loop: the handler finds its
 * own by the loop of the connection, so workers share nothing mutable. */
#ifndef RITUAL_HTTP_APP_H
#define RITUAL_HTTP_APP_H

#include "file_cache.h"
#include "mime.h"
#include "ritual_http.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* The longest decoded request path the file server looks up. */
#define PATH_MAX_BYTES 4096

struct access_log;
struct listing_cache;

struct http_worker {
    ritual_loop *loop;
    struct http_app *app;
    struct mime_table *mime; /* the worker's reference to the table it uses */
    /* A table SIGHUP loaded, referenced for this worker, until its thread
     * takes it (http.c: mime_take). */
    _Atomic(struct mime_table *) mime_next;
    struct file_cache *cache;
    struct listing_cache *listings; /* NULL without --autoindex */
    struct access_log *log;         /* NULL: no access log */
};

/* --cache-control GLOB=VALUE */
struct header_rule {
    const char *glob;
    const char *value;
};

/* --error-page STATUS=PATH */
struct error_page {
    int status;
    const char *path;
};

struct http_app {
    int root_fd;
    const char *index;
    bool autoindex;
    bool allow_dotfiles;
    const char *fallback; /* --fallback PATH, or NULL */
    const struct header_rule *cache_rules;
    size_t ncache_rules;
    const struct error_page *error_pages;
    size_t nerror_pages;
    struct mime_table *mime;         /* the control thread's reference */
    const char *mime_path;           /* --mime FILE, or NULL */
    ritual_loop *control;            /* the server's control loop, where SIGHUP runs */
    unsigned mime_posts;             /* (control thread) swaps posted, not yet done */
    struct file_cache_options cache; /* max_files set once the workers are known */
    struct http_worker *workers;
    unsigned nworkers;
    int log_fd;           /* -1: no access log; STDOUT_FILENO for "-" */
    const char *log_path; /* reopened by access_log_reopen */
    bool log_json;        /* --access-log-format json */
    _Atomic bool log_reopening;
};

struct http_worker *http_app_worker(struct http_app *app, ritual_loop *loop);

/* files.c: the request handler (ritual_http_handler; data is the app). */
void files_handle(ritual_http_exchange *ex, void *app);
/* What answers a request for a listing (listing_done_fn). */
void files_listing_done(ritual_http_exchange *ex, struct file_entry *listing, int err, void *app);
/* The error statuses the handler answers itself, the ones an --error-page
 * can replace: 400 (a bad path), 403, 404, 405, 412, 414, 416, 500, 503.
 * The HTTP layer's own (400 for a malformed head, 408, 413, 414, 417, 431,
 * 501, 505) are sent before any handler runs. */
#define FILES_ERROR_STATUSES 9
extern const int files_error_statuses[FILES_ERROR_STATUSES];
/* Logs a warning (on `log`) for each --error-page that does not name a
 * readable regular file beneath the root now: not fatal, since a site may
 * be deployed after the server starts. */
void files_check_error_pages(const struct http_app *app, ritual_loop *log);

/* listing.c: directory listings, built once per version of a directory and
 * served as files. listing_request answers `ex` with the listing of the
 * directory open at dir_fd (asked for as `path`) through `done`: at once if
 * it is kept, else once it is built, a slice per loop iteration. `done`
 * gets the listing referenced (drop it with file_entry_unref), or NULL and
 * a negative errno, and `arg`. Returns 0, or a negative errno if `ex` was not taken
 * (-EAGAIN: too many listings are being built). */
typedef void (*listing_done_fn)(ritual_http_exchange *ex, struct file_entry *listing, int err,
                                void *arg);
struct listing_cache *listing_cache_new(ritual_loop *loop, listing_done_fn done, void *arg);
/* After the loop is freed. */
void listing_cache_free(struct listing_cache *cache);
int listing_request(struct listing_cache *cache, ritual_http_exchange *ex, int dir_fd,
                    const char *path, size_t len);

/* access_log.c: a buffered log per worker, in the combined format or in
 * JSON, all writing to one fd opened with O_APPEND; flushed every second,
 * when the buffer fills, and by access_log_free. */
struct access_log *access_log_new(ritual_loop *loop, int fd, bool json);
/* Reopens app->log_path as app->log_fd, from any thread while the workers
 * run: each worker's buffer goes to the old file first. Writes what it did
 * into msg. Returns 0 or a negative errno (the old file stays in use). */
int access_log_reopen(struct http_app *app, char *msg, size_t cap);
void access_log_free(struct access_log *log);
void access_log_write(const ritual_http_log_entry *entry, void *app);

#endif
