/* Backpressure by watermarks: a peer that sends without reading makes the
 * write queue pass the high watermark; the library then stops reading from
 * it (the loop no longer wakes for its input) until the queue drains below
 * the low watermark, says so through on_drain, and no byte is lost. */
#include "libtest.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#define HIGH (64 * 1024)
#define LOW (16 * 1024)
#define TOTAL (16 * 1024 * 1024)
#define SEED 7

enum { PHASE_SENDING, PHASE_STALLED, PHASE_CHECKED, PHASE_DONE };

static _Atomic int phase;
static int port;
static size_t stalled_at;

static ritual_conn *server_conn;
static size_t echoed, data_calls, drains, max_queued;

static size_t on_data(ritual_conn *conn, const char *bytes, size_t len)
{
    data_calls++;
    ASSERT_EQ(ritual_write(conn, bytes, len), 0);
    echoed += len;
    if (ritual_conn_write_queued(conn) > max_queued)
        max_queued = ritual_conn_write_queued(conn);
    return len;
}

/* Small kernel buffers on both ends, so the client stalls well before it has
 * sent everything, however far this kernel would autotune them. */
static void small_buffers(int fd)
{
    int size = 64 * 1024;
    SYSCHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size));
    SYSCHECK(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size));
}

static void on_open(ritual_conn *conn)
{
    server_conn = conn;
    small_buffers(ritual_conn_fd(conn));
}

static void on_drain(ritual_conn *conn)
{
    drains++;
    ASSERT_LE(ritual_conn_write_queued(conn), LOW);
}

/* The client: send without reading until the kernel pushes back for good,
 * wait for the server side to be checked, then read and write to the end. */
static void *client(void *arg)
{
    (void)arg;
    int fd = tcp_connect(port);
    small_buffers(fd);
    set_nonblocking(fd, 1);
    static char out[64 * 1024], in[64 * 1024];
    size_t sent = 0, received = 0;
    uint64_t last_progress = now_ms();
    while (now_ms() - last_progress < 300) {
        size_t n = TOTAL - sent < sizeof out ? TOTAL - sent : sizeof out;
        pattern_fill(SEED, sent, out, n);
        ssize_t w = send(fd, out, n, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            last_progress = now_ms();
        } else if (w < 0 && errno != EAGAIN) {
            FAIL("send: %s", strerror(errno));
        } else {
            sleep_ms(5);
        }
    }
    stalled_at = sent;
    phase = PHASE_STALLED;
    while (phase != PHASE_CHECKED) /* the loop's watchdog bounds this */
        sleep_ms(5);

    uint64_t deadline = now_ms() + 20000;
    while (received < TOTAL) {
        ASSERT_LT(now_ms(), deadline);
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < TOTAL ? POLLOUT : 0)};
        SYSCHECK(poll(&p, 1, 100));
        if ((p.revents & POLLOUT) && sent < TOTAL) {
            size_t n = TOTAL - sent < sizeof out ? TOTAL - sent : sizeof out;
            pattern_fill(SEED, sent, out, n);
            ssize_t w = send(fd, out, n, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN)
                FAIL("send: %s", strerror(errno));
            if (w > 0)
                sent += (size_t)w;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(fd, in, sizeof in, 0);
            if (r < 0 && errno == EAGAIN)
                continue;
            if (r == 0)
                FAIL("the server sent a FIN after %zu of %d bytes", received, TOTAL);
            if (r < 0)
                FAIL("recv after %zu of %d bytes: %s", received, TOTAL, strerror(errno));
            ASSERT_EQ(pattern_mismatch(SEED, received, in, (size_t)r), (size_t)r);
            received += (size_t)r;
        }
    }
    close(fd);
    phase = PHASE_DONE;
    return NULL;
}

static size_t calls_at_stall;

static void check(ritual_timer *t, void *data)
{
    ritual_loop *loop = data;
    if (phase == PHASE_STALLED) {
        if (calls_at_stall == 0) {
            /* Stalled: the queue passed the high watermark and reading stopped. */
            ASSERT(server_conn != NULL);
            note("client stalled after %zu bytes; server queue %zu bytes", stalled_at,
                 ritual_conn_write_queued(server_conn));
            /* On io_uring a send in flight completes only once all of it
             * is out, which may take the queue from above HIGH to between
             * the marks at once: reading stays stopped until it is below LOW. */
            bool uring = strcmp(ritual_loop_backend_name(loop), "io_uring") == 0;
            ASSERT_GT(ritual_conn_write_queued(server_conn), uring ? LOW : HIGH);
            ASSERT(server_conn->flags & CONN_OVER_HIGH);
            ASSERT_EQ(server_conn->io.events & RITUAL_IO_READ, 0);
            ASSERT_LT(stalled_at, TOTAL);
            calls_at_stall = data_calls;
            return;
        }
        /* ...and stays stopped: no input was handed over since. */
        ASSERT_EQ(data_calls, calls_at_stall);
        phase = PHASE_CHECKED;
    } else if (phase == PHASE_DONE) {
        ritual_timer_stop(t);
        ritual_loop_stop(loop);
    }
}

static void stall_above_high_resume_below_low(void)
{
    ritual_loop *loop = lt_loop();
    ritual_listen_options opts = {
        .conn = {.write_high_watermark = HIGH,
                 .write_low_watermark = LOW,
                 .read_buffer_size = 16 * 1024},
    };
    ritual_conn_callbacks cbs = {.on_open = on_open, .on_data = on_data, .on_drain = on_drain};
    ritual_listener *l = lt_listen(loop, &opts, &cbs);
    port = ritual_listener_port(l);

    ritual_timer *checker = ritual_timer_new(loop, check, loop);
    ASSERT(checker != NULL);
    ASSERT_EQ(ritual_timer_start(checker, 50, 50), 0);
    pthread_t t = lt_thread(client, NULL);
    lt_run(loop, 30000);
    lt_join(t);

    note("echoed %zu bytes in %zu on_data calls; %zu drains; queue peaked at %zu bytes", echoed,
         data_calls, drains, max_queued);
    ASSERT_EQ(echoed, TOTAL);
    ASSERT_GE(drains, 1);
    /* The queue can pass HIGH by at most one read's worth. */
    ASSERT_LE(max_queued, HIGH + 16 * 1024);
    ritual_loop_free(loop);
}

TEST_CASES(CASE(stall_above_high_resume_below_low))
