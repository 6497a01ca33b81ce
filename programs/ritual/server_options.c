/* server_options.c - the options every server subcommand takes alike; see
 * cli.h. */
#include "cli.h"

#include <string.h>

int cli_server_option(const char *cmd, struct cli_server *s, int opt, const char *value)
{
    unsigned long n;
    ritual_error err;
    switch (opt) {
    case CLI_OPT_WORKERS:
        if (cli_parse_uint(value, 1024, &n) < 0 || n == 0)
            return cli_usage_error(cmd, "--workers: '%s' is not a number from 1 to 1024", value);
        s->server.workers = (unsigned)n;
        return 0;
    case CLI_OPT_BACKEND:
        if (cli_parse_backend(value, &s->server.loop.backend) < 0)
            return cli_usage_error(cmd, "--backend: '%s' is not auto, io_uring, epoll or poll",
                                   value);
        return 0;
    case CLI_OPT_PIN:
        s->server.pin = 1;
        return 0;
    case CLI_OPT_LOG_LEVEL:
        if (cli_parse_log_level(value, &s->server.loop.log_level) < 0)
            return cli_usage_error(cmd, "--log-level: '%s' is not error, warn, info or debug",
                                   value);
        return 0;
    case CLI_OPT_DRAIN:
        if (cli_parse_seconds(value, &s->drain_ms) < 0)
            return cli_usage_error(cmd, "--drain-timeout: '%s' is not a number of seconds", value);
        return 0;
    case CLI_OPT_PROXY:
        if (ritual_proxy_from_check(value, &err) < 0)
            return cli_usage_error(cmd, "--proxy-protocol: %s", err.message);
        s->proxy_from = value;
        return 0;
    case CLI_OPT_PROXY_TIMEOUT:
        if (cli_parse_seconds(value, &s->proxy_timeout_ms) < 0 || s->proxy_timeout_ms == 0)
            return cli_usage_error(cmd, "--proxy-timeout: '%s' is not a positive number of seconds",
                                   value);
        return 0;
    case CLI_OPT_TLS_CERT:
    case CLI_OPT_TLS_KEY:
        return cli_tls_option(cmd, &s->tls, opt == CLI_OPT_TLS_CERT, value);
    default:
        return cli_usage_error(cmd, "option %d is not a server option", opt);
    }
}
