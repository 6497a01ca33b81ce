/* ranges.h - the Range header of a GET (RFC 9110 section 14): a list of
 * byte ranges, checked against the file's size, sorted, with overlapping
 * and adjacent ones merged, and bounded in count. Pure, so the tests can
 * throw every odd header at it. */
#ifndef RITUAL_RANGES_H
#define RITUAL_RANGES_H

#include <stddef.h>
#include <stdint.h>

/* More ranges than this (after merging) and the header is ignored: the
 * whole file is sent, as nginx does past max_ranges. */
#define RANGES_MAX 16

struct byte_range {
    uint64_t first, last; /* inclusive */
};

enum range_result {
    RANGE_NONE,          /* no usable Range: answer 200 with the whole file */
    RANGE_SATISFIABLE,   /* out[0..*count) hold the ranges to send, *count >= 1 */
    RANGE_UNSATISFIABLE, /* none of them overlaps the file: 416 */
};

/* Parses a Range value ("bytes=0-99, 200-, -50") against a file of `size`
 * bytes. A header that does not parse, asks for other units or holds more
 * than RANGES_MAX ranges once merged is RANGE_NONE; ranges that start past
 * the end are dropped, and if that leaves none it is RANGE_UNSATISFIABLE. */
enum range_result ranges_parse(const char *value, size_t len, uint64_t size,
                               struct byte_range out[RANGES_MAX], size_t *count);

#endif
