/* ritual.h - the whole public API of libritual.
 *
 * An event-driven TCP server library for Linux: one loop per thread, listeners
 * that perform the socket/bind/listen/accept ritual correctly, non-blocking
 * connections with library-owned buffers, timers and signals.
 *
 * Conventions
 *   - Every name starts with `ritual_`; functions are `ritual_<noun>_<verb>`.
 *   - Functions that can fail return 0 (or a pointer) on success and a
 *     negative errno value (or NULL) on failure; `ritual_strerror` names it.
 *     Functions that set up resources also fill a `ritual_error` whose message
 *     names the failing call and address: "bind 127.0.0.1:80: Permission denied".
 *   - Options structs are zero-initialised by the caller; zero means "default".
 *   - Nothing is global: all state hangs off a `ritual_loop`. A loop and
 *     everything created from it must be used from one thread at a time.
 *   - Callbacks may call any ritual function on the object they were given,
 *     including closing it; memory is released only after the callback returns.
 *
 * When things happen (the same on every backend unless said otherwise)
 *   - A callback may act on any object of its loop, not only its own: write
 *     to or close another connection, stop a timer, close a listener. An
 *     object closed during an iteration keeps its memory until the iteration
 *     ends, so pointers taken earlier in the iteration stay valid to it.
 *   - on_close runs once per connection, at the end of the iteration in
 *     which it closed (closed outside a run: at the end of the next one),
 *     never inside ritual_conn_close or ritual_write; and
 *     its memory goes when on_close returns (on io_uring, once the kernel
 *     has also let go of it). ritual_loop_free runs the on_close of those
 *     still open, with -ECANCELED.
 *   - A write reaches the kernel before ritual_write returns when nothing is
 *     queued ahead of it, on epoll and poll; on io_uring writes under 16
 *     KiB (and those behind them) are gathered and go in the loop's batched
 *     send at the end of the iteration (at most 64 KiB a connection waits
 *     so). What the kernel
 *     refuses is queued and sent as the socket drains; only that counts as
 *     queued (ritual_conn_write_queued, the watermarks, write_limit).
 *   - A loop's callbacks all run on the thread running it; ritual_loop_post
 *     is the one way in from another thread.
 */
#ifndef RITUAL_H
#define RITUAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define RITUAL_API __attribute__((visibility("default")))
#else
#define RITUAL_API
#endif

#define RITUAL_VERSION "0.1.0"

typedef struct ritual_loop ritual_loop;
typedef struct ritual_listener ritual_listener;
typedef struct ritual_conn ritual_conn;
typedef struct ritual_timer ritual_timer;
typedef struct ritual_signal ritual_signal;
typedef struct ritual_watch ritual_watch;
typedef struct ritual_tls ritual_tls; /* ritual_tls.h */

/* ---------------------------------------------------------------- errors */

/* Filled by the set-up functions that take one; `code` is a negative errno. */
typedef struct ritual_error {
    int code;
    char message[256];
} ritual_error;

/* Returns a static, human-readable description of `code` (a negative errno
 * such as -ECONNRESET, or 0 for "Success"). Never returns NULL. */
RITUAL_API const char *ritual_strerror(int code);

/* Fills `err` (if not NULL) with `code` and a message: the printf-formatted
 * text, then ": " and ritual_strerror(code). Returns `code`, so that a layer
 * built on the library reports its failures as the library does:
 * `return ritual_error_set(err, -EINVAL, "http: a handler is required");` */
