/* shutdown: SIGTERM drains (drain_streams_*). The server closes its listener
 * at once (new clients are refused) but the 100 clients already streaming
 * keep being echoed until each has all of its 1 MB back and has closed; then
 * the server exits 0, well before the drain deadline. A second signal cuts
 * the drain short: exit 1 at once (second_signal_*). Clients with nothing in
 * flight do not hold the drain: closed once silent for a second
 * (idle_clients_*). Each with one worker, then four. */
#include "support.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLIENTS 100
#define STREAM (1u << 20)
#define PIECE (16u << 10)
#define PACE_MS 25 /* one piece per client every 25 ms: the stream lasts ~1.6 s */

struct client {
    int fd;
    size_t sent, received;
    int write_closed, eof;
};

static struct client clients[CLIENTS];

static void client_send(int i, size_t limit)
{
    struct client *c = &clients[i];
    static char buf[PIECE];
    while (c->sent < limit) {
        size_t n = limit - c->sent < PIECE ? limit - c->sent : PIECE;
        pattern_fill((uint64_t)i, c->sent, buf, n);
        ssize_t w = send(c->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (w < 0)
            FAIL("client %d: send after %zu bytes: %s", i, c->sent, strerror(errno));
        c->sent += (size_t)w;
    }
}

static void client_receive(int i)
{
    struct client *c = &clients[i];
    static char buf[64 << 10];
    ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0)
        FAIL("client %d: recv after %zu bytes: %s", i, c->received, strerror(errno));
    if (n == 0) {
        if (!c->write_closed)
            FAIL("client %d: the server closed after echoing %zu of %u bytes", i, c->received,
                 STREAM);
        c->eof = 1;
        return;
    }
    if (c->write_closed)
        FAIL("client %d: %zd unexpected bytes after the whole echo", i, n);
    size_t bad = pattern_mismatch((uint64_t)i, c->received, buf, (size_t)n);
    if (bad != (size_t)n)
        FAIL("client %d: echo differs at byte %zu", i, c->received + bad);
    c->received += (size_t)n;
    if (c->received == STREAM) {
        /* All back: half-close, and expect the server's FIN. */
        ASSERT_EQ(c->sent, STREAM);
        SYSCHECK(shutdown(c->fd, SHUT_WR));
        c->write_closed = 1;
    }
}

static int all_under_way(void)
{
    for (int i = 0; i < CLIENTS; i++)
        if (clients[i].sent < (128u << 10) || clients[i].received == 0)
            return 0;
    return 1;
}

static void drain_streams(const char *workers)
{
    struct server s;
    note("%s worker(s)", workers);
    memset(clients, 0, sizeof clients);
    server_start(ritual_program(),
                 (const char *const[]){"--drain-timeout", "10", "--workers", workers, NULL}, 0, &s);
    for (int i = 0; i < CLIENTS; i++) {
        clients[i].fd = tcp_connect(s.port);
        set_nonblocking(clients[i].fd, 1);
    }

    uint64_t start = now_ms(), term_at = 0, refused_at = 0, next_probe = 0;
    int finished = 0;
    while (finished < CLIENTS) {
        uint64_t now = now_ms();
        if (now - start > 30000)
            FAIL("only %d of %d clients done within 30 s", finished, CLIENTS);
        size_t limit = ((now - start) / PACE_MS + 1) * PIECE;
        limit = limit < STREAM ? limit : STREAM;

        static struct pollfd p[CLIENTS];
        for (int i = 0; i < CLIENTS; i++) {
            p[i].fd = clients[i].eof ? -1 : clients[i].fd;
            p[i].events = POLLIN | (clients[i].sent < limit ? POLLOUT : 0);
        }
        int r = poll(p, CLIENTS, 5);
        if (r < 0 && errno != EINTR)
            SYSCHECK(r);
        for (int i = 0; i < CLIENTS && r > 0; i++) {
            if (p[i].revents & POLLOUT)
                client_send(i, limit);
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                client_receive(i);
                finished += clients[i].eof;
            }
        }

        if (term_at == 0 && all_under_way()) {
            for (int i = 0; i < CLIENTS; i++)
                ASSERT_LT(clients[i].sent, STREAM);
            SYSCHECK(kill(s.pid, SIGTERM));
            term_at = now_ms();
            note("SIGTERM %llu ms into the streams", (unsigned long long)(term_at - start));
        }
        if (term_at != 0 && refused_at == 0 && now_ms() >= next_probe) {
            if (tcp_refused(s.port))
                refused_at = now_ms();
            else if (now_ms() - term_at > 2000)
                FAIL("new connections still accepted 2 s after SIGTERM");
            next_probe = now_ms() + 10;
        }
    }
    uint64_t done_at = now_ms();
    ASSERT_NE(term_at, 0);
    if (refused_at == 0)
        FAIL("no connection attempt was refused while the streams drained");
    note("listener closed %llu ms after SIGTERM; all %d streams done %llu ms after SIGTERM",
         (unsigned long long)(refused_at - term_at), CLIENTS,
         (unsigned long long)(done_at - term_at));

    /* The last connection is gone: the server exits now, not at the deadline. */
    if (!server_wait(&s, 3000))
        FAIL("server still running 3 s after its last connection closed");
    uint64_t exit_at = now_ms();
    note("server exited %llu ms after the last client, %llu ms after SIGTERM",
         (unsigned long long)(exit_at - done_at), (unsigned long long)(exit_at - term_at));
    ASSERT_LT(exit_at - term_at, 10000);
    server_expect_clean_exit(&s);
    for (int i = 0; i < CLIENTS; i++)
        close(clients[i].fd);
}

