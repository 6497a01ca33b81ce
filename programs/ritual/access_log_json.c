/* access_log_json.c - the access log as one JSON object per line, as
 * nginx's log_format with escape=json writes it:
 *   {"time":"2026-11-26T13:29:55+00:00","remote_addr":"127.0.0.1","host":"example.com",
 *    "request":"GET /a?b HTTP/1.1","method":"GET","uri":"/a?b","protocol":"HTTP/1.1",
 *    "status":200,"body_bytes_sent":13,"referer":"","user_agent":"curl/8.5.0"}
 * (on one line). Strings hold the bytes received: '"' and '\\' escaped,
 * control bytes and DEL as \u00XX, valid UTF-8 as it is, and any other
 * byte >= 0x80 as \u00XX of the byte, so that each line is valid JSON
 * whatever a client sends, and reads back to what it sent. As in nginx,
 * what is absent is an empty string: a missing header, and method, uri,
 * protocol and host of a request that did not parse (whose request line,
 * as far as it was received, is still in "request"). The library does not
 * time requests, so there is no request_time. */
#include "access_log.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The most each string field may take of a line once escaped: together
 * with the rest, less than ACCESS_LOG_LINE_MAX. */
enum {
    CAP_ADDR = 64,
    CAP_HOST = 256,
    CAP_REQUEST = 2048,
    CAP_METHOD = 64,
    CAP_URI = 2048,
    CAP_PROTOCOL = 16,
    CAP_HEADER = 1024, /* referer, user_agent */
    CAP_REST = 512,    /* names, punctuation, the time (32) and numbers (96) */
};
_Static_assert(CAP_ADDR + CAP_HOST + CAP_REQUEST + CAP_METHOD + CAP_URI + CAP_PROTOCOL +
                       2 * CAP_HEADER + CAP_REST <=
                   ACCESS_LOG_LINE_MAX,
               "a JSON log line fits its room");

/* The length of the valid UTF-8 sequence (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF) at s[0] >= 0x80, or 0. */
static size_t utf8_len(const unsigned char *s, const unsigned char *end)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t n;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return 0;
    if ((size_t)(end - s) < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* Copies s[0..len) escaped into p, a whole character or escape at a time,
 * no further than cap bytes. Returns the new end. */
static char *put_string(char *p, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *limit = p + cap;
    const unsigned char *u = (const unsigned char *)s, *end = u + len;
    while (u < end) {
        unsigned char c = *u;
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            if (p == limit)
                break;
            *p++ = (char)c;
            u++;
            continue;
        }
        size_t n = c >= 0x80 ? utf8_len(u, end) : 0;
        if (n > 0) {
            if ((size_t)(limit - p) < n)
                break;
            memcpy(p, u, n);
            p += n;
            u += n;
        } else if (c == '"' || c == '\\') {
            if (limit - p < 2)
                break;
            *p++ = '\\';
            *p++ = (char)c;
            u++;
        } else {
            if (limit - p < 6)
                break;
            memcpy(p, "\\u00", 4);
            p[4] = hex[c >> 4];
            p[5] = hex[c & 15];
            p += 6;
            u++;
        }
    }
    return p;
}

#define PUT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)

static char *put_header(char *p, const ritual_http_request *req, const char *name)
{
    const ritual_http_header *h =
        req ? ritual_http_find_header(req->headers, req->num_headers, name) : NULL;
    return h ? put_string(p, CAP_HEADER, h->value, h->value_len) : p;
}

char *access_log_json_line(char *p, const ritual_http_log_entry *e,
                           const struct access_log_fields *f)
{
    const ritual_http_request *req = e->req;
    p = PUT(p, "{\"time\":\"");
    memcpy(p, f->stamp, f->stamp_len);
    p += f->stamp_len;
    p = PUT(p, "\",\"remote_addr\":\"");
    p = put_string(p, CAP_ADDR, f->addr, f->addr_len);
    p = PUT(p, "\",\"host\":\"");
    p = put_header(p, req, "Host");
    p = PUT(p, "\",\"request\":\"");
    p = put_string(p, CAP_REQUEST, e->request_line, e->request_line_len);
    p = PUT(p, "\",\"method\":\"");
    if (req)
        p = put_string(p, CAP_METHOD, req->method, req->method_len);
    p = PUT(p, "\",\"uri\":\"");
    if (req)
        p = put_string(p, CAP_URI, req->target, req->target_len);
    p = PUT(p, "\",\"protocol\":\"");
    if (req)
        p = req->minor_version ? PUT(p, "HTTP/1.1") : PUT(p, "HTTP/1.0");
    p += snprintf(p, 96, "\",\"status\":%d,\"body_bytes_sent\":%llu,\"referer\":\"", e->status,
                  (unsigned long long)e->body_bytes);
    p = put_header(p, req, "Referer");
    p = PUT(p, "\",\"user_agent\":\"");
    p = put_header(p, req, "User-Agent");
    p = PUT(p, "\"}\n");
    return p;
}
