/* internal.h - the library's private structures, shared by its files.
 * Nothing here is part of the public API; internal functions that are not
 * static carry the `ritual__` prefix so the static library exports only
 * ritual names too. */
#ifndef RITUAL_INTERNAL_H
#define RITUAL_INTERNAL_H

#include "ritual.h"
#include "ritual_list.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RITUAL_NS_PER_MS 1000000ull

/* ------------------------------------------------------------ I/O handle */

/* Interest and readiness bits, independent of the backend. */
enum {
    RITUAL_IO_READ = 1u << 0,
    RITUAL_IO_WRITE = 1u << 1,
    RITUAL_IO_ERROR = 1u << 2, /* readiness only: error or hang-up */
    /* Interest only, alone: not even errors and hang-ups. For a socket that
     * hung up cleanly while not read from: its last bytes and FIN wait in
     * it, nothing else can happen to it, and a level-triggered report of
     * the hang-up would repeat until it is read. */
    RITUAL_IO_QUIET = 1u << 3,
};

/* io->busy bits: what a completion backend has in the kernel for an object. */
enum {
    RITUAL_BUSY_READ = 1u << 0,  /* a receive, accept or wait for readability */
    RITUAL_BUSY_WRITE = 1u << 1, /* a send, or a wait for writability */
    RITUAL_BUSY_SEND = 1u << 2,  /* the write is a send: the queue's head is the kernel's */
    RITUAL_BUSY_READ_CANCEL = 1u << 3,
    RITUAL_BUSY_WRITE_CANCEL = 1u << 4,
    RITUAL_BUSY_DIRTY = 1u << 5,    /* on the backend's list of objects to look at */
    RITUAL_BUSY_WATCH = 1u << 6,    /* the read side only watches for errors (not reading) */
    RITUAL_BUSY_WAIT_OUT = 1u << 7, /* a send said EAGAIN: wait for writability first */
};

enum ritual_io_kind {
    RITUAL_IO_CONN = 1,
    RITUAL_IO_LISTENER,
    RITUAL_IO_SIGNAL,
    RITUAL_IO_WAKEUP,
};

/* The head of every object the backend watches. `events` is the interest
 * currently registered with the backend, so a change costs one call and no
 * change costs none. */
struct ritual_io {
    _Alignas(8) int fd; /* aligned: a completion backend tags the low bits of its address */
    uint8_t kind;
    uint8_t events;
    uint8_t registered : 1;
    uint8_t exclusive : 1; /* one listening socket shared by several loops: EPOLLEXCLUSIVE */
    /* A completion backend's operations in the kernel for this object (0:
     * none). While it is not 0 the object is not freed, even once closed:
     * the backend hands it back through ritual__io_released. */
    uint8_t busy;
};

/* ----------------------------------------------------------------- timers */

/* What an object embeds to be in the loop's timer heap: its slot there
 * (UINT32_MAX when not scheduled). The owner is found by `kind` and
 * container_of. The deadline lives in the heap entry, next to the other
 * deadlines the heap compares, so the owner carries only 8 bytes. */
enum ritual_timer_kind { RITUAL_TIMER_USER = 1, RITUAL_TIMER_CONN, RITUAL_TIMER_LOOP };

struct ritual_timer_node {
    uint32_t index;
    uint32_t kind;
};

struct ritual_heap_entry {
    uint64_t deadline; /* ns, monotonic */
    struct ritual_timer_node *node;
};

struct ritual_timer {
    struct ritual_timer_node node;
    struct ritual_list link;
    ritual_loop *loop;
    ritual_timer_cb cb;
    void *data;
    uint64_t repeat_ns;
};

void ritual__timer_node_init(struct ritual_timer_node *node, uint32_t kind);
/* Returns 0, or -ENOMEM if the heap could not grow (the node is then not
 * scheduled). Rescheduling a node already in the heap cannot fail. */
int ritual__timer_node_schedule(ritual_loop *loop, struct ritual_timer_node *node,
                                uint64_t deadline);
