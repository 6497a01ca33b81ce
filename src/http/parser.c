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
#include "scan.h"
#include "ritual_http.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

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

/* ------------------------------------------------------------ header lines */

/* Parses header lines from p (< end) through the empty line, into the
 * slots from h->count on. Returns 0 with *out just past it, PARTIAL, or
 * minus a status. `fenced`: end[-1] is LF (see scan_class). Inlined for
 * the common case, a request head that ends its buffer: the call, with its
 * register saves, cost as much as a short header line. */
static ALWAYS_INLINE int parse_headers(const char *p, const char *end, struct http_head *h,
                                       const char **out, int fenced)
{
    /* Locals, not h->: stores into the slots could alias the struct. */
    ritual_http_header *const slots = h->headers, *slot = slots + h->count;
    ritual_http_header *const full = slots + h->cap;
    /* When fenced, the LF at end[-1] stops every scan before end, and no
     * CR can be the last byte: the tests marked so cannot fail. */
    for (;;) {
        if (p == end)
            return HTTP_PARTIAL;
        if (*p == '\r') {
            if (!fenced && p + 1 == end)
                return HTTP_PARTIAL;
            if (p[1] != '\n')
                return -400;
            h->count = (size_t)(slot - slots);
            *out = p + 2;
            return 0;
        }
        if (slot == full)
            return -431;

        /* field-name ":" -- a name is one or more tchars, straight up to the
         * colon: whitespace before it (RFC 9112 5.1), whitespace at the
         * start of the line (obs-fold, 5.2), bare LF and controls are all
         * 400 here. */
        const char *name = p;
        p = scan_class(p, end, RITUAL__HTTP_TCHAR, fenced);
        if (!fenced && p == end)
            return HTTP_PARTIAL;
        if (*p != ':' || p == name)
            return -400;
        size_t name_len = (size_t)(p - name);
        p++;

        /* OWS field-value OWS CRLF */
        if ((fenced || p < end) && *p == ' ') /* the usual single SP */
            p++;
        while ((fenced || p < end) && http_is_ows(*p))
            p++;
        const char *value = p;
        p = scan_value(p, end);
        if (!fenced && p == end)
            return HTTP_PARTIAL;
        if (*p != '\r') /* bare LF, NUL, other controls, DEL */
            return -400;
        if (!fenced && p + 1 == end)
            return HTTP_PARTIAL;
        if (p[1] != '\n')
            return -400;
        const char *value_end = p;
        if ((unsigned char)value_end[-1] <= ' ') /* OWS, or an empty value */
            while (value_end > value && http_is_ows(value_end[-1]))
                value_end--;
        p += 2;

        size_t value_len = (size_t)(value_end - value);
        *slot++ = (ritual_http_header){name, name_len, value, value_len};
        enum http_field field = http_field_of(name, name_len);
        if (field) {
            int rc = ritual__http_on_field(h, field, value, value_len);
            if (rc)
                return rc;
        }
    }
}

/* The same for any buffer, out of line. */
int ritual__http_parse_fields(const char *p, const char *end, struct http_head *h, const char **out)
{
    return parse_headers(p, end, h, out, 0);
}

/* "HTTP/" DIGIT "." DIGIT: the minor version (1.x for any x but 0 counts
 * as 1.1), -505 for another major, -400 if malformed. */
int ritual__http_parse_version(const char *v, size_t n)
{
    if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || http_digit(v[5]) > 9 || v[6] != '.' ||
        http_digit(v[7]) > 9)
        return -400;
    if (v[5] != '1')
        return -505;
    return v[7] == '0' ? 0 : 1;
}

/* ----------------------------------------------------------------- requests */

/* "http" or "https", in any case (a scheme is case-insensitive). */
static int is_http_scheme(const char *s, size_t n)
{
    if (n != 4 && n != 5)
        return 0;
    return (http_load32(s) | 0x20202020u) == HTTP_WORD4("http") && (n == 4 || (s[4] | 0x20) == 's');
}

/* The authority of an http or https URI, [a, end) being the rest of the
 * target after "://"; the authority ends at '/', '?', '#' or the end
 * (RFC 3986 3.2). Checks for a host that is not
 * empty (RFC 9110 4.2.1: such a URI is invalid and must be rejected), a
 * bracketed IP literal closed by its ']', a port of digits only, and no
 * userinfo (RFC 9110 4.2.4 has a recipient treat one as an error). nginx's
 * parser and ngx_http_validate_host answer each of these 400; so do we. */
