/* http_floor.c - the least an epoll server can do per HTTP request: a
 * physical-limit reference for the HTTP benchmark, not a server. It parses
 * nothing: every "\r\n\r\n" in a connection's input is a request, answered
 * with one canned `200 OK` (Content-Length N, no Date). Level-triggered epoll;
 * for each ready connection one read, then all the answers of that read in one
 * write (writev over a prebuilt run of copies of the response), so the common
 * path is exactly epoll_wait -> read -> write, as in epoll_echo.
 *
 * Per connection it keeps only the bytes after the last terminator, up to 3
 * (so a terminator split across reads is still found), and the bytes of
 * answers that a short write left unsent: since the output is always whole
 * copies of one response, a count is enough. While output is pending the
 * connection waits for EPOLLOUT instead of EPOLLIN.
 *
 * Usage: http_floor --listen HOST:PORT [--reuseport] [--body-size N]
 *   (HOST an IPv4 literal; PORT 0: any; --body-size: response body bytes,
 *   default 13, "Hello, world\n"; larger bodies repeat a pattern) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../listen_arg.h"

enum { BUF_SIZE = 65536, MAX_EVENTS = 1024, RUN_COPIES = 64, MAX_IOV = 1024 };

struct conn {
    uint64_t pending;  /* answer bytes a short write left unsent */
    uint8_t carry_len; /* bytes of input after the last terminator, up to 3 */
    char carry[3];     /* ...the last of them */
};

static char in[3 + BUF_SIZE]; /* room for the carry before what is read */
static char *run;             /* RUN_COPIES copies of the response, back to back */
static size_t resp_len;
static struct conn *conns; /* by fd */
static int max_fds, ep;

static void die(const char *what)
{
    fprintf(stderr, "http_floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void drop(int fd)
{
    conns[fd] = (struct conn){0};
    if (close(fd) < 0) /* closing also removes fd from the epoll set */
        fprintf(stderr, "http_floor: close: %s\n", strerror(errno));
}

static void watch(int fd, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0)
        drop(fd);
}

/* Sends the last `left` bytes of an endless run of responses, as far as the
 * kernel takes them. Returns the bytes still unsent, or -1 on an error. */
static int64_t send_answers(int fd, uint64_t left)
{
    struct iovec iov[MAX_IOV];
    size_t run_len = RUN_COPIES * resp_len, skip = (resp_len - left % resp_len) % resp_len;
    uint64_t todo = left;
    int cnt = 0;
    while (todo > 0 && cnt < MAX_IOV) {
        size_t piece = run_len - skip < todo ? run_len - skip : (size_t)todo;
        iov[cnt++] = (struct iovec){run + skip, piece};
        todo -= piece;
        skip = 0;
    }
    ssize_t w = writev(fd, iov, cnt);
    if (w < 0)
        return errno == EAGAIN || errno == EINTR ? (int64_t)left : -1;
    return (int64_t)(left - (uint64_t)w);
}

/* Counts the terminators in p[0..len) (the carry, then what was just read).
 * Returns the count; *tail is where the input after the last one begins. */
static uint64_t count_requests(const char *p, size_t len, const char **tail)
{
    uint64_t n = 0;
    const char *end = p + len, *hit;
    *tail = p;
    while ((hit = memmem(*tail, (size_t)(end - *tail), "\r\n\r\n", 4))) {
        n++;
        *tail = hit + 4;
    }
    return n;
}

static void serve(int fd)
{
    struct conn *c = &conns[fd];
    ssize_t n = read(fd, in + 3, BUF_SIZE);
    if (n <= 0) { /* 0: EOF; ECONNRESET and the like: done with this one too */
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        drop(fd);
        return;
    }
    char *start = in + 3 - c->carry_len;
    memcpy(start, c->carry, c->carry_len);
    const char *tail;
    uint64_t reqs = count_requests(start, (size_t)n + c->carry_len, &tail);
    size_t rest = (size_t)(in + 3 + n - tail);
    c->carry_len = (uint8_t)(rest < 3 ? rest : 3);
    memcpy(c->carry, in + 3 + n - c->carry_len, c->carry_len);
    if (reqs == 0)
        return;
    int64_t left = send_answers(fd, reqs * resp_len);
    if (left < 0) {
        drop(fd); /* EPIPE, ECONNRESET */
    } else if (left > 0) {
        c->pending = (uint64_t)left;
        watch(fd, EPOLLOUT); /* stop reading until the rest is out */
    }
}

static void flush(int fd, struct conn *c)
{
    int64_t left = send_answers(fd, c->pending);
    if (left < 0) {
        drop(fd);
        return;
    }
    if ((c->pending = (uint64_t)left) == 0)
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
                fprintf(stderr, "http_floor: close: %s\n", strerror(errno));
        } else if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
                   epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            drop(fd);
        }
    }
}

/* Builds the response and RUN_COPIES copies of it. */
static void make_response(size_t body_size)
{
    char head[160];
    int h = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nServer: http_floor\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     body_size);
    static const char hello[] = "Hello, world\n";
    resp_len = (size_t)h + body_size;
    if (!(run = malloc(RUN_COPIES * resp_len)))
        die("malloc");
    memcpy(run, head, (size_t)h);
    for (size_t i = 0; i < body_size; i++)
        run[h + i] = body_size == sizeof hello - 1 ? hello[i] : (char)('a' + i % 26);
    for (int i = 1; i < RUN_COPIES; i++)
        memcpy(run + i * resp_len, run, resp_len);
}

/* Takes `--body-size N` out of argv (anywhere after argv[0]). Returns the
 * size (13 by default), or -1 if the value is not a number from 0 to 16M. */
static long take_body_size(int *argc, char **argv)
{
    long size = 13;
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--body-size") != 0)
            continue;
        char *end;
        if (i + 1 >= *argc)
            return -1;
        size = strtol(argv[i + 1], &end, 10);
        if (!argv[i + 1][0] || *end || size < 0 || size > (16l << 20))
            return -1;
        memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 2) * sizeof *argv);
        *argc -= 2;
        i--;
    }
    return size;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    struct rlimit rl;
    sigset_t sigs;
    int reuseport;
    long body_size = take_body_size(&argc, argv);
    if (body_size < 0 || parse_listen_opt(argc, argv, &sa, &reuseport) < 0) {
        fprintf(stderr, "usage: %s --listen HOST:PORT [--reuseport] [--body-size N]\n", argv[0]);
        return 2;
    }
    make_response((size_t)body_size);
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit");
    max_fds = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1 << 24) ? 1 << 24 : (int)rl.rlim_cur;
    if (!(conns = calloc((size_t)max_fds, sizeof *conns)))
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
            else if (conns[fd].pending)
                flush(fd, &conns[fd]);
            else
                serve(fd);
        }
    }
}
