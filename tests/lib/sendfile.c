/* ritual_write_file: file segments queued between memory writes go out in
 * order with sendfile, through a slow reader; every segment's release runs
 * exactly once, whether it was sent, dropped by a reset, or refused because
 * the connection was closing. Three cases, each serving an 8 MiB file:
 *
 * - segments_in_order: the whole sequence arrives byte-exact and in order,
 *   then the connection closes cleanly.
 * - reset_mid_file: the peer resets mid-file; the queued segments are
 *   dropped and released.
 * - short_file_ends_with_eio: a file shorter than promised ends the
 *   connection with -EIO (the peer sees the bytes that exist, then a FIN)
 *   instead of a silently short response. */
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
static int close_reason;
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
    close_reason = reason;
    atomic_fetch_add(&closes, 1);
}

static int small_socket(void)
{
    int fd = tcp_connect(port);
    int size = 64 * 1024;
    SYSCHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size));
    return fd;
}

/* Reads until the stream ends, which must be by `end` (a FIN or a reset),
 * within 20 s; returns the bytes read. More than `cap` fails. */
static size_t read_to_end(int fd, char *buf, size_t cap, enum stream_end end)
{
    size_t got;
    int how = recv_to_end(fd, buf, cap, &got, 20000);
    if (how != (int)end)
        FAIL("the stream ended with %s after %zu bytes, expected %s",
             how == STREAM_EOF ? "a FIN" : "a reset", got, end == STREAM_EOF ? "a FIN" : "a reset");
    return got;
}

#define CAP (FILE_SIZE + 4096)

static ritual_loop *loop;
static char *buf, *want;        /* the client's: CAP bytes, and the file's */
static void (*client_fn)(void); /* the case's client */

/* The whole sequence, byte-exact and in order, then a FIN. */
static void reads_everything(void)
{
    int fd = small_socket();
    send_all(fd, "go\n", 3);
    size_t got = read_to_end(fd, buf, CAP, STREAM_EOF);
    ASSERT_EQ(got, 1 + (FILE_SIZE - 200) + 1 + 1000 + 1);
    ASSERT_EQ(buf[0], '[');
    ASSERT(memcmp(buf + 1, want + 100, FILE_SIZE - 200) == 0);
    ASSERT_EQ(buf[1 + FILE_SIZE - 200], ']');
    ASSERT(memcmp(buf + 2 + FILE_SIZE - 200, want, 1000) == 0);
    ASSERT_EQ(buf[got - 1], '!');
    close(fd);
}

/* Reads the first 1000 bytes, then resets. */
static void resets_mid_file(void)
{
    int fd = small_socket();
    send_all(fd, "gox\n", 4);
    recv_exact(fd, buf, 1000, 5000);
    ASSERT_EQ(buf[0], '[');
    ASSERT(memcmp(buf + 1, want + 100, 999) == 0);
    struct linger lg = {1, 0};
    SYSCHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    close(fd);
}

/* Asks for 1000 bytes from 10 before the file's end: gets those 10, then
 * the end of the stream. */
static void asks_past_the_end(void)
{
    int fd = small_socket();
    send_all(fd, "short\n", 6);
    size_t got = read_to_end(fd, buf, CAP, STREAM_EOF);
    ASSERT_EQ(got, 10);
    ASSERT(memcmp(buf, want + FILE_SIZE - 10, 10) == 0);
    close(fd);
}

static void stop(ritual_loop *l, void *arg)
{
    (void)arg;
    ritual_loop_stop(l);
}

/* Plays the peer, lets the server see the close, then stops the loop. */
static void *client(void *arg)
{
    (void)arg;
    client_fn();
    uint64_t deadline = now_ms() + 5000;
    while (now_ms() < deadline && atomic_load(&closes) < 1)
        sleep_ms(5);
    ASSERT_EQ(ritual_loop_post(loop, stop, NULL), 0);
    return NULL;
}

/* Serves one connection while `fn` plays the peer; the server's connection
 * must then have closed once, every segment released once. */
static void serve(void (*fn)(void))
{
    client_fn = fn;
    loop = lt_loop();
    note("backend %s", ritual_loop_backend_name(loop));
    ritual_listen_options opts = {.conn.write_high_watermark = 64 * 1024};
    ritual_conn_callbacks cbs = {.on_data = on_data, .on_close = on_close};
    port = ritual_listener_port(lt_listen(loop, &opts, &cbs));
    pthread_t t = lt_thread(client, NULL);
    lt_run(loop, 30000);
    lt_join(t);
    ASSERT_EQ(atomic_load(&closes), 1);
    ASSERT_EQ(released, queued_segments); /* every segment, exactly once */
    note("segments %d, released %d; close reason %s", queued_segments, released,
         ritual_strerror(close_reason));
    ritual_loop_free(loop);
}

static void segments_in_order(void)
{
    serve(reads_everything);
    ASSERT_EQ(close_reason, 0); /* sent, then closed cleanly */
}

static void reset_mid_file(void)
{
    serve(resets_mid_file);
    /* The reset is seen by a send (-EPIPE) or a receive (-ECONNRESET). */
    if (close_reason != -ECONNRESET && close_reason != -EPIPE)
        FAIL("closed with %s, expected a reset", ritual_strerror(close_reason));
}

static void short_file_ends_with_eio(void)
{
    serve(asks_past_the_end);
    ASSERT_EQ(close_reason, -EIO); /* the file ended early */
}

/* The file (its data is pattern SEED) and the client's buffers. */
static void make_file(void)
{
    char path[] = "/tmp/ritual-sendfile-XXXXXX";
    file_fd = SYSCHECK(mkstemp(path));
    SYSCHECK(unlink(path));
    want = malloc(FILE_SIZE);
    buf = malloc(CAP);
    ASSERT(want && buf);
    pattern_fill(SEED, 0, want, FILE_SIZE);
    ASSERT_EQ(write(file_fd, want, FILE_SIZE), (ssize_t)FILE_SIZE);
}

static void free_file(void)
{
    close(file_fd);
    free(want);
    free(buf);
}

TEST_CASES_WITH(make_file, free_file, CASE(segments_in_order), CASE(reset_mid_file),
                CASE(short_file_ends_with_eio))
