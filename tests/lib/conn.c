/* A connection's life as the user sees it, one case per ending, each with a
 * listener of its own and a client thread playing the peer:
 *
 * - half_close_then_reset: the peer's FIN is reported (on_eof answers with a
 *   last word and keeps the connection open), then the reset that follows.
 * - orderly_close_without_on_eof: with no on_eof, the FIN closes the
 *   connection cleanly after the echo.
 * - abort_resets_peer: ritual_conn_abort resets the peer.
 * - idle_timeout_closes: silence past the idle timeout ends in an orderly FIN.
 * - pause_resume_redelivers: pause and resume hand buffered input over again
 *   without the peer sending more. */
#include "libtest.h"

#include <errno.h>
#include <sys/socket.h>

struct story {
    int port;
    int eof_calls;
    int close_calls;
    int close_reason;
    int data_calls;
    int order; /* 1 if on_eof came before on_close */
};

static struct story story;
static _Atomic int client_done;

static void on_close(ritual_conn *conn, int reason)
{
    story.close_calls++;
    story.close_reason = reason;
    story.order = story.eof_calls == 1;
    ASSERT_EQ(ritual_write(conn, "late", 4), -EPIPE); /* closed: writes refused */
}

static size_t echo(ritual_conn *conn, const char *bytes, size_t len)
{
    story.data_calls++;
    ASSERT_EQ(ritual_write(conn, bytes, len), 0);
    return len;
}

static void stop_when_done(ritual_timer *t, void *data)
{
    /* Wait for on_close too: closes are reported at the end of an
     * iteration, after the client has seen its side. */
    if (client_done && story.close_calls >= 1) {
        ritual_timer_stop(t);
        ritual_loop_stop(data);
    }
}

/* Listens with `cbs` (and the idle timeout, unless 0), runs the loop while
 * `client` plays the peer, and stops once the client is done and the
 * server's side has closed. */
static void run_story(const ritual_conn_callbacks *cbs, uint64_t idle_timeout_ms,
                      void *(*client)(void *))
{
    ritual_loop *loop = lt_loop();
    note("backend %s", ritual_loop_backend_name(loop));
    ritual_listen_options opts = {.conn.idle_timeout_ms = idle_timeout_ms};
    story.port = ritual_listener_port(lt_listen(loop, &opts, cbs));
    ritual_timer *stopper = ritual_timer_new(loop, stop_when_done, loop);
    ASSERT(stopper != NULL);
    ASSERT_EQ(ritual_timer_start(stopper, 10, 10), 0);
    pthread_t t = lt_thread(client, NULL);
    lt_run(loop, 20000);
    lt_join(t);
    ASSERT_EQ(ritual_loop_conn_count(loop), 0);
    ritual_loop_free(loop);
}

/* -------------------------------------------------------------------- */

/* Answers the FIN with a last word, and keeps the connection open. */
static void half_eof(ritual_conn *conn)
{
    story.eof_calls++;
    ASSERT_EQ(ritual_write(conn, "bye", 3), 0);
}

/* Sends, FIN, reads the echo and the last word, then resets. */
static void *half_closing_client(void *arg)
{
    (void)arg;
    char buf[16];
    int fd = tcp_connect(story.port);
    send_all(fd, "ping", 4);
    SYSCHECK(shutdown(fd, SHUT_WR));
    recv_exact(fd, buf, 7, 5000);
    ASSERT_EQ(memcmp(buf, "pingbye", 7), 0);
    struct linger lin = {.l_onoff = 1, .l_linger = 0};
    SYSCHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin));
    close(fd);
    client_done = 1;
    return NULL;
}

static void half_close_then_reset(void)
{
    ritual_conn_callbacks cbs = {.on_data = echo, .on_eof = half_eof, .on_close = on_close};
    run_story(&cbs, 0, half_closing_client);
    /* The FIN was reported, then the reset that followed it. */
    ASSERT_EQ(story.eof_calls, 1);
    ASSERT_EQ(story.close_calls, 1);
    ASSERT_EQ(story.order, 1);
    ASSERT_EQ(story.close_reason, -ECONNRESET);
}

/* -------------------------------------------------------------------- */

