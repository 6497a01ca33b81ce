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

static int fds[MAX_CLIENTS];

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

static void frozen_server_serves_full_backlog(void)
{
    int max_backlog = somaxconn();
    int clients = max_backlog < MAX_CLIENTS ? max_backlog : MAX_CLIENTS;
    note("net.core.somaxconn is %d: %d clients", max_backlog, clients);
    raise_nofile(MAX_CLIENTS + 256);
    struct server s;
    server_start(ritual_program(), NULL, 0, &s);

    SYSCHECK(kill(s.pid, SIGSTOP));
    wait_for_state(s.pid, 'T');

    uint64_t start = now_ms();
    size_t connected = connect_many(s.port, fds, (size_t)clients, 5000);
    note("%zu of %d connects completed in %llu ms while the server was stopped", connected, clients,
         (unsigned long long)(now_ms() - start));
    ASSERT_EQ(connected, clients);
    ASSERT_EQ(proc_state(s.pid), 'T');

    SYSCHECK(kill(s.pid, SIGCONT));

    /* Every client sends its own message and must get exactly it back. */
    uint64_t took = echo_many(fds, (size_t)clients, 0, 30000);
    note("all %d clients served in %llu ms after SIGCONT", clients, (unsigned long long)took);

    for (int i = 0; i < clients; i++)
        close(fds[i]);
    server_expect_clean_exit(&s);
}

TEST_CASES(CASE(frozen_server_serves_full_backlog))
