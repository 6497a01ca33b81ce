/* fd_exhaustion: a server limited to 64 file descriptors faces 200 clients.
 * It serves as many as it can, and while accept() fails with EMFILE it must
 * neither spin (the listener stays readable) nor drop the waiting clients
 * (the "spare descriptor" trick resets them). As served clients leave, every
 * waiting one gets served, and so does a newcomer. */
#include "support.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLIENTS 200
#define MSG_LEN 16

static int fds[CLIENTS];
static int served[CLIENTS];
static struct pollfd p[CLIENTS];

static void message_for(int i, char msg[MSG_LEN])
{
    char text[32];
    snprintf(text, sizeof text, "waiting %04d....", i);
    memcpy(msg, text, MSG_LEN);
}

/* Reads client i's echo (poll said it is readable) and checks it. */
static void read_echo(int i)
{
    char msg[MSG_LEN], back[MSG_LEN];
    message_for(i, msg);
    ssize_t n = recv(fds[i], back, MSG_LEN, MSG_DONTWAIT);
    if (n == 0)
        FAIL("client %d: the server closed it without serving it", i);
    if (n < 0)
        FAIL("client %d: recv: %s (dropped by the server?)", i, strerror(errno));
    if (n < MSG_LEN)
        recv_exact(fds[i], back + n, MSG_LEN - (size_t)n, 1000);
    if (memcmp(msg, back, MSG_LEN) != 0)
        FAIL("client %d: echo \"%.16s\" differs from \"%.16s\"", i, back, msg);
    served[i] = 1;
}

/* Collects echoes until none has come for `quiet_ms`, or the deadline.
 * If close_served, each served client leaves at once. Returns how many
 * were served. */
static int collect_echoes(int quiet_ms, int timeout_ms, int close_served)
{
    int count = 0;
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    uint64_t last = now_ms();
    for (;;) {
        int waiting = 0;
        for (int i = 0; i < CLIENTS; i++) {
            p[i].fd = served[i] ? -1 : fds[i];
            p[i].events = POLLIN;
            waiting += !served[i];
        }
        if (waiting == 0)
            return count;
        uint64_t now = now_ms();
        uint64_t until = last + (uint64_t)quiet_ms;
        until = until < deadline ? until : deadline;
        int r = poll(p, CLIENTS, until > now ? (int)(until - now) : 0);
        if (r < 0 && errno == EINTR)
            continue;
        SYSCHECK(r);
        if (r == 0)
            return count;
        for (int i = 0; i < CLIENTS; i++) {
            if (p[i].fd < 0 || p[i].revents == 0)
                continue;
            read_echo(i);
            count++;
            last = now_ms();
            if (close_served) {
                close(fds[i]);
                fds[i] = -1;
            }
        }
    }
}

static void out_of_descriptors_serves_every_client(void)
{
    memset(served, 0, sizeof served);
    raise_nofile(CLIENTS + 256);
    struct server s;
    server_start(ritual_program(), NULL, 64, &s);

    /* All 200 handshakes complete in the kernel's backlog. */
    size_t connected = connect_many(s.port, fds, CLIENTS, 5000);
    ASSERT_EQ(connected, CLIENTS);
    for (int i = 0; i < CLIENTS; i++) {
        char msg[MSG_LEN];
        message_for(i, msg);
        send_all(fds[i], msg, MSG_LEN);
    }

    /* The first wave: whoever the server could accept. */
    int first = collect_echoes(1000, 10000, 0);
    note("first wave: %d of %d clients served with RLIMIT_NOFILE 64", first, CLIENTS);
    ASSERT_GT(first, 0);
    ASSERT_LT(first, CLIENTS);

    /* Out of descriptors, with clients waiting: the server must sleep, not spin. */
    long ticks;
    double cpu = proc_cpu_percent(s.pid, 3000, &ticks);
    note("server CPU while out of descriptors: %.2f%% of a core (%ld ticks in 3 s)", cpu, ticks);
    ASSERT_DBL_LT(cpu, 2.0);

    /* Served clients leave; the rest must all be served, none dropped. */
    int late = collect_echoes(0, 0, 0); /* echoes that arrived during the CPU window */
    for (int i = 0; i < CLIENTS; i++) {
        if (served[i]) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
    uint64_t start = now_ms();
    int rest = collect_echoes(10000, 30000, 1);
    note("after the first wave left: %d more served in %llu ms (%d during the CPU window)", rest,
         (unsigned long long)(now_ms() - start), late);
    ASSERT_EQ(first + late + rest, CLIENTS);

    int fd = tcp_connect(s.port);
    echo_roundtrip(fd, "a newcomer", 10, 10000);
    close(fd);

    server_expect_clean_exit(&s);
}

TEST_CASES(CASE(out_of_descriptors_serves_every_client))
