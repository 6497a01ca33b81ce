/* A server that corrupts one byte in a million must not get past ritual
 * bench: the wrong byte is counted as a verify error and the exit status
 * says so. The corrupting server is a thread of this test. */
#include "bench_support.h"

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#define CORRUPT_AT 100000 /* the byte of each connection's stream that is flipped */

static int listen_fd;

static void *serve(void *arg)
{
    (void)arg;
    struct pollfd p[64];
    size_t seen[64] = {0};
    int n = 1;
    p[0].fd = listen_fd;
    p[0].events = POLLIN;
    for (;;) {
        SYSCHECK(poll(p, (nfds_t)n, -1));
        if ((p[0].revents & POLLIN) && n < 64) {
            int c = accept(listen_fd, NULL, NULL);
            if (c >= 0) {
                seen[n] = 0;
                p[n].fd = c;
                p[n++].events = POLLIN;
            }
        }
        for (int i = 1; i < n; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[65536];
            ssize_t got = recv(p[i].fd, buf, sizeof buf, 0);
            if (got <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                continue;
            }
            if (seen[i] <= CORRUPT_AT && CORRUPT_AT < seen[i] + (size_t)got)
                buf[CORRUPT_AT - seen[i]] ^= 0x20;
            seen[i] += (size_t)got;
            if (send(p[i].fd, buf, (size_t)got, MSG_NOSIGNAL) != got) {
                close(p[i].fd);
                p[i].fd = -1;
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *ritual = test_init(argc, argv);
    listen_fd = SYSCHECK(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    SYSCHECK(bind(listen_fd, (struct sockaddr *)&sin, sizeof sin));
    SYSCHECK(listen(listen_fd, 64));
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, serve, NULL), 0);

    const char *const extra[] = {"--duration", "2", "--connections", "4", "--size", "512", NULL};
    struct cmd_result r;
    run_bench(ritual, socket_port(listen_fd), extra, 30000, &r);
    note("%s", r.out);
    note("stderr: %s", r.err);
    ASSERT_EQ(r.exit_code, 1);
    ASSERT_GE(json_number(r.out, "verify"), 1);
    ASSERT(strstr(r.err, "differ") != NULL);
    return 0;
}
