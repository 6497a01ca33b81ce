/* stats.c - ritual_http_stats: the counters of every loop that serves HTTP.
 * They hang off the loop (ritual_loop_layer_state), shared by the sites of
 * all its listeners, so that any thread finds them from the loop alone.
 * One writer, the loop's thread: a count is a relaxed load and store, no
 * locked instruction, and a reader elsewhere sees each counter whole. */
#include "http_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const uint64_t ritual_http_latency_bounds_us[RITUAL_HTTP_LATENCY_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 10000000,
};

struct http_stats {
    _Atomic uint64_t responses;
    _Atomic uint64_t status[6];
    _Atomic uint64_t latency[RITUAL_HTTP_LATENCY_BUCKETS + 1];
    _Atomic uint64_t latency_sum_us;
    _Atomic uint64_t body_bytes;
};

static void add(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

struct http_stats *ritual__http_stats_of(ritual_loop *loop)
{
    struct http_stats *stats = ritual_loop_layer_state(loop, RITUAL_LOOP_LAYER_HTTP);
    if (stats)
        return stats; /* another listener's site made them */
    stats = calloc(1, sizeof *stats);
    if (!stats)
        return NULL;
    /* Freed with the loop, after the sites (hooks run in reverse order). */
    if (ritual_loop_on_free(loop, free, stats) < 0) {
        free(stats);
        return NULL;
    }
    /* The zeroed counters are published with the pointer. Only the loop's
     * owning thread sets it, so it cannot have been set meanwhile; if it
     * was, that one is used (ours is freed with the loop, unused). */
    if (ritual_loop_set_layer_state(loop, RITUAL_LOOP_LAYER_HTTP, stats) < 0)
        return ritual_loop_layer_state(loop, RITUAL_LOOP_LAYER_HTTP);
    return stats;
}

void ritual__http_count(struct http_site *site, int status, uint64_t body_bytes, uint64_t start_us)
{
    struct http_stats *s = site->stats;
    struct timespec ts;
    /* The end is read afresh (a vDSO call, no syscall): a handler's own
     * time within the iteration is part of the latency. ritual_loop_now_us
     * is on the same clock. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    uint64_t us = now_us > start_us ? now_us - start_us : 0;
    unsigned bucket = 0;
    while (bucket < RITUAL_HTTP_LATENCY_BUCKETS && us > ritual_http_latency_bounds_us[bucket])
        bucket++; /* most answers stop at the first */
    unsigned cls = (unsigned)status / 100;
    add(&s->responses, 1);
    if (cls >= 1 && cls <= 5)
        add(&s->status[cls], 1);
    add(&s->latency[bucket], 1);
    add(&s->latency_sum_us, us);
    add(&s->body_bytes, body_bytes);
}

void ritual_http_stats_get(const ritual_loop *loop, ritual_http_stats *out)
{
    memset(out, 0, sizeof *out);
    const struct http_stats *s = ritual_loop_layer_state(loop, RITUAL_LOOP_LAYER_HTTP);
    if (!s)
        return; /* never served HTTP */
    out->responses = atomic_load_explicit(&s->responses, memory_order_relaxed);
    for (unsigned i = 0; i < 6; i++)
        out->status[i] = atomic_load_explicit(&s->status[i], memory_order_relaxed);
    for (unsigned i = 0; i <= RITUAL_HTTP_LATENCY_BUCKETS; i++)
        out->latency[i] = atomic_load_explicit(&s->latency[i], memory_order_relaxed);
    out->latency_sum_us = atomic_load_explicit(&s->latency_sum_us, memory_order_relaxed);
    out->body_bytes = atomic_load_explicit(&s->body_bytes, memory_order_relaxed);
}

void ritual_http_server_stats_get(const ritual_server *server, ritual_http_stats *out)
{
    memset(out, 0, sizeof *out);
    unsigned n = ritual_server_workers(server);
    for (unsigned w = 0; w < n; w++) {
        ritual_http_stats one;
        ritual_http_stats_get(ritual_server_loop(server, w), &one);
        out->responses += one.responses;
        for (unsigned i = 0; i < 6; i++)
            out->status[i] += one.status[i];
        for (unsigned i = 0; i <= RITUAL_HTTP_LATENCY_BUCKETS; i++)
            out->latency[i] += one.latency[i];
        out->latency_sum_us += one.latency_sum_us;
        out->body_bytes += one.body_bytes;
    }
}
