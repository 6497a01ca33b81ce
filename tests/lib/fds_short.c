/* ritual_loop_on_fds_short: the process has no descriptor left when a
 * client connects, so the accept fails with EMFILE and the loop's hook runs
 * before accepting pauses.
 *
 * hook_sheds: the hook closes two descriptors the test holds as its
 * "cache"; the connection is accepted at the next iteration, with no pause
 * and so no warning.
 * hook_frees_none: the hook closes none: accepting pauses as it does
 * without a hook (its warning), and the connection is accepted once the
 * test closes a descriptor of its own, from a timer. */
#include "libtest.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define NOFILE 256

static struct {
    ritual_loop *loop;
    int held[NOFILE];
    int nheld;
    int calls;    /* the hook's */
    int shed;     /* how many the hook closes each time */
    int warnings; /* "pausing accepts" lines */
    int opened;
    struct rlimit saved;
} w;

static void on_log(void *data, ritual_log_level level, const char *line)
{
    (void)data;
    if (level == RITUAL_LOG_WARN && strstr(line, "pausing accepts"))
        w.warnings++;
}

static size_t on_fds_short(ritual_loop *loop, void *arg)
{
    ASSERT(loop == w.loop);
    ASSERT(arg == &w);
    w.calls++;
    int n = 0;
    for (; n < w.shed && w.nheld > 0; n++)
        close(w.held[--w.nheld]);
    return (size_t)n;
}

static void on_open(ritual_conn *conn)
{
    w.opened++;
    ritual_conn_close(conn);
    ritual_loop_stop(ritual_conn_loop(conn));
}

static size_t on_data(ritual_conn *conn, const char *bytes, size_t len)
{
    (void)conn;
    (void)bytes;
    return len;
}

/* A descriptor comes free by the test's hand: the paused accept goes on
 * at its backoff. */
static void free_one(ritual_timer *t, void *data)
{
    (void)t;
    (void)data;
    ASSERT_GT(w.nheld, 0);
    close(w.held[--w.nheld]);
}

/* A loop whose log the test reads, freed by the end of the case. */
static ritual_loop *loop_with_log(void)
{
    ritual_loop_options opts = {.log_level = RITUAL_LOG_INFO, .log_fn = on_log};
    ritual_error err;
    ritual_loop *loop = ritual_loop_new(&opts, &err);
    if (!loop)
        FAIL("ritual_loop_new: %s", err.message);
    ASSERT_EQ(ritual_loop_on_free(loop, lt_loop_freed, NULL), 0);
    lt_loops_live++;
    return loop;
}

/* Takes every descriptor left under a soft limit of NOFILE. */
static void exhaust(void)
{
    SYSCHECK(getrlimit(RLIMIT_NOFILE, &w.saved));
    if (w.saved.rlim_max != RLIM_INFINITY && w.saved.rlim_max < NOFILE)
        FAIL("hard RLIMIT_NOFILE %llu is under %d", (unsigned long long)w.saved.rlim_max, NOFILE);
    struct rlimit low = {.rlim_cur = NOFILE, .rlim_max = w.saved.rlim_max};
    SYSCHECK(setrlimit(RLIMIT_NOFILE, &low));
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            ASSERT_EQ(errno, EMFILE);
            break;
        }
        ASSERT_LT(w.nheld, NOFILE);
        w.held[w.nheld++] = fd;
    }
}

static void give_back(void)
{
    while (w.nheld > 0)
        close(w.held[--w.nheld]);
    SYSCHECK(setrlimit(RLIMIT_NOFILE, &w.saved));
}

/* A client connects once nothing is left; the loop runs until the server
 * side opens. `shed` is what the hook closes each time it runs. */
static void connect_when_out(int shed, uint64_t free_after_ms)
{
    memset(&w, 0, sizeof w);
    w.shed = shed;
    w.loop = loop_with_log();
    ritual_loop_on_fds_short(w.loop, on_fds_short, &w);
    ritual_conn_callbacks cbs = {.on_open = on_open, .on_data = on_data};
    ritual_listener *l = lt_listen(w.loop, NULL, &cbs);
    ritual_timer *t = ritual_timer_new(w.loop, free_one, NULL);
    ASSERT(t != NULL);
    if (free_after_ms)
        ASSERT_EQ(ritual_timer_start(t, free_after_ms, 0), 0);
    /* The client's socket first: connect needs no new descriptor. */
    int client = SYSCHECK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)ritual_listener_port(l)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    exhaust();
    int rc = connect(client, (struct sockaddr *)&sa, sizeof sa);
    if (rc < 0 && errno != EINPROGRESS)
        FAIL("connect: %s", strerror(errno));
    lt_run(w.loop, 5000);
    give_back();
    ritual_timer_free(t);
    close(client);
    ritual_loop_free(w.loop);
}

static void hook_sheds(void)
{
    connect_when_out(2, 0);
    ASSERT_EQ(w.opened, 1);
    ASSERT_GE(w.calls, 1);
    ASSERT_EQ(w.warnings, 0);
    note("accept out of descriptors: the hook ran %d time(s), the connection opened at once, "
         "no pause",
         w.calls);
}

static void hook_frees_none(void)
{
    connect_when_out(0, 100);
    ASSERT_EQ(w.opened, 1);
    ASSERT_GE(w.calls, 1);
    /* One for the pause; readiness backends may add one more: the accept
     * after the connection's, the table full again, is EMFILE even with
     * nothing queued (Linux takes the descriptor before looking). */
    ASSERT_GE(w.warnings, 1);
    note("the hook freed nothing (%d call(s)): accepting paused (%d warning(s)), and went on "
         "once a descriptor came free",
         w.calls, w.warnings);
}

TEST_CASES(CASE(hook_sheds), CASE(hook_frees_none))
