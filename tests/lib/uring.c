/* The io_uring backend's hard cases, told on whatever backend the run picks
 * (auto, or RITUAL_BACKEND=epoll|poll): the behaviour must hold on all of
 * them; what only io_uring has (the provided buffer ring, operations held
 * by the kernel) is asserted when the loop runs on io_uring.
 *
 * ring_runs_dry: 1,000 clients connect, then each sends 32 KiB at once;
 *   every byte comes back to its own client, each connection closes
 *   exactly once (reason 0, after the client's FIN), and on io_uring the
 *   ring grew, doubling, as the log says.
 * close_in_flight: sends stuck in the kernel (a client that never reads)
 *   and receives armed (a client that says nothing) are aborted, closed
 *   (cut after close_timeout_ms) or left open for ritual_loop_free; a
 *   listener closes with its accept armed. Each on_close runs once with its
 *   reason, the clients see the reset or the end of stream, no descriptor
 *   is left behind, and ASan/LSan (the sanitizer build) see nothing.
 * freed_without_running: a loop freed without ever having run.
 * freed_on_another_thread: a loop freed on another thread than the one
 *   that ran it.
 * fallback_when_refused: a kernel that refuses io_uring
 *   (RITUAL_URING_FAIL=1) gets epoll, a warning, and a working echo.
 * closed_between_runs: closed while the loop is not running, a listener
 *   stops listening and an aborted connection is reset at once, as
 *   documented, not when the loop next runs.
 * freed_with_signal_handle: a loop with a signal handle is freed promptly.
 *
 * closed_between_runs and freed_with_signal_handle found bugs in the
 * io_uring backend (the second: the free waited a second for the
 * signalfd's poll, fixed since). Their checks report (EXPECT) and let the
 * case go on; the case fails at its end (the fixture's after step).
 *
 * io_uring unavailable on this machine: a note, and its assertions are
 * skipped -- unless RITUAL_TEST_REQUIRE_URING=1, which makes it a failure.
 * The fixture's before step (probe_backend) decides which, for each case. */
#include "libtest.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---------------------------------------------------------------- common */

/* A check that reports and lets the case go on; it fails at its end. */
static int expectations_failed;
#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            expectations_failed++;                                                                 \
            fflush(stdout);                                                                        \
            fprintf(stderr, "%s:%d: expectation failed: %s: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static int uring_works;  /* a loop asking for io_uring gets it here */
static int uring_built;  /* the library has the backend (it may be refused) */
static int expect_uring; /* the cases' loops (backend auto) must run on it */

/* What a loop logged, through its log_fn. */
struct logbook {
    int ran_dry;            /* "io_uring: the buffer ring ran dry: N buffers now" */
    unsigned dry_sizes[16]; /* the N of each */
    int unavailable;        /* "io_uring unavailable (...): using epoll" */
    ritual_log_level unavailable_level;
    char unavailable_line[256];
    int errors; /* RITUAL_LOG_ERROR lines */
};

static void capture_log(void *data, ritual_log_level level, const char *line)
{
    struct logbook *book = data;
    unsigned n;
    if (sscanf(line, "io_uring: the buffer ring ran dry: %u buffers now", &n) == 1) {
        if (book->ran_dry < 16)
            book->dry_sizes[book->ran_dry] = n;
        book->ran_dry++;
    }
    if (strstr(line, "io_uring unavailable (") == line && strstr(line, "): using epoll")) {
        book->unavailable++;
        book->unavailable_level = level;
        snprintf(book->unavailable_line, sizeof book->unavailable_line, "%s", line);
    }
    if (level == RITUAL_LOG_ERROR)
        book->errors++;
    if (level <= RITUAL_LOG_WARN)
        note("log (%s): %s", level == RITUAL_LOG_ERROR ? "error" : "warn", line);
}

static ritual_loop *new_loop(ritual_backend backend, struct logbook *book)
{
    memset(book, 0, sizeof *book);
    ritual_loop_options o = {
        .backend = backend, .log_level = RITUAL_LOG_DEBUG, .log_fn = capture_log, .log_data = book};
    ritual_error err;
    ritual_loop *loop = ritual_loop_new(&o, &err);
    if (!loop)
        FAIL("ritual_loop_new: %s", err.message);
    return loop;
}

/* Returns 1 if the loop runs on io_uring; fails if that is not what this
 * run expects of a loop with backend auto. */
static int check_backend(ritual_loop *loop, const char *story)
{
    const char *name = ritual_loop_backend_name(loop);
    int on_uring = strcmp(name, "io_uring") == 0;
    if (on_uring != expect_uring)
        FAIL("%s: the loop runs on %s, expected %s", story, name,
             expect_uring ? "io_uring" : "not io_uring");
    note("%s: backend %s", story, name);
    return on_uring;
}

/* Decides what this run expects: RITUAL_BACKEND=epoll|poll skips the
 * io_uring assertions; otherwise io_uring must work, or be excused. */
static void probe_backend(void)
{
    expectations_failed = 0;
    expect_uring = 0;
    struct logbook book;
    ritual_loop *loop = new_loop(RITUAL_BACKEND_IO_URING, &book);
    uring_works = strcmp(ritual_loop_backend_name(loop), "io_uring") == 0;
    uring_built = uring_works || book.unavailable > 0;
    ritual_loop_free(loop);

    const char *env = getenv("RITUAL_BACKEND");
    if (env && (strcmp(env, "epoll") == 0 || strcmp(env, "poll") == 0)) {
        note("RITUAL_BACKEND=%s: the io_uring assertions are skipped", env);
        return;
    }
    if (uring_works) {
        expect_uring = 1;
        return;
    }
    const char *why = book.unavailable ? book.unavailable_line : "built without liburing";
    const char *require = getenv("RITUAL_TEST_REQUIRE_URING");
    if (require && strcmp(require, "1") == 0)
        FAIL("io_uring is not available (%s) and RITUAL_TEST_REQUIRE_URING=1", why);
    note("io_uring is not available (%s): the io_uring assertions are skipped", why);
}

/* A one-shot signal between threads, awaited with a deadline. */
struct gate {
    int fd[2];
};

static void gate_init(struct gate *g)
{
    SYSCHECK(pipe2(g->fd, O_CLOEXEC));
}

static void gate_open(struct gate *g)
{
    char c = 1;
    SYSCHECK(write(g->fd[1], &c, 1));
}

static void gate_wait(struct gate *g, int timeout_ms, const char *what)
{
    if (!wait_fd(g->fd[0], POLLIN, now_ms() + (uint64_t)timeout_ms))
        FAIL("waited %d ms for %s", timeout_ms, what);
}

static void gate_free(struct gate *g)
{
    close(g->fd[0]);
    close(g->fd[1]);
}

enum { END_EOF = 1, END_RESET };

/* Reads until the end of the stream (within timeout_ms), every byte checked
 * against the pattern `seed`: returns END_EOF or END_RESET, with the count
 * of bytes in *got. Data that is not the pattern, or that keeps coming,
 * fails the test. */
static int read_to_end(int fd, uint64_t seed, size_t *got, int timeout_ms)
{
    static char buf[65536];
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    *got = 0;
    for (;;) {
        if (!wait_fd(fd, POLLIN, deadline))
            FAIL("no end of stream within %d ms (%zu bytes read)", timeout_ms, *got);
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0 && errno == ECONNRESET)
            return END_RESET;
        if (n < 0)
            FAIL("recv after %zu bytes: %s", *got, strerror(errno));
        if (n == 0)
            return END_EOF;
        size_t bad = pattern_mismatch(seed, *got, buf, (size_t)n);
        if (bad != (size_t)n)
            FAIL("byte %zu of the stream is not what the server wrote", *got + bad);
        *got += (size_t)n;
    }
}

