/* address.c - addresses in and out: "HOST:PORT", "unix:/path" and
 * "unix:@name". No DNS: a listener address is an IP literal, `localhost` or
 * "all addresses", so a typo fails at once instead of resolving to something
 * surprising. */
#include "address.h"
#include "inherit.h"
#include "loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

static int invalid(ritual_error *err, const char *text, const char *why)
{
    if (err) {
        err->code = -EINVAL;
        snprintf(err->message, sizeof err->message, "invalid address '%s': %s", text, why);
    }
    return -EINVAL;
}

/* Digits only, 0..65535. */
static int parse_port(const char *s, uint16_t *port)
{
    if (*s == '\0')
        return -1;
    unsigned long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535)
            return -1;
    }
    *port = (uint16_t)v;
    return 0;
}

enum ritual__address_form ritual__address_form_of(const char *text)
{
    if (text && strncmp(text, "unix:", 5) == 0)
        return RITUAL_ADDRESS_UNIX;
    return RITUAL_ADDRESS_INET;
}

/* "unix:/path" (a file) or "unix:@name" (abstract: sun_path starts with a
 * NUL and the name is not NUL-terminated; its length is in the address
 * length). */
static int parse_unix(const char *text, struct sockaddr_storage *out, socklen_t *len,
                      ritual_error *err)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)out;
    const char *name = text + 5;
    size_t n = strlen(name);
    if (name[0] == '@') {
        if (n == 1)
            return invalid(err, text, "empty abstract socket name");
        if (n - 1 > sizeof sun->sun_path - 1)
            return invalid(err, text, "abstract socket name longer than 107 bytes");
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path + 1, name + 1, n - 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        return 0;
    }
    if (n == 0)
        return invalid(err, text, "empty socket path");
    if (name[0] != '/')
        return invalid(err, text, "expected unix:/PATH (absolute) or unix:@NAME");
    if (n > sizeof sun->sun_path - 1)
        return invalid(err, text, "socket path longer than 107 bytes");
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, name, n + 1);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

int ritual__address_parse(const char *text, struct sockaddr_storage *out, socklen_t *len,
                          bool *any_host, ritual_error *err)
{
    char host[64];
    const char *port_text;
    memset(out, 0, sizeof *out);
    *any_host = false;

    if (!text)
        return invalid(err, "(null)", "expected HOST:PORT");
    if (ritual__address_form_of(text) == RITUAL_ADDRESS_UNIX)
        return parse_unix(text, out, len, err);
    /* fd:N and systemd:NAME name sockets given, not addresses: checked for
     * form here, for what they are when listening (inherit.c). */
    const char *why;
    int form = ritual__inherit_form(text, &why);
    if (form != 0)
        return form < 0 ? invalid(err, text, why) : 0;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close)
            return invalid(err, text, "missing ']' after IPv6 address");
        if (close[1] != ':')
            return invalid(err, text, "expected ':PORT' after ']'");
        size_t n = (size_t)(close - text - 1);
        if (n == 0 || n >= sizeof host)
            return invalid(err, text, "bad IPv6 address");
        memcpy(host, text + 1, n);
        host[n] = '\0';
        port_text = close + 2;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
            return invalid(err, text, "bad IPv6 address");
        sin6->sin6_family = AF_INET6;
        if (parse_port(port_text, &sin6->sin6_port) < 0)
            return invalid(err, text, "port must be a number from 0 to 65535");
        sin6->sin6_port = htons(sin6->sin6_port);
        *len = sizeof *sin6;
        return 0;
    }

    const char *colon = strrchr(text, ':');
    if (!colon)
        return invalid(err, text, "expected HOST:PORT");
    size_t n = (size_t)(colon - text);
    if (n >= sizeof host)
        return invalid(err, text, "host too long");
    memcpy(host, text, n);
    host[n] = '\0';
    port_text = colon + 1;
    uint16_t port;
    if (parse_port(port_text, &port) < 0)
        return invalid(err, text, "port must be a number from 0 to 65535");

    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        /* All addresses: [::] with IPV6_V6ONLY off also takes IPv4. The
         * listener falls back to 0.0.0.0 if the kernel has no IPv6. */
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = in6addr_any;
        sin6->sin6_port = htons(port);
        *len = sizeof *sin6;
        *any_host = true;
        return 0;
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)out;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    *len = sizeof *sin;
    if (strcmp(host, "localhost") == 0) {
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return 0;
    }
    if (strchr(host, ':'))
        return invalid(err, text, "an IPv6 address needs brackets: [ADDR]:PORT");
    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
        return invalid(err, text, "host must be an IPv4 address, [IPv6], localhost or *");
    return 0;
}

int ritual__address_format(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    int n;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
        n = snprintf(buf, len, "%s:%u", host, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
        n = snprintf(buf, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        /* The rest of the storage is zeroed: an abstract name ends at the
         * first NUL after its leading one; an unnamed socket (a client's)
         * is plain "unix:". */
        const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
        size_t max = sizeof sun->sun_path - 1;
        if (sun->sun_path[0] == '\0' && sun->sun_path[1] != '\0')
            n = snprintf(buf, len, "unix:@%.*s", (int)strnlen(sun->sun_path + 1, max),
                         sun->sun_path + 1);
        else
            n = snprintf(buf, len, "unix:%.*s", (int)strnlen(sun->sun_path, max + 1),
                         sun->sun_path);
    } else {
        return -EAFNOSUPPORT;
    }
    return (n < 0 || (size_t)n >= len) ? -ENOSPC : 0;
}

int ritual_address_parse(const char *address, struct sockaddr_storage *out, socklen_t *len,
                         ritual_error *err)
{
    struct sockaddr_storage tmp;
    socklen_t tmp_len;
    bool any_host;
    return ritual__address_parse(address, out ? out : &tmp, len ? len : &tmp_len, &any_host, err);
}

int ritual__endpoint_prepare(ritual_loop *loop, const char *verb, const char *address,
                             const ritual_conn_callbacks *callbacks, struct sockaddr_storage *addr,
                             socklen_t *len, bool *any_host, ritual_error *err)
{
    const char *shown = address ? address : "(null)";
    if (!callbacks || !callbacks->on_data)
        return ritual_error_set(err, -EINVAL, "%s %s: on_data callback is required", verb, shown);
    if (loop->freeing)
        return ritual_error_set(err, -ESHUTDOWN, "%s %s", verb, shown);
    int rc = ritual__address_parse(address, addr, len, any_host, err);
    if (rc == 0 && addr->ss_family == AF_UNSPEC)
        return invalid(err, shown, "fd:N and systemd:NAME only listen");
    return rc;
}
