/* TLS under the ordinary connection API, on every backend, with a CA and
 * certificates made by the openssl command for each case.
 *
 * echo_16_mib_both_ends_ritual: a TLS echo listener and a TLS client made
 *   with ritual_connect in one loop; 16 MiB written by the client in pieces
 *   of every size come back intact; on_open comes after the handshake with
 *   TLS 1.3 and ALPN agreed; the client's shutdown_write sends
 *   close_notify, which the server reads as its end of stream (on_eof), and
 *   the server's close is the client's on_eof: both close with reason 0.
 * close_notify_both_ways: an OpenSSL client sends a line and close_notify;
 *   the server gets the line, then on_eof; it answers and closes, and the
 *   client reads the answer, then the server's close_notify.
 * truncated_stream_is_an_error: a client that ends with a FIN and no
 *   close_notify: the server never gets on_eof, and closes with -EPROTO.
 * reset_mid_record: a round trip, half a record, then a reset:
 *   -ECONNRESET; a client after it is served.
 * bad_handshakes_are_dropped: a client that sends nothing past the
 *   handshake timeout, garbage, a truncated ClientHello then a FIN, a TLS
 *   1.0 hello: each is closed without on_open or on_close, and a good
 *   client after them is served.
 * plaintext_listener_hands_plain_text_over: with RITUAL_LISTEN_TLS_PLAINTEXT
 *   a client speaking plain text reaches on_open and on_data unencrypted,
 *   and ritual_conn_tls_info says so; a ClientHello that arrives in two
 *   pieces (the second not starting like a record) is still TLS.
 * file_to_a_stalled_reader_is_bounded: an 8 MiB file written to a client
 *   that reads nothing for a while: at most one step of 64 KiB of records
 *   waits in memory; then every byte arrives.
 * tickets_rotate: with a new ticket key every second, a session from the
 *   first key resumes for as long as it is one of the three kept, and not
 *   after; a session resumes on a loop other than the one that issued it
 *   (the keys belong to the ritual_tls, shared by every worker).
 * client_verifies_and_resumes: ritual_connect verifies the certificate
 *   against the CA and the name (a wrong name closes with -EPROTO and no
 *   on_open); a second connection resumes the first's session. */
#include "libtest.h"
#include "ritual_tls.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEED 0x544c5300u
#define TOTAL (16u << 20)

static char dir[64], ca[128], cert[128], key[128];
static ritual_loop *loop;
static ritual_tls *server_tls;
static int port;

