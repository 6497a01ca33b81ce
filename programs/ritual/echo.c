/* echo.c - `ritual echo`: every byte that arrives goes straight back. The
 * whole server is the on_data callback below; the library does the rest. */
#include "cli.h"
#include "commands.h"
#include "metrics.h"
#include "ritual_tls.h"

#include <errno.h>
#include <stdint.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char echo_usage[] =
    "Usage: ritual echo [options]\n"
    "\n"
    "Echo every byte each client sends back to it.\n"
    "\n"
    "Options:\n"
    "  --listen ADDRESS         where to listen (default 127.0.0.1:7000); repeat\n" CLI_LISTEN_USAGE
    "  --workers N              loops on threads of their own (default: the number of\n"
    "                           online CPUs); 1 runs a single loop\n"
    "  --accept-mode MODE       reuseport: a listening socket per worker, the kernel\n"
    "                           spreads connections (default); shared: one socket,\n"
    "                           EPOLLEXCLUSIVE (uneven: the last worker to wait wins)\n"
    "  --pin                    pin worker i to CPU i\n"
    "  --backend NAME           auto, io_uring, epoll or poll (default auto:\n"
    "                           io_uring where the kernel allows it, else epoll,\n"
    "                           unless the environment variable RITUAL_BACKEND\n"
    "                           names one)\n"
    "  --backlog N              pending-connection queue (default: net.core.somaxconn)\n"
    "  --max-conns N            stop accepting at N open connections, N/workers per\n"
    "                           worker (default: no limit)\n"
    "  --idle-timeout SECONDS   close connections idle this long; 0 never (default 300)\n"
    "  --buffer-size BYTES      read size and per-connection input limit, K/M suffixes\n"
    "                           allowed (default 64K)\n"
    "  --drain-timeout SECONDS  on SIGTERM/SIGINT, let connections mid-transfer finish\n"
    "                           for up to this long (default 10); a connection with\n"
    "                           nothing in flight closes once it has been silent for\n"
    "                           a second; a second signal stops at once\n"
    "  --proxy-protocol CIDRS   expect a PROXY protocol header (HAProxy's, v1 or v2)\n"
    "                           from these comma-separated sources, addresses or\n"
    "                           CIDRs (127.0.0.1,10.0.0.0/8); connections from\n"
    "                           elsewhere, or with a bad header, are closed\n"
    "  --proxy-timeout SECONDS  close a connection whose PROXY header is not whole\n"
    "                           this long after it connected (default 5)\n"
    "  --log-level LEVEL        error, warn, info or debug (default info)\n" CLI_TLS_USAGE
    "  --metrics-listen HOST:PORT\n"
    "                           serve Prometheus metrics at /metrics on this address:\n"
    "                           connections, bytes, closes by reason, per worker and\n"
    "                           summed; answered by the main thread, never by a busy\n"
    "                           worker\n"
    "  -h, --help               show this help\n"
    "\n"
    "Prints 'listening on ADDRESS' on stdout for each address once ready (then\n"
    "'metrics on ADDRESS' with --metrics-listen). Exit status: 0 after a clean\n"
    "shutdown, 1 on a runtime error, 2 on a usage error (a --user or\n"
    "--socket-owner that does not exist included).\n"
    "\n"
    "Signals: SIGTERM, SIGINT and SIGQUIT drain (a second SIGTERM or SIGINT stops at\n"
    "once); SIGHUP reloads the TLS certificates; SIGUSR2 starts the executable anew\n"
    "on the same sockets and drains once it is ready (binary upgrade); SIGUSR1 and\n"
    "SIGALRM are logged and ignored. Under systemd (Type=notify) it reports\n"
    "READY=1, RELOADING=1, STOPPING=1 and, with WatchdogSec=, WATCHDOG=1.\n";

struct echo_config {
    struct cli_listen listen;
    struct cli_server common;
    const char *metrics_listen; /* NULL: no metrics */
    ritual_listen_options listen_opts;
};

/* A connection is quiet once it has had nothing in flight (no input held,
 * no output queued) and received nothing for this long. */
#define QUIET_MS 1000

