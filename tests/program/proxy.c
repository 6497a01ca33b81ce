/* examples/proxy.c in front of `ritual echo`, as a proxy's users see it.
 *
 * four_streams_half_closed: four clients each send 16 MiB and then a FIN
 *   (shutdown(SHUT_WR)) while reading; each gets its 16 MiB back
 *   byte-exact, then the end of the stream: the half-close went through the
 *   proxy to the upstream, and the upstream's FIN came back through it.
 * client_stalls_memory_bounded: a client sends 64 MiB and reads nothing
 *   (where 64 KiB kernel buffers can be had, so that the stall is ours);
 *   the proxy's memory stays bounded (the upstream is paused, then the
 *   client's sends stall), and once it reads, every byte arrives.
 * upstream_stalls_memory_bounded: an upstream that accepts nothing and
 *   reads nothing: the proxy stops reading the client, whose sends stall,
 *   with the proxy's memory bounded.
 * upstream_refused_resets_client: no upstream listening: the client is
 *   reset, not left hanging nor told a clean end. */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PAYLOAD (16u << 20)
#define STALL_PAYLOAD (64u << 20)
#define STREAMS 4
#define SEED 0x50524f58u
/* What a proxy may hold for one stalled stream: its watermark (1 MiB) each
 * way, a read buffer, and slack for the allocator (and a sanitizer's
 * quarantine); far below the 64 MiB a stalled client sends. */
#define BOUND_KB (24 * 1024)

static struct server upstream, proxy;

static void start_proxy(const char *upstream_address)
{
    const char *argv[] = {example_program("proxy"), "127.0.0.1:0", upstream_address, NULL};
    server_start_argv(argv, 0, &proxy);
}

static void start_both(void)
{
    server_start(ritual_program(), NULL, 0, &upstream);
    start_proxy(upstream.address);
}

static void stop_both(void)
{
    server_expect_clean_exit(&proxy);
    server_expect_clean_exit(&upstream);
}

struct stream {
    int fd;
    uint64_t seed;
    size_t total; /* bytes to send, and to get back */
    size_t sent, received;
    int fin_sent, ended;
};

static void stream_send(struct stream *s)
{
    static char buf[64 << 10];
    size_t n = s->total - s->sent < sizeof buf ? s->total - s->sent : sizeof buf;
    pattern_fill(s->seed, s->sent, buf, n);
    ssize_t w = send(s->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (w < 0)
        FAIL("send after %zu bytes: %s", s->sent, strerror(errno));
    s->sent += (size_t)w;
    if (s->sent == s->total && !s->fin_sent) {
        SYSCHECK(shutdown(s->fd, SHUT_WR));
        s->fin_sent = 1;
    }
}

static void stream_receive(struct stream *s)
{
    static char buf[128 << 10];
    ssize_t n = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0)
        FAIL("recv after %zu bytes: %s", s->received, strerror(errno));
    if (n == 0) {
        if (s->received != s->total)
            FAIL("end of stream after %zu of %zu bytes", s->received, s->total);
        if (!s->fin_sent)
            FAIL("end of stream before the client's own FIN");
        s->ended = 1;
        return;
    }
    size_t bad = pattern_mismatch(s->seed, s->received, buf, (size_t)n);
    if (bad != (size_t)n)
        FAIL("byte %zu of the stream is not the one sent", s->received + bad);
    s->received += (size_t)n;
}

/* Where the bytes of a stalled relay are: each hop's kernel queues and
 * timers, and what the proxy and the upstream watch on their sockets. */
static void note_relay_state(void)
{
    int ports[] = {proxy.port, upstream.port};
    proc_note_tcp(ports, 2);
    proc_note_epoll(proxy.pid, "the proxy");
    proc_note_epoll(upstream.pid, "the upstream (ritual echo)");
}

