/* encoding.c - see encoding.h. Accept-Encoding is read as nginx's
 * gzip_static reads it only loosely; here the q-values are honoured as
 * RFC 9110 12.5.3 says. */
#include "encoding.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name, *suffix;
} codings[CODING_COUNT] = {
    [CODING_BR] = {"br", ".br"},
    [CODING_ZSTD] = {"zstd", ".zst"},
    [CODING_GZIP] = {"gzip", ".gz"},
};

const char *coding_name(enum coding c)
{
    return codings[c].name;
}

const char *coding_suffix(enum coding c)
{
    return codings[c].suffix;
}

int coding_list_parse(const char *text, struct coding_list *out)
{
    out->count = 0;
    if (strcmp(text, "off") == 0)
        return 0;
    unsigned seen = 0;
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int found = -1;
        for (int c = 0; c < CODING_COUNT; c++)
            if (strlen(codings[c].name) == len && memcmp(codings[c].name, p, len) == 0)
                found = c;
        if (found < 0 || (seen & (1u << found)))
            return -1;
        seen |= 1u << found;
        out->order[out->count++] = (unsigned char)found;
        if (!end)
            break;
        p = end + 1;
        if (!*p)
            return -1; /* a trailing comma */
    }
    return 0;
}

/* A qvalue (RFC 9110 12.4.2: "0", "0.5", "1.000") in thousandths, or -1. */
static int parse_q(const char *p, const char *end)
{
    if (p == end || (*p != '0' && *p != '1'))
        return -1;
    int q = (*p++ - '0') * 1000;
    if (p < end && *p == '.') {
        p++;
        for (int scale = 100; p < end && *p >= '0' && *p <= '9' && scale > 0; p++, scale /= 10)
            q += (*p - '0') * scale;
    }
    return p == end && q <= 1000 ? q : -1;
}

/* q-values seen so far: -1 where a name was not listed. */
struct accept {
    int coding[CODING_COUNT];
    int identity, star;
};

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* One element: "token *( OWS ; OWS param )". A q we cannot read refuses. */
static void accept_element(struct accept *a, const char *p, const char *end)
{
    while (p < end && is_ows(*p))
        p++;
    const char *name = p;
    while (p < end && *p != ';' && !is_ows(*p))
        p++;
    size_t name_len = (size_t)(p - name);
    if (name_len == 0)
        return;
    int q = 1000;
    while (p < end) {
        while (p < end && (is_ows(*p) || *p == ';'))
            p++;
        const char *param = p;
        while (p < end && *p != ';')
            p++;
        const char *pend = p;
        while (pend > param && is_ows(pend[-1]))
            pend--;
        if (pend - param >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=')
            q = parse_q(param + 2, pend);
    }
    if (q < 0)
        q = 0;
    int *slot = NULL;
    if (name_len == 1 && name[0] == '*')
        slot = &a->star;
    else if (name_len == 8 && strncasecmp(name, "identity", 8) == 0)
        slot = &a->identity;
    else if (name_len == 6 && strncasecmp(name, "x-gzip", 6) == 0) /* RFC 9110 8.4.1.3 */
        slot = &a->coding[CODING_GZIP];
    for (int c = 0; !slot && c < CODING_COUNT; c++)
        if (strlen(codings[c].name) == name_len &&
            strncasecmp(codings[c].name, name, name_len) == 0)
            slot = &a->coding[c];
    if (slot && *slot < 0) /* the first mention counts */
        *slot = q;
}

int coding_choose(const ritual_http_request *req, const struct coding_list *list, unsigned have)
{
    struct accept a = {.identity = -1, .star = -1};
    bool any = false;
    for (int c = 0; c < CODING_COUNT; c++)
        a.coding[c] = -1;
    for (size_t i = 0; i < req->num_headers; i++) {
        const ritual_http_header *h = &req->headers[i];
        if (h->name_len != 15 || strncasecmp(h->name, "Accept-Encoding", 15) != 0)
            continue;
        any = true;
        const char *p = h->value, *end = h->value + h->value_len;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *stop = comma ? comma : end;
            accept_element(&a, p, stop);
            p = comma ? comma + 1 : end;
        }
    }
    if (!any)
        return -1; /* no header: the file as it is, as nginx does */
    int best = -1, best_q = 0;
    for (unsigned i = 0; i < list->count; i++) {
        int c = list->order[i];
        if (!(have & (1u << c)))
            continue;
        int q = a.coding[c] >= 0 ? a.coding[c] : a.star >= 0 ? a.star : 0;
        if (q > best_q) {
            best = c;
            best_q = q;
        }
    }
    /* The file itself is acceptable unless refused (12.5.3); it wins only
     * where the client named it with a higher q-value. */
    if (best >= 0 && a.identity > best_q)
        return -1;
    return best;
}
