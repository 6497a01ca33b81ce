/* The PROXY protocol on a listener (ritual_listen_options.proxy_from), on
 * every backend.
 *
 * v1_one_segment: a v1 TCP4 header and the client's first bytes in one
 *   segment: on_open sees the header's source as ritual_conn_peer and the
 *   proxy's as ritual_conn_socket_peer; the bytes after the header reach
 *   on_data, none lost.
 * v2_trickled: a v2 TCP6 header with TLVs, then data, sent a byte at a
 *   time: the same, with the IPv6 client.
 * v2_local, v1_unknown: a LOCAL (health check) or UNKNOWN header keeps the
 *   socket's address.
 * mapped_ipv4_trusted: on a dual-stack listener ("*:0") an IPv4 client is
 *   an IPv4-mapped IPv6 peer, which an IPv4 range trusts.
 * untrusted_closed: a listener trusting 10.0.0.0/8 closes a connection
 *   from 127.0.0.1 without on_open, whatever it sends; nothing delivered.
 * malformed_closed: a client speaking HTTP straight at the listener is
 *   closed at once, not after the header timeout.
 * slow_closed: a header still incomplete after proxy_timeout_ms is closed.
 * trickle_closed: so is one trickled a byte at a time: the deadline counts
 *   from the accept, not from the last byte.
 * tls_after_header: on a TLS listener the header comes first, the
 *   ClientHello behind it in the same segment; on_open follows the
 *   handshake, with the header's client as the peer.
 * parser_answers: the parser's verdicts on valid, malformed and truncated
 *   headers, whole and cut at every byte.
 * bad_proxy_from: ritual_listen refuses a malformed list with -EINVAL and
 *   a message naming the entry; ritual_proxy_from_check agrees. */
#include "libtest.h"
#include "proxy_header.h"
#include "ritual_tls.h"
#include "tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* --------------------------------------------------------- the server */

static struct {
    ritual_loop *loop;
    int port;
    int opens, closes, reason;
    char peer[64], socket_peer[64];
    char got[64];
    size_t got_len;
    size_t expect; /* bytes after which the server echoes them and closes */
    bool tls;      /* on_open found the TLS handshake done */
} s;

static void on_open(ritual_conn *conn)
{
    s.opens++;
    ritual_tls_info info;
    s.tls = ritual_conn_tls_info(conn, &info) == 0;
    ASSERT_EQ(ritual_conn_peer(conn, s.peer, sizeof s.peer), 0);
    ASSERT_EQ(ritual_conn_socket_peer(conn, s.socket_peer, sizeof s.socket_peer), 0);
}

static size_t on_data(ritual_conn *conn, const char *bytes, size_t len)
{
    ASSERT_LE(s.got_len + len, sizeof s.got);
    memcpy(s.got + s.got_len, bytes, len);
    s.got_len += len;
    if (s.got_len >= s.expect) {
        ASSERT_EQ(ritual_write(conn, s.got, s.got_len), 0);
        ritual_conn_close(conn);
    }
    return len;
}

static void on_close(ritual_conn *conn, int reason)
{
    (void)conn;
    s.closes++;
    s.reason = reason;
    ritual_loop_stop(s.loop);
}

static const ritual_conn_callbacks cbs = {
    .on_open = on_open, .on_data = on_data, .on_close = on_close};

static void start_tls(const char *proxy_from, uint64_t timeout_ms, ritual_tls *tls)
{
    memset(&s, 0, sizeof s);
    s.loop = lt_loop();
    ritual_listen_options o = {
        .proxy_from = proxy_from, .proxy_timeout_ms = timeout_ms, .tls = tls};
    s.port = ritual_listener_port(lt_listen(s.loop, &o, &cbs));
}

static void start(const char *proxy_from, uint64_t timeout_ms)
{
    start_tls(proxy_from, timeout_ms, NULL);
}

/* --------------------------------------------------------- the client */

struct client {
    const char *bytes;
    size_t len;
    bool trickle;      /* a byte per segment */
    size_t answer;     /* bytes expected back (0: the connection is refused) */
    uint64_t ended_ms; /* how long the server took to close it */
};

static void stop_loop(ritual_loop *loop, void *arg)
{
    (void)arg;
    ritual_loop_stop(loop);
}

