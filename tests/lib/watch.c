/* lib_watch: fd watchers (ritual_watch) on the loop's backend (each case
 * runs once per backend by CTest).
 *
 * - level_triggered: 10 KiB waiting in a pipe, read 1 KiB per callback:
 *   ten callbacks, every byte in order, then the watch stops itself.
 * - both_directions: a writable watch fills a pipe until EAGAIN, each time,
 *   until 4 MiB have gone, and frees itself in its own callback; a readable
 *   watch on the other end of it, in the same loop, drains it. Every byte
 *   arrives, in order, and the read end then sees the end of the stream.
 * - hangup_frees_watch: the peer of a socketpair closes; the watch hears
 *   it, and its callback frees it and closes the fd. No callback follows.
 * - stopped_hears_nothing: a watch whose interest is 0 hears nothing, not
 *   even a hang-up, however long the fd stays ready.
 * - refusals: what is refused, the same on every backend: no fd, a closed
 *   fd, a regular file, a second watch of one fd, unknown interest bits.
 * - loop_free_keeps_fds: a loop freed with watches still open frees them
 *   (no leak under ASan) and leaves their fds open: they are the
 *   application's. */
#include "libtest.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

static ritual_loop *loop;

/* The case's loop, on the backend this run uses. */
static void new_loop(void)
{
    loop = lt_loop();
    note("backend %s", ritual_loop_backend_name(loop));
}

static void make_pipe(int fds[2])
{
    SYSCHECK(pipe2(fds, O_NONBLOCK | O_CLOEXEC));
}

static int fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* Runs the loop for `turns` iterations (a zero timer each), to show that
 * nothing happens meanwhile. */
static int turns_left;
static void turn(ritual_timer *t, void *data)
{
    (void)data;
    if (--turns_left <= 0)
        ritual_loop_stop(loop);
    else
        ASSERT_EQ(ritual_timer_start(t, 1, 0), 0);
}

static void run_turns(int turns)
{
    turns_left = turns;
    ritual_timer *t = ritual_timer_new(loop, turn, NULL);
    ASSERT(t != NULL);
    ASSERT_EQ(ritual_timer_start(t, 0, 0), 0);
    lt_run(loop, 10000);
    ritual_timer_free(t);
}

/* ------------------------------------------------------------------ */

struct level {
    int calls;
    size_t got;
    char buf[10240];
};

static void level_read(ritual_watch *w, unsigned events, void *data)
{
    struct level *s = data;
    ASSERT_EQ(events, RITUAL_WATCH_READABLE);
    s->calls++;
    ssize_t n = read(ritual_watch_fd(w), s->buf + s->got, 1024);
    ASSERT_EQ(n, 1024);
    s->got += (size_t)n;
    if (s->got == sizeof s->buf) {
        ASSERT_EQ(ritual_watch_start(w, 0), 0);
        ritual_loop_stop(loop);
    }
}

static void level_triggered(void)
{
    new_loop();
    int p[2];
    make_pipe(p);
    static char sent[10240];
    pattern_fill(1, 0, sent, sizeof sent);
    ASSERT_EQ(write(p[1], sent, sizeof sent), (ssize_t)sizeof sent);
    static struct level s;
    ritual_error err;
    ritual_watch *w = ritual_watch_new(loop, p[0], level_read, &s, &err);
    if (!w)
        FAIL("ritual_watch_new: %s", err.message);
    ASSERT_EQ(ritual_watch_start(w, RITUAL_WATCH_READABLE), 0);
    lt_run(loop, 10000);
    ASSERT_EQ(s.calls, 10);
    ASSERT(memcmp(s.buf, sent, sizeof sent) == 0);
    run_turns(3); /* stopped: nothing more, though nothing is left either */
    ASSERT_EQ(s.calls, 10);
    ritual_watch_free(w);
    ritual_loop_free(loop);
    close(p[0]);
    close(p[1]);
    note("10 KiB read 1 KiB per callback: %d callbacks", s.calls);
}

/* ------------------------------------------------------------------ */

#define FLOW (4u << 20)

struct flow {
    int wfd;
    size_t written, read;
    int fills; /* times the writer met EAGAIN */
    int write_calls, read_calls;
    int eof;
};

