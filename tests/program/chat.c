/* examples/chat.c with two workers, as its users see it.
 *
 * lines_in_order_staller_cut: four clients each send 1,500 lines while
 *   reading; each gets every other client's lines, all of them, each
 *   sender's in the order sent, and never its own. A fifth client that
 *   never reads is cut once its queue passes the server's bound (it sees
 *   the end of its stream, having got less than everything), and the others
 *   finish regardless. Then SIGTERM: each is told, the stream ends, and the
 *   server exits 0. */
#include "support.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TALKERS 4
#define LINES 1500
#define LINE_LEN                                                                                   \
    1000 /* bytes, newline included: the staller is owed 6 MB, more than                           \
            the kernel buffers (4 MiB at most here) and the server's bound */

static const char welcome[] = "* welcome\n";
static const char bye[] = "* the server is shutting down\n";

struct talker {
    int fd;
    int id;
    int sent_lines;
    char out[LINE_LEN];
    size_t out_off; /* of the line being sent */
    char in[64 << 10];
    size_t in_len;
    int next[TALKERS]; /* the next line number expected from each */
    int got_bye, ended;
};

static void make_line(struct talker *t)
{
    int n = snprintf(t->out, sizeof t->out, "t%d %d ", t->id, t->sent_lines);
    memset(t->out + n, 'a' + t->id, LINE_LEN - 1 - (size_t)n);
    t->out[LINE_LEN - 1] = '\n';
    t->out_off = 0;
}

/* A few lines at a time, so that reading keeps pace with three talkers. */
static void talker_send(struct talker *t)
{
    for (int burst = 0; burst < 8 && t->sent_lines < LINES;) {
        ssize_t w =
            send(t->fd, t->out + t->out_off, LINE_LEN - t->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (w < 0)
            FAIL("talker %d: send: %s", t->id, strerror(errno));
        t->out_off += (size_t)w;
        if (t->out_off < LINE_LEN)
            return;
        t->sent_lines++;
        burst++;
        make_line(t);
    }
}

static void take_line(struct talker *t, const char *line, size_t len)
{
    if (len == sizeof bye - 1 && memcmp(line, bye, len) == 0) {
        t->got_bye = 1;
        return;
    }
    int from, n;
    if (len != LINE_LEN || sscanf(line, "t%d %d ", &from, &n) != 2 || from < 0 || from >= TALKERS)
        FAIL("talker %d got a line that no one sent: %.*s", t->id, (int)len, line);
    if (from == t->id)
        FAIL("talker %d got its own line %d back", t->id, n);
    if (n != t->next[from])
        FAIL("talker %d: line %d of talker %d came when %d was due", t->id, n, from, t->next[from]);
    t->next[from]++;
}

/* Reads all there is: a talker must keep up with three others, or the
 * server rightly cuts it as one that stopped reading. */
static void talker_receive(struct talker *t)
{
    for (;;) {
        ssize_t n = recv(t->fd, t->in + t->in_len, sizeof t->in - t->in_len, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0)
            FAIL("talker %d: recv: %s", t->id, strerror(errno));
        if (n == 0) {
            if (t->in_len != 0)
                FAIL("talker %d: the stream ended inside a line", t->id);
            t->ended = 1;
            return;
        }
        t->in_len += (size_t)n;
        size_t used = 0;
        for (;;) {
            char *nl = memchr(t->in + used, '\n', t->in_len - used);
            if (!nl)
                break;
            size_t len = (size_t)(nl - (t->in + used)) + 1;
            take_line(t, t->in + used, len);
            used += len;
        }
        memmove(t->in, t->in + used, t->in_len - used);
        t->in_len -= used;
    }
}

static int all_heard(const struct talker *t)
{
    for (int j = 0; j < TALKERS; j++)
        if (j != t->id && t->next[j] != LINES)
            return 0;
    return 1;
}

/* Pumps until done(t) holds for every talker. */
static void pump(struct talker *t, int (*done)(const struct talker *), int timeout_ms,
                 const char *what)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int left = 0;
        struct pollfd p[TALKERS];
        for (int i = 0; i < TALKERS; i++) {
            left += !done(&t[i]);
            p[i].fd = t[i].ended ? -1 : t[i].fd;
            p[i].events = POLLIN | (t[i].sent_lines < LINES ? POLLOUT : 0);
        }
        if (!left)
            return;
        if (now_ms() > deadline)
            FAIL("%d talkers not done (%s) within %d ms", left, what, timeout_ms);
        int r = poll(p, TALKERS, 500);
        if (r < 0 && errno == EINTR)
            continue;
        SYSCHECK(r);
        for (int i = 0; i < TALKERS; i++) {
            if (p[i].revents & POLLOUT)
                talker_send(&t[i]);
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR))
                talker_receive(&t[i]);
        }
    }
}

static int told_and_ended(const struct talker *t)
{
    return t->got_bye && t->ended;
}

static void lines_in_order_staller_cut(void)
{
    const char *argv[] = {example_program("chat"), "127.0.0.1:0", "2", NULL};
    struct server s;
    server_start_argv(argv, 0, &s);
    /* A line is for the clients there when it is sent: everyone waits for
     * the welcome (sent once the server has it in its list) before anyone
     * talks. The staller reads that, and never again. */
    int staller = tcp_connect_rcvbuf(s.port, 4096);
    recv_exact(staller, (char[sizeof welcome - 1]){0}, sizeof welcome - 1, 5000);
    static struct talker t[TALKERS];
    for (int i = 0; i < TALKERS; i++) {
        t[i].id = i;
        t[i].fd = tcp_connect(s.port);
        char w[sizeof welcome - 1];
        recv_exact(t[i].fd, w, sizeof w, 5000);
        ASSERT(memcmp(w, welcome, sizeof w) == 0);
        set_nonblocking(t[i].fd, 1);
        make_line(&t[i]);
    }
    uint64_t start = now_ms();
    pump(t, all_heard, 60000, "every line heard");
    note("%d talkers x %d lines, each heard by the other %d in order, in %llu ms", TALKERS, LINES,
         TALKERS - 1, (unsigned long long)(now_ms() - start));

    /* The staller was cut: the end of its stream, with less than everything. */
    set_nonblocking(staller, 0);
    static char buf[TALKERS * LINES * LINE_LEN];
    size_t got;
    int end = recv_to_end(staller, buf, sizeof buf, &got, 10000);
    note("the client that never read got %zu of %d bytes, then %s", got, TALKERS * LINES * LINE_LEN,
         end == STREAM_EOF ? "the end of the stream" : "a reset");
    ASSERT_LT(got, (size_t)TALKERS * LINES * LINE_LEN);
    close(staller);
    size_t len;
    char *err = file_read(s.stderr_path, &len);
    ASSERT(err != NULL);
    if (!strstr(err, "a client that stopped reading was cut"))
        FAIL("no word of the cut client on the server's stderr: %s", err);
    free(err);

    SYSCHECK(kill(s.pid, SIGTERM));
    pump(t, told_and_ended, 10000, "told of the shutdown, then the end of the stream");
    for (int i = 0; i < TALKERS; i++)
        close(t[i].fd); /* the server's closes complete: its drain ends */
    if (!server_wait(&s, 10000))
        FAIL("the server did not exit within 10 s of its drain");
    server_expect_clean_exit(&s);
}

TEST_CASES(CASE(lines_in_order_staller_cut))
