/* metrics: --metrics-listen serves the Prometheus text format, and the
 * figures agree with the traffic the test sent.
 *
 * http_figures: `ritual http --workers 2`; 37 requests for a file (200)
 * and 5 for a missing one (404) over 6 keep-alive connections, all closed.
 * Then, once the server has seen the closes (scraped until it has, within
 * a bound): connections accepted, open, closed cleanly; bytes received
 * and sent, each exactly what crossed the wire; responses by class;
 * body bytes; the histogram's buckets cumulative, its +Inf bucket and
 * count the responses; every worker family summing to its total. The
 * scrapes themselves (on the main thread's loop) count nowhere, and
 * /metrics answers HEAD, 404 elsewhere and 405 to a POST.
 *
 * echo_figures: `ritual echo --workers 2`: bytes in and out exact, the
 * connection figures, and no HTTP ones.
 *
 * port_in_use: a metrics port already taken fails before anything is
 * served: exit 1 with the one-line reason, nothing on stdout. */
#include "support.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TIMEOUT 5000

static char root[64];
static const char hello[] = "hello, metrics\n";

static void make_root(void)
{
    temp_dir_make(root, sizeof root);
    file_write_at(root, "hello.txt", hello, sizeof hello - 1);
}

static void remove_root(void)
{
    remove_tree(root);
}

/* The "metrics on 127.0.0.1:PORT" line that follows "listening on": its
 * port. Read a byte at a time, so nothing after it is consumed. */
static int read_metrics_port(struct server *s)
{
    char line[256];
    size_t len = 0;
    uint64_t deadline = now_ms() + 10000;
    while (len == 0 || line[len - 1] != '\n') {
        if (!wait_fd(s->stdout_fd, POLLIN, deadline))
            FAIL("no \"metrics on\" line on the server's stdout within 10 s");
        ASSERT_LT(len + 1, sizeof line);
        ssize_t n = read(s->stdout_fd, line + len, 1);
        if (n < 0 && errno == EINTR)
            continue;
        SYSCHECK(n);
        if (n == 0)
            FAIL("server closed stdout before its \"metrics on\" line");
        len += (size_t)n;
    }
    line[len - 1] = '\0';
    static const char prefix[] = "metrics on 127.0.0.1:";
    if (strncmp(line, prefix, sizeof prefix - 1) != 0)
        FAIL("second stdout line is \"%s\", expected \"%sPORT\"", line, prefix);
    int port = atoi(line + sizeof prefix - 1);
    ASSERT(port > 0 && port < 65536);
    return port;
}

/* GET /metrics: the body (malloc'd). */
static char *scrape(int port)
{
    struct http_response r;
    http_exchange(port, "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r,
                  TIMEOUT);
    ASSERT_EQ(r.status, 200);
    const char *type = NULL;
    for (size_t i = 0; i < r.num_fields; i++)
        if (strcasecmp(r.names[i], "Content-Type") == 0)
            type = r.values[i];
    ASSERT(type != NULL);
    ASSERT(strncmp(type, "text/plain; version=0.0.4", 25) == 0);
    char *body = r.body;
    r.body = NULL;
    http_response_free(&r);
    return body;
}

/* The value of the sample `series` (name and labels, exactly as written),
 * or -1 if there is no such line. */
static long long sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        ASSERT(end != NULL); /* every line ends in LF */
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return strtoll(line + n + 1, NULL, 10);
        line = end + 1;
    }
    return -1;
}

static long long must(const char *text, const char *series)
{
    long long v = sample(text, series);
    if (v < 0)
        FAIL("no sample %s in:\n%s", series, text);
    return v;
}

/* ritual_NAME{LABELS} and the sum of ritual_worker_NAME{worker="I",LABELS}
 * over the workers agree; returns the total. */
static long long total_and_workers(const char *text, const char *name, const char *labels,
                                   int workers)
{
    char series[256];
    if (*labels)
        snprintf(series, sizeof series, "ritual_%s{%s}", name, labels);
    else
        snprintf(series, sizeof series, "ritual_%s", name);
    long long total = must(text, series), sum = 0;
    for (int w = 0; w < workers; w++) {
        snprintf(series, sizeof series, "ritual_worker_%s{worker=\"%d\"%s%s}", name, w,
                 *labels ? "," : "", labels);
        sum += must(text, series);
    }
    if (sum != total)
        FAIL("ritual_%s{%s}: the workers sum to %lld, the total says %lld", name, labels, sum,
             total);
    return total;
}

static const char *const reasons[] = {"clean",   "reset",    "timeout", "overflow",
                                      "aborted", "canceled", "other"};

/* Scrapes until `open` connections are open and `closed` closed (the
 * server sees a close a moment after the client makes it), at most 5 s.
 * Returns that scrape. */
