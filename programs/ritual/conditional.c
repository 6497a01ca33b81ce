/* conditional.c - see conditional.h. */
#include "conditional.h"

#include <string.h>

/* Whether one line of an entity-tag list ("*" or tags, comma separated)
 * names e's tag. Weak comparison ignores "W/"; strong never matches a weak
 * tag. */
static bool etag_line_matches(const ritual_http_header *h, const struct file_entry *e, bool strong)
{
    const char *p = h->value, *end = h->value + h->value_len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p < end && *p == '*')
            return true;
        bool weak = end - p >= 2 && p[0] == 'W' && p[1] == '/';
        if (weak)
            p += 2;
        const char *tag = p;
        if (p < end && *p == '"') {
            const char *close = memchr(p + 1, '"', (size_t)(end - p - 1));
            p = close ? close + 1 : end;
        } else {
            while (p < end && *p != ',')
                p++;
        }
        if ((size_t)(p - tag) == e->etag_len && memcmp(tag, e->etag, e->etag_len) == 0 &&
            !(weak && strong))
            return true;
    }
    return false;
}

/* Every line named `name` as one list: 1 if one of them matches, 0 if none
 * does, -1 if there is no such header. */
static int etag_list_matches(const ritual_http_request *req, const char *name,
                             const struct file_entry *e, bool strong)
{
    const ritual_http_header *end = req->headers + req->num_headers;
    const ritual_http_header *h = ritual_http_find_header(req->headers, req->num_headers, name);
    if (!h)
        return -1;
    for (; h; h = ritual_http_find_header(h + 1, (size_t)(end - h - 1), name))
        if (etag_line_matches(h, e, strong))
            return 1;
    return 0;
}

static bool date_header(const ritual_http_request *req, const char *name, int64_t *when)
{
    const ritual_http_header *h = ritual_http_find_header(req->headers, req->num_headers, name);
    return h && ritual_http_parse_date(h->value, h->value_len, when) == 0;
}

bool conditional_failed(const ritual_http_request *req, const struct file_entry *e)
{
    int match = etag_list_matches(req, "If-Match", e, true);
    if (match >= 0)
        return match == 0;
    int64_t since;
    return date_header(req, "If-Unmodified-Since", &since) && e->mtime > since;
}

bool conditional_not_modified(const ritual_http_request *req, const struct file_entry *e)
{
    int match = etag_list_matches(req, "If-None-Match", e, false);
    if (match >= 0)
        return match == 1; /* If-Modified-Since is then ignored (13.1.3) */
    int64_t since;
    return date_header(req, "If-Modified-Since", &since) && e->mtime <= since;
}

bool conditional_range_allowed(const ritual_http_request *req, const struct file_entry *e)
{
    const ritual_http_header *h =
        ritual_http_find_header(req->headers, req->num_headers, "If-Range");
    if (!h)
        return true;
    if (h->value_len > 0 && h->value[0] == '"') /* strong comparison */
        return h->value_len == e->etag_len && memcmp(h->value, e->etag, e->etag_len) == 0;
    int64_t when;
    return ritual_http_parse_date(h->value, h->value_len, &when) == 0 && when == e->mtime;
}
