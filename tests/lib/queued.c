/* What is queued means the same on every backend: output the kernel has
 * not taken. Two cases.
 *
 * - small_writes_taken_at_once (story 1): a connection whose peer reads
 *   writes 8 KiB in 80 small writes from one on_data, far less than any
 *   socket buffer holds: the kernel takes them as they come (io_uring sends
 *   them with the turn's batch, which must change nothing the user can
 *   see). Nothing is ever queued, no on_drain follows, a write_limit and a
 *   high watermark of 4 KiB are never reached, and reading does not stop.
 * - refused_writes_queued (story 2): a connection whose peer does not read
 *   writes 1 MiB in small writes: whatever the backend, all but what the
 *   socket buffers hold is queued, reading stops above the high watermark,
 *   and on_drain comes once the peer has read it all. */
#include "libtest.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#define SMALL 100
#define STORY1_WRITES 80 /* 8,000 bytes */
#define LIMIT 4096       /* story 1's write_limit and high watermark */
#define STORY2_BYTES (1 << 20)
#define SOCKET_ROOM (512 * 1024) /* far more than the socket buffers of story 2 hold */

struct story {
    int number;
    int port;
    ritual_conn *conn;
    size_t most_queued;
    size_t queued_after; /* after the last write */
    int drains;
    int closes, reason;
    int read_stopped; /* over the high watermark at some point */
    _Atomic int server_wrote;
    _Atomic int client_done;
};

static struct story story;
static ritual_loop *loop;

static struct story *story_of(ritual_conn *conn)
{
    return ritual_listener_data(ritual_conn_listener(conn));
}

static void see_queue(struct story *s, ritual_conn *conn)
{
    size_t q = ritual_conn_write_queued(conn);
    if (q > s->most_queued)
        s->most_queued = q;
    if (conn->flags & CONN_OVER_HIGH)
        s->read_stopped = 1;
}

/* On the first byte, the story's writes. */
static size_t on_data(ritual_conn *conn, const char *bytes, size_t len)
{
    (void)bytes;
    struct story *s = story_of(conn);
    if (s->server_wrote)
        return len;
    char line[SMALL];
    memset(line, 'a' + s->number, sizeof line);
    size_t writes = s->number == 1 ? STORY1_WRITES : STORY2_BYTES / SMALL;
    for (size_t i = 0; i < writes; i++) {
        int rc = ritual_write(conn, line, sizeof line);
        if (rc != 0)
            FAIL("story %d: write %zu of %zu: %s", s->number, i + 1, writes, ritual_strerror(rc));
        see_queue(s, conn);
    }
    s->queued_after = ritual_conn_write_queued(conn);
    s->server_wrote = 1;
    return len;
}

static void on_open(ritual_conn *conn)
{
    story_of(conn)->conn = conn;
    if (story_of(conn)->number == 2) {
        int size = 16 * 1024;
        SYSCHECK(setsockopt(ritual_conn_fd(conn), SOL_SOCKET, SO_SNDBUF, &size, sizeof size));
    }
}

static void on_drain(ritual_conn *conn)
{
    struct story *s = story_of(conn);
    s->drains++;
    ASSERT_LE(ritual_conn_write_queued(conn), 64 * 1024); /* story 2's low watermark */
}

static void on_close(ritual_conn *conn, int reason)
{
    struct story *s = story_of(conn);
    s->closes++;
    s->reason = reason;
    s->conn = NULL;
}

/* Reads the `want` bytes of the story's writes; an end of the stream before
 * them (a FIN or a reset: it says which) or 10 s without them fails. */
