/* Half-close and relay-safe backpressure: what a proxy needs.
 *
 * fin_after_queue_then_reading_goes_on: ritual_conn_shutdown_write with
 *   2 MiB queued sends the FIN after the last byte; the connection goes on
 *   reading (the peer's next bytes and its FIN arrive), writes are refused
 *   with -EPIPE, and it closes cleanly.
 * shutdown_before_connected: an outbound connection shut before its
 *   handshake completes sends what was queued, then the FIN, and still
 *   reads the answer; with nothing queued, the FIN follows the handshake.
 * keep_reading_relay: with keep_reading, a connection whose peer does not
 *   read goes on reading while its queue passes the high watermark (a
 *   relay must, or two streams deadlock); ritual_conn_write_blocked says
 *   so, and on_drain comes once the queue falls to the low watermark. */
#include "libtest.h"

#include <errno.h>
#include <stdlib.h>
#include <poll.h>
#include <sys/socket.h>

#define BIG (2u << 20)
#define SEED 0x4841u

/* A small kernel send buffer: output the peer has not read queues in the
 * library at once, rather than after the kernel's autotuned megabytes. */
static void small_send_buffer(ritual_conn *conn)
{
    int size = 16 * 1024;
    SYSCHECK(setsockopt(ritual_conn_fd(conn), SOL_SOCKET, SO_SNDBUF, &size, sizeof size));
}

/* ------------------------------------- fin_after_queue_then_reading_goes_on */

static struct {
    ritual_loop *loop;
    int port;
    int shut_rc, shut_again_rc, write_after_rc;
    char more[16];
    size_t more_len;
    int eofs, closes, reason;
} s1;

static size_t s1_data(ritual_conn *conn, const char *bytes, size_t len)
{
    if (len >= 2 && memcmp(bytes, "go", 2) == 0 && s1.shut_rc == 1) {
        small_send_buffer(conn); /* so that most of the 2 MiB waits in the queue */
        char *big = malloc(BIG);
        ASSERT(big != NULL);
        pattern_fill(SEED, 0, big, BIG);
        ASSERT_EQ(ritual_write(conn, big, BIG), 0);
        free(big);
        ASSERT_GT(ritual_conn_write_queued(conn), 0); /* the FIN has to wait for it */
        s1.shut_rc = ritual_conn_shutdown_write(conn);
        s1.shut_again_rc = ritual_conn_shutdown_write(conn);
        s1.write_after_rc = ritual_write(conn, "x", 1);
        return 2;
    }
    ASSERT_LE(s1.more_len + len, sizeof s1.more);
    memcpy(s1.more + s1.more_len, bytes, len);
    s1.more_len += len;
    return len;
}

static void s1_eof(ritual_conn *conn)
{
    s1.eofs++;
    ritual_conn_close(conn);
}

static void s1_close(ritual_conn *conn, int reason)
{
    (void)conn;
    s1.closes++;
    s1.reason = reason;
    ritual_loop_stop(s1.loop);
}

static void *s1_client(void *arg)
{
    (void)arg;
    int fd = tcp_connect(s1.port);
    send_all(fd, "go", 2);
    char *got = malloc(BIG + 1);
    ASSERT(got != NULL);
    size_t len;
    int end = recv_to_end(fd, got, BIG + 1, &len, 20000);
    ASSERT_EQ(end, STREAM_EOF);
    ASSERT_EQ(len, BIG);
    ASSERT_EQ(pattern_mismatch(SEED, 0, got, len), len);
    free(got);
    /* Only the server's side is shut: it still reads ours. */
    send_all(fd, "more", 4);
    SYSCHECK(shutdown(fd, SHUT_WR));
    close(fd); /* nothing unread: no reset; the server reads both, then closes */
    return NULL;
}

