/* http_file_cache: what the open-file cache of `ritual http` holds stays
 * within the descriptors the process has, and follows the files on disk.
 *
 * Cases: crawl_under_low_nofile (RLIMIT_NOFILE 128, 200 distinct files
 * fetched once each, then a new connection served at once),
 * many_workers_leave_room (6 workers under 128: the caches together within
 * a quarter, and a batch of new keep-alive connections all served),
 * accept_sheds_idle (accept out of descriptors closes idle cached files
 * and goes on at once), nofile_raised (a soft limit under the hard one is
 * raised at start),
 * emfile_evicts_idle (the descriptors taken up by idle connections: each
 * new file still served, the cache closing its idle entries on EMFILE),
 * ctime_recheck (a file rewritten with its size and mtime kept is seen by
 * its ctime; chmod 000 gives 403, the server run by setpriv without
 * CAP_DAC_OVERRIDE if the test runs as root), deleted_released (a deleted
 * file's descriptor closed after the idle expiry). */
#include "support.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define TIMEOUT 5000
#define NOFILE 128
#define CRAWL_FILES 200

static char root[64];
static struct server server;

static void make_root(void)
{
    temp_dir_make(root, sizeof root);
}

static void stop_and_remove(void)
{
    server_expect_clean_exit(&server);
    remove_tree(root);
}

static void start(const char *const extra[], rlim_t nofile)
{
    const char *argv[16] = {"--root", root};
    int n = 2;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    server_start_cmd(ritual_program(), "http", "127.0.0.1:0", argv, nofile, &server);
}

static void make_files(int count)
{
    for (int i = 0; i < count; i++) {
        char name[32], body[32];
        snprintf(name, sizeof name, "f%03d.txt", i);
        int len = snprintf(body, sizeof body, "file %d\n", i);
        file_write_at(root, name, body, (size_t)len);
    }
}

/* GET /fNNN.txt on `c`, which must answer 200 with the file. */
static void get_file(struct http_client *c, int i)
{
    char req[128], body[32];
    snprintf(req, sizeof req, "GET /f%03d.txt HTTP/1.1\r\nHost: x\r\n\r\n", i);
    int len = snprintf(body, sizeof body, "file %d\n", i);
    http_send(c, req);
    struct http_response r;
    if (!http_read_response(c, &r, 0, TIMEOUT))
        FAIL("/f%03d.txt: the connection closed", i);
    if (r.status != 200 || r.body_len != (size_t)len || memcmp(r.body, body, (size_t)len) != 0)
        FAIL("/f%03d.txt: status %d, body \"%.*s\"", i, r.status, (int)r.body_len, r.body);
    http_response_free(&r);
}

/* The server's descriptors: how many, and how many lead to files under
 * the root (`deleted`: of those, how many were deleted). */
static int server_fds(int *under_root, int *deleted)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)server.pid);
    DIR *d = opendir(dir);
    if (!d)
        FAIL("opendir %s", dir);
    int n = 0, under = 0, gone = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        n++;
        char link[384], target[512];
        snprintf(link, sizeof link, "%s/%s", dir, de->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0)
            continue; /* closed meanwhile */
        target[len] = '\0';
        if (strncmp(target, root, strlen(root)) == 0 && target[strlen(root)] == '/') {
            under++;
            gone += strstr(target, " (deleted)") != NULL;
        }
    }
    closedir(d);
    if (under_root)
        *under_root = under;
    if (deleted)
        *deleted = gone;
    return n;
}

/* A crawler under a low descriptor limit: the cache takes at most a
 * quarter of it, so the server keeps accepting. */
static void crawl_under_low_nofile(void)
{
    make_files(CRAWL_FILES);
    start(NULL, NOFILE);
    struct http_client *c = http_client_open(server.port);
    for (int i = 0; i < CRAWL_FILES; i++)
        get_file(c, i);
    int under, total = server_fds(&under, NULL);
    /* A new connection, served at once: no EMFILE backoff on accept. */
    uint64_t start_ms = now_ms();
    struct http_client *fresh = http_client_open(server.port);
    get_file(fresh, 0);
    uint64_t took = now_ms() - start_ms;
    if (took > 1000)
        FAIL("a new connection after the crawl took %llu ms", (unsigned long long)took);
    ASSERT_LE(under, NOFILE / 4);
    http_client_close(fresh);
    http_client_close(c);
    note("%d files under RLIMIT_NOFILE %d: %d descriptors open (%d on files); a new "
         "connection served in %llu ms",
         CRAWL_FILES, NOFILE, total, under, (unsigned long long)took);
}

