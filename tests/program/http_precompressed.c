/* http_precompressed: file.br, file.zst and file.gz beside a file are sent
 * to clients whose Accept-Encoding takes them, as nginx's gzip_static does.
 * The server never decodes them, so the siblings here hold marker bytes.
 *
 * Cases: negotiation (q-values, q=0, "*", identity, none, several lines,
 * case; each answer's Content-Encoding, Vary, Content-Type, ETag and
 * Content-Length), some_siblings (only .gz; none at all: no Vary; an index
 * file; a sibling that is a directory; one older than its file), ranges_
 * and_conditionals (one Range and several, a 416 with Vary and the br size,
 * If-None-Match (a 304 without Content-Type, Content-Encoding and
 * Accept-Ranges), If-Match and If-Range on the br variant, HEAD),
 * siblings_appear (a sibling created later, found at the recheck),
 * option_list (--precompressed off, gzip only, gzip,br order, bad lists),
 * curl_compressed (a real .gz, decoded by curl --compressed to the file). */
#include "support.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TIMEOUT 5000

static char root[64];
static struct server server;
static struct http_client *conn;

static const char original[] = "the original text, longer than its siblings\n";
static const char br[] = "BR-BYTES";
static const char zst[] = "ZSTD-BYTES!";
static const char gz[] = "GZIP-BYTES!!!";

static void make_tree(void)
{
    temp_dir_make(root, sizeof root);
    file_write_at(root, "a.txt", original, strlen(original));
    file_write_at(root, "a.txt.br", br, strlen(br));
    file_write_at(root, "a.txt.zst", zst, strlen(zst));
    file_write_at(root, "a.txt.gz", gz, strlen(gz));
    file_write_at(root, "b.css", "p{}\n", 4);
    file_write_at(root, "b.css.gz", gz, strlen(gz));
    file_write_at(root, "plain.txt", "plain\n", 6);
    dir_make_at(root, "docs");
    file_write_at(root, "docs/index.html", "<p>docs</p>\n", 12);
    file_write_at(root, "docs/index.html.br", br, strlen(br));
    file_write_at(root, "dir.txt", "dir\n", 4);
    dir_make_at(root, "dir.txt.br"); /* not a regular file: never sent */
    file_write_at(root, "old.txt", "old\n", 4);
    file_write_at(root, "old.txt.br", br, strlen(br));
}

static void serve(const char *const extra[])
{
    http_server_start(ritual_program(), root, extra, &server);
    conn = http_client_open(server.port);
}

static void finish(void)
{
    if (conn)
        http_client_close(conn);
    conn = NULL;
    server_expect_clean_exit(&server);
    remove_tree(root);
}

/* The ETag the server derives from the file at `rel`, "-CODING" inside the
 * quotes for a sibling. */
static void etag_of(const char *rel, const char *coding, char *out, size_t cap)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    struct stat st;
    SYSCHECK(stat(path, &st));
    snprintf(out, cap, "\"%llx-%llx%s%s\"", (unsigned long long)st.st_mtim.tv_sec,
             (unsigned long long)st.st_size, coding ? "-" : "", coding ? coding : "");
}

/* The answer is the sibling for `coding` (NULL: the file itself) of
 * `target` (the file `rel`), with Vary when `vary`. */