static void fin_after_queue_then_reading_goes_on(void)
{
    s1.loop = lt_loop();
    s1.shut_rc = 1;
    ritual_conn_callbacks cbs = {.on_data = s1_data, .on_eof = s1_eof, .on_close = s1_close};
    s1.port = ritual_listener_port(lt_listen(s1.loop, NULL, &cbs));
    pthread_t t = lt_thread(s1_client, NULL);
    lt_run(s1.loop, 30000);
    lt_join(t);
    note("%s: 2 MiB then the FIN; then the peer's 4 bytes and its FIN",
         ritual_loop_backend_name(s1.loop));
    ASSERT_EQ(s1.shut_rc, 0);
    ASSERT_EQ(s1.shut_again_rc, 0);
    ASSERT_EQ(s1.write_after_rc, -EPIPE);
    ASSERT_EQ(s1.more_len, 4);
    ASSERT(memcmp(s1.more, "more", 4) == 0);
    ASSERT_EQ(s1.eofs, 1);
    ASSERT_EQ(s1.closes, 1);
    ASSERT_EQ(s1.reason, 0);
    ritual_loop_free(s1.loop);
}

/* ------------------------------------------------ shutdown_before_connected */

struct side {
    char got[32];
    size_t got_len;
    int eofs, closes, reason;
};

static struct {
    ritual_loop *loop;
    struct side server[2], client[2];
    int accepted, closed;
} s2;

static size_t s2_collect(struct side *s, const char *bytes, size_t len)
{
    ASSERT_LE(s->got_len + len, sizeof s->got);
    memcpy(s->got + s->got_len, bytes, len);
    s->got_len += len;
    return len;
}

static void s2_server_open(ritual_conn *conn)
{
    ASSERT_LT(s2.accepted, 2);
    ritual_conn_set_data(conn, &s2.server[s2.accepted++]);
}

static size_t s2_server_data(ritual_conn *conn, const char *bytes, size_t len)
{
    return s2_collect(ritual_conn_data(conn), bytes, len);
}

/* The client's FIN came: answer, then close (the client still reads). */
static void s2_server_eof(ritual_conn *conn)
{
    struct side *s = ritual_conn_data(conn);
    s->eofs++;
    ASSERT_EQ(ritual_write(conn, "bye", 3), 0);
    ritual_conn_close(conn);
}

static size_t s2_client_data(ritual_conn *conn, const char *bytes, size_t len)
{
    return s2_collect(ritual_conn_data(conn), bytes, len);
}

static void s2_close(ritual_conn *conn, int reason)
{
    struct side *s = ritual_conn_data(conn);
    if (s == NULL)
        FAIL("a connection closed (%s) before it was set up", ritual_strerror(reason));
    s->closes++;
    s->reason = reason;
    if (++s2.closed == 4)
        ritual_loop_stop(s2.loop);
}

static void shutdown_before_connected(void)
{
    s2.loop = lt_loop();
    ritual_conn_callbacks server = {.on_open = s2_server_open,
                                    .on_data = s2_server_data,
                                    .on_eof = s2_server_eof,
                                    .on_close = s2_close};
    ritual_listener *l = lt_listen(s2.loop, NULL, &server);
    char address[64];
    ASSERT_EQ(ritual_listener_address(l, address, sizeof address), 0);
    /* No on_eof: the client closes once the server's answer and FIN came. */
    ritual_conn_callbacks client = {.on_data = s2_client_data, .on_close = s2_close};
    ritual_error err;
    for (int i = 0; i < 2; i++) {
        ritual_connect_options o = {.data = &s2.client[i]};
        ritual_conn *c = ritual_connect(s2.loop, address, &o, &client, &err);
        if (!c)
            FAIL("ritual_connect: %s", err.message);
        if (i == 0)
            ASSERT_EQ(ritual_write(c, "hello", 5), 0); /* queued: not connected yet */
        ASSERT_EQ(ritual_conn_shutdown_write(c), 0);
        ASSERT_EQ(ritual_write(c, "late", 4), -EPIPE);
    }
    lt_run(s2.loop, 10000);
    ASSERT_EQ(s2.accepted, 2);
    /* The servers took the connections in either order: "hello" came on one. */
    int hello = s2.server[0].got_len == 5 ? 0 : 1;
    ASSERT_EQ(s2.server[hello].got_len, 5);
    ASSERT(memcmp(s2.server[hello].got, "hello", 5) == 0);
    ASSERT_EQ(s2.server[1 - hello].got_len, 0);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(s2.server[i].eofs, 1);
        ASSERT_EQ(s2.server[i].closes, 1);
        ASSERT_EQ(s2.server[i].reason, 0);
        ASSERT_EQ(s2.client[i].got_len, 3);
        ASSERT(memcmp(s2.client[i].got, "bye", 3) == 0);
        ASSERT_EQ(s2.client[i].closes, 1);
        ASSERT_EQ(s2.client[i].reason, 0);
    }
    ritual_loop_free(s2.loop);
}