/* The server's stderr holds `needle`? */
static bool log_has(const char *needle)
{
    size_t len;
    char *text = file_read(server.stderr_path, &len);
    bool found = text && strstr(text, needle) != NULL;
    free(text);
    return found;
}

/* Many workers under a low limit: their caches together stay within a
 * quarter of it (a floor per worker once let 12 workers under 128 hold 73
 * descriptors), so the three quarters left take a batch of new keep-alive
 * connections, all held open at once and all served, none waiting on a
 * paused accept. Each file has a .gz sibling: an entry is two descriptors. */
static void many_workers_leave_room(void)
{
    enum { WORKERS = 6, CRAWLERS = 16, PER_CRAWLER = 24, MARGIN = 6 };
    make_files(CRAWLERS * PER_CRAWLER);
    for (int i = 0; i < CRAWLERS * PER_CRAWLER; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%03d.txt.gz", i);
        file_write_at(root, name, "gz", 2); /* never sent: no Accept-Encoding */
    }
    start((const char *const[]){"--workers", "6", NULL}, NOFILE);
    server_wait_log(&server, "RLIMIT_NOFILE 128", 1); /* soft and hard: not raised */
    int base = server_fds(NULL, NULL);
    /* Connections spread over the workers by the kernel's hash; each
     * fetches more distinct files than a worker's share holds. */
    struct http_client *crawler[CRAWLERS];
    for (int k = 0; k < CRAWLERS; k++) {
        crawler[k] = http_client_open(server.port);
        for (int i = 0; i < PER_CRAWLER; i++)
            get_file(crawler[k], k * PER_CRAWLER + i);
    }
    int under;
    server_fds(&under, NULL);
    ASSERT_LE(under, NOFILE / 4);
    /* What is left of the three quarters, less a margin for files being
     * opened: all of it taken by new connections at once. */
    int fresh_n = NOFILE - base - CRAWLERS - NOFILE / 4 - MARGIN;
    ASSERT_GT(fresh_n, 20);
    struct http_client **fresh = calloc((size_t)fresh_n, sizeof *fresh);
    ASSERT(fresh != NULL);
    for (int i = 0; i < fresh_n; i++)
        fresh[i] = http_client_open(server.port);
    uint64_t start_ms = now_ms();
    for (int i = 0; i < fresh_n; i++)
        get_file(fresh[i], i % (CRAWLERS * PER_CRAWLER));
    uint64_t took = now_ms() - start_ms;
    int total = server_fds(NULL, NULL);
    if (log_has("pausing accepts"))
        FAIL("accept ran out of descriptors (%d open, %d on files)", total, under);
    for (int i = 0; i < fresh_n; i++)
        http_client_close(fresh[i]);
    free(fresh);
    for (int k = 0; k < CRAWLERS; k++)
        http_client_close(crawler[k]);
    note("%d workers under RLIMIT_NOFILE %d: %d descriptors on files after %d files crawled; "
         "%d new connections served in %llu ms (%d descriptors open)",
         WORKERS, NOFILE, under, CRAWLERS * PER_CRAWLER, fresh_n, (unsigned long long)took, total);
}

/* Idle cached files and connections take up every descriptor: a new
 * connection's accept fails with EMFILE, the worker closes idle entries
 * (ritual_loop_on_fds_short) and accepts again at once, rather than pause
 * until a connection leaves. The last few holders themselves arrive past
 * the limit, so that a miscount of the server's own descriptors cannot
 * leave room the test did not mean. */
static void accept_sheds_idle(void)
{
    enum { FILES = NOFILE / 4, OVER = 3 };
    make_files(FILES);
    start((const char *const[]){"--workers", "1", NULL}, NOFILE);
    struct http_client *first = http_client_open(server.port);
    for (int i = 0; i < FILES; i++)
        get_file(first, i);
    int under, base = server_fds(&under, NULL);
    ASSERT_GT(under, FILES / 2); /* the cache is full of idle entries */
    int holders = NOFILE - base + OVER;
    ASSERT_GT(holders, 10);
    struct http_client **held = calloc((size_t)holders, sizeof *held);
    ASSERT(held != NULL);
    for (int i = 0; i < holders; i++)
        held[i] = http_client_open(server.port);
    uint64_t start_ms = now_ms();
    for (int i = 0; i < holders; i++) /* every one accepted and served */
        get_file(held[i], i % FILES);
    uint64_t took = now_ms() - start_ms;
    int after;
    server_fds(&after, NULL);
    if (log_has("pausing accepts"))
        FAIL("accept paused with %d idle cached files open", under);
    for (int i = 0; i < holders; i++)
        http_client_close(held[i]);
    free(held);
    http_client_close(first);
    note("%d connections past %d descriptors (%d on cached files): all served in %llu ms, "
         "%d cached files left",
         holders, base, under, (unsigned long long)took, after);
}

