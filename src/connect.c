/* connect.c - outbound connections: a non-blocking connect whose handshake
 * completes in the loop (EINPROGRESS, then writable, then SO_ERROR). From
 * then on an outbound connection is like an accepted one. */
#include "address.h"
#include "conn.h"
#include "loop.h"
#include "tls/tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 10000

/* What a unix connect says at once about the other end, as a TCP connect
 * would from the loop: nobody listens, no such socket, its queue is full,
 * or its file's mode shuts us out. */
static bool peer_refused(int e)
{
    return e == ECONNREFUSED || e == ENOENT || e == EAGAIN || e == EACCES;
}

ritual_conn *ritual_connect(ritual_loop *loop, const char *address,
                            const ritual_connect_options *options,
                            const ritual_conn_callbacks *callbacks, ritual_error *err)
{
    ritual_connect_options defaults;
    memset(&defaults, 0, sizeof defaults);
    if (!options)
        options = &defaults;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    bool any_host;
    if (ritual__endpoint_prepare(loop, "connect", address, callbacks, &addr, &addr_len, &any_host,
                                 err) < 0)
        return NULL;
    if (any_host) {
        ritual_error_set(err, -EINVAL, "connect %s: name a host to connect to", address);
        return NULL;
    }

    struct ritual_conn_profile *profile = calloc(1, sizeof *profile);
    if (!profile) {
        ritual_error_set(err, -ENOMEM, "connect %s", address);
        return NULL;
    }
    profile->cbs = *callbacks;
    profile->loop = loop;
    profile->local = addr.ss_family == AF_UNIX;
    profile->opts = options->conn;
    ritual__conn_options_defaults(&profile->opts);
    profile->connect_timeout_ms =
        options->timeout_ms ? options->timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    if (profile->connect_timeout_ms > RITUAL_TIMEOUT_MAX_MS)
        profile->connect_timeout_ms = RITUAL_TIMEOUT_MAX_MS;
    int rc = ritual__loop_reserve_rbuf(loop, profile->opts.read_buffer_size);
    if (rc < 0) {
        free(profile);
        ritual_error_set(err, rc, "connect %s", address);
        return NULL;
    }

    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        free(profile);
        ritual_error_set(err, -errno, "socket %s", address);
        return NULL;
    }
    /* Even a connect that succeeds at once is reported from the loop, so
     * on_open never runs before ritual_connect has returned. */
    int e = connect(fd, (struct sockaddr *)&addr, addr_len) < 0 ? errno : 0;
    /* A unix connect fails at once where a TCP one fails from the loop:
     * say it from the loop all the same, through on_close. */
    if (profile->local && peer_refused(e))
        profile->connect_error = e;
    else if (e != 0 && e != EINPROGRESS && e != EINTR) {
        e = -e;
        close(fd);
        free(profile);
        ritual_error_set(err, e, "connect %s", address);
        return NULL;
    }
    ritual_conn *conn;
    rc = ritual__conn_open(loop, profile, fd, true, &conn);
    if (rc < 0) {
        free(profile);
        ritual_error_set(err, rc, "connect %s", address);
        return NULL;
    }
    conn->data = options->data;
    if (options->tls) {
        /* Without a name, the certificate must hold the address itself. */
        char ip[INET6_ADDRSTRLEN] = "";
        const char *name = options->server_name;
        if (!name && addr.ss_family != AF_UNIX) {
            const void *a = addr.ss_family == AF_INET6
                                ? (const void *)&((struct sockaddr_in6 *)&addr)->sin6_addr
                                : (const void *)&((struct sockaddr_in *)&addr)->sin_addr;
            name = inet_ntop(addr.ss_family, a, ip, sizeof ip) ? ip : NULL;
        }
        rc = ritual__tls_attach(conn, options->tls, false, name, false);
        if (rc < 0) {
            /* No callback has run: the connection goes quietly. */
            profile->cbs.on_close = NULL;
            ritual__conn_terminate(conn, rc);
            ritual_error_set(err, rc, "connect %s: tls", address);
            return NULL;
        }
    }
    return conn;
}
