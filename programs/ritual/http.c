/* http.c - `ritual http`: a static file server on the library's HTTP layer.
 * This file is the set-up; http_options.c reads the command line, files.c
 * answers requests. */
#include "beneath.h"
#include "cli.h"
#include "commands.h"
#include "http_app.h"
#include "http_options.h"
#include "metrics.h"
#include "ritual_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Opens the root, the MIME table and the log: everything that can fail on
 * the operator's input, before anything listens. */
static int app_open(struct http_cli *cfg, struct http_app *app)
{
    char msg[512];
    app->root_fd = open(cfg->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (app->root_fd < 0)
        return cli_runtime_error("--root %s: %s", cfg->root, strerror(errno));
    /* Before any worker: how files are opened is fixed for the process. */
    open_beneath_init(app->root_fd);
    app->mime = mime_table_new(cfg->mime, msg, sizeof msg);
    if (!app->mime)
        return cli_runtime_error("%s", msg);
    app->mime_path = cfg->mime;
    app->index = cfg->index;
    app->autoindex = cfg->autoindex;
    app->allow_dotfiles = cfg->allow_dotfiles;
    app->fallback = cfg->fallback;
    app->cache_rules = cfg->cache_rules;
    app->ncache_rules = cfg->ncache_rules;
    app->error_pages = cfg->error_pages;
    app->nerror_pages = cfg->nerror_pages;
    app->cache = cfg->cache;
    app->log_path = cfg->access_log;
    app->log_json = cfg->access_log_json;
    if (cfg->access_log) {
        if (strcmp(cfg->access_log, "-") == 0)
            app->log_fd = STDOUT_FILENO;
        else
            app->log_fd = open(cfg->access_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (app->log_fd < 0)
            return cli_runtime_error("--access-log %s: %s", cfg->access_log, strerror(errno));
    }
    return 0;
}

static int reopen_log(void *app, char *msg, size_t cap)
{
    return access_log_reopen(app, msg, cap);
}

/* The control thread: a worker has done a swap. Once none is left to do,
 * every worker uses the last table loaded, and the log says so (what a
 * test, or an operator, waits for). */
static void mime_taken(ritual_loop *control, void *arg)
{
    (void)control;
    struct http_app *app = arg;
    if (--app->mime_posts == 0)
        ritual_log(app->workers[0].loop, RITUAL_LOG_INFO,
                   "MIME types from %s in use by every worker", app->mime_path);
}

/* A worker's thread: the table SIGHUP loaded replaces the one it used,
 * which goes once no thread holds it. */
static void mime_take(ritual_loop *loop, void *arg)
{
    (void)loop;
    struct http_worker *w = arg;
    struct mime_table *t = atomic_exchange(&w->mime_next, NULL);
    if (t) { /* else a later post took it already */
        file_cache_set_mime(w->cache, t);
        mime_table_free(w->mime);
        w->mime = t;
    }
    if (ritual_loop_post(w->app->control, mime_taken, w->app) < 0)
        ritual_log(loop, RITUAL_LOG_WARN, "MIME types: cannot tell the control loop");
}

/* SIGHUP, on the control thread: the --mime file read again. A table that
 * fails to load changes nothing; one that loads goes to every worker, each
 * swapping it in on its own thread. */
static int reload_mime(void *arg, char *msg, size_t cap)
{
    struct http_app *app = arg;
    char why[400];
    struct mime_table *t = mime_table_new(app->mime_path, why, sizeof why);
    if (!t) {
        snprintf(msg, cap, "MIME types kept: %s", why);
        return -EINVAL;
    }
    for (unsigned i = 0; i < app->nworkers; i++) {
        struct http_worker *w = &app->workers[i];
        /* A table posted before and not taken yet is superseded. */
        mime_table_free(atomic_exchange(&w->mime_next, mime_table_ref(t)));
        if (ritual_loop_post(w->loop, mime_take, w) < 0)
            mime_table_free(atomic_exchange(&w->mime_next, NULL)); /* shutting down */
        else
            app->mime_posts++;
    }
    mime_table_free(app->mime);
    app->mime = t;
    snprintf(msg, cap, "MIME types reloaded from %s", app->mime_path);
    return 0;
}

static void app_close(struct http_app *app)
{
    for (unsigned i = 0; app->workers && i < app->nworkers; i++) {
        mime_table_free(app->workers[i].mime);
        mime_table_free(atomic_exchange(&app->workers[i].mime_next, NULL));
        file_cache_free(app->workers[i].cache);
        listing_cache_free(app->workers[i].listings);
        access_log_free(app->workers[i].log);
    }
    free(app->workers);
    mime_table_free(app->mime);
    if (app->root_fd >= 0)
        close(app->root_fd);
    if (app->log_fd > STDOUT_FILENO)
        close(app->log_fd);
}

/* A worker's accept is out of descriptors: its idle cached files go
 * first, rather than new connections waiting in the backlog. */
static size_t shed_cache(ritual_loop *loop, void *arg)
{
    struct http_worker *w = arg;
    size_t closed = file_cache_shed(w->cache);
    ritual_log(loop, RITUAL_LOG_DEBUG, "accept: out of descriptors: %zu cached files closed",
               closed);
    return closed;
}

static int app_workers(struct http_app *app, ritual_server *server)
{
    app->nworkers = ritual_server_workers(server);
    app->control = ritual_server_control_loop(server);
    app->workers = calloc(app->nworkers, sizeof *app->workers);
    if (!app->workers)
        return cli_runtime_error("out of memory");
    /* Raised first, so that the cache's share is of what the process has. */
    rlim_t nofile = cli_raise_nofile(ritual_server_loop(server, 0));
    app->cache.max_files = file_cache_max_files(nofile, app->nworkers);
    for (unsigned i = 0; i < app->nworkers; i++) {
        struct http_worker *w = &app->workers[i];
        w->loop = ritual_server_loop(server, i);
        w->app = app;
        w->mime = mime_table_ref(app->mime);
        w->cache = file_cache_new(w->loop, app->root_fd, w->mime, app->index, &app->cache);
        if (app->autoindex)
            w->listings = listing_cache_new(w->loop, files_listing_done, app);
        if (!w->cache || (app->autoindex && !w->listings))
            return cli_runtime_error("out of memory");
        ritual_loop_on_fds_short(w->loop, shed_cache, w);
        if (app->log_fd >= 0 && !(w->log = access_log_new(w->loop, app->log_fd, app->log_json)))
            return cli_runtime_error("out of memory");
    }
    return 0;
}

int http_main(int argc, char **argv)
{
    struct http_cli cfg = {
        .index = "index.html",
        .cache = {.valid_ms = 1000,
                  .inactive_ms = 60 * 1000,
                  .precompressed = {{CODING_BR, CODING_ZSTD, CODING_GZIP}, 3}},
        .common.drain_ms = 10 * 1000,
        .common.server.loop.log_level = RITUAL_LOG_INFO,
        .common.server.notify = 1, /* systemd's Type=notify, when $NOTIFY_SOCKET is set */
    };
    int rc = http_parse_args(argc, argv, &cfg);
    if (rc != 0)
        return rc < 0 ? EXIT_OK : rc;

    struct http_app app = {.root_fd = -1, .log_fd = -1};
    ritual_server *server = NULL;
    rc = app_open(&cfg, &app);
    ritual_tls *tls = NULL;
    if (rc == 0)
        /* The handshake counts against the header timeout, as in nginx. */
        tls = cli_tls_load(&cfg.common.tls, "http/1.1", cfg.http.header_timeout_ms, &rc);
    ritual_error err;
    if (rc == 0 && !(server = ritual_server_new(&cfg.common.server, &err)))
        rc = cli_runtime_error("%s", err.message);
    if (rc == 0)
        rc = app_workers(&app, server);
    int why = open_beneath_fallback();
    if (rc == 0 && why != 0)
        ritual_log(
            ritual_server_loop(server, 0), RITUAL_LOG_INFO,
            "%s%s: paths resolved beneath the root one component at a time",
            why > 0 ? "RITUAL_HTTP_NO_OPENAT2 set" : "openat2: ", why > 0 ? "" : strerror(-why));
    if (rc == 0)
        files_check_error_pages(&app, ritual_server_loop(server, 0));
    struct cli_signals signals = {.server = server,
                                  .drain_ms = cfg.common.drain_ms,
                                  .reopen = app.log_fd >= 0 ? reopen_log : NULL,
                                  .reopen_arg = &app,
                                  .tls = tls,
                                  .reload = app.mime_path ? reload_mime : NULL,
                                  .reload_arg = &app};
    if (rc == 0)
        rc = cli_signals_watch(&signals);
    ritual_listener *listeners[CLI_LISTEN_MAX];
    if (rc == 0) {
        /* --max-conns is for the whole server */
        cfg.http.max_conns = cli_per_worker(cfg.http.max_conns, server);
        cfg.http.handler = files_handle;
        cfg.http.data = &app;
        /* Only GET and HEAD are answered: a body is dropped as it arrives,
         * never kept. Up to 1 MiB, nginx's client_max_body_size, which it
         * applies to the bodies it discards too; more is 413 at once. */
        cfg.http.body_mode = RITUAL_HTTP_BODY_DISCARD;
        cfg.http.max_body = 1u << 20;
        if (app.log_fd >= 0)
            cfg.http.log = access_log_write;
        cfg.http.tls = tls;
        cfg.http.extra_headers = cfg.headers;
        cfg.http.unix_mode = cfg.listen.socket_mode;
        cfg.http.unix_owner = cfg.listen.socket_owner;
    }
    for (int i = 0; rc == 0 && i < cfg.listen.n; i++) {
        listeners[i] = ritual_http_server_listen(server, cfg.listen.address[i], &cfg.http, &err);
        if (!listeners[i])
            rc = cli_runtime_error("%s", err.message);
    }
    ritual_listener *metrics = NULL;
    if (rc == 0 && cfg.metrics_listen &&
        !(metrics = metrics_listen(server, cfg.metrics_listen, true, &err)))
        rc = cli_runtime_error("--metrics-listen %s: %s", cfg.metrics_listen, err.message);
    /* Everything is bound and open (root, log, keys, MIME table): no more
     * need of root. */
    if (rc == 0)
        rc = cli_drop_privileges(&cfg.listen, server);
    if (rc == 0) {
        cli_tls_log(server, &cfg.common.tls);
        rc = cli_serve(server, listeners, cfg.listen.n, metrics);
    }
    ritual_server_free(server);
    ritual_tls_free(tls);
    app_close(&app);
    return rc;
}
