/* loop.h - the loop's own state, which every part of the core hangs off.
 * Private to the library. */
#ifndef RITUAL_LOOP_H
#define RITUAL_LOOP_H

#include "backend/backend.h"
#include "ritual.h"
#include "ritual_list.h"
#include "timer.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The classes of on_close's reason that ritual_loop_stats counts, in the
 * order of its closed_* fields. */
enum {
    RITUAL__CLOSED_CLEAN,
    RITUAL__CLOSED_RESET,
    RITUAL__CLOSED_TIMEOUT,
    RITUAL__CLOSED_OVERFLOW,
    RITUAL__CLOSED_ABORTED,
    RITUAL__CLOSED_CANCELED,
    RITUAL__CLOSED_OTHER,
    RITUAL__CLOSED_REASONS
};

struct ritual_loop {
    void *backend_data; /* first: see ritual__backend_state */
    /* Read only by io.c, the dispatch point; the rest of the core knows
     * what it needs as properties: */
    const struct ritual_backend_ops *backend;
    bool gathers;       /* small writes wait for the turn's batched send (io_uring) */
    bool uring_refused; /* io_uring was asked for (or auto) and refused: epoll runs */
    bool stopping;
    bool shutting_down;
    bool forced;
    uint64_t now; /* ns, monotonic, updated once per iteration */
    ritual_log_level log_level;
    ritual_log_fn log_fn;
    void *log_data;
    void *data;                    /* the application's (ritual_loop_data) */
    ritual_fds_short_fn fds_short; /* ritual_loop_on_fds_short, or NULL */
    void *fds_short_arg;
    int worker_index; /* which worker of a ritual_server runs it; -1: none */

    /* shared read buffer: every connection reads here first */
    char *rbuf;
    size_t rbuf_size;
    char *rbuf_retired;          /* replaced while on_data may hold it: freed at iteration end */
    struct ritual_tls_loop *tls; /* TLS's buffers, made on first use (tls/tls.h) */
    bool freeing;                /* in ritual_loop_free: no new connections or listeners */
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
    struct ritual_proxy_peer *proxy_free; /* PROXY clients' addresses (proxy.h) */
    size_t inbuf_free_count;

    struct ritual_list listeners;
    struct ritual_list dead_listeners; /* freed at the end of the iteration */
    /* closed and reaped, but the backend still holds operations on them */
    struct ritual_list zombie_conns, zombie_listeners;
    /* closed by a drain while a completion backend still has an accept of
     * theirs in the kernel: kept, to serve what it accepts (listener.c) */
    struct ritual_list held_listeners;
    struct ritual_list timers; /* user timers, freed with the loop */
    /* fd watchers: open, freed this iteration, freed but still held by
     * the backend */
    struct ritual_list watches, dead_watches, zombie_watches;

    /* ritual_loop_stats: written by this loop's thread only, read anywhere */
    _Atomic uint64_t stat_accepted, stat_conns, stat_read, stat_written, stat_drain_cut;
    _Atomic uint64_t stat_closed[RITUAL__CLOSED_REASONS]; /* by ritual__close_class */
    /* ritual_loop_layer_state: set once, read from any thread */
    _Atomic(void *) layers[RITUAL_LOOP_LAYERS];

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

/* Frees a read buffer retired during the iteration. */
void ritual__loop_end_iteration(ritual_loop *loop);
/* Makes sure the shared read buffer holds at least `size` bytes. */
int ritual__loop_reserve_rbuf(ritual_loop *loop, size_t size);
/* The loop is shutting down and a connection just closed. */
void ritual__loop_check_drained(ritual_loop *loop);
/* The drain deadline of a shutdown passed. */
void ritual__loop_drain_deadline(ritual_loop *loop);

#define ritual__log_enabled(loop, level) ((loop)->log_level >= (level))

#endif