static void *client_run(void *arg)
{
    struct client *c = arg;
    int fd = tcp_connect(s.port);
    int one = 1;
    SYSCHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    uint64_t start_ms = now_ms();
    if (c->trickle) {
        for (size_t i = 0; i < c->len; i++) {
            send_all(fd, c->bytes + i, 1);
            struct timespec gap = {0, 2 * 1000 * 1000}; /* pacing, so that segments stay apart */
            nanosleep(&gap, NULL);
        }
    } else if (c->len) {
        send_all(fd, c->bytes, c->len);
    }
    char buf[128];
    size_t got;
    int end = recv_to_end(fd, buf, sizeof buf, &got, 10000);
    c->ended_ms = now_ms() - start_ms;
    if (c->answer) {
        ASSERT_EQ(end, STREAM_EOF);
        ASSERT_EQ(got, c->answer);
    } else {
        ASSERT_EQ(got, 0); /* nothing was ever answered */
        /* No on_close will stop the loop: the connection never opened. */
        ASSERT_EQ(ritual_loop_post(s.loop, stop_loop, NULL), 0);
    }
    close(fd);
    return NULL;
}

static void run_client(struct client *c)
{
    pthread_t t = lt_thread(client_run, c);
    lt_run(s.loop, 20000);
    lt_join(t);
}

static void expect_served(const char *data, const char *peer)
{
    ASSERT_EQ(s.opens, 1);
    ASSERT_EQ(s.closes, 1);
    ASSERT_EQ(s.reason, 0);
    ASSERT_EQ(s.got_len, strlen(data));
    ASSERT(memcmp(s.got, data, s.got_len) == 0);
    if (strcmp(s.peer, peer) != 0)
        FAIL("ritual_conn_peer: '%s', expected '%s'", s.peer, peer);
    ASSERT(strncmp(s.socket_peer, "127.0.0.1:", 10) == 0);
}

static void expect_refused(void)
{
    ASSERT_EQ(s.opens, 0);
    ASSERT_EQ(s.closes, 0); /* never opened: no on_close */
    ASSERT_EQ(s.got_len, 0);
    ritual_loop_stats st;
    ritual_loop_stats_get(s.loop, &st);
    ASSERT_EQ(st.accepted, 1);
}

/* -------------------------------------------------------------- cases */

static void v1_one_segment(void)
{
    start("10.0.0.0/8,127.0.0.1", 0);
    static const char msg[] = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nhello";
    struct client c = {.bytes = msg, .len = sizeof msg - 1, .answer = 5};
    s.expect = 5;
    run_client(&c);
    note("%s: v1 header and 5 bytes in one segment", ritual_loop_backend_name(s.loop));
    expect_served("hello", "192.0.2.1:56324");
    ritual_loop_free(s.loop);
}

/* A v2 PROXY TCP6 header from [2001:db8::7]:40000, with two TLVs, then
 * "hello". */
static const unsigned char v2_tcp6[] = {'\r', '\n', '\r', '\n', 0,    '\r', '\n',    'Q',  'U',
                                        'I',  'T',  '\n', 0x21, 0x21, 0,    36 + 11, 0x20, 0x01,
                                        0x0d, 0xb8, 0,    0,    0,    0,    0,       0,    0,
                                        0,    0,    0,    0,    7, /* source */
                                        0x20, 0x01, 0x0d, 0xb8, 0,    0,    0,       0,    0,
                                        0,    0,    0,    0,    0,    0,    8, /* destination */
                                        0x9c, 0x40, 0x01, 0xbb,          /* ports 40000, 443 */
                                        0x01, 0,    2,    'h',  '2',     /* ALPN */
                                        0x04, 0,    3,    0,    0,    0, /* NOOP */
                                        'h',  'e',  'l',  'l',  'o'};

static void v2_trickled(void)
{
    start("127.0.0.0/8", 0);
    struct client c = {
        .bytes = (const char *)v2_tcp6, .len = sizeof v2_tcp6, .trickle = true, .answer = 5};
    s.expect = 5;
    run_client(&c);
    note("%s: v2 header and data a byte per segment", ritual_loop_backend_name(s.loop));
    expect_served("hello", "[2001:db8::7]:40000");
    ritual_loop_free(s.loop);
}

static void v2_local(void)
{
    start("127.0.0.1", 0);
    static const unsigned char local[] = {'\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U',
                                          'I',  'T',  '\n', 0x20, 0, 0,    0,    'o', 'k'};
    struct client c = {.bytes = (const char *)local, .len = sizeof local, .answer = 2};
    s.expect = 2;
    run_client(&c);
    ASSERT_EQ(strcmp(s.peer, s.socket_peer), 0);
    expect_served("ok", s.socket_peer);
    ritual_loop_free(s.loop);
}

