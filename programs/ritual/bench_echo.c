/* bench_echo.c - the echo workload of `ritual bench`: each connection sends a
 * byte stream of its own and checks that every byte comes back as sent.
 *
 * Connection c's stream is a window sliding over one random pattern, so
 * sending needs no generation (the bytes are written straight from the
 * pattern) and checking is a memcmp. A message is `size` consecutive bytes of
 * the stream; it is answered when its last byte is back, and its latency is
 * measured from its send time (closed loop) or from its scheduled time (open
 * loop, so a stalled server shows in the latency instead of hiding in a
 * slower send rate: no coordinated omission). */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define PAT_LEN 65521u /* prime, so streams of different connections differ */
#define OPEN_LOOP_RING 1024u

/* Written once before the threads start, read-only after. Twice PAT_LEN
 * long so that any PAT_LEN bytes from an offset below PAT_LEN are contiguous. */
static char *pattern;

struct bench_conn {
    struct bench_thread *t;
    ritual_conn *conn;
    uint64_t origin;   /* this stream's offset into the pattern */
    uint64_t sent;     /* stream bytes written */
    uint64_t received; /* stream bytes back and checked */
    uint64_t *stamps;  /* ring: when each message in flight was sent or due */
    uint32_t ring_mask, head, inflight;
    bool open; /* connected */
    bool dead; /* given up on (an error was counted) */
};

int bench_echo_prepare(const struct bench_config *cfg)
{
    (void)cfg;
    pattern = malloc(2 * PAT_LEN);
    if (!pattern)
        return -ENOMEM;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (unsigned i = 0; i < PAT_LEN; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        pattern[i] = (char)(x >> 32);
    }
    memcpy(pattern + PAT_LEN, pattern, PAT_LEN);
    return 0;
}

void bench_echo_cleanup(void)
{
    free(pattern);
    pattern = NULL;
}

/* Writes the next `n` bytes of the connection's stream. */
static void send_stream(struct bench_conn *bc, uint64_t n)
{
    while (n > 0) {
        struct iovec iov[16];
        int cnt = 0;
        while (n > 0 && cnt < 16) {
            uint64_t pos = (bc->origin + bc->sent) % PAT_LEN;
            size_t piece = n < PAT_LEN ? (size_t)n : PAT_LEN;
            iov[cnt].iov_base = pattern + pos;
            iov[cnt].iov_len = piece;
            cnt++;
            bc->sent += piece;
            n -= piece;
        }
        if (ritual_writev(bc->conn, iov, cnt) < 0)
            return; /* the connection is closed; on_close counts it */
    }
}

/* Sends `count` messages, each stamped `stamp`. */
static void send_messages(struct bench_conn *bc, unsigned count, uint64_t stamp)
{
    for (unsigned i = 0; i < count; i++)
        bc->stamps[(bc->head + bc->inflight + i) & bc->ring_mask] = stamp;
    bc->inflight += count;
    send_stream(bc, (uint64_t)count * bc->t->cfg->size);
}

static void give_up(struct bench_conn *bc)
{
    bc->dead = true;
    ritual_conn_abort(bc->conn);
}

static bool matches_stream(const struct bench_conn *bc, const char *bytes, size_t len)
{
    uint64_t at = bc->received;
    while (len > 0) {
        uint64_t pos = (bc->origin + at) % PAT_LEN;
        size_t piece = len < PAT_LEN ? len : PAT_LEN;
        if (memcmp(bytes, pattern + pos, piece) != 0)
            return false;
        bytes += piece;
        len -= piece;
        at += piece;
    }
    return true;
}

static size_t on_data(ritual_conn *conn, const char *bytes, size_t len)
{
    struct bench_conn *bc = ritual_conn_data(conn);
    struct bench_thread *t = bc->t;
    size_t size = t->cfg->size;
    if (bc->dead)
        return len;
    if (bc->received + len > bc->sent || !matches_stream(bc, bytes, len)) {
        t->errors.verify++;
        bench_note_error(t, "connection %u: echoed bytes differ from those sent at offset %llu",
                         (unsigned)(bc - t->conns) + t->first_id, (unsigned long long)bc->received);
        give_up(bc);
        return len;
    }
    uint64_t done = (bc->received + len) / size - bc->received / size;
    bc->received += len;
    if (done == 0)
        return len;

    uint64_t now = bench_clock_ns();
    for (uint64_t i = 0; i < done; i++) {
        uint64_t stamp = bc->stamps[bc->head];
        bc->head = (bc->head + 1) & bc->ring_mask;
        bc->inflight--;
        if (t->running) {
            hist_record(&t->hist, now > stamp ? now - stamp : 0);
            atomic_fetch_add_explicit(&t->messages, 1, memory_order_relaxed);
            t->bytes += size;
        }
    }
    /* Closed loop: replace every answered message with a new one. */
    if (t->running && t->cfg->rate == 0)
        send_messages(bc, (unsigned)done, now);
    return len;
}

