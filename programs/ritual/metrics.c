/* metrics.c - `--metrics-listen`: GET /metrics answers the Prometheus text
 * exposition format (version 0.0.4) from the control loop.
 *
 * Every figure comes twice, never under one name: the server's total as
 * ritual_NAME, and each worker's as ritual_worker_NAME{worker="I"}. So a
 * sum() over either family is right (a total beside its parts under one
 * name would count twice), a dashboard that wants the server reads the
 * short names, and the per-worker series add up to the totals exactly:
 * both are made from one snapshot of each worker's counters. The snapshot
 * is read without a lock while the workers run, so counters read a moment
 * apart may disagree by what happened in between (open + closed may pass
 * accepted by a connection accepted meanwhile); each one is exact. */
#include "metrics.h"
#include "ritual_http.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics {
    ritual_server *server;
    bool http;
    unsigned nworkers;
    ritual_loop_stats *loops; /* a snapshot: nworkers + 1, the total last */
    ritual_http_stats *https;
    char *text; /* the answer, kept for the next scrape */
    size_t len, cap;
    bool failed; /* out of memory while writing */
};

static void put(struct metrics *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends to the answer, growing it; out of memory, the answer is 503. */
static void put(struct metrics *m, const char *fmt, ...)
{
    while (!m->failed) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(m->text + m->len, m->cap - m->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            m->failed = true;
            return;
        }
        if ((size_t)n < m->cap - m->len) {
            m->len += (size_t)n;
            return;
        }
        size_t cap = m->cap * 2 + (size_t)n;
        char *text = realloc(m->text, cap);
        if (!text) {
            m->failed = true;
            return;
        }
        m->text = text;
        m->cap = cap;
    }
}

#define TOTAL "ritual_"
#define WORKER "ritual_worker_"

static void family(struct metrics *m, const char *prefix, const char *name, const char *type,
                   const char *help)
{
    const char *per = strcmp(prefix, WORKER) == 0 ? " One series per worker." : "";
    put(m, "# HELP %s%s %s%s\n# TYPE %s%s %s\n", prefix, name, help, per, prefix, name, type);
}

static uint64_t loop_field(const struct metrics *m, unsigned w, size_t offset)
{
    uint64_t v;
    memcpy(&v, (const char *)&m->loops[w] + offset, sizeof v);
    return v;
}

static uint64_t http_field(const struct metrics *m, unsigned w, size_t offset)
{
    uint64_t v;
    memcpy(&v, (const char *)&m->https[w] + offset, sizeof v);
    return v;
}

/* A figure without labels, or the same figure under several labels: HELP
 * and TYPE once per family (all totals first, then all per-worker lines,
 * as the format wants a family's lines together). */
struct labelled {
    const char *label;
    size_t offset;
};

static void figure(struct metrics *m, const char *name, const char *type, const char *help,
                   uint64_t (*get)(const struct metrics *, unsigned, size_t),
                   const struct labelled *l, size_t nl)
{
    unsigned n = m->nworkers;
    family(m, TOTAL, name, type, help);
    for (size_t i = 0; i < nl; i++) {
        if (*l[i].label)
            put(m, TOTAL "%s{%s} %llu\n", name, l[i].label,
                (unsigned long long)get(m, n, l[i].offset));
        else
            put(m, TOTAL "%s %llu\n", name, (unsigned long long)get(m, n, l[i].offset));
    }
    family(m, WORKER, name, type, help);
    for (unsigned w = 0; w < n; w++)
        for (size_t i = 0; i < nl; i++)
            put(m, WORKER "%s{worker=\"%u\"%s%s} %llu\n", name, w, *l[i].label ? "," : "",
                l[i].label, (unsigned long long)get(m, w, l[i].offset));
}

/* A figure without labels. */
static void figure1(struct metrics *m, const char *name, const char *type, const char *help,
                    uint64_t (*get)(const struct metrics *, unsigned, size_t), size_t offset)
{
    const struct labelled one = {"", offset};
    figure(m, name, type, help, get, &one, 1);
}