static int check_http_authority(const char *a, const char *end)
{
    const char *p = a;
    if (p < end && *p == '[') { /* IPv6address or IPvFuture: checked loosely, as nginx does */
        for (p++; p < end && http_is(*p, RITUAL__HTTP_HOST) && *p != '[' && *p != ']'; p++)
            ;
        if (p == a + 1 || p == end || *p != ']')
            return -400;
        p++;
    } else { /* reg-name or IPv4address: '@' (userinfo) is not in the class */
        for (; p < end && http_is(*p, RITUAL__HTTP_HOST) && *p != ':' && *p != '[' && *p != ']';
             p++)
            ;
        if (p == a)
            return -400;
    }
    if (p < end && *p == ':') /* an empty port is allowed: RFC 3986 3.2.3 */
        for (p++; p < end && http_digit(*p) < 10; p++)
            ;
    if (p < end && *p != '/' && *p != '?' && *p != '#')
        return -400;
    return 0;
}

/* The request-target must take the one form the method allows (RFC 9112
 * 3.2): authority-form for CONNECT and only there, "*" only for OPTIONS,
 * otherwise origin-form ("/...") or absolute-form ("scheme://...", whose
 * authority is checked for http and https). Its bytes are already known to
 * be VCHAR. */
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
    if (is_http_scheme(t, i))
        return check_http_authority(t + i + 3, t + tlen);
    return 0;
}

/* The common case in one pass, with no separate search for the line's end:
 * a complete request line of single spaces and "HTTP/1.1" or "HTTP/1.0",
 * no longer than max_line, ending in CRLF. Returns 1 with the method,
 * target and version set in req and *next past the CRLF; returns 0, having
 * set nothing, for anything else (an incomplete line, an odd byte, another
 * version), which find_line_end and parse_request_line then judge. A line
 * taken here is one that they would take, with the same fields: each test
 * below is one of theirs, made on the same bytes. */
static int fast_request_line(const char *p, const char *end, size_t max_line,
                             ritual_http_request *req, const char **next)
{
    const char *m = p, *t;
    if (end - p >= 4 && http_load32(p) == HTTP_WORD4("GET ")) { /* most requests */
        t = p + 4;
    } else {
        while (p < end && http_is(*p, RITUAL__HTTP_TCHAR))
            p++;
        if (p == end || *p != ' ' || p == m)
            return 0;
        t = p + 1;
    }
    const char *sp = scan_target(t, end); /* stops at the SP, or at a bad byte */
    if (sp == end || *sp != ' ' || sp == t)
        return 0;
    const char *v = sp + 1; /* "HTTP/1.1" or "HTTP/1.0", CR LF: three compares */
    if (end - v < 10 || http_load16(v + 8) != HTTP_WORD2("\r\n") || (size_t)(v + 8 - m) > max_line)
        return 0;
    uint64_t version = http_load64(v);
    if (version != HTTP_WORD8("HTTP/1.1") && version != HTTP_WORD8("HTTP/1.0"))
        return 0;
    req->method = m;
    req->method_len = (size_t)(t - 1 - m);
    req->target = t;
    req->target_len = (size_t)(sp - t);
    req->minor_version = version == HTTP_WORD8("HTTP/1.1");
    *next = v + 10;
    return 1;
}

/* method SP request-target SP HTTP-version, in [p, cr) whose bytes are all
 * 0x20-0x7e: single spaces. For any line fast_request_line passed over. */
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

    int minor = ritual__http_parse_version(sp + 1, (size_t)(cr - (sp + 1)));
    if (minor < 0)
        return minor;
    req->minor_version = minor;
    return 0;
}

/* RFC 9112 6.3 for requests: TE (ending in chunked) or Content-Length or
 * nothing; both at once is refused outright rather than guessed at. */