/* The connection's data pointer holds when it last received bytes, as
 * ritual_loop_now() + 1 (0: never). */
static size_t echo_on_data(ritual_conn *conn, const char *bytes, size_t len)
{
    ritual_conn_set_data(conn, (void *)(uintptr_t)(ritual_loop_now(ritual_conn_loop(conn)) + 1));
    /* A failed write has closed the connection already; nothing to do. */
    (void)ritual_write(conn, bytes, len);
    return len;
}

/* A graceful shutdown began. An echo has no requests to finish, so the
 * drain is for connections mid-transfer: one that is quiet closes now,
 * as nginx closes idle keep-alive connections; one that received bytes
 * within QUIET_MS closes once it has been silent that long (its idle
 * timeout shortened); one with bytes in flight keeps the drain deadline. */
static void echo_on_shutdown(ritual_conn *conn)
{
    if (ritual_conn_input_held(conn) > 0 || ritual_conn_write_queued(conn) > 0)
        return;
    uintptr_t last = (uintptr_t)ritual_conn_data(conn);
    uint64_t now = ritual_loop_now(ritual_conn_loop(conn));
    if (last == 0 || now - (last - 1) >= QUIET_MS)
        ritual_conn_close(conn);
    else
        ritual_conn_set_idle_timeout(conn, QUIET_MS);
}

enum {
    OPT_METRICS_LISTEN = 256,
    OPT_BACKLOG,
    OPT_MAX_CONNS,
    OPT_IDLE,
    OPT_BUFFER,
    OPT_ACCEPT_MODE,
};

