/* starvation: one connection that says nothing (A) and one that floods the
 * server without ever reading (C) must not stop a third (B) from being
 * served. A server that blocks on A's read, blocks writing C's echo, or spins
 * on C would miss B's 2-second liveness bound. */
#include "support.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FLOOD_BYTES (10u << 20)
#define ROUND_TRIPS 200
#define MSG_LEN 100

/* Pushes as much of C's flood as the kernel takes now; returns bytes sent so far. */
static size_t flood(int fd, size_t sent)
{
    static char chunk[65536];
    while (sent < FLOOD_BYTES) {
        size_t n = FLOOD_BYTES - sent < sizeof chunk ? FLOOD_BYTES - sent : sizeof chunk;
        pattern_fill(3, sent, chunk, n);
        ssize_t w = send(fd, chunk, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (w < 0)
            FAIL("flooding client: send after %zu bytes: %s", sent, strerror(errno));
        sent += (size_t)w;
    }
    return sent;
}

static void silent_and_flooding_clients_starve_no_one(void)
{
    struct server s;
    server_start(ritual_program(), NULL, 0, &s);

    int a = tcp_connect(s.port); /* connects and stays silent */
    int c = tcp_connect(s.port); /* floods and never reads */
    size_t flooded = flood(c, 0);
    int b = tcp_connect(s.port);

    struct prng rng;
    prng_seed(&rng, 42);
    uint64_t worst = 0;
    for (int i = 0; i < ROUND_TRIPS; i++) {
        char msg[MSG_LEN];
        prng_fill(&rng, msg, sizeof msg);
        uint64_t start = now_ms();
        echo_roundtrip(b, msg, sizeof msg, 2000);
        if (now_ms() - start > worst)
            worst = now_ms() - start;
        flooded = flood(c, flooded);
    }
    note("%d round trips of %d bytes; slowest %llu ms; the flooder got %zu bytes in", ROUND_TRIPS,
         MSG_LEN, (unsigned long long)worst, flooded);

    /* The silent client was not forgotten either. */
    echo_roundtrip(a, "still here", 10, 2000);

    close(a);
    close(b);
    close(c);
    server_expect_clean_exit(&s);
}

TEST_CASES(CASE(silent_and_flooding_clients_starve_no_one))
