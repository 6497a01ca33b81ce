/* file_cache.h - a small cache of open files for one worker: the descriptor,
 * what fstat said, the response headers that follow from it, and the bytes
 * of small files. An entry is checked against the file system again when it
 * is more than a second old, and replaced if the file changed. */
#ifndef RITUAL_FILE_CACHE_H
#define RITUAL_FILE_CACHE_H

#include "mime.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct file_entry {
    int fd;
    uint64_t size;
    int64_t mtime;    /* seconds */
    const char *head; /* Content-Type, Last-Modified, ETag, Accept-Ranges lines */
    size_t head_len;
    const char *etag; /* with its quotes */
    size_t etag_len;
    const char *body; /* the whole file if small, else NULL: sendfile */
    /* private to the cache */
    unsigned refs; /* the cache's own, plus one per response being sent */
    bool dead;
    uint64_t checked_ms;
    dev_t dev;
    ino_t ino;
    long mtime_nsec;
    char *rel;  /* below the root, as opened (index file included) */
    char *path; /* the key: the decoded request path */
    size_t path_len;
    uint32_t hash;
    struct file_entry *hnext, *prev, *next; /* hash chain, LRU list */
    char storage[];
};

struct file_cache;

struct file_cache *file_cache_new(int root_fd, const struct mime_table *mime, const char *index);
void file_cache_free(struct file_cache *cache);

/* Looks up `path` (decoded, starting with '/'), opening it beneath the root
 * if needed. Returns 0 with *out referenced (drop it with file_entry_unref),
 * -EISDIR for a directory without its index file (with *dir_fd open on it
 * for a listing; the caller closes it; -1 if the path lacks its trailing
 * slash), or a negative errno: -ENOENT, -ENOTDIR, -EACCES (not a regular
 * file or not readable), -EXDEV/-ELOOP (a symlink leading out of the root),
 * -EMFILE, ... */
int file_cache_get(struct file_cache *cache, const char *path, size_t len, uint64_t now_ms,
                   struct file_entry **out, int *dir_fd);

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

/* Opens `rel` beneath `dir_fd`: no "..", absolute path or symlink may lead
 * out of it (openat2 with RESOLVE_BENEATH). Returns the fd or -errno. */
int open_beneath(int dir_fd, const char *rel, int flags);

#endif
