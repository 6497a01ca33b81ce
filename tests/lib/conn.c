/* A connection's life as the user sees it: half-close (the peer's FIN) and a
 * reset that follows it, orderly close without on_eof, abort, idle timeout,
 * and pause/resume handing buffered input over again. One listener per story;
 * a client thread plays the peer of each in turn. */
#include "libtest.h"

#include <errno.h>
#include <sys/socket.h>

enum { HALF, PLAIN, ABORT, IDLE, PAUSE, N_STORIES };

struct story {
    ritual_listener *listener;
    int port;
    int eof_calls;
    int close_calls;
    int close_reason;
    int data_calls;
    int order; /* 1 if on_eof came before on_close */
};

static struct story stories[N_STORIES];
static _Atomic int client_done;

static struct story *story_of(ritual_conn *conn)
{
    return ritual_listener_data(ritual_conn_listener(conn));
}

static void on_close(ritual_conn *conn, int reason)
{
    struct story *s = story_of(conn);
    s->close_calls++;
    s->close_reason = reason;
    s->order = s->eof_calls == 1;
    ASSERT_EQ(ritual_write(conn, "late", 4), -EPIPE); /* closed: writes refused */
}

static size_t echo(ritual_conn *conn, const char *bytes, size_t len)
{
    story_of(conn)->data_calls++;
    ASSERT_EQ(ritual_write(conn, bytes, len), 0);
    return len;
}

/* HALF: answer the FIN with a last word, and keep the connection open. */
static void half_eof(ritual_conn *conn)
{
    story_of(conn)->eof_calls++;
    ASSERT_EQ(ritual_write(conn, "bye", 3), 0);
}

/* ABORT: reset the connection on its first bytes. */
static size_t abort_data(ritual_conn *conn, const char *bytes, size_t len)
{
    (void)bytes;
    story_of(conn)->data_calls++;
    ritual_conn_abort(conn);
    ritual_conn_abort(conn); /* idempotent */
    return len;
}

/* PAUSE: the first call pauses and consumes nothing; a timer resumes, and
 * the same bytes come back without the peer sending more. */
static void resume_later(ritual_timer *t, void *data)
{
    ritual_conn_resume(data);
    ritual_timer_free(t);
}

static size_t pause_data(ritual_conn *conn, const char *bytes, size_t len)
{
    struct story *s = story_of(conn);
    if (s->data_calls++ == 0) {
        ASSERT_EQ(len, 5);
        ritual_conn_pause(conn);
        ritual_timer *t = ritual_timer_new(ritual_conn_loop(conn), resume_later, conn);
        ASSERT_EQ(ritual_timer_start(t, 50, 0), 0);
        return 0;
    }
    ASSERT_EQ(len, 5);
    ASSERT_EQ(memcmp(bytes, "hello", 5), 0);
    ASSERT_EQ(ritual_write(conn, "ok", 2), 0);
    return len;
}

static void *client(void *arg)
{
    (void)arg;
    char buf[16];

    /* HALF: send, FIN, read the echo and the last word, then reset. */
    int fd = tcp_connect(stories[HALF].port);
    send_all(fd, "ping", 4);
    SYSCHECK(shutdown(fd, SHUT_WR));
    recv_exact(fd, buf, 7, 5000);
    ASSERT_EQ(memcmp(buf, "pingbye", 7), 0);
    struct linger lin = {.l_onoff = 1, .l_linger = 0};
    SYSCHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin));
    close(fd);

    /* PLAIN: no on_eof, so the FIN closes the connection after the echo. */
    fd = tcp_connect(stories[PLAIN].port);
    send_all(fd, "x", 1);
    SYSCHECK(shutdown(fd, SHUT_WR));
    recv_exact(fd, buf, 1, 5000);
    expect_eof(fd, 5000);
    close(fd);

    /* ABORT: the server's reset arrives as ECONNRESET. */
    fd = tcp_connect(stories[ABORT].port);
    send_all(fd, "x", 1);
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    ASSERT_EQ(n, -1);
    ASSERT_EQ(errno, ECONNRESET);
    close(fd);

    /* IDLE: silence for longer than the idle timeout ends in an orderly FIN. */
    fd = tcp_connect(stories[IDLE].port);
    uint64_t start = now_ms();
    expect_eof(fd, 5000);
    ASSERT_GE(now_ms() - start, 100);
    close(fd);

    /* PAUSE */
    fd = tcp_connect(stories[PAUSE].port);
    send_all(fd, "hello", 5);
    recv_exact(fd, buf, 2, 5000);
    ASSERT_EQ(memcmp(buf, "ok", 2), 0);
    close(fd);

    client_done = 1;
    return NULL;
}

static void stop_when_done(ritual_timer *t, void *data)
{
    /* Wait for the last on_close too: closes are reported at the end of an
     * iteration, after the client has seen its side. */
    if (client_done && stories[PAUSE].close_calls == 1) {
        ritual_timer_stop(t);
        ritual_loop_stop(data);
    }
}

int main(void)
{
    ritual_loop *loop = lt_loop();
    const ritual_conn_callbacks cbs[N_STORIES] = {
        [HALF] = {.on_data = echo, .on_eof = half_eof, .on_close = on_close},
        [PLAIN] = {.on_data = echo, .on_close = on_close},
        [ABORT] = {.on_data = abort_data, .on_close = on_close},
        [IDLE] = {.on_data = echo, .on_close = on_close},
        [PAUSE] = {.on_data = pause_data, .on_close = on_close},
    };
    for (int i = 0; i < N_STORIES; i++) {
        ritual_listen_options opts = {.data = &stories[i]};
        if (i == IDLE)
            opts.conn.idle_timeout_ms = 100;
        stories[i].listener = lt_listen(loop, &opts, &cbs[i]);
        stories[i].port = ritual_listener_port(stories[i].listener);
    }
    ritual_timer *stopper = ritual_timer_new(loop, stop_when_done, loop);
    ASSERT_EQ(ritual_timer_start(stopper, 10, 10), 0);
    pthread_t t = lt_thread(client, NULL);
    lt_run(loop, 20000);
    lt_join(t);

    /* The FIN was reported, then the reset that followed it. */
    ASSERT_EQ(stories[HALF].eof_calls, 1);
    ASSERT_EQ(stories[HALF].close_calls, 1);
    ASSERT_EQ(stories[HALF].order, 1);
    ASSERT_EQ(stories[HALF].close_reason, -ECONNRESET);

    ASSERT_EQ(stories[PLAIN].close_calls, 1);
    ASSERT_EQ(stories[PLAIN].close_reason, 0);

    ASSERT_EQ(stories[ABORT].close_calls, 1);
    ASSERT_EQ(stories[ABORT].close_reason, -ECONNABORTED);

    ASSERT_EQ(stories[IDLE].close_calls, 1);
    ASSERT_EQ(stories[IDLE].close_reason, -ETIMEDOUT);

    ASSERT_EQ(stories[PAUSE].data_calls, 2);
    ASSERT_EQ(stories[PAUSE].close_calls, 1);
    ASSERT_EQ(stories[PAUSE].close_reason, 0);

    ASSERT_EQ(ritual_loop_conn_count(loop), 0);
    ritual_loop_free(loop);
    return 0;
}
