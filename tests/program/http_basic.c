/* http_basic: `ritual http` serves the files under its root. GET and HEAD
 * (HEAD has the same headers and no body), 404, 405 with Allow for other
 * methods, the index file, a directory without its slash redirected, a
 * directory without an index forbidden or (--autoindex) listed with its names
 * HTML-escaped, Content-Type by extension (and from --mime), percent-encoded
 * names, query strings ignored. */
#include "support.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define TIMEOUT 5000

static char root[64];
static int port;
static struct server server;

static const char hello[] = "hello, world\n";

static void make_tree(void)
{
    temp_dir_make(root, sizeof root);
    file_write_at(root, "hello.txt", hello, strlen(hello));
    file_write_at(root, "index.html", "<h1>home</h1>\n", 14);
    file_write_at(root, "a b.txt", "a space\n", 8);
    file_write_at(root, "caf\xc3\xa9.txt", "utf-8 name\n", 11);
    file_write_at(root, "style.css", "p{}\n", 4);
    file_write_at(root, "app.js", "1;\n", 3);
    file_write_at(root, "data.json", "{}\n", 3);
    file_write_at(root, "pic.PNG", "\x89PNG", 4);
    file_write_at(root, "noext", "x", 1);
    file_write_at(root, "thing.weird", "x", 1);
    file_write_at(root, "thing.rit", "x", 1);
    file_write_at(root, "empty.txt", "", 0);
    dir_make_at(root, "docs");
    file_write_at(root, "docs/index.html", "<h1>docs</h1>\n", 14);
    file_write_at(root, "docs/start.txt", "start\n", 6);
    dir_make_at(root, "bare");
    dir_make_at(root, "list");
    file_write_at(root, "list/<b>&\"x\".txt", "escaped\n", 8);
    file_write_at(root, "list/plain.txt", "plain\n", 6);
    file_write_at(root, "list/.hidden", "hidden\n", 7);
    dir_make_at(root, "list/sub");
    dir_make_at(root, "list/<img src=x onerror=alert(1)>");
    file_write_at(root, "100%.txt", "percent\n", 8);
    file_write_at(root, "mime.types", "# extra types\napplication/x-ritual rit ritual\n", 46);
}

/* Starts the case's server on the tree (extra_args NULL-terminated, or NULL). */
static void serve(const char *const extra_args[])
{
    http_server_start(ritual_program(), root, extra_args, &server);
    port = server.port;
}

static void stop_and_remove_tree(void)
{
    server_expect_clean_exit(&server);
    remove_tree(root);
}

/* The Last-Modified and ETag the server must derive from stat(). */
static void validators(const char *rel, char *date, size_t date_cap, char *etag, size_t etag_cap)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    struct stat st;
    SYSCHECK(stat(path, &st));
    struct tm tm;
    gmtime_r(&st.st_mtim.tv_sec, &tm);
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    snprintf(date, date_cap, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    snprintf(etag, etag_cap, "\"%llx-%llx\"", (unsigned long long)st.st_mtim.tv_sec,
             (unsigned long long)st.st_size);
}

/* How many times `needle` occurs in the NUL-terminated `text`. */
static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* GET `target` and expect `status` (and `body`, unless NULL). */
static void expect_get(const char *target, int status, const char *body)
{
    char req[512];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    struct http_response r;
    http_exchange(port, req, &r, TIMEOUT);
    if (r.status != status)
        FAIL("GET %s: status %d, expected %d (body \"%.100s\")", target, r.status, status, r.body);
    if (body != NULL && (r.body_len != strlen(body) || memcmp(r.body, body, r.body_len) != 0))
        FAIL("GET %s: body \"%.100s\", expected \"%s\"", target, r.body, body);
    http_response_free(&r);
}

