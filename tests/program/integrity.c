/* integrity: 16 MB of random bytes, sent in random-sized pieces (1 byte to
 * 64 KiB) while the echo is read at the same time, come back byte-exact and
 * in order: over one connection (one_connection), and over four at once
 * (four_connections_at_once). Lost, doubled or reordered bytes at buffer
 * boundaries show up here. */
#include "support.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PAYLOAD (16u << 20)
#define MAX_FLOWS 4

struct flow {
    int fd;
    char *payload;
    size_t sent, received;
    size_t piece_left; /* bytes left of the current random-sized piece */
    struct prng rng;
    int done;
};

static void flow_open(struct flow *f, int port, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    f->fd = tcp_connect(port);
    set_nonblocking(f->fd, 1);
    f->payload = malloc(PAYLOAD);
    ASSERT(f->payload != NULL);
    prng_seed(&f->rng, seed);
    prng_fill(&f->rng, f->payload, PAYLOAD);
}

/* Sends the current piece (or what the kernel takes of it). */
static void flow_send(struct flow *f)
{
    if (f->piece_left == 0)
        f->piece_left = (size_t)prng_range(&f->rng, 1, 65536);
    size_t n = f->piece_left < PAYLOAD - f->sent ? f->piece_left : PAYLOAD - f->sent;
    ssize_t w = send(f->fd, f->payload + f->sent, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (w < 0)
        FAIL("send after %zu bytes: %s", f->sent, strerror(errno));
    f->sent += (size_t)w;
    f->piece_left -= (size_t)w;
}

static void flow_receive(struct flow *f)
{
    static char buf[128 << 10];
    ssize_t n = recv(f->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0)
        FAIL("recv after %zu bytes: %s", f->received, strerror(errno));
    if (n == 0)
        FAIL("end of stream after %zu of %u bytes", f->received, PAYLOAD);
    if ((size_t)n > f->sent - f->received)
        FAIL("received %zd bytes, but only %zu were sent and not yet echoed", n,
             f->sent - f->received);
    if (memcmp(buf, f->payload + f->received, (size_t)n) != 0) {
        size_t i = 0;
        while (buf[i] == f->payload[f->received + i])
            i++;
        FAIL("echo differs at byte %zu", f->received + i);
    }
    f->received += (size_t)n;
}

/* Pumps every flow until all have their payload back, then half-closes each
 * and expects the server's FIN. */
static void run_flows(struct flow *flows, int n)
{
    uint64_t deadline = now_ms() + 40000;
    int done = 0;
    while (done < n) {
        if (now_ms() > deadline)
            FAIL("echo of %d x 16 MB not done within 40 s", n);
        struct pollfd p[MAX_FLOWS];
        for (int i = 0; i < n; i++) {
            p[i].fd = flows[i].done ? -1 : flows[i].fd;
            p[i].events = POLLIN | (flows[i].sent < PAYLOAD ? POLLOUT : 0);
        }
        int r = poll(p, (nfds_t)n, 1000);
        if (r < 0 && errno == EINTR)
            continue;
        SYSCHECK(r);
        for (int i = 0; i < n; i++) {
            struct flow *f = &flows[i];
            if (p[i].revents & POLLOUT)
                flow_send(f);
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR))
                flow_receive(f);
            if (!f->done && f->received == PAYLOAD) {
                f->done = 1;
                done++;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        SYSCHECK(shutdown(flows[i].fd, SHUT_WR));
        expect_eof(flows[i].fd, 5000);
        close(flows[i].fd);
        free(flows[i].payload);
    }
}

/* Opens `n` flows (seeds first_seed...) to a fresh server, echoes them all at
 * once, and stops the server. */
static void echo_flows(int n, uint64_t first_seed)
{
    struct server s;
    server_start(ritual_program(), NULL, 0, &s);
    static struct flow flows[MAX_FLOWS];
    for (int i = 0; i < n; i++)
        flow_open(&flows[i], s.port, first_seed + (uint64_t)i);
    uint64_t start = now_ms();
    run_flows(flows, n);
    note("16 MB in random pieces echoed byte-exact over %d connection%s in %llu ms", n,
         n == 1 ? "" : "s at once", (unsigned long long)(now_ms() - start));
    server_expect_clean_exit(&s);
}

static void one_connection(void)
{
    echo_flows(1, 1);
}

static void four_connections_at_once(void)
{
    echo_flows(MAX_FLOWS, 100);
}

TEST_CASES(CASE(one_connection), CASE(four_connections_at_once))
