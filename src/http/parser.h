/* parser.h - shared by the HTTP parser files (parser.c, fields.c,
 * chunked.c), nothing else: character classes from the RFC 9110 grammar,
 * and what the header fields of one head say. Internal: names that leave
 * a file carry the ritual__ prefix. */
#ifndef RITUAL_HTTP_PARSER_H
#define RITUAL_HTTP_PARSER_H

#include "ritual_http.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* For the small functions of the hot path that GCC would otherwise keep
 * out of line, having more than one caller. */
#define ALWAYS_INLINE inline __attribute__((always_inline))

/* Inside the parser: the head is not complete yet (the API's
 * RITUAL_HTTP_PARTIAL). Its other failures are minus the status to answer. */
#define HTTP_PARTIAL (-1)

/* Limits when the caller gives none (and the only ones for responses). */
#define RITUAL__HTTP_MAX_REQUEST_LINE 8192
#define RITUAL__HTTP_MAX_HEAD 32768

/* One 256-entry table: one lookup per byte, no range tests in hot loops. */
enum {
    RITUAL__HTTP_TCHAR = 1, /* token: ALPHA DIGIT and !#$%&'*+-.^_`|~ */
    RITUAL__HTTP_VALUE = 2, /* field value: HTAB SP VCHAR obs-text (0x80-0xff) */
    RITUAL__HTTP_HOST = 4,  /* Host and authority-form: unreserved sub-delims % : [ ] */
};

extern const unsigned char ritual__http_ctype[256];

#define http_is(c, class) (ritual__http_ctype[(unsigned char)(c)] & (class))

/* The value of a decimal digit; anything else gives a value above 9. */
static inline unsigned http_digit(char c)
{
    return (unsigned)(unsigned char)c - '0';
}

static inline int http_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Unaligned little-endian loads, so that a few bytes compare with one
 * integer test (lwan's trick); HTTP_WORD2/4/8 spell the constants. */
static inline uint16_t http_load16(const char *p)
{
    uint16_t w;
    memcpy(&w, p, sizeof w);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap16(w);
#endif
    return w;
}

static inline uint32_t http_load32(const char *p)
{
    uint32_t w;
    memcpy(&w, p, sizeof w);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap32(w);
#endif
    return w;
}

static inline uint64_t http_load64(const char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

#define HTTP_WORD2(s) ((uint16_t)((unsigned char)(s)[0] | (unsigned char)(s)[1] << 8))
#define HTTP_WORD4(s)                                                                              \
    ((uint32_t)(unsigned char)(s)[0] | (uint32_t)(unsigned char)(s)[1] << 8 |                      \
     (uint32_t)(unsigned char)(s)[2] << 16 | (uint32_t)(unsigned char)(s)[3] << 24)
#define HTTP_WORD8(s) ((uint64_t)HTTP_WORD4(s) | (uint64_t)HTTP_WORD4((s) + 4) << 32)

/* What the header fields of one head say, gathered line by line. */
struct http_head {
    ritual_http_header *headers;
    size_t cap;   /* slots */
    size_t count; /* used, once the head is complete */
    int is_request;
    int minor; /* the message's HTTP/1.x */
    unsigned flags;
    uint64_t content_length;
    unsigned char has_cl, has_te, te_last_chunked, te_other;
    unsigned te_chunked; /* how many times "chunked" was listed */
};

/* s[0..n) equals the lowercase literal `lower` (4 <= n <= 24), ignoring
 * ASCII case: a word or two with one OR and one compare each, not a loop
 * per byte. OR-ing 0x20 into a byte lowercases a letter; it also turns the
 * controls 0x0d, 0x10, 0x11 into '-', '0', '1' (the literals' only other
 * bytes), but what is compared here is a name (tchars) or a field value
 * (no control but HTAB), so the compare stays exact. The last word
 * overlaps the one before when n is not a multiple of its size. */
static inline int http_lower_equals(const char *s, size_t n, const char *lower)
{
    if (n < 8)
        return ((http_load32(s) | 0x20202020u) ^ HTTP_WORD4(lower)) == 0 &&
               ((http_load32(s + n - 4) | 0x20202020u) ^ HTTP_WORD4(lower + n - 4)) == 0;
    const uint64_t lc = 0x2020202020202020ull;
    uint64_t diff = (http_load64(s + n - 8) | lc) ^ HTTP_WORD8(lower + n - 8);
    for (size_t i = 0; i + 8 < n; i += 8)
        diff |= (http_load64(s + i) | lc) ^ HTTP_WORD8(lower + i);
    return diff == 0;
}

/* The header fields that matter to framing and connection handling. */
enum http_field {
    HTTP_FIELD_OTHER = 0,
    HTTP_FIELD_HOST,
    HTTP_FIELD_EXPECT,
    HTTP_FIELD_CONNECTION,
    HTTP_FIELD_CONTENT_LENGTH,
    HTTP_FIELD_TRANSFER_ENCODING,
};

/* Which of them a name (tchars only) is: by length first, so that most
 * names are passed over without a compare, then by a word compare. Inline:
 * for the names that are none of them, a call would cost more than this. */
static ALWAYS_INLINE enum http_field http_field_of(const char *name, size_t n)
{
    switch (n) {
    case 4:
        return http_lower_equals(name, 4, "host") ? HTTP_FIELD_HOST : HTTP_FIELD_OTHER;
    case 6:
        return http_lower_equals(name, 6, "expect") ? HTTP_FIELD_EXPECT : HTTP_FIELD_OTHER;
    case 10:
        return http_lower_equals(name, 10, "connection") ? HTTP_FIELD_CONNECTION : HTTP_FIELD_OTHER;
    case 14:
        return http_lower_equals(name, 14, "content-length") ? HTTP_FIELD_CONTENT_LENGTH
                                                             : HTTP_FIELD_OTHER;
    case 17:
        return http_lower_equals(name, 17, "transfer-encoding") ? HTTP_FIELD_TRANSFER_ENCODING
                                                                : HTTP_FIELD_OTHER;
    default:
        return HTTP_FIELD_OTHER;
    }
}

/* Takes in one of those fields (value already trimmed): checks it and
 * records what it says in h. Returns 0, or minus the status to answer
 * (-400, -417). */
int ritual__http_on_field(struct http_head *h, enum http_field field, const char *value,
                          size_t value_len);

/* Shared by the request and response parsers (parser.c). */

/* Header lines from p through the empty line into h's slots: 0 with *out
 * just past it, HTTP_PARTIAL, or minus the status to answer. */
int ritual__http_parse_fields(const char *p, const char *end, struct http_head *h,
                              const char **out);
/* "HTTP/1.x": the minor version (0 or 1), -505 for another major, -400 if
 * malformed. */
int ritual__http_parse_version(const char *v, size_t n);
/* 1 when the bytes after last_len cannot complete the head (see parser.c). */
int ritual__http_still_partial(const char *buf, size_t len, size_t last_len, size_t max_line,
                               size_t max_head,
                               const char *(*scan_first_line)(const char *, const char *));
/* The API's negative errno for the parser's result; *status (if not NULL)
 * gets the status to answer. */
int ritual__http_parse_error(int rc, int *status);

#endif
