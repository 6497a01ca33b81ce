/* proxy.h - the PROXY protocol on a listener (ritual_listen_options
 * .proxy_from): which sources are trusted to send a header, and a
 * connection's life before on_open while its header comes in. The header
 * itself is parsed by proxy_header.c. Private to the library. */
#ifndef RITUAL_PROXY_H
#define RITUAL_PROXY_H

#include "conn.h"
#include "ritual.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A listener's trusted sources and header timeout. */
struct ritual_proxy_source {
    uint8_t family; /* AF_INET or AF_INET6 */
    uint8_t bits;   /* prefix length */
    uint8_t addr[16];
};

struct ritual_proxy_trust {
    uint32_t timeout_ms;
    size_t count;
    struct ritual_proxy_source sources[];
};

/* What a proxied connection keeps: the client's address as its header gave
 * it, from the loop's pool. Only connections whose header carried an
 * address have one; the others' conn->proxy is NULL, or, while the header
 * is awaited, &ritual__proxy_awaiting. */
struct ritual_proxy_peer {
    union {
        struct ritual_proxy_peer *next; /* in the loop's pool */
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } addr;
};

extern const struct ritual_proxy_peer ritual__proxy_awaiting;

static inline bool ritual__proxy_pending(const ritual_conn *conn)
{
    return conn->proxy == &ritual__proxy_awaiting;
}

/* Parses `list` ("10.0.0.0/8,192.168.1.7,::1/128"; "" trusts no TCP
 * source). *out is NULL for a NULL list. Returns 0, or -EINVAL
 * ("proxy_from 'x': not an address or CIDR") or -ENOMEM with `err` filled. */
int ritual__proxy_trust_parse(const char *list, uint64_t timeout_ms,
                              struct ritual_proxy_trust **out, ritual_error *err);

/* Checks options->proxy_from as ritual__proxy_trust_parse does, before a
 * listening socket is made. Returns 0 or -EINVAL with `err` filled. */
int ritual__proxy_trust_check(const ritual_listen_options *options, ritual_error *err);

/* An accepted connection on a listener with a trust list: closed at once if
 * its source is not trusted, else left waiting for its header (no on_open
 * yet, the header timeout running). */
void ritual__proxy_begin(ritual_conn *conn);
/* Bytes received (`len` > 0), the peer's FIN (0) while the header is
 * awaited. What follows the header goes on to TLS or on_data. */
void ritual__proxy_received(ritual_conn *conn, const char *bytes, int len);
/* A readiness backend's read while the header is awaited. */
void ritual__proxy_read(ritual_conn *conn);
/* The connection is finished with: its address goes back to the pool. */
void ritual__proxy_release(ritual_conn *conn);
/* The loop's pool, when the loop is freed. */
void ritual__proxy_pool_free(ritual_loop *loop);

#endif
