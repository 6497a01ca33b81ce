/* backend.h - the contract between the core and a backend, whole: what a
 * backend provides (the ops table), what it may read (the io record of each
 * object it watches, and its own state), and every call it makes back into
 * the core. A backend includes this and nothing else of the library; the
 * core reaches a backend only through src/io.c, the one place that knows
 * which backend a loop runs on.
 *
 * Two kinds of backend:
 * - readiness (epoll, poll): it reports that an fd is readable or writable
 *   (ritual__io_ready) and the core makes the system calls;
 * - completion (io_uring): the kernel receives into the backend's buffers
 *   and sends the connection's output queue itself. The backend hands the
 *   results over (ritual__io_received, ritual__io_sent, ritual__io_accepted)
 *   and keeps each object alive while the kernel holds an operation of it
 *   (io->busy); the core lets go of it only on ritual__io_released. */
#ifndef RITUAL_BACKEND_H
#define RITUAL_BACKEND_H

#include "ritual.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* ---------------------------------------------------------- the io record */

/* Interest (io->events, set through ops->set) and readiness bits. */
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

/* io->busy: what a completion backend has in the kernel for an object. The
 * core reads RITUAL_BUSY_SEND (the head of the output queue is the
 * kernel's: do not touch it) and whether busy is 0 (nothing in flight); the
 * other bits are the backend's own. */
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

/* What an object is: a connection is read and written, a listener
 * accepts, the others are only ever readable. */
enum ritual_io_kind {
    RITUAL_IO_CONN = 1,
    RITUAL_IO_LISTENER,
    RITUAL_IO_SIGNAL,
    RITUAL_IO_WAKEUP,
    RITUAL_IO_WATCH, /* a user's fd (ritual_watch) */
};

/* The head of every object a backend watches, and all a backend knows of
 * it. `events` is the interest currently registered, so a change costs one
 * call and no change costs none. */
struct ritual_io {
    _Alignas(8) int fd; /* aligned: a completion backend tags the low bits of its address */
    uint8_t kind;
    uint8_t events;
    uint8_t registered : 1; /* set by ops->set, cleared by ops->forget */
    uint8_t exclusive : 1;  /* one listening socket shared by several loops: EPOLLEXCLUSIVE */
    uint8_t connecting : 1; /* a connection's outbound handshake is under way: writability
                               is its end; nothing to send yet, no error watch beside it */
    uint8_t accept_all : 1; /* a listener with no connection cap: the kernel may accept
                               continuously (else one accept per readiness, by the core) */
    /* A completion backend's operations in the kernel for this object (0:
     * none). While it is not 0 the object is not freed, even once closed:
     * the backend hands it back through ritual__io_released. */
    uint8_t busy;
};

/* ------------------------------------------------------ what it provides */

struct ritual_backend_ops {
    const char *name;
    /* Sets up the backend's state for `loop` (ritual__backend_set_state).
     * Returns 0 or a negative errno; a completion backend that fails here
     * is replaced by epoll. */
    int (*init)(ritual_loop *loop);
    void (*destroy)(ritual_loop *loop);
    /* Makes the backend watch `io` for `events` (0 keeps only errors and
     * hang-ups; RITUAL_IO_QUIET not even those) and sets io->registered;
     * returns 0 or a negative errno. */
    int (*set)(ritual_loop *loop, struct ritual_io *io, unsigned events);
    /* The fd is about to be closed: stop watching it, clear io->registered. */
    void (*forget)(ritual_loop *loop, struct ritual_io *io);
    /* Waits up to timeout_ns (-1: forever; never less), calls
     * ritual__loop_woke, then dispatches what happened. Returns 0 or a
     * negative errno. */
    int (*poll)(ritual_loop *loop, int64_t timeout_ns);
    /* Completion backends only (NULL otherwise): the loop is being freed and
     * every object is closed; wait for the kernel to finish with them, then
     * ritual__io_release_all. */
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

/* The backend's own state for a loop: init stores it, destroy frees it. It
 * is the loop's first member, so a backend reaches it with one load and
 * without knowing the rest of the loop. */
static inline void *ritual__backend_state(const ritual_loop *loop)
{
    return *(void *const *)loop;
}

static inline void ritual__backend_set_state(ritual_loop *loop, void *state)
{
    *(void **)loop = state;
}

/* ------------------------------------------------- calls into the core */

/* After each wait, before dispatching: the loop reads its clock, once per
 * iteration. */
void ritual__loop_woke(ritual_loop *loop);

/* `io` is ready for `events` (RITUAL_IO_READ, _WRITE, _ERROR). Only for a
 * registered object. */
void ritual__io_ready(ritual_loop *loop, struct ritual_io *io, unsigned events);

/* A completion backend is done with a closed object (io->busy fell to 0):
 * the core may free it now. */
void ritual__io_released(ritual_loop *loop, struct ritual_io *io);

/* The loop is being freed and the kernel holds nothing more: every closed
 * object still waiting for the backend is released. */
void ritual__io_release_all(ritual_loop *loop);

/* A connection's results on a completion backend: `len` bytes received into
 * `bytes`, a buffer the backend takes back when this returns (0: the peer's
 * FIN; negative: an error); `res` bytes of the queue's head sent (negative:
 * an error; -EAGAIN: nothing went, wait for writability). Either may close
 * the connection (io->registered is then 0). */
void ritual__io_received(struct ritual_io *io, const char *bytes, int len);
void ritual__io_sent(struct ritual_io *io, int res);

/* A listener's multishot accept gave `fd` (or minus an errno). */
void ritual__io_accepted(struct ritual_io *io, int fd);

/* The most a completion backend may receive for a connection from now
 * until it asks again: what keeps the input held within read_buffer_size
 * (0: none, the connection holds all it may). */
size_t ritual__io_receive_room(const struct ritual_io *io);

/* The iovecs of the memory chunks at the head of a connection's output
 * queue, up to the next file segment; returns their count (0 if a file
 * segment is at the head: the core sends it on writability). `*more` says
 * whether a file segment follows them (send with MSG_MORE, so that a
 * response's head shares a packet with the file's first bytes). */
int ritual__io_output_iov(const struct ritual_io *io, struct iovec *iov, int max, bool *more);

#endif /* RITUAL_BACKEND_H */
