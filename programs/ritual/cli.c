/* cli.c - parsing of option values and the program's error lines. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cmd)
        fprintf(stderr, "ritual %s: %s (see 'ritual %s --help')\n", cmd, msg, cmd);
    else
        fprintf(stderr, "ritual: %s (see 'ritual --help')\n", msg);
    return EXIT_USAGE;
}

int cli_runtime_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ritual: %s\n", msg);
    return EXIT_RUNTIME;
}

int cli_parse_uint(const char *text, unsigned long max, unsigned long *out)
{
    if (!text || *text < '0' || *text > '9')
        return -1; /* strtoul would take "-3" and " 3" */
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_seconds(const char *text, uint64_t *ms)
{
    if (!text || ((*text < '0' || *text > '9') && *text != '.'))
        return -1;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || *end != '\0' || !isfinite(v) || v < 0 || v > 1e9)
        return -1;
    *ms = (uint64_t)ceil(v * 1000.0);
    return 0;
}

int cli_parse_size(const char *text, size_t *out)
{
    if (!text || *text < '0' || *text > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno)
        return -1;
    unsigned shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10;
    else if (*end == 'm' || *end == 'M')
        shift = 20;
    else if (*end == 'g' || *end == 'G')
        shift = 30;
    if (shift)
        end++;
    if (*end != '\0' || v > (SIZE_MAX >> shift))
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

int cli_parse_log_level(const char *text, ritual_log_level *out)
{
    static const struct {
        const char *name;
        ritual_log_level level;
    } levels[] = {{"error", RITUAL_LOG_ERROR},
                  {"warn", RITUAL_LOG_WARN},
                  {"info", RITUAL_LOG_INFO},
                  {"debug", RITUAL_LOG_DEBUG}};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        if (strcmp(text, levels[i].name) == 0) {
            *out = levels[i].level;
            return 0;
        }
    }
    return -1;
}

int cli_getopt_error(const char *cmd, int c, char **argv, int optind_now)
{
    const char *arg = argv[optind_now - 1];
    if (c == ':')
        return cli_usage_error(cmd, "option '%s' needs a value", arg);
    return cli_usage_error(cmd, "unknown option '%s'", arg);
}

int cli_parse_backend(const char *text, ritual_backend *out)
{
    if (strcmp(text, "auto") == 0)
        *out = RITUAL_BACKEND_AUTO;
    else if (strcmp(text, "epoll") == 0)
        *out = RITUAL_BACKEND_EPOLL;
    else if (strcmp(text, "poll") == 0)
        *out = RITUAL_BACKEND_POLL;
    else if (strcmp(text, "io_uring") == 0)
        *out = RITUAL_BACKEND_IO_URING;
    else
        return -1;
    return 0;
}

int cli_serve(ritual_server *server, ritual_listener *listener)
{
    ritual_loop *loop = ritual_server_loop(server, 0);
    unsigned n = ritual_server_workers(server);
    ritual_log(loop, RITUAL_LOG_INFO, "%u worker%s on %s", n, n == 1 ? "" : "s",
               ritual_loop_backend_name(loop));
    char where[80];
    ritual_listener_address(listener, where, sizeof where);
    printf("listening on %s\n", where);
    fflush(stdout);
    int rc = ritual_server_run(server);
    if (rc == -ECANCELED)
        return EXIT_RUNTIME; /* stopped by a second signal: connections were cut */
    if (rc < 0)
        return cli_runtime_error("event loop: %s", ritual_strerror(rc));
    return EXIT_OK;
}

unsigned cli_per_worker(unsigned total, const ritual_server *server)
{
    unsigned workers = ritual_server_workers(server);
    return total ? (total + workers - 1) / workers : 0;
}
