/* ritual bench against ritual echo, closed loop for 2 s (closed_loop_pipelined)
 * and open loop at a fixed rate for 1 s (open_loop_at_rate): messages flow, no
 * error of any kind, exit 0, and the JSON report has its documented shape. */
#include "bench_support.h"

static const char *const keys[] = {
    "connections", "threads",  "size",          "pipeline",
    "duration_s",  "messages", "bytes",         "messages_per_s",
    "bytes_per_s", "min",      "mean",          "p50",
    "p90",         "p99",      "p999",          "max",
    "connect",     "reset",    "timeout",       "verify",
    "overload",    "total",    "client_cpu_us", "client_cpu_us_per_msg",
};

static void check_run(const char *ritual, int port, const char *const extra[])
{
    struct cmd_result r;
    run_bench(ritual, port, extra, 30000, &r);
    note("%s", r.out);
    if (r.exit_code != 0)
        FAIL("ritual bench exited %d: %s", r.exit_code, r.err);
    ASSERT_EQ(count_lines(r.out), 1);
    ASSERT_EQ(r.out[0], '{');
    ASSERT(strstr(r.out, "\"workload\":\"echo\"") != NULL);
    ASSERT(strstr(r.out, "\"latency_us\":{") != NULL);
    ASSERT(strstr(r.out, "\"errors\":{") != NULL);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        (void)json_number(r.out, keys[i]);
    ASSERT_GT(json_number(r.out, "messages"), 100);
    ASSERT_EQ(json_number(r.out, "total"), 0);
    double p50 = json_number(r.out, "p50"), p99 = json_number(r.out, "p99");
    ASSERT(p50 > 0 && p50 <= p99 && p99 <= json_number(r.out, "max"));
    ASSERT_EQ(json_number(r.out, "bytes"),
              json_number(r.out, "messages") * json_number(r.out, "size"));
}

/* Closed loop: 50 connections, 4 messages of 1000 bytes in flight on each,
 * two threads. */
static void closed_loop_pipelined(void)
{
    struct server s;
    server_start(ritual_program(), NULL, 0, &s);
    const char *const closed[] = {"--duration", "2",    "--connections", "50", "--pipeline", "4",
                                  "--size",     "1000", "--threads",     "2",  NULL};
    check_run(ritual_program(), s.port, closed);
    server_expect_clean_exit(&s);
}

/* Open loop: 10 connections at 5,000 messages/s in all. */
static void open_loop_at_rate(void)
{
    struct server s;
    server_start(ritual_program(), NULL, 0, &s);
    const char *const open[] = {"--duration", "1", "--connections", "10", "--rate", "5000", NULL};
    check_run(ritual_program(), s.port, open);
    server_expect_clean_exit(&s);
}

TEST_CASES(CASE(closed_loop_pipelined), CASE(open_loop_at_rate))