static void flow_write(ritual_watch *w, unsigned events, void *data)
{
    struct flow *f = data;
    ASSERT_EQ(events, RITUAL_WATCH_WRITABLE);
    f->write_calls++;
    static char buf[4096];
    while (f->written < FLOW) {
        size_t n = FLOW - f->written < sizeof buf ? FLOW - f->written : sizeof buf;
        pattern_fill(2, f->written, buf, n);
        ssize_t r = write(f->wfd, buf, n);
        if (r < 0 && errno == EAGAIN) {
            f->fills++;
            return; /* writable again once the reader has drained some */
        }
        ASSERT(r > 0);
        f->written += (size_t)r;
    }
    /* All of it: done with the watch, and with the fd, from here. */
    ritual_watch_free(w);
    close(f->wfd);
}

static void flow_read(ritual_watch *w, unsigned events, void *data)
{
    struct flow *f = data;
    ASSERT(events & (RITUAL_WATCH_READABLE | RITUAL_WATCH_ERROR));
    f->read_calls++;
    static char buf[65536];
    for (;;) {
        ssize_t n = read(ritual_watch_fd(w), buf, sizeof buf);
        if (n < 0 && errno == EAGAIN)
            return;
        ASSERT(n >= 0);
        if (n == 0) {
            f->eof = 1;
            ASSERT_EQ(ritual_watch_start(w, 0), 0);
            ritual_loop_stop(loop);
            return;
        }
        size_t bad = pattern_mismatch(2, f->read, buf, (size_t)n);
        if (bad != (size_t)n)
            FAIL("byte %zu differs", f->read + bad);
        f->read += (size_t)n;
    }
}

static void both_directions(void)
{
    new_loop();
    int p[2];
    make_pipe(p);
    static struct flow f;
    f.wfd = p[1];
    ritual_watch *r = ritual_watch_new(loop, p[0], flow_read, &f, NULL);
    ritual_watch *w = ritual_watch_new(loop, p[1], flow_write, &f, NULL);
    ASSERT(r != NULL && w != NULL);
    ASSERT_EQ(ritual_watch_start(r, RITUAL_WATCH_READABLE), 0);
    ASSERT_EQ(ritual_watch_start(w, RITUAL_WATCH_WRITABLE), 0);
    lt_run(loop, 20000);
    ASSERT_EQ(f.written, FLOW);
    ASSERT_EQ(f.read, FLOW);
    ASSERT(f.eof);
    ASSERT(f.fills > 0); /* the pipe was full at times: writability mattered */
    ritual_watch_free(r);
    ritual_loop_free(loop);
    close(p[0]);
    note("4 MiB through a pipe: %d write callbacks (%d full), %d read callbacks", f.write_calls,
         f.fills, f.read_calls);
}

/* ------------------------------------------------------------------ */

struct hangup {
    int calls;
    unsigned events;
};

static void hangup_heard(ritual_watch *w, unsigned events, void *data)
{
    struct hangup *h = data;
    h->calls++;
    h->events = events;
    char c;
    ASSERT_EQ(read(ritual_watch_fd(w), &c, 1), 0); /* the end of the stream */
    int fd = ritual_watch_fd(w);
    ritual_watch_free(w);
    close(fd);
}

static void close_peer(ritual_timer *t, void *data)
{
    (void)t;
    close(*(int *)data);
}

static void hangup_frees_watch(void)
{
    new_loop();
    int sv[2];
    SYSCHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    static struct hangup h;
    ritual_watch *w = ritual_watch_new(loop, sv[0], hangup_heard, &h, NULL);
    ASSERT(w != NULL);
    ASSERT_EQ(ritual_watch_start(w, RITUAL_WATCH_READABLE), 0);
    ritual_timer *t = ritual_timer_new(loop, close_peer, &sv[1]);
    ASSERT_EQ(ritual_timer_start(t, 1, 0), 0);
    run_turns(20);
    ritual_timer_free(t);
    ASSERT_EQ(h.calls, 1);
    ASSERT(h.events & RITUAL_WATCH_READABLE);
    ASSERT(!fd_open(sv[0]));
    ritual_loop_free(loop);
    note("the peer's close: one callback (events 0x%x), which freed the watch and closed "
         "the fd",
         h.events);
}