RITUAL_API int ritual_error_set(ritual_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------ loop */

typedef enum ritual_log_level {
    RITUAL_LOG_DEFAULT = 0, /* RITUAL_LOG_WARN */
    RITUAL_LOG_NONE,
    RITUAL_LOG_ERROR,
    RITUAL_LOG_WARN,
    RITUAL_LOG_INFO,
    RITUAL_LOG_DEBUG,
} ritual_log_level;

typedef enum ritual_backend {
    RITUAL_BACKEND_AUTO = 0, /* the best one this kernel allows (io_uring, else
                                epoll), or the one the environment variable
                                RITUAL_BACKEND names: "io_uring", "epoll" or
                                "poll" */
    RITUAL_BACKEND_EPOLL,
    RITUAL_BACKEND_POLL,     /* portable, O(n) per wait: for sandboxes and tests */
    RITUAL_BACKEND_IO_URING, /* Linux 6.0 or later; if the kernel refuses it, the
                                loop logs a warning and runs on epoll (and so
                                do all of a server's workers if it refuses
                                any of them) */
} ritual_backend;

/* Receives each log line (no trailing newline). The default writes
 * "ritual: LEVEL: message\n" to stderr. */
typedef void (*ritual_log_fn)(void *data, ritual_log_level level, const char *line);

typedef struct ritual_loop_options {
    ritual_backend backend;
    ritual_log_level log_level;
    ritual_log_fn log_fn;
    void *log_data;
    void *data; /* the loop's data pointer from the start (ritual_loop_data) */
} ritual_loop_options;

/* Creates a loop. `options` and `err` may be NULL.
 * Returns the loop, or NULL with `err` filled (e.g. -EMFILE from epoll_create1).
 * Also sets SIGPIPE to SIG_IGN if it is still at its default action: a peer
 * that goes away must close a connection, never kill the process. */
RITUAL_API ritual_loop *ritual_loop_new(const ritual_loop_options *options, ritual_error *err);

/* Runs the loop until `ritual_loop_stop` is called, or until a shutdown
 * started by `ritual_loop_shutdown` has no connections left.
 * Returns 0, or a negative errno if waiting for events failed.
 * On io_uring the thread of the first run is the ring's only submitter:
 * later runs must be on that thread too (another gets -EEXIST). A loop may
 * be created and freed on any thread. */
RITUAL_API int ritual_loop_run(ritual_loop *loop);

/* Makes `ritual_loop_run` return after the current iteration. Safe to call
 * from any callback of this loop (not from another thread). */
RITUAL_API void ritual_loop_stop(ritual_loop *loop);

/* Graceful shutdown: accepts what the kernel already queued on each listener,
 * then closes it (no new connections; none already completed is reset), lets open
 * connections carry on for up to `drain_ms` milliseconds, and calls each
 * connection's `on_shutdown` so a protocol can close idle ones. The loop stops
 * when the last connection has closed, or at the deadline, when the remaining
 * connections are closed with reason -ECANCELED. Calling it again only ever
 * shortens the deadline. */
RITUAL_API void ritual_loop_shutdown(ritual_loop *loop, uint64_t drain_ms);

/* Installs SIGINT and SIGTERM handlers on the loop: the first signal starts
 * `ritual_loop_shutdown(loop, drain_ms)`, a second one stops the loop at once,
 * and `ritual_loop_run` then returns -ECANCELED. Calling it again only changes
 * drain_ms. Returns 0 or a negative errno. */
RITUAL_API int ritual_loop_shutdown_on_signals(ritual_loop *loop, uint64_t drain_ms);

/* Frees the loop and everything still attached to it: open connections are
 * closed (their `on_close` runs with -ECANCELED), listeners, timers and
 * signal handles are freed. Pointers to them are invalid afterwards. */
RITUAL_API void ritual_loop_free(ritual_loop *loop);

typedef void (*ritual_post_fn)(ritual_loop *loop, void *arg);

/* Asks the loop to call fn(loop, arg) on its own thread, soon: the one
 * function that may be called from any thread. Calls posted from one thread
 * run in the order they were posted; each runs exactly once (calls still
 * queued when the loop is freed run inside ritual_loop_free).
 * Returns 0, -ENOMEM, or -ESHUTDOWN once ritual_loop_free has begun; no
 * thread may post once ritual_loop_free has returned. */
RITUAL_API int ritual_loop_post(ritual_loop *loop, ritual_post_fn fn, void *arg);

/* As ritual_loop_post, unless `max_pending` calls already wait to run:
 * then -EAGAIN and nothing is queued. A producer that outruns the loop (a
 * fan-out to a slow worker) learns it here, rather than growing the queue
 * without bound. Any thread. */
RITUAL_API int ritual_loop_try_post(ritual_loop *loop, ritual_post_fn fn, void *arg,
                                    size_t max_pending);

/* Calls posted to the loop that have not started yet: its backlog, from
 * any thread (a snapshot: other threads may post meanwhile). */
RITUAL_API size_t ritual_loop_posts_pending(const ritual_loop *loop);

/* What a loop has done, readable from any thread without a lock (each
 * counter is written by the loop's thread only). */
typedef struct ritual_loop_stats {
    uint64_t accepted;      /* connections accepted or connected so far */
    uint64_t conns;         /* connections open now */
    uint64_t bytes_read;    /* received from peers */
    uint64_t bytes_written; /* handed to the kernel for peers */
    uint64_t drain_cut;     /* connections a drain deadline cut (on_close
                               with -ECANCELED): 0 after a clean drain */
    /* Connections closed so far, by on_close's reason. */
    uint64_t closed_clean;    /* 0: an orderly close */
    uint64_t closed_reset;    /* -ECONNRESET, -EPIPE: the peer reset */
    uint64_t closed_timeout;  /* -ETIMEDOUT: idle, or a close that could
                                 not flush */
    uint64_t closed_overflow; /* -ENOBUFS: write_limit, full read buffer */
    uint64_t closed_aborted;  /* -ECONNABORTED: ritual_conn_abort */
    uint64_t closed_canceled; /* -ECANCELED: drain deadline, loop freed */
    uint64_t closed_other;    /* anything else (-EPROTO: TLS or a PROXY
                                 header failed; connect errors) */
    /* Every connection counted in `accepted` is counted once in closed_*
     * when it closes, whether or not on_close ran (a TLS handshake that
     * failed, an outbound connection that never connected: -ECONNREFUSED
     * is closed_other, a connect timeout closed_timeout). So accepted ==
     * conns + the sum of closed_*, up to the moment of each read. */
} ritual_loop_stats;

RITUAL_API void ritual_loop_stats_get(const ritual_loop *loop, ritual_loop_stats *out);

/* The application's pointer for this loop (per-worker state, say): NULL
 * unless set here or by ritual_loop_options.data. The library never reads
 * it, and the layers built into it (HTTP) never set it. */
RITUAL_API void ritual_loop_set_data(ritual_loop *loop, void *data);
RITUAL_API void *ritual_loop_data(const ritual_loop *loop);

/* The index of the ritual_server worker that runs this loop (0 to
 * workers - 1), or -1 for a loop of one's own or a server's control loop. */
RITUAL_API int ritual_loop_worker(const ritual_loop *loop);

/* Makes ritual_loop_free call fn(arg) once every connection of the loop has
 * closed (their on_close has run) and the backend has let go of them, while
 * the loop's timers still exist: where a layer built on the loop (a
 * protocol's per-loop state, as the HTTP layer's) frees what its
 * connections used. Hooks run in reverse order of registration, each once.
 * Returns 0 or -ENOMEM. */
RITUAL_API int ritual_loop_on_free(ritual_loop *loop, void (*fn)(void *arg), void *arg);

/* Calls fn(loop, arg) on the loop's thread when accepting a connection on
 * one of its listeners fails for want of descriptors (EMFILE, ENFILE),
 * before accepting pauses: where an application closes descriptors it
 * keeps only as a cache (ritual http's idle open files). `fn` returns how
 * many it closed; if any, accepting resumes at the next iteration, without
 * the pause's backoff or its warning; if none, the pause goes on as
 * without a hook (until a connection closes, or a backoff of 50 ms
 * doubling to 1 s). Once `fn` has freed some, it is not asked again
 * until a connection is accepted: a shortage that comes back at once
 * takes the pause. `fn` may close connections and files; it must not
 * close or drain the listeners. One per loop: a later call replaces it, a NULL `fn` removes
 * it. Set it before the loop runs or on its thread. */
typedef size_t (*ritual_fds_short_fn)(ritual_loop *loop, void *arg);
RITUAL_API void ritual_loop_on_fds_short(ritual_loop *loop, ritual_fds_short_fn fn, void *arg);

/* Milliseconds on the monotonic clock, as of the start of this iteration. */
RITUAL_API uint64_t ritual_loop_now(const ritual_loop *loop);

/* The same clock in microseconds (CLOCK_MONOTONIC, so comparable with a
 * clock_gettime of one's own): when the loop woke for what it is handling
 * now, as the HTTP layer's latency counts from. */
RITUAL_API uint64_t ritual_loop_now_us(const ritual_loop *loop);

/* Per-loop state of a layer built into the library, found from the loop on
 * any thread: the HTTP layer keeps its counters here, for
 * ritual_http_stats_get. Set once per loop and layer, on the thread that
 * owns the loop (before it runs, or on its thread); the pointer is
 * published with release order and read with acquire, so what was written
 * to the state before it was set is seen by any reader. Returns 0, or
 * -EEXIST if the layer's state is set already (it is kept), or -EINVAL for
 * an unknown layer. The layer frees its state (ritual_loop_on_free). */
typedef enum ritual_loop_layer { RITUAL_LOOP_LAYER_HTTP = 0, RITUAL_LOOP_LAYERS } ritual_loop_layer;
RITUAL_API int ritual_loop_set_layer_state(ritual_loop *loop, ritual_loop_layer layer, void *state);
/* The layer's state, or NULL if never set. Any thread. */
RITUAL_API void *ritual_loop_layer_state(const ritual_loop *loop, ritual_loop_layer layer);

/* Number of open connections on the loop (accepted and not yet closed). */
RITUAL_API size_t ritual_loop_conn_count(const ritual_loop *loop);

/* Name of the I/O backend the loop runs on: "io_uring", "epoll" or "poll". */
RITUAL_API const char *ritual_loop_backend_name(const ritual_loop *loop);

/* Writes a line to the loop's log if `level` is enabled (printf format). */
RITUAL_API void ritual_log(ritual_loop *loop, ritual_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------- connections */

/* Called by the loop for each connection. Only `on_data` is required. */
typedef struct ritual_conn_callbacks {
    /* A connection was accepted (or, outbound, connected). Set its data
     * pointer here. */
    void (*on_open)(ritual_conn *conn);
    /* Bytes arrived. `bytes` holds everything received and not yet consumed.
     * Return how many leading bytes you consumed; the rest stays buffered and
     * is handed over again, with more, on the next call (or, if reading was
     * held back by the high watermark, once the queue drains). A connection whose
     * buffer is full (read_buffer_size) and consumes nothing is closed with
     * -ENOBUFS. */
    size_t (*on_data)(ritual_conn *conn, const char *bytes, size_t len);
    /* The peer closed its sending side (FIN). Reading stops; writing still
     * works. If NULL, the connection is closed gracefully. */
    void (*on_eof)(ritual_conn *conn);
    /* Output that had to be queued went out: the queue emptied, or, having
     * passed the high watermark, fell below the low one and reading resumed
     * (unless paused by the user; with keep_reading it never stopped). Not called for writes the
     * kernel took at once, which were never queued (see ritual_conn_write_queued). */
    void (*on_drain)(ritual_conn *conn);
    /* The loop started a graceful shutdown. If NULL, nothing happens and the
     * connection runs until it closes or the drain deadline passes. */
    void (*on_shutdown)(ritual_conn *conn);
    /* The connection is gone; its memory is released when this returns.
     * `reason` is 0 for an orderly close, else a negative errno:
     * -ECONNRESET/-EPIPE (peer reset), -ETIMEDOUT (idle timeout, or a close that could not flush),
     * -ENOBUFS (write limit or full read buffer), -ECONNABORTED
     * (ritual_conn_abort), -ECANCELED (shutdown deadline or ritual_loop_free),
     * -EPROTO (TLS failed: a bad record, or a stream cut without
     * close_notify; ritual_tls.h). */
    void (*on_close)(ritual_conn *conn, int reason);
} ritual_conn_callbacks;

typedef struct ritual_conn_options {
    uint64_t idle_timeout_ms;    /* close after this long without I/O (reset
                                    at once if output is stuck: the peer
                                    stopped reading); 0: never */
    uint64_t close_timeout_ms;   /* a closing connection that makes no progress
                                    for this long is cut; default 10 s */
    size_t read_buffer_size;     /* bytes read at once, and the most kept
                                    unconsumed per connection, on every
                                    backend (the rest waits in the kernel);
                                    default 64 KiB */
    size_t write_high_watermark; /* stop reading above this much queued output
                                    (ritual_conn_write_queued); default 1 MiB */
    size_t write_low_watermark;  /* resume reading below; default high / 4 */
    size_t write_limit;          /* close (-ENOBUFS) above; default 64 MiB */
    int keep_reading;            /* nonzero: go on reading whatever is queued
                                    (a relay, which throttles the other side
                                    itself); the watermarks then only drive
                                    on_drain and ritual_conn_write_blocked */
    int nagle;                   /* nonzero keeps Nagle's algorithm; by default
                                    TCP_NODELAY is set */
} ritual_conn_options;

/* Queues `len` bytes for sending. If nothing is queued yet they are sent at
 * once and only what the kernel did not take is copied.
 * Returns 0, -EPIPE if the connection is closing or closed or its sending
 * side was shut (ritual_conn_shutdown_write), or -ENOBUFS if
 * the queue would exceed write_limit (the connection is then closed). A send
 * error closes the connection and is returned (-ECONNRESET, -EPIPE). */
RITUAL_API int ritual_write(ritual_conn *conn, const void *data, size_t len);

/* As ritual_write for several pieces, sent with one system call. */
RITUAL_API int ritual_writev(ritual_conn *conn, const struct iovec *iov, int iovcnt);

/* As ritual_write, without copying: the bytes stay the caller's until
 * `release(arg)` (may be NULL) runs, exactly once: at once if the kernel
 * took them all, else when the last byte is sent or the connection drops
 * them (it closed; on io_uring a send in flight may make that come after
 * on_close). Keep them unchanged until then. A broadcast writes one buffer
 * to many connections this way, counting references. Counts as queued
 * output like any write (watermarks, write_limit). Returns as ritual_write,
 * or -EINVAL above RITUAL_WRITE_REF_MAX bytes; release runs on every
 * return path. */
#define RITUAL_WRITE_REF_MAX (UINT32_C(1) << 30)
RITUAL_API int ritual_write_ref(ritual_conn *conn, const void *data, size_t len,
                                void (*release)(void *arg), void *arg);

/* Queues `len` bytes of the file `fd` from `offset`, after what is already
 * queued; they are sent with sendfile(2), never copied through user space.
 * `release(arg)` (may be NULL) runs exactly once, when the bytes are sent or
 * dropped (the connection closed); keep the fd open until then. While a file
 * segment is queued the connection counts as over its high watermark, so
 * reading waits until it has gone out. Returns 0, -EPIPE if the connection
 * is closing or closed, -ENOMEM, or a send error (the connection is then
 * closed); a file shorter than promised closes the connection with -EIO. */
RITUAL_API int ritual_write_file(ritual_conn *conn, int fd, uint64_t offset, uint64_t len,
                                 void (*release)(void *arg), void *arg);

/* Closes gracefully: no more on_data; queued output is flushed, then a FIN
 * is sent and the connection closes once the peer closes too (or after
 * close_timeout_ms). on_close follows with reason 0. Idempotent. */
RITUAL_API void ritual_conn_close(ritual_conn *conn);

/* Closes at once with a TCP RST, dropping queued output. on_close follows
 * with -ECONNABORTED. Idempotent. */
RITUAL_API void ritual_conn_abort(ritual_conn *conn);

/* Half-close: sends a FIN once the queued output is out (or, for an
 * outbound connection, once connected), and keeps reading: on_data and
 * on_eof go on as before, and the connection closes as usual (on_eof with
 * no handler, ritual_conn_close, a timeout). From this call on, writes
 * return -EPIPE. A proxy passes a client's EOF on this way without losing
 * the reply. Returns 0 (also when called again), -EPIPE if the connection
 * is closing or closed, or the error shutdown(2) gave (it is then closed). */
RITUAL_API int ritual_conn_shutdown_write(ritual_conn *conn);

/* Stops reading from the connection (the loop no longer wakes for its
 * input) until ritual_conn_resume. */
RITUAL_API void ritual_conn_pause(ritual_conn *conn);
RITUAL_API void ritual_conn_resume(ritual_conn *conn);

/* Replaces the connection's idle timeout (0 disables it). */
RITUAL_API void ritual_conn_set_idle_timeout(ritual_conn *conn, uint64_t ms);

RITUAL_API void ritual_conn_set_data(ritual_conn *conn, void *data);

/* Replaces the connection's callbacks (copied) from the next call on: how a
 * protocol hands a connection over to another (HTTP's 101 Switching
 * Protocols, ritual_http_upgrade). on_open is not called again. Input held
 * and not yet consumed goes to the new on_data. Returns 0, -EINVAL without
 * an on_data, -EPIPE if the connection is closing or closed, or -ENOMEM. */
RITUAL_API int ritual_conn_set_callbacks(ritual_conn *conn, const ritual_conn_callbacks *callbacks);
RITUAL_API void *ritual_conn_data(const ritual_conn *conn);

/* Bytes written and not yet taken by the kernel, file segments included:
 * what the watermarks, write_limit and on_drain count, the same on every
 * backend. A write goes to the kernel at once when nothing is queued ahead
 * of it, so this is what the kernel refused. (io_uring gathers small writes
 * for the loop turn's batched send; they count once the kernel refuses some,
 * and a connection's gathered bytes go to the kernel at once before they
 * pass 64 KiB.) A program that limits what it queues per connection (a
 * chat server's per-client cap) reads this. */
RITUAL_API size_t ritual_conn_write_queued(const ritual_conn *conn);

/* 1 while the connection's own output holds its reading back: the queue
 * passed write_high_watermark and has not yet fallen to write_low_watermark,
 * or a file segment waits to be sent. (With keep_reading, 1 while the queue
 * is between the two, and reading goes on.) Meanwhile no on_data is called; when
 * it ends, held input is handed over again and on_drain runs. A protocol
 * that answers several pipelined requests in one on_data stops taking them
 * when this turns 1 and returns what it consumed: the rest waits, bounded by
 * read_buffer_size, and what follows it waits in the kernel. */
RITUAL_API int ritual_conn_write_blocked(const ritual_conn *conn);

/* Bytes received and not yet consumed by on_data: what ritual_conn_resume,
 * or the queue draining, hands over again. 0 when the library holds none. */
RITUAL_API size_t ritual_conn_input_held(const ritual_conn *conn);

/* 1 once the connection is going away: ritual_conn_close or
 * ritual_conn_abort was called, or it failed or timed out. No on_data
 * follows, writes return -EPIPE, and on_close will run. 0 while open (also
 * while an outbound connection is still connecting). */
RITUAL_API int ritual_conn_closing(const ritual_conn *conn);

RITUAL_API ritual_loop *ritual_conn_loop(const ritual_conn *conn);

/* The listener that accepted the connection; NULL for an outbound one. */
RITUAL_API ritual_listener *ritual_conn_listener(const ritual_conn *conn);

/* The socket, for getsockopt, shutdown and the like; do not read, write,
 * close or dup it (the loop closes it, and relies on close() removing it
 * from the backend). After shutdown(fd, SHUT_WR), the peer's last bytes and
 * FIN still arrive as on_data and on_eof, even if reading was paused when
 * the peer finished. */
RITUAL_API int ritual_conn_fd(const ritual_conn *conn);

/* Writes the peer's address ("127.0.0.1:5555", "[::1]:5555") into `buf`:
 * the client's as a PROXY header gave it (ritual_listen_options.proxy_from),
 * else the socket's peer; "unix:" for a unix-socket peer (they are
 * unnamed). Returns 0 or a negative errno. */
RITUAL_API int ritual_conn_peer(const ritual_conn *conn, char *buf, size_t len);

/* The address the socket itself is connected to, whatever a PROXY header
 * said: the proxy's, behind one. Returns 0 or a negative errno. */
RITUAL_API int ritual_conn_socket_peer(const ritual_conn *conn, char *buf, size_t len);

/* The credentials of the process at the other end of a unix-socket
 * connection (SO_PEERCRED: as they were when it connected). Any of the
 * pointers may be NULL. Returns 0, or -ENOTSUP on a TCP connection. */
RITUAL_API int ritual_conn_peer_cred(const ritual_conn *conn, pid_t *pid, uid_t *uid, gid_t *gid);

/* ------------------------------------------------- outbound connections */

typedef struct ritual_connect_options {
    ritual_conn_options conn;
    uint64_t timeout_ms;     /* give up on the handshake after this; default 10 s */
    void *data;              /* the connection's data pointer from the start */
    ritual_tls *tls;         /* TLS (ritual_tls_client_new); NULL: plain. on_open
                                then waits for the TLS handshake too */
    const char *server_name; /* TLS: the name sent as SNI and verified in the
                                certificate; NULL: the address's IP, verified */
} ritual_connect_options;

/* Connects to `address` ("HOST:PORT" as for ritual_listen; HOST may not be
 * `*`; or a unix socket, "unix:/path" or abstract "unix:@name") without
 * blocking. on_open runs once the handshake completes; if it
 * fails, on_close runs instead with the reason (-ECONNREFUSED, -ETIMEDOUT,
 * ...) and on_open never does. Writes before on_open are queued. `options`
 * may be NULL; `callbacks` is copied. Returns the connection, or NULL with
 * `err` filled if the connect could not even start. */
RITUAL_API ritual_conn *ritual_connect(ritual_loop *loop, const char *address,
                                       const ritual_connect_options *options,
                                       const ritual_conn_callbacks *callbacks, ritual_error *err);

/* ------------------------------------------------------------ listeners */

/* Parses an address as ritual_listen does (no DNS lookups), so a program
 * can reject a malformed one before it sets anything up: "HOST:PORT" and
 * "unix:" addresses fill `out` (an AF_UNIX address for these); "fd:N" and
 * "systemd:NAME" are only checked for form (what they name is checked when
 * listening), and leave `out` zeroed. `out` and `len` may be NULL. Returns
 * 0, or -EINVAL with `err` saying what is wrong. */
RITUAL_API int ritual_address_parse(const char *address, struct sockaddr_storage *out,
                                    socklen_t *len, ritual_error *err);

/* Checks a PROXY protocol source list (ritual_listen_options.proxy_from) as
 * ritual_listen does, so a program can reject a malformed one before it
 * sets anything up. Returns 0, or -EINVAL with `err` naming the entry
 * ("'10.0.0.0/33': not an address or CIDR"); an empty list is -EINVAL too
 * here (it would trust no TCP peer: most likely a variable left unset). */
RITUAL_API int ritual_proxy_from_check(const char *list, ritual_error *err);

enum {
    /* SO_REUSEPORT: several sockets (loops, processes) listen on one port
     * and the kernel spreads new connections over them. */
    RITUAL_LISTEN_REUSEPORT = 1u << 0,
    /* With `tls`: a connection whose first byte cannot begin a TLS
     * handshake is handed over unencrypted (ritual_conn_tls_info says
     * -ENOPROTOOPT) instead of closed, so that the protocol can answer in
     * plain text; HTTP answers 400, as nginx does. */
    RITUAL_LISTEN_TLS_PLAINTEXT = 1u << 1,
};

typedef struct ritual_listen_options {
    int backlog;              /* default: net.core.somaxconn */
    unsigned flags;           /* RITUAL_LISTEN_* */
    unsigned max_conns;       /* stop accepting at this many; 0: no limit */
    ritual_conn_options conn; /* for every accepted connection */
    void *data;               /* the application's: see ritual_listener_data */
    void *protocol_data;      /* a protocol layered on the listener (the HTTP
                                 layer): ritual_listener_protocol_data */
    ritual_tls *tls;          /* TLS for every accepted connection
                                 (ritual_tls.h); NULL: plain */
    /* PROXY protocol (HAProxy's, v1 text or v2 binary), for a server
     * behind a load balancer: every connection from these sources must
     * begin with a PROXY header, whose source address then stands for the
     * peer's (ritual_conn_peer; a v2 LOCAL header, a balancer's health
     * check, keeps the socket's). Comma-separated addresses or CIDRs,
     * "10.0.0.0/8,192.168.1.7,::1/128" (an IPv4 range also matches
     * IPv4-mapped IPv6 peers). A connection from any other source, or
     * whose header is malformed or incomplete after proxy_timeout_ms, is
     * closed before on_open. On a unix: listener every peer is trusted
     * (the socket file's mode decides who connects): give "" or any list.
     * Checked when listening (-EINVAL). NULL: no PROXY header expected. */
    const char *proxy_from;
    uint64_t proxy_timeout_ms; /* default 5 s */
    /* A unix:/path listener's socket file: its permission bits (0: as
     * bind makes it, 0777 less the umask) and owner, "USER[:GROUP]" (names
     * or numbers; NULL: this process's). */
    unsigned unix_mode;
    const char *unix_owner;
} ritual_listen_options;

/* Listens on `address`, one of:
 *   HOST:PORT     HOST is an IPv4 address, [IPv6], `localhost` (127.0.0.1),
 *                 or empty or `*` for every address (IPv6 and IPv4 when the
 *                 kernel has IPv6, else IPv4). PORT 0 picks a free port;
 *                 read it back with ritual_listener_address. SO_REUSEADDR
 *                 is set so a restart binds while old connections sit in
 *                 TIME_WAIT.
 *   unix:/path    a unix socket file. A file already there is replaced
 *                 only if it is a socket nobody listens on (a crashed
 *                 server's); anything else is -EADDRINUSE. Mode and owner:
 *                 unix_mode, unix_owner. The file is removed when the
 *                 listener closes, unless an upgrade took the socket over.
 *   unix:@name    an abstract unix socket (no file).
 *   fd:N          descriptor N, a listening stream socket this process was
 *                 given (by a supervisor); checked to be one.
 *   systemd:NAME  the sockets systemd passed under that name (socket
 *                 activation: LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES; a
 *                 socket unit's FileDescriptorName=, by default the unit's
 *                 name), every one of them; checked to be listening stream
 *                 sockets meant for this process.
 * Whatever the form, if this process was started by ritual_server_upgrade
 * and inherited sockets for that same address string, those are taken
 * instead (no bind): the old process's queue is served, nothing dropped.
 * The socket is non-blocking and close-on-exec. `options` may be NULL;
 * `callbacks` is copied. Returns the listener (the first, for several
 * sockets), or NULL with `err` filled: -EINVAL for a malformed address,
 * else the errno of the call named in the message ("fd:7: not a listening
 * socket", "systemd:web: no socket of that name (LISTEN_FDNAMES: http)",
 * "bind unix:/run/x.sock: Address already in use"). */
RITUAL_API ritual_listener *ritual_listen(ritual_loop *loop, const char *address,
                                          const ritual_listen_options *options,
                                          const ritual_conn_callbacks *callbacks,
                                          ritual_error *err);

/* Writes the bound address ("127.0.0.1:41234", "[::]:80", "unix:/run/x.sock",
 * "unix:@name") into `buf`. Returns 0 or a negative errno. */
RITUAL_API int ritual_listener_address(const ritual_listener *listener, char *buf, size_t len);

/* The bound port (useful after asking for port 0). */
RITUAL_API int ritual_listener_port(const ritual_listener *listener);

/* The application's pointer given as ritual_listen_options.data. A
 * protocol built on the library keeps its own state in protocol_data
 * instead, so this stays the application's on its listeners too. */
RITUAL_API void *ritual_listener_data(const ritual_listener *listener);
RITUAL_API void *ritual_listener_protocol_data(const ritual_listener *listener);

/* Open connections accepted by this listener. */
RITUAL_API size_t ritual_listener_conn_count(const ritual_listener *listener);

/* Hands `fd`, a connected stream socket (TCP, or one end of a socketpair),
 * to the listener as if it had accepted it: the connection runs on the
 * listener's callbacks and options (on_open runs before this returns). The
 * socket is made non-blocking and belongs to the library from here on, also
 * on failure, when it is closed. For sockets accepted elsewhere (handed over
 * by a supervisor) and for tests and fuzzers. max_conns is not checked
 * (the caller decided to hand it over). Returns 0, -EINVAL if the listener
 * is closed, or a negative errno. */
RITUAL_API int ritual_listener_adopt(ritual_listener *listener, int fd);

/* Stops accepting and closes the listening socket. Connections it accepted
 * stay open; the listener's memory goes with the last of them. */
RITUAL_API void ritual_listener_close(ritual_listener *listener);

/* --------------------------------------------------------------- servers */

/* A server runs one loop per worker thread; each worker owns the
 * connections it accepts, so nothing on the data path is shared or locked.
 *
 * Which thread runs what: a worker's loop runs on a thread of its own, and
 * with it the connections its listeners accept, their callbacks, the
 * timers made on that loop and the calls posted to it. The control loop
 * (ritual_server_control_loop) runs on the thread that calls
 * ritual_server_run: the signals of ritual_server_shutdown_on_signals, and
 * the timers and posts one makes on it, and the connections of listeners
 * made on it (a metrics endpoint, say, that answers while the workers are
 * busy; ritual_server_stats_get does not count them). Per-worker
 * state goes in each worker's loop (ritual_loop_set_data from
 * on_worker_start; ritual_loop_worker tells the index): the options.data of
 * ritual_server_listen is shared by every worker's listener. */
typedef struct ritual_server ritual_server;

typedef enum ritual_accept_mode {
    /* A listening socket per worker with SO_REUSEPORT: the kernel hashes each
     * connection to one worker. Even spread, no thundering herd. */
    RITUAL_ACCEPT_REUSEPORT = 0,
    /* One listening socket in every worker's epoll with EPOLLEXCLUSIVE: the
     * kernel wakes one waiting worker, the one that waited last. */
    RITUAL_ACCEPT_SHARED,
} ritual_accept_mode;

typedef struct ritual_server_options {
    unsigned workers; /* default: the number of online CPUs */
    ritual_accept_mode accept_mode;
    int pin;                  /* nonzero: pin worker i to CPU i (modulo the CPUs) */
    ritual_loop_options loop; /* for every worker's loop */
    /* On each worker's thread, before its loop first runs: set up what the
     * worker owns (ritual_loop_set_data, timers, connections out). */
    void (*on_worker_start)(ritual_server *server, ritual_loop *loop);
    /* On each worker's thread, once its loop has stopped (after a drain its
     * connections are closed; after ritual_server_stop they close in
     * ritual_server_free, whose thread then runs their on_close). */
    void (*on_worker_stop)(ritual_server *server, ritual_loop *loop);
    void *data; /* the application's: ritual_server_data */
    /* Nonzero: talk to the service manager (systemd's notify protocol, if
     * $NOTIFY_SOCKET is set; nothing otherwise): READY=1 and MAINPID once
     * ritual_server_run has every worker's loop running, STOPPING=1 when a
     * shutdown or stop begins, and, if $WATCHDOG_USEC is set for this
     * process, WATCHDOG=1 every half of it for as long as every worker's
     * loop answers (a stuck worker stops the pings, and systemd restarts
     * the service). */
    int notify;
} ritual_server_options;

/* Creates the server and its workers' loops (threads start in run).
 * Returns NULL with `err` filled on failure. */
RITUAL_API ritual_server *ritual_server_new(const ritual_server_options *options,
                                            ritual_error *err);

/* Listens on `address` in every worker (see ritual_listen; max_conns counts
 * per worker). A socket that is not the server's to create per worker (a
 * unix: one, fd:N, systemd:NAME, one inherited by an upgrade) is shared by
 * every worker as RITUAL_ACCEPT_SHARED does, whatever the accept mode. Call before
 * ritual_server_run. Returns worker 0's listener, whose address tells the port when 0 was asked, or
 * NULL with `err` filled. */
RITUAL_API ritual_listener *ritual_server_listen(ritual_server *server, const char *address,
                                                 const ritual_listen_options *options,
                                                 const ritual_conn_callbacks *callbacks,
                                                 ritual_error *err);

/* Runs every worker on a thread of its own and returns when all have
 * stopped: 0, -ECANCELED after ritual_server_stop, or a loop's error. A
 * drain whose deadline cut connections still returns 0; how many it cut is
 * ritual_server_stats_get's drain_cut. */
RITUAL_API int ritual_server_run(ritual_server *server);

/* Any thread: every worker stops accepting (taking what the kernel already
 * queued) and drains its connections for up to drain_ms. */
RITUAL_API void ritual_server_shutdown(ritual_server *server, uint64_t drain_ms);

/* Any thread: every worker stops at once; ritual_server_run returns -ECANCELED. */
RITUAL_API void ritual_server_stop(ritual_server *server);

/* SIGINT/SIGTERM: the first drains (ritual_server_shutdown), a second
 * stops. Call from the thread that will call ritual_server_run. */
RITUAL_API int ritual_server_shutdown_on_signals(ritual_server *server, uint64_t drain_ms);

RITUAL_API unsigned ritual_server_workers(const ritual_server *server);

/* The sum of every worker's ritual_loop_stats (any thread; after
 * ritual_server_run, drain_cut says whether the drain was clean). */
RITUAL_API void ritual_server_stats_get(const ritual_server *server, ritual_loop_stats *out);

/* ritual_server_options.data. */
RITUAL_API void *ritual_server_data(const ritual_server *server);

/* The loop that runs on the thread calling ritual_server_run (see above):
 * for timers and posts that concern the whole server, such as a periodic
 * report of ritual_server_stats_get. */
RITUAL_API ritual_loop *ritual_server_control_loop(const ritual_server *server);

/* Calls ritual_loop_post(worker's loop, fn, arg) for every worker. Returns
 * 0, or the first error (the workers before it got the call). Any thread. */
RITUAL_API int ritual_server_post_all(ritual_server *server, ritual_post_fn fn, void *arg);

/* Worker `index`'s loop (NULL if out of range), e.g. for ritual_loop_stats_get. */
RITUAL_API ritual_loop *ritual_server_loop(const ritual_server *server, unsigned index);

/* Binary upgrade without dropping a connection, as nginx's: starts a new
 * process (`path` with `argv`) that inherits every listening socket of the
 * server, its workers' and its control loop's. In the new process,
 * ritual_listen and ritual_server_listen of the same address strings take
 * those sockets instead of binding (see ritual_listen). Once its
 * ritual_server_run has every worker running, it tells this process, which
 * then shuts down gracefully (ritual_server_shutdown with drain_ms):
 * connections the kernel queued meanwhile wait in the shared sockets for
 * one process or the other, and none is reset. If the new process exits or
 * is not ready within ready_timeout_ms (it is then killed), this one goes
 * on serving. Call on the control thread (a ritual_server_signal_new
 * callback: SIGUSR2, as nginx). Returns the new process's pid, or a
 * negative errno with `err` filled: -EALREADY while an upgrade is under
 * way. The sockets travel as systemd's do (LISTEN_PID, LISTEN_FDS,
 * LISTEN_FDNAMES, each named by its address, percent-encoded), and the
 * readiness through a pipe named by RITUAL_UPGRADE_FD. */
typedef struct ritual_upgrade_options {
    const char *path;          /* NULL: the executable this process started
                                  from (the file at that path now: a new
                                  build installed over it) */
    char *const *argv;         /* NULL: this process's arguments */
    uint64_t ready_timeout_ms; /* default 60 s */
    uint64_t drain_ms;         /* this process's drain once the new one is ready */
    /* On the control thread, once the upgrade is decided: error 0, the new
     * process `pid` is ready and this one is draining; else why it failed
     * (-ETIMEDOUT, -ECHILD: it exited first), and this one serves on. May
     * be NULL. */
    void (*on_done)(ritual_server *server, int pid, int error, void *data);
    void *data;
} ritual_upgrade_options;

RITUAL_API int ritual_server_upgrade(ritual_server *server, const ritual_upgrade_options *options,
                                     ritual_error *err);

/* Sends `state` to the service manager as one datagram over $NOTIFY_SOCKET
 * (systemd's sd_notify protocol, without libsystemd): "READY=1",
 * "RELOADING=1", "STATUS=...", lines joined by '\n'. Returns 1 if sent, 0
 * without a $NOTIFY_SOCKET, or a negative errno. Any thread. */
RITUAL_API int ritual_notify(const char *state);

/* Frees the server and its loops; call after ritual_server_run returned. */
RITUAL_API void ritual_server_free(ritual_server *server);

/* ------------------------------------------------------------ processes */

/* A server started as root to bind port 80, a unix socket in /run or a key
 * file only root reads, then serving as "www-data". `user_group` is
 * "USER[:GROUP]", names or numbers: without GROUP, the user's primary
 * group; a user number with no passwd entry needs its GROUP.
 *
 * ritual_user_check only resolves it (getpwnam_r, getpwuid_r, getgrnam_r),
 * changing nothing: for a program to refuse an unknown user at start-up,
 * before anything is bound. Returns 0, or -EINVAL (malformed, no such user,
 * no such group, a number with no entry and no GROUP) or the lookup's
 * negative errno, with `err` saying "user 'USER[:GROUP]': no such user".
 *
 * ritual_drop_privileges becomes that user: supplementary groups
 * (initgroups for a named user, else the group alone), setgid, setuid, each
 * checked, then verified (the real, effective and saved ids are the
 * target's, and setuid(0) fails unless the target is root). Does nothing
 * if the process already runs as that uid and gid (a binary upgrade of a
 * dropped server runs the same command line again). Call it once every
 * listener is bound and every file is open, before ritual_server_run:
 * glibc's setuid applies to every thread, but workers should not have
 * started. Returns 0, or a negative errno with `err` filled (as above, or
 * -EPERM "user 'www-data': Operation not permitted (only root can change
 * user)", or the failing call's): then the process may still be root, or
 * half-dropped, and must not go on serving. */
RITUAL_API int ritual_user_check(const char *user_group, ritual_error *err);
RITUAL_API int ritual_drop_privileges(const char *user_group, ritual_error *err);

/* --------------------------------------------------------------- timers */

typedef void (*ritual_timer_cb)(ritual_timer *timer, void *data);

/* Creates a stopped timer. Returns NULL if out of memory. */
RITUAL_API ritual_timer *ritual_timer_new(ritual_loop *loop, ritual_timer_cb cb, void *data);

/* (Re)starts the timer: it fires once after `timeout_ms` milliseconds, never
 * earlier, then every `repeat_ms` if that is nonzero. Returns 0, or -ENOMEM. */
RITUAL_API int ritual_timer_start(ritual_timer *timer, uint64_t timeout_ms, uint64_t repeat_ms);

/* As ritual_timer_start, in microseconds. The loop waits with nanosecond
 * timeouts (epoll_pwait2) where the kernel has them, so short timers are
 * kept to within the kernel's timer slack (50 us by default). */
RITUAL_API int ritual_timer_start_us(ritual_timer *timer, uint64_t timeout_us, uint64_t repeat_us);

RITUAL_API void ritual_timer_stop(ritual_timer *timer);

/* Returns 1 if the timer is started and will fire, else 0. */
RITUAL_API int ritual_timer_active(const ritual_timer *timer);

/* Stops and frees the timer; allowed inside its own callback. */
RITUAL_API void ritual_timer_free(ritual_timer *timer);

/* -------------------------------------------------------------- signals */

typedef void (*ritual_signal_cb)(ritual_signal *signal, int signum, void *data);

/* Delivers `signum` to `cb` inside the loop (through a signalfd). The signal
 * is blocked in the calling thread; threads created afterwards inherit that,
 * and threads created before must block it themselves. Returns NULL with
 * `err` filled on failure. */
RITUAL_API ritual_signal *ritual_signal_new(ritual_loop *loop, int signum, ritual_signal_cb cb,
                                            void *data, ritual_error *err);

/* Stops delivering and frees the handle. The signal stays blocked. */
RITUAL_API void ritual_signal_free(ritual_signal *signal);

/* Delivers `signum` to `cb` on the thread that calls ritual_server_run, as
 * ritual_signal_new does for a loop (the signal is blocked in the calling
 * thread and so in the workers it starts). Call before ritual_server_run,
 * from the thread that will call it; the handle lives until
 * ritual_server_free. For a program's own signals: reopening logs,
 * reloading. Returns NULL with `err` filled on failure. */
RITUAL_API ritual_signal *ritual_server_signal_new(ritual_server *server, int signum,
                                                   ritual_signal_cb cb, void *data,
                                                   ritual_error *err);

/* ----------------------------------------------------------- fd watchers */

/* Readiness of a descriptor the application owns (a pipe, an inotify or
 * timer fd, a database client's socket), so that it joins the loop as
 * uv_poll_t or libevent's event_new do. The loop does no I/O on it: the
 * callback reads or writes it, without blocking. Level-triggered on every
 * backend: while the fd stays ready and the interest stays on, the callback
 * runs on every iteration. */
enum {
    RITUAL_WATCH_READABLE = 1u << 0,
    RITUAL_WATCH_WRITABLE = 1u << 1,
    RITUAL_WATCH_ERROR = 1u << 2, /* reported only: an error or a hang-up */
};

/* `events` says what is ready: the bits of the interest that are, and
 * RITUAL_WATCH_ERROR (with any interest on) for an error or a hang-up. */
typedef void (*ritual_watch_cb)(ritual_watch *watch, unsigned events, void *data);

/* A watch of `fd`, with no interest yet (ritual_watch_start). The fd stays
 * the caller's: the loop never closes it. Returns NULL with `err` filled:
 * -EINVAL without an fd or a callback, -EBADF for a closed fd, -EPERM for a
 * regular file or a directory (always ready: read it), -EEXIST if another
 * watch of this loop has the fd, -ENOMEM. */
RITUAL_API ritual_watch *ritual_watch_new(ritual_loop *loop, int fd, ritual_watch_cb cb, void *data,
                                          ritual_error *err);

/* Replaces the interest with `events` (RITUAL_WATCH_READABLE and/or
 * _WRITABLE; 0 stops the watch, which then hears not even errors). Returns
 * 0, -EINVAL for other bits or a freed watch, or a negative errno from the
 * backend (-ENOMEM). */
RITUAL_API int ritual_watch_start(ritual_watch *watch, unsigned events);

RITUAL_API int ritual_watch_fd(const ritual_watch *watch);

/* Stops and frees the watch; allowed inside its own callback, which then
 * never runs again. Free it before closing its fd (or in the same
 * callback): a descriptor number closed under a watch may be reused by the
 * next open. ritual_loop_free frees the watches still open. */
RITUAL_API void ritual_watch_free(ritual_watch *watch);

#ifdef __cplusplus
}
#endif

#endif /* RITUAL_H */
