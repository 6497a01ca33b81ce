/* proxy_header.c - the PROXY protocol header (haproxy's
 * doc/proxy-protocol.txt), v1 and v2, parsed strictly from whatever part
 * of it has arrived. The answer only ever moves forward as bytes are
 * added: NEED_MORE while the bytes are a proper prefix of a valid header,
 * then DONE or MALFORMED for good. So a client that speaks HTTP (or TLS)
 * straight at a PROXY listener is refused on its first byte, and a header
 * trickled one byte at a time gets the same answer as a whole one. */
#include "proxy_header.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static const char v1_prefix[] = "PROXY ";
static const char v2_signature[12] = "\r\n\r\n\0\r\nQUIT\n";

/* Whether the `len` bytes seen so far agree with `want` (of `want_len`). */
static bool agrees(const char *bytes, size_t len, const char *want, size_t want_len)
{
    return memcmp(bytes, want, len < want_len ? len : want_len) == 0;
}

/* ------------------------------------------------------------------ v1 */

/* A decimal port, 0..65535, without a sign or a leading zero. */
static bool v1_port(const char *s, size_t n, uint16_t *port)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* An address of `family` as inet_pton reads it, from a field of `n` bytes. */
static bool v1_address(int family, const char *s, size_t n, union proxy_addr *out)
{
    char text[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof text)
        return false;
    memcpy(text, s, n);
    text[n] = '\0';
    memset(out, 0, sizeof *out);
    if (family == AF_INET) {
        out->in.sin_family = AF_INET;
        return inet_pton(AF_INET, text, &out->in.sin_addr) == 1;
    }
    out->in6.sin6_family = AF_INET6;
    return inet_pton(AF_INET6, text, &out->in6.sin6_addr) == 1;
}

static void set_port(union proxy_addr *a, uint16_t port)
{
    if (a->sa.sa_family == AF_INET)
        a->in.sin_port = htons(port);
    else
        a->in6.sin6_port = htons(port);
}

/* "TCP4 " or "TCP6 " then four fields separated by single spaces, and the
 * line's end at `end` (the CR). */
static enum proxy_result v1_addresses(const char *p, const char *end, struct proxy_header *out)
{
    int family = p[3] == '4' ? AF_INET : AF_INET6;
    const char *field[4];
    size_t flen[4];
    p += 5;
    for (int i = 0; i < 4; i++) {
        const char *sp = i < 3 ? memchr(p, ' ', (size_t)(end - p)) : end;
        if (!sp)
            return PROXY_MALFORMED;
        field[i] = p;
        flen[i] = (size_t)(sp - p);
        p = sp + 1;
    }
    uint16_t sport, dport;
    if (!v1_address(family, field[0], flen[0], &out->src) ||
        !v1_address(family, field[1], flen[1], &out->dst) || !v1_port(field[2], flen[2], &sport) ||
        !v1_port(field[3], flen[3], &dport))
        return PROXY_MALFORMED;
    set_port(&out->src, sport);
    set_port(&out->dst, dport);
    out->family = family;
    return PROXY_DONE;
}

/* The characters a TCP4/TCP6 line may hold after its protocol: checked as
 * they arrive, so that garbage is refused before the line ends. */
static bool v1_field_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' ||
           c == ':' || c == ' ';
}

static enum proxy_result parse_v1(const char *bytes, size_t len, struct proxy_header *out)
{
    static const char *const protos[] = {"TCP4 ", "TCP6 ", "UNKNOWN"};
    const size_t plen = sizeof v1_prefix - 1;
    if (!agrees(bytes, len, v1_prefix, plen))
        return PROXY_MALFORMED;
    if (len <= plen)
        return PROXY_NEED_MORE;
    const char *proto = bytes + plen;
    size_t seen = len - plen;
    int which = -1;
    for (int i = 0; i < 3; i++)
        if (agrees(proto, seen, protos[i], strlen(protos[i])))
            which = i;
    if (which < 0)
        return PROXY_MALFORMED;
    size_t proto_len = strlen(protos[which]);
    if (seen <= proto_len)
        return PROXY_NEED_MORE;
    /* The line's end: CR LF within PROXY_V1_MAX bytes, no other CR or LF. */
    size_t scan = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
    size_t from = plen + proto_len;
    const char *cr = NULL;
    for (size_t i = from; i < scan; i++) {
        char c = bytes[i];
        if (c == '\r') {
            cr = bytes + i;
            break;
        }
        if (c == '\n' || (which < 2 && !v1_field_char(c)))
            return PROXY_MALFORMED;
    }
    if (which == 2 && bytes[from] != ' ' && bytes[from] != '\r')
        return PROXY_MALFORMED; /* "UNKNOWNX" */
    if (!cr)
        return len >= PROXY_V1_MAX ? PROXY_MALFORMED : PROXY_NEED_MORE;
    size_t line = (size_t)(cr - bytes) + 2;
    if (line > PROXY_V1_MAX)
        return PROXY_MALFORMED;
    if (len < line)
        return PROXY_NEED_MORE;
    if (cr[1] != '\n')
        return PROXY_MALFORMED;
    struct proxy_header h;
    memset(&h, 0, sizeof h);
    h.version = 1;
    h.command = PROXY_CMD_PROXY;
    h.family = AF_UNSPEC; /* UNKNOWN: the rest of its line is ignored */
    h.len = line;
    if (which < 2 && v1_addresses(bytes + plen, cr, &h) != PROXY_DONE)
        return PROXY_MALFORMED;
    *out = h;
    return PROXY_DONE;
}

