/* http_conditional: validators and ranges. If-None-Match (one tag, W/, a
 * list, *) and If-Modified-Since (all three date forms) give 304 without a
 * body; an older date, a wrong tag or a garbled date give the file.
 * Range: first-last, first-, -suffix give 206 with the exact bytes and
 * Content-Range, both from memory (a small file) and with sendfile (a large
 * one); past the end is 416 with "bytes * /SIZE" and a text/plain type;
 * several ranges are multipart/byteranges, sorted, overlapping and adjacent
 * ones merged, each part byte-exact; more than 16 of them, two Range
 * headers, a Range on HEAD, a bad or overflowing header, or an If-Range
 * that no longer matches give the whole file. If-Match and
 * If-Unmodified-Since that do not hold give 412. A list header sent on
 * several lines is one list.
 *
 * Cases: conditionals_small and conditionals_large, ranges_small and
 * ranges_large (the two files), multipart_small and multipart_large,
 * empty_file_ranges, preconditions. All the
 * exchanges of a case share one keep-alive connection, so any framing error
 * (a body after a 304 or a HEAD, say) shows in the next response; the last,
 * a range asked for after the case, shows that the connection is still in
 * step. */
#include "support.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define TIMEOUT 5000
#define SMALL_SIZE 1000
#define LARGE_SIZE 100000 /* above the 16 KiB kept in memory: sendfile */
#define SMALL_SEED 11
#define LARGE_SEED 12

static char root[64];
static struct server server;
static struct http_client *conn;

struct file {
    const char *target;
    uint64_t size;
    uint64_t seed;
    char etag[64];
    time_t mtime;
};

static struct file small = {"/small.bin", SMALL_SIZE, SMALL_SEED, "", 0};
static struct file large = {"/large.bin", LARGE_SIZE, LARGE_SEED, "", 0};
static struct file empty = {"/empty.bin", 0, 13, "", 0};

static void make_file(struct file *f)
{
    file_write_pattern_at(root, f->target + 1, f->seed, f->size);
    char path[128];
    snprintf(path, sizeof path, "%s%s", root, f->target);
    struct stat st;
    SYSCHECK(stat(path, &st));
    f->mtime = st.st_mtim.tv_sec;
    snprintf(f->etag, sizeof f->etag, "\"%llx-%llx\"", (unsigned long long)st.st_mtim.tv_sec,
             (unsigned long long)st.st_size);
}

