/* event_echo.c - echo server on libevent 2.1, for comparison with ritual, in the
 * documented style: an evconnlistener, one bufferevent per connection, and a read
 * callback that moves the input buffer onto the output with evbuffer_add_buffer
 * (no copy: the chains change hands). Past HIGH_WATER bytes of unsent output a
 * connection stops being read from until its output drains; at EOF it closes
 * once what it owes is sent. evsignal turns SIGTERM/SIGINT into a clean exit.
 *
 * Usage: event_echo --listen HOST:PORT [--reuseport]   (HOST an IPv4 literal; PORT
 * 0: any; --reuseport: SO_REUSEPORT, so that several processes can share the port) */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../listen_arg.h"

#define UNUSED __attribute__((unused))

enum { READ_SIZE = 65536, HIGH_WATER = 4 * READ_SIZE };

static struct event_base *base; /* static: what is left at exit stays reachable */

static void on_event(struct bufferevent *bev, short what, void *arg);

/* Write callbacks run when the output has drained (low watermark 0); one is set
 * only while there is something to do then. */
static void on_drained_resume(struct bufferevent *bev, void *arg UNUSED);
static void on_drained_free(struct bufferevent *bev, void *arg UNUSED)
{
    bufferevent_free(bev);
}

static void on_read(struct bufferevent *bev, void *arg UNUSED)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    if (evbuffer_add_buffer(out, bufferevent_get_input(bev)) < 0) {
        bufferevent_free(bev);
        return;
    }
    if (evbuffer_get_length(out) >= HIGH_WATER) { /* the peer is not reading: wait */
        if (bufferevent_disable(bev, EV_READ) < 0)
            bufferevent_free(bev);
        else
            bufferevent_setcb(bev, on_read, on_drained_resume, on_event, NULL);
    }
}

static void on_drained_resume(struct bufferevent *bev, void *arg UNUSED)
{
    bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
    if (bufferevent_enable(bev, EV_READ) < 0)
        bufferevent_free(bev);
}

static void on_event(struct bufferevent *bev, short what, void *arg UNUSED)
{
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
        evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        if (bufferevent_disable(bev, EV_READ) == 0) { /* EOF: send what is owed, then close */
            bufferevent_setcb(bev, NULL, on_drained_free, on_event, NULL);
            return;
        }
    }
    bufferevent_free(bev); /* EOF, or an error such as ECONNRESET or EPIPE */
}

static void on_accept(struct evconnlistener *listener UNUSED, evutil_socket_t fd,
                      struct sockaddr *sa UNUSED, int salen UNUSED, void *arg UNUSED)
{
    struct bufferevent *bev = NULL;
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
        !(bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE))) {
        if (evutil_closesocket(fd) < 0)
            perror("event_echo: close");
        return;
    }
    bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
    /* libevent reads and writes at most 16K at a time by default; the others 64K. */
    if (bufferevent_set_max_single_read(bev, READ_SIZE) < 0 ||
        bufferevent_set_max_single_write(bev, READ_SIZE) < 0 ||
        bufferevent_enable(bev, EV_READ | EV_WRITE) < 0)
        bufferevent_free(bev);
}

static void on_signal(evutil_socket_t sig UNUSED, short what UNUSED, void *arg UNUSED)
{
    event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    char addr[INET_ADDRSTRLEN];
    int reuseport;
    if (parse_listen_opt(argc, argv, &sa, &reuseport) < 0) {
        fprintf(stderr, "usage: %s --listen HOST:PORT [--reuseport]\n", argv[0]);
        return 2;
    }
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) { /* a write to a closed peer gets EPIPE */
        perror("event_echo: signal");
        return 1;
    }
    if (!(base = event_base_new())) {
        fprintf(stderr, "event_echo: event_base_new failed\n");
        return 1;
    }
    /* REUSEABLE is SO_REUSEADDR, REUSEABLE_PORT SO_REUSEPORT; libevent makes the
     * listener and accepted sockets non-blocking. */
    unsigned flags = LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
                     (reuseport ? LEV_OPT_REUSEABLE_PORT : 0);
    struct evconnlistener *listener = evconnlistener_new_bind(
        base, on_accept, NULL, flags, SOMAXCONN, (struct sockaddr *)&sa, sizeof sa);
    if (!listener) {
        fprintf(stderr, "event_echo: %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    struct event *term = evsignal_new(base, SIGTERM, on_signal, NULL);
    struct event *intr = evsignal_new(base, SIGINT, on_signal, NULL);
    if (!term || !intr || event_add(term, NULL) < 0 || event_add(intr, NULL) < 0) {
        fprintf(stderr, "event_echo: evsignal failed\n");
        return 1;
    }
    if (getsockname(evconnlistener_get_fd(listener), (struct sockaddr *)&sa, &salen) < 0 ||
        !inet_ntop(AF_INET, &sa.sin_addr, addr, sizeof addr) ||
        printf("listening on %s:%d\n", addr, ntohs(sa.sin_port)) < 0 || fflush(stdout) == EOF) {
        perror("event_echo: getsockname/stdout");
        return 1;
    }
    if (event_base_dispatch(base) < 0) { /* until on_signal breaks it */
        fprintf(stderr, "event_echo: event_base_dispatch failed\n");
        return 1;
    }
    return 0; /* live bufferevents would outlive event_base_free: leave it all to exit */
}
