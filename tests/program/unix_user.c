/* unix_user: `ritual http` and `ritual echo` on unix sockets, several --listen
 * at once, --socket-mode, --user, and SIGHUP reloading the MIME table.
 *
 * - http_unix_and_tcp: --listen on TCP and on unix:/path at once; both
 *   serve; curl --unix-socket gets a small file and a large one (sendfile)
 *   byte-exact; --socket-mode 0600 applied; the file removed at exit.
 * - echo_abstract: `ritual echo` on unix:@name echoes.
 * - socket_in_use: a second server on a live socket file fails (exit 1,
 *   saying another server listens there) and the first goes on; a regular
 *   file at the path is refused and left as it was.
 * - user_nobody: as root, --user nobody runs the server as nobody (uid,
 *   gid and supplementary groups in /proc), still serving both listeners.
 * - user_not_root: without root, --user another user is refused (exit 1);
 *   --user the user it already is goes on.
 * - user_unknown: --user or --socket-owner naming nobody is a usage error
 *   (exit 2) with a clear line, in both commands; so is --socket-mode
 *   without a unix:/PATH listener.
 * - mime_reload: SIGHUP reads --mime again and the Content-Type follows;
 *   a broken file keeps the old table and logs why. */
#include "support.h"

#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define TIMEOUT 5000
#define BIG (300u * 1024)

static char root[64], sock[128], listen_unix[160];
static struct server server;

static void make_tree(void)
{
    temp_dir_make(root, sizeof root);
    SYSCHECK(chmod(root, 0755)); /* readable by nobody, for --user */
    file_write_at(root, "hello.txt", "hello, unix\n", 12);
    file_write_pattern_at(root, "big.bin", 7, BIG);
    file_write_at(root, "t.rit", "x", 1);
    file_write_at(root, "mime.types", "text/x-first rit\n", 17);
    dir_make_at(root, "run");
    char run[128];
    snprintf(run, sizeof run, "%s/run", root);
    SYSCHECK(chmod(run, 0777)); /* nobody removes its socket file at exit */
    snprintf(sock, sizeof sock, "%s/run/s.sock", root);
    snprintf(listen_unix, sizeof listen_unix, "unix:%s", sock);
}

/* The next stdout line of the server (its further "listening on" lines). */
static void read_line(struct server *s, char *line, size_t cap)
{
    size_t len = 0;
    uint64_t deadline = now_ms() + 10000;
    while (len == 0 || line[len - 1] != '\n') {
        if (!wait_fd(s->stdout_fd, POLLIN, deadline))
            FAIL("no second stdout line within 10 s");
        ASSERT_LT(len + 1, cap);
        ssize_t n = read(s->stdout_fd, line + len, 1);
        if (n < 0 && errno == EINTR)
            continue;
        ASSERT_EQ(SYSCHECK(n), 1);
        len++;
    }
    line[len - 1] = '\0';
}

static void expect_line(struct server *s, const char *want)
{
    char line[256];
    read_line(s, line, sizeof line);
    if (strcmp(line, want) != 0)
        FAIL("stdout line \"%s\", expected \"%s\"", line, want);
}

/* curl --unix-socket: the body of GET `target`, into r->out. */
static void curl_get(const char *curl, const char *target, struct cmd_result *r)
{
    char url[256];
    snprintf(url, sizeof url, "http://localhost%s", target);
    const char *argv[] = {curl, "-sS", "--fail", "--max-time", "5", "--unix-socket",
                          sock, url,   NULL};
    run_command(argv, 10000, r);
    if (r->exit_code != 0)
        FAIL("curl %s: exit %d: %s", url, r->exit_code, r->err);
}