/* The three date forms of RFC 9110 5.6.7 for `t`. */
static void imf_date(time_t t, char *out, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void rfc850_date(time_t t, char *out, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%A, %d-%b-%y %H:%M:%S GMT", &tm);
}

static void asctime_date(time_t t, char *out, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%a %b %e %H:%M:%S %Y", &tm);
}

static void expect_whole(const struct http_response *r, const struct file *f, const char *what)
{
    if (r->status != 200)
        FAIL("%s %s: status %d, expected 200", f->target, what, r->status);
    ASSERT_EQ(r->body_len, f->size);
    size_t bad = pattern_mismatch(f->seed, 0, r->body, r->body_len);
    if (bad != r->body_len)
        FAIL("%s %s: the body differs from the file at byte %zu", f->target, what, bad);
    HTTP_EXPECT_FIELD(r, "Content-Range", NULL);
}

/* A 304 has no body: a stray one would be read as the next response on
 * the connection, and fail there. */
static void expect_304(const struct http_response *r, const struct file *f, const char *what)
{
    if (r->status != 304)
        FAIL("%s %s: status %d, expected 304", f->target, what, r->status);
    HTTP_EXPECT_FIELD(r, "ETag", f->etag); /* RFC 9110 15.4.5: as a 200 would have */
    HTTP_EXPECT_FIELD(r, "Content-Range", NULL);
}

static void check_conditionals(const struct file *f)
{
    struct http_response r;
    char date[64], alt[64];

    http_ask(conn, &r, "GET", f->target, "%s", "");
    expect_whole(&r, f, "unconditional");
    HTTP_EXPECT_FIELD(&r, "ETag", f->etag);
    imf_date(f->mtime, date, sizeof date);
    HTTP_EXPECT_FIELD(&r, "Last-Modified", date);
    http_response_free(&r);

    /* If-None-Match: compared weakly, any tag of a list, or "*". */
    static const char *const match[] = {"%s", "W/%s",       "\"nope\", %s", "\"a\",%s , \"b\"",
                                        "*",  "\"x\", W/%s"};
    for (size_t i = 0; i < sizeof match / sizeof match[0]; i++) {
        char value[160];
        snprintf(value, sizeof value, match[i], f->etag);
        http_ask(conn, &r, "GET", f->target, "If-None-Match: %s\r\n", value);
        expect_304(&r, f, value);
        http_response_free(&r);
    }
    /* Several lines are one list (RFC 9110 5.3): the tag on the second. */
    http_ask(conn, &r, "GET", f->target, "If-None-Match: \"a\"\r\nIf-None-Match: \"b\", %s\r\n",
             f->etag);
    expect_304(&r, f, "If-None-Match over two lines");
    http_response_free(&r);
    static const char *const mismatch[] = {"\"nope\"", "\"a\", \"b\"", "W/\"nope\"", "\"\""};
    for (size_t i = 0; i < sizeof mismatch / sizeof mismatch[0]; i++) {
        http_ask(conn, &r, "GET", f->target, "If-None-Match: %s\r\n", mismatch[i]);
        expect_whole(&r, f, mismatch[i]);
        http_response_free(&r);
    }
    /* The tag without its quotes is another tag. */
    snprintf(alt, sizeof alt, "%.*s", (int)strlen(f->etag) - 2, f->etag + 1);
    http_ask(conn, &r, "GET", f->target, "If-None-Match: %s\r\n", alt);
    expect_whole(&r, f, "unquoted tag");
    http_response_free(&r);
    http_ask(conn, &r, "HEAD", f->target, "If-None-Match: %s\r\n", f->etag);
    expect_304(&r, f, "HEAD If-None-Match");
    http_response_free(&r);

    /* If-Modified-Since: the file's own date (in all three forms) or a later
     * one is 304; an earlier one or a garbled one the file. */
    http_ask(conn, &r, "GET", f->target, "If-Modified-Since: %s\r\n", date);
    expect_304(&r, f, "If-Modified-Since: Last-Modified");
    http_response_free(&r);
    rfc850_date(f->mtime, alt, sizeof alt);
    http_ask(conn, &r, "GET", f->target, "If-Modified-Since: %s\r\n", alt);
    expect_304(&r, f, alt);
    http_response_free(&r);
    asctime_date(f->mtime, alt, sizeof alt);
    http_ask(conn, &r, "GET", f->target, "If-Modified-Since: %s\r\n", alt);
    expect_304(&r, f, alt);
    http_response_free(&r);
    imf_date(f->mtime + 3600, alt, sizeof alt);
    http_ask(conn, &r, "GET", f->target, "If-Modified-Since: %s\r\n", alt);
    expect_304(&r, f, "If-Modified-Since: an hour later");
    http_response_free(&r);
    imf_date(f->mtime - 1, alt, sizeof alt);
    http_ask(conn, &r, "GET", f->target, "If-Modified-Since: %s\r\n", alt);
    expect_whole(&r, f, "If-Modified-Since: a second earlier");
    http_response_free(&r);
    http_ask(conn, &r, "GET", f->target, "If-Modified-Since: %s\r\n",
             "Sat, 01 Jan 2000 00:00:00 GMT");
    expect_whole(&r, f, "If-Modified-Since: 2000");
    http_response_free(&r);
    static const char *const garbled[] = {"yesterday", "Sun, 32 Foo 2026 99:99:99 GMT", "0", ""};
    for (size_t i = 0; i < sizeof garbled / sizeof garbled[0]; i++) {
        http_ask(conn, &r, "GET", f->target, "If-Modified-Since: %s\r\n", garbled[i]);
        expect_whole(&r, f, garbled[i]);
        http_response_free(&r);
    }
    /* If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3). */
    http_ask(conn, &r, "GET", f->target, "If-None-Match: \"nope\"\r\nIf-Modified-Since: %s\r\n",
             date);
    expect_whole(&r, f, "If-None-Match mismatch, If-Modified-Since match");
    http_response_free(&r);
    http_ask(conn, &r, "GET", f->target, "If-None-Match: %s\r\nIf-Modified-Since: %s\r\n", f->etag,
             "Sat, 01 Jan 2000 00:00:00 GMT");
    expect_304(&r, f, "If-None-Match match, old If-Modified-Since");
    http_response_free(&r);
}

/* A 206 of bytes [first, last] of f, byte-exact, with its Content-Range. */
static void expect_part(const struct http_response *r, const struct file *f, const char *range,
                        uint64_t first, uint64_t last)
{
    if (r->status != 206)
        FAIL("%s Range: %s: status %d, expected 206 (%llu-%llu)", f->target, range, r->status,
             (unsigned long long)first, (unsigned long long)last);
    char want[96];
    snprintf(want, sizeof want, "bytes %llu-%llu/%llu", (unsigned long long)first,
             (unsigned long long)last, (unsigned long long)f->size);
    HTTP_EXPECT_FIELD(r, "Content-Range", want);
    ASSERT(r->has_length); /* then the body read is exactly that long */
    ASSERT_EQ(r->content_length, last - first + 1);
    size_t bad = pattern_mismatch(f->seed, first, r->body, r->body_len);
    if (bad != r->body_len)
        FAIL("%s Range: %s: byte %zu of the part is wrong", f->target, range, bad);
}

static void expect_416(const struct http_response *r, const struct file *f, const char *range)
{
    if (r->status != 416)
        FAIL("%s Range: %s: status %d, expected 416", f->target, range, r->status);
    char want[64];
    snprintf(want, sizeof want, "bytes */%llu", (unsigned long long)f->size);
    HTTP_EXPECT_FIELD(r, "Content-Range", want);
    HTTP_EXPECT_FIELD(r, "Content-Type", "text/plain; charset=utf-8"); /* not the file's */
    HTTP_EXPECT_FIELD(r, "ETag", NULL);
}

static void check_ranges(const struct file *f)
{
    uint64_t n = f->size;
    struct {
        char spec[64];
        uint64_t first, last;
    } parts[] = {
        {"bytes=0-99", 0, 99},
        {"bytes=0-0", 0, 0},
        {"bytes=100-", 100, n - 1},
        {"bytes=-100", n - 100, n - 1},
        {"bytes=-1", n - 1, n - 1},
        {"", n - 1, n - 1},  /* bytes=(n-1)-(n-1) */
        {"", n - 10, n - 1}, /* bytes=(n-10)-(n+1000): the end clamped */
        {"", 0, n - 1},      /* bytes=-(n+5): the whole file, as a part */
        {"", 0, n - 1},      /* bytes=0-(n-1) */
        {"", 0, n - 1},      /* bytes=0-(2^62-1): a huge last, clamped */
        {"BYTES=1-2", 1, 2}, /* the unit is case-insensitive */
        {"bytes= 7-8", 7, 8},
        {"bytes=0000000000000000000000003-00000000000000000000000004", 3, 4},
    };
    snprintf(parts[5].spec, sizeof parts[5].spec, "bytes=%llu-%llu", (unsigned long long)n - 1,
             (unsigned long long)n - 1);
    snprintf(parts[6].spec, sizeof parts[6].spec, "bytes=%llu-%llu", (unsigned long long)n - 10,
             (unsigned long long)n + 1000);
    snprintf(parts[7].spec, sizeof parts[7].spec, "bytes=-%llu", (unsigned long long)n + 5);
    snprintf(parts[8].spec, sizeof parts[8].spec, "bytes=0-%llu", (unsigned long long)n - 1);
    snprintf(parts[9].spec, sizeof parts[9].spec, "bytes=0-4611686018427387903");
    struct http_response r;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        http_ask(conn, &r, "GET", f->target, "Range: %s\r\n", parts[i].spec);
        expect_part(&r, f, parts[i].spec, parts[i].first, parts[i].last);
        http_response_free(&r);
    }
    /* HEAD: Range applies to GET only (RFC 9110 14.2), so the whole file's
     * head, and no body (the next exchange would trip on one). */
    char whole_len[32];
    snprintf(whole_len, sizeof whole_len, "%llu", (unsigned long long)n);
    http_ask(conn, &r, "HEAD", f->target, "Range: bytes=10-19\r\n");
    ASSERT_EQ(r.status, 200);
    HTTP_EXPECT_FIELD(&r, "Content-Length", whole_len);
    HTTP_EXPECT_FIELD(&r, "Content-Range", NULL);
    http_response_free(&r);
    /* Two Range headers: no range. */
    http_ask(conn, &r, "GET", f->target, "Range: bytes=0-1\r\nRange: bytes=2-3\r\n");
    expect_whole(&r, f, "two Range headers");
    http_response_free(&r);

    /* Unsatisfiable: nothing of the file in the range. */
    char spec[96];
    const char *unsatisfiable[] = {spec, "bytes=-0", "bytes=99999999-",
                                   "bytes=4611686018427387904-"};
    snprintf(spec, sizeof spec, "bytes=%llu-", (unsigned long long)n);
    for (size_t i = 0; i < sizeof unsatisfiable / sizeof unsatisfiable[0]; i++) {
        http_ask(conn, &r, "GET", f->target, "Range: %s\r\n", unsatisfiable[i]);
        expect_416(&r, f, unsatisfiable[i]);
        http_response_free(&r);
    }

    /* Ignored, so the whole file: a range read backwards (alone or in a
     * list), another unit, garbage, and numbers too large to hold (never
     * wrapped into a small range). */
    static const char *const whole[] = {
        "bytes=0-0,5-1",
        "bytes=5-1",
        "items=0-5",
        "bytes=abc",
        "bytes=",
        "bytes=-",
        "bytes=1-2-3",
        "bytes=--5",
        "bytes=0x10-0x20",
        "bytes=0-99999999999999999999999",
        "bytes=-99999999999999999999",
        "bytes=18446744073709551615-",
        "bytes=18446744073709551616-",
        "bytes=0-18446744073709551615",
        "bytes=18446744073709551615-18446744073709551615",
        "bytes=9223372036854775807-9223372036854775808",
        "bytes=-18446744073709551615",
        "bytes=-9223372036854775808",
    };
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++) {
        http_ask(conn, &r, "GET", f->target, "Range: %s\r\n", whole[i]);
        expect_whole(&r, f, whole[i]);
        http_response_free(&r);
    }

    /* If-Range: the part only if the validator still holds (strongly). */
    char date[64];
    imf_date(f->mtime, date, sizeof date);
    http_ask(conn, &r, "GET", f->target, "Range: bytes=5-9\r\nIf-Range: %s\r\n", f->etag);
    expect_part(&r, f, "If-Range: the ETag", 5, 9);
    http_response_free(&r);
    http_ask(conn, &r, "GET", f->target, "Range: bytes=5-9\r\nIf-Range: %s\r\n", date);
    expect_part(&r, f, "If-Range: Last-Modified", 5, 9);
    http_response_free(&r);
    http_ask(conn, &r, "GET", f->target, "Range: bytes=5-9\r\nIf-Range: \"nope\"\r\n");
    expect_whole(&r, f, "If-Range: another tag");
    http_response_free(&r);
    http_ask(conn, &r, "GET", f->target, "Range: bytes=5-9\r\nIf-Range: W/%s\r\n", f->etag);
    expect_whole(&r, f, "If-Range: a weak tag");
    http_response_free(&r);
    http_ask(conn, &r, "GET", f->target,
             "Range: bytes=5-9\r\nIf-Range: Sat, 01 Jan 2000 00:00:00 GMT\r\n");
    expect_whole(&r, f, "If-Range: another date");
    http_response_free(&r);
    http_ask(conn, &r, "GET", f->target, "Range: bytes=99999999-\r\nIf-Range: \"nope\"\r\n");
    expect_whole(&r, f, "If-Range mismatch with an unsatisfiable range");
    http_response_free(&r);

    /* A matching If-None-Match wins over Range. */
    http_ask(conn, &r, "GET", f->target, "Range: bytes=5-9\r\nIf-None-Match: %s\r\n", f->etag);
    expect_304(&r, f, "Range with a matching If-None-Match");
    http_response_free(&r);
}

