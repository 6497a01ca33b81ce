/* scan.h - the scanners the request and response parsers share: runs of
 * bytes of one class tested a word of 8 at a time, and the first line's end. */
#ifndef RITUAL_HTTP_SCAN_H
#define RITUAL_HTTP_SCAN_H

#include "parser.h"

#include <stdint.h>

/* The long runs (request targets, field values) are tested a word of 8
 * bytes at a time for any byte that stops them: a few ALU operations per
 * word instead of a load, a compare and a branch per byte. has_less(w, n)
 * flags the bytes of w below n (n <= 128). A borrow can also flag a byte
 * above a real hit, never one below it, so the lowest flag is exact: with
 * the word loaded little-endian, its position is the count of trailing
 * zeros. high_or_del(w) flags the bytes >= 0x7f, exactly (no carry leaves
 * a byte). */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static inline uint64_t has_less(uint64_t w, unsigned n)
{
    return (w - ONES * n) & ~w & HIGHS;
}

static inline uint64_t high_or_del(uint64_t w)
{
    return (w | ((w & ~HIGHS) + ONES)) & HIGHS;
}

static inline const char *first_flagged(const char *p, uint64_t flags)
{
    return p + __builtin_ctzll(flags) / 8;
}

/* The first byte at or after p that cannot be in a request line (anything
 * but 0x20-0x7e: the CR that should end it, or a bad byte), or end. */
static inline const char *scan_request_line(const char *p, const char *end)
{
    for (; end - p >= 8; p += 8) {
        uint64_t w = http_load64(p);
        uint64_t stop = has_less(w, 0x20) | high_or_del(w);
        if (stop)
            return first_flagged(p, stop);
    }
    while (p < end && (unsigned char)*p - 0x20u < 0x5fu)
        p++;
    return p;
}

/* The first byte at or after p that cannot be in a request-target (anything
 * but VCHAR 0x21-0x7e: the SP that should end it, or a bad byte), or end. */
static inline const char *scan_target(const char *p, const char *end)
{
    for (; end - p >= 8; p += 8) {
        uint64_t w = http_load64(p);
        uint64_t stop = has_less(w, 0x21) | high_or_del(w);
        if (stop)
            return first_flagged(p, stop);
    }
    while (p < end && (unsigned char)*p - 0x21u < 0x5eu)
        p++;
    return p;
}

/* Flags the bytes of w that cannot be in a field value: controls (HTAB
 * too: the caller lets it through) and DEL. has_less(w, 0x20) and a DEL
 * test (0x7f is the one byte below 0x80 that + 1 carries into the top bit)
 * share their `& ~w & HIGHS`. */
static inline uint64_t value_stops(uint64_t w)
{
    return ((w - ONES * 0x20) | ((w & ~HIGHS) + ONES)) & ~w & HIGHS;
}

/* The first byte at or after p that cannot be in a field value (a control
 * other than HTAB, or DEL: normally the CR ending the line), or end. */
static ALWAYS_INLINE const char *scan_value(const char *p, const char *end)
{
    if (end - p >= 8) {
        const char *last = end - 8; /* the last word: one compare a round */
        do {
            uint64_t stop = value_stops(http_load64(p));
            if (!stop) {
                p += 8;
                continue;
            }
            p = first_flagged(p, stop);
            if (*p != '\t')
                return p;
            p++; /* HTAB is the one control a value may hold */
        } while (p <= last);
    }
    while (p < end && http_is(*p, RITUAL__HTTP_VALUE))
        p++;
    return p;
}

/* The first byte at or after p not of `class` (normally the colon ending a
 * field name, or the CR ending a Host value), or end. These runs are short
 * and neither set has an arithmetic shape, so this is one table lookup per
 * byte, unrolled by four. `fenced` says that the buffer ends in a byte no
 * class holds (the LF of a complete head), which stops the scan before
 * end: then there is no bound to test at all. */
static ALWAYS_INLINE const char *scan_class(const char *p, const char *end, unsigned class,
                                            int fenced)
{
    for (; fenced || end - p >= 4; p += 4) {
        if (!http_is(p[0], class))
            return p;
        if (!http_is(p[1], class))
            return p + 1;
        if (!http_is(p[2], class))
            return p + 2;
        if (!http_is(p[3], class))
            return p + 3;
    }
    while (p < end && http_is(*p, class))
        p++;
    return p;
}

/* Finds the end of the first line at p (the request or status line). Returns
 * 0 with *cr at its CR, PARTIAL, -414 once more than max_line bytes are
 * seen without the CR, or -400 for a bad byte (bare LF, a control). The
 * line's bytes are checked by `scan`. */
static inline int find_line_end(const char *p, const char *end, size_t max_line,
                                const char *(*scan)(const char *, const char *), const char **cr)
{
    /* Scan no further than the byte that would make the line too long. */
    const char *limit = (size_t)(end - p) > max_line ? p + max_line + 1 : end;
    const char *q = scan(p, limit);
    if (q == limit)
        return (size_t)(q - p) > max_line ? -414 : HTTP_PARTIAL;
    if (*q != '\r')
        return -400;
    if (q + 1 == end)
        return HTTP_PARTIAL;
    if (q[1] != '\n')
        return -400;
    *cr = q;
    return 0;
}

#endif
