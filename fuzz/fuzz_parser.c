/* fuzz_parser.c - libFuzzer driver for the HTTP parser layer.
 *
 * The input is a request (or a response) head and what follows it. Checked:
 *   - no crash, no read outside the buffer (each parse gets an exact-size
 *     copy, so ASan sees any overread), no undefined behaviour;
 *   - what a successful parse points at lies inside the buffer;
 *   - a prefix says PARTIAL or exactly what the whole says; a buffer grown
 *     with last_len chained answers exactly as a fresh parse; the whole
 *     re-parsed after a split gives the same answer (every split point for
 *     short inputs, a handful for long ones);
 *   - the chunked decoder over the bytes after the head gives the same
 *     data, consumption and verdict whole and fed in pseudo-random pieces.
 * A failed check aborts, which libFuzzer reports as a crash.
 */
#include "ritual_http.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SLOTS 8
#define ALL_SPLITS_UP_TO 256 /* inputs longer than this get a few splits only */
#define MAX_SPLITS (ALL_SPLITS_UP_TO + 2)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_parser: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A parse result as offsets into its buffer, so that parses of different
 * copies compare with memcmp. */
struct summary {
    uint64_t v[10 + 4 * SLOTS];
};

static char *copy(const uint8_t *data, size_t n)
{
    char *buf = malloc(n ? n : 1);
    CHECK(buf != NULL);
    if (n)
        memcpy(buf, data, n);
    return buf;
}

static uint64_t offset_in(const char *p, size_t n, const char *buf, int head_len)
{
    CHECK(p >= buf && p + n <= buf + head_len);
    return (uint64_t)(p - buf);
}

static void summarize_headers(struct summary *s, size_t at, const ritual_http_header *h, size_t n,
                              const char *buf, int rc)
{
    CHECK(n <= SLOTS);
    for (size_t i = 0; i < n; i++) {
        s->v[at + 4 * i] = offset_in(h[i].name, h[i].name_len, buf, rc);
        s->v[at + 4 * i + 1] = h[i].name_len;
        s->v[at + 4 * i + 2] = offset_in(h[i].value, h[i].value_len, buf, rc);
        s->v[at + 4 * i + 3] = h[i].value_len;
        CHECK(h[i].name_len > 0);
    }
}

/* ------------------------------------------------------------- requests */

static const ritual_http_limits small_limits = {40, 160};

static int parse_request(const uint8_t *data, size_t n, size_t last_len,
                         const ritual_http_limits *limits, struct summary *s)
{
    char *buf = copy(data, n);
    ritual_http_header h[SLOTS];
    ritual_http_request r = {.headers = h, .num_headers = limits ? 4 : SLOTS};
    int rc = ritual_http_parse_request(buf, n, &r, limits, last_len);
    memset(s, 0, sizeof *s);
    s->v[0] = (uint64_t)(int64_t)rc;
    CHECK(rc == RITUAL_HTTP_PARTIAL || (rc == -EBADMSG && r.status == 400) ||
          (rc == -EMSGSIZE && (r.status == 414 || r.status == 431)) ||
          (rc == -EOPNOTSUPP && (r.status == 417 || r.status == 501)) ||
          (rc == -EPROTONOSUPPORT && r.status == 505) || (rc > 0 && (size_t)rc <= n));
    if (rc < 0 && rc != RITUAL_HTTP_PARTIAL)
        s->v[1] = (uint64_t)r.status;
    if (rc > 0) {
        CHECK(r.num_headers <= (limits ? 4u : SLOTS));
        CHECK(r.minor_version == 0 || r.minor_version == 1);
        CHECK(r.body == RITUAL_HTTP_BODY_NONE || r.body == RITUAL_HTTP_BODY_LENGTH ||
              r.body == RITUAL_HTTP_BODY_CHUNKED);
        CHECK(r.method_len > 0 && r.target_len > 0);
        s->v[1] = offset_in(r.method, r.method_len, buf, rc);
        s->v[2] = r.method_len;
        s->v[3] = offset_in(r.target, r.target_len, buf, rc);
        s->v[4] = r.target_len;
        s->v[5] = (uint64_t)r.minor_version;
        s->v[6] = r.body;
        s->v[7] = r.body == RITUAL_HTTP_BODY_LENGTH ? r.content_length : 0;
        s->v[8] = r.flags;
        s->v[9] = r.num_headers;
        summarize_headers(s, 10, h, r.num_headers, buf, rc);
    }
    free(buf);
    return rc;
}

/* The split points to try: all of them for short inputs, else both ends
 * and a few picked by the input itself. Ascending. */
static size_t split_points(const uint8_t *data, size_t size, size_t *out)
{
    size_t n = 0;
    if (size <= ALL_SPLITS_UP_TO) {
        for (size_t k = 0; k <= size; k++)
            out[n++] = k;
        return n;
    }
    uint64_t x = 0x9e3779b97f4a7c15ull ^ size;
    for (size_t i = 0; i < 16; i++) {
        x ^= data[(i * 7919) % size];
        x *= 0xff51afd7ed558ccdull;
        x ^= x >> 29;
        out[n++] = (size_t)(x % size);
    }
    out[n++] = 1;
    out[n++] = size - 1;
    /* insertion sort: a handful of values */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
            size_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

static int check_requests(const uint8_t *data, size_t size, const ritual_http_limits *limits)
{
    struct summary whole, fresh, got;
    int rc = parse_request(data, size, 0, limits, &whole);

    size_t points[MAX_SPLITS];
    size_t n = split_points(data, size, points);
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = points[i];
        int f = parse_request(data, k, 0, limits, &fresh);
        if (rc > 0)
            CHECK(k >= (size_t)rc ? memcmp(&fresh, &whole, sizeof whole) == 0
                                  : f == RITUAL_HTTP_PARTIAL);
        else
            CHECK(f == RITUAL_HTTP_PARTIAL || f == rc);

        /* the buffer grown from the last split point, last_len chained */
        int g = parse_request(data, k, last, limits, &got);
        CHECK(g == f && memcmp(&got, &fresh, sizeof got) == 0);
        last = g == RITUAL_HTTP_PARTIAL ? k : 0;

        /* one split: the prefix, then the whole */
        if (f == RITUAL_HTTP_PARTIAL) {
            parse_request(data, size, k, limits, &got);
            CHECK(memcmp(&got, &whole, sizeof got) == 0);
        }
    }
    return rc;
}

