/* The bench's latency histogram: exact at the edges, within 1/128 of the
 * true value for percentiles of known distributions, and merging per-thread
 * histograms gives what one histogram of everything would. No server: the
 * histogram is compiled from the program's source. */
#include "histogram.h"
#include "support.h"

#include <math.h>
#include <string.h>

/* |got - want| within the histogram's precision (plus one for rounding). */
static void assert_close(uint64_t got, uint64_t want)
{
    double err = fabs((double)got - (double)want);
    if (err > (double)want / 128.0 + 1)
        FAIL("got %llu, want %llu within 1/128", (unsigned long long)got, (unsigned long long)want);
}

static struct histogram h, a, b, all;

/* Uniform 1..100000 us, in ns: the p-th percentile is p% of the range. */
static void uniform_percentiles(void)
{
    hist_init(&h);
    for (uint64_t v = 1; v <= 100000; v++)
        hist_record(&h, v * 1000);
    ASSERT_EQ(h.count, 100000);
    ASSERT_EQ(h.min, 1000);
    ASSERT_EQ(h.max, 100000000);
    assert_close(hist_percentile(&h, 50), 50000000);
    assert_close(hist_percentile(&h, 90), 90000000);
    assert_close(hist_percentile(&h, 99), 99000000);
    assert_close(hist_percentile(&h, 99.9), 99900000);
    ASSERT_EQ(hist_percentile(&h, 100), 100000000);
    ASSERT_EQ(hist_percentile(&h, 0), 1000);
    assert_close((uint64_t)hist_mean(&h), 50000500);
}

/* Exponential with mean 50 us: p50 = ln 2 * mean, p99 = ln 100 * mean. */
static void exponential_percentiles(void)
{
    hist_init(&h);
    struct prng r;
    prng_seed(&r, 42);
    for (int i = 0; i < 1000000; i++) {
        double u = ((double)(prng_next(&r) >> 11) + 0.5) / 9007199254740992.0;
        hist_record(&h, (uint64_t)(-log(u) * 50000.0));
    }
    note("exponential: p50 %llu ns (want %.0f), p99 %llu ns (want %.0f)",
         (unsigned long long)hist_percentile(&h, 50), log(2) * 50000,
         (unsigned long long)hist_percentile(&h, 99), log(100) * 50000);
    ASSERT(fabs((double)hist_percentile(&h, 50) / (log(2) * 50000) - 1) < 0.02);
    ASSERT(fabs((double)hist_percentile(&h, 99) / (log(100) * 50000) - 1) < 0.02);
}

/* Small values are exact; huge ones are clamped to 60 s. */
static void small_exact_huge_clamped(void)
{
    hist_init(&h);
    hist_record(&h, 7);
    ASSERT_EQ(hist_percentile(&h, 50), 7);
    hist_record(&h, 3600ull * 1000000000ull);
    ASSERT_EQ(h.max, 60000000000ull);
    ASSERT_EQ(hist_percentile(&h, 100), 60000000000ull);
}

/* Merging two halves equals recording everything in one. */
static void merge_equals_one_histogram(void)
{
    hist_init(&a);
    hist_init(&b);
    hist_init(&all);
    struct prng r;
    prng_seed(&r, 7);
    for (int i = 0; i < 200000; i++) {
        uint64_t v = prng_range(&r, 500, 20000000);
        hist_record(i % 3 ? &a : &b, v);
        hist_record(&all, v);
    }
    hist_merge(&a, &b);
    ASSERT_EQ(a.count, all.count);
    ASSERT_EQ(a.min, all.min);
    ASSERT_EQ(a.max, all.max);
    ASSERT_EQ(memcmp(a.buckets, all.buckets, sizeof a.buckets), 0);
    static const double ps[] = {1, 50, 90, 99, 99.9, 99.99};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        ASSERT_EQ(hist_percentile(&a, ps[i]), hist_percentile(&all, ps[i]));
}

/* An empty histogram answers 0, not garbage. */
static void empty_answers_zero(void)
{
    hist_init(&h);
    ASSERT_EQ(hist_percentile(&h, 99), 0);
    ASSERT_EQ(hist_percentile(&h, 0), 0);
    ASSERT(hist_mean(&h) == 0);
}

TEST_CASES(CASE(uniform_percentiles), CASE(exponential_percentiles), CASE(small_exact_huge_clamped),
           CASE(merge_equals_one_histogram), CASE(empty_answers_zero))