/* ------------------------------------------------------------------ v2 */

#define V2_HEADER 16
#define V2_TLV_HEADER 3

static enum proxy_result parse_v2(const char *bytes, size_t len, struct proxy_header *out)
{
    const unsigned char *b = (const unsigned char *)bytes;
    if (!agrees(bytes, len, v2_signature, sizeof v2_signature))
        return PROXY_MALFORMED;
    if (len > 12 && (b[12] >> 4) != 2)
        return PROXY_MALFORMED; /* version 2 only */
    if (len > 12 && (b[12] & 0xf) > PROXY_CMD_PROXY)
        return PROXY_MALFORMED;
    bool local = len > 12 && (b[12] & 0xf) == PROXY_CMD_LOCAL;
    /* LOCAL's family is discarded, whatever it says; PROXY's must be
     * UNSPEC or a stream one. Then the length it takes at least. */
    size_t need = 0;
    int family = AF_UNSPEC;
    if (len > 13 && !local) {
        switch (b[13]) {
        case 0x00:
            break;
        case 0x11:
            family = AF_INET, need = 12;
            break;
        case 0x21:
            family = AF_INET6, need = 36;
            break;
        case 0x31:
            family = AF_UNIX, need = 216;
            break;
        default: /* DGRAM, or no such family */
            return PROXY_MALFORMED;
        }
    }
    if (len < V2_HEADER)
        return PROXY_NEED_MORE;
    size_t body = (size_t)b[14] << 8 | b[15];
    if (body > PROXY_V2_MAX_LEN || body < need)
        return PROXY_MALFORMED;
    if (len < V2_HEADER + body)
        return PROXY_NEED_MORE;
    /* The TLVs after the addresses must be whole: type, 2-byte length,
     * value. Their contents are not used (nor is a CRC32C one checked).
     * LOCAL's whole block is discarded unread. */
    for (size_t at = need; !local && at < body;) {
        if (body - at < V2_TLV_HEADER)
            return PROXY_MALFORMED;
        size_t tlv = (size_t)b[V2_HEADER + at + 1] << 8 | b[V2_HEADER + at + 2];
        if (tlv > body - at - V2_TLV_HEADER)
            return PROXY_MALFORMED;
        at += V2_TLV_HEADER + tlv;
    }
    struct proxy_header h;
    memset(&h, 0, sizeof h);
    h.version = 2;
    h.len = V2_HEADER + body;
    h.command = local ? PROXY_CMD_LOCAL : PROXY_CMD_PROXY;
    h.family = family;
    const unsigned char *a = b + V2_HEADER;
    if (family == AF_INET) {
        h.src.in.sin_family = h.dst.in.sin_family = AF_INET;
        memcpy(&h.src.in.sin_addr, a, 4);
        memcpy(&h.dst.in.sin_addr, a + 4, 4);
        memcpy(&h.src.in.sin_port, a + 8, 2);
        memcpy(&h.dst.in.sin_port, a + 10, 2);
    } else if (family == AF_INET6) {
        h.src.in6.sin6_family = h.dst.in6.sin6_family = AF_INET6;
        memcpy(&h.src.in6.sin6_addr, a, 16);
        memcpy(&h.dst.in6.sin6_addr, a + 16, 16);
        memcpy(&h.src.in6.sin6_port, a + 32, 2);
        memcpy(&h.dst.in6.sin6_port, a + 34, 2);
    } else if (family == AF_UNIX) {
        h.src.sa.sa_family = h.dst.sa.sa_family = AF_UNIX;
    }
    *out = h;
    return PROXY_DONE;
}

enum proxy_result ritual__proxy_parse(const char *bytes, size_t len, struct proxy_header *out)
{
    if (len == 0)
        return PROXY_NEED_MORE;
    if (bytes[0] == 'P')
        return parse_v1(bytes, len, out);
    if (bytes[0] == '\r')
        return parse_v2(bytes, len, out);
    return PROXY_MALFORMED;
}
