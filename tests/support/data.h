/* data.h - payloads and files, for the tests. */
#ifndef RITUAL_TEST_DATA_H
#define RITUAL_TEST_DATA_H

#include "check.h"

#include <stddef.h>
#include <stdint.h>

/* xorshift64*: deterministic pseudo-random numbers. */
struct prng {
    uint64_t state;
};

void prng_seed(struct prng *r, uint64_t seed);
uint64_t prng_next(struct prng *r);
/* Uniform in [lo, hi]. */
uint64_t prng_range(struct prng *r, uint64_t lo, uint64_t hi);
void prng_fill(struct prng *r, void *buf, size_t n);

/* A pattern stream you can regenerate at any offset: pattern_fill writes the
 * bytes [offset, offset + n) of the stream named by `seed`. */
void pattern_fill(uint64_t seed, uint64_t offset, void *buf, size_t n);

/* Returns the index of the first byte of buf that differs from the stream at
 * `offset`, or n if all n bytes match. */
size_t pattern_mismatch(uint64_t seed, uint64_t offset, const void *buf, size_t n);

/* ---------------------------------------------------------------- files */

/* Creates a fresh directory "/tmp/ritual-test-XXXXXX" into path[cap]. A
 * test that fails leaves none behind: they are removed at exit. */
void temp_dir_make(char *path, size_t cap);

/* Writes `len` bytes as the file DIR/REL (created or truncated, mode 0644). */
void file_write_at(const char *dir, const char *rel, const void *data, size_t len);
/* A whole file in a NUL-terminated malloc'd buffer (NULL if it cannot be opened). */
char *file_read(const char *path, size_t *len_out);

/* Writes DIR/REL with `len` bytes of pattern_fill(seed, 0, ...). */
void file_write_pattern_at(const char *dir, const char *rel, uint64_t seed, size_t len);

/* Creates the directory DIR/REL (mode 0755). */
void dir_make_at(const char *dir, const char *rel);

/* Removes `path` and everything below it, never following symlinks. */
void remove_tree(const char *path);

#endif