static int finish_request(const struct http_head *h, ritual_http_request *req)
{
    if (h->minor >= 1 && !(h->flags & RITUAL_HTTP_HAS_HOST))
        return -400;
    if (!(h->has_te | h->has_cl)) { /* most requests: no body */
        req->body = RITUAL_HTTP_BODY_NONE;
        req->content_length = 0;
        req->flags = h->flags;
        req->num_headers = h->count;
        return 0;
    }
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

/* RFC 9112 3.2: a client sends Host first, and most do. A first line
 * "Host:" OWS host-bytes CRLF is taken here in one pass: the value's bytes
 * are checked against the Host class by the scan that finds its end, so
 * nothing is left for ritual__http_on_field to do but note it. Returns the
 * byte past the CRLF with slot 0 filled, or NULL, having set nothing, for
 * any other line: parse_headers then takes it as it would any. (OR-ing 0x20
 * lowercases letters, and maps no other byte to one: the compare is
 * exact.) */
static ALWAYS_INLINE const char *host_line(const char *p, const char *end, struct http_head *h,
                                           int fenced)
{
    if (h->cap == 0 || end - p < 5 || p[4] != ':' ||
        (http_load32(p) | 0x20202020u) != HTTP_WORD4("host"))
        return NULL;
    const char *v = p + 5;
    if ((fenced || v < end) && *v == ' ')
        v++;
    while ((fenced || v < end) && http_is_ows(*v))
        v++;
    const char *e = scan_class(v, end, RITUAL__HTTP_HOST, fenced);
    if (end - e < 2 || http_load16(e) != HTTP_WORD2("\r\n"))
        return NULL;
    h->headers[0] = (ritual_http_header){p, 4, v, (size_t)(e - v)};
    h->count = 1;
    h->flags = RITUAL_HTTP_HAS_HOST;
    return e + 2;
}

/* The header lines of a request, from p (< end). As parse_headers. */
static ALWAYS_INLINE int parse_request_headers(const char *p, const char *end, struct http_head *h,
                                               const char **out, int fenced)
{
    const char *q = host_line(p, end, h, fenced);
    if (q && end - q >= 2 && http_load16(q) == HTTP_WORD2("\r\n")) {
        *out = q + 2; /* Host and nothing else, as from many tools */
        return 0;
    }
    return parse_headers(q ? q : p, end, h, out, fenced);
}

/* RFC 9112 2.2: empty lines before a request are skipped. They count toward
 * max_head (the caller cut `end` there), so an endless stream of CRLFs is
 * still refused. Returns 0 with *pp past them, PARTIAL or -400. */
static int skip_empty_lines(const char **pp, const char *end)
{
    const char *p = *pp;
    while (end - p >= 8 && memcmp(p, "\r\n\r\n\r\n\r\n", 8) == 0)
        p += 8; /* a flood of them, four at a time */
    while (p < end && *p == '\r') {
        if (p + 1 == end)
            return HTTP_PARTIAL;
        if (p[1] != '\n')
            return -400;
        p += 2;
    }
    *pp = p;
    return 0;
}

static int parse_request_head(const char *buf, const char *end, ritual_http_request *req,
                              size_t max_line)
{
    const char *p = buf, *next;
    int rc;
    if (p < end && *p == '\r' && (rc = skip_empty_lines(&p, end)) != 0)
        return rc;
    if (!fast_request_line(p, end, max_line, req, &next)) {
        const char *cr;
        rc = find_line_end(p, end, max_line, scan_request_line, &cr);
        if (rc)
            return rc;
        rc = parse_request_line(p, cr, req);
        if (rc)
            return rc;
        next = cr + 2;
    }
    rc = check_target(req->method, req->method_len, req->target, req->target_len);
    if (rc)
        return rc;

    struct http_head h = {.headers = req->headers,
                          .cap = req->num_headers,
                          .is_request = 1,
                          .minor = req->minor_version};
    if (end[-1] == '\n') /* a line was read: end > buf */
        rc = parse_request_headers(next, end, &h, &p, 1);
    else
        rc = parse_request_headers(next, end, &h, &p, 0);
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
int ritual__http_still_partial(const char *buf, size_t len, size_t last_len, size_t max_line,
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

/* The parser works in statuses (minus the status to answer); the API in
 * negative errnos, with the status beside them. */
int ritual__http_parse_error(int rc, int *status)
{
    if (rc == HTTP_PARTIAL)
        return RITUAL_HTTP_PARTIAL;
    if (status)
        *status = -rc;
    switch (-rc) {
    case 414:
    case 431:
        return -EMSGSIZE;
    case 417:
    case 501:
        return -EOPNOTSUPP;
    case 505:
        return -EPROTONOSUPPORT;
    default:
        return -EBADMSG;
    }
}

static int parse_request(const char *buf, size_t len, ritual_http_request *req,
                         const ritual_http_limits *limits, size_t last_len)
{
    size_t max_line = RITUAL__HTTP_MAX_REQUEST_LINE, max_head = RITUAL__HTTP_MAX_HEAD;
    if (limits) {
        max_line = limit_or(limits->max_request_line, RITUAL__HTTP_MAX_REQUEST_LINE);
        max_head = limit_or(limits->max_head, RITUAL__HTTP_MAX_HEAD);
    }
    if (last_len &&
        ritual__http_still_partial(buf, len, last_len, max_line, max_head, scan_request_line))
        return HTTP_PARTIAL;
    /* A head cannot end past max_head: parse no further, and if that is
     * not enough, the head is too long. */
    int rc = parse_request_head(buf, buf + (len < max_head ? len : max_head), req, max_line);
    if (rc >= 0)
        return rc;
    return rc == HTTP_PARTIAL && len >= max_head ? -431 : rc;
}

int ritual_http_parse_request(const char *buf, size_t len, ritual_http_request *req,
                              const ritual_http_limits *limits, size_t last_len)
{
    int rc = parse_request(buf, len, req, limits, last_len);
    return rc >= 0 ? rc : ritual__http_parse_error(rc, &req->status);
}