/* Reads one part of a multipart/byteranges body at *p: its head names the
 * file's type and `first`-`last`, its bytes are the file's. */
static const char *expect_body_part(const char *p, const char *end, const char *boundary,
                                    const struct file *f, uint64_t first, uint64_t last)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "\r\n--%s\r\nContent-Type: application/octet-stream\r\n"
                     "Content-Range: bytes %llu-%llu/%llu\r\n\r\n",
                     boundary, (unsigned long long)first, (unsigned long long)last,
                     (unsigned long long)f->size);
    if ((size_t)(end - p) < (size_t)n || memcmp(p, head, (size_t)n) != 0)
        FAIL("%s: part %llu-%llu: expected the head\n%s\ngot\n%.*s", f->target,
             (unsigned long long)first, (unsigned long long)last, head,
             (int)((size_t)(end - p) < (size_t)n ? (size_t)(end - p) : (size_t)n), p);
    p += n;
    size_t len = (size_t)(last - first + 1);
    ASSERT((size_t)(end - p) >= len);
    size_t bad = pattern_mismatch(f->seed, first, p, len);
    if (bad != len)
        FAIL("%s: part %llu-%llu: byte %zu is wrong", f->target, (unsigned long long)first,
             (unsigned long long)last, bad);
    return p + len;
}

