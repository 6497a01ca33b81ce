/* multipart.c - see multipart.h. */
#include "multipart.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BOUNDARY_LEN 20
#define PART_HEAD_MAX 512

/* A boundary that a file's bytes are unlikely to hold by chance or design:
 * 20 hex digits mixed from the seed (splitmix64). */
static void make_boundary(uint64_t seed, char out[BOUNDARY_LEN + 1])
{
    uint64_t z = seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    snprintf(out, BOUNDARY_LEN + 1, "%04x%016llx", (unsigned)(seed & 0xffff),
             (unsigned long long)z);
}

static int part_head(char *out, size_t cap, const char *boundary, const char *type, size_t type_len,
                     const struct byte_range *r, uint64_t size)
{
    return snprintf(out, cap,
                    "\r\n--%s\r\nContent-Type: %.*s\r\nContent-Range: bytes %llu-%llu/%llu\r\n\r\n",
                    boundary, (int)type_len, type, (unsigned long long)r->first,
                    (unsigned long long)r->last, (unsigned long long)size);
}

/* Reads len bytes at off into out, whatever the file's short reads. */
static int read_at(const struct file_entry *e, char *out, uint64_t off, size_t len)
{
    if (e->body) {
        memcpy(out, e->body + off, len);
        return 0;
    }
    while (len > 0) {
        ssize_t n = pread(e->fd, out, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO; /* the file shrank under us */
        out += n, off += (uint64_t)n, len -= (size_t)n;
    }
    return 0;
}

int multipart_respond(ritual_http_exchange *ex, struct file_entry *e, const char *type,
                      size_t type_len, const ritual_http_header *headers, size_t nh,
                      const struct byte_range *r, size_t n, uint64_t seed)
{
    char boundary[BOUNDARY_LEN + 1];
    make_boundary(seed, boundary);
    if (type_len > 200)
        return -E2BIG;
    char head[PART_HEAD_MAX];
    size_t total = 2 + 2 + BOUNDARY_LEN + 4; /* "\r\n--" boundary "--\r\n" */
    for (size_t i = 0; i < n; i++) {
        uint64_t len = r[i].last - r[i].first + 1;
        int h = part_head(head, sizeof head, boundary, type, type_len, &r[i], e->size);
        if (h < 0 || len > MULTIPART_MAX_BYTES || total + (size_t)h + len > MULTIPART_MAX_BYTES)
            return -E2BIG;
        total += (size_t)h + (size_t)len;
    }
    char *body = malloc(total + 1); /* snprintf's NUL */
    if (!body)
        return -ENOMEM;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = (size_t)(r[i].last - r[i].first + 1);
        at +=
            (size_t)part_head(body + at, total + 1 - at, boundary, type, type_len, &r[i], e->size);
        int rc = read_at(e, body + at, r[i].first, len);
        if (rc < 0) {
            free(body);
            return rc;
        }
        at += len;
    }
    at += (size_t)snprintf(body + at, total + 1 - at, "\r\n--%s--\r\n", boundary);

    char content_type[64];
    int ct =
        snprintf(content_type, sizeof content_type, "multipart/byteranges; boundary=%s", boundary);
    ritual_http_header h[8];
    if (nh > 7)
        nh = 7;
    memcpy(h, headers, nh * sizeof *h);
    h[nh++] = (ritual_http_header){"Content-Type", 12, content_type, (size_t)ct};
    ritual_http_respond_ref(ex, 206, h, nh, body, at, free, body);
    return 0;
}
