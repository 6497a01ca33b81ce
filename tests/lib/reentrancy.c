/* Callbacks that call back into the library at awkward moments. Each case
 * was a bug found in review; each would fail (under ASan, or by its
 * assertions) without its fix. */
#include "libtest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <signal.h>
#include <sys/resource.h>

static void stop_cb(ritual_timer *t, void *loop)
{
    (void)t;
    ritual_loop_stop(loop);
}

/* Runs the loop for `ms` milliseconds. */
static void run_for(ritual_loop *loop, int ms)
{
    ritual_timer *t = ritual_timer_new(loop, stop_cb, loop);
    ASSERT_EQ(ritual_timer_start(t, (uint64_t)ms, 0), 0);
    ASSERT_EQ(ritual_loop_run(loop), 0);
    ritual_timer_free(t);
}

static size_t consume_all(ritual_conn *c, const char *b, size_t n)
{
    (void)c;
    (void)b;
    return n;
}

/* Closing inside on_data keeps `bytes` readable until the callback
 * returns, also when they sit in the connection's own buffer. */
static int s1_calls;
static char s1_seen;

static size_t s1_data(ritual_conn *conn, const char *bytes, size_t len)
{
    if (s1_calls++ == 0)
        return 0; /* keep "abc": the next call reads from the connection's buffer */
    ritual_conn_close(conn);
    s1_seen = bytes[0];
    return len;
}

static void close_inside_on_data(void)
{
    ritual_loop *loop = lt_loop();
    ritual_listen_options o = {.conn.read_buffer_size = 1000}; /* not a pooled size */
    ritual_conn_callbacks cb = {.on_data = s1_data};
    int c = tcp_connect(ritual_listener_port(lt_listen(loop, &o, &cb)));
    send_all(c, "abc", 3);
    run_for(loop, 50);
    send_all(c, "def", 3);
    run_for(loop, 50);
    ASSERT_EQ(s1_calls, 2);
    ASSERT_EQ(s1_seen, 'a');
    close(c);
    ritual_loop_free(loop);
}

/* A listener with a bigger read buffer made inside on_data does not
 * free the buffer on_data is reading. */
static ritual_loop *s2_loop;
static int s2_calls;

static size_t s2_data(ritual_conn *conn, const char *bytes, size_t len)
{
    (void)conn;
    if (s2_calls++ == 0) {
        ritual_listen_options big = {.conn.read_buffer_size = 1 << 20};
        ritual_conn_callbacks cb = {.on_data = consume_all};
        ASSERT(ritual_listen(s2_loop, "127.0.0.1:0", &big, &cb, NULL) != NULL);
        ASSERT_EQ(memcmp(bytes, "hello", 5), 0);
    }
    return 0; /* keep it: the library copies it after we return */
}

static void grow_read_buffer_inside_on_data(void)
{
    s2_loop = lt_loop();
    ritual_conn_callbacks cb = {.on_data = s2_data};
    int c = tcp_connect(ritual_listener_port(lt_listen(s2_loop, NULL, &cb)));
    send_all(c, "hello", 5);
    run_for(s2_loop, 50);
    ASSERT_EQ(s2_calls, 1);
    close(c);
    ritual_loop_free(s2_loop);
}

/* Reconnecting from on_close while the loop is being freed is refused,
 * and every connection that was opened gets its on_close. */
static ritual_loop *s3_loop;
static char s3_addr[64];
static int s3_opened, s3_closed, s3_refused;
static void s3_close(ritual_conn *conn, int reason);
static const ritual_conn_callbacks s3_cb = {.on_data = consume_all, .on_close = s3_close};

static void s3_dial(void)
{
    ritual_error err;
    if (ritual_connect(s3_loop, s3_addr, NULL, &s3_cb, &err))
        s3_opened++;
    else if (err.code == -ESHUTDOWN)
        s3_refused++;
}

static void s3_close(ritual_conn *conn, int reason)
{
    (void)conn;
    (void)reason;
    s3_closed++;
    s3_dial(); /* reconnect, as clients do */
}

static void reconnect_while_freeing(void)
{
    s3_loop = lt_loop();
    ritual_conn_callbacks scb = {.on_data = consume_all};
    ritual_listener *l = lt_listen(s3_loop, NULL, &scb);
    ASSERT_EQ(ritual_listener_address(l, s3_addr, sizeof s3_addr), 0);
    s3_dial();
    run_for(s3_loop, 50);
    ritual_loop_free(s3_loop);
    ASSERT_EQ(s3_opened, 1);
    ASSERT_EQ(s3_closed, 1);
    ASSERT_EQ(s3_refused, 1);
}

/* Pause and resume inside a redelivered on_data asks for one more
 * delivery, which comes at once, not at the idle deadline. */
static int s4_calls;
static uint64_t s4_start, s4_third;

static void s4_resume(ritual_timer *t, void *conn)
{
    ritual_conn_resume(conn);
    ritual_timer_free(t);
}

static size_t s4_data(ritual_conn *conn, const char *bytes, size_t len)
{
    (void)bytes;
    s4_calls++;
    if (s4_calls == 1) {
        ritual_conn_pause(conn);
        ritual_timer *t = ritual_timer_new(ritual_conn_loop(conn), s4_resume, conn);
        ASSERT_EQ(ritual_timer_start(t, 20, 0), 0);
        return 0;
    }
    if (s4_calls == 2) {
        ritual_conn_pause(conn);
        ritual_conn_resume(conn);
        return 0;
    }
    s4_third = now_ms();
    ritual_loop_stop(ritual_conn_loop(conn));
    return len;
}

