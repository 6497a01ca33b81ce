/* http_shutdown: SIGTERM drains. A 64 MiB download under way when the
 * signal comes completes byte-exact; idle keep-alive connections close at
 * once, while one that has not asked anything yet gets its first request
 * answered; new connections are refused; the server exits 0 once the download
 * is done, not before. A client that stops reading is cut at the
 * --drain-timeout, and a second SIGTERM stops the server at once (exit 1:
 * responses were cut). */
#include "support.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TIMEOUT 5000
#define BIG_SIZE (64u << 20)
#define BIG_SEED 51
#define CHUNK (1u << 20)

static char root[64];

static void make_tree(void)
{
    temp_dir_make(root, sizeof root);
    file_write_at(root, "hello.txt", "hello, world\n", 13);
    file_write_pattern_at(root, "big.bin", BIG_SEED, BIG_SIZE);
}

static void remove_root(void)
{
    remove_tree(root);
}

/* Reads body bytes up to `goal`, checking them; a 20 ms pause after each
 * MiB keeps the reader steady rather than fast. */
static void read_body(struct http_client *c, uint64_t *got, uint64_t goal)
{
    static char buf[CHUNK];
    uint64_t next_pause = (*got / CHUNK + 1) * CHUNK;
    while (*got < goal) {
        size_t want = goal - *got < CHUNK ? (size_t)(goal - *got) : CHUNK;
        size_t n = http_client_recv(c, buf, want, TIMEOUT);
        if (n == 0)
            FAIL("the download ended after %llu of %u bytes", (unsigned long long)*got, BIG_SIZE);
        size_t bad = pattern_mismatch(BIG_SEED, *got, buf, n);
        if (bad != n)
            FAIL("the download differs at byte %llu", (unsigned long long)(*got + bad));
        *got += n;
        if (*got >= next_pause) {
            struct pollfd p = {.fd = c->fd, .events = 0};
            (void)poll(&p, 1, 20); /* the reader's pace */
            next_pause += CHUNK;
        }
    }
}

/* Connects until refused (at most 2 s): the listener is closed. */
static void expect_refused(int port)
{
    uint64_t start = now_ms();
    while (!tcp_refused(port)) {
        if (now_ms() - start > 2000)
            FAIL("connections still accepted 2 s after SIGTERM");
        sleep_ms(10); /* the workers close their listeners on their own */
    }
}

/* The bytes waiting unread in the server's socket for the connection from
 * `peer_port` to `port` (the rx_queue column of /proc/net/tcp); -1 if it is
 * not listed. */
static long server_unread(int port, int peer_port)
{
    FILE *f = fopen("/proc/net/tcp", "re");
    ASSERT(f != NULL);
    char line[512];
    long unread = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned local, remote;
        unsigned long rx;
        if (sscanf(line, " %*d: %*x:%x %*x:%x %*x %*x:%lx", &local, &remote, &rx) == 3 &&
            (int)local == port && (int)remote == peer_port)
            unread = (long)rx;
    }
    fclose(f);
    return unread;
}

/* Waits until the server has read everything `c` sent (at most 2 s). */
static void wait_read_by_server(int port, struct http_client *c)
{
    int peer = socket_port(c->fd);
    uint64_t start = now_ms();
    while (server_unread(port, peer) != 0) {
        if (now_ms() - start > 2000)
            FAIL("the server has not read what was sent within 2 s");
        sleep_ms(5); /* sampling /proc: there is nothing to wait on */
    }
}

