/* tls: `ritual http` and `ritual echo` with --tls-cert/--tls-key, against
 * curl, openssl s_client and an OpenSSL client of the test's own, with a CA
 * and certificates the openssl command makes for each case.
 *
 * https_with_curl: a page and a 1 MiB file intact over HTTPS, on HTTP/1.1
 *   (ALPN), verified against the CA.
 * plain_http_gets_400: plain HTTP to the HTTPS port: nginx's 400, then
 *   the close.
 * versions_and_alpn: TLS 1.2 and 1.3 handshake with http/1.1 agreed; a
 *   client offering only h2 is refused; TLS 1.1 is refused.
 * sni_picks_the_certificate: three certificates (ECDSA, RSA, a wildcard):
 *   each name gets its own, an unknown name the first.
 * resumption_across_workers: a session from one connection resumes on the
 *   next five (s_client -sess_out, -sess_in), whichever of two workers
 *   takes them, as TLS 1.3 and as TLS 1.2.
 * bad_certificate_files: a missing file, a file that is no certificate, a
 *   key that does not match: exit 1 and one line naming the file; a
 *   certificate without its key: exit 2.
 * reload_on_sighup: a renewed certificate replaces the old one for new
 *   handshakes while an open connection goes on being served; a broken
 *   file on the next SIGHUP keeps the good one, with an error logged.
 * stalled_reader_of_a_64_mib_file: a client that asks for a 64 MiB file
 *   and reads nothing: the server's memory grows by less than 8 MiB; then
 *   the whole file arrives intact.
 * echo_16_mib: `ritual echo` returns 16 MiB intact over TLS, and answers
 *   the client's close_notify with its own.
 * server_close_sends_close_notify: Connection: close ends with the
 *   server's close_notify before its FIN.
 * handshake_timeout: a client that sends nothing is closed after the
 *   header timeout, which bounds the handshake as in nginx.
 * bench_loads_tls_servers: `ritual bench echo --tls` against `ritual echo
 *   --tls-cert`, verifying against the CA, and `ritual bench http --tls
 *   --close --tls-resume` against `ritual http`: no error, and every
 *   handshake of the second after the first connections resumed. */
#include "support.h"
#include "tls.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEED 0x7715u

static char dir[64], root[96], ca[128], cert[128], key[128];

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void make_site(void)
{
    temp_dir_make(dir, sizeof dir);
    tls_make_certs(dir);
    path_in(ca, sizeof ca, "ca.pem");
    path_in(cert, sizeof cert, "server.pem");
    path_in(key, sizeof key, "server.key");
    path_in(root, sizeof root, "root");
    dir_make_at(dir, "root");
    file_write_at(root, "index.html", "<h1>secure</h1>\n", 16);
    file_write_pattern_at(root, "one.bin", SEED, 1 << 20);
}

static void remove_site(void)
{
    remove_tree(dir);
}

static void start_https(struct server *s, const char *const more[])
{
    const char *args[32] = {"--tls-cert", cert, "--tls-key", key, "--workers", "1"};
    int n = 6;
    for (int i = 0; more && more[i]; i++)
        args[n++] = more[i];
    args[n] = NULL;
    http_server_start(ritual_program(), root, args, s);
}

/* -------------------------------------------------------------- curl */

static void https_with_curl(void)
{
    char curl[256];
    if (!find_tool("curl", curl, sizeof curl))
        return;
    struct server s;
    start_https(&s, NULL);
    char url[128], resolve[64];
    snprintf(url, sizeof url, "https://localhost:%d/", s.port);
    snprintf(resolve, sizeof resolve, "localhost:%d:127.0.0.1", s.port);
    const char *page[] = {curl,    "-sS", "--cacert",         ca,  "--resolve",
                          resolve, "-w",  "|%{http_version}", url, NULL};
    struct cmd_result r;
    run_command(page, 10000, &r);
    ASSERT_EQ(r.exit_code, 0);
    ASSERT(strcmp(r.out, "<h1>secure</h1>\n|1.1") == 0);

    char file_url[160], out[160];
    snprintf(file_url, sizeof file_url, "https://localhost:%d/one.bin", s.port);
    path_in(out, sizeof out, "got.bin");
    const char *file[] = {curl,    "-sS", "--cacert", ca,       "--resolve",
                          resolve, "-o",  out,        file_url, NULL};
    run_command(file, 20000, &r);
    ASSERT_EQ(r.exit_code, 0);
    size_t len;
    char *got = file_read(out, &len);
    ASSERT_EQ(len, 1 << 20);
    ASSERT_EQ(pattern_mismatch(SEED, 0, got, len), len);
    free(got);
    server_expect_clean_exit(&s);
}

