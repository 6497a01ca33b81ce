/* http_site: what `ritual http` does for a site beyond serving its files.
 *
 * dotfiles: /.git/config, /.env, /a/.hidden are 404 by default, with or
 *   without a listing; /.well-known/ is served (dot names inside it are
 *   not); a symlink without a dot to a dot name is served (hiding is by
 *   URL); --allow-dotfiles serves them all.
 * targets: a '#' in a request target is 400 (a fragment is never sent), as
 *   is an absolute-form target of a scheme other than http or https.
 * fallback: --fallback /index.html answers a path that does not exist with
 *   the index (200, its validators, conditionals honoured); files that
 *   exist and directories are unchanged.
 * error_pages: --error-page 404=/404.html answers 404 with that file and
 *   status 404, HEAD without a body; a page that cannot be read gives the
 *   plain answer, and is warned of at start; 405 and 416 get their page
 *   too, with Allow and Content-Range; a page may be a dot name.
 * cache_control: --cache-control GLOB=VALUE, first match wins, on 200, 206
 *   and 304, not on errors; a glob without '/' matches the file name (and a
 *   directory's index), one with '/' the whole path.
 * headers: X-Content-Type-Options: nosniff and each --header on every
 *   answer: a file, a 304, a 404, 301, 405, 416, a listing, and the HTTP
 *   layer's own 400, 408, 413 and 431; a --header's value is trimmed; a
 *   --header naming X-Content-Type-Options replaces it.
 * listing_left: clients that ask for a listing being built (5,000
 *   entries, several loop iterations) and reset at once: once it is built,
 *   answering their gone exchanges crashes nothing, and the next client
 *   gets it.
 * bad_options: each new option's bad values are usage errors (exit 2),
 *   a --header for a field the server writes itself (Content-Length...)
 *   or with an empty value, an --error-page for a status only the HTTP
 *   layer sends, and an empty path (--root=) included. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TIMEOUT 5000

static char root[64];
static struct server server;

static const char index_html[] = "<h1>app</h1>\n";
static const char page_404[] = "<h1>not here</h1>\n";
static const char page_oops[] = "<h1>oops</h1>\n";

static void make_tree(void)
{
    temp_dir_make(root, sizeof root);
    file_write_at(root, "index.html", index_html, strlen(index_html));
    file_write_at(root, "404.html", page_404, strlen(page_404));
    file_write_at(root, ".oops.html", page_oops, strlen(page_oops));
    file_write_at(root, "hello.txt", "hello\n", 6);
    file_write_at(root, "app.js", "let x;\n", 7);
    file_write_at(root, ".env", "SECRET=1\n", 9);
    dir_make_at(root, ".git");
    file_write_at(root, ".git/config", "[core]\n", 7);
    dir_make_at(root, "a");
    file_write_at(root, "a/.hidden", "h\n", 2);
    file_write_at(root, "a/b.txt", "b\n", 2);
    dir_make_at(root, "docs");
    file_write_at(root, "docs/index.html", "docs\n", 5);
    file_write_at(root, "docs/page.txt", "page\n", 5);
    dir_make_at(root, "empty");
    dir_make_at(root, ".well-known");
    file_write_at(root, ".well-known/security.txt", "Contact: x\n", 11);
    file_write_at(root, ".well-known/.private", "p\n", 2);
}

static void remove_root(void)
{
    remove_tree(root);
}

static void start(const char *const args[])
{
    http_server_start(ritual_program(), root, args, &server);
}

/* GETs (or HEADs) `target` with the extra header lines `extra`. */
static void get(const char *method, const char *target, const char *extra, struct http_response *r)
{
    char req[1024];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n", method,
             target, extra ? extra : "");
    http_exchange(server.port, req, r, TIMEOUT);
}

static void expect(const char *method, const char *target, int status, const char *body)
{
    struct http_response r;
    get(method, target, NULL, &r);
    if (r.status != status)
        FAIL("%s %s: status %d, expected %d", method, target, r.status, status);
    if (body && (r.body_len != strlen(body) || memcmp(r.body, body, r.body_len) != 0))
        FAIL("%s %s: body \"%.*s\", expected \"%s\"", method, target, (int)r.body_len, r.body,
             body);
    http_response_free(&r);
}

