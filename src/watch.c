/* watch.c - fd watchers: readable/writable interest on a descriptor the
 * user owns (a pipe, an inotify fd, a database client's socket), on every
 * backend, level-triggered like the loop's own objects. A watch may be
 * freed from its own callback: its memory goes at the end of the
 * iteration, or, on a completion backend, once the kernel has let go of
 * its poll. */
#include "io.h"
#include "loop.h"
#include "watch.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

ritual_watch *ritual_watch_new(ritual_loop *loop, int fd, ritual_watch_cb cb, void *data,
                               ritual_error *err)
{
    if (fd < 0 || !cb) {
        ritual_error_set(err, -EINVAL, "watch: %s", fd < 0 ? "no descriptor" : "no callback");
        return NULL;
    }
    if (loop->freeing) {
        ritual_error_set(err, -ESHUTDOWN, "watch %d", fd);
        return NULL;
    }
    /* The same answers on every backend: epoll refuses a regular file (it
     * is always ready) and a second entry for one fd, poll and io_uring
     * would take both. */
    struct stat st;
    if (fstat(fd, &st) < 0) {
        ritual_error_set(err, -errno, "watch %d", fd);
        return NULL;
    }
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
        ritual_error_set(err, -EPERM, "watch %d: a file or directory is always ready", fd);
        return NULL;
    }
    for (struct ritual_list *n = loop->watches.next; n != &loop->watches; n = n->next)
        if (ritual_container_of(n, ritual_watch, link)->io.fd == fd) {
            ritual_error_set(err, -EEXIST, "watch %d: already watched in this loop", fd);
            return NULL;
        }
    ritual_watch *w = calloc(1, sizeof *w);
    if (!w) {
        ritual_error_set(err, -ENOMEM, "watch %d", fd);
        return NULL;
    }
    w->io.fd = fd;
    w->io.kind = RITUAL_IO_WATCH;
    w->loop = loop;
    w->cb = cb;
    w->data = data;
    ritual_list_add_tail(&loop->watches, &w->link);
    return w;
}

int ritual_watch_start(ritual_watch *w, unsigned events)
{
    if (w->freed)
        return -EINVAL;
    if (events & ~(unsigned)(RITUAL_WATCH_READABLE | RITUAL_WATCH_WRITABLE))
        return -EINVAL;
    /* No interest is QUIET: not even errors and hang-ups wake a stopped
     * watch, which a level-triggered backend would otherwise report again
     * on every iteration. */
    unsigned io_events = ((events & RITUAL_WATCH_READABLE) ? RITUAL_IO_READ : 0u) |
                         ((events & RITUAL_WATCH_WRITABLE) ? RITUAL_IO_WRITE : 0u);
    int rc = ritual__io_set(w->loop, &w->io, io_events ? io_events : RITUAL_IO_QUIET);
    if (rc == 0)
        w->interest = events;
    return rc;
}

int ritual_watch_fd(const ritual_watch *w)
{
    return w->io.fd;
}

void ritual_watch_free(ritual_watch *w)
{
    if (!w || w->freed)
        return;
    w->freed = true;
    if (w->io.registered)
        ritual__io_forget(w->loop, &w->io);
    ritual_list_del(&w->link);
    ritual_list_add_tail(&w->loop->dead_watches, &w->link);
}

void ritual__watch_ready(ritual_watch *w, unsigned events)
{
    if (w->freed)
        return;
    unsigned ev = 0;
    if ((events & RITUAL_IO_READ) && (w->interest & RITUAL_WATCH_READABLE))
        ev |= RITUAL_WATCH_READABLE;
    if ((events & RITUAL_IO_WRITE) && (w->interest & RITUAL_WATCH_WRITABLE))
        ev |= RITUAL_WATCH_WRITABLE;
    if ((events & RITUAL_IO_ERROR) && w->interest)
        ev |= RITUAL_WATCH_ERROR;
    if (ev)
        w->cb(w, ev, w->data);
}

void ritual__watch_released(ritual_watch *w)
{
    /* Freed this iteration: the reap, which finds busy at 0, frees it. */
    if (!w->reaped)
        return;
    ritual_list_del(&w->link);
    free(w);
}

void ritual__watches_reap(ritual_loop *loop)
{
    while (!ritual_list_empty(&loop->dead_watches)) {
        ritual_watch *w = ritual_container_of(loop->dead_watches.next, ritual_watch, link);
        ritual_list_del(&w->link);
        if (w->io.busy) {
            w->reaped = true;
            ritual_list_add_tail(&loop->zombie_watches, &w->link);
        } else
            free(w);
    }
}

void ritual__watches_free(ritual_loop *loop)
{
    while (!ritual_list_empty(&loop->watches))
        ritual_watch_free(ritual_container_of(loop->watches.next, ritual_watch, link));
    ritual__watches_reap(loop);
}

void ritual__watches_release_all(ritual_loop *loop)
{
    while (!ritual_list_empty(&loop->zombie_watches)) {
        ritual_watch *w = ritual_container_of(loop->zombie_watches.next, ritual_watch, link);
        ritual_list_del(&w->link);
        free(w);
    }
}
