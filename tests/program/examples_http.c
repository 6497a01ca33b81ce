/* examples/sse_clock.c and examples/upload.c as their users see them:
 *   - sse_clock: two events a second apart on a stream, a HEAD that gets
 *     the head alone, and SIGTERM ending the stream with its last chunk
 *     and the server with status 0;
 *   - upload: a 3 MB PUT and a chunked POST stored byte-exact and answered
 *     201 with the count, a GET refused with 405, a name of NAME_MAX
 *     bytes stored, a client that leaves half-way leaving no file, one
 *     that half-closes after the whole body having it stored, two uploads
 *     to one name at once leaving the last one whole, and a clean exit. */
#include "support.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define UPLOAD (3u * 1000 * 1000 + 7)

static void sse_stream_then_sigterm(void)
{
    const char *argv[] = {example_program("sse_clock"), "127.0.0.1:0", NULL};
    struct server s;
    server_start_argv(argv, 0, &s);

    struct http_response r;
    http_exchange(s.port, "HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &r, 5000);
    HTTP_EXPECT_STATUS(&r, 200);
    HTTP_EXPECT_FIELD(&r, "Content-Type", "text/event-stream");
    HTTP_EXPECT_FIELD(&r, "Transfer-Encoding", NULL);
    http_response_free(&r);

    struct http_client *c = http_client_open(s.port);
    http_send(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    ASSERT_EQ(http_read_head(c, &r, 5000), 1);
    HTTP_EXPECT_STATUS(&r, 200);
    HTTP_EXPECT_FIELD(&r, "Transfer-Encoding", "chunked");
    HTTP_EXPECT_FIELD(&r, "Cache-Control", "no-cache");
    http_response_free(&r);
    /* Two events (the first at once, the next a second later). */
    static char text[8192];
    size_t len = 0;
    uint64_t start = now_ms();
    while (len < sizeof text - 1) {
        len += http_client_recv(c, text + len, sizeof text - 1 - len, 5000);
        text[len] = '\0';
        const char *first = strstr(text, "data: ");
        if (first && strstr(first + 1, "data: ") && strstr(strstr(first + 1, "data: "), "\n\n"))
            break;
    }
    note("two events in %llu ms", (unsigned long long)(now_ms() - start));
    ASSERT_GE(now_ms() - start, 500);

    /* SIGTERM: the stream ends properly, then the connection. */
    ASSERT_EQ(kill(s.pid, SIGTERM), 0);
    for (;;) {
        size_t n = http_client_recv(c, text + len, sizeof text - 1 - len, 5000);
        if (n == 0)
            break;
        len += n;
        ASSERT_LT(len, sizeof text - 1);
    }
    text[len] = '\0';
    ASSERT(len >= 5 && memcmp(text + len - 5, "0\r\n\r\n", 5) == 0);
    http_client_close(c);
    server_expect_clean_exit(&s);
}

/* Sends bytes [from, to) of pattern `seed` as they are. */
static void send_pattern(struct http_client *c, uint64_t seed, size_t from, size_t to)
{
    static char buf[50000];
    for (size_t off = from; off < to;) {
        size_t n = to - off < sizeof buf ? to - off : sizeof buf;
        pattern_fill(seed, off, buf, n);
        send_all(c->fd, buf, n);
        off += n;
    }
}

/* Sends `len` bytes of pattern 7 to PUT or POST /name; chunked if asked. */
static void send_upload(struct http_client *c, const char *method, const char *name, size_t len,
                        int chunked)
{
    char head[512]; /* room for a name of NAME_MAX bytes */
    if (chunked)
        snprintf(head, sizeof head,
                 "%s /%s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", method, name);
    else
        snprintf(head, sizeof head, "%s /%s HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n",
                 method, name, len);
    http_send(c, head);
    static char buf[50000];
    for (size_t off = 0; off < len;) {
        size_t n = len - off < sizeof buf ? len - off : sizeof buf;
        pattern_fill(7, off, buf, n);
        if (chunked) {
            char line[32];
            int k = snprintf(line, sizeof line, "%zx\r\n", n);
            send_all(c->fd, line, (size_t)k);
        }
        send_all(c->fd, buf, n);
        if (chunked)
            send_all(c->fd, "\r\n", 2);
        off += n;
    }
    if (chunked)
        send_all(c->fd, "0\r\n\r\n", 5);
}

static void expect_stored_seed(const char *dir, const char *name, uint64_t seed, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t got;
    char *data = file_read(path, &got);
    ASSERT(data != NULL);
    ASSERT_EQ(got, len);
    ASSERT_EQ(pattern_mismatch(seed, 0, data, got), got);
    free(data);
}

static void expect_stored(const char *dir, const char *name, size_t len)
{
    expect_stored_seed(dir, name, 7, len);
}

/* Entries of `dir` but . and .., hidden ones included. */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ASSERT(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* Sends a PUT head with Expect: 100-continue and waits for the 100: the
 * handler has run (and opened its file). */
static struct http_client *begin_upload(int port, const char *name, size_t len)
{
    struct http_client *c = http_client_open(port);
    char head[256];
    snprintf(head, sizeof head,
             "PUT /%s HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n"
             "Expect: 100-continue\r\n\r\n",
             name, len);
    http_send(c, head);
    struct http_response r;
    ASSERT_EQ(http_read_head(c, &r, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 100);
    http_response_free(&r);
    return c;
}

static void upload_files(void)
{
    char dir[256];
    temp_dir_make(dir, sizeof dir);
    const char *argv[] = {example_program("upload"), dir, "127.0.0.1:0", NULL};
    struct server s;
    server_start_argv(argv, 0, &s);

    struct http_client *c = http_client_open(s.port);
    send_upload(c, "PUT", "one.bin", UPLOAD, 0);
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 201);
    char want[64];
    snprintf(want, sizeof want, "%u bytes\n", UPLOAD);
    ASSERT(r.body_len == strlen(want) && memcmp(r.body, want, r.body_len) == 0);
    http_response_free(&r);
    send_upload(c, "POST", "two.bin", UPLOAD / 3, 1); /* same connection, chunked */
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 201);
    http_response_free(&r);
    http_send(c, "GET /one.bin HTTP/1.1\r\nHost: a\r\n\r\n");
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 405);
    http_response_free(&r);
    http_client_close(c);
    expect_stored(dir, "one.bin", UPLOAD);
    expect_stored(dir, "two.bin", UPLOAD / 3);

    /* The longest name a file may have: its temporary name is no longer. */
    char longest[256];
    memset(longest, 'n', 255);
    longest[255] = '\0';
    c = http_client_open(s.port);
    send_upload(c, "PUT", longest, 12345, 0);
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 201);
    http_response_free(&r);
    http_client_close(c);
    expect_stored(dir, longest, 12345);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, longest);
    ASSERT_EQ(unlink(path), 0);

    /* Half a body, then gone: no file, not even a temporary one, once the
     * server says it saw the client go. */
    c = begin_upload(s.port, "half.bin", 100000);
    send_pattern(c, 7, 0, 50000);
    http_client_close(c);
    server_wait_log(&s, "upload: half.bin: closed before the whole body", 1);
    snprintf(path, sizeof path, "%s/half.bin", dir);
    struct stat st;
    ASSERT(stat(path, &st) < 0);
    ASSERT_EQ(dir_entries(dir), 2); /* one.bin, two.bin */
    note("a 3 MB PUT and a 1 MB chunked POST stored byte-exact; half an upload left nothing");

    /* The whole body, then a half-close (nc -N): stored, whether the 201
     * came before the FIN was seen or the server completed the file as
     * the connection closed. */
    c = http_client_open(s.port);
    send_upload(c, "PUT", "fin.bin", UPLOAD, 0);
    SYSCHECK(shutdown(c->fd, SHUT_WR));
    int answered = http_read_response(c, &r, 0, 10000);
    if (answered) {
        HTTP_EXPECT_STATUS(&r, 201);
        http_response_free(&r);
    } else {
        server_wait_log(&s, "upload: fin.bin: stored, the client gone", 1);
    }
    http_client_close(c);
    expect_stored(dir, "fin.bin", UPLOAD);
    snprintf(path, sizeof path, "%s/fin.bin", dir);
    ASSERT_EQ(unlink(path), 0);
    note("the whole body then a half-close: stored (%s)",
         answered ? "answered 201" : "completed on the close");

    /* Two uploads to one name at once: the slow one began first, the
     * fast one completes in between; each has a file of its own, and the
     * last to complete is what stays, whole. */
    size_t slow_len = 700001, fast_len = UPLOAD / 3;
    struct http_client *slow = begin_upload(s.port, "same.bin", slow_len);
    send_pattern(slow, 9, 0, slow_len / 2);
    c = http_client_open(s.port);
    send_upload(c, "PUT", "same.bin", fast_len, 0);
    ASSERT_EQ(http_read_response(c, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 201);
    http_response_free(&r);
    http_client_close(c);
    expect_stored(dir, "same.bin", fast_len);
    send_pattern(slow, 9, slow_len / 2, slow_len);
    ASSERT_EQ(http_read_response(slow, &r, 0, 10000), 1);
    HTTP_EXPECT_STATUS(&r, 201);
    http_response_free(&r);
    http_client_close(slow);
    expect_stored_seed(dir, "same.bin", 9, slow_len);
    ASSERT_EQ(dir_entries(dir), 3); /* one.bin, two.bin, same.bin: no temporary left */
    note("two uploads to one name at once: both 201, the last complete one stored whole");
    server_expect_clean_exit(&s);
    remove_tree(dir);
}

TEST_CASES(CASE(sse_stream_then_sigterm), CASE(upload_files))