static void loop_figures(struct metrics *m)
{
    figure1(m, "connections_open", "gauge", "Connections open now.", loop_field,
            offsetof(ritual_loop_stats, conns));
    figure1(m, "connections_accepted_total", "counter", "Connections accepted.", loop_field,
            offsetof(ritual_loop_stats, accepted));
    static const struct labelled closed[] = {
        {"reason=\"clean\"", offsetof(ritual_loop_stats, closed_clean)},
        {"reason=\"reset\"", offsetof(ritual_loop_stats, closed_reset)},
        {"reason=\"timeout\"", offsetof(ritual_loop_stats, closed_timeout)},
        {"reason=\"overflow\"", offsetof(ritual_loop_stats, closed_overflow)},
        {"reason=\"aborted\"", offsetof(ritual_loop_stats, closed_aborted)},
        {"reason=\"canceled\"", offsetof(ritual_loop_stats, closed_canceled)},
        {"reason=\"other\"", offsetof(ritual_loop_stats, closed_other)},
    };
    figure(m, "connections_closed_total", "counter",
           "Connections closed, by reason: clean (orderly), reset (by the peer), timeout "
           "(idle, or a close that could not flush), overflow (output or input limit), "
           "aborted (by the server), canceled (cut by a drain deadline), other.",
           loop_field, closed, sizeof closed / sizeof closed[0]);
    figure1(m, "bytes_received_total", "counter", "Bytes received from clients.", loop_field,
            offsetof(ritual_loop_stats, bytes_read));
    figure1(m, "bytes_sent_total", "counter", "Bytes handed to the kernel for clients.", loop_field,
            offsetof(ritual_loop_stats, bytes_written));
}

/* Bucket bounds as Prometheus writes them: seconds, shortest form. */
static void put_le(struct metrics *m, uint64_t us)
{
    put(m, "%llu", (unsigned long long)(us / 1000000));
    uint64_t frac = us % 1000000;
    if (frac) {
        char digits[8];
        snprintf(digits, sizeof digits, "%06llu", (unsigned long long)frac);
        size_t n = strlen(digits);
        while (digits[n - 1] == '0')
            digits[--n] = '\0';
        put(m, ".%s", digits);
    }
}

static void histogram(struct metrics *m, const char *prefix, unsigned w)
{
    const ritual_http_stats *s = &m->https[w];
    char labels[32] = "";
    if (w < m->nworkers)
        snprintf(labels, sizeof labels, "worker=\"%u\",", w);
    uint64_t count = 0;
    for (unsigned b = 0; b <= RITUAL_HTTP_LATENCY_BUCKETS; b++) {
        count += s->latency[b];
        put(m, "%shttp_response_seconds_bucket{%sle=\"", prefix, labels);
        if (b < RITUAL_HTTP_LATENCY_BUCKETS)
            put_le(m, ritual_http_latency_bounds_us[b]);
        else
            put(m, "+Inf");
        put(m, "\"} %llu\n", (unsigned long long)count);
    }
    labels[strlen(labels) ? strlen(labels) - 1 : 0] = '\0'; /* no trailing comma */
    const char *open = *labels ? "{" : "", *close = *labels ? "}" : "";
    put(m, "%shttp_response_seconds_sum%s%s%s %llu.%06llu\n", prefix, open, labels, close,
        (unsigned long long)(s->latency_sum_us / 1000000),
        (unsigned long long)(s->latency_sum_us % 1000000));
    put(m, "%shttp_response_seconds_count%s%s%s %llu\n", prefix, open, labels, close,
        (unsigned long long)count);
}

static void http_figures(struct metrics *m)
{
    static const struct labelled classes[] = {
        {"class=\"1xx\"", offsetof(ritual_http_stats, status[1])},
        {"class=\"2xx\"", offsetof(ritual_http_stats, status[2])},
        {"class=\"3xx\"", offsetof(ritual_http_stats, status[3])},
        {"class=\"4xx\"", offsetof(ritual_http_stats, status[4])},
        {"class=\"5xx\"", offsetof(ritual_http_stats, status[5])},
    };
    figure(m, "http_responses_total", "counter",
           "HTTP responses, by status class (the server's own errors included).", http_field,
           classes, sizeof classes / sizeof classes[0]);
    figure1(m, "http_response_body_bytes_total", "counter", "HTTP response body bytes.", http_field,
            offsetof(ritual_http_stats, body_bytes));
    static const char help[] =
        "Time from a request head's last byte to its response's last byte queued.";
    family(m, TOTAL, "http_response_seconds", "histogram", help);
    histogram(m, TOTAL, m->nworkers);
    family(m, WORKER, "http_response_seconds", "histogram", help);
    for (unsigned w = 0; w < m->nworkers; w++)
        histogram(m, WORKER, w);
}

/* Both stats structs are uint64_t counters only: summed field by field. */
_Static_assert(sizeof(ritual_loop_stats) % sizeof(uint64_t) == 0, "loop stats: counters only");
_Static_assert(sizeof(ritual_http_stats) % sizeof(uint64_t) == 0, "http stats: counters only");

