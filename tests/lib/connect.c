/* Outbound connections (ritual_connect):
 *
 * - write_queued_until_open: a connect to our own listener; bytes written
 *   before the handshake completes are queued and flushed; on_open comes
 *   from the loop, never from inside ritual_connect.
 * - refused_connect: a refused connect reports -ECONNREFUSED through
 *   on_close without on_open.
 * - bad_addresses: addresses that cannot be connected to fail at once,
 *   naming the problem. */
#include "libtest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>

static int opens, closes, refused_closes, in_connect;
static char got[64];
static size_t got_len;

static size_t echo(ritual_conn *conn, const char *bytes, size_t len)
{
    ASSERT_EQ(ritual_write(conn, bytes, len), 0);
    return len;
}

static void client_open(ritual_conn *conn)
{
    ASSERT_EQ(in_connect, 0);
    ASSERT(ritual_conn_listener(conn) == NULL);
    ASSERT_EQ(strcmp(ritual_conn_data(conn), "client"), 0);
    opens++;
    ASSERT_EQ(ritual_write(conn, " world", 6), 0);
}

static size_t client_data(ritual_conn *conn, const char *bytes, size_t len)
{
    ASSERT_LE(got_len + len, sizeof got);
    memcpy(got + got_len, bytes, len);
    got_len += len;
    if (got_len == 11)
        ritual_conn_close(conn);
    return len;
}

static void client_close(ritual_conn *conn, int reason)
{
    ASSERT_EQ(reason, 0);
    closes++;
    ritual_loop_stop(ritual_conn_loop(conn));
}

static void write_queued_until_open(void)
{
    ritual_loop *loop = lt_loop();
    ritual_conn_callbacks server = {.on_data = echo};
    ritual_listener *l = lt_listen(loop, NULL, &server);
    char address[64];
    ASSERT_EQ(ritual_listener_address(l, address, sizeof address), 0);

    ritual_error err;
    ritual_conn_callbacks client = {
        .on_open = client_open, .on_data = client_data, .on_close = client_close};
    ritual_connect_options opts = {.data = "client"};
    in_connect = 1;
    ritual_conn *conn = ritual_connect(loop, address, &opts, &client, &err);
    in_connect = 0;
    if (!conn)
        FAIL("ritual_connect %s: %s", address, err.message);
    ASSERT_EQ(ritual_write(conn, "hello", 5), 0); /* queued: not connected yet */

    lt_run(loop, 10000);
    ASSERT_EQ(opens, 1);
    ASSERT_EQ(closes, 1);
    ASSERT_EQ(got_len, 11);
    ASSERT_EQ(memcmp(got, "hello world", 11), 0);
    ritual_loop_free(loop);
}

static void refused_open(ritual_conn *conn)
{
    (void)conn;
    FAIL("on_open for a refused connection");
}

static void refused_close(ritual_conn *conn, int reason)
{
    ASSERT_EQ(reason, -ECONNREFUSED);
    refused_closes++;
    ritual_loop_stop(ritual_conn_loop(conn));
}

static void refused_connect(void)
{
    ritual_loop *loop = lt_loop();

    /* A port nobody listens on: bind one, read its number, close it. */
    int spare = SYSCHECK(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    SYSCHECK(bind(spare, (struct sockaddr *)&sin, sizeof sin));
    char refused_address[64];
    snprintf(refused_address, sizeof refused_address, "127.0.0.1:%d", socket_port(spare));
    close(spare);

    ritual_error err;
    ritual_conn_callbacks nobody = {
        .on_open = refused_open, .on_data = echo, .on_close = refused_close};
    if (!ritual_connect(loop, refused_address, NULL, &nobody, &err))
        FAIL("ritual_connect %s: %s", refused_address, err.message);
    lt_run(loop, 10000);
    ASSERT_EQ(refused_closes, 1);
    ritual_loop_free(loop);
}

static void bad_addresses(void)
{
    ritual_loop *loop = lt_loop();
    ritual_conn_callbacks client = {
        .on_open = client_open, .on_data = client_data, .on_close = client_close};
    ritual_error err;
    ASSERT(ritual_connect(loop, "*:80", NULL, &client, &err) == NULL);
    ASSERT_EQ(err.code, -EINVAL);
    note("*:80: %s", err.message);
    ASSERT(ritual_connect(loop, "nohost:80", NULL, &client, &err) == NULL);
    ASSERT_EQ(err.code, -EINVAL);
    note("nohost:80: %s", err.message);
    ritual_loop_free(loop);
}

TEST_CASES(CASE(write_queued_until_open), CASE(refused_connect), CASE(bad_addresses))
