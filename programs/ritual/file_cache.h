/* file_cache.h - a small cache of open files for one worker: the descriptor,
 * what fstat said, the response headers that follow from it, the bytes of
 * small files, and the precompressed siblings (file.br, ...) beside each.
 * An entry is checked against the file system again when it is older than
 * the recheck interval, and replaced if the file or a sibling changed.
 *
 * Bounds, as nginx's open_file_cache max=, inactive= and
 * open_file_cache_valid: at most `max_files` descriptors (see
 * file_cache_max_files), entries not used for `inactive_ms` closed by a
 * sweep on the worker's loop, and on EMFILE/ENFILE the idle entries closed
 * (least recently used first) before the open is tried once more. */
#ifndef RITUAL_FILE_CACHE_H
#define RITUAL_FILE_CACHE_H

#include "encoding.h"
#include "mime.h"
#include "ritual.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>

/* What stat says of a file, to tell whether it changed: its identity, size,
 * mtime and ctime (a chmod or chown changes only the ctime). */
struct file_stamp {
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

struct file_entry {
    int fd;
    uint64_t size;
    int64_t mtime;    /* seconds */
    const char *head; /* Content-Type, Last-Modified, ETag, Accept-Ranges lines */
    size_t head_len;  /* (and Content-Encoding, Vary where there are siblings) */
    const char *etag; /* with its quotes */
    size_t etag_len;
    const char *body; /* the whole file if small, else NULL: sendfile */
    /* Open precompressed siblings, each an entry of its own (NULL: none);
     * `codings` has bit 1 << coding set for each. */
    struct file_entry *variant[CODING_COUNT];
    unsigned codings;
    /* private to the cache */
    unsigned refs; /* the cache's own, plus one per response being sent */
    bool dead;
    uint64_t checked_ms, used_ms;
    struct file_stamp stamp;
    struct file_stamp sibling[CODING_COUNT]; /* as last seen, for the recheck */
    char *rel;                               /* below the root, as opened (index file included) */
    size_t rel_len;
    char *path; /* the key: the decoded request path */
    size_t path_len;
    uint32_t hash;
    struct file_entry *hnext, *prev, *next; /* hash chain, LRU list */
    char storage[];
};

struct file_cache_options {
    size_t max_files;                 /* descriptors kept open, siblings included; a
                                         file needing more is sent uncached */
    uint64_t valid_ms;                /* an entry older than this is checked again */
    uint64_t inactive_ms;             /* one not used for this long is closed */
    struct coding_list precompressed; /* the siblings looked for */
};

/* How many descriptors each of `workers` caches may keep, given the soft
 * RLIMIT_NOFILE `nofile`: a quarter of it divided between the workers,
 * rounded down, at most 1,024 each, so that together they never hold more
 * than the quarter. The other three quarters are left for connections,
 * listings and files being sent after their eviction. 0 (more workers than
 * a quarter of the limit) caches nothing: each file is opened for its
 * response and closed after it. */
size_t file_cache_max_files(rlim_t nofile, unsigned workers);

/* A cache for the worker running `loop` (its sweep is a timer there). NULL
 * if out of memory. */
struct file_cache *file_cache_new(ritual_loop *loop, int root_fd, const struct mime_table *mime,
                                  const char *index, const struct file_cache_options *options);
/* The worker's thread: types from `mime` from now on (the caller keeps it
 * alive while the cache uses it); every entry is dropped, since its head
 * holds the type the old table gave. */
void file_cache_set_mime(struct file_cache *cache, const struct mime_table *mime);
/* Out of descriptors elsewhere (an accept said EMFILE): closes half the
 * idle entries, at least one, least recently used first, as an open that
 * fails so does. Returns how many descriptors it closed. */
size_t file_cache_shed(struct file_cache *cache);
/* After the loop is freed (its timer with it). */
void file_cache_free(struct file_cache *cache);

/* Looks up `path` (decoded, starting with '/'), opening it beneath the root
 * if needed. Returns 0 with *out referenced (drop it with file_entry_unref),
 * -EISDIR for a directory without its index file (with *dir_fd open on it
 * for a listing; the caller closes it; -1 if the path lacks its trailing
 * slash), or a negative errno: -ENOENT, -ENOTDIR, -EACCES (not a regular
 * file or not readable), -EXDEV/-ELOOP (a symlink leading out of the root),
 * -EMFILE (even after closing the idle entries), ... */
int file_cache_get(struct file_cache *cache, const char *path, size_t len, uint64_t now_ms,
                   struct file_entry **out, int *dir_fd);

/* What to send for `e` to a request: `e` itself, or the precompressed
 * sibling the request's Accept-Encoding prefers. Not referenced: it lives
 * as long as `e`. */
struct file_entry *file_entry_for(struct file_cache *cache, struct file_entry *e,
                                  const ritual_http_request *req);

/* An entry for what `fd` holds (it takes the fd), outside any cache: its
 * headers say `type`, `size` bytes and st's mtime, its key is `path`, and
 * `body_room` bytes after the key are left for a body the caller may put
 * there. For responses built like files (directory listings). NULL if out
 * of memory. */
struct file_entry *file_entry_make(const char *path, size_t len, int fd, const char *type,
                                   const struct stat *st, uint64_t size, size_t body_room);

void file_entry_unref(struct file_entry *entry);
/* The same, shaped as a release callback for ritual_http_respond_file. */
void file_entry_release(void *entry);

#endif