/* Sends to `fd` without reading until neither the server nor the kernel
 * takes more (the server's queue toward us is over its high watermark and
 * it stopped reading): a transfer in flight that cannot finish. */
static void fill_until_stuck(int fd)
{
    static char buf[PIECE];
    memset(buf, 'x', sizeof buf);
    size_t sent = 0;
    for (;;) {
        ssize_t w = send(fd, buf, sizeof buf, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            sent += (size_t)w;
            ASSERT_LT(sent, 256u << 20);
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            FAIL("send after %zu bytes: %s", sent, strerror(errno));
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int r = poll(&p, 1, 300);
        if (r < 0 && errno != EINTR)
            SYSCHECK(r);
        if (r == 0)
            return; /* no room for 300 ms: stuck */
    }
}

static void second_signal(const char *workers)
{
    struct server s;
    server_start(ritual_program(),
                 (const char *const[]){"--drain-timeout", "10", "--workers", workers, NULL}, 0, &s);
    int fd = tcp_connect(s.port);
    fill_until_stuck(fd);

    SYSCHECK(kill(s.pid, SIGTERM));
    uint64_t term_at = now_ms();
    /* Wait until the first signal has been handled: the listener is closed. */
    while (!tcp_refused(s.port)) {
        if (now_ms() - term_at > 2000)
            FAIL("new connections still accepted 2 s after SIGTERM");
        sleep_ms(10);
    }
    if (server_wait(&s, 0))
        FAIL("server exited on the first SIGTERM with a transfer in flight (it should drain)");

    SYSCHECK(kill(s.pid, SIGTERM));
    uint64_t second_at = now_ms();
    if (!server_wait(&s, 3000))
        FAIL("server still running 3 s after a second SIGTERM");
    note("second SIGTERM: exit %llu ms later", (unsigned long long)(now_ms() - second_at));
    server_expect_exit(&s, 1);
    close(fd);
}

/* Connections with nothing in flight do not hold the drain: closed
 * cleanly (a FIN, not a reset) once silent for a second, so the server
 * exits long before its 10 s deadline. */
static void idle_clients(const char *workers)
{
    enum { IDLE = 20 };
    struct server s;
    server_start(ritual_program(),
                 (const char *const[]){"--drain-timeout", "10", "--workers", workers, NULL}, 0, &s);
    int fds[IDLE];
    for (int i = 0; i < IDLE; i++) {
        fds[i] = tcp_connect(s.port);
        echo_roundtrip(fds[i], "then silent", 11, 5000);
    }
    SYSCHECK(kill(s.pid, SIGTERM));
    uint64_t term_at = now_ms();
    for (int i = 0; i < IDLE; i++) {
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        ASSERT_EQ(poll(&p, 1, 5000), 1);
        char c;
        ssize_t r = recv(fds[i], &c, 1, 0);
        if (r != 0)
            FAIL("idle client %d: expected a clean end of stream, got %s", i,
                 r < 0 ? strerror(errno) : "a byte");
        close(fds[i]); /* as a client does at the end of the stream */
    }
    uint64_t closed_at = now_ms();
    if (!server_wait(&s, 3000))
        FAIL("server still running 3 s after its idle clients were closed");
    note("%d idle clients, %s worker(s): closed %llu ms after SIGTERM, exit %llu ms after", IDLE,
         workers, (unsigned long long)(closed_at - term_at),
         (unsigned long long)(now_ms() - term_at));
    ASSERT_LT(now_ms() - term_at, 5000); /* the drain deadline is 10 s */
    server_expect_clean_exit(&s);
}

/* One loop, then four workers: SIGTERM under load drains every one. */
static void drain_streams_one_worker(void)
{
    drain_streams("1");
}

static void drain_streams_four_workers(void)
{
    drain_streams("4");
}

static void second_signal_one_worker(void)
{
    second_signal("1");
}

static void second_signal_four_workers(void)
{
    second_signal("4");
}

static void idle_clients_one_worker(void)
{
    idle_clients("1");
}

static void idle_clients_four_workers(void)
{
    idle_clients("4");
}

static void raise_limit(void)
{
    raise_nofile(CLIENTS + 256);
}

TEST_CASES_WITH(raise_limit, NULL, CASE(drain_streams_one_worker), CASE(drain_streams_four_workers),
                CASE(second_signal_one_worker), CASE(second_signal_four_workers),
                CASE(idle_clients_one_worker), CASE(idle_clients_four_workers))