static void plain_http_gets_400(void)
{
    struct server s;
    start_https(&s, NULL);
    int fd = tcp_connect(s.port);
    send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    char got[1024];
    size_t n;
    ASSERT_EQ(recv_to_end(fd, got, sizeof got - 1, &n, 10000), STREAM_EOF);
    got[n] = '\0';
    ASSERT(strncmp(got, "HTTP/1.1 400 ", 13) == 0);
    ASSERT(strstr(got, "\r\nConnection: close\r\n"));
    ASSERT(strstr(got, "The plain HTTP request was sent to HTTPS port"));
    close(fd);
    server_expect_clean_exit(&s);
}

/* ------------------------------------------------------------- s_client */

static char openssl[256];

/* Runs `openssl s_client -connect 127.0.0.1:PORT` with `args`, stdin from
 * `input` (a file; NULL: nothing). */
static void s_client(int port, const char *const args[], const char *input, struct cmd_result *r)
{
    char connect[64];
    snprintf(connect, sizeof connect, "127.0.0.1:%d", port);
    char cmd[2048];
    int n =
        snprintf(cmd, sizeof cmd, "exec %s s_client -connect %s -CAfile %s", openssl, connect, ca);
    for (int i = 0; args[i]; i++)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " %s", args[i]);
    if (input)
        snprintf(cmd + n, sizeof cmd - (size_t)n, " -ign_eof < %s", input);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    run_command(argv, 20000, r);
}

static void versions_and_alpn(void)
{
    if (!find_tool("openssl", openssl, sizeof openssl))
        return;
    struct server s;
    start_https(&s, NULL);
    struct cmd_result r;
    const char *v12[] = {"-tls1_2", "-alpn", "http/1.1", "-servername", "localhost", NULL};
    s_client(s.port, v12, NULL, &r);
    ASSERT(strstr(r.out, "New, TLSv1.2, Cipher is ECDHE-ECDSA-"));
    ASSERT(strstr(r.out, "ALPN protocol: http/1.1"));
    ASSERT(strstr(r.out, "Verify return code: 0 (ok)"));
    const char *v13[] = {"-tls1_3", "-alpn", "http/1.1", "-servername", "localhost", NULL};
    s_client(s.port, v13, NULL, &r);
    ASSERT(strstr(r.out, "New, TLSv1.3, Cipher is TLS_AES_"));
    ASSERT(strstr(r.out, "ALPN protocol: http/1.1"));
    const char *h2[] = {"-alpn", "h2", NULL};
    s_client(s.port, h2, NULL, &r);
    ASSERT_NE(r.exit_code, 0);
    ASSERT(strstr(r.err, "no application protocol"));
    const char *v11[] = {"-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", NULL};
    s_client(s.port, v11, NULL, &r);
    ASSERT_NE(r.exit_code, 0);
    ASSERT(!strstr(r.out, "New, TLSv1.1"));
    server_expect_clean_exit(&s);
}

