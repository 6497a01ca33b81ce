/* http_app.h - `ritual http`: what the static file handler, the access log
 * and the command share. One http_worker per loop: the handler finds its
 * own by the loop of the connection, so workers share nothing mutable. */
#ifndef RITUAL_HTTP_APP_H
#define RITUAL_HTTP_APP_H

#include "file_cache.h"
#include "mime.h"
#include "ritual_http.h"

#include <stdbool.h>
#include <stddef.h>

struct access_log;

struct http_worker {
    ritual_loop *loop;
    struct file_cache *cache;
    struct access_log *log; /* NULL: no access log */
};

struct http_app {
    int root_fd;
    const char *index;
    bool autoindex;
    struct mime_table *mime;
    struct http_worker *workers;
    unsigned nworkers;
};

struct http_worker *http_app_worker(struct http_app *app, ritual_loop *loop);

/* files.c: the request handler (ritual_http_handler; data is the app). */
void files_handle(ritual_http_exchange *ex, void *app);

/* access_log.c: a buffered combined-format log per worker, all writing to
 * one fd opened with O_APPEND; flushed every second, when the buffer fills,
 * and by access_log_free. */
struct access_log *access_log_new(ritual_loop *loop, int fd);
void access_log_free(struct access_log *log);
void access_log_write(const ritual_http_log_entry *entry, void *app);

#endif
