/* http_load: many concurrent keep-alive clients. 200 connections of our own
 * make 10 rounds of requests each, every answer checked; then wrk runs 200
 * keep-alive connections for 3 s against a 13-byte file and 50 for 2 s
 * against a 100 KB one (sent with sendfile), and must report no socket
 * error and no non-2xx answer. Without wrk that part is skipped with a note
 * (a failure if RITUAL_TEST_REQUIRE_TOOLS=1). The server's memory after the
 * load is noted and bounded, and it still answers and exits clean. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TIMEOUT 10000
#define CLIENTS 200
#define ROUNDS 10
#define BIG_SIZE 100000

static char root[64];
static const char hello[] = "hello, world\n"; /* 13 bytes */

static void own_clients(int port)
{
    static struct http_client *c[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        c[i] = http_client_open(port);
    uint64_t start = now_ms();
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < CLIENTS; i++)
            http_send(c[i], "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
        for (int i = 0; i < CLIENTS; i++) {
            struct http_response r;
            if (!http_read_response(c[i], &r, 0, TIMEOUT))
                FAIL("round %d: client %d was closed", round, i);
            HTTP_EXPECT_STATUS(&r, 200);
            ASSERT_EQ(r.body_len, 13);
            ASSERT(memcmp(r.body, hello, 13) == 0);
            http_response_free(&r);
        }
    }
    note("%d keep-alive clients x %d rounds: every answer right, %llu ms", CLIENTS, ROUNDS,
         (unsigned long long)(now_ms() - start));
    for (int i = 0; i < CLIENTS; i++)
        http_client_close(c[i]);
}

/* Runs wrk and checks its report: no error, and some requests counted. */
static void run_wrk(const char *wrk, int port, const char *path, const char *conns,
                    const char *duration)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    /* A generous per-request timeout: under sanitizers the server is slow,
     * which is not what this test is about. */
    const char *argv[] = {wrk, "-t2", "-c", conns, "-d", duration, "--timeout", "10s", url, NULL};
    struct cmd_result r;
    run_command(argv, 60000, &r);
    if (r.exit_code != 0)
        FAIL("wrk exited with %d: %s%s", r.exit_code, r.out, r.err);
    if (strstr(r.out, "Socket errors") != NULL)
        FAIL("wrk saw socket errors:\n%s", r.out);
    if (strstr(r.out, "Non-2xx") != NULL)
        FAIL("wrk saw non-2xx answers:\n%s", r.out);
    const char *line = strstr(r.out, " requests in ");
    if (line == NULL)
        FAIL("no request count in wrk's report:\n%s", r.out);
    while (line > r.out && line[-1] != '\n')
        line--;
    long requests = strtol(line, NULL, 10);
    const char *rps = strstr(r.out, "Requests/sec:");
    note("wrk -c%s -d%s %s: %ld requests, no errors (%.*s)", conns, duration, path, requests,
         rps ? (int)strcspn(rps, "\n") : 0, rps ? rps : "");
    ASSERT_GT(requests, 0);
}

static void keep_alive_clients_then_wrk(void)
{
    raise_nofile(4096);
    temp_dir_make(root, sizeof root);
    file_write_at(root, "hello.txt", hello, strlen(hello));
    file_write_pattern_at(root, "big.bin", 61, BIG_SIZE);

    struct server s;
    http_server_start(ritual_program(), root, NULL, &s);
    long rss_start = proc_rss_kb(s.pid);
    own_clients(s.port);

    char wrk[256];
    if (find_tool("wrk", wrk, sizeof wrk)) {
        run_wrk(wrk, s.port, "/hello.txt", "200", "3s");
        run_wrk(wrk, s.port, "/big.bin", "50", "2s");
    }

    long rss_end = proc_rss_kb(s.pid);
    note("server RSS: %ld kB at the start, %ld kB after the load", rss_start, rss_end);
    ASSERT_LT(rss_end - rss_start, 64 * 1024);
    struct http_response r;
    http_exchange(s.port, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, TIMEOUT);
    HTTP_EXPECT_STATUS(&r, 200);
    http_response_free(&r);

    server_expect_clean_exit(&s);
    remove_tree(root);
}

TEST_CASES(CASE(keep_alive_clients_then_wrk))
