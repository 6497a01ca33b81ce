/* histogram.h - latency histogram with log-linear buckets, in the manner of
 * HdrHistogram: exact below 256 ns, then 128 buckets per power of two, so any
 * recorded value is reported within 1/128 (0.8%) of itself, from 1 ns to
 * 60 s in 30 KiB. Recording is a shift, a subtraction and an increment. */
#ifndef RITUAL_HISTOGRAM_H
#define RITUAL_HISTOGRAM_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS) /* buckets per power of two */
#define HIST_MAX_NS 60000000000ull     /* 60 s: larger values are clamped */
#define HIST_MAX_SHIFT 29              /* 2^(29+7+1) > 60 s in ns */
#define HIST_BUCKETS (2 * HIST_SUB + HIST_MAX_SHIFT * HIST_SUB)

struct histogram {
    uint64_t count;
    uint64_t min, max; /* exact, in ns */
    double sum;        /* for the mean */
    uint64_t buckets[HIST_BUCKETS];
};

void hist_init(struct histogram *h);
void hist_record(struct histogram *h, uint64_t ns);
/* Adds `from` into `into` (per-thread histograms into one). */
void hist_merge(struct histogram *into, const struct histogram *from);
/* The value at percentile p (0..100): the highest value that lands in the
 * same bucket as the p-th recorded one, capped by the exact max. 0 if empty. */
uint64_t hist_percentile(const struct histogram *h, double p);
double hist_mean(const struct histogram *h);

#endif
