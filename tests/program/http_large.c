/* http_large: big files arrive whole and exact. A 64 MiB random file fetched
 * with curl has the file's SHA-256. A 4 GiB sparse file (and a 5 GiB one,
 * past 2^32) has the right Content-Length, and ranges near 2^31, near the end
 * and beyond 2^32 return exactly the bytes written there with pwrite: an
 * offset or a length cut to 32 bits anywhere would show. The whole 4 GiB is
 * fetched too, every byte checked, unless that takes over 20 s (then the
 * rest of it is skipped with a note). */
#include "support.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TIMEOUT 10000
#define RANDOM_SIZE (64u << 20)
#define GIB (1ull << 30)
#define SIZE_4G (4 * GIB)
#define SIZE_5G (5 * GIB + 1)
#define MARK_SEED 41
#define FULL_BUDGET_MS 20000

static char root[64];
static int port;
static struct server server;

/* Bytes written into the sparse files: [offset, offset + len) of the
 * pattern stream MARK_SEED, at the same offset in the file. */
struct mark {
    uint64_t offset;
    size_t len;
};

static const struct mark marks_4g[] = {
    {0, 16},              /* the first bytes */
    {2 * GIB - 16, 32},   /* across 2^31 */
    {SIZE_4G - 200, 200}, /* the end */
};
static const struct mark marks_5g[] = {
    {100, 16},           /* what an offset cut to 32 bits would read */
    {SIZE_4G + 100, 64}, /* past 2^32 */
    {SIZE_5G - 1, 1},    /* the last byte */
};

static void make_sparse(const char *name, uint64_t size, const struct mark *marks, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", root, name);
    int fd = SYSCHECK(open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    SYSCHECK(ftruncate(fd, (off_t)size));
    for (size_t i = 0; i < n; i++) {
        char buf[256];
        ASSERT_LE(marks[i].len, sizeof buf);
        pattern_fill(MARK_SEED, marks[i].offset, buf, marks[i].len);
        ASSERT_EQ(pwrite(fd, buf, marks[i].len, (off_t)marks[i].offset), (ssize_t)marks[i].len);
    }
    SYSCHECK(close(fd));
}

/* The expected bytes [offset, offset + len) of a sparse file. */
static void expected(const struct mark *marks, size_t n, uint64_t offset, char *out, size_t len)
{
    memset(out, 0, len);
    for (size_t i = 0; i < n; i++) {
        uint64_t lo = marks[i].offset > offset ? marks[i].offset : offset;
        uint64_t hi_mark = marks[i].offset + marks[i].len, hi_out = offset + len;
        uint64_t hi = hi_mark < hi_out ? hi_mark : hi_out;
        if (lo < hi)
            pattern_fill(MARK_SEED, lo, out + (lo - offset), (size_t)(hi - lo));
    }
}

static void expect_range(const char *target, uint64_t size, const struct mark *marks, size_t n,
                         uint64_t first, uint64_t last)
{
    char req[256];
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: x\r\nRange: bytes=%" PRIu64 "-%" PRIu64 "\r\n\r\n", target,
             first, last);
    struct http_response r;
    http_exchange(port, req, &r, TIMEOUT);
    HTTP_EXPECT_STATUS(&r, 206);
    char want[128];
    snprintf(want, sizeof want, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last, size);
    HTTP_EXPECT_FIELD(&r, "Content-Range", want);
    ASSERT_EQ(r.body_len, last - first + 1);
    char *exp = malloc(r.body_len);
    ASSERT(exp != NULL);
    expected(marks, n, first, exp, r.body_len);
    for (size_t i = 0; i < r.body_len; i++)
        if (exp[i] != r.body[i])
            FAIL("%s bytes=%" PRIu64 "-%" PRIu64 ": byte %" PRIu64 " is 0x%02x, expected 0x%02x",
                 target, first, last, first + i, (unsigned char)r.body[i], (unsigned char)exp[i]);
    free(exp);
    http_response_free(&r);
}

