/* net.c - client sockets. See support.h. */
#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* --------------------------------------------------------------- sockets */

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

static int tcp_socket(int nonblocking)
{
    int fd = SYSCHECK(
        socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0));
    int one = 1;
    SYSCHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    return fd;
}

int tcp_try_connect(int port)
{
    int fd = tcp_socket(0);
    struct sockaddr_in sa = loopback(port);
    int r;
    do
        r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int tcp_refused(int port)
{
    int fd = tcp_try_connect(port);
    if (fd == -ECONNREFUSED)
        return 1;
    if (fd == -ECONNRESET)
        return 0;
    if (fd < 0)
        FAIL("connect 127.0.0.1:%d: %s", port, strerror(-fd));
    close(fd); /* got in before the listener closed */
    return 0;
}

int tcp_connect(int port)
{
    int fd = tcp_try_connect(port);
    if (fd < 0)
        FAIL("connect 127.0.0.1:%d: %s", port, strerror(-fd));
    return fd;
}

int tcp_connect_rcvbuf(int port, int rcvbuf)
{
    int fd = tcp_socket(0);
    SYSCHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf));
    struct sockaddr_in sa = loopback(port);
    int r;
    do
        r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        FAIL("connect 127.0.0.1:%d: %s", port, strerror(errno));
    return fd;
}

int tcp_connect_start(int port)
{
    int fd = tcp_socket(1);
    struct sockaddr_in sa = loopback(port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
        FAIL("connect 127.0.0.1:%d: %s", port, strerror(errno));
    return fd;
}

int tcp_socket_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    SYSCHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len));
    return err;
}

size_t connect_many(int port, int *fds, size_t n, int timeout_ms)
{
    struct pollfd *p = calloc(n, sizeof *p);
    ASSERT(p != NULL);
    for (size_t i = 0; i < n; i++) {
        fds[i] = tcp_connect_start(port);
        p[i].fd = fds[i];
        p[i].events = POLLOUT;
    }
    size_t done = 0;
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (done < n) {
        int64_t left = (int64_t)deadline - (int64_t)now_ms();
        if (left <= 0)
            break;
        int r = poll(p, n, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        SYSCHECK(r);
        for (size_t i = 0; i < n; i++) {
            if (p[i].fd < 0 || p[i].revents == 0)
                continue;
            int err = tcp_socket_error(fds[i]);
            if (err != 0)
                FAIL("connection %zu of %zu to port %d failed: %s", i, n, port, strerror(err));
            p[i].fd = -1; /* connected: poll ignores negative fds */
            done++;
        }
    }
    free(p);
    return done;
}

void set_nonblocking(int fd, int on)
{
    int flags = SYSCHECK(fcntl(fd, F_GETFL));
    flags = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
    SYSCHECK(fcntl(fd, F_SETFL, flags));
}

int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        int64_t left = (int64_t)deadline - (int64_t)now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        SYSCHECK(r);
        if (r > 0)
            return 1;
    }
}

void send_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    size_t sent = 0;
    uint64_t deadline = now_ms() + 10000;
    while (sent < n) {
        ssize_t w = send(fd, p + sent, n - sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            if (!wait_fd(fd, POLLOUT, deadline))
                FAIL("send: %zu of %zu bytes sent, then no room for 10 s", sent, n);
            continue;
        }
        if (w < 0)
            FAIL("send (%zu of %zu bytes sent): %s", sent, n, strerror(errno));
        sent += (size_t)w;
    }
}

void recv_exact(int fd, void *buf, size_t n, int timeout_ms)
{
    char *p = buf;
    size_t got = 0;
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (got < n) {
        if (!wait_fd(fd, POLLIN, deadline))
            FAIL("recv: %zu of %zu bytes within %d ms", got, n, timeout_ms);
        ssize_t r = recv(fd, p + got, n - got, MSG_DONTWAIT);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r < 0)
            FAIL("recv (%zu of %zu bytes received): %s", got, n, strerror(errno));
        if (r == 0)
            FAIL("recv: end of stream after %zu of %zu bytes", got, n);
        got += (size_t)r;
    }
}

void expect_eof(int fd, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (!wait_fd(fd, POLLIN, deadline))
            FAIL("no end of stream within %d ms", timeout_ms);
        char c;
        ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r < 0)
            FAIL("recv: %s (expected an orderly end of stream)", strerror(errno));
        if (r > 0)
            FAIL("recv: got data (0x%02x), expected end of stream", (unsigned char)c);
        return;
    }
}