static const char *end_name(int end)
{
    return end == END_EOF ? "end of stream" : "reset";
}

static size_t echo(ritual_conn *conn, const char *bytes, size_t len)
{
    ASSERT_EQ(ritual_write(conn, bytes, len), 0);
    return len;
}

/* ------------------------------------------------ the buffer ring runs dry */

#define S1_CONNS 1000
#define S1_BYTES (32 * 1024)
#define S1_SEED 0x51000000ull

struct s1_conn {
    size_t received;
    int closes;
    int reason;
};

static struct {
    ritual_loop *loop;
    int port;
    struct s1_conn conns[S1_CONNS];
    size_t opened, closed;
    struct gate burst_sent; /* every client connected, then sent (what fitted of) its bytes */
    uint64_t burst_ms;
} s1;

static void s1_open(ritual_conn *conn)
{
    if (s1.opened == S1_CONNS)
        FAIL("more connections than the %d clients", S1_CONNS);
    ritual_conn_set_data(conn, &s1.conns[s1.opened++]);
}

static size_t s1_data(ritual_conn *conn, const char *bytes, size_t len)
{
    struct s1_conn *c = ritual_conn_data(conn);
    c->received += len;
    if (c->received > S1_BYTES)
        FAIL("a connection received %zu bytes; its client sent %d", c->received, S1_BYTES);
    return echo(conn, bytes, len);
}

static void s1_close(ritual_conn *conn, int reason)
{
    struct s1_conn *c = ritual_conn_data(conn);
    c->closes++;
    c->reason = reason;
    if (++s1.closed == S1_CONNS)
        ritual_loop_stop(s1.loop);
}

struct s1_client {
    int fd;
    size_t sent, got;
    int shut, done;
};

static void s1_send_more(struct s1_client *c, size_t i, char *scratch)
{
    size_t n = S1_BYTES - c->sent;
    pattern_fill(S1_SEED + i, c->sent, scratch, n);
    ssize_t w = send(c->fd, scratch, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && errno != EAGAIN && errno != EINTR)
        FAIL("client %zu: send after %zu bytes: %s", i, c->sent, strerror(errno));
    if (w > 0)
        c->sent += (size_t)w;
}

/* Connects every client (the kernel completes the handshakes: the loop is
 * not running yet), sends every client's 32 KiB in one pass and lets the
 * loop start; then reads the echoes back (sending what did not fit), sends
 * its FIN after the last byte, and expects the server's FIN. */
