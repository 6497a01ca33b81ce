/* chunked.c - the chunked transfer coding, decoded in place (RFC 9112 7.1).
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext    = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
 *
 * A byte-at-a-time state machine for the framing, so a body split at any
 * byte decodes exactly as the whole does; the data itself is handed back as
 * pointers into the caller's buffer. Everything is strict: a bare CR or LF,
 * a size with junk or more than 16 hex digits, data not followed by CRLF, a
 * malformed extension or trailer is 400, and so is a size line or trailer
 * section too long to be honest (either could otherwise be used to make us
 * read forever without any data arriving).
 */
#include "parser.h"
#include "ritual_http.h"

#include <errno.h>
#include <limits.h>

#define MAX_SIZE_LINE 4096 /* chunk-size and extensions, CRLF excluded */
#define MAX_TRAILERS 8192  /* the trailer section with its final CRLF */
#define MAX_HEX_DIGITS 16  /* 16 hex digits fill a uint64_t: no overflow */

enum {
    SIZE_FIRST = 0,   /* the first hex digit (a zeroed decoder starts here) */
    SIZE,             /* more hex digits */
    EXT_SEMI,         /* BWS, then ";" */
    EXT_NAME_FIRST,   /* BWS, then the first tchar of a name */
    EXT_NAME,         /* more of the name */
    EXT_AFTER_NAME,   /* BWS after a name: "=" or ";" next */
    EXT_VALUE_FIRST,  /* BWS after "=", then a token or a quote */
    EXT_VALUE,        /* a token value */
    EXT_QUOTED,       /* inside a quoted-string */
    EXT_QUOTED_PAIR,  /* after a backslash in it */
    EXT_AFTER_QUOTED, /* after the closing quote */
    SIZE_LF,          /* the LF ending the size line */
    DATA,             /* `remaining` bytes of chunk-data */
    DATA_CR,          /* the CRLF after chunk-data */
    DATA_LF,
    TRAILER_FIRST, /* a trailer line, or the CR of the final CRLF */
    TRAILER_NAME,
    TRAILER_VALUE,
    TRAILER_LF,
    END_LF, /* the LF of the final CRLF */
    DONE,
    FAILED,
};

static int hex_value(char ch)
{
    unsigned c = (unsigned char)ch;
    if (c - '0' < 10u)
        return (int)(c - '0');
    c |= 0x20;
    if (c - 'a' < 6u)
        return (int)(c - 'a' + 10);
    return -1;
}

/* One byte of the size line (from SIZE_FIRST through the CR). Returns the
 * next state, or FAILED. */
static unsigned size_line_byte(ritual_http_chunked *dec, char c)
{
    int is_ows = c == ' ' || c == '\t';
    int is_tchar = http_is(c, RITUAL__HTTP_TCHAR) != 0;
    if (++dec->count > MAX_SIZE_LINE && c != '\r') /* the CR itself is not counted */
        return FAILED;
    switch (dec->state) {
    case SIZE_FIRST:
    case SIZE: {
        int d = hex_value(c);
        if (d >= 0) { /* count is the number of digits so far: all the line is digits */
            if (dec->count > MAX_HEX_DIGITS)
                return FAILED;
            dec->remaining = dec->remaining << 4 | (unsigned)d;
            return SIZE;
        }
        if (dec->state == SIZE_FIRST)
            return FAILED; /* leading space, "x", ";" with no size, empty line */
        return c == '\r' ? SIZE_LF : c == ';' ? EXT_NAME_FIRST : is_ows ? EXT_SEMI : FAILED;
    }
    case EXT_SEMI:
        return is_ows ? EXT_SEMI : c == ';' ? EXT_NAME_FIRST : FAILED;
    case EXT_NAME_FIRST:
        return is_ows ? EXT_NAME_FIRST : is_tchar ? EXT_NAME : FAILED;
    case EXT_NAME:
        if (is_tchar)
            return EXT_NAME;
        return c == '\r'  ? SIZE_LF
               : c == ';' ? EXT_NAME_FIRST
               : c == '=' ? EXT_VALUE_FIRST
               : is_ows   ? EXT_AFTER_NAME
                          : FAILED;
    case EXT_AFTER_NAME:
        return is_ows     ? EXT_AFTER_NAME
               : c == '=' ? EXT_VALUE_FIRST
               : c == ';' ? EXT_NAME_FIRST
                          : FAILED;
    case EXT_VALUE_FIRST:
        return is_ows ? EXT_VALUE_FIRST : is_tchar ? EXT_VALUE : c == '"' ? EXT_QUOTED : FAILED;
    case EXT_VALUE:
        if (is_tchar)
            return EXT_VALUE;
        return c == '\r' ? SIZE_LF : c == ';' ? EXT_NAME_FIRST : is_ows ? EXT_SEMI : FAILED;
    case EXT_QUOTED: /* qdtext: HTAB SP VCHAR obs-text except " and \ */
        if (c == '"')
            return EXT_AFTER_QUOTED;
        if (c == '\\')
            return EXT_QUOTED_PAIR;
        return http_is(c, RITUAL__HTTP_VALUE) ? EXT_QUOTED : FAILED;
    case EXT_QUOTED_PAIR:
        return http_is(c, RITUAL__HTTP_VALUE) ? EXT_QUOTED : FAILED;
    case EXT_AFTER_QUOTED:
        return c == '\r' ? SIZE_LF : c == ';' ? EXT_NAME_FIRST : is_ows ? EXT_SEMI : FAILED;
    }
    return FAILED;
}