/* ------------------------------------------------------------------ */

static int stopped_calls;

static void never(ritual_watch *w, unsigned events, void *data)
{
    (void)w;
    (void)events;
    (void)data;
    stopped_calls++;
}

static void stopped_hears_nothing(void)
{
    new_loop();
    int sv[2];
    SYSCHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    ASSERT_EQ(write(sv[1], "x", 1), 1);
    close(sv[1]); /* readable and hung up, for good */
    ritual_watch *w = ritual_watch_new(loop, sv[0], never, NULL, NULL);
    ASSERT(w != NULL);
    ASSERT_EQ(ritual_watch_start(w, RITUAL_WATCH_READABLE), 0);
    ASSERT_EQ(ritual_watch_start(w, 0), 0);
    run_turns(10);
    ASSERT_EQ(stopped_calls, 0);
    /* Started again: heard at once. */
    ASSERT_EQ(ritual_watch_start(w, RITUAL_WATCH_READABLE), 0);
    run_turns(2);
    ASSERT(stopped_calls > 0);
    ritual_watch_free(w);
    ritual_loop_free(loop);
    close(sv[0]);
    note("interest 0 on a ready, hung-up fd: no callback in 10 turns");
}

/* ------------------------------------------------------------------ */

static void expect_refused(int fd, int code, const char *what)
{
    ritual_error err;
    ritual_watch *w = ritual_watch_new(loop, fd, never, NULL, &err);
    if (w)
        FAIL("%s: a watch was made", what);
    if (err.code != code)
        FAIL("%s: %s, expected %s", what, err.message, ritual_strerror(code));
    note("%s: %s", what, err.message);
}

static void refusals(void)
{
    new_loop();
    expect_refused(-1, -EINVAL, "no fd");
    int p[2];
    make_pipe(p);
    int closed = SYSCHECK(dup(p[0]));
    close(closed);
    expect_refused(closed, -EBADF, "a closed fd");
    int file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    ASSERT(file >= 0);
    expect_refused(file, -EPERM, "a regular file");
    close(file);
    ritual_watch *w = ritual_watch_new(loop, p[0], never, NULL, NULL);
    ASSERT(w != NULL);
    expect_refused(p[0], -EEXIST, "the same fd twice");
    ASSERT_EQ(ritual_watch_start(w, 1u << 5), -EINVAL);
    ritual_watch_free(w);
    ASSERT_EQ(ritual_watch_start(w, RITUAL_WATCH_READABLE), -EINVAL); /* freed, not yet reaped */
    ritual_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

/* ------------------------------------------------------------------ */

static void count_call(ritual_watch *w, unsigned events, void *data)
{
    (void)w;
    (void)events;
    (*(int *)data)++;
}

static void loop_free_keeps_fds(void)
{
    new_loop();
    int p[2];
    make_pipe(p);
    ASSERT_EQ(write(p[1], "y", 1), 1);
    int r_calls = 0, w_calls = 0;
    ritual_watch *r = ritual_watch_new(loop, p[0], count_call, &r_calls, NULL);
    ritual_watch *w = ritual_watch_new(loop, p[1], count_call, &w_calls, NULL);
    ASSERT(r && w);
    ASSERT_EQ(ritual_watch_start(r, RITUAL_WATCH_READABLE), 0);
    ASSERT_EQ(ritual_watch_start(w, RITUAL_WATCH_WRITABLE), 0);
    run_turns(2);
    ASSERT_GT(r_calls, 0); /* both are ready, and heard */
    ASSERT_GT(w_calls, 0);
    ritual_loop_free(loop);
    ASSERT(fd_open(p[0]) && fd_open(p[1]));
    close(p[0]);
    close(p[1]);
    note("a loop freed with two watches open: freed, their fds left open");
}

TEST_CASES(CASE(level_triggered), CASE(both_directions), CASE(hangup_frees_watch),
           CASE(stopped_hears_nothing), CASE(refusals), CASE(loop_free_keeps_fds))