/* A multipart/byteranges answer holding exactly the parts want[0..n). */
static void expect_multipart(const struct http_response *r, const struct file *f, const char *range,
                             const uint64_t (*want)[2], size_t n)
{
    if (r->status != 206)
        FAIL("%s Range: %s: status %d, expected 206", f->target, range, r->status);
    const char *type = http_field(r, "Content-Type");
    static const char prefix[] = "multipart/byteranges; boundary=";
    if (!type || strncmp(type, prefix, sizeof prefix - 1) != 0)
        FAIL("%s Range: %s: Content-Type %s", f->target, range, type ? type : "(none)");
    const char *boundary = type + sizeof prefix - 1;
    ASSERT(strlen(boundary) >= 16);
    HTTP_EXPECT_FIELD(r, "Content-Range", NULL);
    HTTP_EXPECT_FIELD(r, "ETag", f->etag);
    ASSERT(r->has_length);
    const char *p = r->body, *end = r->body + r->body_len;
    for (size_t i = 0; i < n; i++)
        p = expect_body_part(p, end, boundary, f, want[i][0], want[i][1]);
    char close[64];
    int len = snprintf(close, sizeof close, "\r\n--%s--\r\n", boundary);
    if (end - p != len || memcmp(p, close, (size_t)len) != 0)
        FAIL("%s Range: %s: the body does not end with the closing boundary", f->target, range);
}

