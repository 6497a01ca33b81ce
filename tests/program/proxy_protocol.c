/* proxy_protocol: `ritual http` and `ritual echo` behind a load balancer
 * that speaks the PROXY protocol (--proxy-protocol CIDRS).
 *   http_real_client_logged: requests with a v2 and a v1 header from a
 *     trusted source are served, and the access log shows the clients'
 *     addresses from the headers, not the balancer's;
 *   http_no_header_closed: a request without a header is closed unanswered;
 *   http_untrusted_closed: a server trusting only 10.0.0.0/8 closes a
 *     connection from 127.0.0.1 unanswered, header or not;
 *   echo_after_header: ritual echo echoes what follows the header, not it;
 *   bad_options: --proxy-protocol bogus and --proxy-timeout 0 are usage
 *     errors (exit 2) with a line naming the value. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TIMEOUT 5000

static char root[64], log_path[96];

static void make_tree(void)
{
    temp_dir_make(root, sizeof root);
    file_write_at(root, "hello.txt", "hello, world\n", 13);
    snprintf(log_path, sizeof log_path, "%s/access.log", root);
}

static void remove_root(void)
{
    remove_tree(root);
}

/* A v2 PROXY TCP4 header: 203.0.113.7:51000 to 10.0.0.1:80. */
static const unsigned char v2_header[] = {'\r', '\n', '\r', '\n', 0,    '\r', '\n', 'Q', 'U', 'I',
                                          'T',  '\n', 0x21, 0x11, 0,    12,   203,  0,   113, 7,
                                          10,   0,    0,    1,    0xc7, 0x38, 0,    80};

static const char get_hello[] = "GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/* Sends `header` and a request in one segment; returns the status (0 if
 * the connection closed unanswered). */
static int request_behind(int port, const void *header, size_t header_len)
{
    char buf[512];
    ASSERT_LE(header_len + sizeof get_hello, sizeof buf);
    memcpy(buf, header, header_len);
    memcpy(buf + header_len, get_hello, sizeof get_hello - 1);
    struct http_client *c = http_client_open(port);
    send_all(c->fd, buf, header_len + sizeof get_hello - 1);
    struct http_response r;
    int status = 0;
    if (http_read_response(c, &r, 0, TIMEOUT)) {
        status = r.status;
        http_response_free(&r);
    }
    http_client_close(c);
    return status;
}

/* Connects, sends `bytes`, and expects the connection to end (a FIN or a
 * reset) without a byte of answer. */
static void expect_closed_unanswered(int port, const void *bytes, size_t len)
{
    int fd = tcp_connect(port);
    send_all(fd, bytes, len);
    char buf[256];
    size_t got;
    recv_to_end(fd, buf, sizeof buf, &got, TIMEOUT);
    ASSERT_EQ(got, 0);
    close(fd);
}

static char *read_log(void)
{
    size_t len;
    char *text = file_read(log_path, &len);
    if (text == NULL)
        FAIL("%s: not created", log_path);
    return text;
}

static void http_real_client_logged(void)
{
    struct server s;
    http_server_start(ritual_program(), root,
                      (const char *const[]){"--access-log", log_path, "--proxy-protocol",
                                            "10.0.0.0/8,127.0.0.1", "--workers", "1", NULL},
                      &s);
    ASSERT_EQ(request_behind(s.port, v2_header, sizeof v2_header), 200);
    static const char v1[] = "PROXY TCP6 2001:db8::9 2001:db8::1 40000 80\r\n";
    ASSERT_EQ(request_behind(s.port, v1, sizeof v1 - 1), 200);
    server_expect_clean_exit(&s);
    char *log = read_log();
    const char *second = strchr(log, '\n');
    ASSERT(second != NULL);
    if (strncmp(log, "203.0.113.7 - - [", 17) != 0 ||
        strncmp(second + 1, "2001:db8::9 - - [", 17) != 0)
        FAIL("access log:\n%s\nexpected the headers' clients, 203.0.113.7 then 2001:db8::9", log);
    note("access log: %.*s", (int)(second - log), log);
    free(log);
}

static void http_no_header_closed(void)
{
    struct server s;
    http_server_start(ritual_program(), root,
                      (const char *const[]){"--proxy-protocol", "127.0.0.1", NULL}, &s);
    ASSERT_EQ(request_behind(s.port, "", 0), 0);
    /* The server goes on serving those that do send one. */
    ASSERT_EQ(request_behind(s.port, v2_header, sizeof v2_header), 200);
    server_expect_clean_exit(&s);
}

static void http_untrusted_closed(void)
{
    struct server s;
    http_server_start(
        ritual_program(), root,
        (const char *const[]){"--proxy-protocol", "10.0.0.0/8", "--log-level", "info", NULL}, &s);
    char buf[512];
    memcpy(buf, v2_header, sizeof v2_header);
    memcpy(buf + sizeof v2_header, get_hello, sizeof get_hello - 1);
    expect_closed_unanswered(s.port, buf, sizeof v2_header + sizeof get_hello - 1);
    expect_closed_unanswered(s.port, get_hello, sizeof get_hello - 1);
    server_wait_log(&s, "PROXY: connection from 127.0.0.1", 2);
    server_expect_clean_exit(&s);
}

static void echo_after_header(void)
{
    struct server s;
    server_start(ritual_program(),
                 (const char *const[]){"--proxy-protocol", "127.0.0.0/8", "--workers", "1", NULL},
                 0, &s);
    int fd = tcp_connect(s.port);
    static const char msg[] = "PROXY TCP4 192.0.2.1 192.0.2.2 1234 7000\r\nping";
    send_all(fd, msg, sizeof msg - 1);
    char got[4];
    recv_exact(fd, got, 4, TIMEOUT);
    ASSERT(memcmp(got, "ping", 4) == 0);
    echo_roundtrip(fd, "again", 5, TIMEOUT);
    close(fd);
    expect_closed_unanswered(s.port, "ping", 4); /* no header: closed, nothing echoed */
    server_expect_clean_exit(&s);
}

/* `ritual ARGS` exits 2 with one line on stderr containing `what`. */
static void expect_usage(const char *const argv[], const char *what)
{
    struct cmd_result r;
    run_command(argv, 10000, &r);
    if (r.exit_code != 2 || count_lines(r.err) != 1 || strstr(r.err, what) == NULL)
        FAIL("ritual %s %s %s: exit %d, stderr \"%s\": expected 2 and a line with \"%s\"", argv[1],
             argv[2], argv[3], r.exit_code, r.err, what);
    note("ritual %s %s %s -> 2: %.*s", argv[1], argv[2], argv[3], (int)r.err_len - 1, r.err);
}

static void bad_options(void)
{
    const char *ritual = ritual_program();
    static const char *const commands[] = {"http", "echo"};
    for (int i = 0; i < 2; i++) {
        expect_usage((const char *const[]){ritual, commands[i], "--proxy-protocol", "bogus", NULL},
                     "--proxy-protocol: 'bogus': not an address or CIDR");
        expect_usage((const char *const[]){ritual, commands[i], "--proxy-protocol",
                                           "10.0.0.0/8,1.2.3.4/40", NULL},
                     "'1.2.3.4/40': not an address or CIDR");
        expect_usage((const char *const[]){ritual, commands[i], "--proxy-timeout", "0", NULL},
                     "--proxy-timeout: '0'");
    }
}

TEST_CASES_WITH(make_tree, remove_root, CASE(http_real_client_logged), CASE(http_no_header_closed),
                CASE(http_untrusted_closed), CASE(echo_after_header), CASE(bad_options))