static void *s1_clients(void *arg)
{
    (void)arg;
    int *fds = calloc(S1_CONNS, sizeof *fds);
    struct s1_client *cl = calloc(S1_CONNS, sizeof *cl);
    struct pollfd *p = calloc(S1_CONNS, sizeof *p);
    char *scratch = malloc(S1_BYTES), *in = malloc(65536);
    ASSERT(fds && cl && p && scratch && in);

    size_t n = connect_many(s1.port, fds, S1_CONNS, 20000);
    if (n != S1_CONNS)
        FAIL("only %zu of %d clients connected within 20 s", n, S1_CONNS);

    uint64_t start = now_ms();
    for (size_t i = 0; i < S1_CONNS; i++) {
        cl[i].fd = fds[i];
        s1_send_more(&cl[i], i, scratch);
    }
    s1.burst_ms = now_ms() - start;
    gate_open(&s1.burst_sent);

    size_t finished = 0;
    uint64_t deadline = now_ms() + 30000;
    while (finished < S1_CONNS) {
        int64_t left = (int64_t)deadline - (int64_t)now_ms();
        if (left <= 0)
            FAIL("only %zu of %d clients got their echo and the server's FIN within 30 s", finished,
                 S1_CONNS);
        for (size_t i = 0; i < S1_CONNS; i++) {
            p[i].fd = cl[i].done ? -1 : cl[i].fd;
            p[i].events = (short)(POLLIN | (cl[i].sent < S1_BYTES ? POLLOUT : 0));
            p[i].revents = 0;
        }
        int r = poll(p, S1_CONNS, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        SYSCHECK(r);
        for (size_t i = 0; i < S1_CONNS; i++) {
            struct s1_client *c = &cl[i];
            if (c->done || p[i].revents == 0)
                continue;
            if ((p[i].revents & POLLOUT) && c->sent < S1_BYTES)
                s1_send_more(c, i, scratch);
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t got = recv(c->fd, in, 65536, MSG_DONTWAIT);
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (got < 0)
                FAIL("client %zu: recv after %zu bytes back: %s", i, c->got, strerror(errno));
            if (got == 0) {
                if (c->got != S1_BYTES)
                    FAIL("client %zu: end of stream after %zu of %d bytes back", i, c->got,
                         S1_BYTES);
                c->done = 1;
                close(c->fd);
                finished++;
                continue;
            }
            if (c->got + (size_t)got > c->sent)
                FAIL("client %zu: %zu bytes back, but it sent %zu", i, c->got + (size_t)got,
                     c->sent);
            size_t bad = pattern_mismatch(S1_SEED + i, c->got, in, (size_t)got);
            if (bad != (size_t)got)
                FAIL("client %zu: byte %zu of its echo is not what it sent (another client's?)", i,
                     c->got + bad);
            c->got += (size_t)got;
            if (c->got == S1_BYTES && !c->shut) {
                SYSCHECK(shutdown(c->fd, SHUT_WR));
                c->shut = 1;
            }
        }
    }
    free(fds);
    free(cl);
    free(p);
    free(scratch);
    free(in);
    return NULL;
}

static void ring_runs_dry(void)
{
    raise_nofile_up_to(4096, 2 * S1_CONNS + 100);
    int fds0 = count_fds();
    struct logbook book;
    s1.loop = new_loop(RITUAL_BACKEND_AUTO, &book);
    int on_uring = check_backend(s1.loop, "ring_runs_dry");
    gate_init(&s1.burst_sent);
    ritual_conn_callbacks cbs = {.on_open = s1_open, .on_data = s1_data, .on_close = s1_close};
    ritual_listener *l = lt_listen(s1.loop, NULL, &cbs);
    s1.port = ritual_listener_port(l);

    /* The burst waits in the sockets when the loop first looks: on io_uring
     * one multishot accept takes every connection at once, and the 1,000
     * receives armed next find 32 MiB waiting for 4 MiB of buffers. (Were
     * the loop running, the kernel's batching of deferred work, 20 items a
     * pass since 6.13, would hand each turn a few dozen receives, and the
     * buffers would go back to the ring faster than they are taken.) That
     * needs an accept queue that holds them all. */
    int somaxconn = 0;
    FILE *f = fopen("/proc/sys/net/core/somaxconn", "re");
    if (f) {
        if (fscanf(f, "%d", &somaxconn) != 1)
            somaxconn = 0;
        fclose(f);
    }
    int burst_first = somaxconn >= S1_CONNS;
    if (!burst_first)
        note("net.core.somaxconn is %d: the clients connect while the loop runs, and the ring "
             "may not run dry",
             somaxconn);
    pthread_t t = lt_thread(s1_clients, NULL);
    if (burst_first)
        gate_wait(&s1.burst_sent, 30000, "the clients to connect and send");
    lt_run(s1.loop, 60000);
    lt_join(t);

    /* (The loop stops at the 1,000th close: that many closes is a given.) */
    ASSERT_EQ(s1.opened, S1_CONNS);
    for (size_t i = 0; i < S1_CONNS; i++) {
        ASSERT_EQ(s1.conns[i].received, S1_BYTES);
        ASSERT_EQ(s1.conns[i].closes, 1);
        ASSERT_EQ(s1.conns[i].reason, 0);
    }
    ASSERT_EQ(ritual_loop_conn_count(s1.loop), 0);
    ritual_loop_stats stats;
    ritual_loop_stats_get(s1.loop, &stats);
    ASSERT_EQ(stats.bytes_read, (uint64_t)S1_CONNS * S1_BYTES);
    ASSERT_EQ(stats.bytes_written, (uint64_t)S1_CONNS * S1_BYTES);
    ASSERT_EQ(book.errors, 0);

    note("%d clients sent %d KiB each in %llu ms; the ring ran dry %d time%s", S1_CONNS,
         S1_BYTES / 1024, (unsigned long long)s1.burst_ms, book.ran_dry,
         book.ran_dry == 1 ? "" : "s");
    if (on_uring) {
        if (burst_first)
            ASSERT_GE(book.ran_dry, 1);
        /* It doubled from 256, each time, up to its capacity. */
        unsigned size = 256;
        for (int i = 0; i < book.ran_dry && i < 16; i++) {
            ASSERT_EQ(book.dry_sizes[i], size * 2);
            size *= 2;
        }
        ASSERT_LE(size, 4096);
    } else {
        ASSERT_EQ(book.ran_dry, 0);
    }
    ritual_loop_free(s1.loop);
    gate_free(&s1.burst_sent);
    ASSERT_EQ(count_fds(), fds0);
}

/* --------------------------------------- closing with operations in flight */

#define S2_PER_LISTENER 9         /* three of each fate */
#define S2_STUCK_BYTES (1u << 20) /* queued for a client that never reads */
#define S2_CLOSE_TIMEOUT_MS 200
#define S2_SEED 0x52000000ull

enum fate { ABORTED, CLOSED, LEFT_OPEN };
static const char *const fate_names[] = {"aborted", "closed", "left open"};

struct s2_conn {
    ritual_conn *conn; /* while open */
    int stuck;         /* a send stuck in the kernel; else a receive armed */
    int fate;
    int port; /* the client's */
    size_t last_queued;
    int still_ticks;
    int closes, reason;
    uint64_t close_called_ms, closed_ms;
};

struct s2_world;

struct s2_listener {
    struct s2_world *w;
    int stuck;
    int opened;
};

struct s2_world {
    const char *story;
    ritual_loop *loop;
    int on_uring;
    int all_left_open; /* only ritual_loop_free closes them */
    struct s2_listener stuck_l, quiet_l;
    ritual_listener *quiet_listener, *lone_listener;
    int quiet_port, lone_port;
    struct s2_conn conns[2 * S2_PER_LISTENER];
    int opened, want;
    int phase; /* 0: waiting for the sends to stall; 1: closed some; 2: listeners checked */
    int sends_in_flight;
};

static void s2_open(ritual_conn *conn)
{
    struct s2_listener *sl = ritual_listener_data(ritual_conn_listener(conn));
    struct s2_world *w = sl->w;
    if (w->opened == w->want)
        FAIL("%s: more connections than clients", w->story);
    struct s2_conn *c = &w->conns[w->opened++];
    c->conn = conn;
    c->stuck = sl->stuck;
    c->fate = w->all_left_open ? LEFT_OPEN : sl->opened % 3;
    sl->opened++;
    char peer[64];
    ASSERT_EQ(ritual_conn_peer(conn, peer, sizeof peer), 0);
    c->port = atoi(strrchr(peer, ':') + 1);
    ritual_conn_set_data(conn, c);
    if (!c->stuck)
        return;
    /* A small send buffer, so that 1 MiB cannot fit in the kernel. */
    int size = 16 * 1024;
    SYSCHECK(setsockopt(ritual_conn_fd(conn), SOL_SOCKET, SO_SNDBUF, &size, sizeof size));
    char *big = malloc(S2_STUCK_BYTES);
    ASSERT(big != NULL);
    pattern_fill(S2_SEED + (uint64_t)c->port, 0, big, S2_STUCK_BYTES);
    ASSERT_EQ(ritual_write(conn, big, S2_STUCK_BYTES), 0);
    free(big);
}

static void s2_close(ritual_conn *conn, int reason)
{
    struct s2_conn *c = ritual_conn_data(conn);
    ASSERT(c->conn == conn);
    c->closes++;
    c->reason = reason;
    c->closed_ms = now_ms();
    c->conn = NULL;
}

/* Every connection is open, and every stuck one has had the same bytes
 * queued for three ticks: its send waits in the kernel. */
static int s2_all_stalled(struct s2_world *w)
{
    if (w->opened < w->want)
        return 0;
    int stalled = 1;
    for (int i = 0; i < w->want; i++) {
        struct s2_conn *c = &w->conns[i];
        if (!c->stuck)
            continue;
        ASSERT(c->conn != NULL);
        size_t queued = ritual_conn_write_queued(c->conn);
        if (queued == 0)
            FAIL("%s: a stuck connection sent all it had: is its client reading?", w->story);
        if (queued == c->last_queued) {
            c->still_ticks++;
        } else {
            c->last_queued = queued;
            c->still_ticks = 0;
        }
        if (c->still_ticks < 3)
            stalled = 0;
    }
    return stalled;
}

/* On io_uring, what the story is about must be so: each stuck connection
 * has its write (a send, or a wait for room) in the kernel, each quiet one
 * its receive, each open listener its accept. */
static void s2_expect_in_flight(struct s2_world *w)
{
    if (!w->on_uring)
        return;
    w->sends_in_flight = 0;
    for (int i = 0; i < w->want; i++) {
        const struct ritual_io *io = &w->conns[i].conn->io;
        if (w->conns[i].stuck) {
            ASSERT(io->busy & RITUAL_BUSY_WRITE);
            w->sends_in_flight += !!(io->busy & RITUAL_BUSY_SEND);
        } else {
            ASSERT(io->busy & RITUAL_BUSY_READ);
            ASSERT(!(io->busy & RITUAL_BUSY_WATCH));
        }
    }
    if (w->lone_listener)
        ASSERT(w->lone_listener->io.busy & RITUAL_BUSY_READ);
    if (w->quiet_listener)
        ASSERT(w->quiet_listener->io.busy & RITUAL_BUSY_READ);
}

static void s2_tick(ritual_timer *t, void *data)
{
    struct s2_world *w = data;
    if (w->phase == 0) {
        if (!s2_all_stalled(w))
            return;
        s2_expect_in_flight(w);
        if (w->all_left_open) {
            ritual_timer_stop(t);
            ritual_loop_stop(w->loop);
            return;
        }
        uint64_t now = now_ms();
        for (int i = 0; i < w->want; i++) {
            struct s2_conn *c = &w->conns[i];
            if (c->fate == ABORTED) {
                ritual_conn_abort(c->conn);
            } else if (c->fate == CLOSED) {
                c->close_called_ms = now;
                ritual_conn_close(c->conn);
            }
        }
        ritual_listener_close(w->lone_listener);  /* nothing accepted; its accept armed */
        ritual_listener_close(w->quiet_listener); /* its connections live on */
        w->lone_listener = w->quiet_listener = NULL;
        w->phase = 1;
        return;
    }
    if (w->phase == 1) {
        /* A turn later: the listening sockets are gone, not held by an
         * operation the kernel still has. */
        int fd = tcp_try_connect(w->lone_port);
        if (fd >= 0)
            FAIL("%s: a closed listener (its accept was armed) still accepts", w->story);
        ASSERT_EQ(fd, -ECONNREFUSED);
        fd = tcp_try_connect(w->quiet_port);
        if (fd >= 0)
            FAIL("%s: a closed listener with open connections still accepts", w->story);
        ASSERT_EQ(fd, -ECONNREFUSED);
        w->phase = 2;
    }
    for (int i = 0; i < w->want; i++)
        if (w->conns[i].fate != LEFT_OPEN && w->conns[i].closes == 0)
            return;
    ritual_timer_stop(t);
    ritual_loop_stop(w->loop);
}

/* Sets up the world's listeners and clients (stuck ones first). */
static void s2_setup(struct s2_world *w, int per_listener, int *clients)
{
    ritual_conn_callbacks cbs = {.on_open = s2_open, .on_data = echo, .on_close = s2_close};
    w->stuck_l = (struct s2_listener){.w = w, .stuck = 1};
    w->quiet_l = (struct s2_listener){.w = w, .stuck = 0};
    ritual_listen_options so = {.data = &w->stuck_l, .conn.close_timeout_ms = S2_CLOSE_TIMEOUT_MS};
    ritual_listen_options qo = {.data = &w->quiet_l, .conn.close_timeout_ms = S2_CLOSE_TIMEOUT_MS};
    int stuck_port = ritual_listener_port(lt_listen(w->loop, &so, &cbs));
    w->quiet_listener = lt_listen(w->loop, &qo, &cbs);
    w->quiet_port = ritual_listener_port(w->quiet_listener);
    w->want = 2 * per_listener;
    for (int i = 0; i < per_listener; i++) {
        /* The stuck ones never read: the server's sends soon have nowhere to go. */
        clients[i] = tcp_connect_rcvbuf(stuck_port, 16 * 1024);
        clients[per_listener + i] = tcp_connect(w->quiet_port);
    }
}

/* By the client's port and the listener it reached (the stuck clients come
 * first): the kernel gives two clients the same local port when they
 * connect to different ports. */
static struct s2_conn *s2_find(struct s2_world *w, int client_fd, int stuck)
{
    int port = socket_port(client_fd);
    for (int i = 0; i < w->want; i++)
        if (w->conns[i].port == port && w->conns[i].stuck == stuck)
            return &w->conns[i];
    FAIL("%s: no server connection for the client on port %d", w->story, port);
}

/* What each client sees, after the loop is freed: a reset for the aborted
 * ones (the stuck closed ones were cut after close_timeout_ms: a reset
 * too), the end of the stream for the quiet closed and left open ones; a
 * stuck one left open may see either (the kernel sends what it had, then
 * the FIN). Whatever bytes arrive are the ones the server wrote. */
static void s2_check_clients(struct s2_world *w, const int *clients)
{
    int tally[2][3][3] = {{{0}}};
    for (int i = 0; i < w->want; i++) {
        struct s2_conn *c = s2_find(w, clients[i], i < w->want / 2);
        size_t got;
        int end = read_to_end(clients[i], S2_SEED + (uint64_t)c->port, &got, 10000);
        if (!c->stuck && got != 0)
            FAIL("%s: a quiet connection got %zu bytes", w->story, got);
        /* No more than the socket buffers held (about 56 KiB here) of the
         * 1 MiB queued: a send the kernel still had after the close, or
         * after the free, would push more, from memory given back. */
        if (c->stuck && got > 256 * 1024)
            FAIL("%s: a stuck %s connection's client got %zu bytes after the close", w->story,
                 fate_names[c->fate], got);
        int want = c->fate == LEFT_OPEN ? END_EOF
                   : c->fate == ABORTED ? END_RESET
                   : c->stuck           ? END_RESET
                                        : END_EOF;
        if (end != want && !(c->stuck && c->fate == LEFT_OPEN))
            FAIL("%s: the client of a %s %s connection saw %s, expected %s", w->story,
                 c->stuck ? "stuck" : "quiet", fate_names[c->fate], end_name(end), end_name(want));
        tally[c->stuck][c->fate][end]++;
        close(clients[i]);
    }
    for (int stuck = 1; stuck >= 0; stuck--)
        for (int fate = 0; fate < 3; fate++)
            if (tally[stuck][fate][END_EOF] + tally[stuck][fate][END_RESET])
                note("%s: %s %s: %d reset, %d end of stream", w->story, stuck ? "stuck" : "quiet",
                     fate_names[fate], tally[stuck][fate][END_RESET], tally[stuck][fate][END_EOF]);
}

static int s2_expected_reason(const struct s2_conn *c)
{
    switch (c->fate) {
    case ABORTED:
        return -ECONNABORTED;
    case CLOSED:
        /* A stuck one could not flush: cut. A quiet one sent its FIN and
         * lingered for the client's, which never came: an orderly close. */
        return c->stuck ? -ETIMEDOUT : 0;
    default:
        return -ECANCELED;
    }
}

static void close_in_flight(void)
{
    int fds0 = count_fds();
    static struct s2_world world;
    struct s2_world *w = &world;
    w->story = "close_in_flight";
    struct logbook book;
    w->loop = new_loop(RITUAL_BACKEND_AUTO, &book);
    w->on_uring = check_backend(w->loop, w->story);
    int clients[2 * S2_PER_LISTENER];
    s2_setup(w, S2_PER_LISTENER, clients);
    ritual_conn_callbacks lone_cbs = {.on_data = echo};
    w->lone_listener = lt_listen(w->loop, NULL, &lone_cbs);
    w->lone_port = ritual_listener_port(w->lone_listener);

    ritual_timer *tick = ritual_timer_new(w->loop, s2_tick, w);
    ASSERT_EQ(ritual_timer_start(tick, 20, 20), 0);
    lt_run(w->loop, 20000); /* s2_tick stops it once the listeners are checked (phase 2) */
    if (w->on_uring)
        note("%d of %d stuck writes were sends in the kernel (the others waited for room)",
             w->sends_in_flight, S2_PER_LISTENER);

    /* Before the free: the aborted and closed ones closed once, each with
     * its reason; the stuck closed ones after close_timeout_ms. */
    int left_open = 0;
    for (int i = 0; i < w->want; i++) {
        struct s2_conn *c = &w->conns[i];
        if (c->fate == LEFT_OPEN) {
            ASSERT_EQ(c->closes, 0);
            left_open++;
            continue;
        }
        ASSERT_EQ(c->closes, 1);
        ASSERT_EQ(c->reason, s2_expected_reason(c));
        if (c->fate == CLOSED)
            ASSERT_GE(c->closed_ms - c->close_called_ms, S2_CLOSE_TIMEOUT_MS - 1);
    }
    ASSERT_EQ(ritual_loop_conn_count(w->loop), (size_t)left_open);

    uint64_t free_start = now_ms();
    ritual_loop_free(w->loop);
    uint64_t free_ms = now_ms() - free_start;
    note("ritual_loop_free with %d connections open took %llu ms", left_open,
         (unsigned long long)free_ms);
    /* The loop waited for the kernel's cancellations, which take a turn
     * or two; not for the full second it allows before it lets go. */
    if (w->on_uring)
        ASSERT_LT(free_ms, 900);
    for (int i = 0; i < w->want; i++) {
        ASSERT_EQ(w->conns[i].closes, 1);
        ASSERT_EQ(w->conns[i].reason, s2_expected_reason(&w->conns[i]));
    }
    ASSERT_EQ(book.errors, 0);
    s2_check_clients(w, clients);
    ASSERT_EQ(count_fds(), fds0);
}

/* A loop that never ran: its listener has a client in the kernel's accept
 * queue, and a connection handed over with ritual_listener_adopt. */
struct counts {
    int opens, closes, reason;
    ritual_conn *conn;
};

static void count_open(ritual_conn *conn)
{
    struct counts *k = ritual_listener_data(ritual_conn_listener(conn));
    k->opens++;
    k->conn = conn;
}

static void count_close(ritual_conn *conn, int reason)
{
    struct counts *k = ritual_listener_data(ritual_conn_listener(conn));
    k->closes++;
    k->reason = reason;
}

static void freed_without_running(void)
{
    int fds0 = count_fds();
    struct logbook book;
    ritual_loop *loop = new_loop(RITUAL_BACKEND_AUTO, &book);
    check_backend(loop, "freed_without_running");
    struct counts k = {0};
    ritual_listen_options o = {.data = &k};
    ritual_conn_callbacks cbs = {.on_open = count_open, .on_data = echo, .on_close = count_close};
    ritual_listener *l = lt_listen(loop, &o, &cbs);
    int port = ritual_listener_port(l);
    int client = tcp_connect(port); /* in the accept queue: the loop never takes it */
    int sp[2];
    SYSCHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp));
    ASSERT_EQ(ritual_listener_adopt(l, sp[0]), 0);
    ASSERT_EQ(k.opens, 1);
    /* Sent at once on epoll and poll, queued on io_uring: gone with the loop. */
    ASSERT_EQ(ritual_write(k.conn, "unsent?", 7), 0);
    ASSERT_EQ(ritual_loop_conn_count(loop), 1);

    ritual_loop_free(loop);
    ASSERT_EQ(k.closes, 1);
    ASSERT_EQ(k.reason, -ECANCELED);
    ASSERT_EQ(book.errors, 0);

    /* The queued client is reset with the listening socket, which is gone. */
    size_t got;
    ASSERT_EQ(read_to_end(client, 0, &got, 5000), END_RESET);
    ASSERT_EQ(tcp_try_connect(port), -ECONNREFUSED);
    /* The adopted one ends, with what was written or nothing of it. */
    char buf[16];
    size_t n = 0;
    for (;;) {
        struct pollfd p = {.fd = sp[1], .events = POLLIN};
        ASSERT_EQ(SYSCHECK(poll(&p, 1, 5000)), 1);
        ssize_t r = SYSCHECK(recv(sp[1], buf + n, sizeof buf - n, 0));
        if (r == 0)
            break;
        n += (size_t)r;
    }
    ASSERT(n == 0 || (n == 7 && memcmp(buf, "unsent?", 7) == 0));
    note("the adopted connection's peer got %zu of the 7 bytes written", n);
    close(client);
    close(sp[1]);
    ASSERT_EQ(count_fds(), fds0);
}