int recv_to_end(int fd, void *buf, size_t cap, size_t *len, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    *len = 0;
    for (;;) {
        if (!wait_fd(fd, POLLIN, deadline))
            FAIL("no end of stream within %d ms (%zu bytes read)", timeout_ms, *len);
        if (*len == cap) {
            char extra;
            ssize_t n = recv(fd, &extra, 1, MSG_DONTWAIT);
            if (n > 0)
                FAIL("more than the %zu bytes expected", cap);
            if (n == 0)
                return STREAM_EOF;
            if (errno == ECONNRESET)
                return STREAM_RESET;
            if (errno == EAGAIN || errno == EINTR)
                continue;
            FAIL("recv after %zu bytes: %s", *len, strerror(errno));
        }
        ssize_t n = recv(fd, (char *)buf + *len, cap - *len, MSG_DONTWAIT);
        if (n > 0) {
            *len += (size_t)n;
            continue;
        }
        if (n == 0)
            return STREAM_EOF;
        if (errno == ECONNRESET)
            return STREAM_RESET;
        if (errno != EAGAIN && errno != EINTR)
            FAIL("recv after %zu bytes: %s", *len, strerror(errno));
    }
}

void echo_roundtrip(int fd, const void *msg, size_t n, int timeout_ms)
{
    char *back = malloc(n ? n : 1);
    ASSERT(back != NULL);
    send_all(fd, msg, n);
    recv_exact(fd, back, n, timeout_ms);
    if (memcmp(back, msg, n) != 0)
        FAIL("echo of %zu bytes differs from what was sent", n);
    free(back);
}

#define ECHO_MANY_LEN 32

static void echo_many_message(size_t id, char msg[ECHO_MANY_LEN])
{
    char text[64];
    snprintf(text, sizeof text, "client %08zu of a crowd.........", id);
    memcpy(msg, text, ECHO_MANY_LEN);
}

uint64_t echo_many(const int *fds, size_t n, size_t first_id, int timeout_ms)
{
    struct pollfd *p = calloc(n, sizeof *p);
    char(*back)[ECHO_MANY_LEN] = calloc(n, sizeof *back);
    size_t *got = calloc(n, sizeof *got);
    if (!p || !back || !got)
        FAIL("echo_many: out of memory");
    for (size_t k = 0; k < n; k++) {
        char msg[ECHO_MANY_LEN];
        echo_many_message(first_id + k, msg);
        send_all(fds[k], msg, ECHO_MANY_LEN);
        p[k].fd = fds[k];
        p[k].events = POLLIN;
    }
    size_t served = 0;
    uint64_t start = now_ms(), deadline = start + (uint64_t)timeout_ms;
    while (served < n) {
        int64_t left = (int64_t)deadline - (int64_t)now_ms();
        if (left <= 0)
            FAIL("clients %zu..%zu: only %zu of %zu echoes within %d ms", first_id,
                 first_id + n - 1, served, n, timeout_ms);
        int r = poll(p, (nfds_t)n, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        SYSCHECK(r);
        for (size_t k = 0; k < n; k++) {
            if (p[k].fd < 0 || p[k].revents == 0)
                continue;
            ssize_t got_now = recv(fds[k], back[k] + got[k], ECHO_MANY_LEN - got[k], MSG_DONTWAIT);
            if (got_now < 0 && errno == EAGAIN)
                continue;
            if (got_now < 0)
                FAIL("client %zu: recv: %s", first_id + k, strerror(errno));
            if (got_now == 0)
                FAIL("client %zu: end of stream after %zu bytes", first_id + k, got[k]);
            got[k] += (size_t)got_now;
            if (got[k] == ECHO_MANY_LEN) {
                char msg[ECHO_MANY_LEN];
                echo_many_message(first_id + k, msg);
                if (memcmp(msg, back[k], ECHO_MANY_LEN) != 0)
                    FAIL("client %zu: echo \"%.32s\" differs from \"%.32s\"", first_id + k, back[k],
                         msg);
                p[k].fd = -1; /* done: poll ignores negative fds */
                served++;
            }
        }
    }
    free(p);
    free(back);
    free(got);
    return now_ms() - start;
}

int socket_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    SYSCHECK(getsockname(fd, (struct sockaddr *)&ss, &len));
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int unix_connect(const char *path)
{
    int fd = SYSCHECK(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    socklen_t len;
    if (path[0] == '@') {
        ASSERT_LT(strlen(path), sizeof sun.sun_path);
        memcpy(sun.sun_path + 1, path + 1, strlen(path) - 1);
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    } else {
        ASSERT_LT(strlen(path), sizeof sun.sun_path);
        memcpy(sun.sun_path, path, strlen(path) + 1);
        len = sizeof sun;
    }
    SYSCHECK(connect(fd, (struct sockaddr *)&sun, len));
    return fd;
}
