/* proxy.c - the PROXY protocol under a listener's connections: the trusted
 * sources (parsed once, when listening), the check at accept, and the
 * header read before anything else (TLS, on_open): a pending connection's
 * bytes come here from either kind of backend until the header is whole;
 * then what followed it in the same segment goes on as if just received.
 * A listener without proxy_from never reaches this file. */
#include "proxy.h"
#include "address.h"
#include "conn_parts.h"
#include "listener.h"
#include "proxy_header.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#define DEFAULT_PROXY_TIMEOUT_MS 5000

/* The marker of a connection awaiting its header: never read or written. */
const struct ritual_proxy_peer ritual__proxy_awaiting;

/* ---------------------------------------------------------- trust list */

/* One source, "ADDR" or "ADDR/BITS" (an IPv6 one may be in brackets), its
 * host bits cleared. */
static bool parse_source(const char *s, size_t n, struct ritual_proxy_source *out)
{
    char text[64];
    while (n > 0 && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof text)
        return false;
    memcpy(text, s, n);
    text[n] = '\0';
    char *slash = strchr(text, '/');
    if (slash)
        *slash = '\0';
    char *host = text;
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        host++;
    }
    memset(out, 0, sizeof *out);
    unsigned max;
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET, max = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6, max = 128;
    } else {
        return false;
    }
    unsigned bits = max;
    if (slash) {
        const char *b = slash + 1;
        size_t bl = strlen(b);
        if (bl == 0 || bl > 3 || (bl > 1 && b[0] == '0'))
            return false;
        bits = 0;
        for (size_t i = 0; i < bl; i++) {
            if (b[i] < '0' || b[i] > '9')
                return false;
            bits = bits * 10 + (unsigned)(b[i] - '0');
        }
        if (bits > max)
            return false;
    }
    out->bits = (uint8_t)bits;
    for (unsigned i = bits; i < max; i++)
        out->addr[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    return true;
}

/* As ritual__proxy_trust_parse, its error message led by `what`. */
static int trust_parse(const char *list, uint64_t timeout_ms, struct ritual_proxy_trust **out,
                       const char *what, ritual_error *err)
{
    *out = NULL;
    if (!list)
        return 0;
    size_t count = 0;
    for (const char *p = list; *p; p++)
        count += *p == ',';
    count += *list != '\0';
    struct ritual_proxy_trust *t = calloc(1, sizeof *t + count * sizeof t->sources[0]);
    if (!t)
        return ritual_error_set(err, -ENOMEM, "proxy_from: out of memory");
    for (const char *p = list; *list && t->count < count;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (!parse_source(p, n, &t->sources[t->count])) {
            free(t);
            if (err) { /* the message says it all: no strerror after it */
                err->code = -EINVAL;
                snprintf(err->message, sizeof err->message, "%s'%.*s': not an address or CIDR",
                         what, (int)(n > 200 ? 200 : n), p);
            }
            return -EINVAL;
        }
        t->count++;
        p += n + 1;
    }
    if (timeout_ms == 0)
        timeout_ms = DEFAULT_PROXY_TIMEOUT_MS;
    t->timeout_ms =
        (uint32_t)(timeout_ms > RITUAL_TIMEOUT_MAX_MS ? RITUAL_TIMEOUT_MAX_MS : timeout_ms);
    *out = t;
    return 0;
}

int ritual__proxy_trust_parse(const char *list, uint64_t timeout_ms,
                              struct ritual_proxy_trust **out, ritual_error *err)
{
    return trust_parse(list, timeout_ms, out, "proxy_from ", err);
}

int ritual__proxy_trust_check(const ritual_listen_options *options, ritual_error *err)
{
    struct ritual_proxy_trust *t;
    int rc = ritual__proxy_trust_parse(options->proxy_from, 0, &t, err);
    free(t);
    return rc;
}

int ritual_proxy_from_check(const char *list, ritual_error *err)
{
    if (!list || list[strspn(list, " \t")] == '\0') {
        /* Most likely an unset variable in a unit file: a server that
         * would refuse every TCP client is not what anyone meant. */
        if (err) {
            err->code = -EINVAL;
            snprintf(err->message, sizeof err->message, "no address or CIDR given");
        }
        return -EINVAL;
    }
    struct ritual_proxy_trust *t;
    int rc = trust_parse(list ? list : "", 0, &t, "", err);
    free(t);
    return rc;
}

static bool prefix_matches(const uint8_t *addr, const struct ritual_proxy_source *s)
{
    unsigned whole = s->bits / 8, rest = s->bits % 8;
    if (memcmp(addr, s->addr, whole) != 0)
        return false;
    return rest == 0 || ((addr[whole] ^ s->addr[whole]) & (uint8_t)(0xff00u >> rest)) == 0;
}

