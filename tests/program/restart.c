/* restart: a server that closed connections itself (its side now sits in
 * TIME_WAIT) can be stopped and started again on the same port at once.
 * That needs SO_REUSEADDR; without it the second bind fails with EADDRINUSE. */
#include "support.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CONNS 50

/* Sockets in /proc/net/tcp with local port `port` in state 06 (TIME_WAIT). */
static int count_time_wait(int port)
{
    FILE *f = fopen("/proc/net/tcp", "re");
    if (f == NULL)
        return -1;
    char line[512];
    int count = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned local_port, state;
        /* "  sl  local_address rem_address   st ..." e.g. "0: 0100007F:1F40 0100007F:C350 06" */
        if (sscanf(line, " %*d: %*x:%x %*x:%*x %x", &local_port, &state) == 2 &&
            (int)local_port == port && state == 0x06)
            count++;
    }
    fclose(f);
    return count;
}

static void restart_on_port_in_time_wait(void)
{
    const char *ritual = ritual_program();
    struct server first;
    server_start(ritual, (const char *const[]){"--idle-timeout", "0.5", NULL}, 0, &first);
    int port = first.port;

    int fds[CONNS];
    uint64_t last_io[CONNS];
    for (int i = 0; i < CONNS; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "hello from client %02d", i);
        fds[i] = tcp_connect(port);
        echo_roundtrip(fds[i], msg, strlen(msg), 5000);
        last_io[i] = now_ms();
    }

    /* The server closes every idle connection with a FIN, not before 0.5 s. */
    uint64_t slowest = 0;
    for (int i = 0; i < CONNS; i++) {
        expect_eof(fds[i], 10000);
        uint64_t idle = now_ms() - last_io[i];
        ASSERT_GE(idle, 450);
        if (idle > slowest)
            slowest = idle;
        close(fds[i]);
    }
    note("all %d connections closed by the server; the last after %llu ms idle", CONNS,
         (unsigned long long)slowest);

    /* The server spoke first, so its side of each connection is in TIME_WAIT. */
    int time_wait = count_time_wait(port);
    note("TIME_WAIT sockets on port %d: %d", port, time_wait);
    ASSERT_GT(time_wait, 0);

    server_expect_clean_exit(&first);

    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    struct server second;
    server_start_at(ritual, listen, NULL, 0, &second); /* checks that it listens on `port` */
    time_wait = count_time_wait(port);
    note("restarted on port %d with %d TIME_WAIT sockets left", port, time_wait);
    ASSERT_GT(time_wait, 0); /* the bind did meet TIME_WAIT sockets */

    int fd = tcp_connect(port);
    echo_roundtrip(fd, "after restart", 13, 5000);
    close(fd);

    server_expect_clean_exit(&second);
}

TEST_CASES(CASE(restart_on_port_in_time_wait))
