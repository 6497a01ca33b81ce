/* fuzz_proxy.c - libFuzzer driver for the PROXY protocol header parser
 * (src/proxy_header.c).
 *
 * The input is whatever a client sends first. Checked:
 *   - no crash, no read outside the bytes given (each parse gets an
 *     exact-size copy, so ASan sees any overread), no undefined behaviour;
 *   - the answer only moves forward as bytes are added: NEED_MORE for
 *     every prefix shorter than the point where it is decided, then the
 *     same answer (DONE with the same header, or MALFORMED) for every
 *     longer one (every prefix of short inputs, a handful for long ones);
 *   - DONE: the header's length is at most the bytes given, the first
 *     length at which it is DONE, and its fields are ones the parser can
 *     give; NEED_MORE never beyond PROXY_HEADER_MAX bytes.
 * A failed check aborts, which libFuzzer reports as a crash.
 */
#include "proxy_header.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ALL_PREFIXES_UP_TO 300 /* longer inputs get a few prefixes only */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_proxy: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Parses the first n bytes from an exact-size copy. */
static enum proxy_result parse_prefix(const uint8_t *data, size_t n, struct proxy_header *h)
{
    char *buf = calloc(1, n ? n : 1); /* n == 0: a byte that must not be read */
    CHECK(buf != NULL);
    if (n)
        memcpy(buf, data, n);
    memset(h, 0xa5, sizeof *h); /* written only on DONE: compared below */
    enum proxy_result r = ritual__proxy_parse(buf, n, h);
    free(buf);
    CHECK(r == PROXY_NEED_MORE || r == PROXY_MALFORMED || r == PROXY_DONE);
    CHECK(r != PROXY_NEED_MORE || n < PROXY_HEADER_MAX);
    return r;
}

static void check_header(const struct proxy_header *h, size_t n)
{
    CHECK(h->len > 0 && h->len <= n && h->len <= PROXY_HEADER_MAX);
    CHECK(h->version == 1 || h->version == 2);
    CHECK(h->version == 2 || h->len <= PROXY_V1_MAX);
    CHECK(h->command == PROXY_CMD_PROXY || (h->version == 2 && h->command == PROXY_CMD_LOCAL));
    CHECK(h->family == AF_UNSPEC || h->family == AF_INET || h->family == AF_INET6 ||
          (h->family == AF_UNIX && h->version == 2));
    CHECK(h->command == PROXY_CMD_PROXY || h->family == AF_UNSPEC);
    if (h->family != AF_UNSPEC) {
        CHECK(h->src.sa.sa_family == h->family);
        CHECK(h->dst.sa.sa_family == h->family);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Past PROXY_HEADER_MAX bytes the answer is decided: the rest of a
     * long input is the client's data, which must not change it. */
    struct proxy_header whole, h;
    enum proxy_result r = parse_prefix(data, size, &whole);
    if (r == PROXY_DONE)
        check_header(&whole, size);
    size_t decided = r == PROXY_DONE ? whole.len : size; /* the first length with the answer */

    size_t points[8], npoints = 0;
    bool all = size <= ALL_PREFIXES_UP_TO;
    if (!all) {
        points[npoints++] = 0;
        points[npoints++] = 1;
        points[npoints++] = size / 2;
        points[npoints++] = size - 1;
        if (r == PROXY_DONE) {
            points[npoints++] = whole.len - 1;
            points[npoints++] = whole.len;
        }
        if (size > PROXY_HEADER_MAX)
            points[npoints++] = PROXY_HEADER_MAX;
    }
    enum proxy_result last = PROXY_NEED_MORE;
    for (size_t i = 0; all ? i <= size : i < npoints; i++) {
        size_t n = all ? i : points[i];
        enum proxy_result p = parse_prefix(data, n, &h);
        if (r == PROXY_DONE) {
            /* Short of the header: more is needed; from it on: the same. */
            CHECK(p == (n < whole.len ? PROXY_NEED_MORE : PROXY_DONE));
            if (p == PROXY_DONE)
                CHECK(memcmp(&h, &whole, sizeof h) == 0);
        } else if (r == PROXY_NEED_MORE) {
            CHECK(p == PROXY_NEED_MORE);
        } else {
            /* MALFORMED: some prefix decided it, and none after went back. */
            CHECK(p != PROXY_DONE);
            CHECK(!(all && last == PROXY_MALFORMED && p != PROXY_MALFORMED));
            if (p == PROXY_MALFORMED && n < decided)
                decided = n;
        }
        last = p;
    }
    (void)decided;
    return 0;
}
