/* listing.c - directory listings for `ritual http --autoindex`.
 *
 * A listing is built once per version of a directory (its inode, mtime and
 * ctime) and per worker, into an anonymous in-memory file (memfd), and then
 * served as a file is: with sendfile, ranges and conditional requests. So a
 * client that asks for a large listing and never reads costs a reference
 * to it, not a copy of it in its output queue, however many such clients
 * there are.
 *
 * Building one is done in slices of SLICE entries, one per loop iteration
 * (a zero timer), and the requests wait for it (answered later): a large
 * directory never holds up the worker's other connections for more than a
 * slice, and requests that come while it is built wait for the same build.
 * A listing stops at LISTING_MAX entries and says so. */
#include "http_app.h"
#include "http_path.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LISTING_MAX 10000 /* entries listed */
#define SLICE 1000        /* entries read, or written out, per loop iteration */
#define LISTINGS_KEPT 16  /* per worker, and builds at once */
#define NAME_MAX_BYTES 256

/* A version of a directory, as asked for by one path (the page names it). */
struct version {
    dev_t dev;
    ino_t ino;
    struct timespec mtime, ctime;
};

struct kept {
    struct file_entry *entry; /* NULL: a free slot */
    struct version v;
    uint64_t used; /* for eviction: the least recently used goes */
};

struct out {
    char *p;
    size_t len, cap;
    bool failed;
};

struct build {
    struct listing_cache *cache;
    struct version v;
    struct stat st;
    char *path;
    size_t path_len;
    DIR *dir;         /* while reading the names */
    struct out arena; /* the names, NUL-terminated, one after another */
    char **names;     /* into arena, sorted, once all are read */
    size_t count, written;
    bool more; /* the directory has more than LISTING_MAX */
    int fd;    /* the memfd being written */
    uint64_t size;
    ritual_timer *timer;
    ritual_http_exchange **waiting;
    size_t nwaiting, waiting_cap;
    struct build *next;
};

struct listing_cache {
    ritual_loop *loop;
    listing_done_fn done;
    void *done_arg;
    struct kept kept[LISTINGS_KEPT];
    uint64_t clock;
    struct build *builds;
    unsigned nbuilds;
};

struct listing_cache *listing_cache_new(ritual_loop *loop, listing_done_fn done, void *arg)
{
    struct listing_cache *c = calloc(1, sizeof *c);
    if (c) {
        c->loop = loop;
        c->done = done;
        c->done_arg = arg;
    }
    return c;
}

static void build_free(struct build *b)
{
    if (b->dir)
        closedir(b->dir);
    if (b->fd >= 0)
        close(b->fd);
    free(b->arena.p);
    free(b->names);
    free(b->waiting);
    free(b->path);
    free(b);
}

/* After the loop is freed (its timers with it); the exchanges still
 * waiting went with their connections. */
void listing_cache_free(struct listing_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < LISTINGS_KEPT; i++)
        if (c->kept[i].entry)
            file_entry_unref(c->kept[i].entry);
    while (c->builds) {
        struct build *next = c->builds->next;
        build_free(c->builds);
        c->builds = next;
    }
    free(c);
}

/* ------------------------------------------------------------- building */