static void expect_head_length(const char *target, uint64_t size)
{
    char req[128], want[32];
    snprintf(req, sizeof req, "HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    struct http_response r;
    http_exchange(port, req, &r, TIMEOUT);
    HTTP_EXPECT_STATUS(&r, 200);
    snprintf(want, sizeof want, "%" PRIu64, size);
    HTTP_EXPECT_FIELD(&r, "Content-Length", want);
    HTTP_EXPECT_FIELD(&r, "Accept-Ranges", "bytes");
    http_response_free(&r);
}

static void random_file_with_curl(void)
{
    char curl[256], sha[256];
    if (!find_tool("curl", curl, sizeof curl) || !find_tool("sha256sum", sha, sizeof sha))
        return;
    struct prng rng;
    prng_seed(&rng, 99);
    char *data = malloc(RANDOM_SIZE);
    ASSERT(data != NULL);
    prng_fill(&rng, data, RANDOM_SIZE);
    file_write_at(root, "random.bin", data, RANDOM_SIZE);
    free(data);
    expect_head_length("/random.bin", RANDOM_SIZE);

    char url[128], out[128], src[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/random.bin", port);
    snprintf(out, sizeof out, "%s/fetched.bin", root);
    snprintf(src, sizeof src, "%s/random.bin", root);
    struct cmd_result r;
    uint64_t start = now_ms();
    run_command((const char *const[]){curl, "-s", "-S", "-f", "-o", out, url, NULL}, 30000, &r);
    uint64_t took = now_ms() - start;
    if (r.exit_code != 0)
        FAIL("curl %s: exit code %d: %s", url, r.exit_code, r.err);
    run_command((const char *const[]){sha, src, out, NULL}, 30000, &r);
    ASSERT_EQ(r.exit_code, 0);
    char want[65], got[65];
    if (sscanf(r.out, "%64s %*s %64s", want, got) != 2)
        FAIL("sha256sum printed: %s", r.out);
    if (strcmp(want, got) != 0)
        FAIL("the 64 MiB file fetched with curl differs: SHA-256 %s, expected %s", got, want);
    note("64 MiB random file with curl in %llu ms: SHA-256 %.16s... matches",
         (unsigned long long)took, want);
    SYSCHECK(unlink(out));
}

/* Fetches all 4 GiB and checks every byte, within FULL_BUDGET_MS. */
static void full_sparse(void)
{
    struct http_client *c = http_client_open(port);
    http_send(c, "GET /sparse4g.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    struct http_response r;
    ASSERT(http_read_head(c, &r, TIMEOUT));
    HTTP_EXPECT_STATUS(&r, 200);
    ASSERT_EQ(r.content_length, SIZE_4G);
    size_t cap = 1u << 20;
    char *buf = malloc(cap), *exp = malloc(cap);
    ASSERT(buf != NULL && exp != NULL);
    uint64_t got = 0, start = now_ms();
    size_t n_marks = sizeof marks_4g / sizeof marks_4g[0];
    while (got < SIZE_4G) {
        if (now_ms() - start > FULL_BUDGET_MS) {
            note("the full 4 GiB GET: %" PRIu64 " MiB in %d s, too slow here: the rest skipped",
                 got >> 20, FULL_BUDGET_MS / 1000);
            break;
        }
        size_t n = http_client_recv(c, buf, cap, TIMEOUT);
        if (n == 0)
            FAIL("end of stream after %" PRIu64 " of %llu bytes", got, SIZE_4G);
        expected(marks_4g, n_marks, got, exp, n);
        if (memcmp(buf, exp, n) != 0) {
            for (size_t i = 0; i < n; i++)
                if (buf[i] != exp[i])
                    FAIL("the full 4 GiB GET: byte %" PRIu64 " is wrong", got + i);
        }
        got += n;
    }
    if (got == SIZE_4G)
        note("the full 4 GiB GET: every byte right, %.1f s", (double)(now_ms() - start) / 1000);
    free(buf);
    free(exp);
    http_client_close(c);
}

static void sparse_files_of_4_and_5_gib(void)
{
    size_t n4 = sizeof marks_4g / sizeof marks_4g[0], n5 = sizeof marks_5g / sizeof marks_5g[0];
    make_sparse("sparse4g.bin", SIZE_4G, marks_4g, n4);
    make_sparse("sparse5g.bin", SIZE_5G, marks_5g, n5);

    expect_head_length("/sparse4g.bin", SIZE_4G);
    expect_range("/sparse4g.bin", SIZE_4G, marks_4g, n4, 4294967000ull, 4294967295ull);
    expect_range("/sparse4g.bin", SIZE_4G, marks_4g, n4, 2 * GIB - 32, 2 * GIB + 31);
    expect_range("/sparse4g.bin", SIZE_4G, marks_4g, n4, 0, 99);
    /* bytes=-10 and bytes=N-: the ends of the file, and 416 past it. */
    struct http_response r;
    http_exchange(port, "GET /sparse4g.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=-10\r\n\r\n", &r,
                  TIMEOUT);
    HTTP_EXPECT_STATUS(&r, 206);
    HTTP_EXPECT_FIELD(&r, "Content-Range", "bytes 4294967286-4294967295/4294967296");
    ASSERT_EQ(pattern_mismatch(MARK_SEED, SIZE_4G - 10, r.body, r.body_len), 10);
    http_response_free(&r);
    http_exchange(port, "GET /sparse4g.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=4294967296-\r\n\r\n",
                  &r, TIMEOUT);
    HTTP_EXPECT_STATUS(&r, 416);
    HTTP_EXPECT_FIELD(&r, "Content-Range", "bytes */4294967296");
    http_response_free(&r);
    note("4 GiB sparse file: Content-Length 4294967296, ranges at 0, 2^31 and the end exact");

    expect_head_length("/sparse5g.bin", SIZE_5G);
    expect_range("/sparse5g.bin", SIZE_5G, marks_5g, n5, SIZE_4G + 90, SIZE_4G + 200);
    expect_range("/sparse5g.bin", SIZE_5G, marks_5g, n5, SIZE_5G - 50, SIZE_5G - 1);
    expect_range("/sparse5g.bin", SIZE_5G, marks_5g, n5, 0, 200);
    note("5 GiB sparse file: Content-Length %llu, ranges past 2^32 exact", SIZE_5G);

    full_sparse();
}

static void start(void)
{
    temp_dir_make(root, sizeof root);
    http_server_start(ritual_program(), root, NULL, &server);
    port = server.port;
}

static void finish(void)
{
    server_expect_clean_exit(&server);
    remove_tree(root);
}

TEST_CASES_WITH(start, finish, CASE(random_file_with_curl), CASE(sparse_files_of_4_and_5_gib))
