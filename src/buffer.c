/* buffer.c - per-loop free lists for output chunks, file segments and input buffers, so a
 * warmed-up loop does not call malloc on its hot path. The lists are capped:
 * after a burst, memory beyond the cap goes back to the allocator. */
#include "buffer.h"
#include "loop.h"

#include <stdlib.h>

#define CHUNK_FREE_MAX 64  /* 1 MiB of output chunks kept for reuse */
#define INBUF_FREE_MAX 256 /* 1 MiB of small input buffers kept for reuse */
#define INBUF_POOLED_SIZE 4096
#define FILE_CHUNK_FREE_MAX 256 /* file segments and refs: 72 bytes each */

_Static_assert(sizeof(struct ritual_chunk) == RITUAL_CHUNK_SIZE, "chunk is one allocation size");

struct ritual_chunk *ritual__chunk_get(ritual_loop *loop)
{
    struct ritual_chunk *chunk = loop->chunk_free;
    if (chunk) {
        loop->chunk_free = (struct ritual_chunk *)chunk->q.next;
        loop->chunk_free_count--;
    } else {
        chunk = malloc(sizeof *chunk);
        if (!chunk)
            return NULL;
    }
    chunk->q.next = NULL;
    chunk->q.start = chunk->q.end = 0;
    chunk->q.kind = RITUAL_OUTQ_MEMORY;
    return chunk;
}

void ritual__chunk_put(ritual_loop *loop, struct ritual_chunk *chunk)
{
    if (loop->chunk_free_count >= CHUNK_FREE_MAX) {
        free(chunk);
        return;
    }
    chunk->q.next = (struct ritual_outq *)loop->chunk_free; /* q is the first member */
    loop->chunk_free = chunk;
    loop->chunk_free_count++;
}

struct ritual_file_chunk *ritual__file_chunk_get(ritual_loop *loop)
{
    struct ritual_file_chunk *file = loop->file_chunk_free;
    if (file) {
        loop->file_chunk_free = (struct ritual_file_chunk *)file->q.next;
        loop->file_chunk_free_count--;
    } else {
        file = malloc(sizeof *file);
        if (!file)
            return NULL;
    }
    file->q.next = NULL;
    file->q.start = file->q.end = 0;
    file->q.kind = RITUAL_OUTQ_FILE;
    return file;
}

void ritual__file_chunk_put(ritual_loop *loop, struct ritual_file_chunk *file)
{
    if (loop->file_chunk_free_count >= FILE_CHUNK_FREE_MAX) {
        free(file);
        return;
    }
    file->q.next = (struct ritual_outq *)loop->file_chunk_free;
    loop->file_chunk_free = file;
    loop->file_chunk_free_count++;
}

/* Free input buffers are linked through their first bytes. */
void *ritual__inbuf_get(ritual_loop *loop, size_t size)
{
    if (size == INBUF_POOLED_SIZE && loop->inbuf_free) {
        char **buf = loop->inbuf_free;
        loop->inbuf_free = (char **)*buf;
        loop->inbuf_free_count--;
        return buf;
    }
    return malloc(size);
}

void ritual__inbuf_put(ritual_loop *loop, void *buf, size_t size)
{
    if (size != INBUF_POOLED_SIZE || loop->inbuf_free_count >= INBUF_FREE_MAX) {
        free(buf);
        return;
    }
    *(char ***)buf = loop->inbuf_free;
    loop->inbuf_free = (char **)buf;
    loop->inbuf_free_count++;
}

void ritual__buffers_free(ritual_loop *loop)
{
    while (loop->chunk_free) {
        struct ritual_chunk *next = (struct ritual_chunk *)loop->chunk_free->q.next;
        free(loop->chunk_free);
        loop->chunk_free = next;
    }
    loop->chunk_free_count = 0;
    while (loop->file_chunk_free) {
        struct ritual_file_chunk *next = (struct ritual_file_chunk *)loop->file_chunk_free->q.next;
        free(loop->file_chunk_free);
        loop->file_chunk_free = next;
    }
    loop->file_chunk_free_count = 0;
    while (loop->inbuf_free) {
        char **next = (char **)*loop->inbuf_free;
        free(loop->inbuf_free);
        loop->inbuf_free = next;
    }
    loop->inbuf_free_count = 0;
}