static void check_multipart(const struct file *f)
{
    uint64_t n = f->size;
    struct http_response r;
    http_ask(conn, &r, "GET", f->target, "Range: bytes=0-0,5-9\r\n");
    expect_multipart(&r, f, "0-0,5-9", (const uint64_t[][2]){{0, 0}, {5, 9}}, 2);
    http_response_free(&r);
    /* a suffix, and out of order: sent sorted */
    http_ask(conn, &r, "GET", f->target, "Range: bytes=-1, 0-1\r\n");
    expect_multipart(&r, f, "-1, 0-1", (const uint64_t[][2]){{0, 1}, {n - 1, n - 1}}, 2);
    http_response_free(&r);
    /* overlapping and adjacent ranges merged; one left is a plain 206 */
    http_ask(conn, &r, "GET", f->target, "Range: bytes=0-9,5-19,20-29\r\n");
    expect_part(&r, f, "0-9,5-19,20-29", 0, 29);
    http_response_free(&r);
    http_ask(conn, &r, "GET", f->target, "Range: bytes=100-199,0-9,150-300,50-60\r\n");
    expect_multipart(&r, f, "four, two overlapping",
                     (const uint64_t[][2]){{0, 9}, {50, 60}, {100, 300}}, 3);
    http_response_free(&r);
    /* one past the end is dropped, the others sent */
    char spec[128];
    snprintf(spec, sizeof spec, "bytes=1-2,%llu-,4-5", (unsigned long long)n + 10);
    http_ask(conn, &r, "GET", f->target, "Range: %s\r\n", spec);
    expect_multipart(&r, f, spec, (const uint64_t[][2]){{1, 2}, {4, 5}}, 2);
    http_response_free(&r);
    /* 16 ranges are served, 17 are ignored (nginx's max_ranges) */
    char many[512] = "bytes=";
    uint64_t parts[17][2];
    for (int i = 0; i < 17; i++) {
        parts[i][0] = (uint64_t)i * 10;
        parts[i][1] = (uint64_t)i * 10 + 3;
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s%d-%d", i ? "," : "", i * 10,
                 i * 10 + 3);
        if (i == 15) {
            http_ask(conn, &r, "GET", f->target, "Range: %s\r\n", many);
            expect_multipart(&r, f, "16 ranges", (const uint64_t(*)[2])parts, 16);
            http_response_free(&r);
        }
    }
    http_ask(conn, &r, "GET", f->target, "Range: %s\r\n", many);
    expect_whole(&r, f, "17 ranges");
    http_response_free(&r);
}

/* If-Match and If-Unmodified-Since (RFC 9110 13.1.1, 13.1.4): an origin
 * server MUST evaluate them; a false condition is 412, never the file. */