static void expect_type(const char *target, const char *type)
{
    char req[512];
    snprintf(req, sizeof req, "HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    struct http_response r;
    http_exchange(port, req, &r, TIMEOUT);
    HTTP_EXPECT_STATUS(&r, 200);
    HTTP_EXPECT_FIELD(&r, "Content-Type", type);
    http_response_free(&r);
}

static void get_and_head(void)
{
    serve(NULL);
    char date[64], etag[64];
    validators("hello.txt", date, sizeof date, etag, sizeof etag);

    /* HEAD then GET pipelined on one connection: were there any body after
     * the HEAD's head, the GET's response would not parse. */
    struct http_client *c = http_client_open(port);
    http_send(c, "HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    struct http_response head, get;
    ASSERT(http_read_response(c, &head, 1, TIMEOUT));
    ASSERT(http_read_response(c, &get, 0, TIMEOUT));
    struct http_response *both[2] = {&head, &get};
    for (int i = 0; i < 2; i++) {
        struct http_response *r = both[i];
        HTTP_EXPECT_STATUS(r, 200);
        ASSERT_EQ(r->minor_version, 1);
        HTTP_EXPECT_FIELD(r, "Content-Length", "13");
        HTTP_EXPECT_FIELD(r, "Content-Type", "text/plain; charset=utf-8");
        HTTP_EXPECT_FIELD(r, "Last-Modified", date);
        HTTP_EXPECT_FIELD(r, "ETag", etag);
        HTTP_EXPECT_FIELD(r, "Accept-Ranges", "bytes");
        HTTP_EXPECT_FIELD(r, "Server", "ritual");
        HTTP_EXPECT_FIELD(r, "Connection", NULL);
        ASSERT_EQ(http_field_count(r, "Date"), 1);
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(http_field(r, "Date"), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        if (end == NULL || *end != '\0')
            FAIL("Date: \"%s\" is not an IMF-fixdate", http_field(r, "Date"));
        long long skew = (long long)(timegm(&tm) - time(NULL));
        if (skew < -5 || skew > 5)
            FAIL("Date: \"%s\" is %lld s away from the clock", http_field(r, "Date"), skew);
    }
    ASSERT_EQ(get.body_len, strlen(hello));
    ASSERT(memcmp(get.body, hello, strlen(hello)) == 0);
    http_response_free(&head);
    http_response_free(&get);
    /* Nothing else came: no stray body bytes after the HEAD. */
    http_send(c, "GET /empty.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    struct http_response e;
    ASSERT(http_read_response(c, &e, 0, TIMEOUT));
    HTTP_EXPECT_STATUS(&e, 200);
    HTTP_EXPECT_FIELD(&e, "Content-Length", "0");
    http_response_free(&e);
    http_client_close(c);
    note("GET and HEAD /hello.txt: same headers, ETag %s, HEAD without a body", etag);

    /* A HEAD of a missing file is a 404 without a body: the GET pipelined
     * behind it parses. */
    c = http_client_open(port);
    http_send(c, "HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    struct http_response r;
    ASSERT(http_read_response(c, &r, 1, TIMEOUT));
    HTTP_EXPECT_STATUS(&r, 404);
    http_response_free(&r);
    ASSERT(http_read_response(c, &r, 0, TIMEOUT));
    HTTP_EXPECT_STATUS(&r, 200);
    ASSERT(r.body_len == strlen(hello) && memcmp(r.body, hello, r.body_len) == 0);
    http_response_free(&r);
    http_client_close(c);
    expect_get("/nope", 404, "404 Not Found\n");
    expect_get("/nope/deeper", 404, NULL);
    expect_get("/hello.txt/", 404, NULL); /* a file is not a directory: ENOTDIR */
}

static void other_methods(void)
{
    serve(NULL);
    static const char *const methods[] = {"POST",    "PUT",  "DELETE", "PATCH",
                                          "OPTIONS", "BREW", "get",    "Head"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        char req[256];
        snprintf(req, sizeof req,
                 "%s /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", methods[i]);
        struct http_client *c = http_client_open(port);
        http_send(c, req);
        struct http_response r;
        ASSERT(http_read_response(c, &r, 0, TIMEOUT));
        HTTP_EXPECT_STATUS(&r, 405);
        HTTP_EXPECT_FIELD(&r, "Allow", "GET, HEAD");
        http_response_free(&r);
        /* The body was read as a body, not as the next request. */
        http_send(c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
        ASSERT(http_read_response(c, &r, 0, TIMEOUT));
        HTTP_EXPECT_STATUS(&r, 200);
        http_response_free(&r);
        http_client_close(c);
    }
    note("POST, PUT, DELETE, PATCH, OPTIONS, BREW, get, Head: 405 with Allow: GET, HEAD");
}

static void directories(void)
{
    serve(NULL);
    expect_get("/", 200, "<h1>home</h1>\n");
    expect_get("/index.html", 200, "<h1>home</h1>\n");
    expect_type("/", "text/html; charset=utf-8");
    expect_get("/docs/", 200, "<h1>docs</h1>\n");
    expect_get("/docs/index.html", 200, "<h1>docs</h1>\n");

    struct http_response r;
    http_exchange(port, "GET /docs HTTP/1.1\r\nHost: x\r\n\r\n", &r, TIMEOUT);
    HTTP_EXPECT_STATUS(&r, 301);
    HTTP_EXPECT_FIELD(&r, "Location", "/docs/");
    http_response_free(&r);
    http_exchange(port, "GET /docs?x=1&y=2 HTTP/1.1\r\nHost: x\r\n\r\n", &r, TIMEOUT);
    HTTP_EXPECT_STATUS(&r, 301);
    HTTP_EXPECT_FIELD(&r, "Location", "/docs/?x=1&y=2");
    http_response_free(&r);
    http_exchange(port, "GET /list/sub HTTP/1.1\r\nHost: x\r\n\r\n", &r, TIMEOUT);
    HTTP_EXPECT_STATUS(&r, 301);
    HTTP_EXPECT_FIELD(&r, "Location", "/list/sub/");
    http_response_free(&r);

    expect_get("/bare/", 403, "403 Forbidden\n");
    expect_get("/list/", 403, NULL);
    note("/ and /docs/ serve index.html, /docs redirects to /docs/, /bare/ is 403");
}

static void names_and_types(void)
{
    serve(NULL);
    expect_get("/a%20b.txt", 200, "a space\n");
    expect_get("/a b.txt", 400, NULL); /* a raw space ends the target: a bad request line */
    expect_get("/caf%C3%A9.txt", 200, "utf-8 name\n");
    expect_get("/100%25.txt", 200, "percent\n");
    expect_get("/caf%c3%a9.txt", 200, "utf-8 name\n");
    expect_get("/%68%65llo.txt", 200, hello);
    expect_get("/hello.txt?x=1", 200, hello);
    expect_get("/hello.txt?", 200, hello);
    expect_get("/hello.txt?../../etc/passwd", 200, hello);
    expect_get("/hello.txt?a=%00", 200, hello); /* the query is not decoded */
    expect_get("/nope?hello.txt", 404, NULL);
    /* Header names in any case. */
    struct http_response r;
    http_exchange(port, "GET /hello.txt HTTP/1.1\r\nhOsT: x\r\nrAnGe: bytes=0-4\r\n\r\n", &r,
                  TIMEOUT);
    HTTP_EXPECT_STATUS(&r, 206);
    ASSERT(strcmp(r.body, "hello") == 0);
    http_response_free(&r);
    expect_get("//hello.txt", 200, hello);
    expect_get("/./hello.txt", 200, hello);
    expect_get("/docs/../hello.txt", 200, hello);

    expect_type("/hello.txt", "text/plain; charset=utf-8");
    expect_type("/style.css", "text/css; charset=utf-8");
    expect_type("/app.js", "text/javascript; charset=utf-8");
    expect_type("/data.json", "application/json");
    expect_type("/pic.PNG", "image/png");
    expect_type("/noext", "application/octet-stream");
    expect_type("/thing.weird", "application/octet-stream");
    expect_type("/thing.rit", "application/octet-stream"); /* not without --mime */
    note("percent-encoded names, queries ignored, Content-Type by extension");
}

/* Another server: --autoindex lists /list/, --index picks another file,
 * --mime adds types. */
static void autoindex_index_and_mime(void)
{
    char mime[128];
    snprintf(mime, sizeof mime, "%s/mime.types", root);
    serve((const char *const[]){"--autoindex", "--index", "start.txt", "--mime", mime, "--workers",
                                "1", NULL});

    struct http_response r;
    http_exchange(port, "GET /list/ HTTP/1.1\r\nHost: x\r\n\r\n", &r, TIMEOUT);
    HTTP_EXPECT_STATUS(&r, 200);
    HTTP_EXPECT_FIELD(&r, "Content-Type", "text/html; charset=utf-8");
    static const char *const present[] = {
        "Index of /list/",
        "<a href=\"plain.txt\">plain.txt</a>",
        "<a href=\"sub/\">sub/</a>",
        "<a href=\"%3Cb%3E%26%22x%22.txt\">&lt;b&gt;&amp;&quot;x&quot;.txt</a>",
        "<a href=\"../\">",
    };
    for (size_t i = 0; i < sizeof present / sizeof present[0]; i++)
        if (strstr(r.body, present[i]) == NULL)
            FAIL("the listing of /list/ lacks '%s':\n%s", present[i], r.body);
    if (strstr(r.body, "hidden") != NULL || strstr(r.body, "<b>") != NULL)
        FAIL("the listing shows a hidden file or an unescaped name:\n%s", r.body);
    ASSERT(strstr(r.body, "plain.txt") < strstr(r.body, "sub/")); /* sorted */
    http_response_free(&r);
    /* A directory whose name is markup: escaped in the title too. */
    http_exchange(port,
                  "GET /list/%3Cimg%20src=x%20onerror=alert(1)%3E/ HTTP/1.1\r\nHost: x\r\n\r\n", &r,
                  TIMEOUT);
    HTTP_EXPECT_STATUS(&r, 200);
    if (strstr(r.body, "<img") != NULL ||
        strstr(r.body, "Index of /list/&lt;img src=x onerror=alert(1)&gt;/") == NULL)
        FAIL("the listing of a directory named with markup:\n%s", r.body);
    http_response_free(&r);
    /* The link in the listing leads to the file. */
    expect_get("/list/%3Cb%3E%26%22x%22.txt", 200, "escaped\n");

    http_exchange(port, "GET /bare/ HTTP/1.1\r\nHost: x\r\n\r\n", &r, TIMEOUT);
    HTTP_EXPECT_STATUS(&r, 200);
    ASSERT(strstr(r.body, "Index of /bare/") != NULL);
    ASSERT_EQ(count_of(r.body, "<li>"), 1); /* "../" only */
    ASSERT(strstr(r.body, "<li><a href=\"../\">") != NULL);
    http_response_free(&r);

    expect_get("/docs/", 200, "start\n"); /* --index start.txt */
    expect_type("/docs/", "text/plain; charset=utf-8");
    http_exchange(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r, TIMEOUT);
    HTTP_EXPECT_STATUS(&r, 200); /* no start.txt at the top: a listing */
    ASSERT(strstr(r.body, "<a href=\"hello.txt\">hello.txt</a>") != NULL);
    ASSERT(strstr(r.body, "<a href=\"a%20b.txt\">a b.txt</a>") != NULL);
    ASSERT(strstr(r.body, "../") == NULL); /* nothing above the root */
    http_response_free(&r);
    expect_type("/thing.rit", "application/x-ritual");
    expect_type("/hello.txt", "text/plain; charset=utf-8");
    note("--autoindex lists /list/ with escaped names, --index and --mime apply");
}

TEST_CASES_WITH(make_tree, stop_and_remove_tree, CASE(get_and_head), CASE(other_methods),
                CASE(directories), CASE(names_and_types), CASE(autoindex_index_and_mime))