void ritual__timer_node_cancel(ritual_loop *loop, struct ritual_timer_node *node);
/* Nanoseconds from the iteration's clock to the earliest deadline (0 if it
 * has passed), or -1 if there is no timer. */
int64_t ritual__timers_next_timeout(ritual_loop *loop);
void ritual__timers_run(ritual_loop *loop);
void ritual__timers_free(ritual_loop *loop);

/* ---------------------------------------------------------------- buffers */

/* A connection's output queue is a circular list of nodes: memory chunks of
 * a fixed size drawn from a per-loop free list, and file segments sent with
 * sendfile. Both begin with this head. */
#define RITUAL_CHUNK_SIZE (16 * 1024)
#define RITUAL_OUTQ_FILE UINT32_MAX /* `end` of a file segment */

struct ritual_outq {
    struct ritual_outq *next;
    uint32_t start; /* memory: first unsent byte */
    uint32_t end;   /* memory: one past the last queued byte; or RITUAL_OUTQ_FILE */
};

struct ritual_chunk {
    struct ritual_outq q;
    char data[RITUAL_CHUNK_SIZE - sizeof(struct ritual_outq)];
};

struct ritual_file_chunk {
    struct ritual_outq q;
    int fd;
    uint64_t offset;    /* next byte to send */
    uint64_t remaining; /* bytes left to send */
    void (*release)(void *arg);
    void *arg;
};

static inline bool ritual__outq_is_file(const struct ritual_outq *q)
{
    return q->end == RITUAL_OUTQ_FILE;
}

struct ritual_chunk *ritual__chunk_get(ritual_loop *loop);
void ritual__chunk_put(ritual_loop *loop, struct ritual_chunk *chunk);
struct ritual_file_chunk *ritual__file_chunk_get(ritual_loop *loop);
void ritual__file_chunk_put(ritual_loop *loop, struct ritual_file_chunk *file);

/* A connection's own input buffer (struct ritual_inbuf, `size` bytes in all,
 * header included). 4 KiB ones are recycled. */
void *ritual__inbuf_get(ritual_loop *loop, size_t size);
void ritual__inbuf_put(ritual_loop *loop, void *buf, size_t size);
void ritual__buffers_free(ritual_loop *loop);

/* ------------------------------------------------------------ connections */

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
};

/* What a connection runs on: callbacks and options, shared by all the
 * connections of a listener, or owned by one outbound connection. */
struct ritual_conn_profile {
    ritual_conn_callbacks cbs;
    ritual_conn_options opts;
    ritual_loop *loop;
    ritual_listener *listener;   /* NULL for an outbound connection */
    uint64_t connect_timeout_ms; /* outbound only */
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
};
/* 80 bytes, plus nothing while idle: input and output buffers exist only
 * while they hold bytes, and the heap holds 16 bytes for a pending timeout. */
_Static_assert(sizeof(struct ritual_conn) == 80, "ritual_conn changed size: make it a decision");

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

/* -------------------------------------------------------------- listeners */

struct ritual_listener {
    struct ritual_io io;
    ritual_loop *loop;
    struct ritual_conn_profile profile;
    void *data;
    void *protocol_data;
    unsigned max_conns;
    size_t conns;
    unsigned refs; /* 1 while listening, +1 per open connection */
    bool closed;
    bool reaped;  /* freed once the completion backend lets go of it */
    bool drained; /* closed by a graceful shutdown, not by the user */
    bool emfile_paused;
    uint64_t emfile_backoff_ns;
    struct ritual_timer_node retry_timer;
    struct sockaddr_storage addr;
    struct ritual_list link; /* loop->listeners, then loop->dead_listeners */
};

/* Opens the listening socket for `address` (the ritual, checked at every
 * step). Returns the fd or a negative errno with `err` filled. */
int ritual__listen_socket(ritual_loop *loop, const char *address,
                          const ritual_listen_options *options,
                          const ritual_conn_callbacks *callbacks, ritual_error *err);
/* Makes a listener of `fd` on `loop`, taking the fd (closed on failure). */
ritual_listener *ritual__listener_attach(ritual_loop *loop, int fd, bool exclusive,
                                         const ritual_listen_options *options,
                                         const ritual_conn_callbacks *callbacks, ritual_error *err);
