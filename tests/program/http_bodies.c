/* http_bodies: `ritual http` takes no request bodies, and holds none. A
 * GET or a 405'd POST with a small body (with the head, after it, chunked)
 * is answered and the connection reused, the body dropped; a
 * Content-Length over 1 MiB is 413 at once, without the client sending a
 * byte of it; a body that stalls gets 408 after --body-timeout; HEAD
 * errors carry no body. */
#include "support.h"

#include <stdio.h>
#include <string.h>

#define TIMEOUT 5000

static char root[64];
static struct server server;

static void serve(void)
{
    temp_dir_make(root, sizeof root);
    file_write_at(root, "hello.txt", "hello\n", 6);
    static const char *const args[] = {"--body-timeout", "1", NULL};
    http_server_start(ritual_program(), root, args, &server);
}

static void stop(void)
{
    server_expect_clean_exit(&server);
    remove_tree(root);
}

static void expect(struct http_client *c, int status, int head)
{
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, head, TIMEOUT), 1);
    HTTP_EXPECT_STATUS(&r, status);
    if (status == 200 && !head)
        ASSERT(r.body_len == 6 && memcmp(r.body, "hello\n", 6) == 0);
    http_response_free(&r);
}

/* Small bodies are dropped as they arrive; the connection goes on. */
static void small_bodies_dropped(void)
{
    serve();
    struct http_client *c = http_client_open(server.port);
    http_send(c, "GET /hello.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabcde"
                 "POST /hello.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234");
    expect(c, 200, 0);
    http_send(c, "56789GET /hello.txt HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n0\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(c, 405, 0);
    expect(c, 200, 0);
    expect(c, 200, 0);
    /* Half a megabyte, dropped too. */
    static char body[512 * 1024];
    memset(body, 'x', sizeof body);
    char head[128];
    snprintf(head, sizeof head, "GET /hello.txt HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n",
             sizeof body);
    http_send(c, head);
    send_all(c->fd, body, sizeof body);
    expect(c, 200, 0);
    http_client_close(c);
    note("bodies of 5 B to 512 KiB, with the head, after it and chunked: dropped, one connection");
    stop();
}

/* Over 1 MiB: refused before the client sends any of it. */
static void large_body_refused_at_once(void)
{
    serve();
    struct http_client *c = http_client_open(server.port);
    http_send(c, "POST /hello.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n");
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 0, TIMEOUT), 1);
    HTTP_EXPECT_STATUS(&r, 413);
    HTTP_EXPECT_FIELD(&r, "Connection", "close");
    http_response_free(&r);
    http_expect_eof(c, TIMEOUT);
    http_client_close(c);
    /* HEAD: the same head, no body. */
    c = http_client_open(server.port);
    http_send(c, "HEAD /hello.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n");
    expect(c, 413, 1);
    http_expect_eof(c, TIMEOUT);
    http_client_close(c);
    note("Content-Length 1 MiB + 1: 413 at once, then the end of the stream; HEAD without a body");
    stop();
}

/* A body that stops: 408, not a silent close. */
static void stalled_body_gets_408(void)
{
    serve();
    struct http_client *c = http_client_open(server.port);
    http_send(c, "GET /hello.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly this");
    uint64_t start = now_ms();
    struct http_response r;
    ASSERT_EQ(http_read_response(c, &r, 0, 5000), 1);
    HTTP_EXPECT_STATUS(&r, 408);
    HTTP_EXPECT_FIELD(&r, "Connection", "close");
    http_response_free(&r);
    http_expect_eof(c, TIMEOUT);
    http_client_close(c);
    note("a stalled body: 408 after %llu ms (--body-timeout 1)",
         (unsigned long long)(now_ms() - start));
    ASSERT_GE(now_ms() - start, 900);
    stop();
}

TEST_CASES(CASE(small_bodies_dropped), CASE(large_body_refused_at_once),
           CASE(stalled_body_gets_408))