/* ------------------------------------------------------- keep_reading_relay */

#define RELAY_TOTAL (1u << 20)
#define RELAY_HIGH (64 * 1024)
#define RELAY_LOW (16 * 1024)

static struct {
    ritual_loop *loop;
    int port;
    size_t received, received_while_blocked, most_queued;
    int blocked_seen, drains, blocked_after_drain, closes, reason;
} s3;

static size_t s3_data(ritual_conn *conn, const char *bytes, size_t len)
{
    if (ritual_conn_write_blocked(conn)) {
        s3.blocked_seen = 1;
        s3.received_while_blocked += len;
    }
    s3.received += len;
    ASSERT_EQ(ritual_write(conn, bytes, len), 0);
    size_t q = ritual_conn_write_queued(conn);
    s3.most_queued = q > s3.most_queued ? q : s3.most_queued;
    return len;
}

static void s3_open(ritual_conn *conn)
{
    small_send_buffer(conn);
}

static void s3_drain(ritual_conn *conn)
{
    s3.drains++;
    s3.blocked_after_drain = ritual_conn_write_blocked(conn);
}

static void s3_close(ritual_conn *conn, int reason)
{
    (void)conn;
    s3.closes++;
    s3.reason = reason;
    ritual_loop_stop(s3.loop);
}

/* Sends everything without reading (the server must keep reading for that
 * to finish), then reads the echo back. */
static void *s3_client(void *arg)
{
    (void)arg;
    int fd = tcp_connect_rcvbuf(s3.port, 16 * 1024);
    set_nonblocking(fd, 1);
    static char out[RELAY_TOTAL];
    pattern_fill(SEED, 0, out, sizeof out);
    size_t sent = 0;
    while (sent < sizeof out) {
        if (!wait_fd(fd, POLLOUT, now_ms() + 5000))
            FAIL("the server stopped reading after %zu of %u bytes", sent, RELAY_TOTAL);
        ssize_t n = send(fd, out + sent, sizeof out - sent, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0)
            FAIL("send after %zu bytes: %s", sent, strerror(errno));
        sent += (size_t)n;
    }
    static char back[RELAY_TOTAL];
    recv_exact(fd, back, sizeof back, 20000);
    ASSERT_EQ(pattern_mismatch(SEED, 0, back, sizeof back), sizeof back);
    close(fd);
    return NULL;
}

static void keep_reading_relay(void)
{
    s3.loop = lt_loop();
    ritual_listen_options o = {.conn = {.keep_reading = 1,
                                        .write_high_watermark = RELAY_HIGH,
                                        .write_low_watermark = RELAY_LOW}};
    ritual_conn_callbacks cbs = {
        .on_open = s3_open, .on_data = s3_data, .on_drain = s3_drain, .on_close = s3_close};
    s3.port = ritual_listener_port(lt_listen(s3.loop, &o, &cbs));
    pthread_t t = lt_thread(s3_client, NULL);
    lt_run(s3.loop, 30000);
    lt_join(t);
    note("%s: %zu bytes read, %zu of them while over the high watermark; queue peaked at %zu "
         "bytes; %d drains",
         ritual_loop_backend_name(s3.loop), s3.received, s3.received_while_blocked, s3.most_queued,
         s3.drains);
    ASSERT_EQ(s3.received, RELAY_TOTAL);
    ASSERT(s3.blocked_seen);
    ASSERT_GT(s3.received_while_blocked, 0);
    ASSERT_GT(s3.most_queued, RELAY_HIGH);
    ASSERT_GE(s3.drains, 1);
    ASSERT_EQ(s3.blocked_after_drain, 0);
    ASSERT_EQ(s3.closes, 1);
    ASSERT_EQ(s3.reason, 0);
    ritual_loop_free(s3.loop);
}

TEST_CASES(CASE(fin_after_queue_then_reading_goes_on), CASE(shutdown_before_connected),
           CASE(keep_reading_relay))
