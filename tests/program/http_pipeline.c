/* http_pipeline: connections and framing. Many requests on one keep-alive
 * connection; 16 requests pipelined in one send, and 64 with 100 KB files
 * among them, all answered correctly and in order (also when the requests
 * arrive in odd fragments); HTTP/1.0 closes unless it asks for keep-alive;
 * Connection: close closes and nothing pipelined behind it is answered;
 * --max-requests 3 closes after the third response, which says so;
 * Expect: 100-continue gets "100 Continue" before the body is sent; request
 * bodies (Content-Length or chunked) are consumed, not taken for the next
 * request; malformed requests get their exact status (400, 413, 414, 431,
 * 501, 505) and the connection closes. */
#include "support.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define TIMEOUT 5000
#define SMALL_FILES 16
#define BIG_SIZE 100000
#define BIG_SEED 21

static char root[64];
static int port;
static struct server server;
static char small_body[SMALL_FILES][64];

static void make_tree(void)
{
    temp_dir_make(root, sizeof root);
    for (int i = 0; i < SMALL_FILES; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%02d.txt", i);
        /* Lengths differ, so a framing slip cannot go unnoticed. */
        int n = snprintf(small_body[i], sizeof small_body[i], "file %02d %.*s\n", i, i * 3,
                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
        file_write_at(root, name, small_body[i], (size_t)n);
    }
    file_write_pattern_at(root, "big.bin", BIG_SEED, BIG_SIZE);
}

static void remove_root_after_server(void)
{
    server_expect_clean_exit(&server);
    remove_tree(root);
}

/* Starts the case's server on the tree (extra_args NULL-terminated, or NULL). */
static void serve(const char *const extra_args[])
{
    http_server_start(ritual_program(), root, extra_args, &server);
    port = server.port;
}

static void expect_small(const struct http_response *r, int i)
{
    HTTP_EXPECT_STATUS(r, 200);
    if (r->body_len != strlen(small_body[i]) || memcmp(r->body, small_body[i], r->body_len) != 0)
        FAIL("expected the body of f%02d.txt, got \"%.*s\"", i, (int)r->body_len, r->body);
}

static void expect_big(const struct http_response *r)
{
    HTTP_EXPECT_STATUS(r, 200);
    ASSERT_EQ(r->body_len, BIG_SIZE);
    ASSERT_EQ(pattern_mismatch(BIG_SEED, 0, r->body, BIG_SIZE), BIG_SIZE);
}

static void read_one(struct http_client *c, struct http_response *r, int head)
{
    if (!http_read_response(c, r, head, TIMEOUT))
        FAIL("the connection closed instead of answering");
}

static void keep_alive(void)
{
    serve(NULL);
    struct http_client *c = http_client_open(port);
    for (int i = 0; i < 40; i++) {
        char req[128];
        snprintf(req, sizeof req, "GET /f%02d.txt HTTP/1.1\r\nHost: x\r\n\r\n", i % SMALL_FILES);
        http_send(c, req);
        struct http_response r;
        read_one(c, &r, 0);
        expect_small(&r, i % SMALL_FILES);
        HTTP_EXPECT_FIELD(&r, "Connection", NULL);
        http_response_free(&r);
    }
    http_client_close(c);
    note("40 requests one after another on one connection");
}

/* Builds `n` pipelined requests: file i % 16, or big.bin every `big_every`
 * (0: never), a HEAD every `head_every` (0: never). */
struct pipeline {
    char text[16384];
    size_t len;
    int kind[128]; /* file index, or -1 for big.bin */
    int head[128];
    int n;
};

static void pipeline_build(struct pipeline *p, int n, int big_every, int head_every)
{
    p->len = 0;
    p->n = n;
    for (int i = 0; i < n; i++) {
        p->kind[i] = big_every && i % big_every == big_every - 1 ? -1 : i % SMALL_FILES;
        p->head[i] = head_every && i % head_every == head_every - 1;
        char target[32];
        if (p->kind[i] < 0)
            snprintf(target, sizeof target, "/big.bin");
        else
            snprintf(target, sizeof target, "/f%02d.txt", p->kind[i]);
        p->len += (size_t)snprintf(p->text + p->len, sizeof p->text - p->len,
                                   "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", p->head[i] ? "HEAD" : "GET",
                                   target);
        ASSERT_LT(p->len, sizeof p->text);
    }
}

static void pipeline_check(struct http_client *c, const struct pipeline *p)
{
    for (int i = 0; i < p->n; i++) {
        struct http_response r;
        read_one(c, &r, p->head[i]);
        if (p->head[i]) { /* no body: the next response would trip on one */
            HTTP_EXPECT_STATUS(&r, 200);
            ASSERT_EQ(r.content_length, p->kind[i] < 0 ? BIG_SIZE : strlen(small_body[p->kind[i]]));
        } else if (p->kind[i] < 0) {
            expect_big(&r);
        } else {
            expect_small(&r, p->kind[i]);
        }
        http_response_free(&r);
    }
}

static void pipelining(void)
{
    serve(NULL);
    static struct pipeline p;
    struct http_client *c = http_client_open(port);

    pipeline_build(&p, 16, 0, 0);
    send_all(c->fd, p.text, p.len);
    pipeline_check(c, &p);
    note("16 requests in one send: 16 responses in order");

    pipeline_build(&p, 16, 4, 0);
    send_all(c->fd, p.text, p.len);
    pipeline_check(c, &p);
    note("16 in one send, every 4th the 100 KB file: in order, byte-exact");

    /* 64 requests with 16 big files (1.6 MB of answers): more than the
     * server queues at once, so it must stop and resume mid-pipeline. */
    pipeline_build(&p, 64, 4, 7);
    send_all(c->fd, p.text, p.len);
    pipeline_check(c, &p);
    note("64 in one send, with 100 KB files and HEADs mixed in: in order");

    /* The same 64 in fragments of 1 to 40 bytes: splits anywhere. */
    struct prng rng;
    prng_seed(&rng, 5);
    for (size_t off = 0; off < p.len;) {
        size_t k = (size_t)prng_range(&rng, 1, 40);
        if (k > p.len - off)
            k = p.len - off;
        send_all(c->fd, p.text + off, k);
        off += k;
    }
    pipeline_check(c, &p);
    note("the 64 again, sent in fragments of 1-40 bytes: the same answers");
    http_client_close(c);
}

static void connection_close(void)
{
    serve(NULL);
    /* HTTP/1.0: close after the response unless asked to keep alive. */
    struct http_client *c = http_client_open(port);
    http_send(c, "GET /f01.txt HTTP/1.0\r\n\r\n");
    struct http_response r;
    read_one(c, &r, 0);
    expect_small(&r, 1);
    HTTP_EXPECT_FIELD(&r, "Connection", "close");
    http_response_free(&r);
    http_expect_eof(c, TIMEOUT);
    http_client_close(c);

    c = http_client_open(port);
    for (int i = 0; i < 3; i++) {
        http_send(c, "GET /f02.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        read_one(c, &r, 0);
        expect_small(&r, 2);
        HTTP_EXPECT_FIELD(&r, "Connection", "keep-alive");
        http_response_free(&r);
    }
    http_send(c, "GET /f03.txt HTTP/1.0\r\n\r\n");
    read_one(c, &r, 0);
    expect_small(&r, 3);
    HTTP_EXPECT_FIELD(&r, "Connection", "close");
    http_response_free(&r);
    http_expect_eof(c, TIMEOUT);
    http_client_close(c);
    note("HTTP/1.0: closed after the response; kept open with Connection: keep-alive");

    /* Connection: close (any case, in a list), and nothing after it. */
    static const char *const close_values[] = {"close", "Close", "keep-alive, close", "CLOSE"};
    for (size_t i = 0; i < sizeof close_values / sizeof close_values[0]; i++) {
        char req[256];
        snprintf(req, sizeof req,
                 "GET /f04.txt HTTP/1.1\r\nHost: x\r\nConnection: %s\r\n\r\n"
                 "GET /f05.txt HTTP/1.1\r\nHost: x\r\n\r\n",
                 close_values[i]);
        c = http_client_open(port);
        http_send(c, req);
        read_one(c, &r, 0);
        expect_small(&r, 4);
        HTTP_EXPECT_FIELD(&r, "Connection", "close");
        http_response_free(&r);
        http_expect_eof(c, TIMEOUT); /* the pipelined f05 is not answered */
        http_client_close(c);
    }
    note("Connection: close: closed after that response, the next one unanswered");

    /* A client that half-closes after its requests still gets every answer. */
    c = http_client_open(port);
    http_send(c,
              "GET /f06.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    SYSCHECK(shutdown(c->fd, SHUT_WR));
    read_one(c, &r, 0);
    expect_small(&r, 6);
    http_response_free(&r);
    read_one(c, &r, 0);
    expect_big(&r);
    http_response_free(&r);
    http_expect_eof(c, TIMEOUT);
    http_client_close(c);
    note("requests then a half-close: both answered, then the server closes");
}

static void request_bodies(void)
{
    serve(NULL);
    struct http_client *c = http_client_open(port);
    struct http_response r;

    /* Expect: 100-continue: the interim response first, then the answer. */
    http_send(c, "POST /f00.txt HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                 "Content-Length: 11\r\n\r\n");
    read_one(c, &r, 0);
    HTTP_EXPECT_STATUS(&r, 100);
    ASSERT_EQ(r.num_fields, 0);
    http_response_free(&r);
    ASSERT_EQ(c->len, 0); /* nothing else before the body is sent */
    http_send(c, "hello world");
    read_one(c, &r, 0);
    HTTP_EXPECT_STATUS(&r, 405);
    HTTP_EXPECT_FIELD(&r, "Allow", "GET, HEAD");
    http_response_free(&r);
    http_send(c, "GET /f07.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    read_one(c, &r, 0);
    expect_small(&r, 7);
    http_response_free(&r);
    note("Expect: 100-continue: 100 Continue, the body, then 405; the connection goes on");

    /* Chunked, in pieces, with an extension and a trailer. */
    http_send(c, "POST /f00.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    http_send(c, "5\r\nhello\r\n");
    http_send(c, "6;ext=1\r\n world\r\n");
    http_send(c, "0\r\nTrailer-Field: yes\r\n\r\n");
    read_one(c, &r, 0);
    HTTP_EXPECT_STATUS(&r, 405);
    http_response_free(&r);
    /* And whole, pipelined with a GET whose answer must follow. */
    http_send(c, "PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nGET\r\n1f\r\n /f01.txt HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n"
                 "GET /f08.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    read_one(c, &r, 0);
    HTTP_EXPECT_STATUS(&r, 405);
    http_response_free(&r);
    read_one(c, &r, 0);
    expect_small(&r, 8); /* not f01: the body was a body */
    http_response_free(&r);
    /* Content-Length body in pieces, holding what looks like a request. */
    http_send(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 34\r\n\r\nGET /f01.txt HTT");
    http_send(c, "P/1.1\r\nHost: x\r\n\r\n");
    http_send(c, "GET /f09.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    read_one(c, &r, 0);
    HTTP_EXPECT_STATUS(&r, 405);
    http_response_free(&r);
    read_one(c, &r, 0);
    expect_small(&r, 9);
    http_response_free(&r);
    http_client_close(c);
    note("chunked and Content-Length bodies consumed as bodies: 405, then the next request");
}

/* Sends `raw` on a new connection and expects `status`, Connection: close,
 * then the server's FIN. */
static void expect_rejected(const char *what, const char *raw, size_t len, int status)
{
    struct http_client *c = http_client_open(port);
    send_all(c->fd, raw, len);
    struct http_response r;
    if (!http_read_response(c, &r, 0, TIMEOUT))
        FAIL("%s: closed without a response", what);
    if (r.status != status)
        FAIL("%s: status %d, expected %d", what, r.status, status);
    HTTP_EXPECT_FIELD(&r, "Connection", "close");
    http_response_free(&r);
    http_expect_eof(c, TIMEOUT);
    http_client_close(c);
}

static void malformed_requests(void)
{
    serve(NULL);
    static const struct {
        const char *what, *raw;
        int status;
    } cases[] = {
        {"Content-Length with Transfer-Encoding",
         "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
         400},
        {"two Content-Lengths",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
         "Content-Length: 2\r\n\r\nab",
         400},
        {"Content-Length list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\nab",
         400},
        {"negative Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
         400},
        {"Content-Length overflow",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400},
        {"no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
        {"two Hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400},
        {"space before the colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
        {"obsolete line folding", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400},
        {"bare LF", "GET / HTTP/1.1\nHost: x\n\n", 400},
        {"bare CR", "GET / HTTP/1.1\rHost: x\r\n\r\n", 400},
        {"no version", "GET /\r\n\r\n", 400},
        {"two spaces", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400},
        {"control byte in a header", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01z\r\n\r\n", 400},
        {"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
         400},
        {"chunk size overflow",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "fffffffffffffffffffff\r\n",
         400},
        {"chunked not last",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
        {"Transfer-Encoding in HTTP/1.0",
         "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
        {"unknown transfer coding",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
        {"two Transfer-Encodings, the last not chunked",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
         "Transfer-Encoding: identity\r\n\r\n0\r\n\r\n",
         400},
        {"Transfer-Encoding: xchunked",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400},
        {"space before the colon of Transfer-Encoding",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
        {"vertical tab before a header name",
         "POST / HTTP/1.1\r\nHost: x\r\n\x0bTransfer-Encoding: chunked\r\n\r\n", 400},
        {"Content-Length: +3", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400},
        {"chunk size 0x3",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n", 400},
        {"chunk longer than its size",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", 400},
        {"chunks ended by bare LF",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n", 400},
        {"a malformed trailer",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer\r\n"
         "\r\nGET /f00.txt HTTP/1.1\r\nHost: x\r\n\r\n",
         400},
        {"a tab in the target", "GET /\tx HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
        {"HTTP/0.9 as a version", "GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505},
        {"a body too large", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n", 413},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_rejected(cases[i].what, cases[i].raw, strlen(cases[i].raw), cases[i].status);
    note("%zu malformed requests: their exact status, Connection: close, then the FIN",
         sizeof cases / sizeof cases[0]);

    /* A request line over 8 KiB: 414; 8 KiB exactly is fine. */
    size_t cap = 40000;
    char *raw = malloc(cap);
    ASSERT(raw != NULL);
    size_t n = (size_t)snprintf(raw, cap, "GET /");
    memset(raw + n, 'a', 9000);
    n += 9000;
    n += (size_t)snprintf(raw + n, cap - n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_rejected("a 9 KB request line", raw, n, 414);
    n = (size_t)snprintf(raw, cap, "GET /f00.txt?");
    size_t line = 8192 - strlen("GET /f00.txt? HTTP/1.1");
    memset(raw + n, 'a', line);
    n += line;
    n += (size_t)snprintf(raw + n, cap - n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    struct http_response r;
    http_exchange(port, raw, &r, TIMEOUT); /* NUL-terminated by snprintf */
    expect_small(&r, 0);                   /* 8192 bytes exactly: allowed */
    http_response_free(&r);

    /* 200 header lines: more than the 100 slots, 431. */
    n = (size_t)snprintf(raw, cap, "GET /f00.txt HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(raw + n, cap - n, "X-Header-%03d: %d\r\n", i, i);
    n += (size_t)snprintf(raw + n, cap - n, "\r\n");
    expect_rejected("200 header lines", raw, n, 431);
    /* 99 are fine. */
    n = (size_t)snprintf(raw, cap, "GET /f00.txt HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 98; i++)
        n += (size_t)snprintf(raw + n, cap - n, "X-Header-%03d: %d\r\n", i, i);
    n += (size_t)snprintf(raw + n, cap - n, "\r\n");
    http_exchange(port, raw, &r, TIMEOUT);
    expect_small(&r, 0);
    http_response_free(&r);
    /* A head over 32 KiB in few headers: 431. */
    n = (size_t)snprintf(raw, cap, "GET /f00.txt HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 5; i++) {
        n += (size_t)snprintf(raw + n, cap - n, "X-Big-%d: ", i);
        memset(raw + n, 'v', 7000);
        n += 7000;
        n += (size_t)snprintf(raw + n, cap - n, "\r\n");
    }
    n += (size_t)snprintf(raw + n, cap - n, "\r\n");
    expect_rejected("a 35 KB head", raw, n, 431);
    free(raw);
    note("request line over 8 KiB: 414; 200 headers or a 35 KB head: 431");
}

static void max_requests(void)
{
    serve((const char *const[]){"--max-requests", "3", NULL});
    struct http_client *c = http_client_open(port);
    struct http_response r;
    for (int i = 0; i < 3; i++) {
        http_send(c, "GET /f10.txt HTTP/1.1\r\nHost: x\r\n\r\n");
        read_one(c, &r, 0);
        expect_small(&r, 10);
        HTTP_EXPECT_FIELD(&r, "Connection", i < 2 ? NULL : "close");
        http_response_free(&r);
    }
    http_expect_eof(c, TIMEOUT);
    http_client_close(c);

    /* Five pipelined: three answers, then the close. */
    c = http_client_open(port);
    static struct pipeline p;
    pipeline_build(&p, 5, 0, 0);
    send_all(c->fd, p.text, p.len);
    p.n = 3;
    pipeline_check(c, &p);
    http_expect_eof(c, TIMEOUT);
    http_client_close(c);
    note("--max-requests 3: the third response says Connection: close, then the FIN");
}

/* --max-conns 2: a third client waits in the backlog, unanswered, until
 * one of the two closes. */
static void max_conns(void)
{
    serve((const char *const[]){"--max-conns", "2", "--workers", "1", NULL});
    struct http_client *c[3];
    struct http_response r;
    for (int i = 0; i < 2; i++) {
        c[i] = http_client_open(port);
        http_send(c[i], "GET /f11.txt HTTP/1.1\r\nHost: x\r\n\r\n");
        read_one(c[i], &r, 0);
        expect_small(&r, 11);
        http_response_free(&r);
    }
    c[2] = http_client_open(port); /* the kernel completes it: it waits in the backlog */
    http_send(c[2], "GET /f12.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    struct pollfd p = {.fd = c[2]->fd, .events = POLLIN};
    ASSERT_EQ(poll(&p, 1, 300), 0); /* 300 ms without an answer: not accepted */
    http_client_close(c[0]);
    read_one(c[2], &r, 0); /* accepted once a slot is free */
    expect_small(&r, 12);
    http_response_free(&r);
    http_client_close(c[1]);
    http_client_close(c[2]);
    note("--max-conns 2: a third client is served once one of the two leaves");
}

/* A path longer than the server will map to a file, but within the 8 KiB
 * request line: RFC 9110 15.5.15 has 414 for "longer than the server is
 * willing to interpret"; the request itself is well formed, so not 400. */
static void long_path_is_414(void)
{
    serve(NULL);
    char *raw = malloc(8192);
    ASSERT(raw != NULL);
    size_t n = (size_t)snprintf(raw, 8192, "GET /");
    memset(raw + n, 'a', 5000);
    n += 5000;
    snprintf(raw + n, 8192 - n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    struct http_response r;
    http_exchange(port, raw, &r, TIMEOUT);
    if (r.status != 414)
        FAIL("a 5000-byte path: status %d, expected 414 (the 8 KiB request line is 414 too)",
             r.status);
    http_response_free(&r);
    free(raw);
}

TEST_CASES_WITH(make_tree, remove_root_after_server, CASE(keep_alive), CASE(pipelining),
                CASE(connection_close), CASE(request_bodies), CASE(malformed_requests),
                CASE(max_requests), CASE(max_conns), CASE(long_path_is_414))