/* Accepts what the kernel already queued, then closes (a graceful shutdown). */
void ritual__listener_drain_and_close(ritual_listener *listener);
void ritual__listener_ready(ritual_listener *listener, unsigned events);
/* A completion backend accepted `fd` (or failed with minus errno). */
void ritual__listener_accepted(ritual_listener *listener, int fd);
void ritual__listener_conn_closed(ritual_listener *listener);
void ritual__listener_retry_fired(ritual_listener *listener);
void ritual__listener_unref(ritual_listener *listener);
void ritual__listeners_reap(ritual_loop *loop);
/* A completion backend let go of a closed listener. */
void ritual__listener_released(ritual_listener *listener);

/* ---------------------------------------------------------------- signals */

struct ritual_signal {
    ritual_loop *loop;
    int signum;
    ritual_signal_cb cb;
    void *data;
    struct ritual_signal *next;
};

void ritual__signals_ready(ritual_loop *loop);
void ritual__signals_free(ritual_loop *loop);

/* ------------------------------------------------------ cross-thread posts */

struct ritual_posts;
int ritual__posts_init(ritual_loop *loop);
void ritual__posts_ready(ritual_loop *loop);
/* Runs what is still queued, then frees; later posts get -ESHUTDOWN. */
void ritual__posts_free(ritual_loop *loop);

/* ---------------------------------------------------------------- backend */

/* What every backend provides: a small table, in the manner of Redis ae. */
struct ritual_backend_ops {
    const char *name;
    int (*init)(ritual_loop *loop);
    void (*destroy)(ritual_loop *loop);
    /* Makes the backend watch `io` for `events` (0 keeps only errors and
     * hang-ups; RITUAL_IO_QUIET not even those); returns 0 or a negative
     * errno. */
    int (*set)(ritual_loop *loop, struct ritual_io *io, unsigned events);
    /* The fd is about to be closed. */
    void (*forget)(ritual_loop *loop, struct ritual_io *io);
    /* Waits up to timeout_ns (-1: forever; never less) and dispatches what
     * is ready through ritual__io_ready. Returns 0 or a negative errno. */
    int (*poll)(ritual_loop *loop, int64_t timeout_ns);
    /* Completion backends only (NULL otherwise): the loop is being freed and
     * every object is closed; wait for the kernel to finish with them. */
    void (*drain)(ritual_loop *loop);
    /* Completion backends only: the loop stops running; hand the kernel
     * what is queued (cancellations: a closed listener must stop listening
     * now, not when the loop is freed). */
    void (*flush)(ritual_loop *loop);
    /* Receives into buffers of its own and sends the output queue itself:
     * the connection code does no recv and no immediate send. */
    bool completion;
};

extern const struct ritual_backend_ops ritual__backend_epoll;
extern const struct ritual_backend_ops ritual__backend_poll;
#ifdef RITUAL_HAVE_URING
extern const struct ritual_backend_ops ritual__backend_uring;
#endif

void ritual__io_ready(ritual_loop *loop, struct ritual_io *io, unsigned events);
/* A completion backend is done with a closed object (io->busy fell to 0). */
void ritual__io_released(ritual_loop *loop, struct ritual_io *io);
/* Registers the interest if it changed. Returns 0 or a negative errno. */
int ritual__io_set(ritual_loop *loop, struct ritual_io *io, unsigned events);

/* ------------------------------------------------------------------- loop */

struct ritual_loop {
    const struct ritual_backend_ops *backend;
    void *backend_data;
    bool stopping;
    bool shutting_down;
    bool forced;
    uint64_t now; /* ns, monotonic, updated once per iteration */
    ritual_log_level log_level;
    ritual_log_fn log_fn;
    void *log_data;
    void *data; /* the application's (ritual_loop_data) */

    /* shared read buffer: every connection reads here first */
    char *rbuf;
    size_t rbuf_size;
    char *rbuf_retired; /* replaced while on_data may hold it: freed at iteration end */
    bool freeing;       /* in ritual_loop_free: no new connections or listeners */
    bool signals_installed;