static void download_completes_during_drain(void)
{
    struct server s;
    http_server_start(ritual_program(), root, NULL, &s);

    struct http_client *idle = http_client_open(s.port);
    http_send(idle, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    struct http_response r;
    ASSERT(http_read_response(idle, &r, 0, TIMEOUT));
    HTTP_EXPECT_STATUS(&r, 200);
    http_response_free(&r);

    struct http_client *c = http_client_open(s.port);
    http_send(c, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT(http_read_head(c, &r, TIMEOUT));
    HTTP_EXPECT_STATUS(&r, 200);
    ASSERT_EQ(r.content_length, BIG_SIZE);
    uint64_t got = 0;
    read_body(c, &got, 8u << 20);

    /* A client halfway through a head when the signal comes. */
    struct http_client *half = http_client_open(s.port);
    http_send(half, "GET /hello.txt HTTP/1.1\r\nHo");
    wait_read_by_server(s.port, half);
    /* And one connected that has sent nothing yet: its client is about to
     * ask, and must be answered, not cut; one that never asks (a
     * preconnect) is closed after a second, not at the drain deadline. */
    struct http_client *fresh = http_client_open(s.port);
    struct http_client *mute = http_client_open(s.port);

    SYSCHECK(kill(s.pid, SIGTERM));
    uint64_t signalled = now_ms();
    http_expect_eof(idle, 2000);
    note("SIGTERM: the idle keep-alive connection closed after %llu ms",
         (unsigned long long)(now_ms() - signalled));
    http_client_close(idle);
    /* The drain has begun: the silent one asks now, within its second. */
    http_send(fresh, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_refused(s.port);

    /* The half-sent request, kept open through the signal, is answered
     * with Connection: close once complete. */
    http_send(half, "st: x\r\n\r\n");
    int half_answered = http_read_response(half, &r, 0, TIMEOUT);
    if (half_answered) {
        HTTP_EXPECT_STATUS(&r, 200);
        HTTP_EXPECT_FIELD(&r, "Connection", "close");
        http_response_free(&r);
        http_expect_eof(half, TIMEOUT);
    }
    http_client_close(half);
    note("a head half-sent at SIGTERM, then completed: %s",
         half_answered ? "answered with Connection: close" : "closed WITHOUT an answer");
    ASSERT(http_read_response(fresh, &r, 0, TIMEOUT));
    /* Answered: with Connection: close if the drain had begun when it
     * asked, else as a keep-alive connection the drain then closes. */
    HTTP_EXPECT_STATUS(&r, 200);
    http_response_free(&r);
    http_expect_eof(fresh, TIMEOUT);
    http_client_close(fresh);
    note("a connection silent until after SIGTERM: its first request answered, then closed");
    http_expect_eof(mute, 5000);
    uint64_t mute_closed = now_ms() - signalled;
    http_client_close(mute);
    note("a connection that never asked: closed %llu ms after SIGTERM",
         (unsigned long long)mute_closed);
    ASSERT_GE(mute_closed, 900); /* it had its second */

    read_body(c, &got, BIG_SIZE / 2);
    ASSERT(!server_wait(&s, 0)); /* still draining */
    read_body(c, &got, BIG_SIZE);
    uint64_t done = now_ms();
    note("the download went on after SIGTERM: all 64 MiB byte-exact, %llu ms after the signal",
         (unsigned long long)(done - signalled));
    http_response_free(&r);

    /* Its response complete, the connection has nothing left to do: the
     * server closes it and exits, well before the 10 s drain deadline. */
    http_expect_eof(c, 15000);
    uint64_t closed = now_ms() - done;
    http_client_close(c);
    int exited = server_wait(&s, 5000);
    note("the connection closed %llu ms after the body; the server %s %llu ms after it",
         (unsigned long long)closed, exited ? "exited" : "still ran",
         (unsigned long long)(now_ms() - done));
    ASSERT(exited);
    server_expect_clean_exit(&s);
    /* Checked last, so that the case above runs whole either way: a
     * finished connection has nothing left to drain, and a head completed
     * during the drain is a request like any other. */
    if (closed > 2000 || !half_answered)
        FAIL("during the drain: %s%s%s",
             closed > 2000 ? "the connection of a finished response stayed open until the "
                             "drain deadline"
                           : "",
             closed > 2000 && !half_answered ? "; " : "",
             half_answered ? "" : "a request half-sent at SIGTERM was never answered");
}

/* A client that stops reading: the drain deadline cuts it. */
static void stalled_client_cut_at_drain_timeout(void)
{
    struct server s;
    http_server_start(ritual_program(), root, (const char *const[]){"--drain-timeout", "1", NULL},
                      &s);
    struct http_client *c = http_client_open(s.port);
    http_send(c, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    struct http_response r;
    ASSERT(http_read_head(c, &r, TIMEOUT));
    HTTP_EXPECT_STATUS(&r, 200);
    SYSCHECK(kill(s.pid, SIGTERM));
    uint64_t signalled = now_ms();
    if (!server_wait(&s, 5000))
        FAIL("--drain-timeout 1: the server still runs 5 s after SIGTERM");
    uint64_t took = now_ms() - signalled;
    ASSERT(WIFEXITED(s.status));
    note("--drain-timeout 1 with a stalled client: exit code %d after %llu ms",
         WEXITSTATUS(s.status), (unsigned long long)took);
    ASSERT_GE(took, 900);
    ASSERT_LE(took, 3000);
    server_expect_exit(&s, 0);
    http_response_free(&r);
    http_client_close(c);
}

/* A second SIGTERM stops at once; the cut responses make it exit 1. */
static void second_sigterm_stops_at_once(void)
{
    struct server s;
    http_server_start(ritual_program(), root, NULL, &s);
    struct http_client *c = http_client_open(s.port);
    http_send(c, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    struct http_response r;
    ASSERT(http_read_head(c, &r, TIMEOUT));
    HTTP_EXPECT_STATUS(&r, 200); /* a response under way, to be cut */
    SYSCHECK(kill(s.pid, SIGTERM));
    /* The first signal is being handled once idle connections close; a
     * fresh one shows that without sleeping. */
    expect_refused(s.port);
    SYSCHECK(kill(s.pid, SIGTERM));
    uint64_t signalled = now_ms();
    if (!server_wait(&s, 2000))
        FAIL("a second SIGTERM did not stop the server within 2 s");
    note("a second SIGTERM: exit after %llu ms", (unsigned long long)(now_ms() - signalled));
    server_expect_exit(&s, 1);
    http_response_free(&r);
    http_client_close(c);
}

TEST_CASES_WITH(make_tree, remove_root, CASE(stalled_client_cut_at_drain_timeout),
                CASE(second_sigterm_stops_at_once), CASE(download_completes_during_drain))
