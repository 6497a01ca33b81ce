/* conn.h - a connection as the rest of the core sees it: its state, its
 * profile (callbacks and options), and the calls the loop, the listeners
 * and the dispatch point make on it. Private to the library. */
#ifndef RITUAL_CONN_H
#define RITUAL_CONN_H

#include "backend/backend.h"
#include "ritual.h"
#include "ritual_list.h"
#include "timer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum {
    CONN_PAUSED = 1u << 0,       /* the user paused reading */
    CONN_OVER_HIGH = 1u << 1,    /* write queue passed the high watermark */
    CONN_EOF = 1u << 2,          /* the peer sent FIN */
    CONN_CLOSING = 1u << 3,      /* close requested: flushing */
    CONN_LINGERING = 1u << 4,    /* FIN sent; reading and discarding */
    CONN_CLOSED = 1u << 5,       /* fd closed; on_close pending */
    CONN_REDELIVER = 1u << 6,    /* resumed with input left: hand it over again */
    CONN_CONNECTING = 1u << 7,   /* outbound, waiting for the handshake */
    CONN_DELIVERING = 1u << 8,   /* inside on_data: `in` must outlive the call */
    CONN_FILE_QUEUED = 1u << 9,  /* the output queue holds a file segment */
    CONN_REAPED = 1u << 10,      /* on_close ran; the backend still holds operations */
    CONN_EOF_PENDING = 1u << 11, /* the FIN came in behind input not yet handed over */
    CONN_HUNG_UP = 1u << 12,     /* both directions shut cleanly while not reading */
    CONN_BACKED_UP = 1u << 13,   /* the kernel refused output: the queue counts */
    CONN_SHUT_WR = 1u << 14,     /* our side shut by the user: FIN once the queue is out */
    CONN_ABOVE_HIGH = 1u << 15,  /* keep_reading: the queue passed the high watermark and
                                    on_drain is due at the low one; reading goes on */
};

/* No more writes: closing, closed, or our side shut (ritual_write: -EPIPE). */
#define CONN_NO_WRITES (CONN_CLOSING | CONN_LINGERING | CONN_CLOSED | CONN_SHUT_WR)

/* What a connection runs on: callbacks and options, shared by all the
 * connections of a listener, or owned by one outbound connection. */
struct ritual_conn_profile {
    ritual_conn_callbacks cbs;
    ritual_conn_options opts;
    ritual_loop *loop;
    ritual_listener *listener;   /* NULL for an outbound connection */
    ritual_tls *tls;             /* accepted connections: TLS (a reference) */
    bool tls_plaintext;          /* RITUAL_LISTEN_TLS_PLAINTEXT */
    bool own;                    /* one connection's own copy (ritual_conn_set_callbacks) */
    bool local;                  /* unix-domain sockets: no TCP options */
    uint64_t connect_timeout_ms; /* outbound only */
    int connect_error;           /* outbound: a unix connect refused at once
                                    (errno), reported from the loop */
};

/* Fills in the defaults of zero fields. */
void ritual__conn_options_defaults(ritual_conn_options *o);

/* A connection's own input: exists only while it holds unconsumed bytes,
 * `len` of them from data + start. Consuming moves `start`, so a pipeline
 * taken one request at a time costs no copy per request; the bytes move to
 * the front only when an append needs the room. */
struct ritual_inbuf {
    uint32_t start; /* first byte held */
    uint32_t len;   /* bytes held */
    uint32_t size;  /* capacity of data */
    char data[];
};

/* Timeouts are kept in 32-bit millisecond ticks of the monotonic clock and
 * compared modulo 2^32, so every timeout is capped below 2^31 ms (24 days). */
#define RITUAL_TIMEOUT_MAX_MS 0x7fffffffu

struct ritual_conn {
    struct ritual_io io; /* fd and registered interest */
    uint16_t flags;
    int16_t close_reason; /* 0 or a negative errno */
    uint32_t idle_ms;     /* 0: no idle timeout */
    struct ritual_timer_node timer;
    uint32_t out_len;     /* bytes queued in memory chunks (not files) */
    uint32_t last_active; /* tick of the last progress (rounded up); start of lingering */
    const struct ritual_conn_profile *profile;
    void *data;
    struct ritual_inbuf *in;      /* NULL while nothing is left unconsumed */
    struct ritual_outq *out_tail; /* the queue is circular: out_tail->next is its head */
    struct ritual_list link;      /* in loop->conns while open, loop->closed after */
    struct ritual_tls_conn *tls;  /* NULL: plain (tls/tls.h) */
    /* PROXY protocol (proxy.h): the client's address a header gave, or the
     * marker of a header still awaited; NULL without one. */
    const struct ritual_proxy_peer *proxy;
};
/* 96 bytes, plus nothing while idle: input and output buffers exist only
 * while they hold bytes, and the heap holds 16 bytes for a pending timeout.
 * TLS state is one pointer, so a plain connection pays 8 bytes for it; the
 * PROXY protocol's another 8 (the address itself, 28 bytes, is pooled and
 * exists only on a connection whose header carried one). */
_Static_assert(sizeof(struct ritual_conn) == 96, "ritual_conn changed size: make it a decision");

/* Sets up a socket as a connection: accepted, or `connecting` outbound (then
 * on_open waits for the handshake). Returns 0, or a negative errno after
 * closing the fd without calling any callback. */
int ritual__conn_open(ritual_loop *loop, const struct ritual_conn_profile *profile, int fd,
                      bool connecting, ritual_conn **out);
void ritual__conn_ready(ritual_conn *conn, unsigned events);
/* A completion backend's results: `len` bytes received into `bytes` (0: the
 * peer's FIN; negative: an error), and `res` bytes of the queue's head sent
 * (negative: an error). */
void ritual__conn_received(ritual_conn *conn, const char *bytes, int len);
void ritual__conn_sent(ritual_conn *conn, int res);
/* The most a completion backend may receive for the connection from now
 * until it asks again: what keeps the input held within read_buffer_size
 * (0: none, the connection holds all it may). */
size_t ritual__conn_receive_room(const ritual_conn *conn);
/* The iovecs of the memory chunks at the head of the queue, up to the next
 * file segment; returns their count (0 if a file segment is at the head). */
int ritual__conn_output_iov(const ritual_conn *conn, struct iovec *iov, int max);
void ritual__conn_timer_fired(ritual_conn *conn);
/* Closes the socket now, without flushing, reporting `reason`. */
void ritual__conn_terminate(ritual_conn *conn, int reason);
/* Calls on_close and frees the connections closed during this iteration
 * (those a completion backend still holds wait in loop->zombie_conns). */
void ritual__conns_reap(ritual_loop *loop);
/* A completion backend let go of a closed connection. */
void ritual__conn_released(ritual_conn *conn);
/* Returns the memory of every connection struct; none may be in use. */
void ritual__conns_free_blocks(ritual_loop *loop);

#endif
