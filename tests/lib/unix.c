/* Unix domain sockets, on every backend:
 *
 * - echo_and_cred: listen on unix:/path, ritual_connect to it, bytes echoed;
 *   the server sees the client's pid, uid and gid (SO_PEERCRED) and the
 *   peer "unix:"; the listener says its address and port 0; the socket file
 *   is removed when the listener closes.
 * - abstract: the same on unix:@name, which has no file.
 * - stale_replaced: a socket file nobody listens on (a crashed server's)
 *   is replaced.
 * - live_in_use: a socket file a server listens on is -EADDRINUSE, saying
 *   so, and that server goes on serving.
 * - regular_file_kept: a file that is not a socket is -EADDRINUSE and left
 *   untouched.
 * - mode_and_owner: unix_mode and unix_owner are applied before clients can
 *   connect; an unknown owner is -EINVAL and leaves no file.
 * - connect_refused: ritual_connect to a missing socket or a stale one
 *   reports -ENOENT / -ECONNREFUSED through on_close, as TCP does.
 * - bad_addresses: empty, relative and too long unix: addresses.
 * - write_file: ritual_write_file (sendfile) over a unix socket.
 * - server_workers: ritual_server_listen with 2 workers on one unix:/path
 *   serves many connections, and removes the file once freed. */
#include "libtest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char dir[64], path[128], address[160];

