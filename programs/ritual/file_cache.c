/* file_cache.c - see file_cache.h. A chained hash table with an LRU list;
 * entries are reference counted so that one being sent survives eviction.
 * A precompressed sibling is an entry hanging off its file's, never in the
 * table itself: it is found, rechecked and evicted with the file. */
#include "file_cache.h"

#include "beneath.h"

#include "ritual_http.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUCKETS 1024 /* a power of two */
#define MAX_FILES 1024
#define SMALL_FILE 16384 /* bodies up to this are kept in memory */
#define MAX_SMALL_BYTES (16u << 20)
#define REL_MAX (4096 + 256)
#define MIN_SWEEP_MS 10

struct file_cache {
    ritual_loop *loop;
    int root_fd;
    const struct mime_table *mime;
    const char *index;
    struct file_cache_options opt;
    ritual_timer *sweep; /* runs while there are entries */
    bool sweeping;
    struct file_entry *buckets[BUCKETS];
    struct file_entry *lru_head, *lru_tail; /* most recently used first */
    size_t count;
    size_t fds; /* held by the entries in the table and their siblings */
    size_t small_bytes;
};

size_t file_cache_max_files(rlim_t nofile, unsigned workers)
{
    if (workers == 0)
        workers = 1;
    /* Rounded down and with no floor, so that the workers' shares never
     * add up to more than the quarter: a floor per worker would, with
     * many workers under a low limit, eat into the connections' part. */
    rlim_t share = nofile == RLIM_INFINITY ? MAX_FILES : nofile / 4 / workers;
    return share > MAX_FILES ? MAX_FILES : (size_t)share;
}