static void on_open(ritual_conn *conn)
{
    struct bench_conn *bc = ritual_conn_data(conn);
    bc->open = true;
    bench_conn_settled(bc->t);
}

static void on_shutdown(ritual_conn *conn)
{
    ritual_conn_close(conn);
}

static void on_close(ritual_conn *conn, int reason)
{
    struct bench_conn *bc = ritual_conn_data(conn);
    struct bench_thread *t = bc->t;
    bc->conn = NULL;
    if (!bc->open) {
        t->errors.connect++;
        bench_note_error(t, "connect %s: %s", t->cfg->target, ritual_strerror(reason));
        bench_conn_settled(t);
    } else if (!t->ended && !bc->dead) {
        t->errors.reset++;
        bench_note_error(t, "connection closed mid-run: %s",
                         reason ? ritual_strerror(reason) : "closed by the server");
    }
    bc->open = false;
    bc->dead = true;
}

int bench_echo_start_thread(struct bench_thread *t)
{
    const struct bench_config *cfg = t->cfg;
    uint32_t ring = OPEN_LOOP_RING;
    if (cfg->rate == 0) {
        ring = 1;
        while (ring < cfg->pipeline)
            ring <<= 1;
    }
    t->conns = calloc(t->nconns, sizeof *t->conns);
    uint64_t *stamps = calloc((size_t)t->nconns * ring, sizeof *stamps);
    if (!t->conns || !stamps) {
        free(stamps);
        return -ENOMEM;
    }
    static const ritual_conn_callbacks cbs = {
        .on_open = on_open,
        .on_data = on_data,
        .on_shutdown = on_shutdown,
        .on_close = on_close,
    };
    ritual_connect_options opts = {
        .timeout_ms = 10000, .tls = cfg->tls, .server_name = cfg->tls_sni};
    /* Idle timeouts are the server's business; ours is the message timeout. */
    opts.conn.read_buffer_size = 64 * 1024;
    for (unsigned i = 0; i < t->nconns; i++) {
        struct bench_conn *bc = &t->conns[i];
        bc->t = t;
        bc->origin = ((uint64_t)(t->first_id + i) * 7919u) % PAT_LEN;
        bc->stamps = stamps + (size_t)i * ring;
        bc->ring_mask = ring - 1;
        opts.data = bc;
        ritual_error err;
        bc->conn = ritual_connect(t->loop, cfg->target, &opts, &cbs, &err);
        if (!bc->conn) {
            bc->dead = true;
            t->errors.connect++;
            bench_note_error(t, "%s", err.message);
            bench_conn_settled(t);
        }
    }
    return 0;
}

void bench_echo_window_opened(struct bench_thread *t)
{
    if (t->cfg->rate > 0)
        return; /* the tick timer sends */
    uint64_t now = bench_clock_ns();
    for (unsigned i = 0; i < t->nconns; i++)
        if (t->conns[i].open && !t->conns[i].dead)
            send_messages(&t->conns[i], t->cfg->pipeline, now);
}

void bench_echo_tick(struct bench_thread *t)
{
    uint64_t now = bench_clock_ns();
    for (;;) {
        uint64_t due = t->start_ns + (uint64_t)((double)t->next_k * t->step_ns);
        if (due > now)
            break;
        struct bench_conn *bc = &t->conns[t->next_k % t->nconns];
        t->next_k++;
        if (!bc->open || bc->dead)
            continue;
        if (bc->inflight > bc->ring_mask) {
            t->errors.overload++;
            bench_note_error(t, "more than %u messages in flight on one connection",
                             bc->ring_mask + 1);
            give_up(bc);
            continue;
        }
        send_messages(bc, 1, due);
    }
}

void bench_echo_check(struct bench_thread *t)
{
    uint64_t now = bench_clock_ns();
    uint64_t limit = t->cfg->timeout_ms * 1000000ull;
    for (unsigned i = 0; i < t->nconns; i++) {
        struct bench_conn *bc = &t->conns[i];
        if (bc->open && !bc->dead && bc->inflight && now - bc->stamps[bc->head] > limit) {
            t->errors.timeout++;
            bench_note_error(t, "no answer for %.1f s", (double)t->cfg->timeout_ms / 1000);
            give_up(bc);
        }
    }
}

void bench_echo_stop_thread(struct bench_thread *t)
{
    if (t->conns)
        free(t->conns[0].stamps);
    free(t->conns);
    t->conns = NULL;
}
