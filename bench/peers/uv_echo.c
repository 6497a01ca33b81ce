/* uv_echo.c - echo server on libuv, for comparison with ritual, written the way
 * the libuv guide writes one, but with no allocation per read: alloc_cb hands out
 * one loop-wide buffer (libuv calls read_cb before the next alloc_cb, and read_cb
 * is done with it on return). uv_try_write sends at once; only a remainder is
 * copied into the connection's own buffer for a uv_write, and reading stops
 * until that write completes. uv_signal turns SIGTERM/SIGINT into a clean exit.
 * libuv 1.44 has no UV_TCP_REUSEPORT, so for --reuseport the listening socket is
 * made and bound here with SO_REUSEPORT and handed to libuv with uv_tcp_open.
 *
 * Usage: uv_echo --listen HOST:PORT [--reuseport]   (HOST an IPv4 literal; PORT
 * 0: any; --reuseport: SO_REUSEPORT, so that several processes can share the port) */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "../listen_arg.h"

#define UNUSED __attribute__((unused))

enum { BUF_SIZE = 65536 };

struct conn {
    uv_tcp_t tcp; /* first: the handle is the connection */
    uv_write_t req;
    char *pending; /* the unsent rest of a read; allocated on the first short write */
};

static void on_alloc(uv_handle_t *handle UNUSED, size_t suggested UNUSED, uv_buf_t *buf)
{
    static char shared[BUF_SIZE];
    *buf = uv_buf_init(shared, sizeof shared);
}

static void on_closed(uv_handle_t *handle)
{
    struct conn *c = (struct conn *)handle;
    free(c->pending);
    free(c);
}

static void conn_close(struct conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_closed); /* cancels a pending write */
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0 || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = (struct conn *)stream;
    if (nread <= 0) { /* 0: EAGAIN; UV_EOF, UV_ECONNRESET, ...: done with this one */
        if (nread < 0)
            conn_close(c);
        return;
    }
    uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
    int sent = uv_try_write(stream, &out, 1);
    if (sent == nread)
        return;
    if (sent < 0 && sent != UV_EAGAIN) { /* UV_EPIPE, UV_ECONNRESET */
        conn_close(c);
        return;
    }
    if (sent < 0)
        sent = 0;
    if (!c->pending && !(c->pending = malloc(BUF_SIZE))) {
        conn_close(c);
        return;
    }
    memcpy(c->pending, buf->base + sent, (size_t)nread - (size_t)sent);
    out = uv_buf_init(c->pending, (unsigned)(nread - sent));
    if (uv_read_stop(stream) < 0 || uv_write(&c->req, stream, &out, 1, on_written) < 0)
        conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) { /* EMFILE and the like: libuv retries when it can */
        fprintf(stderr, "uv_echo: accept: %s\n", uv_strerror(status));
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        fprintf(stderr, "uv_echo: out of memory\n");
        return;
    }
    if (uv_tcp_init(server->loop, &c->tcp) < 0) {
        free(c);
        return;
    }
    c->tcp.data = c->req.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || uv_tcp_nodelay(&c->tcp, 1) < 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

static void on_signal(uv_signal_t *sig, int signum UNUSED)
{
    uv_stop(sig->loop);
}

/* A socket bound to sa with SO_REUSEADDR and SO_REUSEPORT, for uv_tcp_open;
 * returns it, or a negative errno (which is libuv's error code on Linux). */
static int bind_reuseport(struct sockaddr_in *sa)
{
    const char *failed;
    int fd = listen_socket(sa, 1, 0, 1, &failed);
    return fd < 0 ? -errno : fd;
}

static void close_any(uv_handle_t *handle, void *arg UNUSED)
{
    if (!uv_is_closing(handle))
        uv_close(handle, handle->data ? on_closed : NULL); /* data is set on connections only */
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    int salen = sizeof sa, rc, reuseport;
    uv_tcp_t server;
    uv_signal_t term, intr;
    char addr[INET_ADDRSTRLEN];
    if (parse_listen_opt(argc, argv, &sa, &reuseport) < 0) {
        fprintf(stderr, "usage: %s --listen HOST:PORT [--reuseport]\n", argv[0]);
        return 2;
    }
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) { /* a write to a closed peer gets EPIPE */
        perror("uv_echo: signal");
        return 1;
    }
    uv_loop_t *loop = uv_default_loop();
    /* uv_tcp_bind sets SO_REUSEADDR; libuv sockets (uv_tcp_open's too) are
     * non-blocking. */
    if ((rc = uv_tcp_init(loop, &server)) < 0 || (rc = reuseport ? bind_reuseport(&sa) : 0) < 0 ||
        (rc = reuseport ? uv_tcp_open(&server, rc)
                        : uv_tcp_bind(&server, (const struct sockaddr *)&sa, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&server, SOMAXCONN, on_connection)) < 0 ||
        (rc = uv_tcp_getsockname(&server, (struct sockaddr *)&sa, &salen)) < 0 ||
        (rc = uv_signal_init(loop, &term)) < 0 || (rc = uv_signal_init(loop, &intr)) < 0 ||
        (rc = uv_signal_start(&term, on_signal, SIGTERM)) < 0 ||
        (rc = uv_signal_start(&intr, on_signal, SIGINT)) < 0) {
        fprintf(stderr, "uv_echo: %s: %s\n", argv[2], uv_strerror(rc));
        return 1;
    }
    server.data = term.data = intr.data = NULL;
    if (!inet_ntop(AF_INET, &sa.sin_addr, addr, sizeof addr) ||
        printf("listening on %s:%d\n", addr, ntohs(sa.sin_port)) < 0 || fflush(stdout) == EOF) {
        perror("uv_echo: stdout");
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT); /* until on_signal stops it */
    uv_walk(loop, close_any, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    if ((rc = uv_loop_close(loop)) < 0)
        fprintf(stderr, "uv_echo: uv_loop_close: %s\n", uv_strerror(rc));
    return 0;
}