static void read_all(int fd, size_t want, int number)
{
    static char buf[1 << 16];
    size_t got = 0;
    uint64_t deadline = now_ms() + 10000;
    while (got < want) {
        if (!wait_fd(fd, POLLIN, deadline))
            FAIL("story %d: %zu of %zu bytes arrived", number, got, want);
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0)
            FAIL("story %d: the server sent a FIN after %zu of %zu bytes", number, got, want);
        if (n < 0)
            FAIL("story %d: recv after %zu of %zu bytes: %s", number, got, want, strerror(errno));
        for (ssize_t i = 0; i < n; i++)
            ASSERT_EQ(buf[i], 'a' + number);
        got += (size_t)n;
    }
}

/* Story 1's peer: reads all along. */
static void *reading_client(void *arg)
{
    (void)arg;
    int fd = tcp_connect(story.port);
    send_all(fd, "go", 2);
    read_all(fd, STORY1_WRITES * SMALL, 1);
    close(fd);
    story.client_done = 1;
    return NULL;
}

/* Story 2's peer: does not read until the server has written everything. */
static void *stalling_client(void *arg)
{
    (void)arg;
    int fd = tcp_connect_rcvbuf(story.port, 16 * 1024);
    send_all(fd, "go", 2);
    uint64_t deadline = now_ms() + 10000;
    while (!story.server_wrote) {
        if (now_ms() > deadline)
            FAIL("story 2: the server did not write within 10 s");
        sleep_ms(1);
    }
    read_all(fd, STORY2_BYTES / SMALL * SMALL, 2);
    close(fd);
    story.client_done = 1;
    return NULL;
}

static void tick(ritual_timer *t, void *data)
{
    (void)data;
    if (story.number == 1 && story.conn)
        see_queue(&story, story.conn);
    if (story.client_done && story.closes > 0) {
        ritual_timer_stop(t);
        ritual_loop_stop(loop);
    }
}

/* Listens with `opts` and runs the loop while `client` plays the peer,
 * until the client is done and the server's connection has closed. */
static void run_story(int number, ritual_listen_options opts, void *(*client)(void *))
{
    story.number = number;
    loop = lt_loop();
    note("backend %s", ritual_loop_backend_name(loop));
    opts.data = &story;
    ritual_conn_callbacks cbs = {
        .on_open = on_open, .on_data = on_data, .on_drain = on_drain, .on_close = on_close};
    story.port = ritual_listener_port(lt_listen(loop, &opts, &cbs));
    ritual_timer *t = ritual_timer_new(loop, tick, NULL);
    ASSERT(t != NULL);
    ASSERT_EQ(ritual_timer_start(t, 1, 1), 0);
    pthread_t th = lt_thread(client, NULL);
    lt_run(loop, 30000);
    lt_join(th);
    ritual_timer_free(t);
    ritual_loop_free(loop);
}

static void small_writes_taken_at_once(void)
{
    run_story(
        1, (ritual_listen_options){.conn = {.write_limit = LIMIT, .write_high_watermark = LIMIT}},
        reading_client);
    note("most queued %zu bytes, %d drains, reading stopped: %s", story.most_queued, story.drains,
         story.read_stopped ? "yes" : "no");
    ASSERT_EQ(story.closes, 1);
    ASSERT_EQ(story.reason, 0); /* not -ENOBUFS: nothing counted against write_limit */
    ASSERT_EQ(story.most_queued, 0);
    ASSERT_EQ(story.drains, 0);
    ASSERT_EQ(story.read_stopped, 0);
}

static void refused_writes_queued(void)
{
    run_story(2, (ritual_listen_options){.conn.write_high_watermark = 256 * 1024}, stalling_client);
    note("%zu of %d bytes queued after the writes, %d drains", story.queued_after, STORY2_BYTES,
         story.drains);
    ASSERT_EQ(story.closes, 1);
    ASSERT_EQ(story.reason, 0);
    ASSERT_GE(story.queued_after, STORY2_BYTES - SOCKET_ROOM);
    ASSERT_GE(story.drains, 1);
    ASSERT(story.read_stopped);
}

TEST_CASES(CASE(small_writes_taken_at_once), CASE(refused_writes_queued))
