/* uring_echo.c - the least an echo server can do per message with io_uring: a
 * physical-limit reference for the benchmarks, not a product. One multishot
 * accept; per connection one multishot recv into a ring of provided buffers; each
 * received buffer is sent back as is and returns to the ring when its send
 * completes. One io_uring_submit_and_wait per turn, then every CQE, then one
 * io_uring_cq_advance. Needs Linux 6.0 (multishot recv) and liburing 2.3.
 *
 * Sends are not ordered among themselves (one that meets a full socket buffer
 * waits while a later one may go), so each connection keeps its received
 * buffers in a FIFO and has one send in flight: with request/response traffic
 * the FIFO never holds more than that one buffer.
 *
 * Usage: uring_echo --listen HOST:PORT   (HOST an IPv4 literal; PORT 0: any) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../listen_arg.h"

enum { BUF_SIZE = 16384, BUF_COUNT = 4096, BGID = 0, NONE = -1 };
enum { OP_ACCEPT, OP_RECV, OP_SEND, OP_SIGNAL }; /* low 2 bits of user_data; fd above */

struct conn {
    int head, tail;   /* buffer ids to send back, oldest first; head's send is in flight */
    unsigned off;     /* bytes of head already sent */
    int next_starved; /* next fd in the list waiting for buffers to re-arm its recv */
    bool reading;     /* recv armed, or waiting to be re-armed */
    bool failed;      /* a send failed: drop what still arrives, close when idle */
};

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
static unsigned blen[BUF_COUNT]; /* bytes received into each buffer */
static int bnext[BUF_COUNT];     /* next buffer in its connection's FIFO */
static struct conn *conns;       /* by fd */
static int max_fds, starved = NONE;
static int returned;  /* buffers given back this turn, published at its end */
static unsigned seen; /* CQEs handled this turn, not yet advanced */

static void die(const char *what, int err)
{
    fprintf(stderr, "uring_echo: %s: %s\n", what, strerror(err));
    exit(1);
}

/* The next free SQE; the caller preps it, then tags it for its CQE. */
static struct io_uring_sqe *get_sqe(void)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&ring))) { /* SQ full (rare): submit mid-turn */
        io_uring_cq_advance(&ring, seen);      /* and free the CQ slots handled so far */
        seen = 0;
        int rc = io_uring_submit(&ring);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            die("io_uring_submit", -rc);
    }
    return sqe;
}

static void tag(struct io_uring_sqe *sqe, int fd, int op)
{
    io_uring_sqe_set_data64(sqe, (uint64_t)fd << 2 | (uint64_t)op);
}

static void arm_recv(int fd)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    tag(sqe, fd, OP_RECV);
}

static void send_head(int fd)
{
    struct conn *c = &conns[fd];
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_send(sqe, fd, bufs + (size_t)c->head * BUF_SIZE + c->off, blen[c->head] - c->off,
                       MSG_NOSIGNAL);
    tag(sqe, fd, OP_SEND);
}

static void give_back(int bid)
{
    io_uring_buf_ring_add(br, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(BUF_COUNT), returned++);
}

static void close_if_idle(int fd)
{
    if (!conns[fd].reading && conns[fd].head == NONE && close(fd) < 0)
        fprintf(stderr, "uring_echo: close: %s\n", strerror(errno));
}

static void arm_accept(int lfd)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, 0);
    tag(sqe, lfd, OP_ACCEPT);
}

static void on_accept(int lfd, int res, unsigned flags)
{
    int one = 1;
    if (!(flags & IORING_CQE_F_MORE)) /* the multishot accept ended: re-arm it */
        arm_accept(lfd);
    if (res < 0) /* ECONNABORTED, EMFILE, ...: this one is lost, the next may do */
        return;
    if (res >= max_fds || setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
        if (close(res) < 0)
            fprintf(stderr, "uring_echo: close: %s\n", strerror(errno));
        return;
    }
    conns[res] = (struct conn){.head = NONE, .tail = NONE, .next_starved = NONE, .reading = true};
    arm_recv(res);
}

static void on_recv(int fd, int res, unsigned flags)
{
    struct conn *c = &conns[fd];
    if (res > 0) {
        int bid = (int)(flags >> IORING_CQE_BUFFER_SHIFT);
        if (c->failed) {
            give_back(bid);
        } else {
            blen[bid] = (unsigned)res;
            bnext[bid] = NONE;
            if (c->head == NONE) {
                c->head = c->tail = bid;
                c->off = 0;
                send_head(fd);
            } else {
                c->tail = bnext[c->tail] = bid;
            }
        }
    }
    if (flags & IORING_CQE_F_MORE)
        return;
    if (!c->failed && res == -ENOBUFS) { /* the ring ran dry: re-arm when buffers return */
        c->next_starved = starved;
        starved = fd;
    } else if (!c->failed && res > 0) { /* ended for another reason (CQ overflow) */
        arm_recv(fd);
    } else { /* EOF, ECONNRESET, or shut down after a failed send */
        c->reading = false;
        close_if_idle(fd);
    }
}

