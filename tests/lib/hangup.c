/* A clean hang-up is not a reset. The server shuts its sending side
 * (ritual_conn_shutdown_write) and pauses reading; the peer sends its last bytes and a FIN.
 * The socket then reports a hang-up with no error (both directions are
 * shut), which must not be taken for a reset: once reading resumes, the
 * last bytes arrive, then on_eof, and the connection closes cleanly. A proxy
 * relaying a half-closed stream is in this state whenever the side it
 * relays to is slower. */
#include "libtest.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

static const char last_words[] = "the last bytes before the FIN";

struct world {
    ritual_loop *loop;
    int port;
    ritual_conn *conn;
    _Atomic int client_sent;   /* the client sent its last bytes and its FIN */
    _Atomic int server_closed; /* on_close ran */
    int saw_hangup;            /* ticks since the server's socket reported it */
    char got[64];
    size_t got_len;
    int eofs, closes, reason;
    int eof_before_close;
};

static struct world w;

static void on_open(ritual_conn *conn)
{
    w.conn = conn;
    ASSERT_EQ(ritual_conn_shutdown_write(conn), 0);
    ritual_conn_pause(conn);
}

static size_t on_data(ritual_conn *conn, const char *bytes, size_t len)
{
    (void)conn;
    ASSERT_LE(w.got_len + len, sizeof w.got);
    memcpy(w.got + w.got_len, bytes, len);
    w.got_len += len;
    return len;
}

static void on_eof(ritual_conn *conn)
{
    w.eofs++;
    ASSERT_EQ(w.got_len, sizeof last_words - 1);
    ritual_conn_close(conn);
}

static void on_close(ritual_conn *conn, int reason)
{
    (void)conn;
    w.closes++;
    w.reason = reason;
    w.eof_before_close = w.eofs == 1;
    w.conn = NULL;
    w.server_closed = 1;
    ritual_loop_stop(w.loop);
}

/* The peer: waits for the server's FIN, then says its last words and
 * sends its own FIN. */
static void *client(void *arg)
{
    (void)arg;
    int fd = tcp_connect(w.port);
    expect_eof(fd, 5000);
    send_all(fd, last_words, sizeof last_words - 1);
    SYSCHECK(shutdown(fd, SHUT_WR));
    w.client_sent = 1;
    /* Stay open until the server closes, so nothing from here resets it. */
    uint64_t deadline = now_ms() + 10000;
    while (!w.server_closed && now_ms() < deadline)
        sleep_ms(5);
    close(fd);
    return NULL;
}

/* Resumes reading only once the server's socket has reported the hang-up
 * and the loop has since waited in its backend at least twice (so the
 * backend has seen it while the connection was paused). */
static void tick(ritual_timer *t, void *data)
{
    (void)data;
    if (!w.conn)
        return; /* closed: on_close says how */
    if (!w.client_sent)
        return;
    if (w.saw_hangup == 0) {
        struct pollfd p = {.fd = ritual_conn_fd(w.conn), .events = 0};
        SYSCHECK(poll(&p, 1, 0));
        if (!(p.revents & POLLHUP))
            return;
        ASSERT(!(p.revents & POLLERR));
    }
    if (++w.saw_hangup < 3)
        return;
    ASSERT_EQ(w.got_len, 0); /* paused: nothing handed over yet */
    ritual_conn_resume(w.conn);
    ritual_timer_stop(t);
}

static void clean_hangup_while_paused(void)
{
    w.loop = lt_loop();
    note("backend %s", ritual_loop_backend_name(w.loop));
    ritual_conn_callbacks cbs = {
        .on_open = on_open, .on_data = on_data, .on_eof = on_eof, .on_close = on_close};
    ritual_listener *l = lt_listen(w.loop, NULL, &cbs);
    w.port = ritual_listener_port(l);
    ritual_timer *t = ritual_timer_new(w.loop, tick, NULL);
    ASSERT(t != NULL);
    ASSERT_EQ(ritual_timer_start(t, 5, 5), 0);
    pthread_t th = lt_thread(client, NULL);
    lt_run(w.loop, 10000);
    lt_join(th);
    if (w.reason != 0)
        FAIL("on_close(%s) after %zu bytes and %d on_eof: the hang-up was taken for an error",
             ritual_strerror(w.reason), w.got_len, w.eofs);
    ASSERT_EQ(w.closes, 1);
    ASSERT_EQ(w.eofs, 1);
    ASSERT(w.eof_before_close);
    ASSERT_EQ(w.got_len, sizeof last_words - 1);
    ASSERT(memcmp(w.got, last_words, w.got_len) == 0);
    ritual_timer_free(t);
    ritual_loop_free(w.loop);
}

TEST_CASES(CASE(clean_hangup_while_paused))
