/* nofile.c - the descriptor limit a server runs with; see cli.h. */
#include "cli.h"

#include <errno.h>
#include <string.h>

rlim_t cli_raise_nofile(ritual_loop *loop)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        ritual_log(loop, RITUAL_LOG_WARN, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return RLIM_INFINITY;
    }
    if (rl.rlim_cur >= rl.rlim_max)
        return rl.rlim_cur;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        /* Not fatal: the server runs, with fewer connections. */
        ritual_log(loop, RITUAL_LOG_WARN,
                   "setrlimit(RLIMIT_NOFILE, %llu): %s; staying at %llu descriptors",
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
