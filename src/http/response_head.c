/* response_head.c - HTTP/1.1 response heads (RFC 9112 4, 6.3), for
 * clients of the library (ritual bench among them). It shares the request
 * parser's header lines and its rules: see parser.c. */
#include "parser.h"
#include "ritual_http.h"
#include "scan.h"

#include <stddef.h>

/* HTTP-version SP 3DIGIT SP reason-phrase, in [p, cr). The SP after the
 * status is optional here: some servers leave it out with no reason. */
static int parse_status_line(const char *p, const char *cr, ritual_http_response *res)
{
    size_t n = (size_t)(cr - p);
    if (n < 12 || p[8] != ' ')
        return -400;
    int minor = ritual__http_parse_version(p, 8);
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

static int parse_response(const char *buf, size_t len, ritual_http_response *res, int head_request,
                          size_t last_len)
{
    const size_t max_line = RITUAL__HTTP_MAX_REQUEST_LINE, max_head = RITUAL__HTTP_MAX_HEAD;
    if (ritual__http_still_partial(buf, len, last_len, max_line, max_head, scan_value))
        return HTTP_PARTIAL;
    const char *end = buf + (len < max_head ? len : max_head);

    const char *cr, *p = NULL;
    int rc = find_line_end(buf, end, max_line, scan_value, &cr);
    if (rc == 0)
        rc = parse_status_line(buf, cr, res);
    if (rc == 0) {
        struct http_head h = {
            .headers = res->headers, .cap = res->num_headers, .minor = res->minor_version};
        rc = ritual__http_parse_fields(cr + 2, end, &h, &p);
        if (rc == 0)
            rc = finish_response(&h, res, head_request);
    }
    if (rc == HTTP_PARTIAL && len >= max_head)
        return -431;
    return rc ? rc : (int)(p - buf);
}

int ritual_http_parse_response(const char *buf, size_t len, ritual_http_response *res,
                               int head_request, size_t last_len)
{
    int rc = parse_response(buf, len, res, head_request, last_len);
    return rc >= 0 ? rc : ritual__http_parse_error(rc, NULL);
}