static void sni_picks_the_certificate(void)
{
    if (!find_tool("openssl", openssl, sizeof openssl))
        return;
    char rsa[128], rsa_key[128], other[128], other_key[128];
    path_in(rsa, sizeof rsa, "rsa.pem");
    path_in(rsa_key, sizeof rsa_key, "rsa.key");
    path_in(other, sizeof other, "other.pem");
    path_in(other_key, sizeof other_key, "other.key");
    const char *more[] = {"--tls-cert", rsa,         "--tls-key", rsa_key, "--tls-cert",
                          other,        "--tls-key", other_key,   NULL};
    struct server s;
    start_https(&s, more);
    static const struct {
        const char *name, *subject;
    } cases[] = {
        {"rsa.test", "subject=CN = rsa.test"},      {"other.test", "subject=CN = other.test"},
        {"x.wild.test", "subject=CN = other.test"}, {"unknown.test", "subject=CN = localhost"},
        {"localhost", "subject=CN = localhost"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[] = {"-servername", cases[i].name, NULL};
        struct cmd_result r;
        s_client(s.port, args, NULL, &r);
        if (!strstr(r.out, cases[i].subject))
            FAIL("SNI %s: no \"%s\" in:\n%s", cases[i].name, cases[i].subject, r.out);
        if (strcmp(cases[i].name, "rsa.test") == 0)
            ASSERT(strstr(r.out, "Server public key is 2048 bit"));
    }
    server_expect_clean_exit(&s);
}

static void resumption_across_workers(void)
{
    if (!find_tool("openssl", openssl, sizeof openssl))
        return;
    char request[160], sess[160];
    path_in(request, sizeof request, "request.txt");
    path_in(sess, sizeof sess, "session.pem");
    static const char get[] = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    file_write_at(dir, "request.txt", get, sizeof get - 1);
    const char *two[] = {"--workers", "2", NULL};
    struct server s;
    start_https(&s, two);
    const char *versions[] = {"-tls1_3", "-tls1_2"};
    for (int v = 0; v < 2; v++) {
        const char *out[] = {versions[v], "-servername", "localhost", "-sess_out", sess, NULL};
        struct cmd_result r;
        s_client(s.port, out, request, &r);
        ASSERT(strstr(r.out, "<h1>secure</h1>"));
        ASSERT(strstr(r.out, "\nNew, TLSv1."));
        for (int i = 0; i < 5; i++) {
            const char *in[] = {versions[v], "-servername", "localhost", "-sess_in", sess, NULL};
            s_client(s.port, in, request, &r);
            ASSERT(strstr(r.out, "<h1>secure</h1>"));
            if (!strstr(r.out, "\nReused, TLSv1."))
                FAIL("%s: connection %d not resumed:\n%s", versions[v], i, r.out);
        }
    }
    server_expect_clean_exit(&s);
}

/* ------------------------------------------------------- certificates */

static void expect_refused(const char *cert_file, const char *key_file, const char *want)
{
    const char *argv[] = {ritual_program(), "http",    "--listen",  "127.0.0.1:0", "--root", root,
                          "--tls-cert",     cert_file, "--tls-key", key_file,      NULL};
    struct cmd_result r;
    run_command(argv, 10000, &r);
    ASSERT_EQ(r.exit_code, 1);
    ASSERT_EQ(count_lines(r.err), 1);
    if (!strstr(r.err, want))
        FAIL("no \"%s\" in: %s", want, r.err);
}

static void bad_certificate_files(void)
{
    char missing[128], junk[128], other_key[128], msg[512];
    path_in(missing, sizeof missing, "missing.pem");
    path_in(junk, sizeof junk, "junk.pem");
    path_in(other_key, sizeof other_key, "other.key");
    file_write_at(dir, "junk.pem", "not a certificate\n", 18);
    snprintf(msg, sizeof msg, "ritual: tls: %s: No such file or directory", missing);
    expect_refused(missing, key, msg);
    snprintf(msg, sizeof msg, "ritual: tls: %s: No such file or directory", missing);
    expect_refused(cert, missing, msg);
    snprintf(msg, sizeof msg, "ritual: tls: %s: not a PEM certificate chain", junk);
    expect_refused(junk, key, msg);
    snprintf(msg, sizeof msg, "ritual: tls: %s: not a PEM private key", junk);
    expect_refused(cert, junk, msg);
    snprintf(msg, sizeof msg, "ritual: tls: %s does not match %s", other_key, cert);
    expect_refused(cert, other_key, msg);
    const char *alone[] = {ritual_program(), "echo", "--tls-cert", cert, NULL};
    struct cmd_result r;
    run_command(alone, 10000, &r);
    ASSERT_EQ(r.exit_code, 2);
    ASSERT(strstr(r.err, "each --tls-cert needs its --tls-key"));
}

/* The O= of the certificate a new connection gets. */
static void expect_org(int port, const char *org)
{
    struct tls_client c;
    tls_connect(&c, port, ca, "localhost", NULL, NULL, 10000);
    X509 *peer = SSL_get1_peer_certificate(c.ssl);
    ASSERT(peer);
    char subject[256];
    X509_NAME_oneline(X509_get_subject_name(peer), subject, sizeof subject);
    X509_free(peer);
    if (!strstr(subject, org))
        FAIL("certificate %s, expected O=%s", subject, org);
    tls_close(&c);
}

static void get_index(struct tls_client *c)
{
    static const char get[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    tls_send_all(c, get, sizeof get - 1, 10000);
    char head[512];
    size_t n = 0;
    /* The head and the 16-byte body: read to the body's end. */
    while (n < 16 || memcmp(head + n - 16, "<h1>secure</h1>\n", 16) != 0) {
        ASSERT_LT(n, sizeof head);
        tls_recv_exact(c, head + n, 1, 10000);
        n++;
    }
    ASSERT(strncmp(head, "HTTP/1.1 200 ", 13) == 0);
}

static void reload_on_sighup(void)
{
    tls_make_cert(dir, "v1", "localhost", "one");
    tls_make_cert(dir, "v2", "localhost", "two");
    char v1[128], v1_key[128], v2[128], v2_key[128];
    path_in(v1, sizeof v1, "v1.pem");
    path_in(v1_key, sizeof v1_key, "v1.key");
    path_in(v2, sizeof v2, "v2.pem");
    path_in(v2_key, sizeof v2_key, "v2.key");
    SYSCHECK(rename(v1, cert));
    SYSCHECK(rename(v1_key, key));
    struct server s;
    start_https(&s, NULL);
    expect_org(s.port, "O=one");
    struct tls_client open_conn;
    tls_connect(&open_conn, s.port, ca, "localhost", NULL, NULL, 10000);
    get_index(&open_conn);

    SYSCHECK(rename(v2, cert));
    SYSCHECK(rename(v2_key, key));
    SYSCHECK(kill(s.pid, SIGHUP));
    server_wait_log(&s, "certificates reloaded", 1);
    expect_org(s.port, "O=two");
    get_index(&open_conn); /* the connection made before goes on */

    file_write_at(dir, "server.pem", "broken\n", 7);
    SYSCHECK(kill(s.pid, SIGHUP));
    server_wait_log(&s, "certificates kept", 1);
    expect_org(s.port, "O=two");
    get_index(&open_conn);
    tls_close(&open_conn);
    server_expect_clean_exit(&s);
}

/* ------------------------------------------------------------ memory */

#define BIG (64u << 20)

static void stalled_reader_of_a_64_mib_file(void)
{
    file_write_pattern_at(root, "big.bin", SEED, BIG);
    struct server s;
    start_https(&s, NULL);
    struct tls_client c;
    tls_connect(&c, s.port, ca, "localhost", NULL, NULL, 10000);
    get_index(&c); /* warm: buffers the server keeps are made */
    long before = proc_rss_kb(s.pid);
    static const char get[] = "GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n";
    tls_send_all(&c, get, sizeof get - 1, 10000);
    sleep_ms(1000); /* the server fills the socket and waits */
    long stalled = proc_rss_kb(s.pid);
    note("server RSS %ld KiB before, %ld KiB with 64 MiB asked for and unread", before, stalled);
    ASSERT_LT(stalled - before, 8 * 1024);
    char head[512];
    size_t n = 0;
    while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
        ASSERT_LT(n, sizeof head);
        tls_recv_exact(&c, head + n, 1, 10000);
        n++;
    }
    ASSERT(strstr(head, "Content-Length: 67108864\r\n"));
    char *body = malloc(BIG);
    ASSERT(body);
    tls_recv_exact(&c, body, BIG, 60000);
    ASSERT_EQ(pattern_mismatch(SEED, 0, body, BIG), BIG);
    free(body);
    tls_close(&c);
    server_expect_clean_exit(&s);
}

/* -------------------------------------------------------------- echo */

#define ECHO_TOTAL (16u << 20)

static void echo_16_mib(void)
{
    const char *args[] = {"--tls-cert", cert, "--tls-key", key, "--workers", "1", NULL};
    struct server s;
    server_start(ritual_program(), args, 0, &s);
    struct tls_client c;
    tls_connect(&c, s.port, ca, "localhost", NULL, NULL, 10000);
    char *out = malloc(ECHO_TOTAL), *in = malloc(ECHO_TOTAL);
    ASSERT(out && in);
    pattern_fill(SEED, 0, out, ECHO_TOTAL);
    /* Writes and reads interleaved, without blocking on either. */
    size_t sent = 0, got = 0;
    uint64_t deadline = now_ms() + 60000;
    while (got < ECHO_TOTAL) {
        ASSERT_LT(now_ms(), deadline);
        int progress = 0;
        if (sent < ECHO_TOTAL) {
            size_t n = ECHO_TOTAL - sent < 70000 ? ECHO_TOTAL - sent : 70000;
            int rc = SSL_write(c.ssl, out + sent, (int)n);
            if (rc > 0) {
                sent += (size_t)rc;
                progress = 1;
            }
        }
        int rc = SSL_read(c.ssl, in + got, (int)(ECHO_TOTAL - got));
        if (rc > 0) {
            got += (size_t)rc;
            progress = 1;
        } else {
            ASSERT_EQ(SSL_get_error(c.ssl, rc), SSL_ERROR_WANT_READ);
        }
        if (!progress) {
            struct pollfd p = {.fd = c.fd, .events = POLLIN | (sent < ECHO_TOTAL ? POLLOUT : 0)};
            poll(&p, 1, 100);
        }
    }
    ASSERT(memcmp(in, out, ECHO_TOTAL) == 0);
    free(out);
    free(in);
    tls_shutdown(&c);
    char rest[16];
    size_t n;
    ASSERT_EQ(tls_recv_to_end(&c, rest, sizeof rest, &n, 10000), 1); /* its close_notify */
    ASSERT_EQ(n, 0);
    tls_close(&c);
    server_expect_clean_exit(&s);
}

static void server_close_sends_close_notify(void)
{
    struct server s;
    start_https(&s, NULL);
    struct tls_client c;
    tls_connect(&c, s.port, ca, "localhost", NULL, NULL, 10000);
    static const char get[] = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    tls_send_all(&c, get, sizeof get - 1, 10000);
    char got[1024];
    size_t n;
    ASSERT_EQ(tls_recv_to_end(&c, got, sizeof got - 1, &n, 10000), 1);
    got[n] = '\0';
    ASSERT(strstr(got, "<h1>secure</h1>"));
    tls_close(&c);
    server_expect_clean_exit(&s);
}

static void handshake_timeout(void)
{
    const char *fast[] = {"--header-timeout", "0.5", NULL};
    struct server s;
    start_https(&s, fast);
    int fd = tcp_connect(s.port);
    uint64_t start = now_ms();
    char got[64];
    size_t n;
    recv_to_end(fd, got, sizeof got, &n, 5000);
    uint64_t took = now_ms() - start;
    ASSERT_EQ(n, 0);
    ASSERT_GE(took, 400);
    ASSERT_LT(took, 3000);
    close(fd);
    server_expect_clean_exit(&s);
}

/* The number after "\"KEY\":" in a JSON line, or -1. */
static long long json_number(const char *json, const char *name)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", name);
    const char *p = strstr(json, pattern);
    return p ? strtoll(p + strlen(pattern), NULL, 10) : -1;
}