static void *plain_client(void *arg)
{
    (void)arg;
    char c;
    int fd = tcp_connect(story.port);
    send_all(fd, "x", 1);
    SYSCHECK(shutdown(fd, SHUT_WR));
    recv_exact(fd, &c, 1, 5000);
    ASSERT_EQ(c, 'x');
    expect_eof(fd, 5000);
    close(fd);
    client_done = 1;
    return NULL;
}

static void orderly_close_without_on_eof(void)
{
    ritual_conn_callbacks cbs = {.on_data = echo, .on_close = on_close};
    run_story(&cbs, 0, plain_client);
    ASSERT_EQ(story.data_calls, 1);
    ASSERT_EQ(story.close_calls, 1);
    ASSERT_EQ(story.close_reason, 0);
}

/* -------------------------------------------------------------------- */

/* Resets the connection on its first bytes. */
static size_t abort_data(ritual_conn *conn, const char *bytes, size_t len)
{
    (void)bytes;
    story.data_calls++;
    ritual_conn_abort(conn);
    ritual_conn_abort(conn); /* idempotent */
    return len;
}

/* The server's reset arrives as ECONNRESET, with no byte before it. */
static void *aborted_client(void *arg)
{
    (void)arg;
    char buf[16];
    int fd = tcp_connect(story.port);
    send_all(fd, "x", 1);
    size_t len;
    ASSERT_EQ(recv_to_end(fd, buf, sizeof buf, &len, 5000), STREAM_RESET);
    ASSERT_EQ(len, 0);
    close(fd);
    client_done = 1;
    return NULL;
}

static void abort_resets_peer(void)
{
    ritual_conn_callbacks cbs = {.on_data = abort_data, .on_close = on_close};
    run_story(&cbs, 0, aborted_client);
    ASSERT_EQ(story.data_calls, 1);
    ASSERT_EQ(story.close_calls, 1);
    ASSERT_EQ(story.close_reason, -ECONNABORTED);
}

/* -------------------------------------------------------------------- */

static void *silent_client(void *arg)
{
    (void)arg;
    int fd = tcp_connect(story.port);
    uint64_t start = now_ms();
    expect_eof(fd, 5000);
    ASSERT_GE(now_ms() - start, 100);
    close(fd);
    client_done = 1;
    return NULL;
}

static void idle_timeout_closes(void)
{
    ritual_conn_callbacks cbs = {.on_data = echo, .on_close = on_close};
    run_story(&cbs, 100, silent_client);
    ASSERT_EQ(story.close_calls, 1);
    ASSERT_EQ(story.close_reason, -ETIMEDOUT);
}

/* -------------------------------------------------------------------- */

/* The first call pauses and consumes nothing; a timer resumes, and the same
 * bytes come back without the peer sending more. */
static void resume_later(ritual_timer *t, void *data)
{
    ritual_conn_resume(data);
    ritual_timer_free(t);
}

static size_t pause_data(ritual_conn *conn, const char *bytes, size_t len)
{
    if (story.data_calls++ == 0) {
        ASSERT_EQ(len, 5);
        ritual_conn_pause(conn);
        ritual_timer *t = ritual_timer_new(ritual_conn_loop(conn), resume_later, conn);
        ASSERT(t != NULL);
        ASSERT_EQ(ritual_timer_start(t, 50, 0), 0);
        return 0;
    }
    ASSERT_EQ(len, 5);
    ASSERT_EQ(memcmp(bytes, "hello", 5), 0);
    ASSERT_EQ(ritual_write(conn, "ok", 2), 0);
    return len;
}

static void *pausing_client(void *arg)
{
    (void)arg;
    char buf[2];
    int fd = tcp_connect(story.port);
    send_all(fd, "hello", 5);
    recv_exact(fd, buf, 2, 5000);
    ASSERT_EQ(memcmp(buf, "ok", 2), 0);
    close(fd);
    client_done = 1;
    return NULL;
}

static void pause_resume_redelivers(void)
{
    ritual_conn_callbacks cbs = {.on_data = pause_data, .on_close = on_close};
    run_story(&cbs, 0, pausing_client);
    ASSERT_EQ(story.data_calls, 2);
    ASSERT_EQ(story.close_calls, 1);
    ASSERT_EQ(story.close_reason, 0);
}

TEST_CASES(CASE(half_close_then_reset), CASE(orderly_close_without_on_eof), CASE(abort_resets_peer),
           CASE(idle_timeout_closes), CASE(pause_resume_redelivers))