static void check_preconditions(const struct file *f)
{
    struct http_response r;
    char date[64];
    imf_date(f->mtime, date, sizeof date);
    http_ask(conn, &r, "GET", f->target, "If-Match: %s\r\n", f->etag);
    expect_whole(&r, f, "If-Match: the ETag");
    http_response_free(&r);
    http_ask(conn, &r, "GET", f->target, "If-Match: *\r\n");
    expect_whole(&r, f, "If-Match: *");
    http_response_free(&r);
    http_ask(conn, &r, "GET", f->target, "If-Unmodified-Since: %s\r\n", date);
    expect_whole(&r, f, "If-Unmodified-Since: Last-Modified");
    http_response_free(&r);
    http_ask(conn, &r, "GET", f->target, "If-Match: \"a\"\r\nIf-Match: %s\r\n", f->etag);
    expect_whole(&r, f, "If-Match: the ETag on a second line");
    http_response_free(&r);

    http_ask(conn, &r, "GET", f->target, "If-Match: \"nope\"\r\n");
    if (r.status != 412)
        FAIL("%s If-Match: \"nope\": status %d, expected 412 (RFC 9110 13.1.1)", f->target,
             r.status);
    http_response_free(&r);
    http_ask(conn, &r, "GET", f->target, "Range: bytes=0-9\r\nIf-Match: W/%s\r\n", f->etag);
    if (r.status != 412) /* If-Match compares strongly */
        FAIL("%s If-Match: W/%s: status %d, expected 412", f->target, f->etag, r.status);
    http_response_free(&r);
    http_ask(conn, &r, "GET", f->target, "If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n");
    if (r.status != 412)
        FAIL("%s If-Unmodified-Since: 2000: status %d, expected 412 (RFC 9110 13.1.4)", f->target,
             r.status);
    http_response_free(&r);
}

/* The tree (the small, large and empty files), the server and the case's
 * connection. */
static void start(void)
{
    temp_dir_make(root, sizeof root);
    make_file(&small);
    make_file(&large);
    file_write_at(root, "empty.bin", "", 0);
    http_server_start(ritual_program(), root, NULL, &server);
    conn = http_client_open(server.port);
}

/* Everything the case asked went over one connection: it is still in step. */
static void finish(void)
{
    struct http_response r;
    http_ask(conn, &r, "GET", "/small.bin", "Range: bytes=0-3\r\n");
    expect_part(&r, &small, "after the case", 0, 3);
    http_response_free(&r);
    http_client_close(conn);
    server_expect_clean_exit(&server);
    remove_tree(root);
}

static void conditionals_small(void)
{
    check_conditionals(&small);
    note("%s (%llu bytes): If-None-Match and If-Modified-Since", small.target,
         (unsigned long long)small.size);
}

static void conditionals_large(void)
{
    check_conditionals(&large);
    note("%s (%llu bytes): If-None-Match and If-Modified-Since", large.target,
         (unsigned long long)large.size);
}

static void ranges_small(void)
{
    check_ranges(&small);
    note("%s: single ranges 206 byte-exact, 416, the rest ignored; If-Range", small.target);
}

static void ranges_large(void)
{
    check_ranges(&large);
    note("%s: single ranges 206 byte-exact, 416, the rest ignored; If-Range", large.target);
}

static void multipart_small(void)
{
    check_multipart(&small);
    note("%s: several ranges as multipart/byteranges, merged, at most 16", small.target);
}

static void multipart_large(void)
{
    check_multipart(&large);
    note("%s: several ranges as multipart/byteranges, merged, at most 16", large.target);
}

/* An empty file: no range of it can be satisfied. */
static void empty_file_ranges(void)
{
    struct http_response r;
    http_ask(conn, &r, "GET", empty.target, "Range: bytes=0-\r\n");
    expect_416(&r, &empty, "bytes=0- of an empty file");
    http_response_free(&r);
    http_ask(conn, &r, "GET", empty.target, "Range: bytes=-5\r\n");
    expect_416(&r, &empty, "bytes=-5 of an empty file");
    http_response_free(&r);
}

static void preconditions(void)
{
    check_preconditions(&small);
}

TEST_CASES_WITH(start, finish, CASE(conditionals_small), CASE(conditionals_large),
                CASE(ranges_small), CASE(ranges_large), CASE(multipart_small),
                CASE(multipart_large), CASE(empty_file_ranges), CASE(preconditions))