/* Whether the socket's peer may send a header: a trusted source (an IPv4
 * one also as an IPv4-mapped IPv6 address), or anyone on a unix socket. */
static bool trusted(const struct ritual_proxy_trust *t, const struct sockaddr_storage *peer)
{
    const uint8_t *v4 = NULL, *v6 = NULL;
    if (peer->ss_family == AF_UNIX)
        return true;
    if (peer->ss_family == AF_INET) {
        v4 = (const uint8_t *)&((const struct sockaddr_in *)peer)->sin_addr;
    } else if (peer->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)peer)->sin6_addr;
        v6 = a->s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            v4 = a->s6_addr + 12;
    }
    for (size_t i = 0; i < t->count; i++) {
        const struct ritual_proxy_source *s = &t->sources[i];
        const uint8_t *addr = s->family == AF_INET ? v4 : v6;
        if (addr && prefix_matches(addr, s))
            return true;
    }
    return false;
}

/* ------------------------------------------------------------ accepting */

void ritual__proxy_begin(ritual_conn *conn)
{
    const ritual_listener *l = conn->profile->listener;
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    conn->proxy = &ritual__proxy_awaiting; /* from now until on_open: no on_close */
    if (l->addr.ss_family != AF_UNIX) {
        if (getpeername(conn->io.fd, (struct sockaddr *)&peer, &len) < 0) {
            ritual__conn_terminate(conn, -errno); /* reset while queued */
            return;
        }
        if (!trusted(l->proxy, &peer)) {
            ritual_loop *loop = conn_loop(conn);
            /* At debug level, as a malformed header is: anyone who can
             * reach the port could otherwise fill the log. */
            if (ritual__log_enabled(loop, RITUAL_LOG_DEBUG)) {
                char where[INET6_ADDRSTRLEN + 8] = "?";
                ritual__address_format((const struct sockaddr *)&peer, where, sizeof where);
                ritual_log(loop, RITUAL_LOG_DEBUG, "PROXY: connection from %s not trusted: closed",
                           where);
            }
            ritual__conn_terminate(conn, -EPROTO);
            return;
        }
    }
    /* The header's deadline stands in for the idle timeout, which starts
     * with on_open (or TLS's handshake timeout, with the handshake). It
     * counts from the accept (last_active is not moved while the header
     * comes in). */
    conn->idle_ms = l->proxy->timeout_ms;
    ritual__conn_schedule(conn, conn_loop(conn)->now + ritual__ms_to_ns(conn->idle_ms));
}

/* ------------------------------------------------------------- the header */

static struct ritual_proxy_peer *peer_get(ritual_loop *loop)
{
    struct ritual_proxy_peer *p = loop->proxy_free;
    if (p) {
        loop->proxy_free = p->addr.next;
        return p;
    }
    return malloc(sizeof *p);
}

static void peer_put(ritual_loop *loop, struct ritual_proxy_peer *p)
{
    p->addr.next = loop->proxy_free;
    loop->proxy_free = p;
}

void ritual__proxy_release(ritual_conn *conn)
{
    struct ritual_proxy_peer *p = (struct ritual_proxy_peer *)conn->proxy;
    conn->proxy = NULL;
    if (p && p != &ritual__proxy_awaiting)
        peer_put(conn_loop(conn), p);
}

void ritual__proxy_pool_free(ritual_loop *loop)
{
    while (loop->proxy_free) {
        struct ritual_proxy_peer *next = loop->proxy_free->addr.next;
        free(loop->proxy_free);
        loop->proxy_free = next;
    }
}

/* A header failed: the connection closes, never opened. */
static void refuse(ritual_conn *conn, int reason, const char *why)
{
    ritual_loop *loop = conn_loop(conn);
    if (ritual__log_enabled(loop, RITUAL_LOG_DEBUG)) {
        char where[INET6_ADDRSTRLEN + 8] = "?";
        ritual_conn_socket_peer(conn, where, sizeof where);
        ritual_log(loop, RITUAL_LOG_DEBUG, "PROXY: connection from %s: %s: closed", where, why);
    }
    ritual__conn_close_with(conn, reason);
}

/* The header is whole: the client's address is kept, and the connection
 * begins, as it would have at accept without PROXY, with `rest` (what
 * followed the header) as its first bytes. */
