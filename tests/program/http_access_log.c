/* http_access_log: --access-log FILE gets one line per request in the
 * combined log format, written out by the time the server has exited:
 *   127.0.0.1 - - [26/Nov/2026:13:29:55 +0000] "GET /a HTTP/1.1" 200 13 "ref" "agent"
 * with the status and the body bytes of each response (0 for HEAD and 304,
 * the part for a 206), the target as sent, quotes and backslashes in
 * headers escaped so that no client can forge a line, and with two workers
 * and many clients, every line whole. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TIMEOUT 5000
#define BIG_SIZE 100000

static char root[64], log_path[96];
static int port;

static void make_tree(void)
{
    temp_dir_make(root, sizeof root);
    file_write_at(root, "hello.txt", "hello, world\n", 13);
    dir_make_at(root, "docs");
    char *big = calloc(1, BIG_SIZE);
    ASSERT(big != NULL);
    file_write_at(root, "big.bin", big, BIG_SIZE);
    free(big);
    snprintf(log_path, sizeof log_path, "%s/access.log", root);
}

static void remove_root(void)
{
    remove_tree(root);
}

/* Starts `ritual http` logging to log_path, with `workers` workers. The
 * case stops it itself: the log is complete once the server has exited. */
static void serve(struct server *s, const char *workers)
{
    http_server_start(ritual_program(), root,
                      (const char *const[]){"--access-log", log_path, "--workers", workers, NULL},
                      s);
    port = s->port;
}

static char *read_log(size_t *len)
{
    FILE *f = fopen(log_path, "re");
    if (f == NULL)
        FAIL("%s: not created", log_path);
    size_t cap = 1 << 20;
    char *text = malloc(cap);
    ASSERT(text != NULL);
    *len = fread(text, 1, cap - 1, f);
    text[*len] = '\0';
    fclose(f);
    return text;
}

/* One request on its own connection; returns the status. */
static int request(const char *raw)
{
    struct http_response r;
    http_exchange(port, raw, &r, TIMEOUT);
    int status = r.status;
    http_response_free(&r);
    return status;
}

/* Checks one log line against "PREFIX [date] REST": the date must be within
 * two minutes of now. */
static void expect_line(const char *line, size_t len, const char *rest)
{
    static const char prefix[] = "127.0.0.1 - - [";
    if (len < sizeof prefix || strncmp(line, prefix, sizeof prefix - 1) != 0)
        FAIL("log line \"%.*s\" does not start with \"%s\"", (int)len, line, prefix);
    const char *date = line + sizeof prefix - 1;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(date, "%d/%b/%Y:%H:%M:%S +0000] ", &tm);
    if (end == NULL)
        FAIL("log line \"%.*s\": no [dd/Mon/yyyy:HH:MM:SS +0000] date", (int)len, line);
    time_t when = timegm(&tm);
    time_t now = time(NULL);
    if (when > now + 5 || when < now - 120)
        FAIL("log line \"%.*s\": the date is %lld s from now", (int)len, line,
             (long long)(when - now));
    size_t rest_len = len - (size_t)(end - line);
    if (rest_len != strlen(rest) || memcmp(end, rest, rest_len) != 0)
        FAIL("log line\n  \"%.*s\"\nexpected to end\n  \"%s\"", (int)len, line, rest);
}