static void make_certs(void)
{
    temp_dir_make(dir, sizeof dir);
    tls_make_certs(dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(cert, sizeof cert, "%s/server.pem", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
}

static void remove_certs(void)
{
    remove_tree(dir);
}

static ritual_tls *new_server_tls(uint64_t handshake_ms)
{
    ritual_tls_options o = {.cert_file = cert,
                            .key_file = key,
                            .alpn = "http/1.1",
                            .handshake_timeout_ms = handshake_ms};
    ritual_error err;
    ritual_tls *tls = ritual_tls_server_new(&o, &err);
    if (!tls)
        FAIL("ritual_tls_server_new: %s", err.message);
    return tls;
}

static ritual_listener *listen_tls(const ritual_conn_callbacks *cbs, unsigned flags)
{
    ritual_listen_options lo = {.tls = server_tls, .flags = flags};
    return lt_listen(loop, &lo, cbs);
}

/* ------------------------------------------------ a ritual client and server */

static size_t sent, echoed;
static int opens, server_eofs, client_eofs, server_close = 1, client_close = 1;
static ritual_conn *client;

static size_t echo_data(ritual_conn *conn, const char *bytes, size_t len)
{
    ASSERT_EQ(ritual_write(conn, bytes, len), 0);
    return len;
}

static void server_open(ritual_conn *conn)
{
    ritual_tls_info info;
    ASSERT_EQ(ritual_conn_tls_info(conn, &info), 0);
    ASSERT(strcmp(info.version, "TLSv1.3") == 0);
    ASSERT(strcmp(info.alpn, "http/1.1") == 0);
    ASSERT(info.server_name && strcmp(info.server_name, "localhost") == 0);
    opens++;
}

static void server_eof(ritual_conn *conn)
{
    server_eofs++;
    ritual_conn_close(conn);
}

static void server_closed(ritual_conn *conn, int reason)
{
    (void)conn;
    server_close = reason;
}

/* The client writes the pattern in pieces of growing, odd sizes. */
static void client_fill(ritual_conn *conn)
{
    static char piece[70000];
    size_t size = 1;
    while (sent < TOTAL && !ritual_conn_write_blocked(conn)) {
        size_t n = size < TOTAL - sent ? size : TOTAL - sent;
        pattern_fill(SEED, sent, piece, n);
        ASSERT_EQ(ritual_write(conn, piece, n), 0);
        sent += n;
        size = size * 3 + 7;
        if (size > sizeof piece)
            size = 1;
    }
    if (sent == TOTAL)
        ASSERT_EQ(ritual_conn_shutdown_write(conn), 0);
}

static void client_open(ritual_conn *conn)
{
    ritual_tls_info info;
    ASSERT_EQ(ritual_conn_tls_info(conn, &info), 0);
    ASSERT(strcmp(info.alpn, "http/1.1") == 0);
    opens++;
    client_fill(conn);
}

static size_t client_data(ritual_conn *conn, const char *bytes, size_t len)
{
    (void)conn;
    ASSERT_EQ(pattern_mismatch(SEED, echoed, bytes, len), len);
    echoed += len;
    return len;
}

static void client_drain(ritual_conn *conn)
{
    if (sent < TOTAL)
        client_fill(conn);
}

static void client_eof(ritual_conn *conn)
{
    client_eofs++;
    ritual_conn_close(conn);
}

static void client_closed(ritual_conn *conn, int reason)
{
    (void)conn;
    client_close = reason;
    ritual_loop_stop(loop);
}

static ritual_tls *new_client_tls(void)
{
    ritual_tls_options o = {.ca_file = ca, .alpn = "http/1.1"};
    ritual_error err;
    ritual_tls *tls = ritual_tls_client_new(&o, &err);
    if (!tls)
        FAIL("ritual_tls_client_new: %s", err.message);
    return tls;
}

static void echo_16_mib_both_ends_ritual(void)
{
    loop = lt_loop();
    server_tls = new_server_tls(0);
    ritual_conn_callbacks scb = {.on_open = server_open,
                                 .on_data = echo_data,
                                 .on_eof = server_eof,
                                 .on_close = server_closed};
    port = ritual_listener_port(listen_tls(&scb, 0));
    ritual_tls *ctls = new_client_tls();
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%d", port);
    /* It writes more than the queues and sockets hold before reading: it
     * must read while its queue is full (keep_reading), as a relay does. */
    ritual_connect_options co = {.tls = ctls, .server_name = "localhost", .conn.keep_reading = 1};
    ritual_conn_callbacks ccb = {.on_open = client_open,
                                 .on_data = client_data,
                                 .on_drain = client_drain,
                                 .on_eof = client_eof,
                                 .on_close = client_closed};
    ritual_error err;
    client = ritual_connect(loop, address, &co, &ccb, &err);
    ASSERT(client);
    ritual_tls_free(ctls); /* the connection keeps what it needs */
    lt_run(loop, 30000);
    ASSERT_EQ(opens, 2);
    ASSERT_EQ(sent, TOTAL);
    ASSERT_EQ(echoed, TOTAL);
    ASSERT_EQ(server_eofs, 1);
    ASSERT_EQ(client_eofs, 1);
    ASSERT_EQ(client_close, 0);
    ritual_loop_free(loop);
    ASSERT_EQ(server_close, 0);
    ritual_tls_free(server_tls);
}

/* ------------------------------------------- an OpenSSL client, in a thread */

static char line[64];
static size_t line_len;

static size_t keep_line(ritual_conn *conn, const char *bytes, size_t len)
{
    (void)conn;
    ASSERT(line_len + len < sizeof line);
    memcpy(line + line_len, bytes, len);
    line_len += len;
    return len;
}

static void answer_and_close(ritual_conn *conn)
{
    server_eofs++;
    ASSERT_EQ(ritual_write(conn, "bye\n", 4), 0);
    ritual_conn_close(conn);
}

static void closed_stop(ritual_conn *conn, int reason)
{
    (void)conn;
    server_close = reason;
    ritual_loop_stop(loop);
}

static void *notify_client(void *arg)
{
    (void)arg;
    struct tls_client c;
    tls_connect(&c, port, ca, "localhost", NULL, NULL, 10000);
    tls_send_all(&c, "hello\n", 6, 10000);
    tls_shutdown(&c);
    char got[64];
    size_t len;
    ASSERT_EQ(tls_recv_to_end(&c, got, sizeof got, &len, 10000), 1); /* close_notify */
    ASSERT_EQ(len, 4);
    ASSERT(memcmp(got, "bye\n", 4) == 0);
    tls_close(&c);
    return NULL;
}

static void close_notify_both_ways(void)
{
    loop = lt_loop();
    server_tls = new_server_tls(0);
    ritual_conn_callbacks cbs = {
        .on_data = keep_line, .on_eof = answer_and_close, .on_close = closed_stop};
    port = ritual_listener_port(listen_tls(&cbs, 0));
    pthread_t t = lt_thread(notify_client, NULL);
    lt_run(loop, 20000);
    lt_join(t);
    ASSERT_EQ(line_len, 6);
    ASSERT(memcmp(line, "hello\n", 6) == 0);
    ASSERT_EQ(server_eofs, 1);
    ASSERT_EQ(server_close, 0);
    ritual_loop_free(loop);
    ritual_tls_free(server_tls);
}

static void *cut_client(void *arg)
{
    (void)arg;
    struct tls_client c;
    tls_connect(&c, port, ca, "localhost", NULL, NULL, 10000);
    tls_send_all(&c, "hello\n", 6, 10000);
    /* A FIN with no close_notify (closing would reset: the session tickets
     * the server sent are unread). */
    SYSCHECK(shutdown(c.fd, SHUT_WR));
    char got[4096];
    size_t n;
    recv_to_end(c.fd, got, sizeof got, &n, 10000); /* the server closes */
    tls_close(&c);
    return NULL;
}

static void truncated_stream_is_an_error(void)
{
    loop = lt_loop();
    server_tls = new_server_tls(0);
    ritual_conn_callbacks cbs = {
        .on_data = keep_line, .on_eof = answer_and_close, .on_close = closed_stop};
    port = ritual_listener_port(listen_tls(&cbs, 0));
    pthread_t t = lt_thread(cut_client, NULL);
    lt_run(loop, 20000);
    lt_join(t);
    ASSERT_EQ(line_len, 6);
    ASSERT_EQ(server_eofs, 0);
    ASSERT_EQ(server_close, -EPROTO);
    ritual_loop_free(loop);
    ritual_tls_free(server_tls);
}

static void *reset_client(void *arg)
{
    (void)arg;
    struct tls_client c;
    tls_connect(&c, port, ca, "localhost", NULL, NULL, 10000);
    /* A round trip first: the server has opened the connection (a reset
     * during the handshake closes it unseen, with no on_close). */
    char pong[4];
    tls_send_all(&c, "ping", 4, 10000);
    tls_recv_exact(&c, pong, 4, 10000);
    /* A record header promising 100 bytes, and 10 of them. */
    static const char half[15] = {0x17, 0x03, 0x03, 0x00, 100};
    send_all(c.fd, half, sizeof half);
    struct linger lin = {.l_onoff = 1, .l_linger = 0};
    SYSCHECK(setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin));
    tls_close(&c);
    return NULL;
}

static void reset_mid_record(void)
{
    loop = lt_loop();
    server_tls = new_server_tls(0);
    ritual_conn_callbacks cbs = {.on_data = echo_data, .on_close = closed_stop};
    port = ritual_listener_port(listen_tls(&cbs, 0));
    pthread_t t = lt_thread(reset_client, NULL);
    lt_run(loop, 20000);
    lt_join(t);
    ASSERT_EQ(server_close, -ECONNRESET);
    /* The next client is served as if nothing happened. */
    cbs.on_data = keep_line;
    cbs.on_eof = answer_and_close;
    ritual_loop_free(loop);
    loop = lt_loop();
    port = ritual_listener_port(listen_tls(&cbs, 0));
    t = lt_thread(notify_client, NULL);
    lt_run(loop, 20000);
    lt_join(t);
    ritual_loop_free(loop);
    ritual_tls_free(server_tls);
}

/* --------------------------------------------------------- bad handshakes */

static int bad_opens, bad_closes;

static void count_open(ritual_conn *conn)
{
    (void)conn;
    bad_opens++;
}

static void count_close(ritual_conn *conn, int reason)
{
    (void)conn;
    (void)reason;
    bad_closes++;
    ritual_loop_stop(loop);
}

/* Sends `bytes` (then a FIN if asked) and expects the server to close. */
static void expect_dropped(const void *bytes, size_t len, int fin, int timeout_ms)
{
    int fd = tcp_connect(port);
    if (len)
        send_all(fd, bytes, len);
    if (fin)
        SYSCHECK(shutdown(fd, SHUT_WR));
    char got[4096];
    size_t n;
    recv_to_end(fd, got, sizeof got, &n, timeout_ms); /* a FIN or a reset, in time */
    if (n > 0)
        ASSERT_EQ((unsigned char)got[0], 0x15); /* nothing but an alert */
    close(fd);
}

static void *bad_clients(void *arg)
{
    (void)arg;
    uint64_t start = now_ms();
    expect_dropped(NULL, 0, 0, 5000); /* silent: the 300 ms handshake timeout */
    ASSERT_GE(now_ms() - start, 250);
    static const char garbage[] = "\x16\x03\x01\x00\x10 this is not a ClientHello at all";
    expect_dropped(garbage, sizeof garbage - 1, 0, 5000);
    static const char truncated[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03};
    expect_dropped(truncated, sizeof truncated, 1, 5000);
    /* TLS 1.0 (and SSL 3.0) ClientHellos: refused with protocol_version. */
    for (int minor = 0; minor <= 1; minor++) {
        unsigned char hello[52] = {0x16, 0x03, (unsigned char)minor, 0x00, 47, 0x01, 0x00, 0x00,
                                   43,   0x03, (unsigned char)minor};
        /* 32 random bytes (zero), no session id, one suite, null compression */
        hello[43] = 0;    /* session id length */
        hello[44] = 0x00; /* cipher suites length: 2 */
        hello[45] = 0x02;
        hello[46] = 0x00; /* TLS_RSA_WITH_AES_128_CBC_SHA */
        hello[47] = 0x2f;
        hello[48] = 0x01; /* one compression method */
        hello[49] = 0x00; /* null */
        expect_dropped(hello, 50, 0, 5000);
    }
    struct tls_client c;
    tls_connect(&c, port, ca, "localhost", NULL, NULL, 10000);
    tls_send_all(&c, "ok\n", 3, 10000);
    tls_shutdown(&c);
    char got[8];
    size_t n;
    ASSERT_EQ(tls_recv_to_end(&c, got, sizeof got, &n, 10000), 1);
    tls_close(&c);
    return NULL;
}

static void close_on_eof(ritual_conn *conn)
{
    ritual_conn_close(conn);
}

static void bad_handshakes_are_dropped(void)
{
    loop = lt_loop();
    server_tls = new_server_tls(300);
    ritual_conn_callbacks cbs = {.on_open = count_open,
                                 .on_data = keep_line,
                                 .on_eof = close_on_eof,
                                 .on_close = count_close};
    port = ritual_listener_port(listen_tls(&cbs, 0));
    pthread_t t = lt_thread(bad_clients, NULL);
    lt_run(loop, 30000);
    lt_join(t);
    ASSERT_EQ(bad_opens, 1); /* the good one only */
    ASSERT_EQ(bad_closes, 1);
    ASSERT_EQ(line_len, 3);
    ritual_loop_free(loop);
    ritual_tls_free(server_tls);
}

/* ------------------------------------------------------------- plaintext */

static int plain_info_rc;

static void plain_open(ritual_conn *conn)
{
    ritual_tls_info info;
    plain_info_rc = ritual_conn_tls_info(conn, &info);
    ASSERT(ritual_listener_tls(ritual_conn_listener(conn)) == server_tls);
}

static size_t plain_data(ritual_conn *conn, const char *bytes, size_t len)
{
    keep_line(conn, bytes, len);
    if (memchr(bytes, '\n', len)) {
        ASSERT_EQ(ritual_write(conn, "plain\n", 6), 0);
        ritual_conn_close(conn);
    }
    return len;
}

static void *plain_client(void *arg)
{
    (void)arg;
    int fd = tcp_connect(port);
    send_all(fd, "GET / HTTP/1.0\n", 15);
    char got[16];
    size_t n;
    ASSERT_EQ(recv_to_end(fd, got, sizeof got, &n, 10000), STREAM_EOF);
    ASSERT_EQ(n, 6);
    ASSERT(memcmp(got, "plain\n", 6) == 0);
    close(fd);
    return NULL;
}

/* The ClientHello in two sends, 50 ms apart, then the handshake as usual. */
static void *split_hello_client(void *arg)
{
    (void)arg;
    struct tls_client c;
    memset(&c, 0, sizeof c);
    c.ctx = SSL_CTX_new(TLS_client_method());
    c.ssl = SSL_new(c.ctx);
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(c.ssl, rbio, wbio);
    SSL_set_tlsext_host_name(c.ssl, "localhost");
    ASSERT_EQ(SSL_connect(c.ssl), -1); /* wrote its ClientHello, wants the answer */
    char *hello;
    long len = BIO_get_mem_data(wbio, &hello);
    ASSERT_GT(len, 40);
    c.fd = tcp_connect(port);
    send_all(c.fd, hello, 7);
    sleep_ms(50);
    send_all(c.fd, hello + 7, (size_t)len - 7);
    SSL_set_fd(c.ssl, c.fd); /* the socket from here on */
    ASSERT_EQ(SSL_connect(c.ssl), 1);
    tls_send_all(&c, "tls\n", 4, 10000);
    char got[8];
    size_t n;
    ASSERT_EQ(tls_recv_to_end(&c, got, sizeof got, &n, 10000), 1);
    ASSERT_EQ(n, 6);
    ASSERT(memcmp(got, "plain\n", 6) == 0);
    tls_close(&c);
    return NULL;
}

static void plaintext_listener_hands_plain_text_over(void)
{
    loop = lt_loop();
    server_tls = new_server_tls(0);
    ritual_conn_callbacks cbs = {
        .on_open = plain_open, .on_data = plain_data, .on_close = closed_stop};
    port = ritual_listener_port(listen_tls(&cbs, RITUAL_LISTEN_TLS_PLAINTEXT));
    pthread_t t = lt_thread(plain_client, NULL);
    lt_run(loop, 20000);
    lt_join(t);
    ASSERT_EQ(plain_info_rc, -ENOPROTOOPT);
    ASSERT_EQ(line_len, 15);
    ASSERT_EQ(server_close, 0);
    line_len = 0;
    server_close = 1;
    t = lt_thread(split_hello_client, NULL);
    lt_run(loop, 20000);
    lt_join(t);
    ASSERT_EQ(plain_info_rc, 0); /* TLS, this time */
    ASSERT_EQ(line_len, 4);
    ASSERT_EQ(server_close, 0);
    ritual_loop_free(loop);
    ritual_tls_free(server_tls);
}

/* --------------------------------------------------------------- a file */

#define FILE_SIZE (8u << 20)

static int file_fd = -1;
static ritual_conn *file_conn;
static size_t most_queued;
static ritual_timer *probe;

static void file_released(void *arg)
{
    (void)arg;
    close(file_fd);
    file_fd = -1;
}

static void file_open(ritual_conn *conn)
{
    file_conn = conn;
    ASSERT_EQ(ritual_write_file(conn, file_fd, 0, FILE_SIZE, file_released, NULL), 0);
    ritual_conn_close(conn);
}

static void probe_queue(ritual_timer *t, void *data)
{
    (void)t;
    (void)data;
    if (file_conn && file_conn->out_len > most_queued)
        most_queued = file_conn->out_len;
}

static void file_closed(ritual_conn *conn, int reason)
{
    (void)conn;
    server_close = reason;
    file_conn = NULL;
    ritual_loop_stop(loop);
}

static void *slow_file_reader(void *arg)
{
    (void)arg;
    struct tls_client c;
    tls_connect(&c, port, ca, "localhost", NULL, NULL, 10000);
    sleep_ms(500); /* the server fills the socket and waits */
    char *got = malloc(FILE_SIZE + 1);
    ASSERT(got);
    size_t n;
    ASSERT_EQ(tls_recv_to_end(&c, got, FILE_SIZE + 1, &n, 20000), 1);
    ASSERT_EQ(n, FILE_SIZE);
    ASSERT_EQ(pattern_mismatch(SEED, 0, got, n), n);
    free(got);
    tls_close(&c);
    return NULL;
}

static void file_to_a_stalled_reader_is_bounded(void)
{
    file_write_pattern_at(dir, "big.bin", SEED, FILE_SIZE);
    char path[160];
    snprintf(path, sizeof path, "%s/big.bin", dir);
    file_fd = open(path, O_RDONLY | O_CLOEXEC);
    SYSCHECK(file_fd);
    loop = lt_loop();
    server_tls = new_server_tls(0);
    ritual_conn_callbacks cbs = {
        .on_open = file_open, .on_data = keep_line, .on_close = file_closed};
    port = ritual_listener_port(listen_tls(&cbs, 0));
    probe = ritual_timer_new(loop, probe_queue, NULL);
    ASSERT_EQ(ritual_timer_start(probe, 1, 1), 0);
    pthread_t t = lt_thread(slow_file_reader, NULL);
    lt_run(loop, 30000);
    lt_join(t);
    ritual_timer_free(probe);
    ASSERT_EQ(server_close, 0);
    ASSERT_EQ(file_fd, -1); /* released */
    ASSERT_GT(most_queued, 0);
    ASSERT_LE(most_queued, 64 * 1024 + 4 * 64); /* one step's records, not the file */
    ritual_loop_free(loop);
    ritual_tls_free(server_tls);
}

/* ------------------------------------------------------------- tickets */

static void stop_posted(ritual_loop *l, void *arg)
{
    (void)arg;
    ritual_loop_stop(l);
}

static void *serve_loop(void *arg)
{
    ritual_loop *l = arg;
    ASSERT_EQ(ritual_loop_run(l), 0);
    return NULL;
}

/* Connects with `session` (may be NULL), reads the echo of one byte (the
 * session tickets come before it), and returns whether it resumed; the
 * newest session goes to *out. */
static int resume_with(int at_port, SSL_SESSION *session, SSL_SESSION **out)
{
    struct tls_client c;
    tls_connect(&c, at_port, ca, "localhost", NULL, session, 10000);
    char b;
    tls_send_all(&c, "x", 1, 10000);
    tls_recv_exact(&c, &b, 1, 10000);
    int resumed = SSL_session_reused(c.ssl);
    if (out)
        *out = SSL_get1_session(c.ssl);
    tls_shutdown(&c);
    tls_close(&c);
    return resumed;
}

static void tickets_rotate(void)
{
    ritual_tls_options o = {.cert_file = cert, .key_file = key, .ticket_rotate_s = 1};
    ritual_error err;
    server_tls = ritual_tls_server_new(&o, &err);
    ASSERT(server_tls);
    /* Two loops on threads of their own, as two workers: one TLS object. */
    ritual_loop *loops[2];
    int ports[2];
    pthread_t threads[2];
    ritual_conn_callbacks cbs = {.on_data = echo_data, .on_eof = close_on_eof};
    for (int i = 0; i < 2; i++) {
        loops[i] = lt_loop();
        ritual_listen_options lo = {.tls = server_tls};
        ports[i] = ritual_listener_port(lt_listen(loops[i], &lo, &cbs));
    }
    for (int i = 0; i < 2; i++)
        threads[i] = lt_thread(serve_loop, loops[i]);

    SSL_SESSION *first = NULL, *later = NULL;
    ASSERT_EQ(resume_with(ports[0], NULL, &first), 0);
    ASSERT_EQ(resume_with(ports[1], first, &later), 1); /* another worker */
    SSL_SESSION_free(later);
    /* A session from the first key: kept while it is the current key or
     * one of the two before it, renewed each time; then refused. */
    int resumed_after[5];
    for (int s = 0; s < 5; s++) {
        sleep_ms(1100);
        resumed_after[s] = resume_with(ports[s % 2], first, NULL);
    }
    SSL_SESSION_free(first);
    note("a first-key session after 1.1..5.5 s: %d %d %d %d %d", resumed_after[0], resumed_after[1],
         resumed_after[2], resumed_after[3], resumed_after[4]);
    ASSERT_EQ(resumed_after[0], 1);
    ASSERT_EQ(resumed_after[4], 0); /* three or more keys later */
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(ritual_loop_post(loops[i], stop_posted, NULL), 0); /* another thread's */
    for (int i = 0; i < 2; i++) {
        lt_join(threads[i]);
        ritual_loop_free(loops[i]);
    }
    ritual_tls_free(server_tls);
}

/* ------------------------------------------------------- client verification */

static int resumed[3], verify_opens, verify_closes[3], verify_index;

static void verify_open(ritual_conn *conn)
{
    ritual_tls_info info;
    ASSERT_EQ(ritual_conn_tls_info(conn, &info), 0);
    resumed[verify_index] = info.resumed;
    verify_opens++;
    ASSERT_EQ(ritual_write(conn, "hi\n", 3), 0);
}

static size_t verify_data(ritual_conn *conn, const char *bytes, size_t len)
{
    (void)bytes;
    ritual_conn_close(conn); /* the echo came: the session tickets came before it */
    return len;
}

static void verify_closed(ritual_conn *conn, int reason)
{
    (void)conn;
    verify_closes[verify_index] = reason;
    ritual_loop_stop(loop);
}

static void connect_once(ritual_tls *tls, const char *name)
{
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%d", port);
    ritual_connect_options co = {.tls = tls, .server_name = name};
    ritual_conn_callbacks cbs = {
        .on_open = verify_open, .on_data = verify_data, .on_close = verify_closed};
    ritual_error err;
    ASSERT(ritual_connect(loop, address, &co, &cbs, &err));
    lt_run(loop, 20000);
    verify_index++;
}

static void client_verifies_and_resumes(void)
{
    loop = lt_loop();
    server_tls = new_server_tls(0);
    ritual_conn_callbacks scb = {.on_data = echo_data, .on_eof = close_on_eof};
    port = ritual_listener_port(listen_tls(&scb, 0));
    ritual_tls *ctls = new_client_tls();
    connect_once(ctls, "localhost");
    connect_once(ctls, "localhost");
    connect_once(ctls, "wrong.test");
    ASSERT_EQ(verify_opens, 2);
    ASSERT_EQ(resumed[0], 0);
    ASSERT_EQ(resumed[1], 1);
    ASSERT_EQ(verify_closes[0], 0);
    ASSERT_EQ(verify_closes[1], 0);
    ASSERT_EQ(verify_closes[2], -EPROTO);
    ritual_tls_free(ctls);
    ritual_loop_free(loop);
    ritual_tls_free(server_tls);
}

TEST_CASES_WITH(make_certs, remove_certs, CASE(echo_16_mib_both_ends_ritual),
                CASE(close_notify_both_ways), CASE(truncated_stream_is_an_error),
                CASE(reset_mid_record), CASE(bad_handshakes_are_dropped),
                CASE(plaintext_listener_hands_plain_text_over),
                CASE(file_to_a_stalled_reader_is_bounded), CASE(tickets_rotate),
                CASE(client_verifies_and_resumes))
