/* conn.h - what the three parts of a connection share: conn.c (its life:
 * opening, closing, timeouts, readiness), conn_read.c (input and its buffer)
 * and conn_write.c (output and its queue). Private to the library. */
#ifndef RITUAL_CONN_PARTS_H
#define RITUAL_CONN_PARTS_H

#include "buffer.h"
#include "conn.h"
#include "loop.h"
#include "tls/tls.h"

#define READS_PER_WAKEUP 16 /* fairness: then let other connections run */
#define IOV_BATCH 64
#define INBUF_ALLOC_MIN 4096 /* one page, header included; the pooled size */
#define INBUF_HEADER offsetof(struct ritual_inbuf, data)

static inline ritual_loop *conn_loop(const ritual_conn *conn)
{
    return conn->profile->loop;
}

/* A clock reading as a tick, rounded up: a deadline counted from it can
 * only come late, never early. */
static inline uint32_t tick_of(uint64_t ns)
{
    return (uint32_t)((ns + RITUAL_NS_PER_MS - 1) / RITUAL_NS_PER_MS);
}

static inline void stamp_activity(ritual_conn *conn)
{
    conn->last_active = tick_of(conn_loop(conn)->now);
}

static inline const ritual_conn_options *opts(const ritual_conn *conn)
{
    return &conn->profile->opts;
}

static inline const ritual_conn_callbacks *cbs(const ritual_conn *conn)
{
    return &conn->profile->cbs;
}

static inline uint32_t in_len(const ritual_conn *conn)
{
    return conn->in ? conn->in->len : 0;
}

/* Something received but not yet handed over: input, or a FIN behind it. */
static inline bool has_held_input(const ritual_conn *conn)
{
    return in_len(conn) > 0 || (conn->flags & CONN_EOF_PENDING) ||
           (conn->tls && ritual__tls_holds_input(conn));
}

/* conn.c */
void ritual__conn_update_interest(ritual_conn *conn);         /* registers what the state wants */
void ritual__conn_schedule(ritual_conn *conn, uint64_t when); /* 0: cancel */
void ritual__conn_release_input(ritual_conn *conn);
void ritual__conn_finish_close(ritual_conn *conn); /* queue empty: FIN, then linger */
void ritual__conn_send_fin(ritual_conn *conn);     /* queue empty after a shutdown_write */
void ritual__conn_close_with(ritual_conn *conn, int reason); /* graceful, with a reason */
/* The user gets the connection: on_open, and on_shutdown if a drain began. */
void ritual__conn_opened(ritual_conn *conn);

/* What stops a hand-over of input, before it or inside an on_data. */
#define HELD_BACK                                                                                  \
    (CONN_PAUSED | CONN_OVER_HIGH | CONN_CLOSING | CONN_LINGERING | CONN_CLOSED | CONN_REDELIVER)

/* conn_read.c */
/* Makes *slot an input buffer for at least `need` bytes, keeping what it
 * holds (moved to the front); it grows to `max` unless `need` is more.
 * Returns 0 or -ENOMEM. */
int ritual__inbuf_reserve(ritual_loop *loop, struct ritual_inbuf **slot, size_t need, size_t max);
/* Appends `len` bytes to *slot (made, grown or compacted for them).
 * Returns 0 or -ENOMEM. */
int ritual__inbuf_append(ritual_loop *loop, struct ritual_inbuf **slot, const char *bytes,
                         size_t len, size_t max);
/* The connection's own input buffer, for at least `need` bytes. */
int ritual__conn_reserve_input(ritual_conn *conn, size_t need);
void ritual__conn_deliver(ritual_conn *conn, const char *bytes, size_t len);
void ritual__conn_deliver_held(ritual_conn *conn);
/* Hands over the plaintext held, without the FIN that may wait behind it. */
void ritual__conn_deliver_plain(ritual_conn *conn);
/* Where to append up to *room bytes of input (reserved first): the held
 * bytes moved to the front, *room cut to what fits. */
char *ritual__conn_input_tail(ritual_conn *conn, size_t *room);
/* Bytes received for a connection without TLS, already stamped and
 * counted: handed over, or held while reading is held back. */
void ritual__conn_plain_input(ritual_conn *conn, const char *bytes, size_t len);
void ritual__conn_peer_eof(ritual_conn *conn);
void ritual__conn_read(ritual_conn *conn);
void ritual__conn_linger_read(ritual_conn *conn);

/* conn_write.c */
void ritual__conn_flush(ritual_conn *conn);
/* ritual_writev below the user: bytes as they go on the wire (TLS's
 * records), also while closing. */
int ritual__conn_write_raw(ritual_conn *conn, const struct iovec *iov, int iovcnt);
/* Returns a node of the output queue to its free list (a file segment's
 * release callback runs). */
void ritual__outq_put(ritual_conn *conn, struct ritual_outq *q);

#endif
