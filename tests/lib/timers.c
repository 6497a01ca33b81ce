/* Timers fire in deadline order, never early, repeat on their period, and
 * may be stopped or freed from inside their own callback. */
#include "libtest.h"

#define N_ONESHOT 6

struct shot {
    uint64_t timeout_ms;
    uint64_t started_ns;
    uint64_t fired_ns;
    int order;
};

static int fired_count;
static struct shot shots[N_ONESHOT];

static void on_shot(ritual_timer *t, void *data)
{
    struct shot *s = data;
    s->fired_ns = ritual__clock_ns();
    s->order = fired_count++;
    ASSERT_EQ(ritual_timer_active(t), 0); /* one-shot: no longer scheduled */
    ritual_timer_free(t);                 /* freeing itself is allowed */
}

struct repeat {
    uint64_t started_ns;
    uint64_t period_ms;
    int count;
    uint64_t fired_ns[5];
};

static void on_repeat(ritual_timer *t, void *data)
{
    struct repeat *r = data;
    ASSERT_LT(r->count, 5); /* stopped itself after the fifth */
    r->fired_ns[r->count++] = ritual__clock_ns();
    ASSERT_EQ(ritual_timer_active(t), 1);
    if (r->count == 5)
        ritual_timer_stop(t); /* stopping itself is allowed */
}

static void on_never(ritual_timer *t, void *data)
{
    (void)t;
    (void)data;
    FAIL("a stopped timer fired");
}

static void on_done(ritual_timer *t, void *data)
{
    (void)t;
    ritual_loop_stop(data);
}

static void order_period_and_stop(void)
{
    ritual_loop *loop = lt_loop();

    /* Started out of order; ties are impossible since deadlines differ. */
    static const uint64_t timeouts[N_ONESHOT] = {50, 10, 30, 0, 70, 20};
    for (int i = 0; i < N_ONESHOT; i++) {
        ritual_timer *t = ritual_timer_new(loop, on_shot, &shots[i]);
        ASSERT(t != NULL);
        shots[i].timeout_ms = timeouts[i];
        shots[i].started_ns = ritual__clock_ns();
        ASSERT_EQ(ritual_timer_start(t, timeouts[i], 0), 0);
        ASSERT_EQ(ritual_timer_active(t), 1);
    }

    struct repeat rep = {.period_ms = 15};
    ritual_timer *repeating = ritual_timer_new(loop, on_repeat, &rep);
    ASSERT(repeating != NULL);
    rep.started_ns = ritual__clock_ns();
    ASSERT_EQ(ritual_timer_start(repeating, 15, 15), 0);

    ritual_timer *stopped = ritual_timer_new(loop, on_never, NULL);
    ASSERT(stopped != NULL);
    ASSERT_EQ(ritual_timer_start(stopped, 5, 0), 0);
    ritual_timer_stop(stopped);
    ASSERT_EQ(ritual_timer_active(stopped), 0);

    ritual_timer *done = ritual_timer_new(loop, on_done, loop);
    ASSERT(done != NULL);
    ASSERT_EQ(ritual_timer_start(done, 200, 0), 0);

    uint64_t before = ritual_loop_now(loop);
    lt_run(loop, 5000);
    ASSERT_GE(ritual_loop_now(loop), before + 200);

    ASSERT_EQ(fired_count, N_ONESHOT);
    for (int i = 0; i < N_ONESHOT; i++) {
        uint64_t waited = shots[i].fired_ns - shots[i].started_ns;
        note("timer %2llu ms fired after %.3f ms (order %d)", (unsigned long long)timeouts[i],
             (double)waited / 1e6, shots[i].order);
        ASSERT_GE(waited, timeouts[i] * RITUAL_NS_PER_MS); /* never early */
        for (int j = 0; j < N_ONESHOT; j++)
            if (timeouts[j] < timeouts[i])
                ASSERT_LT(shots[j].order, shots[i].order);
    }
    ASSERT_EQ(rep.count, 5);
    for (int k = 0; k < 5; k++)
        ASSERT_GE(rep.fired_ns[k] - rep.started_ns, (uint64_t)(k + 1) * 15 * RITUAL_NS_PER_MS);
    ASSERT_EQ(ritual_timer_active(repeating), 0);

    /* Timers still allocated (stopped, done, repeating) go with the loop. */
    ritual_loop_free(loop);
}

TEST_CASES(CASE(order_period_and_stop))