static uint32_t hash_path(const char *p, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

static void sweep_fired(ritual_timer *timer, void *data);

struct file_cache *file_cache_new(ritual_loop *loop, int root_fd, const struct mime_table *mime,
                                  const char *index, const struct file_cache_options *options)
{
    struct file_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    c->root_fd = root_fd;
    c->mime = mime;
    c->index = index;
    c->opt = *options;
    if (!(c->sweep = ritual_timer_new(loop, sweep_fired, c))) {
        free(c);
        return NULL;
    }
    return c;
}

void file_entry_unref(struct file_entry *e)
{
    if (--e->refs > 0)
        return;
    for (int i = 0; i < CODING_COUNT; i++)
        if (e->variant[i])
            file_entry_unref(e->variant[i]);
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

/* Descriptors an entry holds: its own and its siblings'. */
static size_t entry_fds(const struct file_entry *e)
{
    return 1 + (size_t)__builtin_popcount(e->codings);
}

static size_t entry_small_bytes(const struct file_entry *e)
{
    size_t n = e->body ? (size_t)e->size : 0;
    for (int i = 0; i < CODING_COUNT; i++)
        if (e->variant[i] && e->variant[i]->body)
            n += (size_t)e->variant[i]->size;
    return n;
}

static void evict(struct file_cache *c, struct file_entry *e)
{
    struct file_entry **pp = &c->buckets[e->hash & (BUCKETS - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(c, e);
    c->count--;
    c->fds -= entry_fds(e);
    c->small_bytes -= entry_small_bytes(e);
    e->dead = true;
    file_entry_unref(e);
}

/* No response is sending it or one of its siblings: closing it gives its
 * descriptors back at once. */
static bool idle(const struct file_entry *e)
{
    if (e->refs > 1)
        return false;
    for (int i = 0; i < CODING_COUNT; i++)
        if (e->variant[i] && e->variant[i]->refs > 1)
            return false;
    return true;
}

/* On EMFILE or ENFILE: closes half the idle entries (at least one), least
 * recently used first. Returns how many. */
static size_t evict_idle(struct file_cache *c)
{
    size_t want = c->count / 2 ? c->count / 2 : 1, done = 0;
    for (struct file_entry *e = c->lru_tail, *prev; e && done < want; e = prev) {
        prev = e->prev;
        if (idle(e)) {
            evict(c, e);
            done++;
        }
    }
    return done;
}

size_t file_cache_shed(struct file_cache *c)
{
    size_t before = c->fds;
    if (c->count)
        evict_idle(c); /* idle entries only: their descriptors close at once */
    return before - c->fds;
}

/* The sweep: entries not used for inactive_ms are closed, so that a deleted
 * file's space comes back; it stops while the cache is empty. */
static void sweep_fired(ritual_timer *timer, void *data)
{
    struct file_cache *c = data;
    uint64_t now = ritual_loop_now(c->loop);
    for (struct file_entry *e = c->lru_tail, *prev; e; e = prev) {
        prev = e->prev;
        if (now - e->used_ms < c->opt.inactive_ms)
            break; /* the rest were used later */
        if (idle(e))
            evict(c, e);
    }
    if (c->count == 0) {
        ritual_timer_stop(timer);
        c->sweeping = false;
    }
}

static void sweep_start(struct file_cache *c)
{
    uint64_t every = c->opt.inactive_ms / 2;
    if (every < MIN_SWEEP_MS)
        every = MIN_SWEEP_MS;
    if (ritual_timer_start(c->sweep, every, every) == 0)
        c->sweeping = true; /* else: tried again with the next entry */
}

void file_cache_set_mime(struct file_cache *c, const struct mime_table *mime)
{
    c->mime = mime;
    /* Each entry's head holds its Content-Type: every one is built again
     * on its next request. Responses being sent keep theirs. */
    while (c->lru_head)
        evict(c, c->lru_head);
}

void file_cache_free(struct file_cache *c)
{
    if (!c)
        return;
    while (c->lru_head)
        evict(c, c->lru_head);
    free(c);
}

static void stamp_of(const struct stat *st, struct file_stamp *out)
{
    *out = (struct file_stamp){
        .exists = true,
        .dev = st->st_dev,
        .ino = st->st_ino,
        .size = st->st_size,
        .mtime = st->st_mtim,
        .ctime = st->st_ctim,
    };
}

static bool stamp_equal(const struct file_stamp *a, const struct file_stamp *b)
{
    if (a->exists != b->exists)
        return false;
    return !a->exists ||
           (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
            a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
            a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec);
}

/* What is at `rel` now, by path, resolved as the open would be (beneath
 * the root: a symlink leading out is not looked at, not even stat'ed). */
static void stamp_at(struct file_cache *c, const char *rel, struct file_stamp *out)
{
    struct stat st;
    int fd = open_beneath(c->root_fd, rel[0] ? rel : ".", O_PATH);
    if (fd < 0 || fstat(fd, &st) < 0)
        out->exists = false;
    else
        stamp_of(&st, out);
    if (fd >= 0)
        close(fd);
}

/* open_beneath, and on EMFILE/ENFILE once more after closing idle entries. */
static int open_evicting(struct file_cache *c, const char *rel)
{
    int fd = open_beneath(c->root_fd, rel, O_RDONLY | O_NONBLOCK);
    if ((fd == -EMFILE || fd == -ENFILE) && evict_idle(c) > 0)
        fd = open_beneath(c->root_fd, rel, O_RDONLY | O_NONBLOCK);
    return fd;
}

/* Opens a path below the root. A directory is looked into for its index
 * file. Returns the fd of a regular file with *rel_out set (malloc'd), or a
 * negative errno as file_cache_get documents. */
static int open_file(struct file_cache *c, const char *path, size_t len, char **rel_out,
                     int *dir_fd, struct stat *st)
{
    const char *rel = len > 1 ? path + 1 : ".";
    int fd = open_evicting(c, rel);
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
        char index_rel[REL_MAX];
        int n = snprintf(index_rel, sizeof index_rel, "%s%s", len > 1 ? path + 1 : "", c->index);
        if (n < 0 || (size_t)n >= sizeof index_rel) {
            close(fd);
            return -ENAMETOOLONG;
        }
        int ifd = open_evicting(c, index_rel);
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

/* The entry's storage: its head, ETag, key and room for a body. `coding`
 * is -1 for the file itself; `vary` adds "Vary: Accept-Encoding" (a file
 * with siblings, and each sibling). */
static struct file_entry *entry_make(const char *path, size_t len, int fd, const char *type,
                                     int coding, bool vary, const struct stat *st, uint64_t size,
                                     size_t body_room)
{
    char date[30];
    ritual_http_date((int64_t)st->st_mtim.tv_sec, date);
    char etag[64];
    int etag_len = snprintf(etag, sizeof etag, "\"%llx-%llx%s%s\"",
                            (unsigned long long)st->st_mtim.tv_sec, (unsigned long long)size,
                            coding >= 0 ? "-" : "", coding >= 0 ? coding_name(coding) : "");
    char encoding[48] = "";
    if (coding >= 0)
        snprintf(encoding, sizeof encoding, "Content-Encoding: %s\r\n", coding_name(coding));
    char head[640];
    int head_len = snprintf(head, sizeof head,
                            "Content-Type: %s\r\n%s%sLast-Modified: %s\r\nETag: %s\r\n"
                            "Accept-Ranges: bytes\r\n",
                            type, encoding, vary ? "Vary: Accept-Encoding\r\n" : "", date, etag);
    if (etag_len < 0 || (size_t)etag_len >= sizeof etag || head_len < 0 ||
        (size_t)head_len >= sizeof head)
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
    stamp_of(st, &e->stamp);
    e->refs = 1;
    return e;
}

struct file_entry *file_entry_make(const char *path, size_t len, int fd, const char *type,
                                   const struct stat *st, uint64_t size, size_t body_room)
{
    return entry_make(path, len, fd, type, -1, false, st, size, body_room);
}

/* An entry for the regular file open at fd, its body read if small and
 * there is room. NULL if out of memory (fd not closed). */
static struct file_entry *entry_new(const char *path, size_t len, int fd, const char *type,
                                    int coding, bool vary, const struct stat *st,
                                    size_t small_bytes)
{
    bool small =
        (uint64_t)st->st_size <= SMALL_FILE && small_bytes + (size_t)st->st_size <= MAX_SMALL_BYTES;
    size_t body_size = small ? (size_t)st->st_size : 0;
    struct file_entry *e =
        entry_make(path, len, fd, type, coding, vary, st, (uint64_t)st->st_size, body_size);
    if (e && small) {
        char *p = e->path + len + 1;
        ssize_t n = pread(fd, p, body_size, 0);
        if (n == (ssize_t)body_size)
            e->body = p; /* else: changing under us; send it with sendfile */
    }
    return e;
}

/* "rel" + ".br" into buf[REL_MAX]; false if too long. */
static bool sibling_rel(const char *rel, size_t rel_len, int coding, char *buf)
{
    const char *suffix = coding_suffix(coding);
    size_t n = strlen(suffix);
    if (rel_len + n >= REL_MAX)
        return false;
    memcpy(buf, rel, rel_len);
    memcpy(buf + rel_len, suffix, n + 1);
    return true;
}

/* Looks for the precompressed siblings of the file at `rel` (each a
 * regular file, opened beneath the root as the file was) and opens them
 * into variant[]. What was found, usable or not, is kept in stamp[] for
 * the recheck. Returns 0 or -ENOMEM. */
static int siblings_open(struct file_cache *c, const char *path, size_t len, const char *rel,
                         size_t rel_len, const char *type, struct file_entry *variant[],
                         struct file_stamp stamp[])
{
    size_t small = c->small_bytes;
    for (unsigned i = 0; i < c->opt.precompressed.count; i++) {
        int coding = c->opt.precompressed.order[i];
        char name[REL_MAX];
        stamp[coding].exists = false;
        if (!sibling_rel(rel, rel_len, coding, name))
            continue;
        int fd = open_evicting(c, name);
        struct stat st;
        if (fd < 0) {
            if (fd != -ENOENT && fd != -ENOTDIR)
                stamp_at(c, name, &stamp[coding]); /* there but not served: unchanged */
            continue;
        }
        if (fstat(fd, &st) < 0) {
            close(fd);
            continue; /* found again at the recheck */
        }
        stamp_of(&st, &stamp[coding]);
        if (!S_ISREG(st.st_mode)) {
            close(fd);
            continue;
        }
        struct file_entry *v = entry_new(path, len, fd, type, coding, true, &st, small);
        if (!v) {
            close(fd);
            return -ENOMEM;
        }
        if (v->body)
            small += (size_t)v->size;
        variant[coding] = v;
    }
    return 0;
}

/* Still the same file, with the same siblings? Compared by what stat says;
 * a change means a fresh open (with the RESOLVE_BENEATH check) rather than
 * trusting this stat. A chmod or chown shows in the ctime alone. */
static bool still_valid(struct file_cache *c, struct file_entry *e)
{
    struct file_stamp now;
    stamp_at(c, e->rel, &now);
    if (!stamp_equal(&now, &e->stamp))
        return false;
    for (unsigned i = 0; i < c->opt.precompressed.count; i++) {
        int coding = c->opt.precompressed.order[i];
        char name[REL_MAX];
        if (!sibling_rel(e->rel, e->rel_len, coding, name))
            continue;
        stamp_at(c, name, &now);
        if (!stamp_equal(&now, &e->sibling[coding]))
            return false;
    }
    return true;
}

int file_cache_get(struct file_cache *c, const char *path, size_t len, uint64_t now_ms,
                   struct file_entry **out, int *dir_fd)
{
    uint32_t h = hash_path(path, len);
    struct file_entry *e = c->buckets[h & (BUCKETS - 1)];
    while (e && !(e->hash == h && e->path_len == len && memcmp(e->path, path, len) == 0))
        e = e->hnext;
    if (e && now_ms - e->checked_ms >= c->opt.valid_ms) {
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
        e->used_ms = now_ms;
        e->refs++;
        *out = e;
        return 0;
    }

    struct stat st;
    char *rel = NULL;
    int fd = open_file(c, path, len, &rel, dir_fd, &st);
    if (fd < 0)
        return fd;
    size_t rel_len = strlen(rel);
    const char *type = mime_type(c->mime, rel, rel_len);
    struct file_entry *variant[CODING_COUNT] = {NULL};
    struct file_stamp sibling[CODING_COUNT] = {{0}};
    int rc = siblings_open(c, path, len, rel, rel_len, type, variant, sibling);
    unsigned codings = 0;
    size_t variant_bytes = 0;
    for (int i = 0; i < CODING_COUNT; i++) {
        if (variant[i]) {
            codings |= 1u << i;
            if (variant[i]->body)
                variant_bytes += (size_t)variant[i]->size;
        }
    }
    e = rc < 0
            ? NULL
            : entry_new(path, len, fd, type, -1, codings != 0, &st, c->small_bytes + variant_bytes);
    if (!e) {
        for (int i = 0; i < CODING_COUNT; i++)
            if (variant[i])
                file_entry_unref(variant[i]);
        free(rel);
        close(fd);
        return -ENOMEM;
    }
    memcpy(e->variant, variant, sizeof variant);
    memcpy(e->sibling, sibling, sizeof sibling);
    e->codings = codings;
    e->rel = rel;
    e->rel_len = rel_len;
    e->hash = h;
    e->checked_ms = e->used_ms = now_ms;
    if (entry_fds(e) > c->opt.max_files) {
        /* More descriptors than the whole share: sent, then closed, so
         * that the bound holds however many siblings a file has. */
        e->dead = true;
        *out = e;
        return 0;
    }
    /* Room for its descriptors: the least recently used go (those being
     * sent keep theirs until they are). */
    while (c->lru_tail && c->fds + entry_fds(e) > c->opt.max_files)
        evict(c, c->lru_tail);
    e->hnext = c->buckets[h & (BUCKETS - 1)];
    c->buckets[h & (BUCKETS - 1)] = e;
    lru_push(c, e);
    c->count++;
    c->fds += entry_fds(e);
    c->small_bytes += entry_small_bytes(e);
    if (!c->sweeping)
        sweep_start(c);
    e->refs++;
    *out = e;
    return 0;
}

struct file_entry *file_entry_for(struct file_cache *c, struct file_entry *e,
                                  const ritual_http_request *req)
{
    if (!e->codings) /* the common case: nothing to read */
        return e;
    int coding = coding_choose(req, &c->opt.precompressed, e->codings);
    return coding >= 0 ? e->variant[coding] : e;
}
