/* cli.c - parsing of option values and the program's error lines. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
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

int cli_path_option(const char *cmd, const char *name, const char *value)
{
    if (value[0] == '\0')
        return cli_usage_error(cmd, "%s: empty, a path is needed", name);
    return 0;
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

/* Whether `arg` ("--name" or "--name=value") names an option of `longopts`
 * exactly. */
static bool long_name_exact(const char *arg, const struct option *longopts)
{
    const char *name = arg + 2;
    size_t len = strcspn(name, "=");
    for (const struct option *o = longopts; o->name; o++)
        if (strlen(o->name) == len && memcmp(o->name, name, len) == 0)
            return true;
    return false;
}

static bool is_long(const char *arg)
{
    return arg[0] == '-' && arg[1] == '-' && arg[2] != '\0';
}

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
    int index = -1;
    int c = getopt_long(argc, argv, shortopts, longopts, &index);
    if (c == -1)
        return c;
    /* Where the option was typed: getopt_long has moved optind past it and
     * past its value, if that was the next argument. Any non-options it
     * skipped are before it (they are moved behind the options later). */
    int at = optind - 1;
    if (index >= 0 && longopts[index].has_arg == required_argument && at > 0 && optarg == argv[at])
        at--;
    /* A short option's error leaves optind on its argument when more of a
     * cluster ("-xh") follows; only a "--" argument is a long option. */
    if (at <= 0 || !is_long(argv[at]) || (index < 0 && c != '?' && c != ':'))
        return c;
    if (long_name_exact(argv[at], longopts))
        return c;
    optind = at + 1;
    optopt = 0;
    return '?';
}

int cli_getopt_error(const char *cmd, int c, char **argv, int optind_now)
{
    const char *arg = argv[optind_now - 1];
    if (!is_long(arg)) {
        if (c == ':')
            return cli_usage_error(cmd, "option '%s' needs a value", arg);
        return cli_usage_error(cmd, "unknown option '%s'", arg);
    }
    int len = (int)strcspn(arg, "=");
    if (c == ':')
        return cli_usage_error(cmd, "option '%.*s' needs a value", len, arg);
    if (arg[len] == '=' && optopt != 0) /* a known option that takes none */
        return cli_usage_error(cmd, "option '%.*s' takes no value", len, arg);
    return cli_usage_error(cmd, "unknown option '%.*s'", len, arg);
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

int cli_serve(ritual_server *server, ritual_listener *const *listeners, int n,
              ritual_listener *metrics)
{
    ritual_loop *loop = ritual_server_loop(server, 0);
    unsigned workers = ritual_server_workers(server);
    rlim_t nofile = cli_nofile();
    char limit[32] = "unlimited";
    if (nofile != RLIM_INFINITY)
        snprintf(limit, sizeof limit, "%llu", (unsigned long long)nofile);
    ritual_log(loop, RITUAL_LOG_INFO, "%u worker%s on %s, RLIMIT_NOFILE %s", workers,
               workers == 1 ? "" : "s", ritual_loop_backend_name(loop), limit);
    char where[160];
    for (int i = 0; i < n; i++) {
        ritual_listener_address(listeners[i], where, sizeof where);
        printf("listening on %s\n", where);
    }
    if (metrics) {
        ritual_listener_address(metrics, where, sizeof where);
        printf("metrics on %s\n", where);
    }
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

const char *cli_printable(const char *text, char *out, size_t cap)
{
    size_t n = 0;
    for (; text[n] && n + 1 < cap; n++)
        out[n] = (unsigned char)text[n] < 0x20 || text[n] == 0x7f ? '?' : text[n];
    out[n] = '\0';
    return out;
}
