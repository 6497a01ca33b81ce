/* json_line.c - a strict reader of one-line JSON objects (json_line.h). */
#include "json_line.h"

#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reader {
    const unsigned char *p, *end;
    const char *line; /* for messages */
    size_t line_len;
};

#define BAD(r, why)                                                                                \
    FAIL("not valid JSON (%s) at byte %zu of the log line\n  %.*s", (why),                         \
         (size_t)((const char *)(r)->p - (r)->line), (int)(r)->line_len, (r)->line)

static void skip_ws(struct reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static void expect_byte(struct reader *r, char c)
{
    skip_ws(r);
    if (r->p == r->end || *r->p != (unsigned char)c) {
        char why[32];
        snprintf(why, sizeof why, "expected '%c'", c);
        BAD(r, why);
    }
    r->p++;
}

static size_t utf8_valid_len(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;
    if (c >= 0xc0 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf7)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if ((size_t)(end - s) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static unsigned hex4(struct reader *r)
{
    if (r->end - r->p < 4)
        BAD(r, "short \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = *r->p++, d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            BAD(r, "bad hex digit in \\u escape");
        v = v << 4 | d;
    }
    return v;
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80)
        return out[0] = (char)cp, 1;
    if (cp < 0x800)
        return out[0] = (char)(0xc0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3f)), 2;
    if (cp < 0x10000)
        return out[0] = (char)(0xe0 | cp >> 12), out[1] = (char)(0x80 | (cp >> 6 & 0x3f)),
               out[2] = (char)(0x80 | (cp & 0x3f)), 3;
    return out[0] = (char)(0xf0 | cp >> 18), out[1] = (char)(0x80 | (cp >> 12 & 0x3f)),
           out[2] = (char)(0x80 | (cp >> 6 & 0x3f)), out[3] = (char)(0x80 | (cp & 0x3f)), 4;
}

/* A string at r->p (after its opening quote), decoded into a malloc'd
 * buffer. */
static char *read_string(struct reader *r, size_t *len)
{
    char *out = malloc((size_t)(r->end - r->p) + 1);
    ASSERT(out != NULL);
    size_t n = 0;
    for (;;) {
        if (r->p == r->end)
            BAD(r, "unterminated string");
        unsigned c = *r->p;
        if (c == '"') {
            r->p++;
            break;
        }
        if (c < 0x20)
            BAD(r, "raw control byte in a string");
        if (c >= 0x80) {
            size_t k = utf8_valid_len(r->p, r->end);
            if (k == 0)
                BAD(r, "raw byte that is not UTF-8");
            memcpy(out + n, r->p, k);
            n += k;
            r->p += k;
            continue;
        }
        r->p++;
        if (c != '\\') {
            out[n++] = (char)c;
            continue;
        }
        if (r->p == r->end)
            BAD(r, "escape at the end");
        c = *r->p++;
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *hit = c ? strchr(from, (int)c) : NULL;
        if (hit) {
            out[n++] = to[hit - from];
        } else if (c == 'u') {
            unsigned cp = hex4(r);
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u')
                    BAD(r, "lone high surrogate");
                r->p += 2;
                unsigned lo = hex4(r);
                if (lo < 0xdc00 || lo > 0xdfff)
                    BAD(r, "bad low surrogate");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                BAD(r, "lone low surrogate");
            }
            if (cp <= 0xff)
                out[n++] = (char)cp;
            else
                n += put_utf8(out + n, cp);
        } else {
            BAD(r, "unknown escape");
        }
    }
    out[n] = '\0';
    *len = n;
    return out;
}

static char *read_number(struct reader *r, size_t *len)
{
    const unsigned char *start = r->p;
    if (r->p < r->end && *r->p == '-')
        r->p++;
    if (r->p == r->end || *r->p < '0' || *r->p > '9')
        BAD(r, "not a value");
    if (*r->p == '0')
        r->p++;
    else
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
    if (r->p < r->end && (*r->p == '.' || (*r->p | 0x20) == 'e'))
        BAD(r, "a fraction or exponent where only integers are expected");
    *len = (size_t)(r->p - start);
    char *out = malloc(*len + 1);
    ASSERT(out != NULL);
    memcpy(out, start, *len);
    out[*len] = '\0';
    return out;
}

void json_line_read(const char *line, size_t len, struct json_line *j)
{
    struct reader r = {(const unsigned char *)line, (const unsigned char *)line + len, line, len};
    memset(j, 0, sizeof *j);
    expect_byte(&r, '{');
    skip_ws(&r);
    if (r.p < r.end && *r.p == '}') {
        r.p++;
    } else {
        for (;;) {
            expect_byte(&r, '"');
            size_t klen;
            char *key = read_string(&r, &klen);
            if (j->n == JSON_LINE_MAX_FIELDS || klen >= sizeof j->key[0])
                BAD(&r, "more or longer keys than a log line has");
            memcpy(j->key[j->n], key, klen + 1);
            free(key);
            expect_byte(&r, ':');
            skip_ws(&r);
            if (r.p < r.end && *r.p == '"') {
                r.p++;
                j->value[j->n] = read_string(&r, &j->len[j->n]);
                j->is_string[j->n] = 1;
            } else {
                j->value[j->n] = read_number(&r, &j->len[j->n]);
            }
            j->n++;
            skip_ws(&r);
            if (r.p < r.end && *r.p == ',') {
                r.p++;
                continue;
            }
            expect_byte(&r, '}');
            break;
        }
    }
    skip_ws(&r);
    if (r.p != r.end)
        BAD(&r, "bytes after the object");
}

void json_line_free(struct json_line *j)
{
    for (int i = 0; i < j->n; i++)
        free(j->value[i]);
}

const char *json_line_get(const struct json_line *j, const char *key, size_t *len)
{
    for (int i = 0; i < j->n; i++) {
        if (strcmp(j->key[i], key) == 0) {
            if (len)
                *len = j->len[i];
            return j->value[i];
        }
    }
    return NULL;
}