static void expect_variant(const struct http_response *r, const char *rel, const char *coding,
                           const char *body, bool vary, const char *type, const char *what)
{
    if (r->status != 200)
        FAIL("%s: status %d, expected 200", what, r->status);
    const char *ce = http_field(r, "Content-Encoding");
    if ((ce == NULL) != (coding == NULL) || (ce && strcmp(ce, coding) != 0))
        FAIL("%s: Content-Encoding %s, expected %s", what, ce ? ce : "(none)",
             coding ? coding : "(none)");
    if (r->body_len != strlen(body) || memcmp(r->body, body, r->body_len) != 0)
        FAIL("%s: body \"%.*s\", expected \"%s\"", what, (int)r->body_len, r->body, body);
    ASSERT_EQ(r->content_length, strlen(body));
    HTTP_EXPECT_FIELD(r, "Vary", vary ? "Accept-Encoding" : NULL);
    ASSERT_EQ(http_field_count(r, "Vary"), vary ? 1 : 0);
    HTTP_EXPECT_FIELD(r, "Content-Type", type);
    char file[128], etag[96];
    snprintf(file, sizeof file, "%s%s%s", rel,
             !coding                       ? ""
             : strcmp(coding, "br") == 0   ? ".br"
             : strcmp(coding, "zstd") == 0 ? ".zst"
                                           : ".gz",
             "");
    etag_of(file, coding, etag, sizeof etag);
    HTTP_EXPECT_FIELD(r, "ETag", etag);
}

static const char text[] = "text/plain; charset=utf-8";

static void negotiation(void)
{
    serve(NULL);
    static const struct {
        const char *headers; /* lines, each ending in CRLF */
        const char *coding;  /* NULL: the file itself */
    } cases[] = {
        {"", NULL},
        {"Accept-Encoding: br\r\n", "br"},
        {"Accept-Encoding: zstd\r\n", "zstd"},
        {"Accept-Encoding: gzip\r\n", "gzip"},
        {"Accept-Encoding: gzip, deflate, br, zstd\r\n", "br"},
        {"Accept-Encoding: gzip, zstd\r\n", "zstd"},
        {"Accept-Encoding: br;q=0.5, gzip;q=0.8\r\n", "gzip"},
        {"Accept-Encoding: br;q=0.5, zstd;q=0.5, gzip;q=0.4\r\n", "br"},
        {"Accept-Encoding: br ; q=0.2 , gzip;q=0.3\r\n", "gzip"},
        {"Accept-Encoding: br;q=0, zstd;q=0, gzip\r\n", "gzip"},
        {"Accept-Encoding: br;q=0\r\n", NULL},
        {"Accept-Encoding: gzip;q=0.001\r\n", "gzip"},
        {"Accept-Encoding: gzip;q=0.000\r\n", NULL},
        {"Accept-Encoding: br;q=2\r\n", NULL}, /* an unreadable q-value refuses */
        {"Accept-Encoding: *\r\n", "br"},
        {"Accept-Encoding: *, br;q=0\r\n", "zstd"},
        {"Accept-Encoding: *;q=0\r\n", NULL},
        {"Accept-Encoding: identity\r\n", NULL},
        {"Accept-Encoding: identity;q=1, gzip;q=0.5\r\n", NULL},
        {"Accept-Encoding: identity;q=0.5, gzip\r\n", "gzip"},
        {"Accept-Encoding: deflate\r\n", NULL},
        {"Accept-Encoding: \r\n", NULL},
        {"Accept-Encoding: BR\r\n", "br"},
        {"Accept-Encoding: x-gzip\r\n", "gzip"},
        {"Accept-Encoding: deflate\r\nAccept-Encoding: gzip\r\n", "gzip"}, /* one list */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *body = !cases[i].coding                       ? original
                           : strcmp(cases[i].coding, "br") == 0   ? br
                           : strcmp(cases[i].coding, "zstd") == 0 ? zst
                                                                  : gz;
        char what[160];
        snprintf(what, sizeof what, "GET /a.txt with \"%.*s\"",
                 (int)strcspn(cases[i].headers, "\r"), cases[i].headers);
        struct http_response r;
        http_ask(conn, &r, "GET", "/a.txt", "%s", cases[i].headers);
        expect_variant(&r, "a.txt", cases[i].coding, body, true, text, what);
        http_response_free(&r);
    }
    note("%zu Accept-Encoding forms: the right sibling, Vary on each",
         sizeof cases / sizeof cases[0]);
    finish();
}

