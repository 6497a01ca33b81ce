/* Open loop, no coordinated omission: the server is frozen (SIGSTOP) for
 * 200 ms in the middle of a 2 s run at 2,000 messages/s. Messages fall due
 * during the stall all the same, and their latency counts from when they
 * were due, so about 10% of all messages wait up to 200 ms: the p99 must
 * show the stall and the max must be close to it. */
#include "bench_support.h"

#include <pthread.h>
#include <signal.h>

struct bench_run {
    const char *ritual;
    int port;
    struct cmd_result result;
};

static void *bench_thread(void *arg)
{
    struct bench_run *run = arg;
    const char *const extra[] = {"--duration", "2", "--connections", "20", "--rate", "2000", NULL};
    run_bench(run->ritual, run->port, extra, 30000, &run->result);
    return NULL;
}

static void stall_shows_in_the_tail(void)
{
    struct server s;
    server_start(ritual_program(), NULL, 0, &s);

    static struct bench_run run;
    memset(&run, 0, sizeof run);
    run.ritual = ritual_program();
    run.port = s.port;
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, bench_thread, &run), 0);
    sleep_ms(800);
    SYSCHECK(kill(s.pid, SIGSTOP));
    sleep_ms(200);
    SYSCHECK(kill(s.pid, SIGCONT));
    ASSERT_EQ(pthread_join(t, NULL), 0);

    const char *json = run.result.out;
    note("%s", json);
    if (run.result.exit_code != 0)
        FAIL("ritual bench exited %d: %s", run.result.exit_code, run.result.err);
    double p50 = json_number(json, "p50"), p99 = json_number(json, "p99");
    double max = json_number(json, "max");
    note("p50 %.0f us, p99 %.0f us, max %.0f us", p50, p99, max);
    ASSERT_LT(p50, 50000);  /* most messages never saw the stall */
    ASSERT_GT(p99, 100000); /* but the stall is in the tail */
    ASSERT_GT(max, 180000); /* and whoever was due first waited the whole 200 ms */
    server_expect_clean_exit(&s);
}

TEST_CASES(CASE(stall_shows_in_the_tail))
