/* listen_arg.h - the one command line every comparison server takes,
 * `NAME --listen HOST:PORT` (HOST an IPv4 literal, PORT 0 for any), so that
 * bench/run can start them all the same way; servers that can share a port
 * also take `--listen HOST:PORT --reuseport` (SO_REUSEPORT, for running two
 * processes on one port). Header-only: each server stays a single file to read. */
#ifndef RITUAL_BENCH_LISTEN_ARG_H
#define RITUAL_BENCH_LISTEN_ARG_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Fills sa from argv, and *reuseport (0 or 1) if reuseport is not NULL;
 * returns 0, or -1 if the arguments are not exactly --listen HOST:PORT,
 * followed by --reuseport when reuseport is not NULL. The address stays argv[2]. */
static inline int parse_listen_opt(int argc, char **argv, struct sockaddr_in *sa, int *reuseport)
{
    char host[INET_ADDRSTRLEN], *end;
    int flag = reuseport && argc == 4 && !strcmp(argv[3], "--reuseport");
    const char *colon =
        argc == 3 + flag && !strcmp(argv[1], "--listen") ? strrchr(argv[2], ':') : NULL;
    if (reuseport)
        *reuseport = flag;
    if (!colon || colon == argv[2] || (size_t)(colon - argv[2]) >= sizeof host)
        return -1;
    memcpy(host, argv[2], (size_t)(colon - argv[2]));
    host[colon - argv[2]] = '\0';
    long port = strtol(colon + 1, &end, 10);
    *sa = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (!colon[1] || *end || port < 0 || port > 65535)
        return -1;
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* The listening ritual, for the servers that make their own socket: a
 * close-on-exec socket (non-blocking unless `blocking`), SO_REUSEADDR, and
 * SO_REUSEPORT if asked, bound to sa; then, if backlog > 0, listen and the
 * real port read back into sa. Returns the fd, or -1 with errno set and
 * *failed naming the call that failed ("bind", ...). */
static inline int listen_socket(struct sockaddr_in *sa, int reuseport, int backlog, int blocking,
                                const char **failed)
{
    int one = 1;
    socklen_t len = sizeof *sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (blocking ? 0 : SOCK_NONBLOCK), 0);
    if (fd < 0)
        return *failed = "socket", -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0))
        return *failed = "setsockopt", -1; /* the process exits on any error: fd goes with it */
    if (bind(fd, (const struct sockaddr *)sa, sizeof *sa) < 0)
        return *failed = "bind", -1;
    if (backlog > 0 &&
        (listen(fd, backlog) < 0 || getsockname(fd, (struct sockaddr *)sa, &len) < 0))
        return *failed = "listen", -1;
    return fd;
}

/* The next connection from a non-blocking listener, non-blocking itself.
 * Returns its fd; -1 when there is none for now (EAGAIN, or out of
 * descriptors or memory: the listener stays ready and is retried next turn);
 * -2 on any other error, with errno set. Transient errors are retried. */
static inline int accept_next(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
            errno == ENOMEM)
            return -1;
        return -2;
    }
}

/* The plain form, for servers that cannot share a port: --listen HOST:PORT only. */
static inline int parse_listen(int argc, char **argv, struct sockaddr_in *sa)
{
    return parse_listen_opt(argc, argv, sa, NULL);
}

#endif
