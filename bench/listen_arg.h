/* listen_arg.h - the one command line every comparison server takes,
 * `NAME --listen HOST:PORT` (HOST an IPv4 literal, PORT 0 for any), so that
 * bench/run can start them all the same way; servers that can share a port
 * also take `--listen HOST:PORT --reuseport` (SO_REUSEPORT, for running two
 * processes on one port). Header-only: each server stays a single file to read. */
#ifndef RITUAL_BENCH_LISTEN_ARG_H
#define RITUAL_BENCH_LISTEN_ARG_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* The plain form, for servers that cannot share a port: --listen HOST:PORT only. */
static inline int parse_listen(int argc, char **argv, struct sockaddr_in *sa)
{
    return parse_listen_opt(argc, argv, sa, NULL);
}

#endif
