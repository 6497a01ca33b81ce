/* pingpong.c - an independent echo load generator, to cross-check `ritual bench`
 * (so that a bug in it cannot flatter ritual). Plain epoll, nothing from libritual.
 * Closed loop: each connection keeps one message in flight; every echoed byte is
 * checked against what was sent (a pattern of the connection and message number,
 * so a stale or repeated message is caught too). The measured window opens once
 * every connection is up and lasts --duration seconds.
 *
 * Usage: pingpong --connect IPV4:PORT [--connections N] [--size BYTES] [--duration S]
 * Prints {"messages":..,"duration_s":..,"messages_per_s":..,"errors":..,...};
 * exits 1 if any error (connect, reset, EOF, wrong byte), 2 on a usage error. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    unsigned events;      /* what epoll watches for it now */
    unsigned long long m; /* number of the message in flight */
    size_t woff, roff;    /* sent and echoed bytes of it */
    unsigned char *msg;   /* the message in flight */
};

static struct conn *conns;
static size_t nconns = 100, size = 64, nsettled;
static int ep;
static unsigned long long messages, errors;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void watch(struct conn *c, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (c->events != events && epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = events;
}

static void fail(struct conn *c)
{
    errors++;
    close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
}

/* Send what is left of the message; wait for EPOLLOUT only if the socket is full. */
static void send_rest(struct conn *c)
{
    while (c->woff < size) {
        ssize_t n = send(c->fd, c->msg + c->woff, size - c->woff, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            watch(c, EPOLLIN | EPOLLOUT);
            return;
        }
        if (n <= 0) {
            fail(c);
            return;
        }
        c->woff += (size_t)n;
    }
    watch(c, EPOLLIN);
}

static void next_message(struct conn *c)
{
    size_t id = (size_t)(c - conns);
    for (size_t i = 0; i < size; i++)
        c->msg[i] = (unsigned char)(id * 7 + c->m * 13 + i + (i >> 8));
    c->woff = c->roff = 0;
    send_rest(c);
}

static void on_readable(struct conn *c)
{
    unsigned char buf[65536];
    size_t want = size - c->roff < sizeof buf ? size - c->roff : sizeof buf;
    ssize_t n = recv(c->fd, buf, want, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 || memcmp(buf, c->msg + c->roff, (size_t)n) != 0) {
        fail(c); /* reset, EOF, or a wrong byte: all errors */
        return;
    }
    c->roff += (size_t)n;
    if (c->roff < size || c->woff < size)
        return;
    messages++; /* only the measured window reads, so every echo counts */
    c->m++;
    next_message(c);
}

static int usage(const char *why)
{
    fprintf(stderr,
            "pingpong: %s\nusage: pingpong --connect IPV4:PORT [--connections N] "
            "[--size BYTES] [--duration SECONDS]\n",
            why);
    return 2;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    double duration = 10;
    const char *target = NULL;
    for (int i = 1; i < argc; i += 2) {
        char *end = NULL, *val = argv[i + 1];
        if (i + 1 == argc)
            return usage("an option without its value");
        if (!strcmp(argv[i], "--connect")) {
            target = val;
            char host[INET_ADDRSTRLEN], *colon = strrchr(val, ':');
            if (!colon || (size_t)(colon - val) >= sizeof host)
                return usage("--connect wants IPV4:PORT");
            memcpy(host, val, (size_t)(colon - val));
            host[colon - val] = '\0';
            long port = strtol(colon + 1, &end, 10);
            if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || *end || port < 1 || port > 65535)
                return usage("--connect wants IPV4:PORT");
            sa.sin_port = htons((unsigned short)port);
        } else if (!strcmp(argv[i], "--connections")) {
            nconns = strtoul(val, &end, 10);
        } else if (!strcmp(argv[i], "--size")) {
            size = strtoul(val, &end, 10);
        } else if (!strcmp(argv[i], "--duration")) {
            duration = strtod(val, &end);
        } else {
            return usage("unknown option or missing value");
        }
        if (end && (*end || end == val))
            return usage("not a number");
    }
    if (!target || nconns < 1 || nconns > 1000000 || size < 1 || size > 1 << 24 || !(duration > 0))
        return usage("--connect is required; counts and duration must be positive");

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < nconns + 16) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc(nconns, sizeof *conns);
    if (ep < 0 || !conns)
        return perror("pingpong: setup"), 1;
    for (size_t i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        int one = 1;
        c->msg = calloc(1, size);
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        c->events = EPOLLOUT;
        struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
        if (!c->msg || c->fd < 0)
            return perror("pingpong: socket"), 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if ((connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) ||
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
            fail(c);
            nsettled++;
        }
    }

    /* Connect phase (at most 10 s), then the measured window. */
    struct epoll_event evs[512];
    double start = 0, deadline = now_s() + 10, t;
    int counting = 0;
    while ((t = now_s()) < deadline) {
        if (!counting && nsettled == nconns) {
            counting = 1;
            start = t;
            deadline = t + duration;
            for (size_t i = 0; i < nconns; i++)
                if (conns[i].fd >= 0)
                    next_message(&conns[i]);
            continue;
        }
        int n = epoll_wait(ep, evs, 512, (int)((deadline - t) * 1000) + 1);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue;
            if (c->events == EPOLLOUT) { /* connecting */
                int err = 0;
                socklen_t len = sizeof err;
                nsettled++;
                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err)
                    fail(c);
                else
                    watch(c, EPOLLIN);
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(c);
            if (c->fd >= 0 && (evs[i].events & EPOLLOUT))
                send_rest(c);
        }
    }
    double elapsed = counting ? now_s() - start : 0;
    if (!counting)
        errors += nconns - nsettled; /* connections still not up after 10 s */
    for (size_t i = 0; i < nconns; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    printf("{\"generator\":\"pingpong\",\"target\":\"%s\",\"connections\":%zu,\"size\":%zu,"
           "\"messages\":%llu,\"duration_s\":%.3f,\"messages_per_s\":%.1f,\"errors\":%llu}\n",
           target, nconns, size, messages, elapsed, elapsed > 0 ? (double)messages / elapsed : 0.0,
           errors);
    return errors ? 1 : 0;
}
