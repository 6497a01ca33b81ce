/* file_cache.c - see file_cache.h. A chained hash table with an LRU list;
 * entries are reference counted so that one being sent survives eviction. */
#include "file_cache.h"

#include "ritual_http.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BUCKETS 1024     /* a power of two */
#define MAX_ENTRIES 1024 /* open files kept per worker */
#define SMALL_FILE 16384 /* bodies up to this are kept in memory */
#define MAX_SMALL_BYTES (16u << 20)
#define RECHECK_MS 1000

struct file_cache {
    int root_fd;
    const struct mime_table *mime;
    const char *index;
    struct file_entry *buckets[BUCKETS];
    struct file_entry *lru_head, *lru_tail; /* most recently used first */
    size_t count;
    size_t small_bytes;
};

int open_beneath(int dir_fd, const char *rel, int flags)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_CLOEXEC | O_NOCTTY);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    long fd;
    do
        fd = syscall(SYS_openat2, dir_fd, rel, &how, sizeof how);
    while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : (int)fd;
}

static uint32_t hash_path(const char *p, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

struct file_cache *file_cache_new(int root_fd, const struct mime_table *mime, const char *index)
{
    struct file_cache *c = calloc(1, sizeof *c);
    if (c) {
        c->root_fd = root_fd;
        c->mime = mime;
        c->index = index;
    }
    return c;
}

void file_entry_unref(struct file_entry *e)
{
    if (--e->refs > 0)
        return;
    close(e->fd);
    free(e->rel);
    free(e);
}

void file_entry_release(void *entry)
{
    file_entry_unref(entry);
}

static void lru_unlink(struct file_cache *c, struct file_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(struct file_cache *c, struct file_entry *e)
{
    e->prev = NULL;
    e->next = c->lru_head;
    if (c->lru_head)
        c->lru_head->prev = e;
    c->lru_head = e;
    if (!c->lru_tail)
        c->lru_tail = e;
}

static void evict(struct file_cache *c, struct file_entry *e)
{
    struct file_entry **pp = &c->buckets[e->hash & (BUCKETS - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(c, e);
    c->count--;
    if (e->body)
        c->small_bytes -= e->size;
    e->dead = true;
    file_entry_unref(e);
}

void file_cache_free(struct file_cache *c)
{
    if (!c)
        return;
    while (c->lru_head)
        evict(c, c->lru_head);
    free(c);
}

/* Opens a path below the root. A directory is looked into for its index
 * file. Returns the fd of a regular file with *rel_out set (malloc'd), or a
 * negative errno as file_cache_get documents. */
static int open_file(struct file_cache *c, const char *path, size_t len, char **rel_out,
                     int *dir_fd, struct stat *st)
{
    const char *rel = len > 1 ? path + 1 : ".";
    int fd = open_beneath(c->root_fd, rel, O_RDONLY | O_NONBLOCK);
    if (fd < 0)
        return fd;
    if (fstat(fd, st) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    size_t rel_len = strlen(rel);
    bool via_index = false;
    if (S_ISDIR(st->st_mode)) {
        if (path[len - 1] != '/') {
            close(fd);
            *dir_fd = -1; /* redirect to the path with its slash */
            return -EISDIR;
        }
        /* The index is opened beneath the root, not the directory: a
         * symlink to elsewhere in the root works, as it would asked for. */
        char index_rel[4096 + 256];
        int n = snprintf(index_rel, sizeof index_rel, "%s%s", len > 1 ? path + 1 : "", c->index);
        if (n < 0 || (size_t)n >= sizeof index_rel) {
            close(fd);
            return -ENAMETOOLONG;
        }
        int ifd = open_beneath(c->root_fd, index_rel, O_RDONLY | O_NONBLOCK);
        if (ifd < 0) {
            if (ifd != -ENOENT) {
                close(fd);
                return ifd;
            }
            *dir_fd = fd;
            return -EISDIR;
        }
        close(fd);
        fd = ifd;
        if (fstat(fd, st) < 0) {
            int rc = -errno;
            close(fd);
            return rc;
        }
        rel_len = (len > 1 ? len - 1 : 0) + strlen(c->index);
        via_index = true;
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd); /* a FIFO, socket or device: never served */
        return -EACCES;
    }
    char *r = malloc(rel_len + 1);
    if (!r) {
        close(fd);
        return -ENOMEM;
    }
    if (via_index) /* "docs/" + "index.html" */
        snprintf(r, rel_len + 1, "%s%s", len > 1 ? path + 1 : "", c->index);
    else
        memcpy(r, rel, rel_len + 1);
    *rel_out = r;
    return fd;
}

struct file_entry *file_entry_make(const char *path, size_t len, int fd, const char *type,
                                   const struct stat *st, uint64_t size, size_t body_room)
{
    char date[30];
    ritual_http_date((int64_t)st->st_mtim.tv_sec, date);
    char etag[48];
    int etag_len = snprintf(etag, sizeof etag, "\"%llx-%llx\"",
                            (unsigned long long)st->st_mtim.tv_sec, (unsigned long long)size);
    char head[512];
    int head_len = snprintf(head, sizeof head,
                            "Content-Type: %s\r\nLast-Modified: %s\r\nETag: %s\r\n"
                            "Accept-Ranges: bytes\r\n",
                            type, date, etag);
    if (head_len < 0 || (size_t)head_len >= sizeof head)
        return NULL;
    struct file_entry *e =
        malloc(sizeof *e + (size_t)head_len + 1 + (size_t)etag_len + 1 + len + 1 + body_room);
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    char *p = e->storage;
    e->head = memcpy(p, head, (size_t)head_len + 1);
    e->head_len = (size_t)head_len;
    p += head_len + 1;
    e->etag = memcpy(p, etag, (size_t)etag_len + 1);
    e->etag_len = (size_t)etag_len;
    p += etag_len + 1;
    e->path = memcpy(p, path, len);
    e->path[len] = '\0';
    e->path_len = len;
    e->fd = fd;
    e->size = size;
    e->mtime = (int64_t)st->st_mtim.tv_sec;
    e->mtime_nsec = st->st_mtim.tv_nsec;
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->refs = 1;
    return e;
}

static struct file_entry *entry_new(struct file_cache *c, const char *path, size_t len, int fd,
                                    char *rel, const struct stat *st)
{
    const char *type = mime_type(c->mime, rel, strlen(rel));
    bool small = (uint64_t)st->st_size <= SMALL_FILE &&
                 c->small_bytes + (size_t)st->st_size <= MAX_SMALL_BYTES;
    size_t body_size = small ? (size_t)st->st_size : 0;
    struct file_entry *e =
        file_entry_make(path, len, fd, type, st, (uint64_t)st->st_size, body_size);
    if (!e)
        return NULL;
    if (small) {
        char *p = e->path + len + 1;
        ssize_t n = pread(fd, p, body_size, 0);
        if (n == (ssize_t)body_size) {
            e->body = p;
            c->small_bytes += body_size;
        } /* else: changing under us; send it with sendfile */
    }
    e->rel = rel;
    return e;
}

/* Still the same file? Compared by what stat says; a change means a fresh
 * open (with the RESOLVE_BENEATH check) rather than trusting this stat. */
static bool still_valid(struct file_cache *c, struct file_entry *e)
{
    struct stat st;
    const char *rel = e->rel[0] ? e->rel : ".";
    if (fstatat(c->root_fd, rel, &st, 0) < 0)
        return false;
    return st.st_ino == e->ino && st.st_dev == e->dev && (uint64_t)st.st_size == e->size &&
           st.st_mtim.tv_sec == e->mtime && st.st_mtim.tv_nsec == e->mtime_nsec;
}

int file_cache_get(struct file_cache *c, const char *path, size_t len, uint64_t now_ms,
                   struct file_entry **out, int *dir_fd)
{
    uint32_t h = hash_path(path, len);
    struct file_entry *e = c->buckets[h & (BUCKETS - 1)];
    while (e && !(e->hash == h && e->path_len == len && memcmp(e->path, path, len) == 0))
        e = e->hnext;
    if (e && now_ms - e->checked_ms >= RECHECK_MS) {
        if (still_valid(c, e)) {
            e->checked_ms = now_ms;
        } else {
            evict(c, e);
            e = NULL;
        }
    }
    if (e) {
        if (c->lru_head != e) {
            lru_unlink(c, e);
            lru_push(c, e);
        }
        e->refs++;
        *out = e;
        return 0;
    }

    struct stat st;
    char *rel = NULL;
    int fd = open_file(c, path, len, &rel, dir_fd, &st);
    if (fd < 0)
        return fd;
    e = entry_new(c, path, len, fd, rel, &st);
    if (!e) {
        free(rel);
        close(fd);
        return -ENOMEM;
    }
    if (c->count >= MAX_ENTRIES)
        evict(c, c->lru_tail);
    e->hash = h;
    e->checked_ms = now_ms;
    e->hnext = c->buckets[h & (BUCKETS - 1)];
    c->buckets[h & (BUCKETS - 1)] = e;
    lru_push(c, e);
    c->count++;
    e->refs++;
    *out = e;
    return 0;
}