/* A loop run on a thread of its own, until its sends stall, and freed on
 * the main thread after that thread has exited. */
static void *run_thread(void *arg)
{
    struct s2_world *w = arg;
    lt_run(w->loop, 20000);
    return NULL;
}

static void freed_on_another_thread(void)
{
    int fds0 = count_fds();
    static struct s2_world world;
    struct s2_world *w = &world;
    w->story = "freed_on_another_thread";
    w->all_left_open = 1;
    struct logbook book;
    w->loop = new_loop(RITUAL_BACKEND_AUTO, &book);
    w->on_uring = check_backend(w->loop, w->story);
    int clients[2 * 3];
    s2_setup(w, 3, clients);
    ritual_timer *tick = ritual_timer_new(w->loop, s2_tick, w);
    ASSERT_EQ(ritual_timer_start(tick, 20, 20), 0);

    lt_join(lt_thread(run_thread, w));
    ASSERT_EQ(ritual_loop_conn_count(w->loop), (size_t)w->want);

    uint64_t free_start = now_ms();
    ritual_loop_free(w->loop);
    note("ritual_loop_free on the main thread took %llu ms",
         (unsigned long long)(now_ms() - free_start));
    for (int i = 0; i < w->want; i++) {
        ASSERT_EQ(w->conns[i].closes, 1);
        ASSERT_EQ(w->conns[i].reason, -ECANCELED);
    }
    ASSERT_EQ(book.errors, 0);
    s2_check_clients(w, clients);
    ASSERT_EQ(count_fds(), fds0);
}

