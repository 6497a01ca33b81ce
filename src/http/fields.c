/* fields.c - what the header fields of a head mean (RFC 9110, RFC 9112):
 * the few that decide framing and connection handling (Content-Length,
 * Transfer-Encoding, Host, Connection, Expect) checked strictly as the
 * parser meets them, and header lookup by name. */
#include "parser.h"

#include <string.h>

static unsigned to_lower(char ch)
{
    unsigned c = (unsigned char)ch;
    return c - 'A' < 26u ? c + ('a' - 'A') : c;
}

#define IS(s, n, lit) ((n) == sizeof(lit) - 1 && http_lower_equals((s), (n), (lit)))

/* Iterates over a comma-separated list (RFC 9110 5.6.1): elements come out
 * trimmed of OWS, and empty ones are skipped as the RFC asks. */
struct list {
    const char *p, *end;
};

static int list_next(struct list *l, const char **elem, size_t *len)
{
    while (l->p < l->end) {
        const char *s = l->p, *e = s;
        while (e < l->end && *e != ',') /* elements are short: no memchr call */
            e++;
        l->p = e < l->end ? e + 1 : e;
        while (s < e && http_is_ows(*s))
            s++;
        while (e > s && http_is_ows(e[-1]))
            e--;
        if (s < e) {
            *elem = s;
            *len = (size_t)(e - s);
            return 1;
        }
    }
    return 0;
}

static int on_content_length(struct http_head *h, const char *v, size_t n)
{
    /* 1*DIGIT and nothing else: no sign, no inner space, no "5, 5" list.
     * A second Content-Length is refused even if equal (RFC 9112 6.3 lets
     * us; accepting it is how smuggling starts). */
    if (h->has_cl || n == 0)
        return -400;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = http_digit(v[i]);
        if (d > 9 || x > (UINT64_MAX - d) / 10)
            return -400;
        x = x * 10 + d;
    }
    h->has_cl = 1;
    h->content_length = x;
    return 0;
}

static int on_transfer_encoding(struct http_head *h, const char *v, size_t n)
{
    /* HTTP/1.0 has no chunked framing: a TE there is a smuggling attempt
     * or a broken peer (RFC 9112 6.1: the framing is faulty). */
    if (h->minor == 0)
        return -400;
    h->has_te = 1;
    struct list l = {v, v + n};
    const char *e;
    size_t len;
    while (list_next(&l, &e, &len)) {
        size_t t = 0;
        while (t < len && http_is(e[t], RITUAL__HTTP_TCHAR))
            t++;
        if (t == 0)
            return -400;
        int chunked = IS(e, t, "chunked");
        if (t < len) { /* transfer-parameters: OWS ";" ... (chunked has none) */
            while (t < len && http_is_ows(e[t]))
                t++;
            if (t == len || e[t] != ';' || chunked)
                return -400;
        }
        h->te_chunked += chunked;
        h->te_last_chunked = (unsigned char)chunked;
        h->te_other |= (unsigned char)!chunked;
    }
    return 0;
}

static int on_host(struct http_head *h, const char *v, size_t n)
{
    /* RFC 9110 7.2: a repeated Host or an invalid one is 400. */
    if (h->flags & RITUAL_HTTP_HAS_HOST)
        return -400;
    /* No branch per byte: the class of every byte ANDed, four a round. */
    const unsigned char *u = (const unsigned char *)v, *t = ritual__http_ctype;
    unsigned all = RITUAL__HTTP_HOST;
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        all &= t[u[i]] & t[u[i + 1]] & t[u[i + 2]] & t[u[i + 3]];
    for (; i < n; i++)
        all &= t[u[i]];
    if (!all)
        return -400;
    h->flags |= RITUAL_HTTP_HAS_HOST;
    return 0;
}

static int on_connection(struct http_head *h, const char *v, size_t n)
{
    /* Most say just one of the two: no list to walk. */
    if (IS(v, n, "keep-alive")) {
        h->flags |= RITUAL_HTTP_CONN_KEEP_ALIVE;
        return 0;
    }
    if (IS(v, n, "close")) {
        h->flags |= RITUAL_HTTP_CONN_CLOSE;
        return 0;
    }
    struct list l = {v, v + n};
    const char *e;
    size_t len;
    while (list_next(&l, &e, &len)) {
        if (IS(e, len, "close"))
            h->flags |= RITUAL_HTTP_CONN_CLOSE;
        else if (IS(e, len, "keep-alive"))
            h->flags |= RITUAL_HTTP_CONN_KEEP_ALIVE;
    }
    return 0;
}

static int on_expect(struct http_head *h, const char *v, size_t n)
{
    if (!IS(v, n, "100-continue"))
        return -417;
    if (h->minor >= 1) /* RFC 9110 10.1.1: ignored in an HTTP/1.0 request */
        h->flags |= RITUAL_HTTP_EXPECT_CONTINUE;
    return 0;
}

int ritual__http_on_field(struct http_head *h, enum http_field field, const char *v, size_t n)
{
    switch (field) {
    case HTTP_FIELD_HOST:
        return h->is_request ? on_host(h, v, n) : 0;
    case HTTP_FIELD_EXPECT:
        return h->is_request ? on_expect(h, v, n) : 0;
    case HTTP_FIELD_CONNECTION:
        return on_connection(h, v, n);
    case HTTP_FIELD_CONTENT_LENGTH:
        return on_content_length(h, v, n);
    case HTTP_FIELD_TRANSFER_ENCODING:
        return on_transfer_encoding(h, v, n);
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------ lookup */

const ritual_http_header *ritual_http_find_header(const ritual_http_header *headers, size_t count,
                                                  const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < count; i++) {
        if (headers[i].name_len != n)
            continue;
        size_t j = 0;
        while (j < n && to_lower(headers[i].name[j]) == to_lower(name[j]))
            j++;
        if (j == n)
            return &headers[i];
    }
    return NULL;
}
