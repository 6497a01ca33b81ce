/* http_path.c - request-target to file path; see http_path.h. */
#include "http_path.h"

#include <string.h>
#include <strings.h>

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The path part of an absolute-form target: after "http://authority" or
 * "https://authority"; NULL for any other scheme (RFC 9112 3.2.2). */
static const char *skip_authority(const char *target, size_t len, size_t *rest)
{
    size_t scheme;
    if (len >= 7 && strncasecmp(target, "http://", 7) == 0)
        scheme = 7;
    else if (len >= 8 && strncasecmp(target, "https://", 8) == 0)
        scheme = 8;
    else
        return NULL;
    const char *end = target + len;
    const char *slash = target + scheme;
    /* The HTTP layer checked the authority (a host, digits for a port);
     * a '#' ends it too, for the path's check to refuse. */
    while (slash < end && *slash != '/' && *slash != '?' && *slash != '#')
        slash++;
    *rest = (size_t)(end - slash);
    return slash;
}

bool http_path_is_hidden(const char *path, size_t len)
{
    static const char well_known[] = "/.well-known/";
    size_t i = 0;
    if (len >= sizeof well_known - 2 && memcmp(path, well_known, sizeof well_known - 2) == 0 &&
        (len == sizeof well_known - 2 || path[sizeof well_known - 2] == '/'))
        i = sizeof well_known - 2;
    for (; i + 1 < len; i++)
        if (path[i] == '/' && path[i + 1] == '.')
            return true;
    return false;
}

long http_path_decode(const char *target, size_t len, char *out, size_t out_size,
                      const char **query, size_t *query_len)
{
    *query = "";
    *query_len = 0;
    if (out_size < 2)
        return -1;
    if (len > 0 && target[0] != '/') {
        size_t rest;
        const char *path = skip_authority(target, len, &rest);
        if (!path)
            return -1; /* "*" or an authority-form target: no file to serve */
        target = path;
        len = rest;
    }
    /* One pass finds the end of the path and whether it is "plain" (no
     * escape, no "//", no dot segment: already its own result), copying as
     * it goes; only the bytes '%', '/', '?' and '#' need a second look. */
    size_t path_len = 0;
    bool plain = len > 0 && target[0] == '/';
    size_t copy_max = out_size - 1;
    for (; path_len < len; path_len++) {
        char c = target[path_len];
        if ((unsigned char)c > '/' && c != '?') { /* the usual byte: letters, digits, '.' is 0x2e */
            if (path_len < copy_max)
                out[path_len] = c;
            continue;
        }
        if (c == '#')
            return -1;
        if (c == '?')
            break;
        if (c == '%' || (c == '/' && path_len + 1 < len &&
                         (target[path_len + 1] == '/' || target[path_len + 1] == '.')))
            plain = false;
        if (path_len < copy_max)
            out[path_len] = c;
    }
    if (path_len < len) { /* target[path_len] is '?' */
        *query = target + path_len;
        *query_len = len - path_len;
        if (memchr(*query, '#', *query_len))
            return -1;
    }
    if (plain && path_len > 0 && path_len < out_size) {
        out[path_len] = '\0';
        return (long)path_len;
    }

    /* Decode first (a "%2F" becomes a separator, as nginx does)... */
    if (path_len + 2 > out_size)
        return -2;
    size_t n = 0;
    out[n++] = '/';
    for (size_t i = 0; i < path_len; i++) {
        char c = target[i];
        if (c == '%') {
            if (path_len - i < 3)
                return -1;
            int hi = hex_value(target[i + 1]), lo = hex_value(target[i + 2]);
            if (hi < 0 || lo < 0 || (hi | lo) == 0)
                return -1; /* a bad escape, or %00 */
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        out[n++] = c;
    }

    /* ...then resolve the segments in place; the write index never passes
     * the read index. */
    size_t o = 1;
    size_t r = 1;
    while (r < n) {
        size_t seg = r;
        while (r < n && out[r] != '/')
            r++;
        size_t seg_len = r - seg;
        bool slash = r < n;
        if (slash)
            r++;
        if (seg_len == 0 || (seg_len == 1 && out[seg] == '.'))
            continue; /* "//" and "/./" */
        if (seg_len == 2 && out[seg] == '.' && out[seg + 1] == '.') {
            if (o == 1)
                return -1; /* above the root */
            o--;           /* the slash ending the previous segment */
            while (out[o - 1] != '/')
                o--;
            continue;
        }
        memmove(out + o, out + seg, seg_len);
        o += seg_len;
        if (slash)
            out[o++] = '/';
    }
    out[o] = '\0';
    return (long)o;
}

long http_path_encode(const char *name, size_t len, char *out, size_t out_size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '.' || c == '_' || c == '~' || c == '/';
        if (o + (plain ? 1 : 3) >= out_size)
            return -1;
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return (long)o;
}