static void put(struct out *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 16384;
        while (cap < o->len + n)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->failed = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

#define PUT_LITERAL(o, s) put((o), (s), sizeof(s) - 1)

/* Appends `s` HTML-escaped, copying the runs between special bytes whole. */
static void put_html(struct out *o, const char *s)
{
    for (;;) {
        size_t run = strcspn(s, "&<>\"");
        put(o, s, run);
        s += run;
        switch (*s) {
        case '\0':
            return;
        case '&':
            PUT_LITERAL(o, "&amp;");
            break;
        case '<':
            PUT_LITERAL(o, "&lt;");
            break;
        case '>':
            PUT_LITERAL(o, "&gt;");
            break;
        default:
            PUT_LITERAL(o, "&quot;");
        }
        s++;
    }
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Up to SLICE more names (hidden ones left out, directories with a
 * trailing '/'). Returns 1 when all are read (then sorted), 0 if more
 * remain, or a negative errno. */
static int read_names(struct build *b)
{
    errno = 0;
    for (int n = 0; n < SLICE; n++) {
        struct dirent *d = readdir(b->dir);
        if (!d)
            break;
        if (d->d_name[0] == '.')
            continue; /* ".", ".." and hidden files */
        if (b->count == LISTING_MAX) {
            b->more = true;
            break;
        }
        put(&b->arena, d->d_name, strlen(d->d_name));
        if (d->d_type == DT_DIR)
            PUT_LITERAL(&b->arena, "/");
        put(&b->arena, "", 1);
        b->count++;
        if (n + 1 == SLICE)
            return b->arena.failed ? -ENOMEM : 0;
    }
    if (errno)
        return -errno;
    closedir(b->dir);
    b->dir = NULL;
    b->names = b->arena.failed ? NULL : malloc((b->count ? b->count : 1) * sizeof *b->names);
    if (!b->names)
        return -ENOMEM;
    char *p = b->arena.p;
    for (size_t i = 0; i < b->count; i++) {
        b->names[i] = p;
        p += strlen(p) + 1;
    }
    qsort(b->names, b->count, sizeof *b->names, compare_names);
    return 1;
}

/* Appends `o` to the memfd. Returns 0 or a negative errno. */
static int write_out(struct build *b, const struct out *o)
{
    if (o->failed)
        return -ENOMEM;
    for (size_t off = 0; off < o->len;) {
        ssize_t n = write(b->fd, o->p + off, o->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        off += (size_t)n;
    }
    b->size += o->len;
    return 0;
}

/* The page's next SLICE entries (its head first, its end last). Returns 1
 * when the page is complete, 0 if more remain, or a negative errno. */
static int write_page(struct build *b)
{
    struct out o = {0};
    if (b->written == 0) {
        PUT_LITERAL(&o, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ");
        put_html(&o, b->path);
        PUT_LITERAL(&o, "</title></head>\n<body><h1>Index of ");
        put_html(&o, b->path);
        PUT_LITERAL(&o, "</h1>\n<ul>\n");
        if (b->path_len > 1)
            PUT_LITERAL(&o, "<li><a href=\"../\">../</a></li>\n");
    }
    size_t end = b->written + SLICE < b->count ? b->written + SLICE : b->count;
    for (; b->written < end; b->written++) {
        const char *name = b->names[b->written];
        char href[NAME_MAX_BYTES * 3 + 8];
        if (http_path_encode(name, strlen(name), href, sizeof href) < 0)
            continue;
        PUT_LITERAL(&o, "<li><a href=\"");
        put_html(&o, href);
        PUT_LITERAL(&o, "\">");
        put_html(&o, name);
        PUT_LITERAL(&o, "</a></li>\n");
    }
    bool last = b->written == b->count;
    if (last) {
        PUT_LITERAL(&o, "</ul>\n");
        if (b->more)
            PUT_LITERAL(&o, "<p>This directory has more entries than a listing shows "
                            "(10,000).</p>\n");
        PUT_LITERAL(&o, "</body></html>\n");
    }
    int rc = write_out(b, &o);
    free(o.p);
    return rc < 0 ? rc : last;
}

static void unlink_build(struct listing_cache *c, struct build *b)
{
    struct build **pp = &c->builds;
    while (*pp != b)
        pp = &(*pp)->next;
    *pp = b->next;
    c->nbuilds--;
}

/* The build is over: the listing is kept (rc 0) and every waiting request
 * answered with it, or with the error. */
static void finish(struct build *b, int rc)
{
    struct listing_cache *c = b->cache;
    unlink_build(c, b);
    ritual_timer_free(b->timer);
    struct file_entry *e = NULL;
    if (rc == 0) {
        e = file_entry_make(b->path, b->path_len, b->fd, "text/html; charset=utf-8", &b->st,
                            b->size, 0);
        if (e)
            b->fd = -1; /* the entry's now */
        else
            rc = -ENOMEM;
    }
    if (e) {
        struct kept *slot = &c->kept[0];
        for (size_t i = 0; i < LISTINGS_KEPT; i++) {
            struct kept *k = &c->kept[i];
            if (k->entry && k->v.dev == b->v.dev && k->v.ino == b->v.ino &&
                k->entry->path_len == b->path_len &&
                memcmp(k->entry->path, b->path, b->path_len) == 0) {
                slot = k; /* an older version: replaced */
                break;
            }
            if (!k->entry || (slot->entry && k->used < slot->used))
                slot = k;
        }
        if (slot->entry)
            file_entry_unref(slot->entry); /* responses still sending it keep theirs */
        *slot = (struct kept){e, b->v, ++c->clock};
    }
    for (size_t i = 0; i < b->nwaiting; i++) {
        if (e)
            e->refs++;
        c->done(b->waiting[i], e, rc, c->done_arg);
    }
    build_free(b);
}

/* One slice: reading names, then writing the page out; the next slice
 * in the next iteration of the loop. */
static void build_step(ritual_timer *timer, void *data)
{
    (void)timer;
    struct build *b = data;
    bool writing = !b->dir;
    int rc = writing ? write_page(b) : read_names(b);
    if (rc == 0 || (rc == 1 && !writing)) {
        rc = ritual_timer_start(b->timer, 0, 0);
        if (rc == 0)
            return;
    } else if (rc == 1) {
        rc = 0; /* the page is complete */
    }
    finish(b, rc);
}

/* --------------------------------------------------------------- lookup */

static bool same_version(const struct version *a, const struct version *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static bool same_path(const char *a, size_t a_len, const char *b, size_t b_len)
{
    return a_len == b_len && memcmp(a, b, a_len) == 0;
}

static int wait_for(struct build *b, ritual_http_exchange *ex)
{
    if (b->nwaiting == b->waiting_cap) {
        size_t cap = b->waiting_cap ? b->waiting_cap * 2 : 4;
        ritual_http_exchange **w = realloc(b->waiting, cap * sizeof *w);
        if (!w)
            return -ENOMEM;
        b->waiting = w;
        b->waiting_cap = cap;
    }
    b->waiting[b->nwaiting++] = ex;
    return 0;
}

static int build_start(struct listing_cache *c, int dir_fd, const struct stat *st,
                       const struct version *v, const char *path, size_t len,
                       ritual_http_exchange *ex)
{
    if (c->nbuilds >= LISTINGS_KEPT)
        return -EAGAIN; /* as many listings are being built as are kept */
    struct build *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->fd = -1;
    b->cache = c;
    b->v = *v;
    b->st = *st;
    int fd = -1, rc = -ENOMEM;
    if (!(b->path = malloc(len + 1)))
        goto fail;
    memcpy(b->path, path, len);
    b->path[len] = '\0';
    b->path_len = len;
    if ((fd = dup(dir_fd)) < 0 || !(b->dir = fdopendir(fd)) ||
        (b->fd = memfd_create("ritual-listing", MFD_CLOEXEC)) < 0) {
        rc = -errno;
        goto fail;
    }
    fd = -1; /* the DIR's */
    if (!(b->timer = ritual_timer_new(c->loop, build_step, b)) || wait_for(b, ex) < 0 ||
        ritual_timer_start(b->timer, 0, 0) < 0) {
        rc = -ENOMEM;
        goto fail;
    }
    b->next = c->builds;
    c->builds = b;
    c->nbuilds++;
    return 0;
fail:
    if (fd >= 0 && !b->dir)
        close(fd);
    ritual_timer_free(b->timer);
    build_free(b);
    return rc;
}

int listing_request(struct listing_cache *c, ritual_http_exchange *ex, int dir_fd, const char *path,
                    size_t len)
{
    struct stat st;
    if (fstat(dir_fd, &st) < 0)
        return -errno;
    struct version v = {st.st_dev, st.st_ino, st.st_mtim, st.st_ctim};
    for (size_t i = 0; i < LISTINGS_KEPT; i++) {
        struct kept *k = &c->kept[i];
        if (k->entry && same_version(&k->v, &v) &&
            same_path(k->entry->path, k->entry->path_len, path, len)) {
            k->used = ++c->clock;
            k->entry->refs++;
            c->done(ex, k->entry, 0, c->done_arg);
            return 0;
        }
    }
    for (struct build *b = c->builds; b; b = b->next)
        if (same_version(&b->v, &v) && same_path(b->path, b->path_len, path, len))
            return wait_for(b, ex);
    return build_start(c, dir_fd, &st, &v, path, len, ex);
}
