/* Input held for a connection never passes read_buffer_size, on every
 * backend. The server answers a pipeline of small requests as an HTTP
 * server answers ranges of a file (a few header bytes, then a file segment
 * sent with sendfile) and, as HTTP does, leaves the rest of the pipeline
 * unread while an answer is still queued. The client pipelines 4 MiB of
 * requests, reading no answer until everything is full, then reading them
 * all.
 * Each time reading stops and resumes, a completion backend must not take
 * more from the socket than the room left; the excess waits in TCP. And a
 * pipeline taken one request at a time costs no copy of the rest per
 * request, so this finishes in well under the timeout. */
#include "libtest.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_HELD (64 * 1024) /* read_buffer_size */
#define REQ 64               /* bytes per request */
#define TOTAL (4 << 20)      /* of requests */
#define HEAD "answer: 1 byte follows\n"

struct world {
    ritual_loop *loop;
    int port;
    int file_fd;
    ritual_conn *conn;
    size_t answered;
    size_t waits;     /* on_data calls that left requests for later */
    size_t most_held; /* the largest input the connection held */
    size_t most_given;
    _Atomic int client_done;
};

static struct world w;

static size_t held(const ritual_conn *conn)
{
    return conn->in ? conn->in->len : 0;
}

static void see(const ritual_conn *conn)
{
    size_t h = held(conn);
    if (h > w.most_held)
        w.most_held = h;
    if (h > MAX_HELD)
        FAIL("the connection holds %zu bytes of input, more than read_buffer_size (%d)", h,
             MAX_HELD);
}

static size_t on_data(ritual_conn *conn, const char *bytes, size_t len)
{
    see(conn);
    if (len > w.most_given)
        w.most_given = len;
    ASSERT_LE(len, MAX_HELD);
    size_t used = 0;
    /* While an answer waits in the queue, the rest of the pipeline waits. */
    while (len - used >= REQ && ritual_conn_write_queued(conn) == 0) {
        ASSERT_EQ(bytes[used], 'R');
        ASSERT_EQ(ritual_write(conn, HEAD, sizeof HEAD - 1), 0);
        ASSERT_EQ(ritual_write_file(conn, w.file_fd, 0, 1, NULL, NULL), 0);
        used += REQ;
        w.answered++;
    }
    w.waits += len - used >= REQ;
    return used;
}

static void on_open(ritual_conn *conn)
{
    w.conn = conn;
    int size = 16 * 1024; /* with the client's, room for few answers */
    SYSCHECK(setsockopt(ritual_conn_fd(conn), SOL_SOCKET, SO_SNDBUF, &size, sizeof size));
}

static void on_close(ritual_conn *conn, int reason)
{
    (void)conn;
    if (reason != 0)
        FAIL("the server's connection closed: %s", ritual_strerror(reason));
    w.conn = NULL;
}

static void on_eof(ritual_conn *conn)
{
    ritual_conn_close(conn);
}

/* First sends requests without reading answers until everything is full
 * (the answers in its socket, the server's queue, the requests in the
 * server's socket and its own); then reads the answers while it sends the
 * rest, until all are answered. */
static void *client(void *arg)
{
    (void)arg;
    /* Room for few answers: the server's queue soon backs up. */
    int fd = tcp_connect_rcvbuf(w.port, 16 * 1024);
    set_nonblocking(fd, 1);
    static char req[REQ * 1024], in[1 << 16];
    memset(req, 'R', sizeof req);
    const size_t answer = sizeof HEAD - 1 + 1;
    size_t sent = 0, received = 0;
    bool reading = false;
    uint64_t deadline = now_ms() + 60000, last_progress = now_ms();
    while (received < (size_t)TOTAL / REQ * answer) {
        if (now_ms() > deadline)
            FAIL("client: %zu of %d bytes sent, %zu bytes of answers", sent, TOTAL, received);
        if (!reading && (sent == TOTAL || now_ms() - last_progress > 200)) {
            note("client: %zu bytes of requests sent before the server stopped taking them", sent);
            reading = true;
        }
        short events = (short)((reading ? POLLIN : 0) | (sent < TOTAL ? POLLOUT : 0));
        struct pollfd p = {.fd = fd, .events = events};
        SYSCHECK(poll(&p, 1, 10));
        if ((p.revents & POLLOUT) && sent < TOTAL) {
            size_t n = TOTAL - sent < sizeof req ? TOTAL - sent : sizeof req;
            ssize_t k = send(fd, req, n, MSG_NOSIGNAL);
            if (k < 0 && errno != EAGAIN)
                FAIL("send: %s", strerror(errno));
            if (k > 0) {
                sent += (size_t)k;
                last_progress = now_ms();
            }
        }
        if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
            ssize_t k = recv(fd, in, sizeof in, 0);
            if (k < 0 && errno == EAGAIN)
                continue;
            if (k == 0)
                FAIL("client: the server sent a FIN after %zu bytes of answers", received);
            if (k < 0)
                FAIL("client: recv after %zu bytes of answers: %s", received, strerror(errno));
            received += (size_t)k;
        }
    }
    close(fd);
    w.client_done = 1;
    return NULL;
}

static void tick(ritual_timer *t, void *data)
{
    (void)data;
    if (w.conn)
        see(w.conn);
    if (w.client_done && !w.conn) {
        ritual_timer_stop(t);
        ritual_loop_stop(w.loop);
    }
}

static void held_input_within_read_buffer_size(void)
{
    w.loop = lt_loop();
    note("backend %s", ritual_loop_backend_name(w.loop));
    char dir[64];
    temp_dir_make(dir, sizeof dir);
    file_write_at(dir, "one", "x", 1);
    char path[128];
    snprintf(path, sizeof path, "%s/one", dir);
    w.file_fd = SYSCHECK(open(path, O_RDONLY | O_CLOEXEC));

    ritual_listen_options opts = {.conn.read_buffer_size = MAX_HELD};
    ritual_conn_callbacks cbs = {
        .on_open = on_open, .on_data = on_data, .on_eof = on_eof, .on_close = on_close};
    ritual_listener *l = lt_listen(w.loop, &opts, &cbs);
    w.port = ritual_listener_port(l);
    ritual_timer *t = ritual_timer_new(w.loop, tick, NULL);
    ASSERT(t != NULL);
    ASSERT_EQ(ritual_timer_start(t, 1, 1), 0);
    uint64_t start = now_ms();
    pthread_t th = lt_thread(client, NULL);
    lt_run(w.loop, 90000);
    lt_join(th);
    note("%zu requests answered in %llu ms; %zu times the rest waited; the input held peaked at "
         "%zu bytes, on_data was given at most %zu",
         w.answered, (unsigned long long)(now_ms() - start), w.waits, w.most_held, w.most_given);
    ASSERT_GT(w.waits, 0); /* the story is about a pipeline that waits */
    ASSERT_EQ(w.answered, (size_t)TOTAL / REQ);
    ritual_timer_free(t);
    ritual_loop_free(w.loop);
    close(w.file_fd);
    remove_tree(dir);
}

TEST_CASES(CASE(held_input_within_read_buffer_size))