/* Pumps the streams until each has its bytes back and the end of the stream. */
static void pump(struct stream *s, int n, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int open = 0;
        struct pollfd p[STREAMS];
        for (int i = 0; i < n; i++) {
            p[i].fd = s[i].ended ? -1 : s[i].fd;
            p[i].events = POLLIN | (s[i].sent < s[i].total ? POLLOUT : 0);
            open += !s[i].ended;
        }
        if (!open)
            return;
        if (now_ms() > deadline) {
            for (int i = 0; i < n; i++)
                note("stream %d: %zu of %zu bytes sent, %zu received, FIN %s, %s", i, s[i].sent,
                     s[i].total, s[i].received, s[i].fin_sent ? "sent" : "not sent",
                     s[i].ended ? "ended" : "not ended");
            note_relay_state();
            FAIL("%d of %d streams not through the proxy within %d ms", open, n, timeout_ms);
        }
        int r = poll(p, (nfds_t)n, 1000);
        if (r < 0 && errno == EINTR)
            continue;
        SYSCHECK(r);
        for (int i = 0; i < n; i++) {
            if (p[i].revents & POLLOUT)
                stream_send(&s[i]);
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR))
                stream_receive(&s[i]);
        }
    }
}

/* A network namespace of the case's own whose TCP buffers stay small (64
 * KiB at most), so that what the library queues, not what the kernel
 * absorbs, decides whether a relay flows. Returns 0 (after a note) where
 * the test may not make one. */