static int parse_args(int argc, char **argv, struct echo_config *cfg)
{
    static const struct option options[] = {
        CLI_LISTEN_LONGOPTS,
        CLI_SERVER_LONGOPTS,
        {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
        {"backlog", required_argument, NULL, OPT_BACKLOG},
        {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
        {"idle-timeout", required_argument, NULL, OPT_IDLE},
        {"buffer-size", required_argument, NULL, OPT_BUFFER},
        {"accept-mode", required_argument, NULL, OPT_ACCEPT_MODE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    unsigned long n;
    int c;
    opterr = 0;
    while ((c = cli_getopt(argc, argv, ":h", options)) != -1) {
        switch (c) {
        case CLI_OPT_LISTEN:
        case CLI_OPT_SOCKET_MODE:
        case CLI_OPT_SOCKET_OWNER:
        case CLI_OPT_USER:
            if (cli_listen_option("echo", &cfg->listen, c, optarg) != 0)
                return EXIT_USAGE;
            break;
        case OPT_METRICS_LISTEN:
            cfg->metrics_listen = optarg;
            break;
        case OPT_BACKLOG:
            if (cli_parse_uint(optarg, 1u << 30, &n) < 0 || n == 0)
                return cli_usage_error("echo", "--backlog: '%s' is not a positive number", optarg);
            cfg->listen_opts.backlog = (int)n;
            break;
        case OPT_MAX_CONNS:
            if (cli_parse_uint(optarg, 1u << 30, &n) < 0)
                return cli_usage_error("echo", "--max-conns: '%s' is not a number", optarg);
            cfg->listen_opts.max_conns = (unsigned)n;
            break;
        case OPT_IDLE:
            if (cli_parse_seconds(optarg, &cfg->listen_opts.conn.idle_timeout_ms) < 0)
                return cli_usage_error("echo", "--idle-timeout: '%s' is not a number of seconds",
                                       optarg);
            break;
        case OPT_BUFFER:
            if (cli_parse_size(optarg, &cfg->listen_opts.conn.read_buffer_size) < 0 ||
                cfg->listen_opts.conn.read_buffer_size < 16 ||
                cfg->listen_opts.conn.read_buffer_size > (1u << 30))
                return cli_usage_error("echo", "--buffer-size: '%s' is not a size from 16 to 1G",
                                       optarg);
            break;
        case OPT_ACCEPT_MODE:
            if (strcmp(optarg, "reuseport") == 0)
                cfg->common.server.accept_mode = RITUAL_ACCEPT_REUSEPORT;
            else if (strcmp(optarg, "shared") == 0)
                cfg->common.server.accept_mode = RITUAL_ACCEPT_SHARED;
            else
                return cli_usage_error("echo", "--accept-mode: '%s' is not reuseport or shared",
                                       optarg);
            break;
        case 'h':
            fputs(echo_usage, stdout);
            return -1;
        default:
            if (!cli_is_server_option(c))
                return cli_getopt_error("echo", c, argv, optind);
            if (cli_server_option("echo", &cfg->common, c, optarg) != 0)
                return EXIT_USAGE;
            break;
        }
    }
    if (optind < argc)
        return cli_usage_error("echo", "unexpected argument '%s'", argv[optind]);
    if (cli_tls_check("echo", &cfg->common.tls) != 0)
        return EXIT_USAGE;
    if (cfg->metrics_listen) {
        ritual_error err;
        if (ritual_address_parse(cfg->metrics_listen, NULL, NULL, &err) < 0)
            return cli_usage_error("echo", "--metrics-listen: %s", err.message);
    }
    return cli_listen_check("echo", &cfg->listen, "127.0.0.1:7000");
}

int echo_main(int argc, char **argv)
{
    struct echo_config cfg = {
        .listen_opts.conn.idle_timeout_ms = 300 * 1000,
        .common.drain_ms = 10 * 1000,
        .common.server.loop.log_level = RITUAL_LOG_INFO,
        .common.server.notify = 1, /* systemd's Type=notify, when $NOTIFY_SOCKET is set */
    };
    int rc = parse_args(argc, argv, &cfg);
    if (rc != 0)
        return rc < 0 ? EXIT_OK : rc;

    ritual_tls *tls = cli_tls_load(&cfg.common.tls, NULL, 0, &rc);
    if (rc != 0)
        return rc;
    cfg.listen_opts.tls = tls;
    cfg.listen_opts.proxy_from = cfg.common.proxy_from;
    cfg.listen_opts.proxy_timeout_ms = cfg.common.proxy_timeout_ms;
    ritual_error err;
    ritual_server *server = ritual_server_new(&cfg.common.server, &err);
    if (!server) {
        ritual_tls_free(tls);
        return cli_runtime_error("%s", err.message);
    }
    cli_raise_nofile(ritual_server_loop(server, 0)); /* for the connections */
    /* --max-conns is for the whole server */
    cfg.listen_opts.max_conns = cli_per_worker(cfg.listen_opts.max_conns, server);
    struct cli_signals signals = {.server = server, .drain_ms = cfg.common.drain_ms, .tls = tls};
    rc = cli_signals_watch(&signals);
    if (rc != 0) {
        ritual_server_free(server);
        ritual_tls_free(tls);
        return rc;
    }
    const ritual_conn_callbacks callbacks = {.on_data = echo_on_data,
                                             .on_shutdown = echo_on_shutdown};
    cli_listen_apply(&cfg.listen, &cfg.listen_opts);
    ritual_listener *listeners[CLI_LISTEN_MAX];
    for (int i = 0; rc == 0 && i < cfg.listen.n; i++) {
        listeners[i] =
            ritual_server_listen(server, cfg.listen.address[i], &cfg.listen_opts, &callbacks, &err);
        if (!listeners[i])
            rc = cli_runtime_error("%s", err.message);
    }
    ritual_listener *metrics = NULL;
    if (rc == 0 && cfg.metrics_listen &&
        !(metrics = metrics_listen(server, cfg.metrics_listen, false, &err)))
        rc = cli_runtime_error("--metrics-listen %s: %s", cfg.metrics_listen, err.message);
    /* Everything is bound and open: no more need of root. */
    if (rc == 0)
        rc = cli_drop_privileges(&cfg.listen, server);
    if (rc != 0) {
        ritual_server_free(server);
        ritual_tls_free(tls);
        return rc;
    }
    cli_tls_log(server, &cfg.common.tls);
    rc = cli_serve(server, listeners, cfg.listen.n, metrics);
    ritual_server_free(server);
    ritual_tls_free(tls);
    return rc;
}