/* ------------------------------------------------------------ responses */

static int parse_response(const uint8_t *data, size_t n, int head, size_t last_len,
                          struct summary *s)
{
    char *buf = copy(data, n);
    ritual_http_header h[SLOTS];
    ritual_http_response r = {.headers = h, .num_headers = SLOTS};
    int rc = ritual_http_parse_response(buf, n, &r, head, last_len);
    memset(s, 0, sizeof *s);
    s->v[0] = (uint64_t)(int64_t)rc;
    CHECK(rc == RITUAL_HTTP_PARTIAL || rc == -EBADMSG || rc == -EMSGSIZE ||
          rc == -EPROTONOSUPPORT || (rc > 0 && (size_t)rc <= n));
    if (rc > 0) {
        CHECK(r.status >= 100 && r.status <= 599);
        s->v[1] = (uint64_t)r.status;
        s->v[2] = (uint64_t)r.minor_version;
        s->v[3] = offset_in(r.reason, r.reason_len, buf, rc);
        s->v[4] = r.reason_len;
        s->v[6] = r.body;
        s->v[7] = r.content_length;
        s->v[8] = r.flags;
        s->v[9] = r.num_headers;
        summarize_headers(s, 10, h, r.num_headers, buf, rc);
    }
    free(buf);
    return rc;
}

static void check_responses(const uint8_t *data, size_t size)
{
    int head = size > 0 && (data[size - 1] & 1);
    struct summary whole, fresh, got;
    int rc = parse_response(data, size, head, 0, &whole);
    size_t points[MAX_SPLITS];
    size_t n = split_points(data, size, points);
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = points[i];
        int f = parse_response(data, k, head, 0, &fresh);
        if (rc > 0)
            CHECK(k >= (size_t)rc ? memcmp(&fresh, &whole, sizeof whole) == 0
                                  : f == RITUAL_HTTP_PARTIAL);
        else
            CHECK(f == RITUAL_HTTP_PARTIAL || f == rc);
        int g = parse_response(data, k, head, last, &got);
        CHECK(g == f && memcmp(&got, &fresh, sizeof got) == 0);
        last = g == RITUAL_HTTP_PARTIAL ? k : 0;
    }
}

/* -------------------------------------------------------------- chunked */

struct decoded {
    size_t consumed;
    int done;
    long err;
    size_t len;
    char *data; /* capacity: the input size */
};

/* Feeds one piece: calls again while bytes of it remain, as a server
 * would; each call gets an exact-size copy of what is left. */
static void feed(ritual_http_chunked *dec, const uint8_t *in, size_t n, struct decoded *d)
{
    size_t off = 0;
    while (off < n && !d->err && !ritual_http_chunked_done(dec)) {
        char *buf = copy(in + off, n - off);
        const char *p = NULL;
        size_t plen = 0;
        size_t c;
        int rc = ritual_http_chunked_decode(dec, buf, n - off, &c, &p, &plen);
        if (rc < 0) {
            CHECK(rc == -EBADMSG);
            d->err = rc;
        } else {
            CHECK(c > 0 && (size_t)c <= n - off && plen <= (size_t)c);
            if (plen) {
                CHECK(p >= buf && p + plen <= buf + c);
                memcpy(d->data + d->len, p, plen);
                d->len += plen;
            }
            off += (size_t)c;
            d->consumed += (size_t)c;
        }
        free(buf);
    }
    d->done = ritual_http_chunked_done(dec);
}

static void decode(const uint8_t *in, size_t n, uint64_t seed, struct decoded *d)
{
    ritual_http_chunked dec;
    memset(&dec, 0, sizeof dec);
    size_t off = 0;
    while (off < n && !d->err && !d->done) {
        size_t piece = n - off;
        if (seed) { /* 1 to 16 bytes, or now and then a long run */
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            piece = seed % 8 == 0 ? (size_t)(seed >> 8) % 512 + 1 : (size_t)(seed >> 8) % 16 + 1;
            if (piece > n - off)
                piece = n - off;
        }
        feed(&dec, in + off, piece, d);
        off += piece;
    }
}

static void check_chunked(const uint8_t *in, size_t n, const uint8_t *data, size_t size)
{
    struct decoded a = {0}, b = {0};
    a.data = copy(in, n);
    b.data = copy(in, n);
    uint64_t seed = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 0x100000001b3ull;
    decode(in, n, 0, &a);
    decode(in, n, seed | 1, &b);
    CHECK(a.err == b.err && a.done == b.done);
    if (!a.err)
        CHECK(a.consumed == b.consumed && a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    free(a.data);
    free(b.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int rc = check_requests(data, size, NULL);
    check_requests(data, size, &small_limits);
    check_responses(data, size);
    /* The body after a head (or, when there is none, the whole input). */
    size_t body = rc > 0 ? (size_t)rc : 0;
    check_chunked(data + body, size - body, data, size);
    return 0;
}