static void expect_type(int port, const char *target, const char *type)
{
    char req[256];
    snprintf(req, sizeof req, "HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    struct http_response r;
    http_exchange(port, req, &r, TIMEOUT);
    HTTP_EXPECT_STATUS(&r, 200);
    HTTP_EXPECT_FIELD(&r, "Content-Type", type);
    http_response_free(&r);
}

/* Both listeners of a server started with --listen unix:... serve. */
static void check_both_serve(const char *curl)
{
    struct http_response r;
    http_exchange(server.port, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, TIMEOUT);
    HTTP_EXPECT_STATUS(&r, 200);
    http_response_free(&r);
    if (!curl)
        return;
    static struct cmd_result c; /* large: not on the stack */
    curl_get(curl, "/hello.txt", &c);
    ASSERT_EQ(c.out_len, 12);
    ASSERT_EQ(memcmp(c.out, "hello, unix\n", 12), 0);
}

static void http_unix_and_tcp(void)
{
    make_tree();
    char curl[256];
    bool have_curl = find_tool("curl", curl, sizeof curl);
    const char *args[] = {"--root", root,        "--listen", listen_unix, "--socket-mode",
                          "0600",   "--workers", "2",        NULL};
    server_start_cmd(ritual_program(), "http", "127.0.0.1:0", args, 0, &server);
    char want[200];
    snprintf(want, sizeof want, "listening on %s", listen_unix);
    expect_line(&server, want);
    struct stat st;
    SYSCHECK(stat(sock, &st));
    ASSERT(S_ISSOCK(st.st_mode));
    ASSERT_EQ(st.st_mode & 07777, 0600);
    check_both_serve(have_curl ? curl : NULL);
    if (have_curl) {
        /* Larger than what is kept in memory: sent with sendfile. Twice,
         * the second from the open-file cache. */
        char out[128], url[64];
        snprintf(out, sizeof out, "%s/got.bin", root);
        snprintf(url, sizeof url, "http://localhost/big.bin");
        for (int i = 0; i < 2; i++) {
            static struct cmd_result c;
            const char *argv[] = {curl, "-sS", "--fail", "--max-time", "5", "--unix-socket",
                                  sock, "-o",  out,      url,          NULL};
            run_command(argv, 10000, &c);
            if (c.exit_code != 0)
                FAIL("curl %s: exit %d: %s", url, c.exit_code, c.err);
            size_t len;
            char *got = file_read(out, &len);
            ASSERT_EQ(len, BIG);
            ASSERT_EQ(pattern_mismatch(7, 0, got, len), len);
            free(got);
        }
    }
    /* The whole large file, byte-exact, over a raw unix connection. */
    int fd = unix_connect(sock);
    static const char get[] = "GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send_all(fd, get, sizeof get - 1);
    static char buf[BIG + 4096];
    size_t len;
    ASSERT_EQ(recv_to_end(fd, buf, sizeof buf, &len, TIMEOUT), STREAM_EOF);
    close(fd);
    char *body = strstr(buf, "\r\n\r\n");
    ASSERT(body != NULL);
    body += 4;
    ASSERT_EQ((size_t)(buf + len - body), BIG);
    ASSERT_EQ(pattern_mismatch(7, 0, body, BIG), BIG);
    server_expect_clean_exit(&server);
    ASSERT(access(sock, F_OK) < 0); /* removed at exit */
    remove_tree(root);
}

static void echo_abstract(void)
{
    char name[64], listen[80];
    snprintf(name, sizeof name, "@ritual-test-echo-%d", (int)getpid());
    snprintf(listen, sizeof listen, "unix:%s", name);
    const char *args[] = {"--listen", listen, NULL};
    server_start_cmd(ritual_program(), "echo", "127.0.0.1:0", args, 0, &server);
    char want[128];
    snprintf(want, sizeof want, "listening on %s", listen);
    expect_line(&server, want);
    int fd = unix_connect(name);
    echo_roundtrip(fd, "over an abstract socket", 23, TIMEOUT);
    close(fd);
    fd = tcp_connect(server.port);
    echo_roundtrip(fd, "and over TCP", 12, TIMEOUT);
    close(fd);
    server_expect_clean_exit(&server);
}

static void socket_in_use(void)
{
    make_tree();
    const char *args[] = {"--listen", listen_unix, NULL};
    server_start_cmd(ritual_program(), "echo", "127.0.0.1:0", args, 0, &server);
    char want[200];
    snprintf(want, sizeof want, "listening on %s", listen_unix);
    expect_line(&server, want);

    static struct cmd_result r;
    const char *again[] = {ritual_program(), "echo", "--listen", listen_unix, NULL};
    run_command(again, 10000, &r);
    note("%s", r.err);
    ASSERT_EQ(r.exit_code, 1);
    ASSERT(strstr(r.err, "Address already in use (another server listens there)") != NULL);
    int fd = unix_connect(sock);
    echo_roundtrip(fd, "still here", 10, TIMEOUT);
    close(fd);
    server_expect_clean_exit(&server);

    char other[160];
    snprintf(other, sizeof other, "unix:%s/hello.txt", root);
    const char *file[] = {ritual_program(), "echo", "--listen", other, NULL};
    run_command(file, 10000, &r);
    note("%s", r.err);
    ASSERT_EQ(r.exit_code, 1);
    ASSERT(strstr(r.err, "not a socket") != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/hello.txt", root);
    size_t len;
    char *kept = file_read(path, &len);
    ASSERT_EQ(len, 12);
    ASSERT_EQ(memcmp(kept, "hello, unix\n", 12), 0);
    free(kept);
    remove_tree(root);
}

/* "Uid:\t65534\t65534\t..." holds only `id`. */
static void expect_status_ids(pid_t pid, const char *field, unsigned id)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    size_t len;
    char *text = file_read(path, &len);
    char *line = strstr(text, field);
    ASSERT(line != NULL);
    line += strlen(field);
    char *end = strchr(line, '\n');
    *end = '\0';
    note("%s%s", field, line);
    int count = 0;
    for (char *save = NULL, *tok = strtok_r(line, " \t", &save); tok;
         tok = strtok_r(NULL, " \t", &save), count++)
        ASSERT_EQ(strtoul(tok, NULL, 10), id);
    ASSERT_GT(count, 0);
    free(text);
}

static void user_nobody(void)
{
    if (geteuid() != 0) {
        note("SKIPPED: not root, so --user cannot be tried");
        return;
    }
    struct passwd *pw = getpwnam("nobody");
    if (!pw) {
        note("SKIPPED: no user 'nobody' here");
        return;
    }
    make_tree();
    char curl[256];
    bool have_curl = find_tool("curl", curl, sizeof curl);
    const char *args[] = {"--root", root, "--listen", listen_unix, "--user", "nobody", NULL};
    server_start_cmd(ritual_program(), "http", "127.0.0.1:0", args, 0, &server);
    char want[200];
    snprintf(want, sizeof want, "listening on %s", listen_unix);
    expect_line(&server, want);
    expect_status_ids(server.pid, "Uid:", pw->pw_uid);
    expect_status_ids(server.pid, "Gid:", pw->pw_gid);
    /* Root's supplementary groups are gone: nobody's own, if any, remain
     * (nogroup here); never group 0. */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)server.pid);
    size_t len;
    char *text = file_read(path, &len);
    char *groups = strstr(text, "Groups:");
    ASSERT(groups != NULL);
    *strchr(groups, '\n') = '\0';
    note("%s", groups);
    ASSERT(strstr(groups, "\t0 ") == NULL && strstr(groups, " 0 ") == NULL);
    free(text);
    check_both_serve(have_curl ? curl : NULL);
    server_wait_log(&server, "running as nobody", 1);
    server_expect_clean_exit(&server);
    ASSERT(access(sock, F_OK) < 0);
    remove_tree(root);
}

