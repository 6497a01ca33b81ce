/* What a hostile client can make `ritual http` hold stays bounded.
 *
 * pipelined_range_flood: four clients each pipeline 16 MiB of one-byte
 *   range requests for a 1 MB file (answered with sendfile) and never read.
 *   The input a connection holds stays within its read buffer, the excess
 *   waits in TCP, and work per request does not grow with the backlog: the
 *   server's memory hardly grows, it is idle once they stop, and a normal
 *   client is served. (On io_uring it held everything sent, 290 MiB, and
 *   spun both cores.)
 * large_listing: with --autoindex, 100 clients ask for the listing of a
 *   directory of 10,500 entries (2.5 MB of HTML) and read only its head.
 *   The listing is built once and sent from one in-memory file, so they
 *   cost a reference each, not a copy (it was 2.5 MB apiece), and it stops
 *   at 10,000 entries, saying so. */
#include "support.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MIB (1024 * 1024)

static long rss_growth_kb(const struct server *s, long base_kb)
{
    long now = proc_rss_kb(s->pid);
    return now > base_kb ? now - base_kb : 0;
}

static void pipelined_range_flood(void)
{
    char root[64];
    temp_dir_make(root, sizeof root);
    file_write_pattern_at(root, "big.bin", 7, 1000 * 1000);
    struct server s;
    http_server_start(ritual_program(), root, (const char *const[]){"--workers", "1", NULL}, &s);
    /* Warm up: the buffers a normal exchange uses. */
    struct http_response r;
    http_exchange(s.port, "GET /big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r,
                  5000);
    HTTP_EXPECT_STATUS(&r, 200);
    http_response_free(&r);
    long base = proc_rss_kb(s.pid);

    enum { CLIENTS = 4, EACH = 16 * MIB };
    static const char req[] = "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0\r\n\r\n";
    static char chunk[64 * 1024];
    size_t per_chunk = sizeof chunk / (sizeof req - 1) * (sizeof req - 1);
    for (size_t off = 0; off < per_chunk; off += sizeof req - 1)
        memcpy(chunk + off, req, sizeof req - 1);
    int fds[CLIENTS];
    size_t sent[CLIENTS] = {0};
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = tcp_connect_rcvbuf(s.port, 4096);
        set_nonblocking(fds[i], 1);
    }
    /* Send until all is sent, or the server has taken nothing for a
     * second (its connections full, the rest waiting in TCP). */
    long most = 0;
    uint64_t deadline = now_ms() + 20000, last_progress = now_ms();
    for (;;) {
        bool all = true, progress = false;
        for (int i = 0; i < CLIENTS; i++) {
            if (sent[i] >= EACH)
                continue;
            all = false;
            ssize_t n = send(fds[i], chunk, per_chunk, MSG_NOSIGNAL);
            if (n > 0) {
                sent[i] += (size_t)n;
                progress = true;
            } else if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
                sent[i] = EACH; /* the server closed it (max-requests reached): fine */
            } else if (n < 0 && errno != EAGAIN) {
                FAIL("client %d: send: %s", i, strerror(errno));
            }
        }
        long g = rss_growth_kb(&s, base);
        if (g > most)
            most = g;
        if (all || now_ms() > deadline)
            break;
        if (progress)
            last_progress = now_ms();
        else if (now_ms() - last_progress > 1000)
            break;
        else
            sleep_ms(1);
    }
    size_t total = 0;
    for (int i = 0; i < CLIENTS; i++)
        total += sent[i];
    double cpu = proc_cpu_percent(s.pid, 500, NULL);
    note("%zu MiB of requests sent; server RSS grew by at most %ld KiB; then %.1f%% CPU",
         total / MIB, most, cpu);
    if (most > 16 * 1024)
        FAIL("the server's RSS grew by %ld KiB under the flood", most);
    ASSERT_DBL_LT(cpu, 50.0); /* it spun at 100% */

    http_exchange(s.port, "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\n\r\n", &r, 5000);
    HTTP_EXPECT_STATUS(&r, 206);
    ASSERT_EQ(r.body_len, 10);
    http_response_free(&r);
    for (int i = 0; i < CLIENTS; i++)
        close(fds[i]);
    server_expect_clean_exit(&s);
    remove_tree(root);
}

static void large_listing(void)
{
    char root[64];
    temp_dir_make(root, sizeof root);
    dir_make_at(root, "many");
    enum { ENTRIES = 10500 };
    char name[160];
    for (int i = 0; i < ENTRIES; i++) {
        snprintf(name, sizeof name, "many/entry-%05d-%0100d.txt", i, 0);
        file_write_at(root, name, "", 0);
    }
    struct server s;
    http_server_start(ritual_program(), root,
                      (const char *const[]){"--autoindex", "--workers", "1", NULL}, &s);
    /* One client reads it all: the first 10,000 names, sorted, and the
     * note that there were more. */
    struct http_response r;
    http_exchange(s.port, "GET /many/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r, 10000);
    HTTP_EXPECT_STATUS(&r, 200);
    HTTP_EXPECT_FIELD(&r, "Content-Type", "text/html; charset=utf-8");
    size_t size = r.body_len;
    int listed = 0;
    for (const char *p = r.body; (p = strstr(p, "<li><a href=\"entry-")); p++)
        listed++;
    ASSERT_EQ(listed, 10000);
    ASSERT(strstr(r.body, "more entries than a listing shows") != NULL);
    http_response_free(&r);
    long base = proc_rss_kb(s.pid);

    enum { CLIENTS = 100 };
    int fds[CLIENTS];
    static const char get[] = "GET /many/ HTTP/1.1\r\nHost: t\r\n\r\n";
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = tcp_connect_rcvbuf(s.port, 4096);
        send_all(fds[i], get, sizeof get - 1);
    }
    /* Each has its answer under way: its head arrives. */
    for (int i = 0; i < CLIENTS; i++) {
        char head[256];
        recv_exact(fds[i], head, sizeof head, 10000);
        ASSERT(strncmp(head, "HTTP/1.1 200 ", 13) == 0);
    }
    long grew = rss_growth_kb(&s, base);
    note("a %zu-byte listing; %d clients that do not read it grew the server's RSS by %ld KiB",
         size, CLIENTS, grew);
    if (grew > 32 * 1024)
        FAIL("%d clients asking for a %zu-byte listing grew the RSS by %ld KiB", CLIENTS, size,
             grew);
    for (int i = 0; i < CLIENTS; i++)
        close(fds[i]);
    server_expect_clean_exit(&s);
    remove_tree(root);
}

TEST_CASES(CASE(pipelined_range_flood), CASE(large_listing))