static void bench_loads_tls_servers(void)
{
    const char *echo_args[] = {"--tls-cert", cert, "--tls-key", key, "--workers", "1", NULL};
    struct server echo;
    server_start(ritual_program(), echo_args, 0, &echo);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", echo.port);
    const char *load_echo[] = {ritual_program(),
                               "bench",
                               "echo",
                               "--connect",
                               target,
                               "--tls-ca",
                               ca,
                               "--tls-sni",
                               "localhost",
                               "--connections",
                               "4",
                               "--duration",
                               "1",
                               "--json",
                               NULL};
    struct cmd_result r;
    run_command(load_echo, 20000, &r);
    ASSERT_EQ(r.exit_code, 0);
    ASSERT_GT(json_number(r.out, "messages"), 100);
    server_expect_clean_exit(&echo);

    struct server http;
    start_https(&http, NULL);
    snprintf(target, sizeof target, "127.0.0.1:%d", http.port);
    const char *load_http[] = {
        ritual_program(), "bench",         "http", "--connect",  target, "--tls",  "--close",
        "--tls-resume",   "--connections", "2",    "--duration", "1",    "--json", NULL};
    run_command(load_http, 20000, &r);
    ASSERT_EQ(r.exit_code, 0);
    long long requests = json_number(r.out, "requests");
    long long resumed = json_number(r.out, "tls_resumed");
    note("%lld requests, %lld full and %lld resumed handshakes", requests,
         json_number(r.out, "tls_full"), resumed);
    ASSERT_GT(requests, 10);
    ASSERT_GE(resumed, requests - 4); /* a connection at a time, each resuming the last */
    server_expect_clean_exit(&http);
}

TEST_CASES_WITH(make_site, remove_site, CASE(https_with_curl), CASE(plain_http_gets_400),
                CASE(versions_and_alpn), CASE(sni_picks_the_certificate),
                CASE(resumption_across_workers), CASE(bad_certificate_files),
                CASE(reload_on_sighup), CASE(stalled_reader_of_a_64_mib_file), CASE(echo_16_mib),
                CASE(server_close_sends_close_notify), CASE(handshake_timeout),
                CASE(bench_loads_tls_servers))
