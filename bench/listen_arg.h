/* listen_arg.h - the one command line every comparison server takes,
 * `NAME --listen HOST:PORT` (HOST an IPv4 literal, PORT 0 for any), so that
 * bench/run can start them all the same way. Header-only: each server stays
 * a single file to read. */
#ifndef RITUAL_BENCH_LISTEN_ARG_H
#define RITUAL_BENCH_LISTEN_ARG_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Fills sa from argv; returns 0, or -1 if the arguments are not exactly
 * --listen HOST:PORT. */
static inline int parse_listen(int argc, char **argv, struct sockaddr_in *sa)
{
    char host[INET_ADDRSTRLEN], *end;
    const char *colon = argc == 3 && !strcmp(argv[1], "--listen") ? strrchr(argv[2], ':') : NULL;
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

#endif