/* One byte of the trailer section: field lines validated as in a head
 * (no obs-fold, no space before the colon, no bare CR or LF), then
 * discarded. */
static unsigned trailer_byte(ritual_http_chunked *dec, char c)
{
    if (++dec->count > MAX_TRAILERS)
        return FAILED;
    switch (dec->state) {
    case TRAILER_FIRST:
        return c == '\r' ? END_LF : http_is(c, RITUAL__HTTP_TCHAR) ? TRAILER_NAME : FAILED;
    case TRAILER_NAME:
        return http_is(c, RITUAL__HTTP_TCHAR) ? TRAILER_NAME : c == ':' ? TRAILER_VALUE : FAILED;
    case TRAILER_VALUE:
        return http_is(c, RITUAL__HTTP_VALUE) ? TRAILER_VALUE : c == '\r' ? TRAILER_LF : FAILED;
    case TRAILER_LF:
        return c == '\n' ? TRAILER_FIRST : FAILED;
    case END_LF:
        return c == '\n' ? DONE : FAILED;
    }
    return FAILED;
}

int ritual_http_chunked_decode(ritual_http_chunked *dec, const char *buf, size_t len, size_t *used,
                               const char **data, size_t *data_len)
{
    const char *p = buf, *end = buf + len;
    *used = 0;
    *data = buf;
    *data_len = 0;
    int have_data = 0;

    while (p < end) {
        switch (dec->state) {
        case DONE:
            *used = (size_t)(p - buf); /* what follows is not ours: the next request */
            return 0;
        case FAILED:
            return -EBADMSG;
        case SIZE_LF:
            if (*p++ != '\n')
                goto fail;
            dec->count = 0;
            if (dec->remaining == 0) {
                dec->state = TRAILER_FIRST; /* last-chunk */
            } else {
                dec->state = DATA;
            }
            break;
        case DATA: {
            if (have_data) { /* one run per call: the caller comes back */
                *used = (size_t)(p - buf);
                return 0;
            }
            size_t n = (size_t)(end - p);
            if (n > dec->remaining)
                n = (size_t)dec->remaining;
            *data = p;
            *data_len = n;
            have_data = 1;
            p += n;
            dec->remaining -= n;
            if (dec->remaining == 0)
                dec->state = DATA_CR;
            break;
        }
        case DATA_CR:
            if (*p++ != '\r')
                goto fail;
            dec->state = DATA_LF;
            break;
        case DATA_LF:
            if (*p++ != '\n')
                goto fail;
            dec->count = 0;
            dec->state = SIZE_FIRST;
            break;
        case TRAILER_FIRST:
        case TRAILER_NAME:
        case TRAILER_VALUE:
        case TRAILER_LF:
        case END_LF:
            dec->state = trailer_byte(dec, *p++);
            if (dec->state == FAILED)
                goto fail;
            break;
        default: /* the size line and its extensions */
            dec->state = size_line_byte(dec, *p++);
            if (dec->state == FAILED)
                goto fail;
            break;
        }
    }
    if (dec->state == FAILED)
        return -EBADMSG;
    *used = (size_t)(p - buf);
    return 0;

fail:
    dec->state = FAILED;
    *data_len = 0;
    return -EBADMSG;
}

int ritual_http_chunked_done(const ritual_http_chunked *dec)
{
    return dec->state == DONE;
}