static void make_paths(void)
{
    temp_dir_make(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/s.sock", dir);
    snprintf(address, sizeof address, "unix:%s", path);
}

static bool exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

/* A unix socket bound at `p` (listening if `listening`). */
static int raw_unix(const char *p, bool listening)
{
    int fd = SYSCHECK(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    ASSERT_LT(strlen(p), sizeof sun.sun_path);
    memcpy(sun.sun_path, p, strlen(p) + 1);
    SYSCHECK(bind(fd, (struct sockaddr *)&sun, sizeof sun));
    if (listening)
        SYSCHECK(listen(fd, 16));
    return fd;
}

static int raw_connect(const char *p)
{
    int fd = SYSCHECK(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    ASSERT_LT(strlen(p), sizeof sun.sun_path);
    memcpy(sun.sun_path, p, strlen(p) + 1);
    SYSCHECK(connect(fd, (struct sockaddr *)&sun, sizeof sun));
    return fd;
}

/* ------------------------------------------------- echo, through the loop */

static int server_opens, client_closes;
static char got[64];
static size_t got_len;

static size_t echo(ritual_conn *conn, const char *bytes, size_t len)
{
    ASSERT_EQ(ritual_write(conn, bytes, len), 0);
    return len;
}

static void server_open(ritual_conn *conn)
{
    pid_t pid;
    uid_t uid;
    gid_t gid;
    ASSERT_EQ(ritual_conn_peer_cred(conn, &pid, &uid, &gid), 0);
    ASSERT_EQ(pid, getpid());
    ASSERT_EQ(uid, getuid());
    ASSERT_EQ(gid, getgid());
    ASSERT_EQ(ritual_conn_peer_cred(conn, NULL, NULL, NULL), 0);
    char peer[64];
    ASSERT_EQ(ritual_conn_peer(conn, peer, sizeof peer), 0);
    ASSERT_EQ(strcmp(peer, "unix:"), 0);
    ASSERT_EQ(ritual_conn_socket_peer(conn, peer, sizeof peer), 0);
    ASSERT_EQ(strcmp(peer, "unix:"), 0);
    server_opens++;
}

static void client_open(ritual_conn *conn)
{
    ASSERT_EQ(ritual_write(conn, "hello unix", 10), 0);
}

static size_t client_data(ritual_conn *conn, const char *bytes, size_t len)
{
    ASSERT_LE(got_len + len, sizeof got);
    memcpy(got + got_len, bytes, len);
    got_len += len;
    if (got_len == 10)
        ritual_conn_close(conn);
    return len;
}

static void client_close(ritual_conn *conn, int reason)
{
    ASSERT_EQ(reason, 0);
    client_closes++;
    ritual_loop_stop(ritual_conn_loop(conn));
}

static const ritual_conn_callbacks server_cbs = {.on_open = server_open, .on_data = echo};
static const ritual_conn_callbacks client_cbs = {
    .on_open = client_open, .on_data = client_data, .on_close = client_close};

/* Connects to `to` and checks the echo. */
static void echo_through(ritual_loop *loop, const char *to)
{
    ritual_error err;
    got_len = 0;
    int before = client_closes;
    if (!ritual_connect(loop, to, NULL, &client_cbs, &err))
        FAIL("ritual_connect %s: %s", to, err.message);
    lt_run(loop, 10000);
    ASSERT_EQ(client_closes, before + 1);
    ASSERT_EQ(got_len, 10);
    ASSERT_EQ(memcmp(got, "hello unix", 10), 0);
}

static void echo_and_cred(void)
{
    make_paths();
    ritual_loop *loop = lt_loop();
    ritual_error err;
    ritual_listener *l = ritual_listen(loop, address, NULL, &server_cbs, &err);
    if (!l)
        FAIL("ritual_listen %s: %s", address, err.message);
    char bound[160];
    ASSERT_EQ(ritual_listener_address(l, bound, sizeof bound), 0);
    ASSERT_EQ(strcmp(bound, address), 0);
    ASSERT_EQ(ritual_listener_port(l), 0);
    ASSERT(exists(path));
    echo_through(loop, address);
    ASSERT_EQ(server_opens, 1);
    ritual_listener_close(l);
    ASSERT(!exists(path));
    ritual_loop_free(loop);
    remove_tree(dir);
}

static void abstract(void)
{
    char name[64];
    snprintf(name, sizeof name, "unix:@ritual-test-%d", (int)getpid());
    ritual_loop *loop = lt_loop();
    ritual_error err;
    ritual_listener *l = ritual_listen(loop, name, NULL, &server_cbs, &err);
    if (!l)
        FAIL("ritual_listen %s: %s", name, err.message);
    char bound[160];
    ASSERT_EQ(ritual_listener_address(l, bound, sizeof bound), 0);
    ASSERT_EQ(strcmp(bound, name), 0);
    echo_through(loop, name);
    ASSERT_EQ(server_opens, 1);
    /* The name is taken while it listens. */
    ASSERT(ritual_listen(loop, name, NULL, &server_cbs, &err) == NULL);
    ASSERT_EQ(err.code, -EADDRINUSE);
    note("%s", err.message);
    ritual_loop_free(loop);
}

static void stale_replaced(void)
{
    make_paths();
    close(raw_unix(path, true)); /* a crashed server leaves its file */
    ASSERT(exists(path));
    ritual_loop *loop = lt_loop();
    ritual_error err;
    ritual_listener *l = ritual_listen(loop, address, NULL, &server_cbs, &err);
    if (!l)
        FAIL("ritual_listen over a stale socket: %s", err.message);
    echo_through(loop, address);
    ritual_loop_free(loop);
    ASSERT(!exists(path)); /* freeing the loop closed the listener */
    remove_tree(dir);
}

static void live_in_use(void)
{
    make_paths();
    ritual_loop *loop = lt_loop();
    ritual_error err;
    ritual_listener *l = ritual_listen(loop, address, NULL, &server_cbs, &err);
    ASSERT(l != NULL);
    ASSERT(ritual_listen(loop, address, NULL, &server_cbs, &err) == NULL);
    ASSERT_EQ(err.code, -EADDRINUSE);
    note("%s", err.message);
    ASSERT(strstr(err.message, "another server listens there") != NULL);
    ASSERT(strstr(err.message, "bind unix:") == err.message);
    /* The first one still serves, its file in place. (It also accepted
     * the probe that found it alive: connected, then closed at once.) */
    ASSERT(exists(path));
    echo_through(loop, address);
    ASSERT_EQ(server_opens, 2);
    ritual_loop_free(loop);
    ASSERT(!exists(path));
    remove_tree(dir);
}

static void regular_file_kept(void)
{
    make_paths();
    file_write_at(dir, "s.sock", "precious", 8);
    ritual_loop *loop = lt_loop();
    ritual_error err;
    ASSERT(ritual_listen(loop, address, NULL, &server_cbs, &err) == NULL);
    ASSERT_EQ(err.code, -EADDRINUSE);
    note("%s", err.message);
    ASSERT(strstr(err.message, "not a socket") != NULL);
    size_t len;
    char *kept = file_read(path, &len);
    ASSERT_EQ(len, 8);
    ASSERT_EQ(memcmp(kept, "precious", 8), 0);
    free(kept);
    ritual_loop_free(loop);
    remove_tree(dir);
}

static void mode_and_owner(void)
{
    make_paths();
    ritual_loop *loop = lt_loop();
    ritual_error err;
    ritual_listen_options opts = {.unix_mode = 0600};
    char owner[64];
    snprintf(owner, sizeof owner, "%u:%u", (unsigned)getuid(), (unsigned)getgid());
    opts.unix_owner = owner;
    ritual_listener *l = ritual_listen(loop, address, &opts, &server_cbs, &err);
    if (!l)
        FAIL("ritual_listen: %s", err.message);
    struct stat st;
    SYSCHECK(stat(path, &st));
    ASSERT(S_ISSOCK(st.st_mode));
    ASSERT_EQ(st.st_mode & 07777, 0600);
    ASSERT_EQ(st.st_uid, getuid());
    ASSERT_EQ(st.st_gid, getgid());
    ritual_listener_close(l);

    opts.unix_mode = 0660;
    opts.unix_owner = "ritual-no-such-user";
    ASSERT(ritual_listen(loop, address, &opts, &server_cbs, &err) == NULL);
    ASSERT_EQ(err.code, -EINVAL);
    note("%s", err.message);
    ASSERT(strstr(err.message, "unix_owner 'ritual-no-such-user': no such user") != NULL);
    ASSERT(!exists(path));
    opts.unix_owner = "0:ritual-no-such-group";
    ASSERT(ritual_listen(loop, address, &opts, &server_cbs, &err) == NULL);
    ASSERT_EQ(err.code, -EINVAL);
    ASSERT(strstr(err.message, "no such group") != NULL);
    opts.unix_owner = "root:";
    ASSERT(ritual_listen(loop, address, &opts, &server_cbs, &err) == NULL);
    ASSERT_EQ(err.code, -EINVAL);
    ASSERT(!exists(path));
    ritual_loop_free(loop);
    remove_tree(dir);
}

/* ------------------------------------------------------ refused connects */

static int refused_reason, refused_closes;

static void refused_open(ritual_conn *conn)
{
    (void)conn;
    FAIL("on_open for a refused connection");
}

static void refused_close(ritual_conn *conn, int reason)
{
    refused_reason = reason;
    refused_closes++;
    ritual_loop_stop(ritual_conn_loop(conn));
}

static void connect_refused(void)
{
    make_paths();
    ritual_loop *loop = lt_loop();
    ritual_error err;
    ritual_conn_callbacks nobody = {
        .on_open = refused_open, .on_data = echo, .on_close = refused_close};
    ASSERT(ritual_connect(loop, address, NULL, &nobody, &err) != NULL);
    lt_run(loop, 10000);
    ASSERT_EQ(refused_closes, 1);
    ASSERT_EQ(refused_reason, -ENOENT);

    close(raw_unix(path, true));
    ASSERT(ritual_connect(loop, address, NULL, &nobody, &err) != NULL);
    lt_run(loop, 10000);
    ASSERT_EQ(refused_closes, 2);
    ASSERT_EQ(refused_reason, -ECONNREFUSED);
    ritual_loop_free(loop);
    remove_tree(dir);
}

static void bad_addresses(void)
{
    ritual_error err;
    struct sockaddr_storage ss;
    socklen_t len;
    char longer[200] = "unix:/";
    memset(longer + 6, 'x', 120);
    const char *bad[] = {"unix:", "unix:@", "unix:relative.sock", longer};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT_EQ(ritual_address_parse(bad[i], &ss, &len, &err), -EINVAL);
        note("%.40s: %s", bad[i], err.message);
    }
    ASSERT_EQ(ritual_address_parse("unix:/run/x.sock", &ss, &len, &err), 0);
    ASSERT_EQ(ss.ss_family, AF_UNIX);
    ASSERT_EQ(strcmp(((struct sockaddr_un *)&ss)->sun_path, "/run/x.sock"), 0);
    ASSERT_EQ(ritual_address_parse("unix:@name", &ss, &len, &err), 0);
    ASSERT_EQ(len, offsetof(struct sockaddr_un, sun_path) + 5);
    ASSERT_EQ(ritual_address_parse("unix:@name", NULL, NULL, &err), 0);
}

/* -------------------------------------------------------- sendfile over it */

#define FILE_SIZE (1u << 20)
#define SEED 5

static int file_fd, file_released;

static void release_file(void *arg)
{
    (void)arg;
    file_released++;
}

static void file_server_open(ritual_conn *conn)
{
    ASSERT_EQ(ritual_write(conn, "<", 1), 0);
    ASSERT_EQ(ritual_write_file(conn, file_fd, 0, FILE_SIZE, release_file, NULL), 0);
    ASSERT_EQ(ritual_write(conn, ">", 1), 0);
    ritual_conn_close(conn);
}

static size_t ignore(ritual_conn *conn, const char *bytes, size_t len)
{
    (void)conn;
    (void)bytes;
    return len;
}

static void *read_file_client(void *arg)
{
    (void)arg;
    int fd = raw_connect(path);
    char *buf = malloc(FILE_SIZE + 2);
    ASSERT(buf != NULL);
    recv_exact(fd, buf, FILE_SIZE + 2, 10000);
    ASSERT_EQ(buf[0], '<');
    ASSERT_EQ(buf[FILE_SIZE + 1], '>');
    ASSERT_EQ(pattern_mismatch(SEED, 0, buf + 1, FILE_SIZE), FILE_SIZE);
    expect_eof(fd, 10000);
    close(fd);
    free(buf);
    return NULL;
}

static void stop_when_done(ritual_conn *conn, int reason)
{
    ASSERT_EQ(reason, 0);
    ritual_loop_stop(ritual_conn_loop(conn));
}

static void write_file(void)
{
    make_paths();
    file_write_pattern_at(dir, "data", SEED, FILE_SIZE);
    char data[128];
    snprintf(data, sizeof data, "%s/data", dir);
    file_fd = SYSCHECK(open(data, O_RDONLY | O_CLOEXEC));
    ritual_loop *loop = lt_loop();
    ritual_error err;
    ritual_conn_callbacks cbs = {
        .on_open = file_server_open, .on_data = ignore, .on_close = stop_when_done};
    ASSERT(ritual_listen(loop, address, NULL, &cbs, &err) != NULL);
    pthread_t t = lt_thread(read_file_client, NULL);
    lt_run(loop, 20000);
    lt_join(t);
    ASSERT_EQ(file_released, 1);
    ritual_loop_free(loop);
    close(file_fd);
    remove_tree(dir);
}

/* ------------------------------------------------------ a server's workers */

#define CLIENTS 4
#define ROUNDS 100

static void *echo_client(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        int fd = raw_connect(path);
        char msg[32];
        int n = snprintf(msg, sizeof msg, "round %d", i);
        echo_roundtrip(fd, msg, (size_t)n, 10000);
        close(fd);
    }
    return NULL;
}

static _Atomic int accepted_by[2];

static void count_open(ritual_conn *conn)
{
    int w = ritual_loop_worker(ritual_conn_loop(conn));
    ASSERT(w == 0 || w == 1);
    accepted_by[w]++;
}

static void *run_server(void *srv)
{
    ASSERT_EQ(ritual_server_run(srv), 0);
    return NULL;
}

static void server_workers(void)
{
    make_paths();
    ritual_error err;
    ritual_server_options so = {.workers = 2, .accept_mode = RITUAL_ACCEPT_REUSEPORT};
    ritual_server *srv = ritual_server_new(&so, &err);
    if (!srv)
        FAIL("ritual_server_new: %s", err.message);
    ritual_conn_callbacks cbs = {.on_open = count_open, .on_data = echo};
    ritual_listener *l = ritual_server_listen(srv, address, NULL, &cbs, &err);
    if (!l)
        FAIL("ritual_server_listen %s: %s", address, err.message);
    char bound[160];
    ASSERT_EQ(ritual_listener_address(l, bound, sizeof bound), 0);
    ASSERT_EQ(strcmp(bound, address), 0);
    pthread_t runner = lt_thread(run_server, srv);
    pthread_t clients[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        clients[i] = lt_thread(echo_client, NULL);
    for (int i = 0; i < CLIENTS; i++)
        lt_join(clients[i]);
    ritual_server_shutdown(srv, 1000);
    lt_join(runner);
    ASSERT_EQ(accepted_by[0] + accepted_by[1], CLIENTS * ROUNDS);
    note("worker 0 accepted %d, worker 1 %d", accepted_by[0], accepted_by[1]);
    ritual_server_free(srv);
    ASSERT(!exists(path));
    remove_tree(dir);
}

TEST_CASES(CASE(echo_and_cred), CASE(abstract), CASE(stale_replaced), CASE(live_in_use),
           CASE(regular_file_kept), CASE(mode_and_owner), CASE(connect_refused),
           CASE(bad_addresses), CASE(write_file), CASE(server_workers))