static void dotfiles(void)
{
    char link[128];
    snprintf(link, sizeof link, "%s/config", root);
    SYSCHECK(symlink(".git/config", link));
    start((const char *const[]){"--autoindex", NULL});
    /* Hiding is by URL: a link without a dot to a dot name is served. */
    expect("GET", "/config", 200, "[core]\n");
    expect("GET", "/.env", 404, NULL);
    expect("GET", "/.git/config", 404, NULL);
    expect("GET", "/.git/", 404, NULL);
    expect("GET", "/a/.hidden", 404, NULL);
    expect("GET", "/a/%2ehidden", 404, NULL); /* decoded first */
    expect("HEAD", "/.env", 404, NULL);
    expect("GET", "/a/b.txt", 200, "b\n");
    expect("GET", "/.well-known/security.txt", 200, "Contact: x\n");
    expect("GET", "/.well-known/.private", 404, NULL);
    expect("GET", "/.well-knownx", 404, NULL);
    struct http_response r;
    get("GET", "/a/", NULL, &r); /* the listing does not show them either */
    HTTP_EXPECT_STATUS(&r, 200);
    ASSERT(strstr(r.body, "b.txt") != NULL);
    ASSERT(strstr(r.body, ".hidden") == NULL);
    http_response_free(&r);
    server_expect_clean_exit(&server);

    start((const char *const[]){"--allow-dotfiles", NULL});
    expect("GET", "/.env", 200, "SECRET=1\n");
    expect("GET", "/.git/config", 200, "[core]\n");
    expect("GET", "/.well-known/.private", 200, "p\n");
    server_expect_clean_exit(&server);
}

static void targets(void)
{
    start(NULL);
    expect("GET", "/hello.txt", 200, "hello\n");
    expect("GET", "/hello.txt#top", 400, NULL);
    expect("GET", "/hello.txt?a=1#top", 400, NULL);
    expect("GET", "/hello.txt?a=1", 200, "hello\n");
    expect("GET", "http://t/hello.txt", 200, "hello\n");
    expect("GET", "HTTPS://t/hello.txt", 200, "hello\n");
    expect("GET", "ftp://t/hello.txt", 400, NULL);
    expect("GET", "file:///etc/passwd", 400, NULL);
    expect("GET", "javascript://t/hello.txt", 400, NULL);
    expect("GET", "http://t/hello.txt#x", 400, NULL);
    server_expect_clean_exit(&server);
}

static void fallback(void)
{
    start((const char *const[]){"--fallback", "/index.html", NULL});
    expect("GET", "/app/settings/42", 200, index_html);
    expect("GET", "/missing.js", 200, index_html);
    expect("GET", "/hello.txt", 200, "hello\n");
    expect("GET", "/docs/", 200, "docs\n");
    expect("GET", "/empty/", 403, NULL); /* a directory is not a missing path */
    expect("GET", "/.env", 404, NULL);   /* hidden is not missing either */
    struct http_response r;
    get("HEAD", "/route", NULL, &r);
    HTTP_EXPECT_STATUS(&r, 200);
    HTTP_EXPECT_FIELD(&r, "Content-Type", "text/html; charset=utf-8");
    ASSERT_EQ(r.body_len, 0);
    char etag[128];
    snprintf(etag, sizeof etag, "If-None-Match: %s\r\n", http_field(&r, "ETag"));
    http_response_free(&r);
    get("GET", "/other/route", etag, &r);
    HTTP_EXPECT_STATUS(&r, 304);
    http_response_free(&r);
    server_expect_clean_exit(&server);

    start((const char *const[]){"--fallback", "/nothing.html", NULL});
    expect("GET", "/route", 404, NULL); /* the fallback itself is missing */
    server_expect_clean_exit(&server);
}

