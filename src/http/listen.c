/* listen.c - HTTP listeners: the configuration a listener's loops share
 * (the options with their defaults filled in, reference-counted) and a
 * site per loop (its connections, free list, header timer, Date cache),
 * freed with its loop. */
#include "http_internal.h"
#include "parser.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void config_unref(struct http_config *cfg)
{
    if (--cfg->refs > 0)
        return;
    free((char *)cfg->opts.server_name);
    free((char *)cfg->opts.extra_headers);
    free(cfg->sites);
    free(cfg);
}

static void site_free(void *arg)
{
    struct http_site *site = arg;
    while (!ritual_list_empty(&site->all_conns)) {
        struct http_conn *hc = ritual_container_of(site->all_conns.next, struct http_conn, all);
        ritual__http_owned_free(hc);
        ritual_list_del(&hc->all);
        free(hc);
    }
    while (site->free_conns) {
        struct http_conn *next = site->free_conns->next_free;
        free(site->free_conns);
        site->free_conns = next;
    }
    ritual_timer_free(site->header_timer);
    ritual_timer_free(site->body_timer);
    free(site->headers);
    free(site->common);
    ritual__http_stage_drop(site);
    free(site->stage);
    free(site->pieces);
    config_unref(site->config);
    free(site);
}

static struct http_site *site_new(struct http_config *cfg, ritual_loop *loop, ritual_error *err)
{
    struct http_site *site = calloc(1, sizeof *site);
    if (site) {
        site->config = cfg;
        site->opts = &cfg->opts;
        site->loop = loop;
        site->stats = ritual__http_stats_of(loop); /* before site_free's hook: freed after it */
        site->date_sec = -1;
        ritual_list_init(&site->waiting);
        ritual_list_init(&site->body_waiting);
        ritual_list_init(&site->all_conns);
        site->headers = calloc(cfg->opts.max_headers, sizeof *site->headers);
        site->header_timer = ritual_timer_new(loop, ritual__http_header_timer_fired, site);
        site->body_timer = ritual_timer_new(loop, ritual__http_body_timer_fired, site);
        /* Date and Server lines (the name is cut at 64), then the extras. */
        const char *extra = cfg->opts.extra_headers;
        site->common_cap = 128 + (extra ? strlen(extra) : 0);
        site->common = malloc(site->common_cap);
    }
    if (!site || !site->stats || !site->headers || !site->header_timer || !site->body_timer ||
        !site->common || ritual_loop_on_free(loop, site_free, site) < 0) {
        if (site) {
            ritual_timer_free(site->header_timer);
            ritual_timer_free(site->body_timer);
            free(site->headers);
            free(site->common);
            free(site);
        }
        ritual_error_set(err, -ENOMEM, "http: out of memory");
        return NULL;
    }
    cfg->refs++;
    ritual__http_date_refresh(site);
    return site;
}

/* extra_headers: whole lines "name: value" CRLF, the name a token (not
 * Content-Length, Transfer-Encoding or Connection), the value of field
 * characters (HTAB, SP, visible, obs-text). Returns 0 or
 * -EINVAL with `err` saying which line is wrong. */
static int check_extra_headers(const char *text, ritual_error *err)
{
    for (unsigned line = 1; *text; line++) {
        const char *p = text;
        while (http_is(*p, RITUAL__HTTP_TCHAR))
            p++;
        size_t name_len = (size_t)(p - text);
        bool ok = p > text && *p == ':';
        /* Headers the layer writes itself: a second copy contradicts it
         * (two framings of one body, a keep-alive the layer does not keep). */
        if ((name_len == 14 && http_lower_equals(text, 14, "content-length")) ||
            (name_len == 17 && http_lower_equals(text, 17, "transfer-encoding")) ||
            (name_len == 10 && http_lower_equals(text, 10, "connection")))
            return ritual_error_set(err, -EINVAL, "http: extra header line %u: %.*s is the layer's",
                                    line, (int)name_len, text);
        if (ok)
            for (p++; http_is(*p, RITUAL__HTTP_VALUE);)
                p++;
        if (!ok || p[0] != '\r' || p[1] != '\n')
            return ritual_error_set(
                err, -EINVAL, "http: extra header line %u is not \"name: value\" and CRLF", line);
        text = p + 2;
    }
    return 0;
}

