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
 * a fixed size drawn from a per-loop free list, the caller's own memory
 * (ritual_write_ref), and file segments sent with sendfile. All begin with
 * this head. */
#define RITUAL_CHUNK_SIZE (16 * 1024)

enum ritual_outq_kind {
    RITUAL_OUTQ_MEMORY, /* a struct ritual_chunk: bytes copied in */
    RITUAL_OUTQ_REF,    /* a struct ritual_file_chunk naming the caller's bytes */
    RITUAL_OUTQ_FILE,   /* a struct ritual_file_chunk naming a file's */
};

struct ritual_outq {
    struct ritual_outq *next;
    uint32_t start; /* memory and refs: first unsent byte */
    uint32_t end;   /* memory and refs: one past the last queued byte */
    uint8_t kind;   /* enum ritual_outq_kind */
};

struct ritual_chunk {
    struct ritual_outq q;
    char data[RITUAL_CHUNK_SIZE - sizeof(struct ritual_outq)];
};

/* Bytes the caller keeps until release(arg): a file segment, or memory of
 * its own (a ref, whose bytes are data[q.start, q.end)). */
struct ritual_file_chunk {
    struct ritual_outq q;
    int fd;
    uint64_t offset;    /* file: next byte to send */
    uint64_t remaining; /* file: bytes left to send */
    const char *data;   /* ref: the caller's bytes */
    void (*release)(void *arg);
    void *arg;
};

static inline bool ritual__outq_is_file(const struct ritual_outq *q)
{
    return q->kind == RITUAL_OUTQ_FILE;
}

/* The unsent bytes of a memory or ref node. */
static inline const char *ritual__outq_bytes(const struct ritual_outq *q)
{
    if (q->kind == RITUAL_OUTQ_REF)
        return ((const struct ritual_file_chunk *)q)->data + q->start;
    return ((const struct ritual_chunk *)q)->data + q->start;
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