static void one_line_per_request(void)
{
    struct server s;
    serve(&s, "1");

    char etag_req[256];
    {
        struct http_response r;
        http_exchange(port, "HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r, TIMEOUT);
        HTTP_EXPECT_STATUS(&r, 200);
        const char *etag = http_field(&r, "ETag");
        if (etag == NULL)
            FAIL("HEAD /hello.txt: no ETag for the If-None-Match request");
        snprintf(etag_req, sizeof etag_req,
                 "GET /hello.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n\r\n", etag);
        http_response_free(&r);
    }
    static const struct {
        const char *raw;
        int status;
        const char *line;
    } cases[] = {
        {"GET /hello.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: test-agent/1.0\r\n"
         "Referer: http://ref.example/page\r\n\r\n",
         200, "\"GET /hello.txt HTTP/1.1\" 200 13 \"http://ref.example/page\" \"test-agent/1.0\""},
        {"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", 200,
         "\"HEAD /hello.txt HTTP/1.1\" 200 0 \"-\" \"-\""},
        {"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, "\"GET /nope HTTP/1.1\" 404 14 \"-\" \"-\""},
        {"GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-4\r\n\r\n", 206,
         "\"GET /hello.txt HTTP/1.1\" 206 5 \"-\" \"-\""},
        {NULL, 304, "\"GET /hello.txt HTTP/1.1\" 304 0 \"-\" \"-\""},
        {"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 405,
         "\"POST /hello.txt HTTP/1.1\" 405 23 \"-\" \"-\""},
        {"GET /docs HTTP/1.1\r\nHost: x\r\n\r\n", 301, "\"GET /docs HTTP/1.1\" 301 22 \"-\" \"-\""},
        {"GET /hello.txt?q=%22x%22 HTTP/1.1\r\nHost: x\r\nUser-Agent: a\"b\\c\" \"-\r\n\r\n", 200,
         "\"GET /hello.txt?q=%22x%22 HTTP/1.1\" 200 13 \"-\" \"a\\x22b\\x5cc\\x22 \\x22-\""},
        {"GET /hello.txt HTTP/1.0\r\n\r\n", 200, "\"GET /hello.txt HTTP/1.0\" 200 13 \"-\" \"-\""},
        {"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n", 200,
         "\"GET /big.bin HTTP/1.1\" 200 100000 \"-\" \"-\""},
    };
    size_t n = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(request(cases[i].raw ? cases[i].raw : etag_req), cases[i].status);
    /* Last: a request the server rejects before any handler sees it. */
    ASSERT_EQ(request("GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    server_expect_clean_exit(&s);

    size_t len;
    char *text = read_log(&len);
    const char *line = text;
    /* The first line is the HEAD that fetched the ETag. */
    const char *eol = strchr(line, '\n');
    ASSERT(eol != NULL);
    expect_line(line, (size_t)(eol - line), "\"HEAD /hello.txt HTTP/1.1\" 200 0 \"-\" \"-\"");
    line = eol + 1;
    for (size_t i = 0; i < n; i++) {
        eol = strchr(line, '\n');
        if (eol == NULL)
            FAIL("the log has %zu lines, expected at least %zu:\n%s", i + 1, n + 1, text);
        expect_line(line, (size_t)(eol - line), cases[i].line);
        line = eol + 1;
    }
    note("%zu requests: one combined-format line each, with status and body bytes", n + 1);

    /* Responses the HTTP layer gives before any handler runs (400, 408, 413,
     * 414, 431, 501, 505) are logged too: a request the server refused is
     * still one its log must account for. */
    if (*line == '\0')
        FAIL("the 400 answered to \"GET /\\x01 HTTP/1.1\" has no line in the access log");
    eol = strchr(line, '\n');
    ASSERT(eol != NULL);
    if (strstr(line, "\" 400 ") == NULL || strstr(line, "\" 400 ") > eol)
        FAIL("the line after the last request is not a 400: %.*s", (int)(eol - line), line);
    free(text);
}

/* Two workers, 8 clients of 50 pipelined requests each: 400 whole lines. */
static void whole_lines_from_two_workers(void)
{
    struct server s;
    serve(&s, "2");
    enum { CLIENTS = 8, REQUESTS = 50 };
    struct http_client *c[CLIENTS];
    static char batch[REQUESTS * 64];
    size_t blen = 0;
    for (int i = 0; i < REQUESTS; i++)
        blen += (size_t)snprintf(batch + blen, sizeof batch - blen,
                                 "GET /hello.txt?n=%02d HTTP/1.1\r\nHost: x\r\n\r\n", i);
    for (int k = 0; k < CLIENTS; k++) {
        c[k] = http_client_open(port);
        send_all(c[k]->fd, batch, blen);
    }
    for (int k = 0; k < CLIENTS; k++) {
        for (int i = 0; i < REQUESTS; i++) {
            struct http_response r;
            ASSERT(http_read_response(c[k], &r, 0, TIMEOUT));
            HTTP_EXPECT_STATUS(&r, 200);
            http_response_free(&r);
        }
        http_client_close(c[k]);
    }
    server_expect_clean_exit(&s);

    size_t len;
    char *text = read_log(&len);
    int lines = 0;
    int seen[REQUESTS] = {0};
    for (char *line = text; *line != '\0'; lines++) {
        char *eol = strchr(line, '\n');
        ASSERT(eol != NULL);
        *eol = '\0';
        int num;
        char tail[64];
        if (sscanf(line, "127.0.0.1 - - [%*[^]]] \"GET /hello.txt?n=%d HTTP/1.1\" %63[^\n]", &num,
                   tail) != 2 ||
            strcmp(tail, "200 13 \"-\" \"-\"") != 0 || num < 0 || num >= REQUESTS)
            FAIL("a malformed or mixed log line: \"%s\"", line);
        seen[num]++;
        line = eol + 1;
    }
    ASSERT_EQ(lines, CLIENTS * REQUESTS);
    for (int i = 0; i < REQUESTS; i++)
        ASSERT_EQ(seen[i], CLIENTS);
    note("2 workers, %d clients x %d requests: %d whole lines", CLIENTS, REQUESTS, lines);
    free(text);
}

TEST_CASES_WITH(make_tree, remove_root, CASE(one_line_per_request),
                CASE(whole_lines_from_two_workers))
