/* libtest.h - helpers for the library's own tests: a loop, a listener on an
 * ephemeral loopback port, a watchdog, and client threads. A loop made by
 * lt_loop must be freed by the end of its case. The tests include
 * the core's private headers to look at a connection's state where the API
 * does not show it. */
#ifndef RITUAL_LIBTEST_H
#define RITUAL_LIBTEST_H

#include "conn.h"
#include "listener.h"
#include "loop.h"
#include "ritual.h"
#include "support.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

/* Loops made by lt_loop and not freed yet: none may outlive its case. */
static atomic_int lt_loops_live;

static inline void lt_loop_freed(void *arg)
{
    (void)arg;
    lt_loops_live--;
}

static inline void lt_check_loops_freed(void)
{
    int live = lt_loops_live;
    if (live != 0)
        FAIL("%d loop%s made by the case never freed", live, live == 1 ? " was" : "s were");
}

/* Registered before main: lt_loop may run on several threads at once. */
__attribute__((constructor)) static void lt_register_checks(void)
{
    test_at_case_end(lt_check_loops_freed);
}

static inline ritual_loop *lt_loop(void)
{
    ritual_error err;
    ritual_loop *loop = ritual_loop_new(NULL, &err);
    if (!loop)
        FAIL("ritual_loop_new: %s", err.message);
    ASSERT_EQ(ritual_loop_on_free(loop, lt_loop_freed, NULL), 0);
    lt_loops_live++;
    return loop;
}

static inline ritual_listener *lt_listen(ritual_loop *loop, const ritual_listen_options *opts,
                                         const ritual_conn_callbacks *cbs)
{
    ritual_error err;
    ritual_listener *l = ritual_listen(loop, "127.0.0.1:0", opts, cbs, &err);
    if (!l)
        FAIL("ritual_listen: %s", err.message);
    return l;
}

static inline void lt_watchdog_fired(ritual_timer *t, void *data)
{
    (void)t;
    FAIL("watchdog: the loop did not stop within %d ms", (int)(intptr_t)data);
}

/* Runs the loop until stopped; fails the test if that takes over timeout_ms. */
static inline void lt_run(ritual_loop *loop, int timeout_ms)
{
    ritual_timer *watchdog =
        ritual_timer_new(loop, lt_watchdog_fired, (void *)(intptr_t)timeout_ms);
    ASSERT(watchdog != NULL);
    ASSERT_EQ(ritual_timer_start(watchdog, (uint64_t)timeout_ms, 0), 0);
    ASSERT_EQ(ritual_loop_run(loop), 0);
    ritual_timer_free(watchdog);
}

static inline pthread_t lt_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    int rc = pthread_create(&t, NULL, fn, arg);
    if (rc != 0)
        FAIL("pthread_create: %s", strerror(rc));
    return t;
}

static inline void lt_join(pthread_t t)
{
    int rc = pthread_join(t, NULL);
    if (rc != 0)
        FAIL("pthread_join: %s", strerror(rc));
}

#endif