static void error_pages(void)
{
    start((const char *const[]){
        "--error-page", "404=/404.html", "--error-page", "403=/missing.html", "--error-page",
        "405=/.oops.html", "--error-page", "416=/.oops.html", "--error-page", "412=/empty/", NULL});
    /* Pages that are not files are warned of at start; the others are not. */
    server_wait_log(&server, "--error-page 403=/missing.html: No such file or directory", 1);
    server_wait_log(&server, "--error-page 412=/empty/: empty/index.html: No such file", 1);
    size_t log_len;
    char *log = file_read(server.stderr_path, &log_len);
    ASSERT(log != NULL && strstr(log, "404=/404.html") == NULL && strstr(log, "oops") == NULL);
    free(log);
    struct http_response r;
    get("GET", "/nope", NULL, &r);
    HTTP_EXPECT_STATUS(&r, 404);
    HTTP_EXPECT_FIELD(&r, "Content-Type", "text/html; charset=utf-8");
    HTTP_EXPECT_FIELD(&r, "ETag", NULL); /* no validators: it is not the resource */
    ASSERT_EQ(r.body_len, strlen(page_404));
    ASSERT(memcmp(r.body, page_404, r.body_len) == 0);
    http_response_free(&r);
    get("HEAD", "/nope", NULL, &r);
    HTTP_EXPECT_STATUS(&r, 404);
    ASSERT_EQ(r.content_length, strlen(page_404));
    ASSERT_EQ(r.body_len, 0);
    http_response_free(&r);
    expect("GET", "/.env", 404, page_404);
    /* 403 names a page that does not exist: the plain answer */
    expect("GET", "/empty/", 403, "403 Forbidden\n");
    expect("GET", "/hello.txt", 200, "hello\n");
    /* 405 and 416 get their page (a dot name: pages are not requests) and
     * keep the fields that belong to them. */
    get("POST", "/hello.txt", "Content-Length: 0\r\n", &r);
    HTTP_EXPECT_STATUS(&r, 405);
    HTTP_EXPECT_FIELD(&r, "Allow", "GET, HEAD");
    HTTP_EXPECT_FIELD(&r, "Content-Type", "text/html; charset=utf-8");
    ASSERT(r.body_len == strlen(page_oops) && memcmp(r.body, page_oops, r.body_len) == 0);
    http_response_free(&r);
    get("GET", "/hello.txt", "Range: bytes=100-\r\n", &r);
    HTTP_EXPECT_STATUS(&r, 416);
    HTTP_EXPECT_FIELD(&r, "Content-Range", "bytes */6");
    HTTP_EXPECT_FIELD(&r, "Content-Type", "text/html; charset=utf-8");
    ASSERT(r.body_len == strlen(page_oops) && memcmp(r.body, page_oops, r.body_len) == 0);
    http_response_free(&r);
    /* 412's page is a directory without an index: the plain answer */
    get("GET", "/hello.txt", "If-Match: \"x\"\r\n", &r);
    HTTP_EXPECT_STATUS(&r, 412);
    HTTP_EXPECT_FIELD(&r, "Content-Type", "text/plain; charset=utf-8");
    http_response_free(&r);
    server_expect_clean_exit(&server);
}

static void expect_cache_control(const char *target, const char *extra, int status,
                                 const char *want)
{
    struct http_response r;
    get("GET", target, extra, &r);
    HTTP_EXPECT_STATUS(&r, status);
    HTTP_EXPECT_FIELD(&r, "Cache-Control", want);
    http_response_free(&r);
}

static void cache_control(void)
{
    start((const char *const[]){"--cache-control", "*.js=max-age=31536000, immutable",
                                "--cache-control", "/docs/*=no-cache, private", "--cache-control",
                                "*.html=no-cache", "--cache-control", "*=max-age=60", NULL});
    expect_cache_control("/app.js", NULL, 200, "max-age=31536000, immutable");
    expect_cache_control("/app.js", "Range: bytes=0-1\r\n", 206, "max-age=31536000, immutable");
    expect_cache_control("/docs/page.txt", NULL, 200, "no-cache, private");
    expect_cache_control("/docs/", NULL, 200, "no-cache, private");
    expect_cache_control("/", NULL, 200, "no-cache"); /* its index.html */
    expect_cache_control("/hello.txt", NULL, 200, "max-age=60");
    expect_cache_control("/nope.js", NULL, 404, NULL);
    struct http_response r;
    get("GET", "/app.js", NULL, &r);
    char etag[128];
    snprintf(etag, sizeof etag, "If-None-Match: %s\r\n", http_field(&r, "ETag"));
    http_response_free(&r);
    expect_cache_control("/app.js", etag, 304, "max-age=31536000, immutable");
    server_expect_clean_exit(&server);
}