/* total += part, counter by counter. */
static void add_counters(void *total, const void *part, size_t size)
{
    for (size_t off = 0; off < size; off += sizeof(uint64_t)) {
        uint64_t sum, add;
        memcpy(&sum, (char *)total + off, sizeof sum);
        memcpy(&add, (const char *)part + off, sizeof add);
        sum += add;
        memcpy((char *)total + off, &sum, sizeof sum);
    }
}

/* Reads every worker once, and sums those same figures. */
static void snapshot(struct metrics *m)
{
    unsigned n = m->nworkers;
    memset(&m->loops[n], 0, sizeof m->loops[n]);
    for (unsigned w = 0; w < n; w++) {
        ritual_loop_stats_get(ritual_server_loop(m->server, w), &m->loops[w]);
        add_counters(&m->loops[n], &m->loops[w], sizeof m->loops[w]);
    }
    if (!m->http)
        return;
    memset(&m->https[n], 0, sizeof m->https[n]);
    for (unsigned w = 0; w < n; w++) {
        ritual_http_stats_get(ritual_server_loop(m->server, w), &m->https[w]);
        add_counters(&m->https[n], &m->https[w], sizeof m->https[w]);
    }
}

static void render(struct metrics *m)
{
    m->len = 0;
    m->failed = false;
    snapshot(m);
    family(m, TOTAL, "workers", "gauge", "Worker loops.");
    put(m, TOTAL "workers %u\n", m->nworkers);
    family(m, TOTAL, "info", "gauge", "The version and the I/O backend; always 1.");
    put(m, TOTAL "info{version=\"%s\",backend=\"%s\"} 1\n", RITUAL_VERSION,
        ritual_loop_backend_name(ritual_server_loop(m->server, 0)));
    loop_figures(m);
    if (m->http)
        http_figures(m);
}

static bool path_is_metrics(const ritual_http_request *r)
{
    size_t n = r->target_len;
    const char *q = memchr(r->target, '?', n);
    if (q)
        n = (size_t)(q - r->target); /* a query (?name[]=...) changes nothing */
    return n == 8 && memcmp(r->target, "/metrics", 8) == 0;
}

static void handle(ritual_http_exchange *ex, void *data)
{
    struct metrics *m = data;
    const ritual_http_request *r = ritual_http_exchange_request(ex);
    static const ritual_http_header text[] = {
        RITUAL_HTTP_HEADER("Content-Type", "text/plain; charset=utf-8")};
    if (!path_is_metrics(r)) {
        (void)ritual_http_respond(ex, 404, text, 1, "not found; try /metrics\n", 24);
        return;
    }
    bool get = r->method_len == 3 && memcmp(r->method, "GET", 3) == 0;
    bool head = r->method_len == 4 && memcmp(r->method, "HEAD", 4) == 0;
    if (!get && !head) {
        static const ritual_http_header allow[] = {
            RITUAL_HTTP_HEADER("Content-Type", "text/plain; charset=utf-8"),
            RITUAL_HTTP_HEADER("Allow", "GET, HEAD")};
        (void)ritual_http_respond(ex, 405, allow, 2, "method not allowed\n", 19);
        return;
    }
    render(m);
    if (m->failed) {
        (void)ritual_http_respond(ex, 503, text, 1, "out of memory\n", 14);
        return;
    }
    static const ritual_http_header exposition[] = {
        RITUAL_HTTP_HEADER("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
        RITUAL_HTTP_HEADER("Cache-Control", "no-store")};
    /* The body is copied: the buffer is ours again for the next scrape. */
    (void)ritual_http_respond(ex, 200, exposition, 2, m->text, m->len);
}

static void metrics_free(void *arg)
{
    struct metrics *m = arg;
    free(m->loops);
    free(m->https);
    free(m->text);
    free(m);
}

ritual_listener *metrics_listen(ritual_server *server, const char *address, bool http,
                                ritual_error *err)
{
    ritual_loop *control = ritual_server_control_loop(server);
    struct metrics *m = calloc(1, sizeof *m);
    if (m) {
        m->server = server;
        m->http = http;
        m->nworkers = ritual_server_workers(server);
        m->loops = calloc(m->nworkers + 1, sizeof *m->loops);
        m->https = http ? calloc(m->nworkers + 1, sizeof *m->https) : NULL;
        m->cap = 16384;
        m->text = malloc(m->cap);
    }
    if (!m || !m->loops || (http && !m->https) || !m->text ||
        ritual_loop_on_free(control, metrics_free, m) < 0) {
        if (m)
            metrics_free(m);
        ritual_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    ritual_http_options o = {
        .handler = handle,
        .data = m,
        .max_conns = 64, /* scrapers, not clients: a few at a time */
        .keepalive_timeout_ms = 60000,
    };
    return ritual_http_listen(control, address, &o, err);
}