/* --------------------------------------------------------------- fallback */

static struct {
    ritual_loop *loop;
    int port;
    int closes;
    _Atomic int client_done;
} s3;

static void s3_close(ritual_conn *conn, int reason)
{
    (void)conn;
    ASSERT_EQ(reason, 0);
    s3.closes++;
    ritual_loop_stop(s3.loop);
}

static void *s3_client(void *arg)
{
    (void)arg;
    int fd = tcp_connect(s3.port);
    echo_roundtrip(fd, "through the fallback", 20, 5000);
    char big[100000];
    pattern_fill(3, 0, big, sizeof big);
    echo_roundtrip(fd, big, sizeof big, 5000);
    close(fd);
    return NULL;
}

static void fallback_when_refused(void)
{
#ifndef RITUAL_TEST_HOOKS
    note("skipped: the library was built without RITUAL_TEST_HOOKS (RITUAL_URING_FAIL)");
    return;
#endif
    const char *was = getenv("RITUAL_URING_FAIL");
    char saved[64];
    if (was)
        snprintf(saved, sizeof saved, "%s", was);
    ASSERT_EQ(setenv("RITUAL_URING_FAIL", "1", 1), 0);

    /* Asked for by name: epoll, and a warning. */
    struct logbook book;
    s3.loop = new_loop(RITUAL_BACKEND_IO_URING, &book);
    ASSERT_EQ(strcmp(ritual_loop_backend_name(s3.loop), "epoll"), 0);
    if (uring_built) {
        ASSERT_EQ(book.unavailable, 1);
        ASSERT_EQ(book.unavailable_level, RITUAL_LOG_WARN);
        note("logged at warn: \"%s\"", book.unavailable_line);
    } else {
        ASSERT_EQ(book.unavailable, 0);
        note("the library has no io_uring backend: nothing to fall back from");
    }
    ritual_conn_callbacks cbs = {.on_data = echo, .on_close = s3_close};
    s3.port = ritual_listener_port(lt_listen(s3.loop, NULL, &cbs));
    pthread_t t = lt_thread(s3_client, NULL);
    lt_run(s3.loop, 20000);
    lt_join(t);
    ASSERT_EQ(s3.closes, 1);
    ASSERT_EQ(book.errors, 0);
    ritual_loop_free(s3.loop);

    /* Backend auto: what RITUAL_BACKEND says, else epoll with a note at info. */
    const char *env = getenv("RITUAL_BACKEND");
    int named = env && (strcmp(env, "epoll") == 0 || strcmp(env, "poll") == 0);
    int by_name = env && strcmp(env, "io_uring") == 0;
    ritual_loop *loop = new_loop(RITUAL_BACKEND_AUTO, &book);
    ASSERT_EQ(strcmp(ritual_loop_backend_name(loop), named ? env : "epoll"), 0);
    if (uring_built && !named) {
        ASSERT_EQ(book.unavailable, 1);
        ASSERT_EQ(book.unavailable_level, by_name ? RITUAL_LOG_WARN : RITUAL_LOG_INFO);
    } else {
        ASSERT_EQ(book.unavailable, 0);
    }
    ritual_loop_free(loop);

    /* And once the kernel allows it again, it is io_uring again. */
    ASSERT_EQ(was ? setenv("RITUAL_URING_FAIL", saved, 1) : unsetenv("RITUAL_URING_FAIL"), 0);
    loop = new_loop(RITUAL_BACKEND_IO_URING, &book);
    ASSERT_EQ(strcmp(ritual_loop_backend_name(loop), uring_works ? "io_uring" : "epoll"), 0);
    ritual_loop_free(loop);
}