static void v1_unknown(void)
{
    start("127.0.0.1", 0);
    static const char msg[] = "PROXY UNKNOWN whatever\r\nok";
    struct client c = {.bytes = msg, .len = sizeof msg - 1, .answer = 2};
    s.expect = 2;
    run_client(&c);
    expect_served("ok", s.socket_peer);
    ritual_loop_free(s.loop);
}

static void mapped_ipv4_trusted(void)
{
    memset(&s, 0, sizeof s);
    s.loop = lt_loop();
    ritual_listen_options o = {.proxy_from = "10.0.0.0/8,127.0.0.0/8"};
    ritual_error err;
    ritual_listener *l = ritual_listen(s.loop, "*:0", &o, &cbs, &err);
    if (!l)
        FAIL("ritual_listen *:0: %s", err.message);
    s.port = ritual_listener_port(l);
    static const char msg[] = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nhello";
    struct client c = {.bytes = msg, .len = sizeof msg - 1, .answer = 5};
    s.expect = 5;
    run_client(&c);
    note("%s: the proxy seen as %s", ritual_loop_backend_name(s.loop), s.socket_peer);
    ASSERT_EQ(s.opens, 1);
    ASSERT_EQ(strcmp(s.peer, "192.0.2.1:56324"), 0);
    ritual_loop_free(s.loop);
}

static void untrusted_closed(void)
{
    start("10.0.0.0/8,::1", 0);
    static const char msg[] = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nhello";
    struct client c = {.bytes = msg, .len = sizeof msg - 1};
    run_client(&c);
    note("%s: closed after %llu ms", ritual_loop_backend_name(s.loop),
         (unsigned long long)c.ended_ms);
    expect_refused();
    ritual_loop_free(s.loop);
}