static int enter_small_buffer_netns(void)
{
    if (unshare(CLONE_NEWNET) != 0) {
        note("skipped: unshare(CLONE_NEWNET): %s (needs CAP_SYS_ADMIN)", strerror(errno));
        return 0;
    }
    int s = SYSCHECK(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    SYSCHECK(ioctl(s, SIOCGIFFLAGS, &ifr));
    ifr.ifr_flags |= IFF_UP;
    SYSCHECK(ioctl(s, SIOCSIFFLAGS, &ifr));
    close(s);
    static const char *const sysctls[] = {"/proc/sys/net/ipv4/tcp_rmem",
                                          "/proc/sys/net/ipv4/tcp_wmem"};
    for (int i = 0; i < 2; i++) {
        int fd = SYSCHECK(open(sysctls[i], O_WRONLY | O_CLOEXEC));
        static const char small[] = "4096 16384 65536";
        ASSERT_EQ(write(fd, small, sizeof small - 1), (ssize_t)(sizeof small - 1));
        close(fd);
    }
    return 1;
}

static void stream_open(struct stream *s, uint64_t seed, size_t total)
{
    memset(s, 0, sizeof *s);
    s->fd = tcp_connect(proxy.port);
    set_nonblocking(s->fd, 1);
    s->seed = seed;
    s->total = total;
}

static void four_streams_half_closed(void)
{
    start_both();
    struct stream s[STREAMS];
    for (int i = 0; i < STREAMS; i++)
        stream_open(&s[i], SEED + (uint64_t)i, PAYLOAD);
    uint64_t start = now_ms();
    pump(s, STREAMS, 60000);
    note("%d x 16 MiB through the proxy and back, each half-closed, in %llu ms", STREAMS,
         (unsigned long long)(now_ms() - start));
    for (int i = 0; i < STREAMS; i++)
        close(s[i].fd);
    stop_both();
}

/* Sends until no byte has gone for 500 ms: the stream is stalled. */
static void send_until_stalled(struct stream *s)
{
    uint64_t last = now_ms();
    while (s->sent < s->total && now_ms() - last < 500) {
        size_t before = s->sent;
        struct pollfd p = {.fd = s->fd, .events = POLLOUT};
        SYSCHECK(poll(&p, 1, 100));
        if (p.revents & POLLOUT)
            stream_send(s);
        if (s->sent != before)
            last = now_ms();
    }
}

/* Where the kernel buffers little (64 KiB a socket), four clients each send
 * until they stall without reading, then read: every queue on the way is
 * over its high watermark at once. A relay that stopped reading a
 * connection over its own watermark would deadlock here: the upstream
 * connection, its queue full, would not read the upstream, whose queue
 * would never drain to let it read the proxy's. keep_reading, with the
 * proxy pausing only the side it reads from, lets every stream finish. */
static void stalled_then_reading_small_buffers(void)
{
    if (!enter_small_buffer_netns())
        return;
    start_both();
    struct stream s[STREAMS];
    size_t stalled_at = 0;
    for (int i = 0; i < STREAMS; i++) {
        stream_open(&s[i], SEED + (uint64_t)i, PAYLOAD);
        send_until_stalled(&s[i]);
        stalled_at += s[i].sent;
    }
    ASSERT_LT(stalled_at, (size_t)STREAMS * PAYLOAD); /* they did stall */
    uint64_t start = now_ms();
    pump(s, STREAMS, 30000);
    note("%d x 16 MiB with 64 KiB kernel buffers: %zu bytes in all sent before the clients "
         "stalled, all through in %llu ms once they read",
         STREAMS, stalled_at, (unsigned long long)(now_ms() - start));
    for (int i = 0; i < STREAMS; i++)
        close(s[i].fd);
    stop_both();
}

static void client_stalls_memory_bounded(void)
{
    /* With this machine's autotuned buffers (tcp_rmem up to 32 MB a
     * socket) the kernel alone can hold all 64 MiB and the client never
     * stalls; in a namespace of 64 KiB buffers the library's queues decide. */
    if (!enter_small_buffer_netns())
        note("in the default namespace: the kernel's buffers may take it all");
    start_both();
    long rss_before = proc_rss_kb(proxy.pid);
    struct stream s;
    stream_open(&s, SEED, STALL_PAYLOAD);
    send_until_stalled(&s);
    long rss = proc_rss_kb(proxy.pid);
    note("a client that reads nothing: %zu bytes sent before its sends stalled; proxy RSS %ld kB "
         "(%ld kB before)",
         s.sent, rss, rss_before);
    ASSERT_LT(s.sent, STALL_PAYLOAD); /* the stall reached the client */
    ASSERT_LT(rss - rss_before, BOUND_KB);
    pump(&s, 1, 60000); /* now it reads: every byte, then the end */
    close(s.fd);
    stop_both();
}

static void upstream_stalls_memory_bounded(void)
{
    /* An upstream that never accepts: the kernel completes the handshake
     * and buffers a little; nothing reads. */
    int l = SYSCHECK(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    SYSCHECK(bind(l, (struct sockaddr *)&a, sizeof a));
    SYSCHECK(listen(l, 8));
    char address[32];
    snprintf(address, sizeof address, "127.0.0.1:%d", socket_port(l));
    start_proxy(address);
    long rss_before = proc_rss_kb(proxy.pid);
    struct stream s;
    stream_open(&s, SEED, STALL_PAYLOAD);
    send_until_stalled(&s);
    long rss = proc_rss_kb(proxy.pid);
    note("an upstream that reads nothing: %zu bytes sent before the client stalled; proxy RSS "
         "%ld kB (%ld kB before)",
         s.sent, rss, rss_before);
    ASSERT_LT(s.sent, STALL_PAYLOAD);
    ASSERT_LT(rss - rss_before, BOUND_KB);
    close(s.fd);
    close(l); /* the upstream connection is reset: the proxy closes its pair */
    server_expect_clean_exit(&proxy);
}

static void upstream_refused_resets_client(void)
{
    int spare = SYSCHECK(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    SYSCHECK(bind(spare, (struct sockaddr *)&a, sizeof a));
    char address[32];
    snprintf(address, sizeof address, "127.0.0.1:%d", socket_port(spare));
    close(spare); /* nobody listens there now */
    start_proxy(address);
    int fd = tcp_connect(proxy.port);
    char buf[16];
    size_t len;
    ASSERT_EQ(recv_to_end(fd, buf, sizeof buf, &len, 10000), STREAM_RESET);
    ASSERT_EQ(len, 0);
    close(fd);
    server_expect_clean_exit(&proxy);
}

TEST_CASES(CASE(four_streams_half_closed), CASE(stalled_then_reading_small_buffers),
           CASE(client_stalls_memory_bounded), CASE(upstream_stalls_memory_bounded),
           CASE(upstream_refused_resets_client))