static void header_done(ritual_conn *conn, const struct proxy_header *h, const char *rest,
                        size_t len)
{
    const struct ritual_conn_profile *profile = conn->profile;
    /* LOCAL, UNKNOWN, UNSPEC: no address, the socket's stands (NULL). */
    struct ritual_proxy_peer *p = NULL;
    if (h->command == PROXY_CMD_PROXY && h->family != AF_UNSPEC) {
        p = peer_get(conn_loop(conn));
        if (!p) {
            ritual__conn_terminate(conn, -ENOMEM); /* still unopened: no on_close */
            return;
        }
        memset(p, 0, sizeof *p);
        if (h->family == AF_INET)
            p->addr.in = h->src.in;
        else if (h->family == AF_INET6)
            p->addr.in6 = h->src.in6;
        else
            p->addr.sa.sa_family = AF_UNIX; /* unnamed, as our own unix peers */
    }
    conn->idle_ms = (uint32_t)profile->opts.idle_timeout_ms;
    stamp_activity(conn);
    if (profile->tls) {
        int rc = ritual__tls_attach(conn, profile->tls, true, NULL, profile->tls_plaintext);
        if (rc < 0) {
            if (p)
                peer_put(conn_loop(conn), p);
            ritual__conn_terminate(conn, rc); /* still unopened: no on_close */
            return;
        }
        conn->proxy = p; /* TLS's own state keeps on_close back until on_open */
        ritual_conn_set_idle_timeout(conn, conn->idle_ms); /* the handshake's, from now */
        if (len > 0)
            ritual__tls_received(conn, rest, len);
        return;
    }
    conn->proxy = p;
    ritual_conn_set_idle_timeout(conn, conn->idle_ms);
    ritual__conn_opened(conn);
    if (len > 0 && !(conn->flags & (CONN_CLOSED | CONN_CLOSING | CONN_LINGERING)))
        ritual__conn_plain_input(conn, rest, len);
}

void ritual__proxy_received(ritual_conn *conn, const char *bytes, int len)
{
    if (len == 0) { /* the peer left before its header was whole */
        if (in_len(conn) == 0)
            ritual__conn_terminate(conn, 0); /* a bare connect: a health check */
        else
            refuse(conn, -EPROTO, "connection ended inside the header");
        return;
    }
    /* No stamp_activity: the header's deadline counts from the accept, so
     * that a byte now and then cannot keep a connection waiting. */
    ritual__stat_add(&conn_loop(conn)->stat_read, (uint64_t)len);
    size_t n = (size_t)len, held = in_len(conn);
    struct proxy_header h;
    enum proxy_result r;
    if (held == 0) {
        r = ritual__proxy_parse(bytes, n, &h);
    } else {
        /* The header began in an earlier segment: parse it whole from the
         * connection's buffer. The parser never waits beyond
         * PROXY_HEADER_MAX bytes, so taking no more than that is enough. */
        size_t take = n < PROXY_HEADER_MAX ? n : PROXY_HEADER_MAX;
        if (ritual__inbuf_append(conn_loop(conn), &conn->in, bytes, take, PROXY_HEADER_MAX) < 0) {
            ritual__conn_terminate(conn, -ENOMEM);
            return;
        }
        r = ritual__proxy_parse(conn->in->data + conn->in->start, conn->in->len, &h);
        conn->in->len = (uint32_t)held; /* only the new bytes' tail is kept, below */
    }
    if (r == PROXY_MALFORMED) {
        refuse(conn, -EPROTO, "malformed header");
        return;
    }
    if (r == PROXY_NEED_MORE) {
        /* Less than a header so far, so less than PROXY_HEADER_MAX bytes. */
        if (ritual__inbuf_append(conn_loop(conn), &conn->in, bytes, n, PROXY_HEADER_MAX) < 0)
            ritual__conn_terminate(conn, -ENOMEM);
        return;
    }
    /* The header is longer than what was held (else the held bytes alone
     * would have completed it): what follows it lies in `bytes`. */
    size_t used = h.len - held;
    ritual__conn_release_input(conn);
    header_done(conn, &h, bytes + used, n - used);
}

void ritual__proxy_read(ritual_conn *conn)
{
    ritual_loop *loop = conn_loop(conn);
    size_t room = opts(conn)->read_buffer_size;
    if (room > loop->rbuf_size)
        room = loop->rbuf_size;
    for (int round = 0; round < READS_PER_WAKEUP; round++) {
        ssize_t n = recv(conn->io.fd, loop->rbuf, room, 0);
        if (n >= 0) {
            ritual__proxy_received(conn, loop->rbuf, (int)n);
            return; /* the rest, if any, on the next readiness */
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            ritual__conn_terminate(conn, -errno);
        return;
    }
}
