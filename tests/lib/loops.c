/* Two loops in one process, each on its own thread, do not interfere: each
 * serves only its own connections, and stopping one leaves the other
 * running. Nothing in the library is global. */
#include "libtest.h"

#include <errno.h>
#include <signal.h>

struct server_thread {
    ritual_loop *loop;
    int port;
    size_t bytes;
    _Atomic int ready;
    _Atomic int stop;
    pthread_t thread;
};

static size_t echo(ritual_conn *conn, const char *bytes, size_t len)
{
    struct server_thread *st = ritual_listener_data(ritual_conn_listener(conn));
    st->bytes += len;
    ASSERT_EQ(ritual_write(conn, bytes, len), 0);
    return len;
}

static void poll_stop(ritual_timer *t, void *data)
{
    struct server_thread *st = data;
    if (st->stop) {
        ritual_timer_stop(t);
        ritual_loop_stop(st->loop);
    }
}

static void *serve(void *arg)
{
    struct server_thread *st = arg;
    st->loop = lt_loop();
    ritual_listen_options opts = {.data = st};
    ritual_conn_callbacks cbs = {.on_data = echo};
    st->port = ritual_listener_port(lt_listen(st->loop, &opts, &cbs));
    ritual_timer *t = ritual_timer_new(st->loop, poll_stop, st);
    ASSERT(t != NULL);
    ASSERT_EQ(ritual_timer_start(t, 5, 5), 0);
    st->ready = 1;
    lt_run(st->loop, 20000);
    ritual_loop_free(st->loop);
    return NULL;
}

static void roundtrip(int port, const char *msg)
{
    int fd = tcp_connect(port);
    echo_roundtrip(fd, msg, strlen(msg), 5000);
    close(fd);
}

static void two_loops_two_threads(void)
{
    struct server_thread a = {0}, b = {0};
    a.thread = lt_thread(serve, &a);
    b.thread = lt_thread(serve, &b);
    uint64_t deadline = now_ms() + 10000;
    while (!a.ready || !b.ready) {
        if (now_ms() > deadline)
            FAIL("the loops' threads were not ready within 10 s");
        sleep_ms(1);
    }
    ASSERT_NE(a.port, b.port);

    roundtrip(a.port, "to loop a");
    roundtrip(b.port, "to loop b, longer");

    /* Stop A; B goes on serving. */
    a.stop = 1;
    lt_join(a.thread);
    roundtrip(b.port, "b again");
    ASSERT_EQ(tcp_try_connect(a.port), -ECONNREFUSED);
    b.stop = 1;
    lt_join(b.thread);

    ASSERT_EQ(a.bytes, strlen("to loop a"));
    ASSERT_EQ(b.bytes, strlen("to loop b, longer") + strlen("b again"));
}

TEST_CASES(CASE(two_loops_two_threads))
