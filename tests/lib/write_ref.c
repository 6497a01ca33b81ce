/* ritual_write_ref: bytes written without a copy, each write's release
 * run exactly once, however the bytes leave.
 *
 * pieces_in_order: three refs and a plain write between them arrive in
 *   order; every release runs once; a ref over RITUAL_WRITE_REF_MAX and one
 *   after the close are refused, their release run all the same.
 * broadcast_to_readers_and_a_staller: 200 messages of 4 KiB, one buffer
 *   each with a reference count, written to three clients; two read, one
 *   never does and is aborted with its queue full of refs. Every message is
 *   freed exactly once and the readers get every byte in order. */
#include "libtest.h"

#include <errno.h>
#include <stdlib.h>
#include <poll.h>
#include <sys/socket.h>

#define SEED 0x52454600u

static ritual_loop *loop;
static int port;

static void count_release(void *arg)
{
    int *count = arg;
    (*count)++;
}

static size_t ignore(ritual_conn *conn, const char *bytes, size_t len)
{
    (void)conn;
    (void)bytes;
    return len;
}

/* ---------------------------------------------------------- pieces_in_order */

static int released[5];
static int too_big_rc, after_close_rc;

static void pieces_open(ritual_conn *conn)
{
    static const char hello[] = "hello ", ref[] = "ref ", world[] = "world\n";
    ASSERT_EQ(ritual_write_ref(conn, hello, 6, count_release, &released[0]), 0);
    ASSERT_EQ(ritual_write_ref(conn, ref, 4, count_release, &released[1]), 0);
    ASSERT_EQ(ritual_write(conn, "plain ", 6), 0);
    ASSERT_EQ(ritual_write_ref(conn, world, 6, count_release, &released[2]), 0);
    /* Refused before any byte is looked at. */
    too_big_rc = ritual_write_ref(conn, hello, (size_t)RITUAL_WRITE_REF_MAX + 1, count_release,
                                  &released[3]);
    ritual_conn_close(conn);
    after_close_rc = ritual_write_ref(conn, hello, 6, count_release, &released[4]);
}

static void pieces_close(ritual_conn *conn, int reason)
{
    (void)conn;
    ASSERT_EQ(reason, 0);
    ritual_loop_stop(loop);
}

static void *pieces_client(void *arg)
{
    (void)arg;
    int fd = tcp_connect(port);
    char got[64];
    size_t len;
    ASSERT_EQ(recv_to_end(fd, got, sizeof got, &len, 10000), STREAM_EOF);
    ASSERT_EQ(len, 22);
    ASSERT(memcmp(got, "hello ref plain world\n", 22) == 0);
    close(fd);
    return NULL;
}

static void pieces_in_order(void)
{
    loop = lt_loop();
    ritual_conn_callbacks cbs = {
        .on_open = pieces_open, .on_data = ignore, .on_close = pieces_close};
    port = ritual_listener_port(lt_listen(loop, NULL, &cbs));
    pthread_t t = lt_thread(pieces_client, NULL);
    lt_run(loop, 10000);
    lt_join(t);
    ASSERT_EQ(too_big_rc, -EINVAL);
    ASSERT_EQ(after_close_rc, -EPIPE);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(released[i], 1);
    ritual_loop_free(loop);
}

/* ----------------------------------------- broadcast_to_readers_and_a_staller */

#define CLIENTS 3
#define MESSAGES 200
#define MSG 4096

struct message {
    int refs;
    char bytes[MSG];
};

static ritual_conn *conns[CLIENTS];
static int opened, closes, freed, stalled_reason = 1;
static int stalled_port; /* the client port of the one that never reads */

static void message_release(void *arg)
{
    struct message *m = arg;
    ASSERT_GT(m->refs, 0); /* never released more often than written */
    if (--m->refs == 0) {
        free(m);
        freed++;
    }
}

static int peer_port(ritual_conn *conn)
{
    char peer[64];
    ASSERT_EQ(ritual_conn_peer(conn, peer, sizeof peer), 0);
    return atoi(strrchr(peer, ':') + 1);
}

static void broadcast(void)
{
    for (int i = 0; i < MESSAGES; i++) {
        struct message *m = malloc(sizeof *m);
        ASSERT(m != NULL);
        m->refs = CLIENTS;
        pattern_fill(SEED, (uint64_t)i * MSG, m->bytes, MSG);
        for (int c = 0; c < CLIENTS; c++)
            ASSERT_EQ(ritual_write_ref(conns[c], m->bytes, MSG, message_release, m), 0);
    }
    /* The one that reads nothing holds refs in its queue: cut it. */
    for (int c = 0; c < CLIENTS; c++) {
        if (ritual_conn_data(conns[c]) == &stalled_port) {
            ASSERT_GT(ritual_conn_write_queued(conns[c]), 0);
            ritual_conn_abort(conns[c]);
        }
    }
}

static void bc_open(ritual_conn *conn)
{
    /* A small kernel send buffer: what the staller does not read queues in
     * the library at once, refs and all. */
    int size = 16 * 1024;
    SYSCHECK(setsockopt(ritual_conn_fd(conn), SOL_SOCKET, SO_SNDBUF, &size, sizeof size));
    if (peer_port(conn) == stalled_port)
        ritual_conn_set_data(conn, &stalled_port); /* marked while the peer is known */
    conns[opened++] = conn;
    if (opened == CLIENTS && stalled_port != 0)
        broadcast();
}

static void bc_close(ritual_conn *conn, int reason)
{
    if (ritual_conn_data(conn) == &stalled_port)
        stalled_reason = reason;
    if (++closes == CLIENTS)
        ritual_loop_stop(loop);
}

static void *reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    size_t want = (size_t)MESSAGES * MSG;
    char *got = malloc(want);
    ASSERT(got != NULL);
    recv_exact(fd, got, want, 20000);
    ASSERT_EQ(pattern_mismatch(SEED, 0, got, want), want);
    free(got);
    close(fd);
    return NULL;
}

static void broadcast_to_readers_and_a_staller(void)
{
    loop = lt_loop();
    ritual_conn_callbacks cbs = {.on_open = bc_open, .on_data = ignore, .on_close = bc_close};
    port = ritual_listener_port(lt_listen(loop, NULL, &cbs));
    int stalled = tcp_connect_rcvbuf(port, 4096);
    stalled_port = socket_port(stalled);
    pthread_t readers[CLIENTS - 1];
    for (int i = 0; i < CLIENTS - 1; i++)
        readers[i] = lt_thread(reader, (void *)(intptr_t)tcp_connect(port));
    lt_run(loop, 30000);
    for (int i = 0; i < CLIENTS - 1; i++)
        lt_join(readers[i]);
    close(stalled);
    note("%s: %d messages to %d clients, one aborted with its queue full: %d freed",
         ritual_loop_backend_name(loop), MESSAGES, CLIENTS, freed);
    ASSERT_EQ(stalled_reason, -ECONNABORTED);
    ritual_loop_free(loop);
    ASSERT_EQ(freed, MESSAGES);
}

TEST_CASES(CASE(pieces_in_order), CASE(broadcast_to_readers_and_a_staller))
