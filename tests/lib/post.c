/* ritual_loop_post.
 *
 * - many_threads_in_order: posts from many threads at once; every message
 *   is delivered exactly once, on the loop's thread, and those of one
 *   thread in the order they were posted.
 * - queued_calls_run_at_free: calls still queued when the loop is freed
 *   run then, and may post no more. */
#include "libtest.h"

#include <errno.h>
#include <stdint.h>

#define THREADS 8
#define PER_THREAD 20000

struct message {
    int thread;
    int seq;
};

static struct message messages[THREADS][PER_THREAD];
static int next_seq[THREADS];
static long delivered;
static pthread_t loop_thread;
static ritual_loop *loop;

static void on_message(ritual_loop *l, void *arg)
{
    struct message *m = arg;
    ASSERT(l == loop);
    ASSERT(pthread_equal(pthread_self(), loop_thread));
    ASSERT_EQ(m->seq, next_seq[m->thread]); /* in order, none twice, none skipped */
    next_seq[m->thread]++;
    if (++delivered == (long)THREADS * PER_THREAD)
        ritual_loop_stop(l);
}

static void *producer(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        messages[t][i] = (struct message){t, i};
        ASSERT_EQ(ritual_loop_post(loop, on_message, &messages[t][i]), 0);
    }
    return NULL;
}

static int late_runs;

static void late(ritual_loop *l, void *arg)
{
    (void)arg;
    late_runs++;
    /* Inside ritual_loop_free: further posts are refused. */
    ASSERT_EQ(ritual_loop_post(l, late, NULL), -ESHUTDOWN);
}

static void many_threads_in_order(void)
{
    loop = lt_loop();
    loop_thread = pthread_self();
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++)
        threads[t] = lt_thread(producer, (void *)(intptr_t)t);
    lt_run(loop, 30000);
    for (int t = 0; t < THREADS; t++)
        lt_join(threads[t]);
    ASSERT_EQ(delivered, (long)THREADS * PER_THREAD);
    for (int t = 0; t < THREADS; t++)
        ASSERT_EQ(next_seq[t], PER_THREAD);
    note("%d threads posted %d messages each; all delivered once, in order", THREADS, PER_THREAD);
    ritual_loop_free(loop);
}

static void stop(ritual_loop *l, void *arg)
{
    (void)arg;
    ritual_loop_stop(l);
}

static void queued_calls_run_at_free(void)
{
    loop = lt_loop();
    /* A loop that has run, as in an application's shutdown. */
    ASSERT_EQ(ritual_loop_post(loop, stop, NULL), 0);
    lt_run(loop, 10000);
    ASSERT_EQ(ritual_loop_post(loop, late, NULL), 0);
    ritual_loop_free(loop);
    ASSERT_EQ(late_runs, 1);
}

TEST_CASES(CASE(many_threads_in_order), CASE(queued_calls_run_at_free))