/* The soft limit below the hard one: the server raises it to the hard
 * one (its first log line says so), `ritual http` and `ritual echo` both. */
static void nofile_raised(void)
{
    enum { SOFT = 64 };
    struct rlimit mine;
    SYSCHECK(getrlimit(RLIMIT_NOFILE, &mine));
    if (mine.rlim_max <= SOFT) {
        note("hard RLIMIT_NOFILE %llu: nothing to raise to", (unsigned long long)mine.rlim_max);
        return;
    }
    static const char *const cmds[] = {"http", "echo"};
    for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++) {
        struct rlimit low = {.rlim_cur = SOFT, .rlim_max = mine.rlim_max};
        SYSCHECK(setrlimit(RLIMIT_NOFILE, &low)); /* inherited by the server */
        if (k == 0)
            start((const char *const[]){"--workers", "1", NULL}, 0);
        else
            server_start_cmd(ritual_program(), "echo", "127.0.0.1:0",
                             (const char *const[]){"--workers", "1", NULL}, 0, &server);
        SYSCHECK(setrlimit(RLIMIT_NOFILE, &mine));
        char want[64], path[64];
        if (mine.rlim_max == RLIM_INFINITY)
            snprintf(want, sizeof want, "RLIMIT_NOFILE unlimited");
        else
            snprintf(want, sizeof want, "RLIMIT_NOFILE %llu", (unsigned long long)mine.rlim_max);
        server_wait_log(&server, want, 1);
        snprintf(path, sizeof path, "/proc/%d/limits", (int)server.pid);
        size_t len;
        char *limits = file_read(path, &len);
        ASSERT(limits != NULL);
        const char *line = strstr(limits, "Max open files");
        ASSERT(line != NULL);
        unsigned long long soft = 0, hard = 0;
        ASSERT_EQ(sscanf(line, "Max open files %llu %llu", &soft, &hard), 2);
        ASSERT_EQ(soft, hard);
        free(limits);
        note("ritual %s: soft RLIMIT_NOFILE %d raised to the hard limit, %llu", cmds[k], SOFT,
             hard);
        if (k == 0)
            server_expect_clean_exit(&server);
    }
}

/* Connections take up every descriptor but a few: a file not in the cache
 * is still opened, the cache closing idle entries when open says EMFILE. */
static void emfile_evicts_idle(void)
{
    enum { FILES = 60, SPARE = 3 };
    make_files(FILES);
    start((const char *const[]){"--workers", "1", NULL}, NOFILE);
    struct http_client *first = http_client_open(server.port);
    get_file(first, 0);
    int base = server_fds(NULL, NULL);
    int holders = NOFILE - base - SPARE;
    ASSERT_GT(holders, 10);
    struct http_client **held = calloc((size_t)holders, sizeof *held);
    ASSERT(held != NULL);
    for (int i = 0; i < holders; i++)
        held[i] = http_client_open(server.port);
    /* Until the server has accepted them all. */
    uint64_t deadline = now_ms() + TIMEOUT;
    while (server_fds(NULL, NULL) < base + holders) {
        if (now_ms() > deadline)
            FAIL("the server holds %d descriptors, expected %d", server_fds(NULL, NULL),
                 base + holders);
        sleep_ms(5);
    }
    for (int i = 1; i < FILES; i++)
        get_file(first, i);
    int total = server_fds(NULL, NULL);
    ASSERT_LE(total, NOFILE);
    for (int i = 0; i < holders; i++)
        get_file(held[i], i % FILES); /* every connection still served */
    for (int i = 0; i < holders; i++)
        http_client_close(held[i]);
    free(held);
    struct http_client *fresh = http_client_open(server.port);
    get_file(fresh, FILES - 1);
    http_client_close(fresh);
    http_client_close(first);
    note("%d idle connections, %d free descriptors: %d new files served (%d fds open)", holders,
         SPARE, FILES - 1, total);
}

static void set_mtime(const char *path, const struct timespec *mtime)
{
    struct timespec times[2] = {{.tv_nsec = UTIME_OMIT}, *mtime};
    SYSCHECK(utimensat(AT_FDCWD, path, times, 0));
}

/* Polls /rel until it answers `status` (and `body`, if not NULL), within
 * 5 s; returns how long it took. */
static uint64_t wait_for(const char *rel, int status, const char *body)
{
    char req[128];
    snprintf(req, sizeof req, "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", rel);
    uint64_t start_ms = now_ms(), deadline = start_ms + 5000;
    for (;;) {
        struct http_response r;
        http_exchange(server.port, req, &r, TIMEOUT);
        bool done = r.status == status && (!body || strcmp(r.body, body) == 0);
        int got = r.status;
        http_response_free(&r);
        if (done)
            return now_ms() - start_ms;
        if (now_ms() > deadline)
            FAIL("/%s: still %d after 5 s, expected %d", rel, got, status);
        sleep_ms(20);
    }
}