static char *scrape_settled(int port, int workers, long long open, long long closed)
{
    uint64_t deadline = now_ms() + TIMEOUT;
    for (;;) {
        char *text = scrape(port);
        long long sum = 0;
        for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
            char label[32];
            snprintf(label, sizeof label, "reason=\"%s\"", reasons[i]);
            sum += total_and_workers(text, "connections_closed_total", label, workers);
        }
        if (sum == closed && total_and_workers(text, "connections_open", "", workers) == open)
            return text;
        if (now_ms() > deadline)
            FAIL("the figures did not settle at %lld open, %lld closed:\n%s", open, closed, text);
        free(text);
        sleep_ms(10);
    }
}

/* Every family has its HELP and TYPE lines. */
static void expect_family(const char *text, const char *name, const char *type)
{
    char line[160];
    snprintf(line, sizeof line, "# TYPE %s %s\n", name, type);
    if (!strstr(text, line))
        FAIL("no \"# TYPE %s %s\" line", name, type);
    snprintf(line, sizeof line, "# HELP %s ", name);
    if (!strstr(text, line))
        FAIL("no \"# HELP %s\" line", name);
}

static void check_histogram(const char *text, const char *prefix, const char *worker,
                            long long count)
{
    static const char *const le[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025",
                                     "0.005",  "0.01",    "0.025",  "0.05",  "0.1",
                                     "0.25",   "0.5",     "1",      "10",    "+Inf"};
    long long before = 0;
    char series[200];
    for (size_t i = 0; i < sizeof le / sizeof le[0]; i++) {
        snprintf(series, sizeof series, "%shttp_response_seconds_bucket{%sle=\"%s\"}", prefix,
                 worker, le[i]);
        long long v = must(text, series);
        ASSERT_GE(v, before); /* cumulative */
        before = v;
    }
    ASSERT_EQ(before, count);
    char labels[40] = "";
    if (*worker)
        snprintf(labels, sizeof labels, "{%.*s}", (int)strlen(worker) - 1, worker);
    snprintf(series, sizeof series, "%shttp_response_seconds_count%s", prefix, labels);
    ASSERT_EQ(must(text, series), count);
    snprintf(series, sizeof series, "%shttp_response_seconds_sum%s", prefix, labels);
    ASSERT_GE(must(text, series), 0);
}

static void http_figures(void)
{
    enum { WORKERS = 2, CONNS = 6, FOUND = 37, MISSING = 5 };
    struct server s;
    http_server_start(
        ritual_program(), root,
        (const char *const[]){"--workers", "2", "--metrics-listen", "127.0.0.1:0", NULL}, &s);
    int mport = read_metrics_port(&s);
    char *text = scrape(mport); /* before any traffic: zeros, and the scrape counts nowhere */
    ASSERT_EQ(total_and_workers(text, "connections_accepted_total", "", WORKERS), 0);
    ASSERT_EQ(total_and_workers(text, "http_responses_total", "class=\"2xx\"", WORKERS), 0);
    free(text);

    struct http_client *c[CONNS];
    for (int i = 0; i < CONNS; i++)
        c[i] = http_client_open(s.port);
    uint64_t sent = 0, received = 0, body = 0;
    for (int i = 0; i < FOUND + MISSING; i++) {
        const char *raw = i < FOUND ? "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"
                                    : "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n";
        struct http_client *cl = c[i % CONNS];
        http_send(cl, raw);
        sent += strlen(raw);
        struct http_response r;
        ASSERT_EQ(http_read_response(cl, &r, 0, TIMEOUT), 1);
        ASSERT_EQ(r.status, i < FOUND ? 200 : 404);
        received += r.head_len + r.body_len;
        body += r.body_len;
        http_response_free(&r);
    }
    for (int i = 0; i < CONNS; i++)
        http_client_close(c[i]);

    text = scrape_settled(mport, WORKERS, 0, CONNS);
    note("%llu bytes sent, %llu received, %llu of them body", (unsigned long long)sent,
         (unsigned long long)received, (unsigned long long)body);
    ASSERT_EQ(total_and_workers(text, "connections_accepted_total", "", WORKERS), CONNS);
    ASSERT_EQ(total_and_workers(text, "connections_closed_total", "reason=\"clean\"", WORKERS),
              CONNS);
    ASSERT_EQ(total_and_workers(text, "bytes_received_total", "", WORKERS), sent);
    ASSERT_EQ(total_and_workers(text, "bytes_sent_total", "", WORKERS), received);
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    const long long want[] = {0, FOUND, 0, MISSING, 0};
    for (int i = 0; i < 5; i++) {
        char label[32];
        snprintf(label, sizeof label, "class=\"%s\"", classes[i]);
        ASSERT_EQ(total_and_workers(text, "http_responses_total", label, WORKERS), want[i]);
    }
    ASSERT_EQ(total_and_workers(text, "http_response_body_bytes_total", "", WORKERS), body);
    check_histogram(text, "ritual_", "", FOUND + MISSING);
    long long per_worker = 0;
    for (int w = 0; w < WORKERS; w++) {
        char worker[24];
        snprintf(worker, sizeof worker, "worker=\"%d\",", w);
        char series[96];
        snprintf(series, sizeof series, "ritual_worker_http_response_seconds_count{worker=\"%d\"}",
                 w);
        long long n = must(text, series);
        check_histogram(text, "ritual_worker_", worker, n);
        per_worker += n;
    }
    ASSERT_EQ(per_worker, FOUND + MISSING);
    ASSERT_EQ(must(text, "ritual_workers"), WORKERS);
    expect_family(text, "ritual_connections_open", "gauge");
    expect_family(text, "ritual_worker_connections_open", "gauge");
    expect_family(text, "ritual_connections_closed_total", "counter");
    expect_family(text, "ritual_http_response_seconds", "histogram");
    expect_family(text, "ritual_worker_http_response_seconds", "histogram");

    /* HEAD, another path, another method: answered by the metrics loop,
     * counted in no worker's figures. */
    struct http_response r;
    http_exchange(mport, "HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n", &r, TIMEOUT);
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.body_len, 0);
    http_response_free(&r);
    http_exchange(mport, "GET /other HTTP/1.1\r\nHost: t\r\n\r\n", &r, TIMEOUT);
    ASSERT_EQ(r.status, 404);
    http_response_free(&r);
    http_exchange(mport, "POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r,
                  TIMEOUT);
    ASSERT_EQ(r.status, 405);
    http_response_free(&r);
    char *again = scrape(mport);
    ASSERT_EQ(total_and_workers(again, "connections_accepted_total", "", WORKERS), CONNS);
    ASSERT_EQ(total_and_workers(again, "http_responses_total", "class=\"4xx\"", WORKERS), MISSING);
    ASSERT_EQ(total_and_workers(again, "bytes_received_total", "", WORKERS), sent);
    free(again);
    free(text);
    server_expect_clean_exit(&s);
}

