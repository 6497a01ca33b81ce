/* What a multi-worker program needs from ritual_server, and bounded posts.
 *
 * hooks_index_and_control_timer: on_worker_start and on_worker_stop run
 *   once per worker, on the worker's own thread; ritual_loop_worker gives
 *   each loop its index (-1 for the control loop); per-worker state set in
 *   on_worker_start is what that worker's connections see; a timer on the
 *   control loop drives the shutdown; ritual_server_post_all reaches every
 *   worker once.
 * posts_bounded: ritual_loop_try_post refuses with -EAGAIN once
 *   max_pending calls wait, ritual_loop_posts_pending counts them, and all
 *   that were taken run, in order. */
#include "libtest.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#define WORKERS 3

struct worker_state {
    int index;
    pthread_t thread;
    int conns; /* connections this worker accepted, counted by its own state */
};

static ritual_server *srv;
static int marker;
static _Atomic int started[WORKERS], stopped[WORKERS], posted_to[WORKERS];
static _Atomic int wrong_thread;

static void worker_start(ritual_server *server, ritual_loop *loop)
{
    ASSERT(server == srv);
    ASSERT(ritual_server_data(server) == &marker);
    int i = ritual_loop_worker(loop);
    ASSERT(i >= 0 && i < WORKERS);
    ASSERT(ritual_server_loop(server, (unsigned)i) == loop);
    struct worker_state *ws = calloc(1, sizeof *ws);
    ASSERT(ws != NULL);
    ws->index = i;
    ws->thread = pthread_self();
    ritual_loop_set_data(loop, ws);
    started[i]++;
}

static void worker_stop(ritual_server *server, ritual_loop *loop)
{
    (void)server;
    struct worker_state *ws = ritual_loop_data(loop);
    if (!pthread_equal(ws->thread, pthread_self()))
        wrong_thread++;
    stopped[ws->index]++;
    note("worker %d accepted %d connections", ws->index, ws->conns);
    ritual_loop_set_data(loop, NULL);
    free(ws);
}

static void on_open(ritual_conn *conn)
{
    struct worker_state *ws = ritual_loop_data(ritual_conn_loop(conn));
    if (!pthread_equal(ws->thread, pthread_self()))
        wrong_thread++;
    ASSERT_EQ(ws->index, ritual_loop_worker(ritual_conn_loop(conn)));
    ws->conns++;
}

static size_t echo(ritual_conn *conn, const char *bytes, size_t len)
{
    ASSERT_EQ(ritual_write(conn, bytes, len), 0);
    return len;
}

static void posted(ritual_loop *loop, void *arg)
{
    ASSERT(arg == &marker);
    struct worker_state *ws = ritual_loop_data(loop);
    if (!pthread_equal(ws->thread, pthread_self()))
        wrong_thread++;
    posted_to[ws->index]++;
}

static void *run_server(void *arg)
{
    (void)arg;
    ASSERT_EQ(ritual_server_run(srv), 0);
    return NULL;
}

static _Atomic int clients_done;

/* On the control loop: once the clients are done, a drain. */
static void control_tick(ritual_timer *t, void *data)
{
    ASSERT_EQ(ritual_loop_worker(data), -1); /* the control loop */
    if (!clients_done)
        return;
    ritual_timer_stop(t);
    ASSERT_EQ(ritual_server_post_all(srv, posted, &marker), 0);
    ritual_server_shutdown(srv, 5000);
}

static void hooks_index_and_control_timer(void)
{
    ritual_error err;
    ritual_server_options so = {.workers = WORKERS,
                                .on_worker_start = worker_start,
                                .on_worker_stop = worker_stop,
                                .data = &marker};
    srv = ritual_server_new(&so, &err);
    if (!srv)
        FAIL("ritual_server_new: %s", err.message);
    ritual_loop *control = ritual_server_control_loop(srv);
    ASSERT(control != NULL);
    ASSERT_EQ(ritual_loop_worker(control), -1);
    ritual_conn_callbacks cbs = {.on_open = on_open, .on_data = echo};
    ritual_listener *l = ritual_server_listen(srv, "127.0.0.1:0", NULL, &cbs, &err);
    if (!l)
        FAIL("ritual_server_listen: %s", err.message);
    int port = ritual_listener_port(l);
    ritual_timer *tick = ritual_timer_new(control, control_tick, control);
    ASSERT(tick != NULL);
    ASSERT_EQ(ritual_timer_start(tick, 10, 10), 0);
    pthread_t t = lt_thread(run_server, NULL);
    int fds[30];
    for (int i = 0; i < 30; i++) {
        fds[i] = tcp_connect(port);
        echo_roundtrip(fds[i], "hi", 2, 5000);
    }
    for (int i = 0; i < 30; i++)
        close(fds[i]);
    clients_done = 1;
    lt_join(t);
    for (int i = 0; i < WORKERS; i++) {
        ASSERT_EQ(started[i], 1);
        ASSERT_EQ(stopped[i], 1);
        ASSERT_EQ(posted_to[i], 1);
    }
    ASSERT_EQ(wrong_thread, 0);
    ritual_server_free(srv);
}

/* ------------------------------------------------------------ posts_bounded */

static int runs[12];
static int order_ok = 1, last_run = -1;

static void numbered(ritual_loop *loop, void *arg)
{
    int i = (int)(intptr_t)arg;
    runs[i]++;
    order_ok &= i > last_run;
    last_run = i;
    if (i == 11)
        ritual_loop_stop(loop);
}

static void posts_bounded(void)
{
    ritual_loop *loop = lt_loop();
    ASSERT_EQ(ritual_loop_posts_pending(loop), 0);
    for (int i = 0; i < 10; i++)
        ASSERT_EQ(ritual_loop_try_post(loop, numbered, (void *)(intptr_t)i, 10), 0);
    ASSERT_EQ(ritual_loop_posts_pending(loop), 10);
    ASSERT_EQ(ritual_loop_try_post(loop, numbered, (void *)(intptr_t)10, 10), -EAGAIN);
    ASSERT_EQ(ritual_loop_posts_pending(loop), 10);
    /* A larger bound, or the plain post, still takes it. */
    ASSERT_EQ(ritual_loop_try_post(loop, numbered, (void *)(intptr_t)10, 11), 0);
    ASSERT_EQ(ritual_loop_post(loop, numbered, (void *)(intptr_t)11), 0);
    ASSERT_EQ(ritual_loop_posts_pending(loop), 12);
    lt_run(loop, 5000);
    ASSERT_EQ(ritual_loop_posts_pending(loop), 0);
    for (int i = 0; i < 12; i++)
        ASSERT_EQ(runs[i], 1);
    ASSERT(order_ok);
    ritual_loop_free(loop);
}

TEST_CASES(CASE(hooks_index_and_control_timer), CASE(posts_bounded))