/* Not root: --user another is refused (exit 1, saying why); --user the
 * one it already runs as goes on (a re-exec of a dropped server). */
static void user_not_root(void)
{
    char setpriv[256];
    struct passwd *pw = getpwnam("nobody");
    if (geteuid() != 0 || !pw) {
        note("SKIPPED: needs root (to become nobody first) and a user 'nobody'");
        return;
    }
    if (!find_tool("setpriv", setpriv, sizeof setpriv))
        return;
    char uid[16], gid[16];
    snprintf(uid, sizeof uid, "--reuid=%u", (unsigned)pw->pw_uid);
    snprintf(gid, sizeof gid, "--regid=%u", (unsigned)pw->pw_gid);
    static struct cmd_result r;
    const char *refused[] = {setpriv,          uid,    gid,        "--clear-groups",
                             ritual_program(), "echo", "--listen", "127.0.0.1:0",
                             "--user",         "root", NULL};
    run_command(refused, 10000, &r);
    note("%s", r.err);
    ASSERT_EQ(r.exit_code, 1);
    ASSERT(strstr(r.err, "ritual: --user root: Operation not permitted (only root can change "
                         "user)") != NULL);

    const char *same[] = {setpriv,          uid,      gid,        "--clear-groups",
                          ritual_program(), "echo",   "--listen", "127.0.0.1:0",
                          "--user",         "nobody", NULL};
    server_start_argv(same, 0, &server);
    int fd = tcp_connect(server.port);
    echo_roundtrip(fd, "as nobody", 9, TIMEOUT);
    close(fd);
    expect_status_ids(server.pid, "Uid:", pw->pw_uid);
    server_expect_clean_exit(&server);
}