static void echo_figures(void)
{
    enum { WORKERS = 2, CONNS = 4 };
    struct server s;
    server_start(ritual_program(),
                 (const char *const[]){"--workers", "2", "--metrics-listen", "127.0.0.1:0", NULL},
                 0, &s);
    int mport = read_metrics_port(&s);
    long long bytes = 0;
    char msg[3000];
    for (int i = 0; i < CONNS; i++) {
        int fd = tcp_connect(s.port);
        size_t n = 100 + 700 * (size_t)i; /* 100, 800, 1500, 2200 */
        for (size_t k = 0; k < n; k++)
            msg[k] = (char)('a' + (i + k) % 26);
        echo_roundtrip(fd, msg, n, TIMEOUT);
        bytes += (long long)n;
        close(fd);
    }
    char *text = scrape_settled(mport, WORKERS, 0, CONNS);
    ASSERT_EQ(total_and_workers(text, "connections_accepted_total", "", WORKERS), CONNS);
    ASSERT_EQ(total_and_workers(text, "bytes_received_total", "", WORKERS), bytes);
    ASSERT_EQ(total_and_workers(text, "bytes_sent_total", "", WORKERS), bytes);
    if (strstr(text, "http_"))
        FAIL("ritual echo exports HTTP figures:\n%s", text);
    free(text);
    server_expect_clean_exit(&s);
}

static void port_in_use(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    SYSCHECK(fd);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    SYSCHECK(bind(fd, (struct sockaddr *)&a, sizeof a));
    SYSCHECK(listen(fd, 1));
    char address[32], want[160];
    snprintf(address, sizeof address, "127.0.0.1:%d", socket_port(fd));
    snprintf(want, sizeof want, "ritual: --metrics-listen %s: bind %s: Address already in use\n",
             address, address);
    const char *const http[] = {
        ritual_program(),   "http",  "--root", root, "--listen", "127.0.0.1:0",
        "--metrics-listen", address, NULL};
    const char *const echo[] = {ritual_program(),   "echo",  "--listen", "127.0.0.1:0",
                                "--metrics-listen", address, NULL};
    const char *const *cmds[] = {http, echo};
    for (int i = 0; i < 2; i++) {
        struct cmd_result r;
        run_command(cmds[i], TIMEOUT, &r);
        ASSERT_EQ(r.exit_code, 1);
        ASSERT_EQ(r.out_len, 0); /* no "listening on": nothing was served */
        if (strcmp(r.err, want) != 0)
            FAIL("stderr is \"%s\", expected \"%s\"", r.err, want);
    }
    close(fd);
}

TEST_CASES_WITH(make_root, remove_root, CASE(http_figures), CASE(echo_figures), CASE(port_in_use))
