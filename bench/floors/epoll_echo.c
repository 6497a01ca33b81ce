/* epoll_echo.c - the least an epoll server can do per message: a physical-limit
 * reference for the benchmarks, not a product. Level-triggered epoll; for each
 * ready connection one read and one write through one static buffer, so the
 * common path is exactly epoll_wait -> read -> write. A short write (rare) parks
 * the rest in a per-fd buffer and waits for EPOLLOUT instead of EPOLLIN.
 *
 * Usage: epoll_echo --listen HOST:PORT [--reuseport]   (HOST an IPv4 literal; PORT
 * 0: any; --reuseport: SO_REUSEPORT, so that several processes can share the port) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../listen_arg.h"

enum { BUF_SIZE = 65536, MAX_EVENTS = 1024 };

struct pending {
    size_t off, len; /* len > 0: waiting for EPOLLOUT to send data[off, off + len) */
    char data[BUF_SIZE];
};

static char buf[BUF_SIZE];
static struct pending **pend; /* by fd; allocated on the first short write */
static int max_fds, ep;

static void die(const char *what)
{
    fprintf(stderr, "epoll_echo: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void drop(int fd)
{
    free(pend[fd]);
    pend[fd] = NULL;
    if (close(fd) < 0) /* closing also removes fd from the epoll set */
        fprintf(stderr, "epoll_echo: close: %s\n", strerror(errno));
}

static void watch(int fd, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0)
        drop(fd);
}

static void echo(int fd)
{
    ssize_t n = read(fd, buf, sizeof buf), w;
    if (n <= 0) { /* 0: EOF; ECONNRESET and the like: done with this one too */
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        drop(fd);
        return;
    }
    if ((w = write(fd, buf, (size_t)n)) == n)
        return;
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
        drop(fd); /* EPIPE, ECONNRESET */
        return;
    }
    struct pending *p = pend[fd] ? pend[fd] : (pend[fd] = malloc(sizeof *p));
    if (!p) {
        drop(fd);
        return;
    }
    p->off = 0;
    p->len = (size_t)(n - (w < 0 ? 0 : w));
    memcpy(p->data, buf + (n - (ssize_t)p->len), p->len);
    watch(fd, EPOLLOUT); /* stop reading until the rest is out */
}

static void flush(int fd, struct pending *p)
{
    ssize_t w = write(fd, p->data + p->off, p->len);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR)
            drop(fd);
        return;
    }
    p->off += (size_t)w;
    if ((p->len -= (size_t)w) == 0)
        watch(fd, EPOLLIN);
}

static void accept_all(int lfd)
{
    for (;;) {
        int fd = accept_next(lfd), one = 1;
        if (fd == -1)
            return; /* none for now, or out of fds: retried next turn */
        if (fd < 0)
            die("accept4");
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (fd >= max_fds) { /* only if RLIMIT_NOFILE was raised after start */
            if (close(fd) < 0)
                fprintf(stderr, "epoll_echo: close: %s\n", strerror(errno));
        } else if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
                   epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            drop(fd);
        }
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    struct rlimit rl;
    sigset_t sigs;
    int reuseport;
    if (parse_listen_opt(argc, argv, &sa, &reuseport) < 0) {
        fprintf(stderr, "usage: %s --listen HOST:PORT [--reuseport]\n", argv[0]);
        return 2;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit");
    max_fds = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1 << 24) ? 1 << 24 : (int)rl.rlim_cur;
    if (!(pend = calloc((size_t)max_fds, sizeof *pend)))
        die("calloc");
    /* SIGTERM/SIGINT arrive as a readable fd; SIGPIPE is ignored (write gets EPIPE). */
    if (sigemptyset(&sigs) < 0 || sigaddset(&sigs, SIGTERM) < 0 || sigaddset(&sigs, SIGINT) < 0 ||
        sigprocmask(SIG_BLOCK, &sigs, NULL) < 0 || signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        die("signals");
    int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || (ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("signalfd/epoll_create1");
    const char *failed;
    int lfd = listen_socket(&sa, reuseport, SOMAXCONN, 0, &failed);
    if (lfd < 0)
        die(strcmp(failed, "bind") ? failed : argv[2]);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
    struct epoll_event sev = {.events = EPOLLIN, .data.fd = sfd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &sev) < 0)
        die("epoll_ctl");
    char addr[INET_ADDRSTRLEN];
    if (!inet_ntop(AF_INET, &sa.sin_addr, addr, sizeof addr) ||
        printf("listening on %s:%d\n", addr, ntohs(sa.sin_port)) < 0 || fflush(stdout) == EOF)
        die("stdout");

    static struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd)
                accept_all(lfd);
            else if (fd == sfd)
                return 0; /* SIGTERM or SIGINT */
            else if (pend[fd] && pend[fd]->len)
                flush(fd, pend[fd]);
            else
                echo(fd);
        }
    }
}
