/* ranges.c - see ranges.h. */
#include "ranges.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Digits into *out, refusing anything past 2^62: no arithmetic below can
 * overflow (the mistake behind nginx's CVE-2017-7529). */
static const char *parse_offset(const char *p, const char *end, uint64_t *out)
{
    if (p == end || *p < '0' || *p > '9')
        return NULL;
    uint64_t v = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (v > ((uint64_t)1 << 62) / 10)
            return NULL;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return p;
}

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* One range-spec: "first-last", "first-" or "-suffix". Returns the end of
 * it, or NULL if it is malformed. *valid is false for one that does not
 * overlap the file (dropped, not an error). */
static const char *parse_spec(const char *p, const char *end, uint64_t size, struct byte_range *r,
                              bool *valid)
{
    uint64_t a = 0, b = 0;
    if (p < end && *p == '-') {
        if (!(p = parse_offset(p + 1, end, &b)))
            return NULL;
        *valid = b > 0 && size > 0;
        r->first = b >= size ? 0 : size - b;
        r->last = size - 1;
        return p;
    }
    if (!(p = parse_offset(p, end, &a)) || p == end || *p != '-')
        return NULL;
    p++;
    b = UINT64_MAX;
    if (p < end && *p >= '0' && *p <= '9' && !(p = parse_offset(p, end, &b)))
        return NULL;
    if (b < a)
        return NULL;
    *valid = a < size;
    r->first = a;
    r->last = b >= size ? size - 1 : b;
    return p;
}

/* Adds r to the sorted list, merging it with every range it overlaps or
 * touches. Returns false if the list would grow past RANGES_MAX. */
static bool add_range(struct byte_range *list, size_t *count, struct byte_range r)
{
    size_t i = 0;
    while (i < *count && list[i].last + 1 < r.first)
        i++;
    size_t j = i; /* list[i..j) merge with r */
    while (j < *count && list[j].first <= r.last + 1) {
        if (list[j].first < r.first)
            r.first = list[j].first;
        if (list[j].last > r.last)
            r.last = list[j].last;
        j++;
    }
    if (i == j && *count == RANGES_MAX)
        return false;
    memmove(&list[i + 1], &list[j], (*count - j) * sizeof *list);
    list[i] = r;
    *count = *count - (j - i) + 1;
    return true;
}

enum range_result ranges_parse(const char *value, size_t len, uint64_t size,
                               struct byte_range out[RANGES_MAX], size_t *count)
{
    const char *p = value, *end = value + len;
    *count = 0;
    if (len < 6 || strncasecmp(p, "bytes=", 6) != 0)
        return RANGE_NONE;
    p += 6;
    bool any = false;
    for (;;) {
        /* empty list elements are allowed (RFC 9110 5.6.1) */
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p == end)
            break;
        struct byte_range r;
        bool valid;
        if (!(p = parse_spec(p, end, size, &r, &valid)))
            return RANGE_NONE;
        any = true;
        if (valid && !add_range(out, count, r))
            return RANGE_NONE;
        p = skip_space(p, end);
        if (p < end && *p != ',')
            return RANGE_NONE;
    }
    if (!any)
        return RANGE_NONE;
    return *count > 0 ? RANGE_SATISFIABLE : RANGE_UNSATISFIABLE;
}
