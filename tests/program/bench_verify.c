/* A server that corrupts one byte in a million must not get past ritual
 * bench: the wrong byte is counted as a verify error and the exit status
 * says so. The corrupting server is a thread of this test. */
#include "bench_support.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#define CORRUPT_AT 100000 /* the byte of each connection's stream that is flipped */

static int listen_fd;
static int stop_pipe[2]; /* a byte on stop_pipe[1] ends serve() */

/* Echoes every connection, flipping byte CORRUPT_AT of each stream, until
 * told to stop; then closes every connection it accepted. */
static void *serve(void *arg)
{
    (void)arg;
    enum { MAX = 64 };
    struct pollfd p[MAX];
    size_t seen[MAX] = {0};
    int n = 2;
    p[0].fd = stop_pipe[0];
    p[0].events = POLLIN;
    p[1].fd = listen_fd;
    p[1].events = POLLIN;
    for (;;) {
        /* A full table stops accepting: the listener is left out of poll. */
        p[1].fd = n < MAX ? listen_fd : -1;
        if (poll(p, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            SYSCHECK(-1);
        }
        if (p[0].revents)
            break;
        if (p[1].revents & POLLIN) {
            int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0) {
                seen[n] = 0;
                p[n].fd = c;
                p[n++].events = POLLIN;
            }
        }
        for (int i = 2; i < n; i++) {
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
    for (int i = 2; i < n; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    return NULL;
}

static void corrupted_byte_is_a_verify_error(void)
{
    const char *ritual = ritual_program();
    listen_fd = SYSCHECK(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    SYSCHECK(bind(listen_fd, (struct sockaddr *)&sin, sizeof sin));
    SYSCHECK(listen(listen_fd, 64));
    SYSCHECK(pipe2(stop_pipe, O_CLOEXEC));
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, serve, NULL), 0);

    const char *const extra[] = {"--duration", "2", "--connections", "4", "--size", "512", NULL};
    struct cmd_result r;
    run_bench(ritual, socket_port(listen_fd), extra, 30000, &r);
    note("%s", r.out);
    note("stderr: %s", r.err);

    ASSERT_EQ(write(stop_pipe[1], "x", 1), 1);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    close(stop_pipe[0]);
    close(stop_pipe[1]);
    close(listen_fd);

    ASSERT_EQ(r.exit_code, 1);
    ASSERT_GE(json_number(r.out, "verify"), 1);
    ASSERT(strstr(r.err, "differ") != NULL);
}

TEST_CASES(CASE(corrupted_byte_is_a_verify_error))