static void expect_headers(const struct http_response *r, const char *nosniff)
{
    HTTP_EXPECT_FIELD(r, "X-Content-Type-Options", nosniff);
    ASSERT_EQ(http_field_count(r, "X-Content-Type-Options"), 1);
    HTTP_EXPECT_FIELD(r, "X-Frame-Options", "DENY");
    HTTP_EXPECT_FIELD(r, "Strict-Transport-Security", "max-age=63072000; includeSubDomains");
}

/* `raw` sent on a connection of its own: the answer has `status` and the
 * headers of every answer. */
static void expect_raw(const char *what, const char *raw, int status)
{
    struct http_response r;
    http_exchange(server.port, raw, &r, TIMEOUT);
    if (r.status != status)
        FAIL("%s: status %d, expected %d", what, r.status, status);
    expect_headers(&r, "nosniff");
    http_response_free(&r);
}

/* The head of the answer to `raw` as sent, whitespace and all. */
static void raw_head(const char *raw, char *head, size_t cap)
{
    struct http_client *c = http_client_open(server.port);
    http_send(c, raw);
    size_t len = 0;
    head[0] = '\0';
    while (!strstr(head, "\r\n\r\n") && len + 1 < cap) {
        size_t n = http_client_recv(c, head + len, cap - 1 - len, TIMEOUT);
        ASSERT(n > 0);
        len += n;
        head[len] = '\0';
    }
    http_client_close(c);
}

static void headers(void)
{
    start((const char *const[]){"--header", "X-Frame-Options: DENY", "--header",
                                "Strict-Transport-Security:max-age=63072000; includeSubDomains",
                                "--header", "X-Spaced: \t spaced  value \t ", "--header-timeout",
                                "0.5", "--autoindex", NULL});
    struct http_response r;
    get("GET", "/hello.txt", NULL, &r);
    HTTP_EXPECT_STATUS(&r, 200);
    expect_headers(&r, "nosniff");
    char etag[128];
    snprintf(etag, sizeof etag, "If-None-Match: %s\r\n", http_field(&r, "ETag"));
    http_response_free(&r);
    get("GET", "/hello.txt", etag, &r);
    HTTP_EXPECT_STATUS(&r, 304);
    expect_headers(&r, "nosniff");
    http_response_free(&r);
    get("GET", "/nope", NULL, &r);
    HTTP_EXPECT_STATUS(&r, 404);
    expect_headers(&r, "nosniff");
    http_response_free(&r);
    /* the HTTP layer's own answers: no Host in an HTTP/1.1 request, a
     * head that never ends, a body too large, too many header lines */
    expect_raw("no Host", "GET / HTTP/1.1\r\n\r\n", 400);
    expect_raw("an unfinished head", "GET /hello.txt HTTP/1.1\r\nHost: t\r\n", 408);
    expect_raw("2 MB body", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n", 413);
    char many[4096];
    size_t n = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 120; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "X-H-%03d: 1\r\n", i);
    snprintf(many + n, sizeof many - n, "\r\n");
    expect_raw("120 header lines", many, 431);
    /* and the file server's other answers */
    expect_raw("a directory without its slash", "GET /docs HTTP/1.1\r\nHost: t\r\n\r\n", 301);
    expect_raw("POST", "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 405);
    expect_raw("a range past the end",
               "GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=100-\r\n\r\n", 416);
    expect_raw("a listing", "GET /a/ HTTP/1.1\r\nHost: t\r\n\r\n", 200);
    /* a --header's value is sent without the whitespace around it */
    char head[4096];
    raw_head("GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n", head, sizeof head);
    if (!strstr(head, "\r\nX-Spaced: spaced  value\r\n"))
        FAIL("X-Spaced not sent as 'spaced  value':\n%s", head);
    server_expect_clean_exit(&server);

    /* nosniff alone by default; a --header of its own replaces it */
    start(NULL);
    get("GET", "/hello.txt", NULL, &r);
    HTTP_EXPECT_FIELD(&r, "X-Content-Type-Options", "nosniff");
    http_response_free(&r);
    server_expect_clean_exit(&server);
    start((const char *const[]){"--header", "x-content-type-options: none", NULL});
    get("GET", "/hello.txt", NULL, &r);
    HTTP_EXPECT_FIELD(&r, "X-Content-Type-Options", "none");
    ASSERT_EQ(http_field_count(&r, "X-Content-Type-Options"), 1);
    http_response_free(&r);
    server_expect_clean_exit(&server);
}

static void listing_left(void)
{
    dir_make_at(root, "many");
    char rel[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(rel, sizeof rel, "many/f%04d", i);
        file_write_at(root, rel, "", 0);
    }
    start((const char *const[]){"--autoindex", "--workers", "1", NULL});
    for (int i = 0; i < 20; i++) {
        struct http_client *c = http_client_open(server.port);
        http_send(c, "GET /many/ HTTP/1.1\r\nHost: t\r\n\r\n");
        struct linger hard = {1, 0}; /* close with a reset, at once */
        SYSCHECK(setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard));
        http_client_close(c);
    }
    struct http_response r;
    get("GET", "/many/", NULL, &r);
    HTTP_EXPECT_STATUS(&r, 200);
    ASSERT(strstr(r.body, "f4999") != NULL);
    http_response_free(&r);
    server_expect_clean_exit(&server);
}

