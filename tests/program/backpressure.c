/* backpressure: a client that writes without reading must not make the server
 * buffer without bound. Once about 1 MiB of echo is queued the server stops
 * reading that connection: the client's writes stall, the server's memory
 * stays small and it does not spin. When the client reads again everything
 * flows, and all 256 MB come back byte-exact and in order, the server's
 * memory still small. */
#include "support.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TOTAL (256ull << 20)
#define SEED 7
#define CHUNK (256u << 10)

/* The client's outgoing stream: the pattern, generated a chunk at a time. */
struct writer {
    int fd;
    uint64_t sent;
    char chunk[CHUNK];
    size_t chunk_pos, chunk_len;
};

/* Sends what the kernel takes now; returns the number of bytes sent. */
static size_t writer_push(struct writer *w)
{
    size_t before = (size_t)w->sent;
    while (w->sent < TOTAL) {
        if (w->chunk_pos == w->chunk_len) {
            uint64_t left = TOTAL - w->sent;
            w->chunk_len = left < CHUNK ? (size_t)left : CHUNK;
            w->chunk_pos = 0;
            pattern_fill(SEED, w->sent, w->chunk, w->chunk_len);
        }
        ssize_t n = send(w->fd, w->chunk + w->chunk_pos, w->chunk_len - w->chunk_pos,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n < 0)
            FAIL("send after %llu bytes: %s", (unsigned long long)w->sent, strerror(errno));
        w->chunk_pos += (size_t)n;
        w->sent += (uint64_t)n;
    }
    return (size_t)w->sent - before;
}

/* Writes without reading until the writes have made no progress for 1 s. */
static void write_until_stalled(struct writer *w)
{
    uint64_t deadline = now_ms() + 30000;
    uint64_t last_progress = now_ms();
    while (now_ms() - last_progress < 1000) {
        if (w->sent == TOTAL)
            FAIL("all %llu bytes written without reading: the server never pushed back", TOTAL);
        if (now_ms() > deadline)
            FAIL("writes still progressing after 30 s (%llu bytes sent)",
                 (unsigned long long)w->sent);
        if (writer_push(w) > 0)
            last_progress = now_ms();
        struct pollfd p = {.fd = w->fd, .events = POLLOUT};
        int r = poll(&p, 1, 100);
        if (r < 0 && errno != EINTR)
            SYSCHECK(r);
    }
}

static void writer_that_never_reads_is_pushed_back(void)
{
    struct server s;
    server_start(ritual_program(), NULL, 0, &s);

    static struct writer w;
    memset(&w, 0, sizeof w);
    w.fd = tcp_connect(s.port);
    set_nonblocking(w.fd, 1);

    write_until_stalled(&w);
    long rss = proc_rss_kb(s.pid);
    long ticks;
    double cpu = proc_cpu_percent(s.pid, 2000, &ticks);
    note("writes stalled after %llu bytes (%.1f MiB) sent without reading",
         (unsigned long long)w.sent, (double)w.sent / (1 << 20));
    note("while stalled: server RSS %ld kB, CPU %.2f%% of a core (%ld ticks in 2 s)", rss, cpu,
         ticks);
    ASSERT_LT(rss, 64 * 1024);
    ASSERT_DBL_LT(cpu, 5.0);

    /* Now read too, until every byte has come back. */
    static char buf[CHUNK];
    uint64_t received = 0;
    long peak_rss = rss;
    uint64_t start = now_ms(), next_sample = start;
    while (received < TOTAL) {
        if (now_ms() - start > 45000)
            FAIL("only %llu of %llu bytes echoed within 45 s", (unsigned long long)received, TOTAL);
        if (now_ms() >= next_sample) {
            long r = proc_rss_kb(s.pid);
            peak_rss = r > peak_rss ? r : peak_rss;
            next_sample = now_ms() + 100;
        }
        struct pollfd p = {.fd = w.fd, .events = POLLIN | (w.sent < TOTAL ? POLLOUT : 0)};
        int r = poll(&p, 1, 100);
        if (r < 0 && errno == EINTR)
            continue;
        SYSCHECK(r);
        if (p.revents & POLLOUT)
            writer_push(&w);
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        ssize_t n = recv(w.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0)
            FAIL("recv after %llu bytes: %s", (unsigned long long)received, strerror(errno));
        if (n == 0)
            FAIL("end of stream after %llu of %llu bytes", (unsigned long long)received, TOTAL);
        size_t bad = pattern_mismatch(SEED, received, buf, (size_t)n);
        if (bad != (size_t)n)
            FAIL("echo differs at byte %llu", (unsigned long long)(received + bad));
        received += (uint64_t)n;
    }
    long hwm = proc_status_kb(s.pid, "VmHWM");
    note("%llu MiB echoed byte-exact in %llu ms after reading began", TOTAL >> 20,
         (unsigned long long)(now_ms() - start));
    note("server peak RSS: %ld kB sampled, VmHWM %ld kB", peak_rss, hwm);
    ASSERT_LT(hwm, 64 * 1024); /* nor did the flowing echo pile up in the server */

    close(w.fd);
    server_expect_clean_exit(&s);
}

TEST_CASES(CASE(writer_that_never_reads_is_pushed_back))