    struct ritual_heap_entry *heap;
    uint32_t heap_len, heap_cap;
    bool timers_running; /* inside ritual__timers_run */
    struct ritual_timer_node shutdown_timer;
    uint64_t shutdown_deadline;

    struct ritual_list conns;  /* open connections */
    struct ritual_list closed; /* closed this iteration, awaiting on_close */
    size_t conn_count;
    ritual_conn *conn_free; /* recycled connection structs, linked by `data` */
    void *conn_blocks;      /* where they were carved from, freed with the loop */

    struct ritual_chunk *chunk_free; /* linked through q.next */
    size_t chunk_free_count;
    struct ritual_file_chunk *file_chunk_free;
    size_t file_chunk_free_count;
    char **inbuf_free; /* free 4 KiB input buffers, linked through their first bytes */
    size_t inbuf_free_count;

    struct ritual_list listeners;
    struct ritual_list dead_listeners; /* freed at the end of the iteration */
    /* closed and reaped, but the backend still holds operations on them */
    struct ritual_list zombie_conns, zombie_listeners;
    struct ritual_list timers; /* user timers, freed with the loop */

    /* ritual_loop_stats: written by this loop's thread only, read anywhere */
    _Atomic uint64_t stat_accepted, stat_conns, stat_read, stat_written;

    struct ritual_io wakeup_io; /* eventfd written by ritual_loop_post */
    struct ritual_posts *posts;
    struct ritual_io signal_io; /* signalfd, fd -1 until a signal is watched */
    sigset_t signal_mask;
    ritual_signal *signals;
    bool signals_dispatching;
    int signals_seen; /* for ritual_loop_shutdown_on_signals */
    uint64_t signal_drain_ms;

    struct ritual_cleanup *cleanups; /* run by ritual_loop_free */
};

/* A hook of ritual_loop_on_free. */
struct ritual_cleanup {
    void (*fn)(void *arg);
    void *arg;
    struct ritual_cleanup *next;
};

/* A counter with one writer: a plain add, published for readers elsewhere. */
static inline void ritual__stat_add(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

uint64_t ritual__clock_ns(void);
/* Milliseconds (or microseconds) to nanoseconds, saturating far beyond any
 * real deadline instead of wrapping into the past. */
uint64_t ritual__ms_to_ns(uint64_t ms);
uint64_t ritual__us_to_ns(uint64_t us);
/* Frees a read buffer retired during the iteration. */
void ritual__loop_end_iteration(ritual_loop *loop);
/* Makes sure the shared read buffer holds at least `size` bytes. */
int ritual__loop_reserve_rbuf(ritual_loop *loop, size_t size);
/* The loop is shutting down and a connection just closed. */
void ritual__loop_check_drained(ritual_loop *loop);
/* The drain deadline of a shutdown passed. */
void ritual__loop_drain_deadline(ritual_loop *loop);

/* -------------------------------------------------------------- addresses */

/* Parses "HOST:PORT" into `out`. Returns 0 or -EINVAL with a message in err. */
int ritual__address_parse(const char *text, struct sockaddr_storage *out, socklen_t *len,
                          bool *any_host, ritual_error *err);
/* What ritual_listen and ritual_connect check first: callbacks with on_data,
 * a loop not being freed, and a well-formed address. Returns 0 or a negative
 * errno with `err` filled ("listen 1.2.3.4:80: ..."). */
int ritual__endpoint_prepare(ritual_loop *loop, const char *verb, const char *address,
                             const ritual_conn_callbacks *callbacks, struct sockaddr_storage *addr,
                             socklen_t *len, bool *any_host, ritual_error *err);
/* "1.2.3.4:80" or "[::1]:80". Returns 0 or -ENOSPC/-EAFNOSUPPORT. */
int ritual__address_format(const struct sockaddr *sa, char *buf, size_t len);

/* ----------------------------------------------------------------- errors */

#define ritual__log_enabled(loop, level) ((loop)->log_level >= (level))

#endif /* RITUAL_INTERNAL_H */
