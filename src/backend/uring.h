/* uring.h - the io_uring backend (liburing), a completion backend: the
 * kernel receives into buffers the loop provides and sends the output queue
 * itself, and one io_uring_enter per loop turn submits the turn's work and
 * waits for the next.
 *
 * - Receiving: one multishot recv per connection, taking buffers from a
 *   provided buffer ring, so an idle connection holds no buffer. on_data
 *   reads the bytes where the kernel put them; the buffer goes back to the
 *   ring as soon as the callback returns.
 * - Sending: the memory chunks at the head of the output queue, one send in
 *   flight per connection (sends on one socket are not ordered among
 *   themselves); a short send sends the rest next turn. (A write of 16 KiB
 *   or more with nothing queued is sent at once instead: conn_write.c.)
 *   sendfile has no io_uring operation: a file segment waits for
 *   writability (a poll) and goes out with sendfile as on epoll.
 * - Accepting: one multishot accept per listener without max_conns; with a
 *   cap, a poll and accept4, so that no connection is taken beyond it.
 * - Signals and the cross-thread wakeup: a poll on their descriptors.
 * - Timers: the wait's timeout (IORING_ENTER_EXT_ARG).
 *
 * Nothing is prepared for the kernel when it is asked for: set() marks the
 * object dirty and the turn's walk, just before io_uring_enter, arms or
 * cancels what its interest now wants. So every SQE names a descriptor that
 * is open at submission, and a connection closed in the same turn costs
 * nothing. Closing cancels what is in flight; the object is not freed until
 * its last completion (io->busy). A multishot operation that ends (no
 * IORING_CQE_F_MORE: an error, a full CQ, an empty buffer ring) is re-armed
 * by the walk if it is still wanted.
 *
 * Empty buffer ring (-ENOBUFS): the ring grows (doubling, up to BUF_MAX
 * buffers) and the receive is re-armed next turn; at BUF_MAX the data waits
 * in the socket, and TCP flow control pushes back on the peer. */
#ifndef RITUAL_URING_H
#define RITUAL_URING_H

#include "backend.h"

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* Incremental buffer consumption (Linux 6.12): many small receives share one
 * buffer, each placed after the last, so the memory a burst of small
 * messages touches is what they hold, not a buffer apiece. liburing 2.3
 * predates it; older kernels refuse the flag and get whole buffers. */
#ifndef IOU_PBUF_RING_INC
#define IOU_PBUF_RING_INC 2
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4) /* the buffer stays the kernel's: more goes into it */
#endif

#define SQ_ENTRIES 256 /* a fuller turn submits mid-walk; the SQEs' pages stay few */
/* Room for a turn's completions: 1,000 connections pipelined 16 deep
 * overflowed 4,096, and an overflow ends every multishot receive. Pages
 * are touched only as the CQ fills. */
#define CQ_ENTRIES 16384
#define BUF_SIZE (16 * 1024)
#define BUF_INITIAL 256 /* 4 MiB of buffers, touched only as they are used */
#define BUF_MAX 4096    /* the ring's capacity: 64 MiB of address space, reserved */
#define BGID 0
#define SEND_IOV 16    /* chunks per sendmsg */
#define SEND_SLOTS 64  /* sendmsg headers prepared between two submissions */
#define DRAIN_TURNS 50 /* of up to 20 ms each, waiting for cancellations at free */

enum { OP_READ = 1, OP_WRITE = 2 }; /* in the low bits of user_data; 0 is a cancel */

/* A sendmsg's header, read by the kernel when the SQE is submitted
 * (IORING_FEAT_SUBMIT_STABLE), so the slots are reused after each submit. */
struct send_slot {
    struct msghdr msg;
    struct iovec iov[SEND_IOV];
};

struct uring_state {
    struct io_uring ring;
    bool enabled;      /* the ring starts disabled; the thread that runs the loop enables it */
    bool running;      /* inside ritual_loop_run */
    bool arms_pending; /* SQEs naming descriptors wait in the SQ, not yet submitted */
    struct io_uring_buf_ring *br;
    char *bufs;
    uint32_t buf_count; /* buffers given to the ring so far */
    bool incremental;   /* IOU_PBUF_RING_INC: buffers are filled a piece at a time */
    uint32_t *buf_used; /* per buffer: bytes the kernel has filled so far */
    uint32_t returned;  /* given back this turn, not yet published */
    bool ran_dry;       /* a receive found the ring empty this turn */
    bool no_recv_limit; /* the kernel refused a multishot receive's byte limit */
    uint32_t inflight;  /* operations in the kernel */
    struct ritual_io **dirty;
    uint32_t dirty_len, dirty_cap;
    unsigned slots_used;
    struct send_slot slots[SEND_SLOTS];
};

static inline struct uring_state *state(ritual_loop *loop)
{
    return ritual__backend_state(loop);
}

/* uring_setup.c */
int ritual__uring_init(ritual_loop *loop);
void ritual__uring_destroy(ritual_loop *loop);
/* Gives buffer `bid` back to the ring (published by the next advance). */
void ritual__uring_give_back(struct uring_state *st, unsigned bid);
/* Adds up to `count` new buffers to the ring, within BUF_MAX. */
void ritual__uring_add_buffers(struct uring_state *st, uint32_t count);

/* uring_submit.c */
int ritual__uring_set(ritual_loop *loop, struct ritual_io *io, unsigned events);
void ritual__uring_forget(ritual_loop *loop, struct ritual_io *io);
/* After a submission: send headers and pending arms are the kernel's. */
void ritual__uring_submitted(struct uring_state *st);
/* Whether the kernel's operations for `io` match `events`. */
bool ritual__uring_in_step(const struct ritual_io *io, unsigned events);
/* Puts `io` on the list the turn's walk visits. */
void ritual__uring_mark_dirty(ritual_loop *loop, struct ritual_io *io);
/* The turn's walk (arm: also arm what interests want; else only cancel
 * and release closed objects). */
void ritual__uring_prepare(ritual_loop *loop, bool arm);

#endif
