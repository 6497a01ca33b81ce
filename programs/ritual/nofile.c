/* nofile.c - the descriptor limit a server runs with; see cli.h. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* On the loop's log, or on stderr where there is no loop (ritual bench). */
#define warn(loop, fmt, ...)                                                                       \
    ((loop) ? ritual_log((loop), RITUAL_LOG_WARN, fmt, __VA_ARGS__)                                \
            : (void)fprintf(stderr, "ritual: warning: " fmt "\n", __VA_ARGS__))

rlim_t cli_raise_nofile(ritual_loop *loop)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        warn(loop, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return RLIM_INFINITY;
    }
    if (rl.rlim_cur >= rl.rlim_max)
        return rl.rlim_cur;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        /* Not fatal: the server runs, with fewer connections. */
        warn(loop, "setrlimit(RLIMIT_NOFILE, %llu): %s; staying at %llu descriptors",
             (unsigned long long)rl.rlim_max, strerror(errno), (unsigned long long)was);
        return was;
    }
    return rl.rlim_cur;
}

rlim_t cli_nofile(void)
{
    struct rlimit rl;
    return getrlimit(RLIMIT_NOFILE, &rl) < 0 ? RLIM_INFINITY : rl.rlim_cur;
}