static struct http_config *config_new(const ritual_http_options *options, unsigned nsites,
                                      ritual_error *err)
{
    if (!options || !options->handler) {
        ritual_error_set(err, -EINVAL, "http: a handler is required");
        return NULL;
    }
    if ((unsigned)options->body_mode > RITUAL_HTTP_BODY_DISCARD) {
        ritual_error_set(err, -EINVAL, "http: unknown body_mode %d", (int)options->body_mode);
        return NULL;
    }
    if (options->extra_headers && check_extra_headers(options->extra_headers, err) < 0)
        return NULL;
    struct http_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        goto oom;
    cfg->opts = *options;
    ritual_http_options *o = &cfg->opts;
    if (!o->max_headers)
        o->max_headers = 100;
    if (!o->max_body)
        o->max_body = 1u << 20;
    if (!o->max_requests)
        o->max_requests = 10000;
    if (!o->header_timeout_ms)
        o->header_timeout_ms = 10000;
    if (!o->body_timeout_ms)
        o->body_timeout_ms = 60000;
    if (!o->keepalive_timeout_ms)
        o->keepalive_timeout_ms = 75000;
    if (!o->send_timeout_ms)
        o->send_timeout_ms = 60000;
    if (!o->limits.max_request_line)
        o->limits.max_request_line = 8192;
    if (!o->limits.max_head)
        o->limits.max_head = 32768;
    o->server_name = strdup(o->server_name ? o->server_name : "ritual");
    bool extra = o->extra_headers && *o->extra_headers;
    o->extra_headers = extra ? strdup(o->extra_headers) : NULL;
    cfg->sites = calloc(nsites, sizeof *cfg->sites);
    if (!o->server_name || !cfg->sites || (extra && !o->extra_headers)) {
        free((char *)o->server_name);
        free((char *)o->extra_headers);
        free(cfg->sites);
        free(cfg);
        goto oom;
    }
    cfg->refs = 1; /* the caller's, dropped once the sites hold theirs */
    return cfg;
oom:
    ritual_error_set(err, -ENOMEM, "http: out of memory");
    return NULL;
}

static ritual_listen_options listen_options(struct http_config *cfg)
{
    ritual_listen_options lo;
    memset(&lo, 0, sizeof lo);
    lo.backlog = cfg->opts.backlog;
    lo.flags = cfg->opts.listen_flags;
    lo.max_conns = cfg->opts.max_conns;
    lo.conn = cfg->opts.conn;
    lo.data = cfg->opts.data; /* the application's, as for any listener */
    lo.protocol_data = cfg;
    lo.tls = cfg->opts.tls;
    /* Read while listening only: the caller's strings need not be kept. */
    lo.proxy_from = cfg->opts.proxy_from;
    lo.proxy_timeout_ms = cfg->opts.proxy_timeout_ms;
    lo.unix_mode = cfg->opts.unix_mode;
    lo.unix_owner = cfg->opts.unix_owner;
    if (lo.tls)
        lo.flags |= RITUAL_LISTEN_TLS_PLAINTEXT;
    /* Read by the listen call at once (the caller's string, still valid). */
    lo.proxy_from = cfg->opts.proxy_from;
    lo.proxy_timeout_ms = cfg->opts.proxy_timeout_ms;
    return lo;
}

ritual_listener *ritual_http_listen(ritual_loop *loop, const char *address,
                                    const ritual_http_options *options, ritual_error *err)
{
    struct http_config *cfg = config_new(options, 1, err);
    if (!cfg)
        return NULL;
    struct http_site *site = site_new(cfg, loop, err);
    ritual_listener *l = NULL;
    if (site) {
        cfg->sites[cfg->nsites++] = site;
        ritual_listen_options lo = listen_options(cfg);
        l = ritual_listen(loop, address, &lo, &ritual__http_callbacks, err);
    }
    config_unref(cfg); /* the site keeps it, and frees it with the loop */
    return l;
}

ritual_listener *ritual_http_server_listen(ritual_server *server, const char *address,
                                           const ritual_http_options *options, ritual_error *err)
{
    unsigned n = ritual_server_workers(server);
    struct http_config *cfg = config_new(options, n, err);
    if (!cfg)
        return NULL;
    ritual_listener *l = NULL;
    for (unsigned i = 0; i < n; i++) {
        struct http_site *site = site_new(cfg, ritual_server_loop(server, i), err);
        if (!site)
            goto out;
        cfg->sites[cfg->nsites++] = site;
    }
    ritual_listen_options lo = listen_options(cfg);
    l = ritual_server_listen(server, address, &lo, &ritual__http_callbacks, err);
out:
    config_unref(cfg);
    return l;
}
