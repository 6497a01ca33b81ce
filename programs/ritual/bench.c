/* bench.c - `ritual bench WORKLOAD`: options, one loop per thread, the
 * measured window, and the report (text or JSON). A workload (echo, http) is
 * a table of hooks into the threads' lives. */
#include "bench.h"
#include "ritual_tls.h"
#include "cli.h"
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char bench_usage[] =
    "Usage: ritual bench echo --connect HOST:PORT [options]\n"
    "       ritual bench http --connect HOST:PORT [--url PATH]... [options]\n"
    "\n"
    "Load a server and measure it. echo: every byte sent must come back, in order.\n"
    "http: keep-alive GET requests, the URLs taking turns; every response is parsed\n"
    "and its body read, and must have a 2xx status.\n"
    "\n"
    "Options:\n"
    "  --connect HOST:PORT   the server (required)\n"
    "  --connections N       connections in all (default 100)\n"
    "  --duration SECONDS    length of the measured run (default 10)\n"
    "  --size BYTES          echo: message size, K/M suffixes allowed (default 64)\n"
    "  --url PATH            http: a request target such as /index.html; repeat it for\n"
    "                        more, used round-robin (default /)\n"
    "  --pipeline D          closed loop: messages (requests) in flight per connection\n"
    "                        (default 1)\n"
    "  --rate R              open loop instead: R messages per second in all, latency\n"
    "                        counted from when each message was due\n"
    "  --threads T           threads, each with its own loop (default 1)\n"
    "  --timeout SECONDS     a message unanswered this long is an error (default 10)\n"
    "  --close               http: every request says Connection: close, so each\n"
    "                        costs a new connection (and TLS handshake)\n"
    "  --tls                 speak TLS (not verified unless --tls-ca)\n"
    "  --tls-ca FILE         verify the server against these CAs (PEM)\n"
    "  --tls-sni NAME        the server name to send (and verify)\n"
    "  --tls-resume          offer the last session on every new connection\n"
    "  --json                print one JSON object instead of the text report\n"
    "  -h, --help            show this help\n"
    "\n"
    "Exit status: 0 if there was no error, 1 if any (connect, reset, timeout, a wrong\n"
    "byte; for http a malformed response or a status other than 2xx), 2 on a usage\n"
    "error.\n";

/* What a workload supplies: the hooks of bench.h, by name. */
struct workload {
    const char *name;
    int (*prepare)(const struct bench_config *cfg);
    int (*start_thread)(struct bench_thread *t);
    void (*window_opened)(struct bench_thread *t);
    void (*tick)(struct bench_thread *t);
    void (*check)(struct bench_thread *t);
    void (*stop_thread)(struct bench_thread *t);
    void (*cleanup)(void);
};

static const struct workload workloads[] = {
    {"echo", bench_echo_prepare, bench_echo_start_thread, bench_echo_window_opened, bench_echo_tick,
     bench_echo_check, bench_echo_stop_thread, bench_echo_cleanup},
    {"http", bench_http_prepare, bench_http_start_thread, bench_http_window_opened, bench_http_tick,
     bench_http_check, bench_http_stop_thread, bench_http_cleanup},
};

/* The one chosen by the command line, set before any thread starts. */
static const struct workload *workload;

