/* Freeing a loop releases everything still attached to it: open connections
 * (with input buffered and output queued), listeners, a closed listener
 * whose connections live on, timers and signal handles. Each connection's
 * on_close runs with -ECANCELED. A leak fails the test under ASan/LSan (the
 * second build of `make test`); valgrind agrees (no block left at exit). */
#include "libtest.h"

#include <errno.h>
#include <signal.h>
#include <sys/socket.h>

static int closes, cancelled;
static ritual_conn *quiet_conn, *echo_conn;

static size_t keep_everything(ritual_conn *conn, const char *bytes, size_t len)
{
    (void)conn;
    (void)bytes;
    (void)len;
    return 0; /* input stays buffered in the connection */
}

static size_t echo(ritual_conn *conn, const char *bytes, size_t len)
{
    echo_conn = conn;
    ASSERT_EQ(ritual_write(conn, bytes, len), 0);
    return len;
}

static void on_open(ritual_conn *conn)
{
    quiet_conn = conn;
}

static void on_close(ritual_conn *conn, int reason)
{
    (void)conn;
    closes++;
    cancelled += reason == -ECANCELED;
}

static void tick(ritual_timer *t, void *data)
{
    (void)t;
    (void)data;
}

static void on_signal(ritual_signal *s, int signum, void *data)
{
    (void)s;
    (void)signum;
    (void)data;
}

struct flood {
    int fd;
    size_t sent;
};

/* Fills the echo connection's queue: send without ever reading. */
static void flood(ritual_timer *t, void *data)
{
    struct flood *f = data;
    static char chunk[64 * 1024];
    ssize_t n;
    while ((n = send(f->fd, chunk, sizeof chunk, MSG_DONTWAIT | MSG_NOSIGNAL)) > 0)
        f->sent += (size_t)n;
    if (n < 0 && errno != EAGAIN && errno != EINTR)
        FAIL("flood: send: %s", strerror(errno));
    (void)t;
}

static void stop(ritual_timer *t, void *data)
{
    (void)t;
    ritual_loop_stop(data);
}

static void free_releases_everything(void)
{
    ritual_loop *loop = lt_loop();
    ritual_conn_callbacks keep = {
        .on_open = on_open, .on_data = keep_everything, .on_close = on_close};
    ritual_conn_callbacks echo_cbs = {.on_data = echo, .on_close = on_close};
    ritual_listener *l1 = lt_listen(loop, NULL, &keep);
    ritual_listener *l2 = lt_listen(loop, NULL, &echo_cbs);

    int c1 = tcp_connect(ritual_listener_port(l1));
    send_all(c1, "partial", 7);
    struct flood f = {.fd = tcp_connect(ritual_listener_port(l2))};

    ritual_timer *repeating = ritual_timer_new(loop, tick, NULL);
    ASSERT_EQ(ritual_timer_start(repeating, 10, 10), 0);
    ritual_timer *pending = ritual_timer_new(loop, tick, NULL);
    ASSERT_EQ(ritual_timer_start(pending, 100000, 0), 0);
    ritual_timer *flooder = ritual_timer_new(loop, flood, &f);
    ASSERT_EQ(ritual_timer_start(flooder, 1, 5), 0);
    ritual_timer *stopper = ritual_timer_new(loop, stop, loop);
    ASSERT_EQ(ritual_timer_start(stopper, 300, 0), 0);
    ritual_error err;
    ASSERT(ritual_signal_new(loop, SIGUSR1, on_signal, NULL, &err) != NULL);

    lt_run(loop, 10000);

    /* State worth freeing is there. */
    ASSERT(quiet_conn != NULL);
    ASSERT(quiet_conn->in != NULL);
    ASSERT_EQ(quiet_conn->in->len, 7);
    ASSERT_EQ(ritual_loop_conn_count(loop), 2);
    ASSERT_GT(ritual_listener_conn_count(l2), 0);
    ASSERT(echo_conn != NULL);
    size_t queued = ritual_conn_write_queued(echo_conn);
    note("flooded %zu bytes; the echo queue holds %zu of them", f.sent, queued);
    ASSERT_GT(queued, 0);
    ritual_listener_close(l2); /* its connection outlives it */

    ritual_loop_free(loop);
    ASSERT_EQ(closes, 2);
    ASSERT_EQ(cancelled, 2);
    close(c1);
    close(f.fd);
}

TEST_CASES(CASE(free_releases_everything))
