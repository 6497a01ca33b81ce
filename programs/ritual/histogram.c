/* histogram.c - see histogram.h. */
#include "histogram.h"

#include <string.h>

void hist_init(struct histogram *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

static unsigned bucket_of(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    unsigned shift = 63u - (unsigned)__builtin_clzll(v) - HIST_SUB_BITS; /* >= 1 */
    unsigned sub = (unsigned)(v >> shift);                               /* 128..255 */
    return 2 * HIST_SUB + (shift - 1) * HIST_SUB + (sub - HIST_SUB);
}

/* The largest value that falls in bucket b. */
static uint64_t bucket_top(unsigned b)
{
    if (b < 2 * HIST_SUB)
        return b;
    unsigned shift = (b - 2 * HIST_SUB) / HIST_SUB + 1;
    uint64_t sub = HIST_SUB + (b - 2 * HIST_SUB) % HIST_SUB;
    return ((sub + 1) << shift) - 1;
}

void hist_record(struct histogram *h, uint64_t ns)
{
    if (ns > HIST_MAX_NS)
        ns = HIST_MAX_NS;
    h->buckets[bucket_of(ns)]++;
    h->count++;
    h->sum += (double)ns;
    if (ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
}

void hist_merge(struct histogram *into, const struct histogram *from)
{
    for (unsigned b = 0; b < HIST_BUCKETS; b++)
        into->buckets[b] += from->buckets[b];
    into->count += from->count;
    into->sum += from->sum;
    if (from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
}

uint64_t hist_percentile(const struct histogram *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p <= 0)
        return h->min;
    /* The rank of the p-th value, 1-based, rounded up as HdrHistogram does. */
    double exact = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)exact;
    if ((double)rank < exact)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        seen += h->buckets[b];
        if (seen >= rank) {
            uint64_t top = bucket_top(b);
            return top < h->max ? (top > h->min ? top : h->min) : h->max;
        }
    }
    return h->max;
}

double hist_mean(const struct histogram *h)
{
    return h->count ? h->sum / (double)h->count : 0;
}