static void bad_options(void)
{
    static const char *const cases[][3] = {
        {"--error-page", "200=/x.html"},
        {"--error-page", "404"},
        {"--error-page", "404=x.html"},
        {"--error-page", "abc=/x.html"},
        {"--cache-control", "*.js"},
        {"--cache-control", "=x"},
        {"--cache-control", "*.js="},
        {"--cache-control", "*.js=a\tb\x01"},
        {"--fallback", "index.html"},
        {"--fallback", "/a#b"},
        {"--header", "X-A"},
        {"--header", ": b"},
        {"--header", "X A: b"},
        {"--header", "X-A: b\x01"},
        {"--header", "X-A: b\r\nX-B: c"},
        {"--header", "Content-Length: 5"},
        {"--header", "transfer-encoding: chunked"},
        {"--header", "X-A:"},
        {"--header", "X-A: \t "},
        {"--error-page", "408=/x.html"},
        {"--error-page", "413=/x.html"},
        {"--error-page", "431=/x.html"},
        {"--error-page", "502=/x.html"},
        {"--root", ""},
        {"--mime", ""},
        {"--access-log", ""},
        {"--tls-cert", ""},
        {"--tls-key", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[] = {ritual_program(), "http",      "--root", root,
                              cases[i][0],      cases[i][1], NULL};
        struct cmd_result r;
        run_command(argv, 10000, &r);
        if (r.exit_code != 2 || count_lines(r.err) != 1 || strncmp(r.err, "ritual http: ", 13))
            FAIL("%s '%s': exit %d, stderr \"%s\"; expected 2 and one usage line", cases[i][0],
                 cases[i][1], r.exit_code, r.err);
    }
    /* the two new kinds of message, whole */
    struct cmd_result r;
    run_command((const char *const[]){ritual_program(), "http", "--root=", NULL}, 10000, &r);
    ASSERT_EQ(r.exit_code, 2);
    ASSERT(strncmp(r.err, "ritual http: --root: empty, a path is needed", 44) == 0);
    run_command((const char *const[]){ritual_program(), "http", "--root", root, "--error-page",
                                      "408=/x.html", NULL},
                10000, &r);
    ASSERT_EQ(r.exit_code, 2);
    ASSERT(strstr(r.err, "(400, 403, 404, 405, 412, 414, 416, 500, 503)") != NULL);
}

TEST_CASES_WITH(make_tree, remove_root, CASE(dotfiles), CASE(targets), CASE(fallback),
                CASE(error_pages), CASE(cache_control), CASE(headers), CASE(listing_left),
                CASE(bad_options))
