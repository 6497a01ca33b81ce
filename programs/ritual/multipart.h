/* multipart.h - a 206 answer of several byte ranges of one file, as
 * multipart/byteranges (RFC 9110 section 14.6). */
#ifndef RITUAL_MULTIPART_H
#define RITUAL_MULTIPART_H

#include "file_cache.h"
#include "ranges.h"
#include "ritual_http.h"

/* The most bytes a multipart answer is built from: it is assembled in
 * memory, so a larger one is answered with the whole file instead (a
 * server may ignore Range, RFC 9110 14.2). */
#define MULTIPART_MAX_BYTES (256 * 1024)

/* Answers `ex` with ranges r[0..n) of `e` (n >= 2). `headers[0..nh)` are
 * the validators to send (Last-Modified, ETag, ...: no Content-Type, the
 * answer has its own); `type` is the file's. `seed` varies the boundary.
 * Returns 0 once answered, or -E2BIG when the answer would pass
 * MULTIPART_MAX_BYTES, -ENOMEM or -errno of reading the file: then nothing
 * was sent. */
int multipart_respond(ritual_http_exchange *ex, struct file_entry *e, const char *type,
                      size_t type_len, const ritual_http_header *headers, size_t nh,
                      const struct byte_range *r, size_t n, uint64_t seed);

#endif
