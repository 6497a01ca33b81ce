/* parser.h - shared by the HTTP parser files (parser.c, fields.c,
 * chunked.c), nothing else: character classes from the RFC 9110 grammar,
 * and what the header fields of one head say. Internal: names that leave
 * a file carry the ritual__ prefix. */
#ifndef RITUAL_HTTP_PARSER_H
#define RITUAL_HTTP_PARSER_H

#include "ritual_http.h"

#include <stddef.h>
#include <stdint.h>

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

/* Takes in one header field (value already trimmed): the few that matter
 * to framing and connection handling are checked and recorded in h.
 * Returns 0, or minus the status to answer (-400, -417). */
int ritual__http_on_header(struct http_head *h, const char *name, size_t name_len,
                           const char *value, size_t value_len);

#endif