static void expect_usage(const char *const argv[], const char *needle)
{
    static struct cmd_result r;
    run_command(argv, 10000, &r);
    note("%s", r.err);
    ASSERT_EQ(r.exit_code, 2);
    ASSERT(strstr(r.err, needle) != NULL);
    ASSERT_EQ(count_lines(r.err), 1);
}

static void user_unknown(void)
{
    const char *p = ritual_program();
    expect_usage(
        (const char *const[]){p, "http", "--root", "/", "--user", "ritual-nosuchuser", NULL},
        "ritual http: --user ritual-nosuchuser: no such user");
    expect_usage((const char *const[]){p, "echo", "--user", "ritual-nosuchuser", NULL},
                 "ritual echo: --user ritual-nosuchuser: no such user");
    expect_usage((const char *const[]){p, "echo", "--user", "root:ritual-nosuchgroup", NULL},
                 "--user root:ritual-nosuchgroup: no such group");
    expect_usage((const char *const[]){p, "echo", "--listen", "unix:/tmp/x.sock", "--socket-owner",
                                       "ritual-nosuchuser", NULL},
                 "--socket-owner ritual-nosuchuser: no such user");
    expect_usage((const char *const[]){p, "echo", "--socket-mode", "0600", NULL},
                 "--socket-mode applies to a unix:/PATH listener");
    expect_usage((const char *const[]){p, "echo", "--listen", "unix:/tmp/x.sock", "--socket-mode",
                                       "0999", NULL},
                 "--socket-mode: '0999' is not an octal mode");
    expect_usage((const char *const[]){p, "echo", "--listen", "unix:relative", NULL},
                 "--listen: invalid address 'unix:relative'");
}

static void mime_reload(void)
{
    make_tree();
    char mime[128];
    snprintf(mime, sizeof mime, "%s/mime.types", root);
    const char *args[] = {"--root", root, "--mime", mime, "--workers", "2", NULL};
    server_start_cmd(ritual_program(), "http", "127.0.0.1:0", args, 0, &server);
    /* Several connections: each worker's cache holds the entry. */
    for (int i = 0; i < 4; i++)
        expect_type(server.port, "/t.rit", "text/x-first");

    file_write_at(root, "mime.types", "text/x-second rit\n", 18);
    SYSCHECK(kill(server.pid, SIGHUP));
    server_wait_log(&server, "MIME types reloaded", 1);
    /* Each worker swaps on its own thread; the control loop says when all
     * have. */
    server_wait_log(&server, "in use by every worker", 1);
    for (int i = 0; i < 8; i++)
        expect_type(server.port, "/t.rit", "text/x-second");

    file_write_at(root, "mime.types", "text/x-third rit\nbroken\n", 24);
    SYSCHECK(kill(server.pid, SIGHUP));
    server_wait_log(&server, "MIME types kept", 1);
    server_wait_log(&server, "mime.types:2: 'broken' is not a media type", 1);
    for (int i = 0; i < 4; i++)
        expect_type(server.port, "/t.rit", "text/x-second");
    server_expect_clean_exit(&server);
    remove_tree(root);
}

TEST_CASES(CASE(http_unix_and_tcp), CASE(echo_abstract), CASE(socket_in_use), CASE(user_nobody),
           CASE(user_not_root), CASE(user_unknown), CASE(mime_reload))
