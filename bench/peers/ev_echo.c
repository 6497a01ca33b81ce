/* ev_echo.c - echo server on libev, for comparison with ritual: one ev_io watcher
 * per connection; read into one reused buffer and write straight back. On a
 * short write the rest waits in a per-connection buffer while the watcher
 * switches from EV_READ to EV_WRITE, so a connection that does not read stops
 * being read from. ev_signal turns SIGTERM/SIGINT into a clean exit.
 *
 * Usage: ev_echo --listen HOST:PORT [--reuseport]   (HOST an IPv4 literal; PORT 0:
 * any; --reuseport: SO_REUSEPORT, so that several processes can share the port) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../listen_arg.h"

#define UNUSED __attribute__((unused))

enum { BUF_SIZE = 65536 };

struct conn {
    ev_io io;        /* first: the watcher is the connection */
    char *pending;   /* allocated on the first short write, kept until close */
    size_t off, len; /* len > 0: waiting for EV_WRITE to send pending[off, off + len) */
};

static char buf[BUF_SIZE];

static void die(const char *what)
{
    fprintf(stderr, "ev_echo: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void conn_close(struct ev_loop *loop, struct conn *c)
{
    ev_io_stop(loop, &c->io);
    if (close(c->io.fd) < 0)
        fprintf(stderr, "ev_echo: close: %s\n", strerror(errno));
    free(c->pending);
    free(c);
}

static void conn_watch(struct ev_loop *loop, struct conn *c, int events)
{
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->io.fd, events);
    ev_io_start(loop, &c->io);
}

/* Send pending[off, off + len); back to reading once it is all out. */
static void conn_flush(struct ev_loop *loop, struct conn *c)
{
    ssize_t n = write(c->io.fd, c->pending + c->off, c->len);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_close(loop, c); /* EPIPE, ECONNRESET */
        return;
    }
    c->off += (size_t)n;
    if ((c->len -= (size_t)n) == 0)
        conn_watch(loop, c, EV_READ);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents UNUSED)
{
    struct conn *c = (struct conn *)w;
    if (c->len) {
        conn_flush(loop, c);
        return;
    }
    ssize_t n = read(w->fd, buf, sizeof buf);
    if (n <= 0) { /* 0: EOF; ECONNRESET and the like: done with this one too */
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            conn_close(loop, c);
        return;
    }
    ssize_t sent = write(w->fd, buf, (size_t)n);
    if (sent == n)
        return;
    if (sent < 0 && errno != EAGAIN && errno != EINTR) {
        conn_close(loop, c);
        return;
    }
    if (!c->pending && !(c->pending = malloc(BUF_SIZE))) {
        conn_close(loop, c);
        return;
    }
    c->off = 0;
    c->len = (size_t)(n - (sent < 0 ? 0 : sent));
    memcpy(c->pending, buf + (n - (ssize_t)c->len), c->len);
    conn_watch(loop, c, EV_WRITE); /* stop reading until the rest is out */
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents UNUSED)
{
    for (;;) {
        int fd = accept_next(w->fd), one = 1;
        if (fd == -1)
            return; /* none for now, or out of fds: retried next turn */
        if (fd < 0)
            die("accept4");
        struct conn *c = calloc(1, sizeof *c);
        if (!c || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
            free(c);
            if (close(fd) < 0)
                fprintf(stderr, "ev_echo: close: %s\n", strerror(errno));
            continue;
        }
        ev_io_init(&c->io, on_io, fd, EV_READ);
        ev_io_start(loop, &c->io);
    }
}

static void on_signal(struct ev_loop *loop, ev_signal *w UNUSED, int revents UNUSED)
{
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    char addr[INET_ADDRSTRLEN];
    int reuseport;
    if (parse_listen_opt(argc, argv, &sa, &reuseport) < 0) {
        fprintf(stderr, "usage: %s --listen HOST:PORT [--reuseport]\n", argv[0]);
        return 2;
    }
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) /* a write to a closed peer gets EPIPE */
        die("signal");
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    if (!loop) {
        fprintf(stderr, "ev_echo: ev_default_loop failed\n");
        return 1;
    }
    const char *failed;
    int lfd = listen_socket(&sa, reuseport, SOMAXCONN, 0, &failed);
    if (lfd < 0)
        die(strcmp(failed, "bind") ? failed : argv[2]);

    ev_io accept_w;
    ev_signal term_w, int_w;
    ev_io_init(&accept_w, on_accept, lfd, EV_READ);
    ev_io_start(loop, &accept_w);
    ev_signal_init(&term_w, on_signal, SIGTERM);
    ev_signal_start(loop, &term_w);
    ev_signal_init(&int_w, on_signal, SIGINT);
    ev_signal_start(loop, &int_w);
    if (!inet_ntop(AF_INET, &sa.sin_addr, addr, sizeof addr) ||
        printf("listening on %s:%d\n", addr, ntohs(sa.sin_port)) < 0 || fflush(stdout) == EOF)
        die("stdout");
    ev_run(loop, 0);
    return 0;
}
