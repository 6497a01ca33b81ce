/* buffer.h - a connection's output queue (memory chunks and file segments)
 * and its input buffer, and the loop's pools of both. Private to the
 * library. */
#ifndef RITUAL_BUFFER_H
#define RITUAL_BUFFER_H

#include "ritual.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#endif
