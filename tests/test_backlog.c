/* backlog: while the server is frozen (SIGSTOP), 2,000 clients connect. The
 * kernel completes their handshakes only if the listen backlog holds them
 * all (the default is net.core.somaxconn); with a backlog of, say, 5 the
 * extra SYNs are dropped and those connects hang for seconds. Once thawed,
 * the server serves every one of them. (On a kernel whose somaxconn is
 * below 2,000, as many clients as it allows.) */
#include "support.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 2000
#define MSG_LEN 16

static int fds[MAX_CLIENTS];
static struct pollfd p[MAX_CLIENTS];
static size_t got[MAX_CLIENTS];
static char back[MAX_CLIENTS][MSG_LEN];

static void message_for(int i, char msg[MSG_LEN])
{
    char text[32];
    snprintf(text, sizeof text, "client %06d...", i);
    memcpy(msg, text, MSG_LEN);
}

static void wait_for_state(pid_t pid, char want)
{
    uint64_t deadline = now_ms() + 5000;
    while (proc_state(pid) != want) {
        if (now_ms() > deadline)
            FAIL("server state is '%c', expected '%c' within 5 s", proc_state(pid), want);
        sleep_ms(1);
    }
}

/* net.core.somaxconn: the default backlog, and the most a backlog can be. */
static int somaxconn(void)
{
    FILE *f = fopen("/proc/sys/net/core/somaxconn", "re");
    int n = 0;
    if (f == NULL || fscanf(f, "%d", &n) != 1)
        FAIL("cannot read /proc/sys/net/core/somaxconn");
    fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    const char *ritual = test_init(argc, argv);
    int max_backlog = somaxconn();
    int clients = max_backlog < MAX_CLIENTS ? max_backlog : MAX_CLIENTS;
    note("net.core.somaxconn is %d: %d clients", max_backlog, clients);
    raise_nofile(MAX_CLIENTS + 256);
    struct server s;
    server_start(ritual, NULL, 0, &s);

    SYSCHECK(kill(s.pid, SIGSTOP));
    wait_for_state(s.pid, 'T');

    uint64_t start = now_ms();
    size_t connected = connect_many(s.port, fds, (size_t)clients, 5000);
    note("%zu of %d connects completed in %llu ms while the server was stopped", connected, clients,
         (unsigned long long)(now_ms() - start));
    ASSERT_EQ(connected, clients);
    ASSERT_EQ(proc_state(s.pid), 'T');

    SYSCHECK(kill(s.pid, SIGCONT));

    /* Every client sends its own 16 bytes and must get exactly them back. */
    for (int i = 0; i < clients; i++) {
        char msg[MSG_LEN];
        message_for(i, msg);
        send_all(fds[i], msg, MSG_LEN);
        p[i].fd = fds[i];
        p[i].events = POLLIN;
    }
    int served = 0;
    start = now_ms();
    uint64_t deadline = start + 30000;
    while (served < clients) {
        int64_t left = (int64_t)deadline - (int64_t)now_ms();
        if (left <= 0)
            FAIL("only %d of %d clients served within 30 s", served, clients);
        int r = poll(p, (nfds_t)clients, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        SYSCHECK(r);
        for (int i = 0; i < clients; i++) {
            if (p[i].fd < 0 || p[i].revents == 0)
                continue;
            ssize_t n = recv(fds[i], back[i] + got[i], MSG_LEN - got[i], 0);
            if (n < 0 && errno == EAGAIN)
                continue;
            if (n < 0)
                FAIL("client %d: recv: %s", i, strerror(errno));
            if (n == 0)
                FAIL("client %d: end of stream after %zu bytes", i, got[i]);
            got[i] += (size_t)n;
            if (got[i] == MSG_LEN) {
                char msg[MSG_LEN];
                message_for(i, msg);
                if (memcmp(msg, back[i], MSG_LEN) != 0)
                    FAIL("client %d: echo \"%.16s\" differs from \"%.16s\"", i, back[i], msg);
                p[i].fd = -1;
                served++;
            }
        }
    }
    note("all %d clients served in %llu ms after SIGCONT", served,
         (unsigned long long)(now_ms() - start));

    for (int i = 0; i < clients; i++)
        close(fds[i]);
    server_expect_clean_exit(&s);
    return 0;
}