static void on_send(int fd, int res)
{
    struct conn *c = &conns[fd];
    if (res <= 0 && !c->failed) { /* EPIPE, ECONNRESET: end the recv too, close when idle */
        c->failed = true;
        if (shutdown(fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
            fprintf(stderr, "uring_echo: shutdown: %s\n", strerror(errno));
    }
    if (!c->failed && (c->off += (unsigned)res) < blen[c->head]) {
        send_head(fd); /* short send: the rest, before anything queued behind it */
        return;
    }
    do {
        int bid = c->head;
        c->head = bnext[bid];
        c->off = 0;
        give_back(bid);
    } while (c->failed && c->head != NONE);
    if (c->head != NONE)
        send_head(fd);
    else
        close_if_idle(fd);
}

static void rearm_starved(void)
{
    while (starved != NONE) {
        int fd = starved;
        starved = conns[fd].next_starved;
        if (conns[fd].failed) {
            conns[fd].reading = false;
            close_if_idle(fd);
        } else {
            arm_recv(fd);
        }
    }
}

static int listen_on(const struct sockaddr_in *sa, const char *name)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        die("socket", errno);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt SO_REUSEADDR", errno);
    if (bind(fd, (const struct sockaddr *)sa, sizeof *sa) < 0)
        die(name, errno);
    if (listen(fd, SOMAXCONN) < 0)
        die("listen", errno);
    return fd;
}

static void setup_ring(void)
{
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
    int rc = io_uring_queue_init_params(4096, &ring, &p);
    if (rc == -EINVAL) { /* before Linux 6.1: no deferred task running */
        p = (struct io_uring_params){0};
        rc = io_uring_queue_init_params(4096, &ring, &p);
    }
    if (rc < 0)
        die("io_uring_queue_init", -rc);
    size_t ring_bytes = BUF_COUNT * sizeof(struct io_uring_buf);
    br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bufs = mmap(NULL, (size_t)BUF_COUNT * BUF_SIZE, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (br == MAP_FAILED || bufs == MAP_FAILED)
        die("mmap", errno);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uintptr_t)br, .ring_entries = BUF_COUNT, .bgid = BGID};
    if ((rc = io_uring_register_buf_ring(&ring, &reg, 0)) < 0)
        die("io_uring_register_buf_ring", -rc);
    io_uring_buf_ring_init(br);
    for (int bid = 0; bid < BUF_COUNT; bid++)
        give_back(bid);
    io_uring_buf_ring_advance(br, returned);
    returned = 0;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    struct rlimit rl;
    struct signalfd_siginfo si;
    sigset_t sigs;
    char addr[INET_ADDRSTRLEN];
    if (parse_listen(argc, argv, &sa) < 0) {
        fprintf(stderr, "usage: %s --listen HOST:PORT\n", argv[0]);
        return 2;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit", errno);
    max_fds = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1 << 24) ? 1 << 24 : (int)rl.rlim_cur;
    if (!(conns = calloc((size_t)max_fds, sizeof *conns)))
        die("calloc", errno);
    /* SIGTERM/SIGINT are read from a signalfd through the ring; SIGPIPE is ignored. */
    if (sigemptyset(&sigs) < 0 || sigaddset(&sigs, SIGTERM) < 0 || sigaddset(&sigs, SIGINT) < 0 ||
        sigprocmask(SIG_BLOCK, &sigs, NULL) < 0 || signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        die("signals", errno);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC); /* blocking, so that the read waits */
    if (sfd < 0)
        die("signalfd", errno);
    int lfd = listen_on(&sa, argv[2]);
    if (getsockname(lfd, (struct sockaddr *)&sa, &salen) < 0)
        die("getsockname", errno);
    setup_ring();
    arm_accept(lfd);
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_read(sqe, sfd, &si, sizeof si, 0);
    tag(sqe, sfd, OP_SIGNAL);
    if (!inet_ntop(AF_INET, &sa.sin_addr, addr, sizeof addr) ||
        printf("listening on %s:%d\n", addr, ntohs(sa.sin_port)) < 0 || fflush(stdout) == EOF)
        die("stdout", errno);

    for (;;) {
        struct io_uring_cqe *cqe;
        unsigned head;
        int rc = io_uring_submit_and_wait(&ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            die("io_uring_submit_and_wait", -rc);
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            int fd = (int)(cqe->user_data >> 2), res = cqe->res;
            switch (cqe->user_data & 3) {
            case OP_ACCEPT:
                on_accept(fd, res, cqe->flags);
                break;
            case OP_RECV:
                on_recv(fd, res, cqe->flags);
                break;
            case OP_SEND:
                on_send(fd, res);
                break;
            case OP_SIGNAL:
                if (res != (int)sizeof si)
                    die("read signalfd", res < 0 ? -res : EIO);
                return 0; /* SIGTERM or SIGINT */
            }
            seen++;
        }
        io_uring_cq_advance(&ring, seen);
        seen = 0;
        if (returned) {
            io_uring_buf_ring_advance(br, returned);
            returned = 0;
            rearm_starved();
        }
    }
}