uint64_t bench_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bench_note_error(struct bench_thread *t, const char *fmt, ...)
{
    if (t->first_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->first_error, sizeof t->first_error, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ one thread */

/* CPU time of the calling thread: the generator's own cost, in the window. */
static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_stop(ritual_timer *timer, void *data)
{
    struct bench_thread *t = data;
    (void)timer;
    t->end_ns = bench_clock_ns();
    if (t->running)
        t->cpu_ns = thread_cpu_ns() - t->cpu_ns;
    else
        t->cpu_ns = 0;
    t->running = false;
    t->ended = true;
    ritual_timer_stop(t->tick_timer);
    ritual_timer_stop(t->check_timer);
    /* Close every connection politely (each echo server closes on our FIN);
     * give up on stragglers after a second. */
    ritual_loop_shutdown(t->loop, 1000);
}

/* Open loop: send what is due, then sleep until the next message is due,
 * but at least 20 us, so that high rates go out in small batches instead of
 * one loop iteration per message. */
static void on_tick(ritual_timer *timer, void *data)
{
    struct bench_thread *t = data;
    workload->tick(t);
    if (!t->running)
        return;
    uint64_t due = t->start_ns + (uint64_t)((double)t->next_k * t->step_ns);
    uint64_t now = bench_clock_ns();
    uint64_t wait_us = due > now ? (due - now + 999) / 1000 : 0;
    ritual_timer_start_us(timer, wait_us < 20 ? 20 : wait_us, 0);
}

static void on_check(ritual_timer *timer, void *data)
{
    (void)timer;
    workload->check(data);
}

void bench_count_handshake(struct bench_thread *t, const ritual_conn *conn)
{
    ritual_tls_info info;
    if (!t->running || ritual_conn_tls_info(conn, &info) < 0)
        return;
    if (info.resumed)
        t->tls_resumed++;
    else
        t->tls_full++;
}

void bench_conn_settled(struct bench_thread *t)
{
    if (++t->settled < t->nconns)
        return;
    /* Every connection is up (or failed): the measured window opens. */
    size_t open = ritual_loop_conn_count(t->loop);
    t->start_ns = bench_clock_ns();
    if (open == 0) {
        on_stop(t->stop_timer, t);
        return;
    }
    t->running = true;
    t->cpu_ns = thread_cpu_ns();
    ritual_timer_start(t->stop_timer, (uint64_t)(t->cfg->duration_s * 1000), 0);
    ritual_timer_start(t->check_timer, 1000, 1000);
    if (t->cfg->rate > 0) {
        t->step_ns = 1e9 * t->cfg->threads / t->cfg->rate;
        ritual_timer_start_us(t->tick_timer, 0, 0);
    }
    workload->window_opened(t);
}

static void *thread_main(void *arg)
{
    struct bench_thread *t = arg;
    ritual_error err;
    ritual_loop_options lo = {.log_level = RITUAL_LOG_ERROR};
    t->loop = ritual_loop_new(&lo, &err);
    if (!t->loop) {
        bench_note_error(t, "%s", err.message);
        t->errors.connect += t->nconns;
        return NULL;
    }
    t->stop_timer = ritual_timer_new(t->loop, on_stop, t);
    t->tick_timer = ritual_timer_new(t->loop, on_tick, t);
    t->check_timer = ritual_timer_new(t->loop, on_check, t);
    if (!t->stop_timer || !t->tick_timer || !t->check_timer || workload->start_thread(t) < 0) {
        bench_note_error(t, "out of memory");
        t->errors.connect += t->nconns;
    } else if (!t->ended) {
        ritual_loop_run(t->loop);
    }
    if (!t->end_ns)
        t->end_ns = bench_clock_ns();
    ritual_loop_free(t->loop); /* frees the timers too */
    workload->stop_thread(t);
    return NULL;
}

/* --------------------------------------------------------------- report */

struct totals {
    struct histogram hist;
    struct bench_errors errors;
    uint64_t messages, bytes;
    double seconds; /* the longest window */
    double rate;    /* sum over threads of messages / window */
    uint64_t cpu_us;
    uint64_t status_class[6]; /* http */
    uint64_t reconnects;      /* http */
    uint64_t idle_closed;     /* http */
    uint64_t retried;         /* http */
    uint64_t tls_full, tls_resumed;
    const char *first_error;
};

static uint64_t error_count(const struct bench_errors *e)
{
    return e->connect + e->reset + e->timeout + e->verify + e->overload + e->protocol + e->status;
}

/* Bytes per second: the measured rate times the bytes of an average message. */
static double byte_rate(const struct totals *tot)
{
    return tot->messages ? tot->rate * (double)tot->bytes / (double)tot->messages : 0;
}

static void print_text(const struct bench_config *cfg, const struct totals *tot)
{
    const struct histogram *h = &tot->hist;
    bool http = strcmp(cfg->workload, "http") == 0;
    const char *unit = http ? "request" : "message";
    printf("ritual bench %s: %s, %u connection%s, %u thread%s, ", cfg->workload, cfg->target,
           cfg->connections, cfg->connections == 1 ? "" : "s", cfg->threads,
           cfg->threads == 1 ? "" : "s");
    if (http)
        printf("%u URL%s (%s%s), ", cfg->nurls, cfg->nurls == 1 ? "" : "s", cfg->urls[0],
               cfg->nurls > 1 ? " ..." : "");
    else
        printf("%zu-byte messages, ", cfg->size);
    if (cfg->rate > 0)
        printf("open loop at %.0f/s\n", cfg->rate);
    else
        printf("closed loop, pipeline %u\n", cfg->pipeline);
    printf("  %ss  %llu in %.2f s: %.0f/s, %.2f MB/s\n", unit, (unsigned long long)tot->messages,
           tot->seconds, tot->rate, (http ? byte_rate(tot) : tot->rate * (double)cfg->size) / 1e6);
    printf("  latency   p50 %.1f us  p90 %.1f us  p99 %.1f us  p99.9 %.1f us  max %.1f us  "
           "(mean %.1f us)\n",
           hist_percentile(h, 50) / 1e3, hist_percentile(h, 90) / 1e3, hist_percentile(h, 99) / 1e3,
           hist_percentile(h, 99.9) / 1e3, (h->count ? h->max : 0) / 1e3, hist_mean(h) / 1e3);
    const struct bench_errors *e = &tot->errors;
    if (http) {
        const uint64_t *c = tot->status_class;
        printf("  status    2xx %llu  3xx %llu  4xx %llu  5xx %llu  other %llu\n",
               (unsigned long long)c[2], (unsigned long long)c[3], (unsigned long long)c[4],
               (unsigned long long)c[5], (unsigned long long)(c[0] + c[1]));
        printf("  errors    connect %llu  reset %llu  timeout %llu  protocol %llu  status %llu  "
               "overload %llu\n",
               (unsigned long long)e->connect, (unsigned long long)e->reset,
               (unsigned long long)e->timeout, (unsigned long long)e->protocol,
               (unsigned long long)e->status, (unsigned long long)e->overload);
        if (tot->reconnects)
            printf("  reconnects %llu (the server closed after Connection: close)\n",
                   (unsigned long long)tot->reconnects);
        if (tot->idle_closed)
            printf("  idle closes %llu (the server closed a connection with no request on it)\n",
                   (unsigned long long)tot->idle_closed);
        if (tot->retried)
            printf("  retried %llu (closed before any byte of the answer: sent again)\n",
                   (unsigned long long)tot->retried);
        if (cfg->tls)
            printf("  TLS handshakes %llu full, %llu resumed\n", (unsigned long long)tot->tls_full,
                   (unsigned long long)tot->tls_resumed);
    } else {
        printf("  errors    connect %llu  reset %llu  timeout %llu  verify %llu  overload %llu\n",
               (unsigned long long)e->connect, (unsigned long long)e->reset,
               (unsigned long long)e->timeout, (unsigned long long)e->verify,
               (unsigned long long)e->overload);
    }
    if (tot->first_error)
        printf("  first     %s\n", tot->first_error);
    if (tot->messages)
        printf("  cpu       %.3f us per %s (this generator, in the window)\n",
               (double)tot->cpu_us / (double)tot->messages, unit);
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void print_json_string(const char *text)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void print_json_latency(const struct histogram *h)
{
    printf("\"latency_us\":{\"min\":%.3f,\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
           "\"p999\":%.3f,\"max\":%.3f},",
           (h->count ? h->min : 0) / 1e3, hist_mean(h) / 1e3, hist_percentile(h, 50) / 1e3,
           hist_percentile(h, 90) / 1e3, hist_percentile(h, 99) / 1e3,
           hist_percentile(h, 99.9) / 1e3, (h->count ? h->max : 0) / 1e3);
}

/* The http report: "requests" where echo says "messages", statuses, and the
 * errors that HTTP can have. */
static void print_json_http(const struct bench_config *cfg, const struct totals *tot)
{
    const struct bench_errors *e = &tot->errors;
    const uint64_t *c = tot->status_class;
    printf("{\"workload\":\"http\",\"target\":");
    print_json_string(cfg->target);
    printf(",\"connections\":%u,\"threads\":%u,\"pipeline\":%u,\"rate\":", cfg->connections,
           cfg->threads, cfg->pipeline);
    if (cfg->rate > 0)
        printf("%.0f", cfg->rate);
    else
        printf("null");
    printf(",\"urls\":[");
    for (unsigned i = 0; i < cfg->nurls; i++) {
        if (i)
            putchar(',');
        print_json_string(cfg->urls[i]);
    }
    printf("],\"duration_s\":%.3f,\"requests\":%llu,\"bytes\":%llu,\"requests_per_s\":%.1f,"
           "\"bytes_per_s\":%.1f,",
           tot->seconds, (unsigned long long)tot->messages, (unsigned long long)tot->bytes,
           tot->rate, byte_rate(tot));
    print_json_latency(&tot->hist);
    printf("\"status\":{\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu,"
           "\"other\":%llu},",
           (unsigned long long)c[1], (unsigned long long)c[2], (unsigned long long)c[3],
           (unsigned long long)c[4], (unsigned long long)c[5], (unsigned long long)c[0]);
    printf("\"errors\":{\"connect\":%llu,\"reset\":%llu,\"timeout\":%llu,\"protocol\":%llu,"
           "\"status\":%llu,\"overload\":%llu,\"total\":%llu},\"reconnects\":%llu,",
           (unsigned long long)e->connect, (unsigned long long)e->reset,
           (unsigned long long)e->timeout, (unsigned long long)e->protocol,
           (unsigned long long)e->status, (unsigned long long)e->overload,
           (unsigned long long)error_count(e), (unsigned long long)tot->reconnects);
    printf("\"idle_closed\":%llu,\"retried\":%llu,", (unsigned long long)tot->idle_closed,
           (unsigned long long)tot->retried);
    printf("\"tls_full\":%llu,\"tls_resumed\":%llu,", (unsigned long long)tot->tls_full,
           (unsigned long long)tot->tls_resumed);
    printf("\"client_cpu_us\":%llu,\"client_cpu_us_per_req\":%.4f}\n",
           (unsigned long long)tot->cpu_us,
           tot->messages ? (double)tot->cpu_us / (double)tot->messages : 0.0);
}

static void print_json(const struct bench_config *cfg, const struct totals *tot)
{
    const struct histogram *h = &tot->hist;
    const struct bench_errors *e = &tot->errors;
    if (strcmp(cfg->workload, "http") == 0) {
        print_json_http(cfg, tot);
        return;
    }
    printf("{\"workload\":\"echo\",\"target\":\"%s\",\"connections\":%u,\"threads\":%u,"
           "\"size\":%zu,\"pipeline\":%u,\"rate\":",
           cfg->target, cfg->connections, cfg->threads, cfg->size, cfg->pipeline);
    if (cfg->rate > 0)
        printf("%.0f", cfg->rate);
    else
        printf("null");
    printf(",\"duration_s\":%.3f,\"messages\":%llu,\"bytes\":%llu,\"messages_per_s\":%.1f,"
           "\"bytes_per_s\":%.1f,",
           tot->seconds, (unsigned long long)tot->messages, (unsigned long long)tot->bytes,
           tot->rate, tot->rate * (double)cfg->size);
    printf("\"latency_us\":{\"min\":%.3f,\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
           "\"p999\":%.3f,\"max\":%.3f},",
           (h->count ? h->min : 0) / 1e3, hist_mean(h) / 1e3, hist_percentile(h, 50) / 1e3,
           hist_percentile(h, 90) / 1e3, hist_percentile(h, 99) / 1e3,
           hist_percentile(h, 99.9) / 1e3, (h->count ? h->max : 0) / 1e3);
    printf("\"errors\":{\"connect\":%llu,\"reset\":%llu,\"timeout\":%llu,\"verify\":%llu,"
           "\"overload\":%llu,\"total\":%llu},",
           (unsigned long long)e->connect, (unsigned long long)e->reset,
           (unsigned long long)e->timeout, (unsigned long long)e->verify,
           (unsigned long long)e->overload, (unsigned long long)error_count(e));
    printf("\"client_cpu_us\":%llu,\"client_cpu_us_per_msg\":%.4f}\n",
           (unsigned long long)tot->cpu_us,
           tot->messages ? (double)tot->cpu_us / (double)tot->messages : 0.0);
}

/* ------------------------------------------------------------- options */

enum {
    OPT_CONNECT = 256,
    OPT_CONNS,
    OPT_DURATION,
    OPT_SIZE,
    OPT_PIPELINE,
    OPT_RATE,
    OPT_THREADS,
    OPT_TIMEOUT,
    OPT_URL,
    OPT_JSON,
    OPT_CLOSE,
    OPT_TLS,
    OPT_TLS_CA,
    OPT_TLS_SNI,
    OPT_TLS_RESUME,
};

static int parse_args(int argc, char **argv, struct bench_config *cfg)
{
    static const struct option options[] = {
        {"connect", required_argument, NULL, OPT_CONNECT},
        {"connections", required_argument, NULL, OPT_CONNS},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"size", required_argument, NULL, OPT_SIZE},
        {"pipeline", required_argument, NULL, OPT_PIPELINE},
        {"rate", required_argument, NULL, OPT_RATE},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"url", required_argument, NULL, OPT_URL},
        {"json", no_argument, NULL, OPT_JSON},
        {"close", no_argument, NULL, OPT_CLOSE},
        {"tls", no_argument, NULL, OPT_TLS},
        {"tls-ca", required_argument, NULL, OPT_TLS_CA},
        {"tls-sni", required_argument, NULL, OPT_TLS_SNI},
        {"tls-resume", no_argument, NULL, OPT_TLS_RESUME},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(bench_usage, stdout);
        return -1;
    }
    if (argc < 2 || argv[1][0] == '-')
        return cli_usage_error("bench", "name a workload: ritual bench echo ...");
    cfg->workload = argv[1];
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
        if (strcmp(cfg->workload, workloads[i].name) == 0)
            workload = &workloads[i];
    if (!workload)
        return cli_usage_error("bench", "unknown workload '%s' (there are: echo, http)",
                               cfg->workload);
    bool http = strcmp(workload->name, "http") == 0, sized = false;
    argc--, argv++;
    /* --url may repeat: room for every argument, at most. */
    if (http && !(cfg->urls = calloc((size_t)argc + 1, sizeof *cfg->urls)))
        return cli_runtime_error("bench: out of memory");

    unsigned long n;
    uint64_t ms;
    int c;
    opterr = 0;
    while ((c = cli_getopt(argc, argv, ":h", options)) != -1) {
        switch (c) {
        case OPT_CONNECT:
            cfg->target = optarg;
            break;
        case OPT_CONNS:
            if (cli_parse_uint(optarg, 1000000, &n) < 0 || n == 0)
                return cli_usage_error("bench",
                                       "--connections: '%s' is not a number from 1 to "
                                       "1000000",
                                       optarg);
            cfg->connections = (unsigned)n;
            break;
        case OPT_DURATION:
            if (cli_parse_seconds(optarg, &ms) < 0 || ms == 0)
                return cli_usage_error("bench",
                                       "--duration: '%s' is not a positive number of "
                                       "seconds",
                                       optarg);
            cfg->duration_s = (double)ms / 1000;
            break;
        case OPT_SIZE:
            sized = true;
            if (cli_parse_size(optarg, &cfg->size) < 0 || cfg->size == 0 || cfg->size > (64u << 20))
                return cli_usage_error("bench", "--size: '%s' is not a size from 1 to 64M", optarg);
            break;
        case OPT_PIPELINE:
            if (cli_parse_uint(optarg, 4096, &n) < 0 || n == 0)
                return cli_usage_error("bench", "--pipeline: '%s' is not a number from 1 to 4096",
                                       optarg);
            cfg->pipeline = (unsigned)n;
            break;
        case OPT_RATE:
            if (cli_parse_uint(optarg, 100000000, &n) < 0 || n == 0)
                return cli_usage_error("bench",
                                       "--rate: '%s' is not a positive number of "
                                       "messages per second",
                                       optarg);
            cfg->rate = (double)n;
            break;
        case OPT_THREADS:
            if (cli_parse_uint(optarg, 256, &n) < 0 || n == 0)
                return cli_usage_error("bench", "--threads: '%s' is not a number from 1 to 256",
                                       optarg);
            cfg->threads = (unsigned)n;
            break;
        case OPT_TIMEOUT:
            if (cli_parse_seconds(optarg, &cfg->timeout_ms) < 0 || cfg->timeout_ms == 0)
                return cli_usage_error("bench",
                                       "--timeout: '%s' is not a positive number of "
                                       "seconds",
                                       optarg);
            break;
        case OPT_URL:
            if (!http)
                return cli_usage_error("bench", "--url is for the http workload");
            if (optarg[0] != '/' || strlen(optarg) > 8000 || strpbrk(optarg, " \t\r\n"))
                return cli_usage_error("bench",
                                       "--url: '%s' is not a path starting with / (no "
                                       "spaces, at most 8000 bytes)",
                                       optarg);
            cfg->urls[cfg->nurls++] = optarg;
            break;
        case OPT_JSON:
            cfg->json = true;
            break;
        case OPT_CLOSE:
            if (!http)
                return cli_usage_error("bench", "--close is for the http workload");
            cfg->close = true;
            break;
        case OPT_TLS:
            cfg->tls_on = true;
            break;
        case OPT_TLS_CA:
            if (cli_path_option("bench", "--tls-ca", optarg) != 0)
                return EXIT_USAGE;
            cfg->tls_on = true;
            cfg->tls_ca = optarg;
            break;
        case OPT_TLS_SNI:
            cfg->tls_on = true;
            cfg->tls_sni = optarg;
            break;
        case OPT_TLS_RESUME:
            cfg->tls_on = true;
            cfg->tls_resume = true;
            break;
        case 'h':
            fputs(bench_usage, stdout);
            return -1;
        default:
            return cli_getopt_error("bench", c, argv, optind);
        }
    }
    if (optind < argc)
        return cli_usage_error("bench", "unexpected argument '%s'", argv[optind]);
    if (!cfg->target)
        return cli_usage_error("bench", "--connect HOST:PORT is required");
    ritual_error err;
    if (ritual_address_parse(cfg->target, NULL, NULL, &err) < 0)
        return cli_usage_error("bench", "--connect: %s", err.message);
    if (cfg->rate > 0 && cfg->pipeline > 1)
        return cli_usage_error("bench", "--pipeline is for the closed loop; --rate sets the "
                                        "open loop's pace");
    if (http && sized)
        return cli_usage_error("bench", "--size is for the echo workload");
    if (http && cfg->nurls == 0)
        cfg->urls[cfg->nurls++] = "/";
    if (cfg->close && cfg->pipeline > 1)
        return cli_usage_error("bench", "--close sends one request per connection: no "
                                        "--pipeline");
    if (cfg->threads > cfg->connections)
        cfg->threads = cfg->connections;
    return 0;
}

/* --------------------------------------------------------------- main */

/* One line a second on stderr, when a person is watching. */
static void progress(struct bench_thread *threads, unsigned n, double elapsed, uint64_t *last)
{
    const char *unit = strcmp(workload->name, "http") == 0 ? "req" : "msg";
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += atomic_load_explicit(&threads[i].messages, memory_order_relaxed);
    fprintf(stderr, "  %4.0f s  %10.0f %s/s\n", elapsed, (double)(total - *last), unit);
    *last = total;
}

int bench_main(int argc, char **argv)
{
    struct bench_config cfg = {
        .connections = 100,
        .threads = 1,
        .pipeline = 1,
        .size = 64,
        .duration_s = 10,
        .timeout_ms = 10000,
    };
    int rc = parse_args(argc, argv, &cfg);
    if (rc != 0) {
        free(cfg.urls);
        return rc < 0 ? EXIT_OK : rc;
    }
    signal(SIGPIPE, SIG_IGN);
    cli_raise_nofile(NULL); /* a descriptor per connection */
    if (cfg.tls_on) {
        ritual_tls_options o = {.ca_file = cfg.tls_ca,
                                .no_verify = cfg.tls_ca == NULL,
                                .no_resume = !cfg.tls_resume,
                                .alpn = strcmp(workload->name, "http") == 0 ? "http/1.1" : NULL};
        ritual_error err;
        cfg.tls = ritual_tls_client_new(&o, &err);
        if (!cfg.tls)
            return cli_runtime_error("bench: %s", err.message);
    }
    if (workload->prepare(&cfg) < 0)
        return cli_runtime_error("bench: out of memory");

    struct bench_thread *threads = calloc(cfg.threads, sizeof *threads);
    if (!threads)
        return cli_runtime_error("bench: out of memory");
    unsigned first = 0;
    for (unsigned i = 0; i < cfg.threads; i++) {
        struct bench_thread *t = &threads[i];
        t->cfg = &cfg;
        t->index = i;
        t->nconns = cfg.connections / cfg.threads + (i < cfg.connections % cfg.threads);
        t->first_id = first;
        first += t->nconns;
        hist_init(&t->hist);
        int e = pthread_create(&t->tid, NULL, thread_main, t);
        if (e != 0)
            return cli_runtime_error("bench: pthread_create: %s", strerror(e));
    }
    if (isatty(STDERR_FILENO) && !cfg.json) {
        uint64_t last = 0;
        for (double s = 1; s < cfg.duration_s + 0.5; s++) {
            struct timespec ts = {1, 0};
            nanosleep(&ts, NULL);
            progress(threads, cfg.threads, s, &last);
        }
    }
    struct totals tot;
    memset(&tot, 0, sizeof tot);
    hist_init(&tot.hist);
    for (unsigned i = 0; i < cfg.threads; i++) {
        struct bench_thread *t = &threads[i];
        pthread_join(t->tid, NULL);
        hist_merge(&tot.hist, &t->hist);
        tot.messages += t->messages;
        tot.bytes += t->bytes;
        tot.cpu_us += t->cpu_ns / 1000;
        double secs =
            t->start_ns && t->end_ns > t->start_ns ? (double)(t->end_ns - t->start_ns) / 1e9 : 0;
        if (secs > tot.seconds)
            tot.seconds = secs;
        if (secs > 0)
            tot.rate += (double)t->messages / secs;
        tot.errors.connect += t->errors.connect;
        tot.errors.reset += t->errors.reset;
        tot.errors.timeout += t->errors.timeout;
        tot.errors.verify += t->errors.verify;
        tot.errors.overload += t->errors.overload;
        tot.errors.protocol += t->errors.protocol;
        tot.errors.status += t->errors.status;
        for (int k = 0; k < 6; k++)
            tot.status_class[k] += t->status_class[k];
        tot.reconnects += t->reconnects;
        tot.idle_closed += t->idle_closed;
        tot.retried += t->retried;
        tot.tls_full += t->tls_full;
        tot.tls_resumed += t->tls_resumed;
        if (!tot.first_error && t->first_error[0])
            tot.first_error = t->first_error;
    }
    if (cfg.json)
        print_json(&cfg, &tot);
    else
        print_text(&cfg, &tot);
    fflush(stdout);
    if (tot.first_error && cfg.json)
        fprintf(stderr, "ritual: bench: %s\n", tot.first_error);
    free(threads);
    workload->cleanup();
    free(cfg.urls);
    ritual_tls_free(cfg.tls);
    return error_count(&tot.errors) ? EXIT_RUNTIME : EXIT_OK;
}
