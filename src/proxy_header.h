/* proxy_header.h - HAProxy's PROXY protocol header (v1 text, v2 binary),
 * parsed from the bytes received so far: a pure function, no I/O, no
 * allocation. Private to the library (the fuzz driver links it too). */
#ifndef RITUAL_PROXY_HEADER_H
#define RITUAL_PROXY_HEADER_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

/* The longest v1 line, "PROXY TCP6 <39> <39> 65535 65535\r\n", as the spec
 * says. */
#define PROXY_V1_MAX 107
/* v2: 16 bytes of header, then `len` bytes of addresses and TLVs. The spec
 * allows len up to 65535; we buffer a header before the connection opens,
 * so we take the largest addresses (UNIX: 216) and 1 KiB of TLVs (haproxy's
 * own, AWS's and Azure's fit with room) and refuse more. */
#define PROXY_V2_MAX_LEN (216 + 1024)
#define PROXY_HEADER_MAX (16 + PROXY_V2_MAX_LEN)

enum proxy_result {
    PROXY_NEED_MORE = 0, /* a valid header may still follow: read more */
    PROXY_MALFORMED = -1,
    PROXY_DONE = 1,
};

enum proxy_command {
    PROXY_CMD_LOCAL = 0, /* v2 LOCAL: the proxy's own connection (health checks) */
    PROXY_CMD_PROXY = 1,
};

struct proxy_header {
    size_t len;  /* bytes the header took; what follows is the client's */
    int command; /* enum proxy_command */
    int family;  /* AF_INET, AF_INET6, AF_UNIX, or AF_UNSPEC (v1 UNKNOWN,
                    v2 UNSPEC and LOCAL): then no address is given */
    int version; /* 1 or 2 */
    /* Source and destination, for AF_INET and AF_INET6 (port included);
     * for AF_UNIX only the family is set (the paths are not kept). */
    union proxy_addr {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } src, dst;
};

/* Parses the start of `bytes` (`len` of them, all received so far). Returns
 * PROXY_DONE with `out` filled, PROXY_NEED_MORE while the bytes are a
 * proper prefix of some valid header (never beyond PROXY_HEADER_MAX bytes),
 * or PROXY_MALFORMED as soon as they cannot begin one. `out` is written
 * only on PROXY_DONE. */
enum proxy_result ritual__proxy_parse(const char *bytes, size_t len, struct proxy_header *out);

#endif