static void pause_resume_inside_redelivery(void)
{
    ritual_loop *loop = lt_loop();
    ritual_listen_options o = {.conn.idle_timeout_ms = 2000};
    ritual_conn_callbacks cb = {.on_data = s4_data};
    int c = tcp_connect(ritual_listener_port(lt_listen(loop, &o, &cb)));
    s4_start = now_ms();
    send_all(c, "hello", 5);
    lt_run(loop, 5000);
    ASSERT_EQ(s4_calls, 3);
    note("third delivery %llu ms after the send", (unsigned long long)(s4_third - s4_start));
    ASSERT_LT(s4_third - s4_start, 1000);
    close(c);
    ritual_loop_free(loop);
}

/* Closing an outbound connection before it connected: no spin, no
 * on_open, on_close with reason 0. */
static int s5_opens, s5_closes, s5_reason = 1;

static void s5_srv_open(ritual_conn *c)
{
    (void)ritual_write(c, "220 hello\r\n", 11); /* a banner: input for the client */
}

static void s5_srv_eof(ritual_conn *c)
{
    (void)c; /* keep the server's side open */
}

static void s5_open(ritual_conn *c)
{
    (void)c;
    s5_opens++;
}

static void s5_close(ritual_conn *c, int reason)
{
    (void)c;
    s5_closes++;
    s5_reason = reason;
}

static double cpu_seconds(void)
{
    struct rusage u;
    SYSCHECK(getrusage(RUSAGE_SELF, &u));
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static void close_while_connecting(void)
{
    ritual_loop *loop = lt_loop();
    ritual_conn_callbacks scb = {
        .on_open = s5_srv_open, .on_data = consume_all, .on_eof = s5_srv_eof};
    char addr[64];
    ASSERT_EQ(ritual_listener_address(lt_listen(loop, NULL, &scb), addr, sizeof addr), 0);
    ritual_conn_callbacks ccb = {.on_open = s5_open, .on_data = consume_all, .on_close = s5_close};
    ritual_connect_options co = {.timeout_ms = 3000};
    ritual_conn *c = ritual_connect(loop, addr, &co, &ccb, NULL);
    ASSERT(c != NULL);
    ritual_conn_close(c);
    double before = cpu_seconds();
    run_for(loop, 500);
    note("CPU while the closed connection waited: %.3f s in 0.5 s", cpu_seconds() - before);
    ASSERT_DBL_LT(cpu_seconds() - before, 0.2);
    ASSERT_EQ(s5_opens, 0);
    ASSERT_EQ(s5_closes, 1);
    ASSERT_EQ(s5_reason, 0);
    ritual_loop_free(loop);
}

/* A connect made long after the loop last read its clock still gets its
 * whole timeout. The target's accept queue is full, so the SYN is dropped
 * and the handshake never completes. */
static uint64_t s6_closed_at;
static int s6_reason;

static void s6_close(ritual_conn *c, int reason)
{
    s6_closed_at = now_ms();
    s6_reason = reason;
    ritual_loop_stop(ritual_conn_loop(c));
}

static void connect_timeout_from_now(void)
{
    int s = SYSCHECK(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    SYSCHECK(bind(s, (struct sockaddr *)&a, sizeof a));
    SYSCHECK(listen(s, 0));
    int port = socket_port(s);
    int fill[2];
    for (int i = 0; i < 2; i++)
        fill[i] = tcp_connect_start(port);
    sleep_ms(100);

    ritual_loop *loop = lt_loop();
    sleep_ms(300); /* set-up work after the loop read its clock */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    ritual_conn_callbacks cb = {.on_data = consume_all, .on_close = s6_close};
    ritual_connect_options co = {.timeout_ms = 500};
    uint64_t start = now_ms();
    ASSERT(ritual_connect(loop, addr, &co, &cb, NULL) != NULL);
    lt_run(loop, 5000);
    note("connect timed out after %llu ms (timeout 500)",
         (unsigned long long)(s6_closed_at - start));
    ASSERT_EQ(s6_reason, -ETIMEDOUT);
    ASSERT_GE(s6_closed_at - start, 500);
    ritual_loop_free(loop);
    close(fill[0]);
    close(fill[1]);
    close(s);
}

/* Installing the signal handlers twice does not make one SIGINT count as
 * two: it drains instead of stopping at once. */
static void raise_int(ritual_timer *t, void *d)
{
    (void)t;
    (void)d;
    kill(getpid(), SIGINT);
}

static void signals_installed_twice(void)
{
    ritual_loop *loop = lt_loop();
    ASSERT_EQ(ritual_loop_shutdown_on_signals(loop, 5000), 0);
    ASSERT_EQ(ritual_loop_shutdown_on_signals(loop, 5000), 0);
    ritual_timer *t = ritual_timer_new(loop, raise_int, NULL);
    ASSERT_EQ(ritual_timer_start(t, 20, 0), 0);
    lt_run(loop, 5000); /* returns 0: drained (nothing to drain), not forced */
    ritual_loop_free(loop);
}

TEST_CASES(CASE(close_inside_on_data), CASE(grow_read_buffer_inside_on_data),
           CASE(reconnect_while_freeing), CASE(pause_resume_inside_redelivery),
           CASE(close_while_connecting), CASE(connect_timeout_from_now),
           CASE(signals_installed_twice))