static void malformed_closed(void)
{
    start("127.0.0.1", 10000);
    static const char msg[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    struct client c = {.bytes = msg, .len = sizeof msg - 1};
    run_client(&c);
    note("%s: closed after %llu ms", ritual_loop_backend_name(s.loop),
         (unsigned long long)c.ended_ms);
    ASSERT_LT(c.ended_ms, 5000); /* at once, not at the header timeout */
    expect_refused();
    ritual_loop_free(s.loop);
}

static void slow_closed(void)
{
    start("127.0.0.1", 300);
    static const char msg[] = "PROXY TCP4 192.0.2.1 ";
    struct client c = {.bytes = msg, .len = sizeof msg - 1};
    run_client(&c);
    note("%s: closed after %llu ms", ritual_loop_backend_name(s.loop),
         (unsigned long long)c.ended_ms);
    ASSERT_GE(c.ended_ms, 250);
    ASSERT_LT(c.ended_ms, 5000);
    expect_refused();
    ritual_loop_free(s.loop);
}

/* A byte every 40 ms: 45 bytes would take 1.8 s; the deadline is 300 ms
 * after the accept. */
static void *trickle_run(void *arg)
{
    uint64_t *ended_ms = arg;
    static const char msg[] = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
    int fd = tcp_connect(s.port);
    uint64_t start_ms = now_ms();
    size_t i = 0;
    for (; i < sizeof msg - 1; i++) {
        if (wait_fd(fd, POLLIN, now_ms() + 40))
            break; /* the server's FIN (or reset) came */
        if (send(fd, msg + i, 1, MSG_NOSIGNAL) != 1)
            break;
    }
    char buf[16];
    size_t got;
    recv_to_end(fd, buf, sizeof buf, &got, 10000);
    ASSERT_EQ(got, 0);
    *ended_ms = now_ms() - start_ms;
    ASSERT_LT(i, sizeof msg - 1); /* cut before the header was whole */
    ASSERT_EQ(ritual_loop_post(s.loop, stop_loop, NULL), 0);
    close(fd);
    return NULL;
}

static void trickle_closed(void)
{
    start("127.0.0.1", 300);
    uint64_t ended_ms = 0;
    pthread_t t = lt_thread(trickle_run, &ended_ms);
    lt_run(s.loop, 20000);
    lt_join(t);
    note("%s: closed after %llu ms", ritual_loop_backend_name(s.loop),
         (unsigned long long)ended_ms);
    ASSERT_GE(ended_ms, 250);
    ASSERT_LT(ended_ms, 1500);
    expect_refused();
    ritual_loop_free(s.loop);
}

static void bad_proxy_from(void)
{
    ritual_loop *loop = lt_loop();
    ritual_error err;
    ritual_listen_options o = {.proxy_from = "127.0.0.1,bogus"};
    ASSERT(ritual_listen(loop, "127.0.0.1:0", &o, &cbs, &err) == NULL);
    ASSERT_EQ(err.code, -EINVAL);
    if (strcmp(err.message, "proxy_from 'bogus': not an address or CIDR") != 0)
        FAIL("message: %s", err.message);
    static const char *const bad[] = {
        "10.0.0.0/33", "::1/129", "1.2.3.4/",     "1.2.3.4/08", "1.2.3",
        "a,,b",        ",",       "10.0.0.0/8 x", "",           "  "};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (ritual_proxy_from_check(bad[i], &err) != -EINVAL)
            FAIL("'%s' was taken", bad[i]);
    static const char *const good[] = {"10.0.0.0/8", "10.1.2.3/8, 192.168.1.7",
                                       "::1/128,[fe80::]/10", "0.0.0.0/0,::/0"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (ritual_proxy_from_check(good[i], &err) != 0)
            FAIL("'%s': %s", good[i], err.message);
    ASSERT_EQ(ritual_loop_conn_count(loop), 0);
    ritual_loop_free(loop);
}

/* ------------------------------------------------------------------ TLS */

static char cert_dir[64];

static void *tls_client_run(void *arg)
{
    (void)arg;
    int fd = tcp_connect(s.port);
    /* MSG_MORE: the header waits for the ClientHello, one segment for both. */
    static const char header[] = "PROXY TCP4 198.51.100.20 192.0.2.1 33333 443\r\n";
    ASSERT_EQ(send(fd, header, sizeof header - 1, MSG_MORE), (ssize_t)(sizeof header - 1));
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ASSERT(ctx != NULL);
    SSL *ssl = SSL_new(ctx);
    ASSERT(ssl != NULL && SSL_set_fd(ssl, fd) == 1);
    if (SSL_connect(ssl) != 1)
        FAIL("TLS handshake behind a PROXY header failed");
    ASSERT_EQ(SSL_write(ssl, "hello", 5), 5);
    char got[5];
    size_t have = 0;
    while (have < sizeof got) {
        int n = SSL_read(ssl, got + have, (int)(sizeof got - have));
        ASSERT_GT(n, 0);
        have += (size_t)n;
    }
    ASSERT(memcmp(got, "hello", 5) == 0);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return NULL;
}

static void tls_after_header(void)
{
    char cert[128], key[128];
    temp_dir_make(cert_dir, sizeof cert_dir);
    tls_make_certs(cert_dir);
    snprintf(cert, sizeof cert, "%s/server.pem", cert_dir);
    snprintf(key, sizeof key, "%s/server.key", cert_dir);
    ritual_tls_options to = {.cert_file = cert, .key_file = key};
    ritual_error err;
    ritual_tls *tls = ritual_tls_server_new(&to, &err);
    if (!tls)
        FAIL("ritual_tls_server_new: %s", err.message);
    start_tls("127.0.0.1", 0, tls);
    s.expect = 5;
    pthread_t t = lt_thread(tls_client_run, NULL);
    lt_run(s.loop, 20000);
    lt_join(t);
    ASSERT(s.tls);
    expect_served("hello", "198.51.100.20:33333");
    ritual_loop_free(s.loop);
    ritual_tls_free(tls);
    remove_tree(cert_dir);
}

/* --------------------------------------------------------------- parser */

static const struct {
    const char *name;
    const char *bytes;
    size_t len; /* 0: strlen */
    enum proxy_result want;
    size_t header_len;
    int family;
} verdicts[] = {
    {"v1 tcp4", "PROXY TCP4 1.2.3.4 5.6.7.8 1 65535\r\nGET", 0, PROXY_DONE, 36, AF_INET},
    {"v1 tcp6", "PROXY TCP6 ::1 2001:db8::2 0 80\r\n", 0, PROXY_DONE, 33, AF_INET6},
    {"v1 unknown", "PROXY UNKNOWN\r\n", 0, PROXY_DONE, 15, AF_UNSPEC},
    {"v1 unknown rest", "PROXY UNKNOWN 1 2 3\r\nx", 0, PROXY_DONE, 21, AF_UNSPEC},
    {"v2 tcp6", (const char *)v2_tcp6, sizeof v2_tcp6, PROXY_DONE, sizeof v2_tcp6 - 5, AF_INET6},
    {"http", "GET / HTTP/1.1\r\n", 0, PROXY_MALFORMED, 0, 0},
    {"tls", "\x16\x03\x01", 0, PROXY_MALFORMED, 0, 0},
    {"lowercase", "proxy TCP4", 0, PROXY_MALFORMED, 0, 0},
    {"tcp5", "PROXY TCP5 ", 0, PROXY_MALFORMED, 0, 0},
    {"lf alone", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 0, PROXY_MALFORMED, 0, 0},
    {"two spaces", "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", 0, PROXY_MALFORMED, 0, 0},
    {"tcp4 with v6", "PROXY TCP4 ::1 ::2 1 2\r\n", 0, PROXY_MALFORMED, 0, 0},
    {"tcp6 with v4", "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", 0, PROXY_MALFORMED, 0, 0},
    {"port 65536", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", 0, PROXY_MALFORMED, 0, 0},
    {"port 01", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", 0, PROXY_MALFORMED, 0, 0},
    {"port +1", "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", 0, PROXY_MALFORMED, 0, 0},
    {"five fields", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", 0, PROXY_MALFORMED, 0, 0},
    {"unknownx", "PROXY UNKNOWNX\r\n", 0, PROXY_MALFORMED, 0, 0},
    {"truncated v1", "PROXY TCP4 1.2.3.4 5.6", 0, PROXY_NEED_MORE, 0, 0},
    {"truncated v2", "\r\n\r\n\0\r\nQUIT\n\x21\x11\0", 15, PROXY_NEED_MORE, 0, 0},
    {"v2 version 1", "\r\n\r\n\0\r\nQUIT\n\x11", 13, PROXY_MALFORMED, 0, 0},
    {"v2 dgram", "\r\n\r\n\0\r\nQUIT\n\x21\x12", 14, PROXY_MALFORMED, 0, 0},
    {"v2 too long", "\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff", 16, PROXY_MALFORMED, 0, 0},
    {"v2 short", "\r\n\r\n\0\r\nQUIT\n\x21\x21\0\x0c", 16, PROXY_MALFORMED, 0, 0},
    {"v2 local", "\r\n\r\n\0\r\nQUIT\n\x20\x00\0\0", 16, PROXY_DONE, 16, AF_UNSPEC},
};

static void parser_answers(void)
{
    for (size_t i = 0; i < sizeof verdicts / sizeof *verdicts; i++) {
        size_t len = verdicts[i].len ? verdicts[i].len : strlen(verdicts[i].bytes);
        struct proxy_header h;
        enum proxy_result r = ritual__proxy_parse(verdicts[i].bytes, len, &h);
        if (r != verdicts[i].want)
            FAIL("%s: %d, expected %d", verdicts[i].name, r, verdicts[i].want);
        if (r == PROXY_DONE && (h.len != verdicts[i].header_len || h.family != verdicts[i].family))
            FAIL("%s: length %zu family %d", verdicts[i].name, h.len, h.family);
        /* Cut anywhere short of its verdict, the same bytes need more. */
        size_t decided = r == PROXY_DONE ? h.len : r == PROXY_MALFORMED ? 1 : len;
        for (size_t cut = 0; cut < decided && r == PROXY_DONE; cut++)
            ASSERT_EQ(ritual__proxy_parse(verdicts[i].bytes, cut, &h), PROXY_NEED_MORE);
    }
    /* The longest v1 line (the spec's own example) is taken; a byte more is not. */
    char line[160];
    snprintf(line, sizeof line, "PROXY UNKNOWN %s %s 65535 65535\r\n",
             "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    struct proxy_header h;
    ASSERT_EQ(strlen(line), PROXY_V1_MAX);
    ASSERT_EQ(ritual__proxy_parse(line, strlen(line), &h), PROXY_DONE);
    snprintf(line, sizeof line, "PROXY UNKNOWN %0*d\r\n", (int)(PROXY_V1_MAX - 15), 0);
    ASSERT_EQ(strlen(line), PROXY_V1_MAX + 1);
    ASSERT_EQ(ritual__proxy_parse(line, strlen(line), &h), PROXY_MALFORMED);
}

TEST_CASES(CASE(v1_one_segment), CASE(v2_trickled), CASE(v2_local), CASE(v1_unknown),
           CASE(mapped_ipv4_trusted), CASE(untrusted_closed), CASE(malformed_closed),
           CASE(slow_closed), CASE(trickle_closed), CASE(bad_proxy_from), CASE(tls_after_header),
           CASE(parser_answers))
