/* parser.c - HTTP/1.1 request and response heads (RFC 9110, RFC 9112).
 *
 * In the picohttpparser mould: every call parses the head from the start of
 * the caller's buffer and either finishes it, asks for more bytes, or names
 * the status to answer. Nothing is allocated or copied: results point into
 * the buffer.
 *
 * Parsing is strictly sequential and every verdict depends only on the bytes
 * before the point where it is reached, so a prefix of an input gives either
 * PARTIAL or the verdict the whole input gives. The limits keep that promise
 * too: they are checked at the byte that crosses them, never against the
 * length of the buffer as a whole.
 */
#include "parser.h"
#include "ritual_http.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#define DEFAULT_MAX_REQUEST_LINE 8192
#define DEFAULT_MAX_HEAD 32768

/* Generated from the RFC 9110 grammar; the classes are in chars.h. */
const unsigned char ritual__http_ctype[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, /* 00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 10 */
    2, 7, 2, 3, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 2, /* 20  !"#$%&'()*+,-./ */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 2, 6, 2, 2, /* 30 0123456789:;<=>? */
    2, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 40 @ABCDEFGHIJKLMNO */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 2, 6, 3, 7, /* 50 PQRSTUVWXYZ[\]^_ */
    3, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 60 `abcdefghijklmno */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2, 3, 2, 7, 0, /* 70 pqrstuvwxyz{|}~ DEL */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 80 obs-text */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 90 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* a0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* b0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* c0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* d0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* e0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* f0 */
};

/* ------------------------------------------------ scanning 8 bytes at once */

/* The hot loops (the request line, header names and values) test a word
 * of 8 bytes at a time for any byte that stops them. has_less(w, n) flags
 * the bytes of w below n (n <= 128). A borrow can also flag a byte above a
 * real hit, never one below it, so the lowest flag is exact: with the word
 * loaded little-endian, its position is the count of trailing zeros. */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static inline uint64_t has_less(uint64_t w, unsigned n)
{
    return (w - ONES * n) & ~w & HIGHS;
}

static inline uint64_t has_byte(uint64_t w, unsigned b)
{
    return has_less(w ^ (ONES * b), 1);
}

static inline uint64_t load64(const char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w); /* one unaligned load; callers keep it before `end` */
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

static inline const char *first_flagged(const char *p, uint64_t flags)
{
    return p + __builtin_ctzll(flags) / 8;
}

/* The first byte at or after p that cannot be in a request line (anything
 * but 0x20-0x7e: the CR that should end it, or a bad byte), or end. */
static const char *scan_request_line(const char *p, const char *end)
{
    for (; end - p >= 8; p += 8) {
        uint64_t w = load64(p);
        uint64_t stop = has_less(w, 0x20) | has_byte(w, 0x7f) | (w & HIGHS);
        if (stop)
            return first_flagged(p, stop);
    }
    while (p < end && (unsigned char)*p - 0x20u < 0x5fu)
        p++;
    return p;
}

/* The first byte at or after p that ends a field name: the colon, or one
 * no tchar can be (SP, a control, DEL, 8-bit). The tchars-only rule for
 * what lies before it is checked by the caller. */
static const char *scan_name(const char *p, const char *end)
{
    for (; end - p >= 8; p += 8) {
        uint64_t w = load64(p);
        uint64_t stop = has_byte(w, ':') | has_less(w, 0x21) | has_byte(w, 0x7f) | (w & HIGHS);
        if (stop)
            return first_flagged(p, stop);
    }
    while (p < end && *p != ':' && (unsigned char)*p - 0x21u < 0x5eu)
        p++;
    return p;
}

/* The first byte at or after p that cannot be in a field value (a control
 * other than HTAB, or DEL: normally the CR ending the line), or end. */
static const char *scan_value(const char *p, const char *end)
{
    while (end - p >= 8) {
        uint64_t w = load64(p);
        uint64_t stop = has_less(w, 0x20) | has_byte(w, 0x7f);
        if (!stop) {
            p += 8;
            continue;
        }
        p = first_flagged(p, stop);
        if (*p != '\t')
            return p;
        p++; /* HTAB is the one control a value may hold */
    }
    while (p < end && http_is(*p, RITUAL__HTTP_VALUE))
        p++;
    return p;
}

/* Nonzero if every byte of s[0..n) is a tchar. No branch per byte (names
 * are short and end where scan_name said), four lookups a round. */
static int all_tchars(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    const unsigned char *t = ritual__http_ctype;
    unsigned all = RITUAL__HTTP_TCHAR;
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        all &= t[u[i]] & t[u[i + 1]] & t[u[i + 2]] & t[u[i + 3]];
    for (; i < n; i++)
        all &= t[u[i]];
    return all != 0;
}

/* ------------------------------------------------------------ header lines */

/* Parses header lines from p through the empty line. Returns 0 with *out
 * just past it, PARTIAL, or minus a status. */
static int parse_headers(const char *p, const char *end, struct http_head *h, const char **out)
{
    /* Locals, not h->: stores into the slots could alias the struct. */
    ritual_http_header *slots = h->headers;
    size_t count = 0, cap = h->cap;
    for (;;) {
        if (p == end)
            return RITUAL_HTTP_PARTIAL;
        if (*p == '\r') {
            if (p + 1 == end)
                return RITUAL_HTTP_PARTIAL;
            if (p[1] != '\n')
                return -400;
            h->count = count;
            *out = p + 2;
            return 0;
        }
        if (count == cap)
            return -431;

        /* field-name ":" -- a name is one or more tchars, straight up to the
         * colon: whitespace before it (RFC 9112 5.1), whitespace at the
         * start of the line (obs-fold, 5.2), bare LF and controls are all
         * 400 here. */
        const char *name = p;
        p = scan_name(p, end);
        size_t name_len = (size_t)(p - name);
        if (!all_tchars(name, name_len))
            return -400;
        if (p == end)
            return RITUAL_HTTP_PARTIAL;
        if (*p != ':' || name_len == 0)
            return -400;
        p++;

        /* OWS field-value OWS CRLF */
        while (p < end && http_is_ows(*p))
            p++;
        const char *value = p;
        p = scan_value(p, end);
        if (p == end)
            return RITUAL_HTTP_PARTIAL;
        if (*p != '\r') /* bare LF, NUL, other controls, DEL */
            return -400;
        if (p + 1 == end)
            return RITUAL_HTTP_PARTIAL;
        if (p[1] != '\n')
            return -400;
        const char *value_end = p;
        while (value_end > value && http_is_ows(value_end[-1]))
            value_end--;
        p += 2;

        size_t value_len = (size_t)(value_end - value);
        slots[count++] = (ritual_http_header){name, name_len, value, value_len};
        int rc = ritual__http_on_header(h, name, name_len, value, value_len);
        if (rc)
            return rc;
    }
}

/* "HTTP/" DIGIT "." DIGIT: the minor version (1.x for any x but 0 counts
 * as 1.1), -505 for another major, -400 if malformed. */
static int parse_version(const char *v, size_t n)
{
    if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || http_digit(v[5]) > 9 || v[6] != '.' ||
        http_digit(v[7]) > 9)
        return -400;
    if (v[5] != '1')
        return -505;
    return v[7] == '0' ? 0 : 1;
}

/* Finds the end of the first line at p (the request or status line). Returns
 * 0 with *cr at its CR, PARTIAL, -414 once more than max_line bytes are
 * seen without the CR, or -400 for a bad byte (bare LF, a control). The
 * line's bytes are checked by `scan`. */
static int find_line_end(const char *p, const char *end, size_t max_line,
                         const char *(*scan)(const char *, const char *), const char **cr)
{
    /* Scan no further than the byte that would make the line too long. */
    const char *limit = (size_t)(end - p) > max_line ? p + max_line + 1 : end;
    const char *q = scan(p, limit);
    if (q == limit)
        return (size_t)(q - p) > max_line ? -414 : RITUAL_HTTP_PARTIAL;
    if (*q != '\r')
        return -400;
    if (q + 1 == end)
        return RITUAL_HTTP_PARTIAL;
    if (q[1] != '\n')
        return -400;
    *cr = q;
    return 0;
}

/* ----------------------------------------------------------------- requests */

/* The request-target must take the one form the method allows (RFC 9112
 * 3.2): authority-form for CONNECT and only there, "*" only for OPTIONS,
 * otherwise origin-form ("/...") or absolute-form ("scheme://..."). Its
 * bytes are already known to be VCHAR. */
static int check_target(const char *m, size_t mlen, const char *t, size_t tlen)
{
    int connect = mlen == 7 && memcmp(m, "CONNECT", 7) == 0;
    if (connect) { /* uri-host ":" port */
        size_t i = 0;
        while (i < tlen && http_is(t[i], RITUAL__HTTP_HOST))
            i++;
        if (i != tlen)
            return -400;
        const char *colon = t + tlen;
        while (colon > t && colon[-1] != ':')
            colon--;
        if (colon <= t + 1 || colon == t + tlen) /* no host, or no port */
            return -400;
        for (const char *d = colon; d < t + tlen; d++)
            if (http_digit(*d) > 9)
                return -400;
        return 0;
    }
    if (t[0] == '/')
        return 0;
    if (tlen == 1 && t[0] == '*')
        return mlen == 7 && memcmp(m, "OPTIONS", 7) == 0 ? 0 : -400;
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://" */
    size_t i = 0;
    for (; i < tlen; i++) {
        int alpha = ((unsigned char)t[i] | 0x20u) - 'a' < 26u; /* ALPHA, either case */
        int more = http_digit(t[i]) < 10 || t[i] == '+' || t[i] == '-' || t[i] == '.';
        if (!alpha && !(i > 0 && more))
            break;
    }
    if (i == 0 || tlen - i < 3 || memcmp(t + i, "://", 3) != 0)
        return -400;
    return 0;
}

/* method SP request-target SP HTTP-version, in [p, cr): single spaces. */
static int parse_request_line(const char *p, const char *cr, ritual_http_request *req)
{
    const char *m = p;
    while (http_is(*p, RITUAL__HTTP_TCHAR)) /* stops at the CR at the latest */
        p++;
    if (p == m || *p != ' ')
        return -400;
    req->method = m;
    req->method_len = (size_t)(p - m);

    const char *t = p + 1;
    const char *sp = memchr(t, ' ', (size_t)(cr - t));
    if (!sp || sp == t) /* no version, or an empty target (two spaces) */
        return -400;
    req->target = t;
    req->target_len = (size_t)(sp - t);

    int minor = parse_version(sp + 1, (size_t)(cr - (sp + 1)));
    if (minor < 0)
        return minor;
    req->minor_version = minor;
    return check_target(req->method, req->method_len, req->target, req->target_len);
}

/* RFC 9112 6.3 for requests: TE (ending in chunked) or Content-Length or
 * nothing; both at once is refused outright rather than guessed at. */
static int finish_request(const struct http_head *h, ritual_http_request *req)
{
    if (h->minor >= 1 && !(h->flags & RITUAL_HTTP_HAS_HOST))
        return -400;
    if (h->has_te) {
        if (h->has_cl || h->te_chunked != 1 || !h->te_last_chunked)
            return -400;
        if (h->te_other) /* gzip, chunked: a coding we do not decode */
            return -501;
        req->body = RITUAL_HTTP_BODY_CHUNKED;
    } else {
        req->body = h->has_cl ? RITUAL_HTTP_BODY_LENGTH : RITUAL_HTTP_BODY_NONE;
    }
    req->content_length = h->has_cl ? h->content_length : 0;
    req->flags = h->flags;
    req->num_headers = h->count;
    return 0;
}

static int parse_request_head(const char *buf, const char *end, ritual_http_request *req,
                              size_t max_line)
{
    const char *p = buf;
    /* RFC 9112 2.2: empty lines before a request are skipped. They count
     * toward max_head (the caller cut `end` there), so an endless stream
     * of CRLFs is still refused. */
    while (end - p >= 8 && memcmp(p, "\r\n\r\n\r\n\r\n", 8) == 0)
        p += 8; /* a flood of them, four at a time */
    while (p < end && *p == '\r') {
        if (p + 1 == end)
            return RITUAL_HTTP_PARTIAL;
        if (p[1] != '\n')
            return -400;
        p += 2;
    }

    const char *cr;
    int rc = find_line_end(p, end, max_line, scan_request_line, &cr);
    if (rc)
        return rc;
    rc = parse_request_line(p, cr, req);
    if (rc)
        return rc;

    struct http_head h = {.headers = req->headers,
                          .cap = req->num_headers,
                          .is_request = 1,
                          .minor = req->minor_version};
    rc = parse_headers(cr + 2, end, &h, &p);
    if (rc)
        return rc;
    rc = finish_request(&h, req);
    if (rc)
        return rc;
    return (int)(p - buf);
}

/* The last_len shortcut (picohttpparser's is_complete, made exact). The
 * parse of buf[0..last_len) said PARTIAL; the new bytes need a full parse
 * only if they could change that. They cannot if they merely continue the
 * line the old bytes left off in with bytes that line accepts: token bytes
 * anywhere; 0x20-0x7e in the first line; more of a name up to its colon,
 * then value bytes. A CR or LF, a line's first byte, a crossed limit, or
 * leading empty lines send us to the full parse. The answer is exactly the
 * full parse's, and a client feeding a head a byte at a time costs O(n)
 * overall instead of O(n^2): each call looks at the new bytes, plus (once
 * per run) back over the token bytes before them, plus, in the first line,
 * a memchr bounded by max_line. */
static int still_partial(const char *buf, size_t len, size_t last_len, size_t max_line,
                         size_t max_head,
                         const char *(*scan_first_line)(const char *, const char *))
{
    if (last_len == 0 || last_len >= len || len >= max_head)
        return 0;
    if (last_len <= max_line && len > max_line)
        return 0; /* the first line may have just become too long */
    char prev = buf[last_len - 1];
    if (buf[0] == '\r' || buf[0] == '\n' || prev == '\r' || prev == '\n')
        return 0;

    const char *p = buf + last_len, *end = buf + len;
    while (p < end && http_is(*p, RITUAL__HTTP_TCHAR))
        p++;
    if (p == end)
        return 1;

    /* Where did the old bytes leave off? Still in the first line if they
     * hold no LF (past max_line they cannot: that parse said 414). */
    if (last_len <= max_line && !memchr(buf, '\n', last_len))
        return scan_first_line(p, end) == end;
    /* In a header line. Token bytes back to the line's start: a name. */
    const char *q = buf + last_len;
    while (http_is(q[-1], RITUAL__HTTP_TCHAR)) /* stops at the LF at the latest */
        q--;
    if (q[-1] == '\n') {
        if (*p != ':')
            return 0;
        p++;
    }
    return scan_value(p, end) == end;
}

static size_t limit_or(size_t v, size_t dflt)
{
    v = v ? v : dflt;
    return v < INT_MAX ? v : INT_MAX; /* head lengths are returned as int */
}

int ritual_http_parse_request(const char *buf, size_t len, ritual_http_request *req,
                              const ritual_http_limits *limits, size_t last_len)
{
    size_t max_line = limit_or(limits ? limits->max_request_line : 0, DEFAULT_MAX_REQUEST_LINE);
    size_t max_head = limit_or(limits ? limits->max_head : 0, DEFAULT_MAX_HEAD);
    if (still_partial(buf, len, last_len, max_line, max_head, scan_request_line))
        return RITUAL_HTTP_PARTIAL;
    /* A head cannot end past max_head: parse no further, and if that is
     * not enough, the head is too long. */
    int rc = parse_request_head(buf, buf + (len < max_head ? len : max_head), req, max_line);
    if (rc == RITUAL_HTTP_PARTIAL && len >= max_head)
        return -431;
    return rc;
}

/* ---------------------------------------------------------------- responses */

/* HTTP-version SP 3DIGIT SP reason-phrase, in [p, cr). The SP after the
 * status is optional here: some servers leave it out with no reason. */
static int parse_status_line(const char *p, const char *cr, ritual_http_response *res)
{
    size_t n = (size_t)(cr - p);
    if (n < 12 || p[8] != ' ')
        return -400;
    int minor = parse_version(p, 8);
    if (minor < 0)
        return minor;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        unsigned d = http_digit(p[i]);
        if (d > 9)
            return -400;
        status = status * 10 + (int)d;
    }
    if (status < 100 || status > 599) /* RFC 9110 15: the valid range */
        return -400;
    if (n > 12 && p[12] != ' ')
        return -400;
    res->minor_version = minor;
    res->status = status;
    res->reason = n > 12 ? p + 13 : p + 12;
    res->reason_len = n > 12 ? n - 13 : 0;
    return 0;
}

/* RFC 9112 6.3 for responses. */
static int finish_response(const struct http_head *h, ritual_http_response *res, int head_request)
{
    if (h->has_te && (h->has_cl || h->te_chunked > 1))
        return -400;
    int s = res->status;
    if (head_request || s < 200 || s == 204 || s == 304)
        res->body = RITUAL_HTTP_BODY_NONE;
    else if (h->has_te) /* chunked not last: the body runs to the close */
        res->body = h->te_last_chunked ? RITUAL_HTTP_BODY_CHUNKED : RITUAL_HTTP_BODY_UNTIL_CLOSE;
    else if (h->has_cl)
        res->body = RITUAL_HTTP_BODY_LENGTH;
    else
        res->body = RITUAL_HTTP_BODY_UNTIL_CLOSE;
    res->content_length = h->has_cl ? h->content_length : 0;
    res->flags = h->flags;
    res->num_headers = h->count;
    return 0;
}

int ritual_http_parse_response(const char *buf, size_t len, ritual_http_response *res,
                               int head_request, size_t last_len)
{
    const size_t max_line = DEFAULT_MAX_REQUEST_LINE, max_head = DEFAULT_MAX_HEAD;
    if (still_partial(buf, len, last_len, max_line, max_head, scan_value))
        return RITUAL_HTTP_PARTIAL;
    const char *end = buf + (len < max_head ? len : max_head);

    const char *cr, *p = NULL;
    int rc = find_line_end(buf, end, max_line, scan_value, &cr);
    if (rc == 0)
        rc = parse_status_line(buf, cr, res);
    if (rc == 0) {
        struct http_head h = {
            .headers = res->headers, .cap = res->num_headers, .minor = res->minor_version};
        rc = parse_headers(cr + 2, end, &h, &p);
        if (rc == 0)
            rc = finish_response(&h, res, head_request);
    }
    if (rc == RITUAL_HTTP_PARTIAL && len >= max_head)
        return -431;
    return rc ? rc : (int)(p - buf);
}

/* ----------------------------------------------------------- reason phrases */

const char *ritual_http_reason(int status)
{
    /* One line a status reads best; clang-format would make it three. */
    // clang-format off
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
    // clang-format on
}
