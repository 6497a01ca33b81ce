/* post.c - ritual_loop_post: the one door into a loop from other threads.
 * Producers append to a vector under a briefly held mutex and, if it was
 * empty, write the loop's eventfd; the loop swaps the vector out under the
 * same mutex and runs the calls without holding it. The two vectors are
 * reused, so a warmed-up loop allocates nothing per message. */
#include "io.h"
#include "loop.h"
#include "post.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct post {
    ritual_post_fn fn;
    void *arg;
};

struct ritual_posts {
    pthread_mutex_t lock;
    struct post *queue, *spare; /* producers fill queue; the loop drains spare */
    size_t len, cap, spare_cap;
    bool closed; /* the loop is being freed: refuse new posts */
};

int ritual__posts_init(ritual_loop *loop)
{
    struct ritual_posts *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    int rc = pthread_mutex_init(&p->lock, NULL);
    if (rc != 0) {
        free(p);
        return -rc;
    }
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        pthread_mutex_destroy(&p->lock);
        free(p);
        return rc;
    }
    loop->posts = p;
    loop->wakeup_io.fd = fd;
    loop->wakeup_io.kind = RITUAL_IO_WAKEUP;
    rc = ritual__io_set(loop, &loop->wakeup_io, RITUAL_IO_READ);
    if (rc < 0) {
        ritual__posts_free(loop);
        return rc;
    }
    return 0;
}

static int post(ritual_loop *loop, ritual_post_fn fn, void *arg, size_t max_pending)
{
    struct ritual_posts *p = loop->posts;
    pthread_mutex_lock(&p->lock);
    if (p->closed) {
        pthread_mutex_unlock(&p->lock);
        return -ESHUTDOWN;
    }
    if (p->len >= max_pending) {
        pthread_mutex_unlock(&p->lock);
        return -EAGAIN;
    }
    if (p->len == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        struct post *q = realloc(p->queue, cap * sizeof *q);
        if (!q) {
            pthread_mutex_unlock(&p->lock);
            return -ENOMEM;
        }
        p->queue = q;
        p->cap = cap;
    }
    p->queue[p->len++] = (struct post){fn, arg};
    bool first = p->len == 1;
    pthread_mutex_unlock(&p->lock);
    if (first) {
        /* Only the first post of a batch wakes the loop; the counter never
         * nears its limit since the loop reads it back to zero. */
        uint64_t one = 1;
        ssize_t n;
        do
            n = write(loop->wakeup_io.fd, &one, sizeof one);
        while (n < 0 && errno == EINTR);
        /* EAGAIN would mean the counter is full: the loop is awake anyway. */
    }
    return 0;
}

int ritual_loop_post(ritual_loop *loop, ritual_post_fn fn, void *arg)
{
    return post(loop, fn, arg, SIZE_MAX);
}

int ritual_loop_try_post(ritual_loop *loop, ritual_post_fn fn, void *arg, size_t max_pending)
{
    return post(loop, fn, arg, max_pending);
}

size_t ritual_loop_posts_pending(const ritual_loop *loop)
{
    struct ritual_posts *p = loop->posts;
    if (!p)
        return 0;
    pthread_mutex_lock(&p->lock);
    size_t n = p->len;
    pthread_mutex_unlock(&p->lock);
    return n;
}

/* Runs every call posted so far, in order. */
static void run_posts(ritual_loop *loop)
{
    struct ritual_posts *p = loop->posts;
    pthread_mutex_lock(&p->lock);
    struct post *batch = p->queue;
    size_t len = p->len, cap = p->cap;
    p->queue = p->spare;
    p->cap = p->spare_cap;
    p->len = 0;
    p->spare = NULL;
    p->spare_cap = 0;
    pthread_mutex_unlock(&p->lock);

    for (size_t i = 0; i < len; i++)
        batch[i].fn(loop, batch[i].arg);

    pthread_mutex_lock(&p->lock);
    if (!p->spare && cap >= p->spare_cap) {
        p->spare = batch;
        p->spare_cap = cap;
        batch = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    free(batch);
}

void ritual__posts_ready(ritual_loop *loop)
{
    uint64_t count;
    ssize_t n;
    do
        n = read(loop->wakeup_io.fd, &count, sizeof count);
    while (n < 0 && errno == EINTR);
    run_posts(loop);
}

void ritual__posts_free(ritual_loop *loop)
{
    struct ritual_posts *p = loop->posts;
    if (!p)
        return;
    /* Calls still queued run now: a message is never lost. Posts made from
     * here on are refused. */
    pthread_mutex_lock(&p->lock);
    p->closed = true;
    pthread_mutex_unlock(&p->lock);
    while (p->len)
        run_posts(loop);
    ritual__io_forget(loop, &loop->wakeup_io);
    close(loop->wakeup_io.fd);
    loop->wakeup_io.fd = -1;
    pthread_mutex_destroy(&p->lock);
    free(p->queue);
    free(p->spare);
    free(p);
    loop->posts = NULL;
}