static void some_siblings(void)
{
    serve(NULL);
    struct http_response r;
    http_ask(conn, &r, "GET", "/b.css", "Accept-Encoding: br\r\n");
    expect_variant(&r, "b.css", NULL, "p{}\n", true, "text/css; charset=utf-8", "b.css, br");
    http_response_free(&r);
    http_ask(conn, &r, "GET", "/b.css", "Accept-Encoding: br, gzip\r\n");
    expect_variant(&r, "b.css", "gzip", gz, true, "text/css; charset=utf-8", "b.css, br, gzip");
    http_response_free(&r);
    /* No sibling: no Vary, as before. */
    http_ask(conn, &r, "GET", "/plain.txt", "Accept-Encoding: br, gzip\r\n");
    expect_variant(&r, "plain.txt", NULL, "plain\n", false, text, "plain.txt");
    http_response_free(&r);
    /* The index file's sibling, for the directory. */
    http_ask(conn, &r, "GET", "/docs/", "Accept-Encoding: br\r\n");
    expect_variant(&r, "docs/index.html", "br", br, true, "text/html; charset=utf-8", "/docs/");
    http_response_free(&r);
    /* A directory named like a sibling is not one. */
    http_ask(conn, &r, "GET", "/dir.txt", "Accept-Encoding: br\r\n");
    expect_variant(&r, "dir.txt", NULL, "dir\n", false, text, "dir.txt beside dir.txt.br/");
    http_response_free(&r);
    /* A sibling older than its file is still sent, as nginx's gzip_static
     * does: the server does not judge what the operator put there. */
    char path[256];
    snprintf(path, sizeof path, "%s/old.txt.br", root);
    struct timespec old[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    SYSCHECK(utimensat(AT_FDCWD, path, old, 0));
    http_ask(conn, &r, "GET", "/old.txt", "Accept-Encoding: br\r\n");
    expect_variant(&r, "old.txt", "br", br, true, text, "old.txt.br, older than old.txt");
    http_response_free(&r);
    /* The sibling asked for by its own name is a file like any other. */
    http_ask(conn, &r, "GET", "/a.txt.gz", "Accept-Encoding: gzip\r\n");
    HTTP_EXPECT_STATUS(&r, 200);
    HTTP_EXPECT_FIELD(&r, "Content-Encoding", NULL);
    ASSERT_EQ(r.body_len, strlen(gz));
    http_response_free(&r);
    note("only .gz, none, an index file, a directory, an older sibling");
    finish();
}

static void ranges_and_conditionals(void)
{
    serve(NULL);
    char etag_br[96], etag_id[96];
    etag_of("a.txt.br", "br", etag_br, sizeof etag_br);
    etag_of("a.txt", NULL, etag_id, sizeof etag_id);
    ASSERT(strcmp(etag_br, etag_id) != 0);

    struct http_response r;
    http_ask(conn, &r, "GET", "/a.txt", "Accept-Encoding: br\r\nRange: bytes=1-3\r\n");
    HTTP_EXPECT_STATUS(&r, 206);
    HTTP_EXPECT_FIELD(&r, "Content-Encoding", "br");
    HTTP_EXPECT_FIELD(&r, "Vary", "Accept-Encoding");
    char range[64];
    snprintf(range, sizeof range, "bytes 1-3/%zu", strlen(br));
    HTTP_EXPECT_FIELD(&r, "Content-Range", range);
    ASSERT_EQ(r.body_len, 3u);
    ASSERT(memcmp(r.body, br + 1, 3) == 0);
    http_response_free(&r);

    http_ask(conn, &r, "GET", "/a.txt",
             "Accept-Encoding: br\r\nRange: bytes=1-3\r\nIf-Range: %s\r\n", etag_br);
    HTTP_EXPECT_STATUS(&r, 206);
    http_response_free(&r);
    /* Past the end of the br bytes: a 416 of its own, no coding claimed,
     * the br size, and Vary: that size depends on Accept-Encoding. */
    http_ask(conn, &r, "GET", "/a.txt", "Accept-Encoding: br\r\nRange: bytes=100000-\r\n");
    HTTP_EXPECT_STATUS(&r, 416);
    HTTP_EXPECT_FIELD(&r, "Content-Encoding", NULL);
    HTTP_EXPECT_FIELD(&r, "Content-Type", "text/plain; charset=utf-8");
    snprintf(range, sizeof range, "bytes */%zu", strlen(br));
    HTTP_EXPECT_FIELD(&r, "Content-Range", range);
    HTTP_EXPECT_FIELD(&r, "Vary", "Accept-Encoding");
    http_response_free(&r);
    /* A file without siblings: no Vary on its 416. */
    http_ask(conn, &r, "GET", "/plain.txt", "Accept-Encoding: br\r\nRange: bytes=100-\r\n");
    HTTP_EXPECT_STATUS(&r, 416);
    HTTP_EXPECT_FIELD(&r, "Vary", NULL);
    http_response_free(&r);
    /* Several ranges are of the br bytes too: parts of the encoded
     * representation, Content-Encoding on the whole answer. */
    http_ask(conn, &r, "GET", "/a.txt", "Accept-Encoding: br\r\nRange: bytes=0-0,2-2\r\n");
    HTTP_EXPECT_STATUS(&r, 206);
    HTTP_EXPECT_FIELD(&r, "Content-Encoding", "br");
    HTTP_EXPECT_FIELD(&r, "ETag", etag_br);
    HTTP_EXPECT_FIELD(&r, "Vary", "Accept-Encoding");
    ASSERT(strncmp(http_field(&r, "Content-Type"), "multipart/byteranges; boundary=", 31) == 0);
    char part[96];
    snprintf(part, sizeof part, "Content-Type: %s\r\nContent-Range: bytes 0-0/%zu\r\n\r\nB\r\n",
             text, strlen(br));
    ASSERT(strstr(r.body, part) != NULL);
    snprintf(part, sizeof part, "Content-Range: bytes 2-2/%zu\r\n\r\n-\r\n", strlen(br));
    ASSERT(strstr(r.body, part) != NULL);
    http_response_free(&r);
    /* Without Accept-Encoding, the file's own bytes and tag. */
    http_ask(conn, &r, "GET", "/a.txt", "Range: bytes=0-0,2-2\r\n");
    HTTP_EXPECT_STATUS(&r, 206);
    HTTP_EXPECT_FIELD(&r, "Content-Encoding", NULL);
    HTTP_EXPECT_FIELD(&r, "ETag", etag_id);
    HTTP_EXPECT_FIELD(&r, "Vary", "Accept-Encoding");
    snprintf(part, sizeof part, "Content-Range: bytes 2-2/%zu\r\n\r\ne\r\n", strlen(original));
    ASSERT(strstr(r.body, part) != NULL);
    http_response_free(&r);
    http_ask(conn, &r, "GET", "/a.txt",
             "Accept-Encoding: br\r\nRange: bytes=1-3\r\nIf-Range: %s\r\n", etag_id);
    expect_variant(&r, "a.txt", "br", br, true, text, "If-Range with the identity ETag");
    http_response_free(&r);

    http_ask(conn, &r, "GET", "/a.txt", "Accept-Encoding: br\r\nIf-None-Match: %s\r\n", etag_br);
    HTTP_EXPECT_STATUS(&r, 304);
    HTTP_EXPECT_FIELD(&r, "ETag", etag_br);
    HTTP_EXPECT_FIELD(&r, "Vary", "Accept-Encoding");
    /* representation metadata stays out of a 304 (RFC 9110 15.4.5) */
    HTTP_EXPECT_FIELD(&r, "Content-Encoding", NULL);
    HTTP_EXPECT_FIELD(&r, "Content-Type", NULL);
    HTTP_EXPECT_FIELD(&r, "Accept-Ranges", NULL);
    http_response_free(&r);
    /* The br tag does not match the file itself. */
    http_ask(conn, &r, "GET", "/a.txt", "If-None-Match: %s\r\n", etag_br);
    expect_variant(&r, "a.txt", NULL, original, true, text, "If-None-Match: the br ETag");
    http_response_free(&r);
    http_ask(conn, &r, "GET", "/a.txt", "Accept-Encoding: gzip\r\nIf-None-Match: %s\r\n", etag_br);
    expect_variant(&r, "a.txt", "gzip", gz, true, text, "gzip with If-None-Match: the br ETag");
    http_response_free(&r);
    http_ask(conn, &r, "GET", "/a.txt", "Accept-Encoding: br\r\nIf-Match: %s\r\n", etag_id);
    HTTP_EXPECT_STATUS(&r, 412);
    HTTP_EXPECT_FIELD(&r, "Vary", "Accept-Encoding");
    http_response_free(&r);

    http_ask(conn, &r, "HEAD", "/a.txt", "Accept-Encoding: br\r\n");
    HTTP_EXPECT_STATUS(&r, 200);
    HTTP_EXPECT_FIELD(&r, "Content-Encoding", "br");
    HTTP_EXPECT_FIELD(&r, "Vary", "Accept-Encoding");
    HTTP_EXPECT_FIELD(&r, "ETag", etag_br);
    ASSERT_EQ(r.content_length, strlen(br));
    ASSERT_EQ(r.body_len, 0u);
    http_response_free(&r);
    /* Still in step after the HEAD: no stray body. */
    http_ask(conn, &r, "GET", "/a.txt", "Accept-Encoding: zstd\r\n");
    expect_variant(&r, "a.txt", "zstd", zst, true, text, "after HEAD");
    http_response_free(&r);
    note("Range, If-Range, If-None-Match, If-Match and HEAD on the br variant");
    finish();
}

/* The siblings are looked for once and rechecked with the file: one made
 * later is found within the recheck interval, one removed is no longer
 * sent. */
static void siblings_appear(void)
{
    serve((const char *const[]){"--open-file-cache-valid", "0.1", NULL});
    struct http_response r;
    http_ask(conn, &r, "GET", "/plain.txt", "Accept-Encoding: br\r\n");
    expect_variant(&r, "plain.txt", NULL, "plain\n", false, text, "before plain.txt.br");
    http_response_free(&r);
    file_write_at(root, "plain.txt.br", br, strlen(br));
    uint64_t deadline = now_ms() + 5000;
    for (;;) {
        http_ask(conn, &r, "GET", "/plain.txt", "Accept-Encoding: br\r\n");
        bool found = http_field(&r, "Content-Encoding") != NULL;
        if (found)
            expect_variant(&r, "plain.txt", "br", br, true, text, "after plain.txt.br");
        http_response_free(&r);
        if (found)
            break;
        if (now_ms() > deadline)
            FAIL("plain.txt.br, made after the first request, not sent within 5 s");
        sleep_ms(20);
    }
    char path[256];
    snprintf(path, sizeof path, "%s/plain.txt.br", root);
    SYSCHECK(unlink(path));
    deadline = now_ms() + 5000;
    for (;;) {
        http_ask(conn, &r, "GET", "/plain.txt", "Accept-Encoding: br\r\n");
        bool gone = http_field(&r, "Content-Encoding") == NULL;
        if (gone)
            expect_variant(&r, "plain.txt", NULL, "plain\n", false, text, "after the unlink");
        http_response_free(&r);
        if (gone)
            break;
        if (now_ms() > deadline)
            FAIL("plain.txt.br, removed, still sent after 5 s");
        sleep_ms(20);
    }
    note("a sibling made later is sent, one removed is not, within the recheck");
    finish();
}

static void expect_usage_error(const char *list)
{
    const char *argv[] = {ritual_program(), "http", "--root", root, "--precompressed", list, NULL};
    struct cmd_result res;
    run_command(argv, TIMEOUT, &res);
    if (res.exit_code != 2 || strstr(res.err, "--precompressed") == NULL)
        FAIL("--precompressed '%s': exit %d, stderr \"%s\"; expected a usage error", list,
             res.exit_code, res.err);
}

static void option_list(void)
{
    serve((const char *const[]){"--precompressed", "off", NULL});
    struct http_response r;
    http_ask(conn, &r, "GET", "/a.txt", "Accept-Encoding: br, zstd, gzip\r\n");
    expect_variant(&r, "a.txt", NULL, original, false, text, "--precompressed off");
    http_response_free(&r);
    http_client_close(conn);
    server_expect_clean_exit(&server);

    serve((const char *const[]){"--precompressed", "", NULL});
    http_ask(conn, &r, "GET", "/a.txt", "Accept-Encoding: br\r\n");
    expect_variant(&r, "a.txt", NULL, original, false, text, "--precompressed ''");
    http_response_free(&r);
    http_client_close(conn);
    server_expect_clean_exit(&server);

    serve((const char *const[]){"--precompressed", "gzip", NULL});
    http_ask(conn, &r, "GET", "/a.txt", "Accept-Encoding: br, zstd, gzip\r\n");
    expect_variant(&r, "a.txt", "gzip", gz, true, text, "--precompressed gzip");
    http_response_free(&r);
    http_ask(conn, &r, "GET", "/a.txt", "Accept-Encoding: br\r\n");
    expect_variant(&r, "a.txt", NULL, original, true, text, "--precompressed gzip, br asked");
    http_response_free(&r);
    http_client_close(conn);
    server_expect_clean_exit(&server);

    /* The list's order breaks ties; q-values still come first. */
    serve((const char *const[]){"--precompressed", "gzip,br", NULL});
    http_ask(conn, &r, "GET", "/a.txt", "Accept-Encoding: br, gzip\r\n");
    expect_variant(&r, "a.txt", "gzip", gz, true, text, "gzip,br: a tie");
    http_response_free(&r);
    http_ask(conn, &r, "GET", "/a.txt", "Accept-Encoding: br, gzip;q=0.9\r\n");
    expect_variant(&r, "a.txt", "br", br, true, text, "gzip,br: br preferred by q");
    http_response_free(&r);

    expect_usage_error("deflate");
    expect_usage_error("br,br");
    expect_usage_error("br,");
    expect_usage_error("br gzip");
    note("off, empty, gzip alone, gzip,br order; bad lists are usage errors");
    finish();
}

/* A real gzip file: curl --compressed asks for it and gets the original
 * bytes back once it has decoded it. */
static void curl_compressed(void)
{
    char curl[256], gzip[256];
    if (!find_tool("curl", curl, sizeof curl) || !find_tool("gzip", gzip, sizeof gzip)) {
        serve(NULL);
        finish();
        return;
    }
    char big[8192];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = "ritual serves precompressed files\n"[i % 34];
    file_write_at(root, "big.txt", big, sizeof big);
    char path[256];
    snprintf(path, sizeof path, "%s/big.txt", root);
    struct cmd_result res;
    run_command((const char *const[]){gzip, "-k", "-9", path, NULL}, TIMEOUT, &res);
    ASSERT_EQ(res.exit_code, 0);
    serve(NULL);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/big.txt", server.port);
    run_command((const char *const[]){curl, "-sS", "--compressed", "-D", "/dev/stderr", url, NULL},
                TIMEOUT, &res);
    ASSERT_EQ(res.exit_code, 0);
    if (strcasestr(res.err, "Content-Encoding: gzip") == NULL)
        FAIL("curl --compressed was not sent big.txt.gz; its headers:\n%s", res.err);
    if (res.out_len != sizeof big || memcmp(res.out, big, sizeof big) != 0)
        FAIL("curl --compressed got %zu bytes, not the original %zu", res.out_len, sizeof big);
    note("curl --compressed: big.txt.gz sent, the original bytes decoded");
    finish();
}

TEST_CASES_WITH(make_tree, NULL, CASE(negotiation), CASE(some_siblings),
                CASE(ranges_and_conditionals), CASE(siblings_appear), CASE(option_list),
                CASE(curl_compressed))
