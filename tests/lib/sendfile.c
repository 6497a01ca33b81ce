/* ritual_write_file: file segments queued between memory writes go out in
 * order with sendfile, through a slow reader; every segment's release runs
 * exactly once, whether it was sent, dropped by a reset, or refused because
 * the connection was closing; a file shorter than promised ends the
 * connection with -EIO instead of a silently short response. */
#include "libtest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define FILE_SIZE (8u << 20)
#define SEED 11

static int file_fd, port;
static int released, queued_segments;
static int last_reason[8];
static _Atomic int closes;

static void release(void *arg)
{
    ASSERT_EQ((intptr_t)arg, 42);
    released++;
}

/* "go\n" (must all succeed) or "gox\n" (the client resets meanwhile, so
 * any step may fail): "[" file[100 .. size-100) "]" file[0 .. 1000) "!" */
static void send_sequence(ritual_conn *conn, bool strict)
{
    int rc[5];
    rc[0] = ritual_write(conn, "[", 1);
    rc[1] = ritual_write_file(conn, file_fd, 100, FILE_SIZE - 200, release, (void *)42);
    rc[2] = ritual_write(conn, "]", 1);
    rc[3] = ritual_write_file(conn, file_fd, 0, 1000, release, (void *)42);
    rc[4] = ritual_write(conn, "!", 1);
    queued_segments += 2; /* released in every case, failed or not */
    for (int i = 0; strict && i < 5; i++)
        ASSERT_EQ(rc[i], 0);
    for (int i = 0; i < 5; i++)
        ASSERT(rc[i] == 0 || rc[i] == -EPIPE || rc[i] == -ECONNRESET);
}

static size_t on_data(ritual_conn *conn, const char *bytes, size_t len)
{
    if (len >= 3 && memcmp(bytes, "go", 2) == 0) {
        send_sequence(conn, bytes[2] == '\n');
        ritual_conn_close(conn);
        /* Closing: refused, and released at once. */
        int before = released;
        ASSERT_EQ(ritual_write_file(conn, file_fd, 0, 10, release, (void *)42), -EPIPE);
        ASSERT_EQ(released, before + 1);
        queued_segments++;
    } else if (len >= 6 && memcmp(bytes, "short\n", 6) == 0) {
        /* 10 bytes exist: they go out, then the connection ends with -EIO
         * (here at once, as the socket takes them without waiting). */
        int rc = ritual_write_file(conn, file_fd, FILE_SIZE - 10, 1000, release, (void *)42);
        ASSERT(rc == 0 || rc == -EIO);
        queued_segments++;
    }
    return len;
}

static void on_close(ritual_conn *conn, int reason)
{
    (void)conn;
    /* Released before on_close, even with a send still in the kernel
     * (io_uring): the user may free what `arg` points to here. */
    ASSERT_EQ(released, queued_segments);
    last_reason[atomic_load(&closes) % 8] = reason;
    atomic_fetch_add(&closes, 1);
}

static int small_socket(void)
{
    int fd = tcp_connect(port);
    int size = 64 * 1024;
    SYSCHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size));
    return fd;
}

static size_t read_to_eof(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    uint64_t deadline = now_ms() + 20000;
    while (now_ms() < deadline) {
        ssize_t n = recv(fd, buf + got, cap - got, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return got;
        if (n < 0 && errno == EINTR)
            continue;
        SYSCHECK(n);
        got += (size_t)n;
        if (got == cap)
            FAIL("more bytes than expected");
    }
    FAIL("no EOF within 20 s");
}

static ritual_loop *loop;

static void stop(ritual_loop *l, void *arg)
{
    (void)arg;
    ritual_loop_stop(l);
}

static void *client(void *arg)
{
    (void)arg;
    size_t cap = FILE_SIZE + 4096;
    char *buf = malloc(cap), *want = malloc(FILE_SIZE);
    ASSERT(buf && want);
    pattern_fill(SEED, 0, want, FILE_SIZE);

    /* 1. The whole sequence, byte-exact and in order. */
    int fd = small_socket();
    send_all(fd, "go\n", 3);
    size_t got = read_to_eof(fd, buf, cap);
    ASSERT_EQ(got, 1 + (FILE_SIZE - 200) + 1 + 1000 + 1);
    ASSERT_EQ(buf[0], '[');
    ASSERT(memcmp(buf + 1, want + 100, FILE_SIZE - 200) == 0);
    ASSERT_EQ(buf[1 + FILE_SIZE - 200], ']');
    ASSERT(memcmp(buf + 2 + FILE_SIZE - 200, want, 1000) == 0);
    ASSERT_EQ(buf[got - 1], '!');
    close(fd);

    /* 2. Reset mid-file: the queued segments are dropped and released. */
    fd = small_socket();
    send_all(fd, "gox\n", 4);
    recv_exact(fd, buf, 1000, 5000);
    struct linger lg = {1, 0};
    SYSCHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    close(fd);

    /* 3. A file shorter than promised: 10 bytes, then the connection ends. */
    fd = small_socket();
    send_all(fd, "short\n", 6);
    got = read_to_eof(fd, buf, cap);
    ASSERT_EQ(got, 10);
    ASSERT(memcmp(buf, want + FILE_SIZE - 10, 10) == 0);
    close(fd);

    /* Let the server see the last close before stopping it. */
    uint64_t deadline = now_ms() + 5000;
    while (now_ms() < deadline && atomic_load(&closes) < 3)
        sleep_ms(5);
    ASSERT_EQ(ritual_loop_post(loop, stop, NULL), 0);
    free(buf);
    free(want);
    return NULL;
}

int main(void)
{
    char path[] = "/tmp/ritual-sendfile-XXXXXX";
    file_fd = SYSCHECK(mkstemp(path));
    SYSCHECK(unlink(path));
    char *data = malloc(FILE_SIZE);
    ASSERT(data);
    pattern_fill(SEED, 0, data, FILE_SIZE);
    ASSERT_EQ(write(file_fd, data, FILE_SIZE), (ssize_t)FILE_SIZE);
    free(data);

    loop = lt_loop();
    ritual_listen_options opts = {.conn.write_high_watermark = 64 * 1024};
    ritual_conn_callbacks cbs = {.on_data = on_data, .on_close = on_close};
    ritual_listener *l = lt_listen(loop, &opts, &cbs);
    port = ritual_listener_port(l);
    pthread_t t = lt_thread(client, NULL);
    lt_run(loop, 30000);
    pthread_join(t, NULL);

    ASSERT_EQ(atomic_load(&closes), 3);
    ASSERT_EQ(last_reason[0], 0);         /* sent, then closed cleanly */
    ASSERT_NE(last_reason[1], 0);         /* reset mid-file */
    ASSERT_EQ(last_reason[2], -EIO);      /* the file ended early */
    ASSERT_EQ(released, queued_segments); /* every segment, exactly once */
    note("segments %d, released %d; reset reason %s", queued_segments, released,
         ritual_strerror(last_reason[1]));
    ritual_loop_free(loop);
    close(file_fd);
    return 0;
}