/* ------------------------------------------- closed while the loop is idle */

static void stop_when_open(ritual_timer *t, void *data)
{
    struct counts *k = data;
    if (k->opens == 1) {
        ritual_timer_stop(t);
        ritual_loop_stop(ritual_conn_loop(k->conn));
    }
}

/* Waits up to timeout_ms for the end of the stream (no data expected):
 * END_EOF, END_RESET, or 0 if nothing came. */
static int wait_end(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    do
        r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    SYSCHECK(r);
    if (r == 0)
        return 0;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    if (n < 0 && errno == ECONNRESET)
        return END_RESET;
    if (n < 0)
        FAIL("recv: %s", strerror(errno));
    if (n > 0)
        FAIL("recv: data, expected the end of the stream");
    return END_EOF;
}

/* ritual_listener_close "stops accepting and closes the listening socket",
 * ritual_conn_abort "closes at once with a TCP RST": also when called
 * after ritual_loop_run returned, with no run to follow soon. */
static void closed_between_runs(void)
{
    int fds0 = count_fds();
    struct logbook book;
    ritual_loop *loop = new_loop(RITUAL_BACKEND_AUTO, &book);
    int on_uring = check_backend(loop, "closed_between_runs");
    struct counts k = {0};
    ritual_listen_options o = {.data = &k};
    ritual_conn_callbacks cbs = {.on_open = count_open, .on_data = echo, .on_close = count_close};
    ritual_listener *l = lt_listen(loop, &o, &cbs);
    int port = ritual_listener_port(l);
    int client = tcp_connect(port);
    ritual_timer *t = ritual_timer_new(loop, stop_when_open, &k);
    ASSERT_EQ(ritual_timer_start(t, 5, 5), 0);
    lt_run(loop, 10000); /* until the client's connection opened: k.conn */
    if (on_uring) {
        ASSERT(l->io.busy & RITUAL_BUSY_READ);
        ASSERT(k.conn->io.busy & RITUAL_BUSY_READ);
    }

    /* The loop has returned; nothing runs it for now. */
    ritual_listener_close(l);
    int again = tcp_try_connect(port);
    EXPECT(again == -ECONNREFUSED,
           "a listener closed after ritual_loop_run returned still accepts connections (%s): "
           "its accept, armed in the kernel, holds the socket until the loop runs or is freed",
           again >= 0 ? "connect succeeded" : strerror(-again));
    ritual_conn_abort(k.conn);
    int end = wait_end(client, 1000);
    EXPECT(end == END_RESET,
           "a connection aborted after ritual_loop_run returned: its client saw %s within "
           "1 s, not the reset: its receive, armed in the kernel, holds the socket open",
           end ? end_name(end) : "nothing");

    ritual_loop_free(loop);
    ASSERT_EQ(k.closes, 1);
    ASSERT_EQ(k.reason, -ECONNABORTED);
    ASSERT_EQ(book.errors, 0);
    if (end == 0)
        ASSERT_EQ(wait_end(client, 5000), END_RESET); /* the free sent it, at least */
    if (again >= 0) {
        ASSERT_EQ(wait_end(again, 5000), END_RESET); /* taken by the kernel, then dropped */
        close(again);
    }
    ASSERT_EQ(tcp_try_connect(port), -ECONNREFUSED);
    close(client);
    ASSERT_EQ(count_fds(), fds0);
}

