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
 *     errors (exit 2) with a line naming the value;
 *   behind_haproxy: real haproxy (send-proxy-v2) in front, a client
 *     connecting from 127.0.0.2: the access log says 127.0.0.2, not
 *     haproxy's 127.0.0.1. Skipped without haproxy (Debian: haproxy). */
#include "support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
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
        (const char *const[]){"--proxy-protocol", "10.0.0.0/8", "--log-level", "debug", NULL}, &s);
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
        /* An unset variable in a unit file: a server refusing every client. */
        expect_usage((const char *const[]){ritual, commands[i], "--proxy-protocol", " ", NULL},
                     "--proxy-protocol: no address or CIDR given");
        expect_usage((const char *const[]){ritual, commands[i], "--listen", "fd:3", "--listen",
                                           "fd:3", i == 0 ? "--root" : NULL, "/", NULL},
                     "--listen fd:3 is given twice");
    }
}

/* A port free now on 127.0.0.1 (for haproxy, which cannot report one). */
static int free_port(void)
{
    int fd = (int)SYSCHECK(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    SYSCHECK(bind(fd, (struct sockaddr *)&a, sizeof a));
    int port = socket_port(fd);
    close(fd);
    return port;
}

/* A connection to 127.0.0.1:port from `source`; -1 if refused. */
static int connect_from(const char *source, int port)
{
    int fd = (int)SYSCHECK(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in a = {.sin_family = AF_INET};
    ASSERT_EQ(inet_pton(AF_INET, source, &a.sin_addr), 1);
    SYSCHECK(bind(fd, (struct sockaddr *)&a, sizeof a));
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void behind_haproxy(void)
{
    char haproxy[256];
    if (!find_tool("haproxy", haproxy, sizeof haproxy))
        return;
    struct server s;
    http_server_start(ritual_program(), root,
                      (const char *const[]){"--access-log", log_path, "--proxy-protocol",
                                            "127.0.0.1", "--workers", "1", NULL},
                      &s);
    int front = free_port();
    char cfg[160], cfg_text[512], out[160];
    snprintf(cfg, sizeof cfg, "%s/haproxy.cfg", root);
    snprintf(out, sizeof out, "%s/haproxy.out", root);
    int n = snprintf(cfg_text, sizeof cfg_text,
                     "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 10s\n"
                     "  timeout server 10s\nfrontend f\n  bind 127.0.0.1:%d\n"
                     "  default_backend b\nbackend b\n  server s 127.0.0.1:%d send-proxy-v2\n",
                     front, s.port);
    file_write_at(root, "haproxy.cfg", cfg_text, (size_t)n);
    pid_t pid = fork();
    SYSCHECK(pid);
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(haproxy, "haproxy", "-db", "-f", cfg, (char *)NULL);
        _exit(127);
    }
    /* haproxy says nothing when it is ready: its port answering is the sign. */
    int fd = -1;
    for (uint64_t until = now_ms() + 10000; fd < 0 && now_ms() < until;) {
        fd = connect_from("127.0.0.2", front);
        if (fd < 0)
            sleep_ms(20);
    }
    if (fd < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        FAIL("haproxy did not listen on 127.0.0.1:%d within 10 s", front);
    }
    struct http_client *c = malloc(sizeof *c);
    ASSERT(c != NULL);
    c->fd = fd;
    c->len = 0;
    send_all(fd, get_hello, sizeof get_hello - 1);
    struct http_response r;
    int answered = http_read_response(c, &r, 0, TIMEOUT);
    http_client_close(c);
    kill(pid, SIGTERM);
    SYSCHECK(waitpid(pid, NULL, 0));
    ASSERT(answered);
    HTTP_EXPECT_STATUS(&r, 200);
    http_response_free(&r);
    server_expect_clean_exit(&s);
    char *log = read_log();
    if (strncmp(log, "127.0.0.2 - - [", 15) != 0)
        FAIL("access log behind haproxy:\n%s\nexpected the client, 127.0.0.2", log);
    note("behind haproxy: %.*s", (int)(strchr(log, '\n') - log), log);
    free(log);
}

TEST_CASES_WITH(make_tree, remove_root, CASE(http_real_client_logged), CASE(http_no_header_closed),
                CASE(http_untrusted_closed), CASE(echo_after_header), CASE(bad_options),
                CASE(behind_haproxy))