/* Starts the server so that file permissions bind it: as root, through
 * setpriv without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH. Returns 0 if
 * it cannot be (root without setpriv): the server then reads anything. */
static int start_bound_by_permissions(const char *const extra[])
{
    char setpriv[256];
    if (geteuid() != 0) {
        start(extra, 0);
        return 1;
    }
    if (!find_tool("setpriv", setpriv, sizeof setpriv)) {
        start(extra, 0);
        return 0;
    }
    const char *argv[24] = {setpriv,       "--bounding-set=-dac_override,-dac_read_search",
                            "--",          ritual_program(),
                            "http",        "--listen",
                            "127.0.0.1:0", "--root",
                            root};
    int n = 9;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    server_start_argv(argv, 0, &server);
    return 1;
}

/* A change that keeps the inode, size and mtime shows only in the ctime:
 * the content written again under the same mtime, or a chmod. */
static void ctime_recheck(void)
{
    file_write_at(root, "same.txt", "aaaa\n", 5);
    char path[256];
    snprintf(path, sizeof path, "%s/same.txt", root);
    struct stat st;
    SYSCHECK(stat(path, &st));
    int bound = start_bound_by_permissions(
        (const char *const[]){"--open-file-cache-valid", "0.2", "--workers", "1", NULL});
    wait_for("same.txt", 200, "aaaa\n");
    int fd = SYSCHECK(open(path, O_WRONLY | O_CLOEXEC));
    ASSERT_EQ(pwrite(fd, "bbbb\n", 5, 0), 5);
    close(fd);
    set_mtime(path, &st.st_mtim);
    struct stat now;
    SYSCHECK(stat(path, &now));
    ASSERT(now.st_ino == st.st_ino && now.st_size == st.st_size &&
           now.st_mtim.tv_sec == st.st_mtim.tv_sec && now.st_mtim.tv_nsec == st.st_mtim.tv_nsec);
    uint64_t took = wait_for("same.txt", 200, "bbbb\n");
    note("rewritten with its size and mtime kept: the new bytes after %llu ms",
         (unsigned long long)took);

    if (!bound) {
        note("running as root without setpriv: chmod 000 cannot be tested (root reads it)");
        return;
    }
    SYSCHECK(chmod(path, 0));
    took = wait_for("same.txt", 403, NULL);
    note("chmod 000: 403 after %llu ms%s", (unsigned long long)took,
         geteuid() == 0 ? " (root without CAP_DAC_OVERRIDE, by setpriv)" : "");
}

/* A deleted file's descriptor is closed once the file has not been asked
 * for during --open-file-cache-inactive: its space comes back. */
static void deleted_released(void)
{
    static char big[100000]; /* sent with sendfile, not from memory */
    memset(big, 'x', sizeof big);
    file_write_at(root, "big.bin", big, sizeof big);
    file_write_at(root, "small.txt", "small\n", 6);
    start((const char *const[]){"--open-file-cache-inactive", "1", "--workers", "1", NULL}, 0);
    wait_for("big.bin", 200, NULL);
    wait_for("small.txt", 200, "small\n");
    int under;
    server_fds(&under, NULL);
    ASSERT_EQ(under, 2);
    char path[256];
    snprintf(path, sizeof path, "%s/big.bin", root);
    SYSCHECK(unlink(path));
    snprintf(path, sizeof path, "%s/small.txt", root);
    SYSCHECK(unlink(path));
    uint64_t start_ms = now_ms(), deadline = start_ms + 10000;
    int deleted;
    while (server_fds(&under, &deleted), under > 0) {
        if (now_ms() > deadline)
            FAIL("%d descriptors of deleted files still open 10 s after the unlink", deleted);
        sleep_ms(20);
    }
    uint64_t took = now_ms() - start_ms;
    /* The sweep starts again with the next file. */
    file_write_at(root, "next.txt", "next\n", 5);
    wait_for("next.txt", 200, "next\n");
    note("descriptors of two deleted files closed %llu ms after the unlink "
         "(--open-file-cache-inactive 1)",
         (unsigned long long)took);
}

TEST_CASES_WITH(make_root, stop_and_remove, CASE(crawl_under_low_nofile),
                CASE(many_workers_leave_room), CASE(accept_sheds_idle), CASE(nofile_raised),
                CASE(emfile_evicts_idle), CASE(ctime_recheck), CASE(deleted_released))