/* --------------------------------------------- freed with a signal handle */

static void on_signal(ritual_signal *sig, int signum, void *data)
{
    (void)sig;
    (void)signum;
    (void)data;
}

/* A loop with a signal handle (every `ritual` server's control loop has
 * one: ritual_server_shutdown_on_signals) and a connection to cancel. */
static void freed_with_signal_handle(void)
{
    int fds0 = count_fds();
    struct logbook book;
    ritual_loop *loop = new_loop(RITUAL_BACKEND_AUTO, &book);
    check_backend(loop, "freed_with_signal_handle");
    ritual_error err;
    ASSERT(ritual_signal_new(loop, SIGUSR1, on_signal, NULL, &err) != NULL);
    struct counts k = {0};
    ritual_listen_options o = {.data = &k};
    ritual_conn_callbacks cbs = {.on_open = count_open, .on_data = echo, .on_close = count_close};
    int client = tcp_connect(ritual_listener_port(lt_listen(loop, &o, &cbs)));
    ritual_timer *t = ritual_timer_new(loop, stop_when_open, &k);
    ASSERT_EQ(ritual_timer_start(t, 5, 5), 0);
    lt_run(loop, 10000); /* until the client's connection opened: k.conn */

    uint64_t free_start = now_ms();
    ritual_loop_free(loop);
    uint64_t free_ms = now_ms() - free_start;
    note("ritual_loop_free took %llu ms", (unsigned long long)free_ms);
    EXPECT(free_ms < 500,
           "ritual_loop_free of a loop with a signal handle took %llu ms: the drain waits for "
           "the signalfd's poll, which is cancelled only after the drain",
           (unsigned long long)free_ms);
    ASSERT_EQ(k.closes, 1);
    ASSERT_EQ(k.reason, -ECANCELED);
    ASSERT_EQ(wait_end(client, 5000), END_EOF);
    close(client);
    ASSERT_EQ(book.errors, 0);
    ASSERT_EQ(count_fds(), fds0);
}

/* A case's EXPECT failures, once it has told all of its story. */
static void check_expectations(void)
{
    if (expectations_failed)
        FAIL("%d expectation%s failed (see above)", expectations_failed,
             expectations_failed == 1 ? "" : "s");
}

TEST_CASES_WITH(probe_backend, check_expectations, CASE(ring_runs_dry), CASE(close_in_flight),
                CASE(freed_without_running), CASE(freed_on_another_thread),
                CASE(fallback_when_refused), CASE(closed_between_runs),
                CASE(freed_with_signal_handle))
